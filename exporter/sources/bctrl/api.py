"""bctrl's wire format: runs, their activity, and the values they take.

`GET /v1/runs` answers {"data": [run...], "nextCursor"} newest first (no
bctrl page documents it: an assumed listing); `GET /v1/runs/{id}/activity`
answers {"items": [item...], "nextCursor"} oldest first. A null (or empty)
`nextCursor` means "nothing more yet". Items are parsed here into the
compact item held in open-run data (a JSON list, laid out by the I_*
indexes), listed runs into the listing info held beside them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from exporter.model import RunStatus, Severity, ToolStatus, parse_enum
from exporter.sources.base import Fields, envelope
from exporter.sources.http import BadResponseError

PLATFORM: Final = "bctrl"
RUNS_PATH: Final = "/v1/runs"
ACTIVITY_PATH: Final = "/v1/runs/{id}/activity"

# -- Where the vendor's page is silent: the readings this source follows ----
# The documented enums of an activity item; anything else counts as "unknown".
# In the documented order (config messages list them so).
CATEGORIES: Final = (
    "action",
    "agent",
    "browser",
    "network",
    "console",
    "captcha",
    "storage",
    "artifact",
    "recording",
    "system",
)
LEVELS: Final = ("summary", "debug")
RUNTIME_KINDS: Final = frozenset({"browser", "desktop", "spreadsheet"})
ITEM_STATUSES: Final = frozenset({"pending", "running", "succeeded", "failed", "cancelled", "timed_out"})
NO_STATUS: Final = "none"  # ActivityEvent.status of an item without `status`
# A run's own start and end are items of this category (Decisions, bctrl).
SYSTEM_CATEGORY: Final = "system"
# Run status (listing `status`, or a system item's `status`) -> normalised;
# pending and running are not terminal.
RUN_OUTCOMES: Final = {
    "succeeded": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "timed_out": RunStatus.TIMED_OUT,
}
ERROR_OUTCOMES: Final = (RunStatus.FAILED, RunStatus.TIMED_OUT)
# A tool call is a commandId group: first item running, last succeeded|failed.
# cancelled / timed_out commands are not documented: counted as failed
# (timed_out) or unknown (cancelled).
TOOL_OUTCOMES: Final = {
    "succeeded": ToolStatus.SUCCEEDED,
    "failed": ToolStatus.FAILED,
    "timed_out": ToolStatus.FAILED,
    "cancelled": ToolStatus.UNKNOWN,
}
# The tool name (the `tool` label): the group's first item's type, else its title.
TOOL_NAME_KEYS: Final = ("type", "title")  # type is a bounded identifier; title is free text
# The agent (the `agent` label, gen_ai.agent.id) is the runtimeId.
UNKNOWN_AGENT: Final = "unknown"

_KNOWN_CATEGORIES = frozenset(CATEGORIES)
_KNOWN_LEVELS = frozenset(LEVELS)

# Compact activity item as held in an open run's data (a JSON list).
(
    I_ID,
    I_TIME,
    I_CATEGORY,
    I_LEVEL,
    I_SEVERITY,
    I_STATUS,
    I_TITLE,
    I_TYPE,
    I_MESSAGE,
    I_COMMAND,
    I_CORRELATION,
    I_CONTEXT,
    I_PAGE,
    I_ARTIFACT,
) = range(14)
Item = list[object]

TOOL_NAME_INDEXES: Final = tuple({"title": I_TITLE, "type": I_TYPE}[k] for k in TOOL_NAME_KEYS)


def _known(value: str, allowed: Collection[str]) -> str:
    return value if value in allowed else "unknown"


def parse_item(source: str, obj: object) -> tuple[Item, str, str, str]:
    """One activity item -> (compact item, runId, runtimeId, runtimeKind).
    Raises BadRecordError: a required field missing (missing_field), of the
    wrong type (bad_type) or a bad `time` (bad_timestamp). Unknown enum
    values are kept as "unknown"."""
    f = Fields(source, obj)
    item_id = f.str("id")
    run_id = f.str("runId")
    runtime_id = f.str("runtimeId")
    runtime_kind = _known(f.str("runtimeKind").lower(), RUNTIME_KINDS)
    category = _known(f.str("category").lower(), _KNOWN_CATEGORIES)
    level = _known(f.str("level").lower(), _KNOWN_LEVELS)
    severity = parse_enum(Severity, f.str("severity"), Severity.UNKNOWN).value
    f.str("time")  # null or "" is a missing field, not a bad timestamp
    at = f.time("time")
    title = f.str("title")
    type_ = f.str("type")
    raw_status = f.opt_str("status")
    status = NO_STATUS if raw_status is None else _known(raw_status.lower(), ITEM_STATUSES)
    item: Item = [
        item_id,
        at.isoformat(),
        category,
        level,
        severity,
        status,
        title,
        type_,
        f.opt_str("message"),
        f.opt_str("commandId"),
        f.opt_str("correlationId"),
        f.opt_str("contextId"),
        f.opt_str("pageId"),
        f.opt_str("artifactId"),
    ]
    return item, run_id, runtime_id, runtime_kind


def parse_listed_run(source: str, obj: object) -> dict[str, object]:
    """One run of GET /v1/runs -> the listing info kept in open-run data."""
    f = Fields(source, obj)
    started, ended = f.opt_time("startedAt"), f.opt_time("endedAt")
    return {
        "id": f.str("id"),
        "status": f.str("status").lower(),
        "created": f.time("createdAt").isoformat(),
        "started": started.isoformat() if started else None,
        "ended": ended.isoformat() if ended else None,
        "runtime": f.opt_str("runtimeId"),
        "space": f.opt_str("spaceId"),
    }


def runs_page(source: str, body: object) -> tuple[list[object], str | None]:
    """A page of GET /v1/runs -> (its runs, unparsed; the next cursor)."""
    rows = envelope(source, body, "data")
    next_cursor = _cursor(source, envelope(source, body, "nextCursor"))
    if not isinstance(rows, list):
        raise BadResponseError(source, f"GET {RUNS_PATH}: 'data' is not a list")
    return rows, next_cursor


def activity_page(source: str, path: str, body: object) -> tuple[list[object], str | None]:
    """A page of GET `path` (one run's activity) -> (its items, unparsed;
    the next cursor)."""
    items = envelope(source, body, "items")
    next_cursor = _cursor(source, envelope(source, body, "nextCursor"))
    if not isinstance(items, list):
        raise BadResponseError(source, f"GET {path}: 'items' is not a list")
    return items, next_cursor


def raw_id(obj: object) -> str | None:
    """An item's id as Fields reads it, for de-duplication before parsing."""
    value = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    return str(value)


def _cursor(source: str, value: object) -> str | None:
    """`nextCursor`: a string, or null (an empty string read as null)."""
    if isinstance(value, str):
        return value or None
    if value is None:
        return None
    raise BadResponseError(source, "'nextCursor' is neither a string nor null")
