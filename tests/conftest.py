"""Shared test helpers: config objects without YAML, a polling wait, and a
throwaway PostgreSQL cluster (one per test run, a fresh database per test)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import pytest

from exporter.config import SourceConfig
from exporter.model import ActivityEvent, Batch, OpenRun, Rejected, Run
from exporter.sources.registry import PLATFORMS
from simulator import Simulator
from testkit.postgres import PostgresServer

T = TypeVar("T")


def source_config(
    type_: str = "runtools",
    base_url: str = "http://platform.test",
    name: str = "feed",
    secret: str = "s3cret-key-value",
    start_from: float = 3600.0,
    *,
    concurrency: int = 1,
    option_map: Mapping[str, object] | None = None,
    **options: object,
) -> SourceConfig:
    """A SourceConfig whose options (its platform's options dataclass, with
    its defaults) are `option_map` with the keyword `options` over it. One
    request at a time unless `concurrency` says otherwise, so unit tests see
    requests in a fixed order. Helpers that gather options in a dict pass it as
    `option_map`: `**` of a dict[str, object] could also fill the named
    parameters, so mypy rejects it."""
    platform = PLATFORMS[type_]
    return SourceConfig(
        name=name,
        type=type_,
        base_url=base_url,
        secret=secret,
        secret_key=platform.secret_key,
        interval=1.0,
        timeout=5.0,
        max_requests_per_minute=None,
        max_requests_per_second=None,
        concurrency=concurrency,
        start_from=start_from,
        headers={},
        enabled=True,
        options=platform.options(**{**(option_map or {}), **options}),
    )


def wait_for(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def truth_of(sim: Simulator) -> Any:
    """The simulator's truth (what it generated, normalised), as JSON the
    assertions index freely: a wrong shape fails the test where it is read."""
    return sim.truth()


def json_of(value: object) -> Any:
    """Decoded JSON held as `object` (a checkpoint, a span's OTLP/JSON
    parts, an API answer), as a value the assertions index freely, like
    truth_of: a wrong shape fails the test where it is read."""
    return value


class NoWait(threading.Event):
    """A stop event for unit tests: retry back-offs and Retry-After waits
    return at once (and are recorded) instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False


class MemoryState:
    """An in-memory StateView that applies yielded batches as the SQLite
    store does (JSON round trips, so nothing shares objects with the source),
    and keeps what they carried for assertions."""

    def __init__(self) -> None:
        self.checkpoint: dict[str, object] = {}
        self.open: dict[str, OpenRun] = {}
        self.seen: dict[str, float] = {}
        self.runs: list[Run] = []
        self.events: list[ActivityEvent] = []
        self.rejected: list[Rejected] = []
        self.records: dict[str, int] = {}
        self.caught_up_to: datetime | None = None

    def open_run(self, run_id: str) -> OpenRun | None:
        return self.open.get(run_id)

    def open_runs(self) -> Iterator[OpenRun]:
        for run_id in sorted(self.open):  # like the store: by id, sees later commits
            if (current := self.open.get(run_id)) is not None:
                yield current

    def finished_open_runs(self, limit: int) -> list[OpenRun]:
        return [o for o in self.open.values() if o.finished][:limit]

    def is_seen(self, key: str) -> bool:
        return key in self.seen

    def seen_among(self, keys: Iterable[str]) -> set[str]:
        return {k for k in keys if k in self.seen}

    def open_runs_among(self, run_ids: Iterable[str]) -> dict[str, OpenRun]:
        return {r: replace(self.open[r], items=()) for r in run_ids if r in self.open}  # as the store: no items

    def open_items_among(self, run_ids: Iterable[str]) -> dict[str, tuple[object, ...]]:
        return {r: self.open[r].items for r in run_ids if r in self.open and self.open[r].items}

    def in_progress(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.open.values():
            if not o.finished:
                counts[o.agent] = counts.get(o.agent, 0) + 1
        return counts

    def apply(self, batch: Batch) -> None:
        for run_id in batch.open_deletes:
            self.open.pop(run_id, None)
        for run_id, o in batch.open_upserts.items():
            if run_id not in batch.open_deletes:
                before = self.open[run_id].items if run_id in self.open else ()
                items = before + tuple(json.loads(json.dumps(o.appended)))  # appended, never rewritten
                self.open[run_id] = replace(o, data=json.loads(json.dumps(o.data)), items=items, appended=())
        for key, at in batch.seen_add.items():
            self.seen.setdefault(key, at)
        if batch.seen_prune_before is not None:
            self.seen = {k: at for k, at in self.seen.items() if at >= batch.seen_prune_before}
        if batch.checkpoint is not None:
            self.checkpoint = json.loads(json.dumps(batch.checkpoint))
        self.runs += batch.runs
        self.events += batch.events
        self.rejected += batch.rejected
        for kind, n in batch.records.items():
            self.records[kind] = self.records.get(kind, 0) + n
        if batch.caught_up_to is not None:
            self.caught_up_to = batch.caught_up_to


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server owned by this test run (never a mock, never
    skipped: scripts/install-postgresql.sh installs it)."""
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database of its own for this test."""
    return postgres_server.create_database()
