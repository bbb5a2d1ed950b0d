"""Leases on a real PostgreSQL: one holder at a time, fencing, the fair
share as replicas come and go, takeover after a holder's death, and a
replica cut off from the database."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from exporter.model import Batch
from exporter.state.db import PostgresDatabase
from exporter.state.keeper import LeaseKeeper
from exporter.state.leases import Fence, LeaseLost, LeaseTable
from exporter.state.store import StateStore
from testkit.postgres import PostgresServer
from tests.conftest import wait_for

SOURCES = ("a", "b", "c", "d")


def store(url: str) -> StateStore:
    return StateStore(PostgresDatabase(url, "test", connect_timeout=2))


def table(url: str) -> LeaseTable:
    store(url).close()  # creates the tables
    return LeaseTable(PostgresDatabase(url, "test", connect_timeout=2))


def keeper(url: str, replica: str, ttl: float = 30.0, **kw: object) -> LeaseKeeper:
    return LeaseKeeper(table(url), dict.fromkeys(SOURCES, ttl), replica=replica, **kw)  # type: ignore[arg-type]


def held(k: LeaseKeeper) -> set[str]:
    return set(k.held() or ())


def tick_until(k: LeaseKeeper, check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Run the keeper's rounds until `check` holds (leases expire by the database's clock)."""

    def round_then_check() -> bool:
        k.tick()
        return check()

    wait_for(round_then_check, timeout=timeout, what=what)


def holders(url: str) -> dict[str, str]:
    with psycopg.connect(url) as db:
        return dict(db.execute("SELECT name, holder FROM leases").fetchall())


def test_one_replica_alone_takes_every_lease_and_a_second_one_takes_half(postgres_url: str) -> None:
    first = keeper(postgres_url, "r1")
    first.tick()
    assert first.held() == set(SOURCES)
    second = keeper(postgres_url, "r2")
    second.tick()  # two live replicas: the share is 2, but nothing is free yet
    assert second.held() == set()
    first.tick()  # sees two replicas: hands back what is beyond its share
    second.tick()
    assert len(held(first)) == 2 and held(second) == set(SOURCES) - held(first)
    assert holders(postgres_url) == {n: ("r1" if n in held(first) else "r2") for n in SOURCES}


def test_a_dead_holders_leases_are_taken_over_once_expired(postgres_url: str) -> None:
    dead = keeper(postgres_url, "dead", ttl=0.5)
    dead.tick()  # then never again: killed
    heir = keeper(postgres_url, "heir", ttl=0.5)

    tick_until(heir, lambda: held(heir) == set(SOURCES), "the heir to take every expired lease")
    assert set(holders(postgres_url).values()) == {"heir"}
    with psycopg.connect(postgres_url) as db:
        assert {e for (e,) in db.execute("SELECT epoch FROM leases").fetchall()} == {2}  # one takeover each


def test_a_commit_under_a_lease_taken_over_writes_nothing(postgres_url: str) -> None:
    old = keeper(postgres_url, "old", ttl=0.5)
    old.tick()
    fence = old.fence("a")
    assert fence is not None
    writer = store(postgres_url)
    writer.commit("a", _batch(1), [], {("agent_runs_total", ("a", "p", "x", "ok")): 1.0}, 10, fence=fence)
    new = keeper(postgres_url, "new", ttl=30.0)
    tick_until(new, lambda: "a" in held(new), "the takeover")
    with pytest.raises(LeaseLost):  # the old holder does not know yet: the database says no
        writer.commit(
            "a", _batch(2), [("r", 1, b"x")], {("agent_runs_total", ("a", "p", "x", "ok")): 9.0}, 10, fence=fence
        )
    assert writer.checkpoint("a") == {"c": 1} and writer.outbox_spans() == 0
    assert writer.series() == {("agent_runs_total", ("a", "p", "x", "ok")): 1.0}
    writer.commit("a", _batch(3), [], {}, 10, fence=new.fence("a"))  # the new holder commits
    assert writer.checkpoint("a") == {"c": 3}


def test_a_released_lease_fences_its_old_epoch_too(postgres_url: str) -> None:
    leases = table(postgres_url)
    epoch = leases.acquire("a", "r1", 30.0)
    assert epoch == 1 and leases.acquire("a", "r2", 30.0) is None  # held: nobody else gets it
    leases.release(Fence("a", "r1", 1))
    assert leases.acquire("a", "r2", 30.0) == 2
    with pytest.raises(LeaseLost):
        store(postgres_url).commit("a", _batch(1), [], {}, 10, fence=Fence("a", "r1", 1))


def test_a_replica_cut_off_drops_its_leases_after_their_ttl_and_takes_them_again() -> None:
    server = PostgresServer().start()  # its own server: this test stops it
    try:
        url = server.create_database()
        events: list[tuple[str, str | None]] = []
        cut = keeper(
            url,
            "cut",
            ttl=0.5,
            on_loss=lambda name: events.append(("lost", name)),
            on_health=lambda error: events.append(("health", error and "down")),
        )
        cut.tick()
        assert cut.held() == set(SOURCES) and cut.error is None
        server.stop()
        cut.tick()
        assert cut.error is not None and ("health", "down") in events
        tick_until(cut, lambda: not held(cut), "the leases to lapse")
        assert not any(cut.holds(n) for n in SOURCES)
        assert sorted(name for kind, name in events if kind == "lost") == sorted(SOURCES)
        with pytest.raises(LeaseLost):
            cut.fence("a")
        server.start()
        tick_until(cut, lambda: held(cut) == set(SOURCES), "the leases back", timeout=20)
        assert cut.error is None and ("health", None) in events
    finally:
        server.remove()


def _batch(checkpoint: int) -> Batch:
    batch = Batch()
    batch.checkpoint = {"c": checkpoint}
    return batch
