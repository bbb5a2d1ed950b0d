"""Several replicas on one PostgreSQL state, as real processes.

Three exporters share the work of reading all four platforms of a faulty
simulator; one of them, chosen at random, is killed with SIGKILL every few
intervals and started again. Every finished run reaches the trace backend
once (an identical re-send allowed), the counters summed over the replicas
equal the truth, no lease tenure (lease, epoch) is ever claimed by two
replicas, and every source the dead replica held is read again within two
intervals of its death. And a replica cut off from PostgreSQL says so, stops
showing the series it can no longer vouch for, and recovers by itself with
nothing lost.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from simulator import Simulator, parse_faults
from testkit.exporter_io import Metrics, free_port, write_config
from testkit.postgres import PostgresServer
from testkit.receiver import OtlpReceiver
from tests.conftest import truth_of, wait_for
from tests.integration.helpers import (
    CHAOS_RUN_SECONDS,
    SOURCE,
    ExporterProcess,
    assert_equal_to_the_truth,
    assert_no_secret,
    chaos_options,
    check_counters,
    exported_runs,
    four_sources,
    summed_metrics,
)

INTERVAL = 2.0  # seconds: each source's interval, so each lease's time to live
REPLICAS = 3
PG_PASSWORD = "pg-pass-4d8e2a91"


def replica_config(tmp_path: Path, sim: Simulator, receiver: OtlpReceiver, url: str, index: int) -> ExporterProcess:
    port = free_port()
    config = write_config(
        tmp_path / f"replica{index}.yaml",
        four_sources(sim, interval=f"{INTERVAL:g}s"),
        port=port,
        traces={"endpoint": receiver.endpoint},
        state={"url": url},
    )
    return ExporterProcess(config, port, tmp_path / f"replica{index}.log")


def tenures(replicas: list[ExporterProcess]) -> dict[tuple[str, int], list[str]]:
    """(lease, epoch) -> the replicas that say they hold it now."""
    out: dict[tuple[str, int], list[str]] = {}
    for replica in replicas:
        held = replica.status()["replicas"]
        for name, epoch in held["held"].items():
            out.setdefault((name, int(epoch)), []).append(held["replica"])
    return out


def lease_rows(url: str) -> dict[str, tuple[str, int]]:
    with psycopg.connect(url) as db:
        rows: list[tuple[str, str, int]] = db.execute("SELECT name, holder, epoch FROM leases").fetchall()
    return {name: (holder, epoch) for name, holder, epoch in rows}


def read_since(replicas: list[ExporterProcess], source: str, since: float) -> float | None:
    """When a live replica holding `source` started a poll of it after `since`
    (epoch seconds): the running poll's start, or the last one's."""
    for replica in replicas:
        entry = replica.status()["sources"][source]
        for started in (entry["polling_since"], entry["last_poll_at"]):
            if entry["lease_held"] and started and datetime.fromisoformat(started).timestamp() >= since:
                return datetime.fromisoformat(started).timestamp()
    return None


def test_three_replicas_one_killed_again_and_again_end_equal_to_the_truth(
    tmp_path: Path, postgres_url: str, receiver: OtlpReceiver
) -> None:
    rng = random.Random(20261206)
    sim = Simulator(chaos_options())
    sim.start(host="127.0.0.1", port=0)
    # The test server trusts local connections, so any password does; it must never be shown.
    url = postgres_url.replace("postgres@", f"postgres:{PG_PASSWORD}@")
    replicas = [replica_config(tmp_path, sim, receiver, url, i) for i in range(REPLICAS)]
    outputs: list[str] = []
    takeovers: list[float] = []
    kills: list[str] = []
    try:
        for replica in replicas:
            replica.start()
        wait_for(lambda: len(lease_rows(postgres_url)) == len(SOURCE), timeout=20, what="every source leased")
        for _ in range(4):
            time.sleep(rng.uniform(1.5, 3.0))  # let them work; then kill one at some moment
            double = {t: who for t, who in tenures(replicas).items() if len(who) > 1}
            assert not double, f"a lease tenure claimed by two replicas: {double}"
            # A replica holding leases (one that just restarted may hold none yet): its death must be covered.
            victim = rng.choice([r for r in replicas if r.status()["replicas"]["held"]])
            status: Any = victim.status()
            outputs += [httpx.get(f"{victim.url}/metrics", timeout=5).text, str(status)]
            held = [
                name
                for name, (holder, _) in lease_rows(postgres_url).items()
                if holder == status["replicas"]["replica"]
            ]
            killed_at = time.time()
            kills.append(
                f"{datetime.fromtimestamp(killed_at).isoformat()} killed {status['replicas']['replica']} {held}"
            )
            assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
            others = [r for r in replicas if r is not victim]
            for name in held:

                def read_again(
                    name: str = name, others: list[ExporterProcess] = others, killed_at: float = killed_at
                ) -> float | None:
                    return read_since(others, name, killed_at)

                at = wait_for(read_again, timeout=6 * INTERVAL, interval=0.1, what=f"{name}: read again elsewhere")
                assert at is not None  # wait_for returns a truthy value
                takeovers.append(at - killed_at)
            victim.start()
        sim.pause()
        time.sleep(CHAOS_RUN_SECONDS[1] + 0.5)  # every started run has now ended
        truth = {p: truth_of(sim)["platforms"][p] for p in SOURCE}
        assert_equal_to_the_truth(replicas, receiver, truth)
        double = {t: who for t, who in tenures(replicas).items() if len(who) > 1}
        assert not double, f"a lease tenure claimed by two replicas: {double}"
        held_by = [len(r.status()["replicas"]["held"]) for r in replicas]
        assert sum(held_by) == len(SOURCE) and max(held_by) <= 2, f"leases not spread evenly: {held_by}"
        outputs += [httpx.get(f"{r.url}/metrics", timeout=5).text + str(r.status()) for r in replicas]
    finally:
        for replica in replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.stop()
        sim.stop()
    assert len(takeovers) >= 4, "every round killed a replica holding at least one lease"
    leases_log = "\n".join(line for r in replicas for line in r.log.read_text().splitlines() if "lease" in line)
    assert max(takeovers) <= 2 * INTERVAL, (
        f"a source waited longer than two intervals after its holder died: {takeovers}\n{kills}\n{leases_log}"
    )
    everything = "".join(outputs) + "".join(r.log.read_text() for r in replicas)
    assert_no_secret(everything)
    assert PG_PASSWORD not in everything and "postgres:***@" in everything  # the URL is named, its password hidden


def test_two_replicas_share_the_shards_of_per_agent_platforms(
    tmp_path: Path, postgres_url: str, receiver: OtlpReceiver
) -> None:
    """aa and ry as two shards each: six leases, three per replica; every
    run exported once and the counters, folded over the shards (as
    label_replace would) and summed over the replicas, equal the truth."""
    sim = Simulator(chaos_options(faults=parse_faults(""), agents_per_platform=4))
    sim.start(host="127.0.0.1", port=0)
    replicas = []
    for index in range(2):
        port = free_port()
        sources = [
            {**source, "shards": 2} if source["type"] in ("agent_activities", "runtype") else source
            for source in four_sources(sim, interval=f"{INTERVAL:g}s")
        ]
        config = write_config(
            tmp_path / f"replica{index}.yaml",
            sources,
            port=port,
            traces={"endpoint": receiver.endpoint},
            state={"url": postgres_url},
        )
        replicas.append(ExporterProcess(config, port, tmp_path / f"replica{index}.log"))
    try:
        for replica in replicas:
            replica.start()
        names = {"rt", "bc", "aa#0/2", "aa#1/2", "ry#0/2", "ry#1/2"}
        wait_for(lambda: set(lease_rows(postgres_url)) == names, timeout=20, what="every shard leased")
        sim.pause()
        time.sleep(CHAOS_RUN_SECONDS[1] + 0.5)  # every started run has now ended
        truth = {p: truth_of(sim)["platforms"][p] for p in SOURCE}
        for platform, source in SOURCE.items():
            want = {r["run_id"] for r in truth[platform]["runs"]}

            def exported(source: str = source, want: set[str] = want) -> bool:
                runs = set().union(*(exported_runs(receiver, n) for n in names if n.split("#")[0] == source))
                return runs == want

            wait_for(exported, timeout=60, interval=0.5, what=f"{platform}: every finished run, once")

        def folded() -> Metrics:
            out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for (name, labels), value in summed_metrics(replicas).items():
                key = (name, tuple((k, v.split("#")[0] if k == "source" else v) for k, v in labels))
                out[key] = out.get(key, 0.0) + value
            return out

        def counters_equal() -> bool:
            try:
                check_counters(folded(), truth, SOURCE)
            except AssertionError:
                return False
            return True

        wait_for(counters_equal, timeout=30, interval=0.5, what="the folded counters to equal the truth")
        held = [sorted(r.status()["replicas"]["held"]) for r in replicas]
        assert sorted(n for h in held for n in h) == sorted(names) and [len(h) for h in held] == [3, 3], held
        ids = [str(r.status()["replicas"]["replica"]) for r in replicas]
        for replica, mine, theirs in zip(replicas, ids, reversed(ids), strict=True):
            page = httpx.get(f"{replica.url}/status", headers={"Accept": "text/html"}, timeout=5).text
            assert f"this replica: {mine}; database: ok" in page
            assert page.count('<span class="badge up">this replica</span>') == 3  # its three leases, marked
            assert page.count(f"<td>{theirs}</td>") == 3  # the other's three, named
            assert page.count("another replica holds its lease") == 3  # and its sources say where they are read
    finally:
        for replica in replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.stop()
        sim.stop()


def test_a_replica_cut_off_from_postgresql_says_so_and_recovers_with_nothing_lost(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    server = PostgresServer().start()  # its own server: this test stops it
    sim = Simulator(chaos_options(faults=parse_faults("")))  # the outage is the fault here
    sim.start(host="127.0.0.1", port=0)
    replica = replica_config(tmp_path, sim, receiver, server.create_database(), 0)
    try:
        replica.start()
        wait_for(lambda: "agent_runs_total" in {n for n, _ in replica.metrics()}, timeout=30, what="runs counted")
        server.stop()
        wait_for(
            lambda: httpx.get(f"{replica.url}/readyz", timeout=5).status_code == 503,
            timeout=10,
            what="/readyz to say the database is unreachable",
        )
        assert "state database unreachable" in httpx.get(f"{replica.url}/readyz", timeout=5).text
        page = httpx.get(f"{replica.url}/status", headers={"Accept": "text/html"}, timeout=5).text
        assert 'id="state">state database' in page  # above the sources, which it cannot read now
        wait_for(
            lambda: not any(n == "agent_runs_total" for n, _ in replica.metrics()),
            timeout=4 * INTERVAL,
            what="the series it can no longer vouch for to go",
        )
        assert "state database unreachable: stopped committing" in replica.log.read_text()
        server.start()
        wait_for(
            lambda: httpx.get(f"{replica.url}/readyz", timeout=5).status_code == 200,
            timeout=30,
            what="/readyz to recover",
        )
        sim.pause()
        time.sleep(CHAOS_RUN_SECONDS[1] + 0.5)  # every started run has now ended
        truth = {p: truth_of(sim)["platforms"][p] for p in SOURCE}
        assert_equal_to_the_truth([replica], receiver, truth)
        assert "state database answers again" in replica.log.read_text()
    finally:
        if replica.proc is not None and replica.proc.poll() is None:
            replica.stop()
        sim.stop()
        server.remove()


def test_once_leaves_the_sources_a_running_replica_holds(
    tmp_path: Path, postgres_url: str, receiver: OtlpReceiver
) -> None:
    sim = Simulator(chaos_options(faults=parse_faults("")))
    sim.start(host="127.0.0.1", port=0)
    replica = replica_config(tmp_path, sim, receiver, postgres_url, 0)
    try:
        replica.start()
        wait_for(lambda: len(replica.status()["replicas"]["held"]) == len(SOURCE), timeout=20, what="all leases")
        before = lease_rows(postgres_url)
        once = subprocess.run(
            [sys.executable, "-m", "exporter", "once", "-c", str(replica.config)],
            timeout=120,
            capture_output=True,
            text=True,
        )
        assert once.returncode == 1
        assert once.stderr.count("not polled: another replica holds its lease") == len(SOURCE)
        assert lease_rows(postgres_url) == before  # the running replica kept every lease, at the same epoch
        assert len(replica.status()["replicas"]["held"]) == len(SOURCE)  # and made no room for a passing run
        with psycopg.connect(postgres_url) as db:
            assert db.execute("SELECT count(*) FROM replicas").fetchone() == (1,)
    finally:
        replica.stop()
        sim.stop()
