"""Normalised records: what every source produces and every converter consumes.

Nothing here knows which platform a record came from except through its fields.
Times are timezone-aware UTC datetimes; collections are tuples; the platform's
raw status is kept beside the normalised one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)

AttrValue = str | bool | int | float
Attributes = tuple[tuple[str, AttrValue], ...]


class RunStatus(StrEnum):
    """Normalised run status: what the `status` label of the run metrics and the
    span status are derived from, whatever the platform called it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INCOMPLETE = "incomplete"  # given up on after runs.max_open_age
    UNKNOWN = "unknown"  # a status value no mapping knows

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


class ToolStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    UNKNOWN = "unknown"


def parse_enum(enum: type[E], value: object, default: E) -> E:
    """Map a platform value onto an enum; anything unrecognised becomes `default`."""
    if isinstance(value, str):
        # The enum's own value map: a dict lookup (calling enum(...) costs ~10x, per record).
        member = enum._value2member_map_.get(value.lower())
        if member is not None:
            return member  # type: ignore[return-value]
    return default


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityEvent:
    """A point-in-time item: a span event on its run, one count in
    agent_activity_events_total, and (with logs on) one log record."""

    id: str
    name: str
    time: datetime
    category: str = "unknown"
    severity: Severity = Severity.UNKNOWN
    status: str = "unknown"
    attributes: Attributes = ()
    # The top-level run the item belongs to (its log record carries that
    # run's trace); None for an item outside any run.
    run_id: str | None = None
    message: str | None = None  # the platform's human title or message, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    id: str
    name: str
    started_at: datetime
    ended_at: datetime | None
    status: ToolStatus
    raw_status: str | None = None
    error_message: str | None = None
    input: str | None = None  # content: exported only with capture_content
    output: str | None = None
    attributes: Attributes = ()
    events: tuple[ActivityEvent, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """A step that is not a tool call. With both times it becomes a child
    span; without them, a span event on the run."""

    key: str  # unique within the run, from platform ids, never list positions alone
    name: str
    started_at: datetime | None
    ended_at: datetime | None
    status: ToolStatus = ToolStatus.UNKNOWN
    input: str | None = None
    output: str | None = None
    attributes: Attributes = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One agent run (or sub-agent run) as the platform reported it."""

    source: str
    platform: str
    base_url: str
    run_id: str
    agent_id: str
    agent_name: str
    status: RunStatus
    raw_status: str
    started_at: datetime
    ended_at: datetime | None
    # Sub-agent runs: the id of the top-level run whose trace holds them, and
    # the id of the run that spawned them. None for a top-level run.
    root_run_id: str | None = None
    parent_run_id: str | None = None
    conversation_id: str | None = None
    trigger_type: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    finish_reasons: tuple[str, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: Decimal | None = None
    iterations: int | None = None
    sandbox: bool | None = None
    input: str | None = None  # content: exported only with capture_content
    output: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    steps: tuple[Step, ...] = ()
    events: tuple[ActivityEvent, ...] = ()
    attributes: Attributes = ()  # platform extras, already namespaced agent_activity.*

    @property
    def trace_run_id(self) -> str:
        return self.root_run_id or self.run_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """A record that could not be parsed: counted, logged, skipped."""

    reason: str  # bounded: missing_field | bad_type | bad_timestamp | bad_value | ...
    record_id: str
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class Batch:
    """What one step of a poll hands to the scheduler, committed in one
    transaction: finished runs, events to count, open-run changes, rejects,
    and the checkpoint that is true once all of it is stored."""

    runs: list[Run] = field(default_factory=list)
    # Every activity item read for the first time, counted once in
    # agent_activity_events_total when read (run.events are for spans only).
    events: list[ActivityEvent] = field(default_factory=list)
    open_upserts: dict[str, OpenRun] = field(default_factory=dict)
    open_deletes: set[str] = field(default_factory=set)
    seen_add: dict[str, float] = field(default_factory=dict)  # dedup key -> epoch seconds
    seen_prune_before: float | None = None  # forget dedup keys older than this
    rejected: list[Rejected] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)  # kind -> count read
    checkpoint: dict[str, object] | None = None  # None: unchanged
    # Everything the platform holds up to this time has been read: the data
    # lag is measured from here, so an idle source shows no lag.
    caught_up_to: datetime | None = None
    # While a source is behind: how far its history is read by this batch
    # (what the backfill progress is measured by), when the reader knows
    # better than `caught_up_to`, which only moves once a whole range is read.
    read_to: datetime | None = None

    def absorb(self, later: Batch) -> None:
        """Add a later batch to this one, so both commit as one transaction
        with the same result as committing them in order. (Pruning runs after
        the inserts of a transaction: a batch that prunes must be the last
        one absorbed; `sources.base.grouped` sees to it.)"""
        self.runs += later.runs
        self.events += later.events
        for run_id in later.open_deletes:
            self.open_upserts.pop(run_id, None)
        self.open_deletes -= later.open_upserts.keys()
        self.open_deletes |= later.open_deletes
        for run_id, upsert in later.open_upserts.items():
            earlier = self.open_upserts.get(run_id)
            if earlier is not None and earlier.appended:  # both batches' new items are appended
                upsert = replace(upsert, appended=earlier.appended + upsert.appended)
            self.open_upserts[run_id] = upsert
        for key, at in later.seen_add.items():
            self.seen_add.setdefault(key, at)  # the store keeps a key's first time
        self.rejected += later.rejected
        for kind, n in later.records.items():
            self.records[kind] = self.records.get(kind, 0) + n
        if later.seen_prune_before is not None:
            self.seen_prune_before = later.seen_prune_before
        self.checkpoint = later.checkpoint if later.checkpoint is not None else self.checkpoint
        self.caught_up_to = later.caught_up_to or self.caught_up_to
        self.read_to = later.read_to or self.read_to


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRun:
    """A run not finished yet, persisted between polls. `data` is the source's
    own JSON-serialisable working state; only the source reads it."""

    run_id: str
    agent: str
    opened_at: float  # epoch seconds when first seen
    data: dict[str, object]
    finished: bool = False  # ended at the platform, waiting for the read that completes it
    # A source that gathers a run item by item (runtools events) keeps the
    # items apart from `data`: a commit appends the batch's new ones
    # (`appended`) and never rewrites the earlier ones, so the cost of a
    # commit follows what changed, not how much each open run holds. Reads
    # that build the run (finished, stale, by id) return the stored ones as
    # `items`, in the order they were appended; the cheap per-page lookup
    # (`open_runs_among`) leaves them out.
    items: tuple[object, ...] = ()
    appended: tuple[object, ...] = ()


def utc(dt: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken as UTC."""
    if dt.tzinfo is timezone.utc:
        return dt
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def parse_time(value: object) -> datetime:
    """Parse an ISO 8601 timestamp with any offset and up to nanosecond
    precision (fractions beyond microseconds are truncated). Raises ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    try:  # the common case, fast: 3.11 reads Z, offsets and long fractions (truncated) itself
        return utc(datetime.fromisoformat(value))
    except ValueError:
        pass
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # datetime.fromisoformat accepts at most 6 fractional digits.
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        frac = text[dot + 1 : end][:6]
        text = text[:dot] + ("." + frac if frac else "") + text[end:]
    return utc(datetime.fromisoformat(text))


def format_time(dt: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and Z, the form the platforms use."""
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc(dt).microsecond // 1000:03d}Z"
