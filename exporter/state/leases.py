"""Leases in PostgreSQL: which replica reads which source, by the database's
clock (`now()`), so replicas' clocks need not agree.

A lease row names its holder and an epoch that grows by one at every
takeover. A commit carries a `Fence` (lease, holder, epoch) and checks it
in its own transaction, with the row locked: a replica whose lease was
taken over can not commit, even if it does not know yet. Replicas also
keep a heartbeat row, so each can count the live ones and take its share.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from exporter.state.db import Database, Transaction


class LeaseLost(Exception):
    """The commit's lease is no longer this replica's: nothing was written."""

    def __init__(self, name: str) -> None:
        super().__init__(f"lease {name} is no longer held by this replica")
        self.name = name


@dataclass(frozen=True, slots=True)
class Fence:
    """A commit's claim: `holder` holds lease `name` at `epoch`."""

    name: str
    holder: str
    epoch: int

    def check(self, db: Database) -> None:
        """Inside the commit's transaction: the row stays locked until it
        ends, so a takeover waits for the commit or the commit sees it."""
        row = db.execute(
            "SELECT epoch FROM leases WHERE name=? AND holder=? AND epoch=? FOR UPDATE",
            (self.name, self.holder, self.epoch),
        ).fetchone()
        if row is None:
            raise LeaseLost(self.name)


@dataclass(frozen=True, slots=True)
class LeaseRow:
    name: str
    holder: str  # "" when released
    epoch: int
    expires_in: float  # seconds from now, by the database's clock; negative: expired


class LeaseTable:
    """The lease and heartbeat SQL (PostgreSQL), one short transaction per
    call, on a connection of its own: renewals never wait behind a large
    commit on the store's connection."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[Database]:
        with self._lock, Transaction(self._db) as db:  # the keeper's thread and /status share the connection
            yield db

    def heartbeat(self, replica: str, ttl: float) -> int:
        """Say this replica is alive for `ttl` seconds; the live replicas, this one included."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO replicas VALUES(?, now() + make_interval(secs => ?))"
                " ON CONFLICT(id) DO UPDATE SET expires_at=excluded.expires_at",
                (replica, ttl),
            )
            db.execute("DELETE FROM replicas WHERE expires_at < now() - interval '1 hour'")
            return int(db.execute("SELECT count(*) FROM replicas WHERE expires_at > now()").fetchone()[0])

    def leave(self, replica: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM replicas WHERE id=?", (replica,))

    def acquire(self, name: str, replica: str, ttl: float) -> int | None:
        """Take a free, released or expired lease; its new epoch, or None
        when another replica holds it."""
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO leases VALUES(?, ?, 1, now() + make_interval(secs => ?))"
                " ON CONFLICT(name) DO UPDATE SET holder=excluded.holder, epoch=leases.epoch + 1,"
                " expires_at=excluded.expires_at WHERE leases.expires_at < now() OR leases.holder = ''"
                " RETURNING epoch",
                (name, replica, ttl),
            ).fetchone()
        return None if row is None else int(row[0])

    def renew(self, fence: Fence, ttl: float) -> bool:
        """Extend a held lease; False when it was taken over."""
        with self._transaction() as db:
            row = db.execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => ?)"
                " WHERE name=? AND holder=? AND epoch=? RETURNING epoch",
                (ttl, fence.name, fence.holder, fence.epoch),
            ).fetchone()
        return row is not None

    def release(self, fence: Fence) -> None:
        """Give a lease up at once, for another replica to take."""
        with self._transaction() as db:
            db.execute(
                "UPDATE leases SET holder='', expires_at=now() WHERE name=? AND holder=? AND epoch=?",
                (fence.name, fence.holder, fence.epoch),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def rows(self) -> list[LeaseRow]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT name, holder, epoch, extract(epoch FROM expires_at - now()) FROM leases ORDER BY name"
            ).fetchall()
        return [LeaseRow(str(n), str(h), int(e), float(x)) for n, h, e, x in rows]
