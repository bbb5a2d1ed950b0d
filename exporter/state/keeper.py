"""Which sources this replica reads: its leases, kept by a background
thread, or (one process on a state file) all of them.

Replicas on one PostgreSQL database share the work: every tick the keeper
says it is alive, renews what it holds, gives up what is beyond its fair
share (ceil(leases / live replicas)) and takes free or expired leases up to
it. A lease's time to live is its source's interval, and the keeper ticks
four times in the shortest one: a dead replica's sources are taken over
within about 1.25 intervals and polled at once (`on_gain`), well inside
two. A replica cut off from the database keeps nothing past its leases'
time to live: it drops them (`on_loss`), says so (`on_health`), and takes
its share again once the database answers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from exporter.state.db import StateUnavailable
from exporter.state.leases import Fence, LeaseLost, LeaseTable

log = logging.getLogger(__name__)

MIN_TICK, MAX_TICK = 0.2, 5.0  # seconds between the keeper's rounds
CHANGES = ("acquired", "released", "lost")


def replica_id() -> str:
    """Host name, process id and a random suffix: unique even when a
    restarted container reuses both."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leases(Protocol):
    """What the poll and commit paths ask of the leases."""

    replica: str

    def holds(self, name: str) -> bool: ...

    def fence(self, name: str) -> Fence | None:
        """The claim a poll's commits carry (None: no leases); LeaseLost when not held."""
        ...

    def confirm(self, fence: Fence | None) -> None:
        """Under the commit lock: LeaseLost unless the claim is still current."""
        ...

    def held(self) -> Collection[str] | None:
        """The leases held (None: every one)."""
        ...

    def status(self) -> dict[str, object]: ...


class SoleHolder:
    """One exporter on its own state file holds every lease implicitly."""

    replica = "sole"

    def holds(self, name: str) -> bool:
        return True

    def fence(self, name: str) -> Fence | None:
        return None

    def confirm(self, fence: Fence | None) -> None:
        pass

    def held(self) -> Collection[str] | None:
        return None

    def status(self) -> dict[str, object]:
        return {}


@dataclass(frozen=True, slots=True)
class _Held:
    epoch: int
    renewed: float  # monotonic time just before the database last confirmed it


class LeaseKeeper:
    """`ttls`: each lease's time to live (its source's interval).
    `on_gain(name)` runs before the lease counts as held (it loads the
    source's totals; if it fails the lease is given back), `on_held(name)`
    once it counts (the source is polled at once); `on_loss(name)` after it
    stopped counting; `on_change(held, changes)` with the count
    held and the changes so far, by kind; `on_health(error)` when the
    database stops (an error text) or starts (None) answering."""

    def __init__(
        self,
        table: LeaseTable,
        ttls: Mapping[str, float],
        *,
        replica: str | None = None,
        on_gain: Callable[[str], None] = lambda name: None,
        on_held: Callable[[str], None] = lambda name: None,
        on_loss: Callable[[str], None] = lambda name: None,
        on_change: Callable[[int, Mapping[str, int]], None] = lambda held, changes: None,
        on_health: Callable[[str | None], None] = lambda error: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replica = replica or replica_id()
        self._table = table
        self._ttls = dict(ttls)
        self._beat = min(self._ttls.values(), default=MAX_TICK)  # a dead replica leaves the count as fast as its leases
        self.tick_seconds = max(MIN_TICK, min(MAX_TICK, self._beat / 4))
        self._on_gain, self._on_held, self._on_loss = on_gain, on_held, on_loss
        self._on_change, self._on_health = on_change, on_health
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._changes = dict.fromkeys(CHANGES, 0)
        self._error: str | None = None
        self.greedy = False  # `once`: take every free lease once, keep them while it runs, count for no share
        self._took = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leases", daemon=True)

    # -- what the poll and commit paths ask --------------------------------

    def holds(self, name: str) -> bool:
        with self._lock:
            held = self._held.get(name)
        return held is not None and self._clock() - held.renewed < self._ttls[name]

    def fence(self, name: str) -> Fence | None:
        with self._lock:
            held = self._held.get(name)
        if held is None or self._clock() - held.renewed >= self._ttls[name]:
            raise LeaseLost(name)
        return Fence(name, self.replica, held.epoch)

    def confirm(self, fence: Fence | None) -> None:
        if fence is None:
            return
        with self._lock:
            held = self._held.get(fence.name)
        if held is None or held.epoch != fence.epoch:
            raise LeaseLost(fence.name)

    def held(self) -> Collection[str] | None:
        with self._lock:
            return set(self._held)

    @property
    def error(self) -> str | None:
        """Why the database does not answer, while it does not."""
        return self._error

    def status(self) -> dict[str, object]:
        with self._lock:
            held = {name: h.epoch for name, h in sorted(self._held.items())}
        out: dict[str, object] = {"replica": self.replica, "held": held, "database": self._error or "ok"}
        try:
            out["leases"] = {
                r.name: {"holder": r.holder or None, "epoch": r.epoch, "expires_in": round(r.expires_in, 3)}
                for r in self._table.rows()
            }
        except StateUnavailable:
            out["leases"] = None  # the database does not answer: only what this replica holds is known
        return out

    # -- the keeper's rounds -------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the rounds and hand every lease back at once (a clean stop
        needs no expiry for another replica to take over)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            for name in list(self._held):
                self._table.release(Fence(name, self.replica, self._held[name].epoch))
                self._drop(name, "released")
            self._table.leave(self.replica)
        except StateUnavailable:
            pass  # they expire by themselves
        finally:
            self._table.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug must not end the rounds: what is held lapses only if they stop
                log.exception("lease round failed unexpectedly")
            self._stop.wait(self.tick_seconds)

    def tick(self) -> None:
        """One round."""
        started = self._clock()
        try:
            if self.greedy:
                self._once(started)
            else:
                live = self._table.heartbeat(self.replica, self._beat)
                self._renew(started)
                share = math.ceil(len(self._ttls) / max(1, live))
                self._give_up_beyond(share)
                self._take_up_to(share, started)
        except StateUnavailable as err:
            self._health(str(err))
            for name, held in list(self._held.items()):
                if started - held.renewed >= self._ttls[name]:
                    log.warning("lease %s lapsed (database unreachable): its series are no longer shown", name)
                    self._drop(name, "lost")
            return
        self._health(None)

    def _once(self, started: float) -> None:
        """`once`: every free lease in the first round, then only renewals.
        No heartbeat: a passing run is not a replica the others make room for."""
        self._renew(started)
        if not self._took:
            self._took = True
            self._take_up_to(len(self._ttls), started)

    def _renew(self, started: float) -> None:
        for name, held in list(self._held.items()):
            if self._table.renew(Fence(name, self.replica, held.epoch), self._ttls[name]):
                with self._lock:
                    self._held[name] = _Held(held.epoch, started)
            else:
                log.warning("lease %s was taken over by another replica", name)
                self._drop(name, "lost")

    def _give_up_beyond(self, share: int) -> None:
        """Hand back what is beyond the share (a replica joined): the
        leases last in this replica's order, so the choice is stable."""
        for name in self._order(self._held)[share:]:
            self._table.release(Fence(name, self.replica, self._held[name].epoch))
            log.info("lease %s handed back: more replicas share the work", name)
            self._drop(name, "released")

    def _take_up_to(self, share: int, started: float) -> None:
        for name in self._order(n for n in self._ttls if n not in self._held):
            if len(self._held) >= share:
                return
            epoch = self._table.acquire(name, self.replica, self._ttls[name])
            if epoch is None:
                continue
            try:
                self._on_gain(name)
            except StateUnavailable:
                self._table.release(Fence(name, self.replica, epoch))
                raise
            with self._lock:
                self._held[name] = _Held(epoch, started)
            self._count("acquired")
            log.info("lease %s acquired (epoch %d)", name, epoch)
            self._on_held(name)

    def _order(self, names: Iterable[str]) -> list[str]:
        """Leases in an order of this replica's own (a hash of its id and
        the name): replicas reach for different leases first."""
        return sorted(names, key=lambda n: hashlib.sha256(f"{self.replica}/{n}".encode()).digest())

    def _drop(self, name: str, change: str) -> None:
        with self._lock:
            if self._held.pop(name, None) is None:
                return
        self._count(change)
        self._on_loss(name)

    def _count(self, change: str) -> None:
        self._changes[change] += 1
        self._on_change(len(self._held), dict(self._changes))

    def _health(self, error: str | None) -> None:
        if error == self._error:
            return
        if error is None:
            log.info("state database answers again: taking leases again")
        elif self._error is None:
            log.error(
                "state database unreachable: stopped committing; leases lapse after their time to live: %s", error
            )
        self._error = error
        self._on_health(error)


__all__ = ["Fence", "LeaseKeeper", "LeaseLost", "Leases", "SoleHolder", "replica_id"]
