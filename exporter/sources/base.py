"""What a source is, and the helpers every source shares: reading its state,
following cursors without looping, and parsing fields of untrusted JSON."""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import ClassVar, Protocol, TypeVar

import httpx

from exporter.config import SourceConfig
from exporter.model import Batch, OpenRun, Rejected, Run, parse_time
from exporter.sources.concurrency import Gate, Workers
from exporter.sources.http import ApiClient, BadRecordError, BadResponseError, CursorLoopError, RequestStats

T = TypeVar("T")


class StateView(Protocol):
    """Read access to the committed state of one source. Reads always see
    every batch committed so far, including earlier batches of this poll."""

    def open_run(self, run_id: str) -> OpenRun | None: ...

    def open_runs(self) -> Iterator[OpenRun]: ...

    def finished_open_runs(self, limit: int) -> list[OpenRun]: ...

    def is_seen(self, key: str) -> bool: ...

    def seen_among(self, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` that is stored (one query for a page's keys)."""
        ...

    def open_runs_among(self, run_ids: Iterable[str]) -> dict[str, OpenRun]:
        """The open runs with these ids, by id (absent ids are not open),
        without their items."""
        ...

    def open_items_among(self, run_ids: Iterable[str]) -> dict[str, tuple[object, ...]]:
        """The stored items of these open runs, by id, in appended order
        (runs with none are absent)."""
        ...


@dataclass(frozen=True, slots=True)
class PollContext:
    checkpoint: Mapping[str, object]  # last committed; empty on the first poll
    now: datetime  # one clock reading per poll, passed in so sources stay testable
    state: StateView


class Source(Protocol):
    """One platform reader. `poll` yields batches; the scheduler commits each
    one (records, open-run changes and checkpoint) in one transaction before
    asking for the next, so a failure mid-poll keeps what was committed."""

    name: str
    platform: str
    base_url: str
    stats: RequestStats
    gate: Gate  # every request of the source passes it (concurrency, 429 pause, budgets)

    def poll(self, ctx: PollContext) -> Iterator[Batch]: ...

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        """The open run as an incomplete Run, given up on after max_open_age."""
        ...

    def probe(self) -> str:
        """One authenticated request; a one-line description of the result.
        Raises SourceError on failure (check-config --connect)."""
        ...

    def close(self) -> None: ...


class PlatformSource:
    """What every platform source has: its identity, where its history
    starts, and its one HTTP client. A reader reads its own options in
    `configure` and, when its credential is not a bearer token, says how it
    is sent in `auth`."""

    PLATFORM: ClassVar[builtins.str]

    def __init__(
        self,
        config: SourceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.name = config.name
        self.platform = self.PLATFORM
        self.base_url = config.base_url
        self.start_from = timedelta(seconds=config.start_from)  # how far back the first poll reads
        self.configure(config)
        self._client = ApiClient.for_source(config, self.auth(config), transport=transport, stop=stop)
        self.stats = self._client.stats
        self.gate = self._client.gate
        # Threads for requests that do not depend on each other (map_ordered).
        self.workers = Workers(config.concurrency, config.name)

    def configure(self, config: SourceConfig) -> None:
        """Take the platform's options (`<Type>Options.of(config.options)`)."""

    def auth(self, config: SourceConfig) -> Mapping[builtins.str, builtins.str]:
        """The headers that carry the credential."""
        return {"Authorization": f"Bearer {config.secret or ''}"}

    def close(self) -> None:
        self.workers.close()
        self._client.close()


class CursorGuard:
    """Ends a pagination loop whose platform hands back a cursor (or page
    number) twice, or the very same page of items MAX_SAME_PAGES times in a
    row (a page repeated once is survivable: de-duplication absorbs it)."""

    MAX_SAME_PAGES = 3

    def __init__(self, source: str) -> None:
        self._source = source
        self._seen: set[str] = set()
        self._last_page: int | None = None
        self._same = 0

    def check(self, cursor: str) -> None:
        if cursor in self._seen:
            raise CursorLoopError(self._source, "the platform returned a cursor already followed in this poll")
        self._seen.add(cursor)

    def check_page(self, items: object) -> None:
        if not items:
            return
        fingerprint = hash(json.dumps(items, sort_keys=True, default=str))
        self._same = self._same + 1 if fingerprint == self._last_page else 1
        self._last_page = fingerprint
        if self._same >= self.MAX_SAME_PAGES:
            raise CursorLoopError(self._source, f"the platform returned the same page {self._same} times in a row")


class Fields:
    """Typed access to one untrusted JSON object; every failure is a
    BadRecordError with a bounded reason, naming the record."""

    def __init__(self, source: builtins.str, obj: object, record_id: builtins.str | None = None) -> None:
        if not isinstance(obj, dict):
            raise BadRecordError(source, "bad_type", record_id or "?", "not an object")
        self.source = source
        self.obj: dict[builtins.str, object] = obj
        raw_id = obj.get("id")
        self.record_id = record_id or (str(raw_id) if isinstance(raw_id, (str, int)) else "?")

    def _missing(self, key: builtins.str) -> BadRecordError:
        return BadRecordError(self.source, "missing_field", self.record_id, key)

    def _bad(self, key: builtins.str, reason: builtins.str = "bad_type") -> BadRecordError:
        return BadRecordError(self.source, reason, self.record_id, key)

    def str(self, key: builtins.str) -> builtins.str:
        value = self.obj.get(key)
        if value is None or value == "":
            raise self._missing(key)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise self._bad(key)
        return str(value)

    def opt_str(self, key: builtins.str) -> builtins.str | None:
        value = self.obj.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise self._bad(key)

    def opt_strs(self, keys: tuple[builtins.str, ...]) -> list[builtins.str | None]:
        """opt_str of each key (the usual case, a string, without a call each)."""
        obj = self.obj
        out: list[builtins.str | None] = []
        for key in keys:
            value = obj.get(key)
            out.append(value if (value.__class__ is builtins.str and value) or value is None else self.opt_str(key))
        return out

    def time(self, key: builtins.str) -> datetime:
        value = self.obj.get(key)
        if value is None:
            raise self._missing(key)
        try:
            return parse_time(value)
        except ValueError:
            raise self._bad(key, "bad_timestamp") from None

    def opt_time(self, key: builtins.str) -> datetime | None:
        return None if self.obj.get(key) is None else self.time(key)

    def opt_int(self, key: builtins.str) -> int | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise self._bad(key)
        return int(value)

    def opt_bool(self, key: builtins.str) -> bool | None:
        value = self.obj.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self._bad(key)

    def opt_decimal(self, key: builtins.str) -> Decimal | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self._bad(key)
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise self._bad(key, "bad_value") from None
        if not result.is_finite() or result < 0:
            raise self._bad(key, "bad_value")
        return result

    def opt_obj(self, key: builtins.str) -> dict[builtins.str, object] | None:
        value = self.obj.get(key)
        if value is None or isinstance(value, dict):
            return value
        raise self._bad(key)

    def opt_list(self, key: builtins.str) -> list[object]:
        value = self.obj.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        raise self._bad(key)


def envelope(source: str, body: object, *path: str) -> object:
    """Walk the documented envelope of a response; a missing level means the
    response is not what the platform documents (BadResponseError)."""
    node = body
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise BadResponseError(source, f"response has no '{'.'.join(path)}'")
        node = node[key]
    return node


def run_key(run_id: str) -> str:
    """The dedup key of an exported run: a run with this key stored is never
    exported again."""
    return f"run:{run_id}"


def export_run(batch: Batch, run: Run, at: datetime) -> None:
    """Add a finished run to the batch with its dedup key, kept for `at`
    (the time that the reader's listing window is judged by)."""
    batch.runs.append(run)
    batch.seen_add[run_key(run.run_id)] = at.timestamp()


GROUP_CHANGES = 50  # runs finished, opened or changed per grouped commit


def grouped(batches: Iterable[Batch], changes: int = GROUP_CHANGES) -> Iterator[Batch]:
    """Consecutive batches committed together, up to about `changes` run
    changes each: a transaction per run made one-run-at-a-time sources spend
    more on SQLite commits than on reading. Only for batches the source does
    not need to read back before the next one (each about other runs, or the
    source carries the run's state itself): StateView reads see committed
    batches only."""
    pending: Batch | None = None
    for batch in batches:
        if pending is None:
            pending = batch
        else:
            pending.absorb(batch)
        size = len(pending.runs) + len(pending.open_upserts) + len(pending.open_deletes)
        if size >= changes or pending.seen_prune_before is not None:
            yield pending
            pending = None
    if pending is not None:
        yield pending


def rejected(err: BadRecordError) -> Rejected:
    """A record that does not parse, as the batch reports it (counted and logged)."""
    return Rejected(reason=err.reason, record_id=err.record_id, detail=err.message)


def count(batch: Batch, kind: str) -> None:
    """One more record of `kind` read (agent_exporter_records_total)."""
    batch.records[kind] = batch.records.get(kind, 0) + 1


def parse_each(source: str, items: object, parse: Callable[[object], T], batch: Batch, kind: str) -> Iterator[T]:
    """Parse a page's items, rejecting (counting and skipping) the bad ones."""
    if not isinstance(items, list):
        raise BadResponseError(source, "page items are not a list")
    for item in items:
        count(batch, kind)
        try:
            yield parse(item)
        except BadRecordError as err:
            batch.rejected.append(rejected(err))
