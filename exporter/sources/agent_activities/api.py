"""agent_activities' wire format: GET /api/agents/{uid}/activities[/{run_uid}],
its envelopes, its status values, and the records of a run's detail parsed
into typed values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeGuard

from exporter.model import Batch, Rejected, RunStatus
from exporter.sources.base import Fields, count, envelope, rejected
from exporter.sources.http import BadRecordError, BadResponseError

PLATFORM: Final = "agent_activities"
LIST_PATH: Final = "/api/agents/{agent}/activities"
DETAIL_PATH: Final = "/api/agents/{agent}/activities/{run}"
DETAIL_FIELDS: Final = "trigger_payload,result,error,token_usage"

# Where the vendor's pages are silent, the readings this source follows, in one
# place (docs/platforms.md lists them): the status values, their normalised form.
RUN_STATUSES: Mapping[str, RunStatus] = {
    "pending": RunStatus.RUNNING,
    "running": RunStatus.RUNNING,
    "completed": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "stopped": RunStatus.CANCELLED,  # there is no timed-out state
}
TOOL_EVENT: Final = "tool_called"  # a timeline entry with `tool` is a tool call
FAILED_EVENT: Final = "run_failed"
# The bounded `status` label of a timeline event: its name's last word, when known.
EVENT_STATUSES: Final = frozenset(
    {"defined", "started", "completed", "failed", "cancelled", "stopped", "called", "created", "updated"}
)
ERROR_OUTPUT_STATUSES: Final = frozenset({"error", "failed", "failure"})
# Listing attributes kept as span attributes (ids, not content).
EXTRA_ATTRIBUTES: Final = ("agent_version_uid", "workflow_id", "approach", "scratchpad_uid")


def run_status(raw: str) -> RunStatus:
    return RUN_STATUSES.get(raw.lower(), RunStatus.UNKNOWN)


# -- listings -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listed:
    """One item of a run listing, validated; `data` is its JSON form, kept in
    an open run's working state."""

    run_id: str
    status: RunStatus
    completed_on: datetime | None
    data: dict[str, object]

    @property
    def ended(self) -> datetime | None:
        """When the run finished; None while it is shown unfinished."""
        return self.completed_on if self.status is not RunStatus.RUNNING else None

    @property
    def finished(self) -> bool:
        return self.ended is not None


def parse_listed(source: str, item: object) -> Listed:
    """One `agent-runs` resource -> Listed; raises BadRecordError."""
    f = Fields(source, item)
    run_id = f.str("id")
    attrs = Fields(source, f.obj.get("attributes"), run_id)
    raw_status = attrs.opt_str("status") or "unknown"
    created = attrs.opt_time("created_on")
    started = attrs.opt_time("started_on")
    completed = attrs.opt_time("completed_on")
    if started is None and created is None:
        raise BadRecordError(source, "missing_field", run_id, "started_on")
    data: dict[str, object] = {
        "status": raw_status,
        "created_on": created.isoformat() if created else None,
        "started_on": started.isoformat() if started else None,
        "completed_on": completed.isoformat() if completed else None,
        "sandbox": attrs.opt_bool("sandbox"),
        "trigger_type": attrs.opt_str("trigger_type"),
    }
    for key in EXTRA_ATTRIBUTES:
        data[key] = attrs.opt_str(key)
    if "token_usage" in attrs.obj:  # only when asked for with fields[agent-runs]
        data["token_usage"] = attrs.obj["token_usage"]
    return Listed(run_id=run_id, status=run_status(raw_status), completed_on=completed, data=data)


@dataclass(frozen=True, slots=True)
class Page:
    """One listing page. The server's page size is trusted, never the one
    asked for."""

    items: object
    page: int  # _meta.page (the page asked for, when it is left out)
    per_page: int  # _meta.per_page (0 when it is left out)
    total_pages: int


def parse_page(source: str, body: object, asked_page: int) -> Page:
    items = envelope(source, body, "data", "items")
    meta = envelope(source, body, "data", "_meta")
    if not isinstance(meta, dict):
        raise BadResponseError(source, "response 'data._meta' is not an object")
    per_page = _meta_int(meta, "per_page", 0)
    total_pages = meta.get("total_pages")
    if not is_count(total_pages):
        total_items = meta.get("total_items")
        if not is_count(total_items) or per_page <= 0:
            raise BadResponseError(source, "response '_meta' gives neither total_pages nor total_items/per_page")
        total_pages = math.ceil(total_items / per_page)
    return Page(items, _meta_int(meta, "page", asked_page), per_page, total_pages)


def listing_total(source: str, body: object) -> int | None:
    """`_meta.total_items` of a listing (the probe's answer), when given."""
    envelope(source, body, "data", "items")
    meta = envelope(source, body, "data", "_meta")
    total = meta.get("total_items") if isinstance(meta, dict) else None
    return total if isinstance(total, int) else None


def nonempty(items: object) -> bool:
    return isinstance(items, list) and bool(items)


# -- run detail -------------------------------------------------------------------


def detail_attributes(source: str, body: object) -> dict[str, object]:
    attributes = envelope(source, body, "data", "attributes")
    if not isinstance(attributes, dict):
        raise BadResponseError(source, "response 'data.attributes' is not an object")
    return attributes


def detail_behind(attributes: Mapping[str, object]) -> bool:
    """A detail showing its run unfinished (pending/running, or completed_on
    null) while it has ended: an earlier state, never exported. Fields the
    detail leaves out contradict nothing."""
    status = attributes.get("status")
    if isinstance(status, str) and run_status(status) is RunStatus.RUNNING:
        return True
    return "completed_on" in attributes and attributes["completed_on"] is None


@dataclass(slots=True)
class StepRec:
    """One `result.step_history` entry."""

    key: str
    action: str
    input: object
    output: object


@dataclass(slots=True)
class Entry:
    """One `result.timeline` entry."""

    index: int
    event: str
    at: datetime
    tool: str | None
    detail: str | None = None  # the entry's human text; not required, never a reason to reject it


def parse_steps(source: str, run_id: str, value: object, rejects: list[Rejected], batch: Batch | None) -> list[StepRec]:
    if value is None:
        return []
    if not isinstance(value, list):
        rejects.append(Rejected(reason="bad_type", record_id=run_id, detail="step_history is not a list"))
        return []
    steps: list[StepRec] = []
    keys: set[str] = set()
    for i, item in enumerate(value):
        if batch is not None:
            count(batch, "step")
        try:
            f = Fields(source, item, f"{run_id}:step:{i}")
            number = f.opt_int("step")
            action = f.opt_str("action") or "unknown"
        except BadRecordError as err:
            rejects.append(rejected(err))
            continue
        # The platform's step number is the closest thing to an id it gives.
        key = str(number) if number is not None else f"at-{i}"
        if key in keys:  # a repeated step number: keep span keys unique
            key = f"{key}-at-{i}"
        keys.add(key)
        steps.append(StepRec(key=key, action=action, input=f.obj.get("input"), output=f.obj.get("output")))
    return steps


def parse_timeline(
    source: str, run_id: str, value: object, rejects: list[Rejected], batch: Batch | None
) -> list[Entry]:
    if value is None:
        return []
    if not isinstance(value, list):
        rejects.append(Rejected(reason="bad_type", record_id=run_id, detail="timeline is not a list"))
        return []
    entries: list[Entry] = []
    for i, item in enumerate(value):
        if batch is not None:
            count(batch, "timeline_entry")
        try:
            f = Fields(source, item, f"{run_id}:timeline:{i}")
            detail = item.get("detail") if isinstance(item, dict) else None
            entries.append(
                Entry(
                    index=i,
                    event=f.str("event"),
                    at=f.time("at"),
                    tool=f.opt_str("tool"),
                    detail=detail if isinstance(detail, str) else None,
                )
            )
        except BadRecordError as err:
            rejects.append(rejected(err))
    entries.sort(key=lambda e: e.at)  # stable: equal times keep the platform's order
    return entries


def output_error(output: object) -> str | None:
    """The error text when a step's output is plainly an error object
    (`{"error": ...}`, `{"status": "error"|"failed"}`, `{"is_error": true}`),
    else None ("" when it is an error without a message)."""
    if not isinstance(output, dict):
        return None
    err = output.get("error")
    if err not in (None, False, "", {}):
        if isinstance(err, str):
            return err
        message = err.get("message") if isinstance(err, dict) else None
        return message if isinstance(message, str) else ""
    status = output.get("status")
    if (isinstance(status, str) and status.lower() in ERROR_OUTPUT_STATUSES) or output.get("is_error") is True:
        message = output.get("message")
        return message if isinstance(message, str) else ""
    return None


def event_status(event: str) -> str:
    word = event.rsplit("_", 1)[-1].lower()
    return word if word in EVENT_STATUSES else "unknown"


def token_usage(value: object, run_id: str, rejects: list[Rejected]) -> tuple[int | None, int | None, int | None]:
    """`{input_tokens, output_tokens, total_tokens}` (keys optional) or one
    integer, the total: the vendor leaves the shape undocumented, so both are
    accepted. A bad value drops the tokens, not the run."""
    if value is None:
        return None, None, None
    if is_count(value):
        return None, None, value
    if isinstance(value, dict):
        counts: list[int | None] = []
        for names in (
            ("input_tokens", "prompt_tokens"),
            ("output_tokens", "completion_tokens"),
            ("total_tokens", "total"),
        ):
            found = next((value[n] for n in names if value.get(n) is not None), None)
            if found is None:
                counts.append(None)
            elif is_count(found):
                counts.append(found)
            else:
                break
        else:
            return counts[0], counts[1], counts[2]
    rejects.append(Rejected(reason="bad_value", record_id=run_id, detail="token_usage"))
    return None, None, None


def error(value: object) -> tuple[str | None, str | None]:
    """(error type, message) from `error`: a string or an object with message."""
    if value is None or value == "" or value is False:
        return None, None
    if isinstance(value, str):
        return None, value
    if isinstance(value, dict):
        kind = next((found for k in ("type", "code") if isinstance(found := value.get(k), str)), None)
        message = value.get("message")
        return kind, message if isinstance(message, str) else content(value)
    return None, content(value)


def content(value: object) -> str:
    """A wire value as span text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# -- small helpers ------------------------------------------------------------------


def is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _meta_int(meta: dict[str, object], key: str, default: int) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
