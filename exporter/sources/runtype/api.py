"""runtype's wire format: its paths, envelopes and values.

Endpoints (docs/platforms.md, runtype): `GET /v1/agents` (when `agents: all`),
`GET /v1/agents/{id}/executions` (newest first by createdAt; `from`/`to`
bound createdAt, inclusive; cursor-paginated), the execution detail
`GET /v1/agents/{id}/executions/{executionId}` and its tool calls
`GET /v1/agents/{id}/executions/{executionId}/tool-calls`.

A list answers {"data": [...], "pagination": {"nextCursor", "hasMore"?}};
the detail answers {"data": {...}}. Executions are parsed here into
Execution, tool calls into ToolCall.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, TypeVar
from urllib.parse import quote

from exporter.model import AttrValue, RunStatus, ToolCall, ToolStatus
from exporter.sources.base import Fields, envelope
from exporter.sources.http import BadRecordError, BadResponseError

T = TypeVar("T")

PLATFORM: Final = "runtype"
AGENTS_PATH: Final = "/v1/agents"

# -- Where the vendor's pages are silent: the readings this source follows --
RUN_STATUSES: Final = {
    "completed": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "timed_out": RunStatus.TIMED_OUT,
}
OPEN_STATUSES: Final = frozenset({"pending", "running"})
TOOL_STATUSES: Final = {"running": ToolStatus.RUNNING, "completed": ToolStatus.SUCCEEDED, "failed": ToolStatus.FAILED}
# Assumption: a status no mapping knows counts as terminal (UNKNOWN) once the
# execution has a completedAt; without one it is re-read like a running one.
# The outcomes that carry an error (error.type, the error text below).
ERROR_STATUSES: Final = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
# Assumption: the detail's error text is `error` (string or {message}) or
# `errorMessage`; without either, a failed run's message is its stopReason.
# Choice: a totalCost/totalTokens/iterations that does not parse keeps the
# run without that field and counts one Rejected (bad_value / bad_type).


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution as read (list item, detail or open-run state)."""

    id: str
    agent_id: str
    parent_id: str | None
    raw_status: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    surface: str | None = None
    stop_reason: str | None = None
    agent_source: str | None = None
    error: str | None = None
    iterations: int | None = None
    total_tokens: int | None = None
    cost: Decimal | None = None
    input: str | None = None  # content
    output: str | None = None
    # Optional fields that did not parse: (field, reason); the run is kept without them.
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> RunStatus:
        return RUN_STATUSES.get(self.raw_status.lower(), RunStatus.UNKNOWN)

    @property
    def is_open(self) -> bool:
        raw = self.raw_status.lower()
        if raw in OPEN_STATUSES:
            return True
        return raw not in RUN_STATUSES and self.completed_at is None

    def to_data(self) -> dict[str, object]:
        """JSON form for open-run state (content left out); read back by
        `parse_execution("state", data)`."""
        return {
            "id": self.id,
            "agentId": self.agent_id,
            "parentExecutionId": self.parent_id,
            "status": self.raw_status,
            "createdAt": self.created_at.isoformat(),
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "completedAt": self.completed_at.isoformat() if self.completed_at else None,
            "surfaceType": self.surface,
            "stopReason": self.stop_reason,
            "agentSource": self.agent_source,
            "iterations": self.iterations,
            "totalTokens": self.total_tokens,
            "totalCost": str(self.cost) if self.cost is not None else None,
        }


def parse_execution(source: str, item: object, default_agent: str | None = None) -> Execution:
    """One execution object -> Execution; raises BadRecordError for what the
    run cannot do without (id, status, times). Bad optional numbers are kept
    out of the run and listed in `problems`."""
    f = Fields(source, item)
    exec_id = f.str("id")
    agent = f.opt_str("agentId") or default_agent
    if agent is None:
        raise BadRecordError(source, "missing_field", exec_id, "agentId")
    problems: list[tuple[str, str]] = []

    def lenient(key: str, read: Callable[[str], T]) -> T | None:
        try:
            return read(key)
        except BadRecordError as err:
            problems.append((key, err.reason))
            return None

    return Execution(
        id=exec_id,
        agent_id=agent,
        parent_id=f.opt_str("parentExecutionId"),
        raw_status=f.str("status"),
        created_at=f.time("createdAt"),
        started_at=f.opt_time("startedAt"),
        completed_at=f.opt_time("completedAt"),
        surface=f.opt_str("surfaceType"),
        stop_reason=f.opt_str("stopReason"),
        agent_source=f.opt_str("agentSource"),
        error=_error_text(f.obj.get("error")) or _error_text(f.obj.get("errorMessage")),
        iterations=lenient("iterations", f.opt_int),
        total_tokens=lenient("totalTokens", f.opt_int),
        cost=lenient("totalCost", f.opt_decimal),
        input=_json_text(f.obj.get("inputMessages")),
        output=_json_text(f.obj.get("finalOutput")),
        problems=tuple(problems),
    )


def parse_tool_call(source: str, item: object) -> ToolCall:
    """One tool call -> ToolCall. The end is derived: createdAt + executionTimeMs."""
    f = Fields(source, item)
    call_id = f.str("id")
    start = f.time("createdAt")
    ms = f.obj.get("executionTimeMs")
    end: datetime | None = None
    attrs: list[tuple[str, AttrValue]] = []
    if ms is not None:
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0 or ms != ms:
            raise BadRecordError(source, "bad_value", call_id, "executionTimeMs")
        end = start + timedelta(milliseconds=float(ms))
        attrs.append(("agent_activity.time_derived", True))
    raw_status = f.opt_str("status")
    for key, name in (("toolId", "agent_activity.tool.id"), ("model", "gen_ai.request.model")):
        value = f.opt_str(key)
        if value is not None:
            attrs.append((name, value))
    return ToolCall(
        id=call_id,
        name=f.opt_str("toolName") or "unknown",
        started_at=start,
        ended_at=end,
        status=TOOL_STATUSES.get((raw_status or "").lower(), ToolStatus.UNKNOWN),
        raw_status=raw_status,
        error_message=f.opt_str("errorMessage"),
        input=_json_text(f.obj.get("inputParameters")),
        output=_json_text(f.obj.get("outputResult")),
        attributes=tuple(attrs),
    )


def parse_agent(source: str, item: object) -> tuple[str, str | None]:
    """One agent of GET /v1/agents -> (id, name)."""
    f = Fields(source, item)
    return f.str("id"), f.opt_str("name")


def executions_path(agent_id: str) -> str:
    return f"/v1/agents/{quote(agent_id, safe='')}/executions"


def execution_path(agent_id: str, exec_id: str) -> str:
    return f"{executions_path(agent_id)}/{quote(exec_id, safe='')}"


def tool_calls_path(agent_id: str, exec_id: str) -> str:
    return execution_path(agent_id, exec_id) + "/tool-calls"


def list_page(source: str, body: object) -> tuple[object, str | None]:
    """A page of any list -> (its items, unchecked; the cursor to follow, or
    None at the end of the list)."""
    items = envelope(source, body, "data")
    return items, _next_cursor(envelope(source, body, "pagination"))


def detail_object(source: str, body: object) -> dict[str, object]:
    """The execution detail's `data` object."""
    data = envelope(source, body, "data")
    if not isinstance(data, dict):
        raise BadResponseError(source, "execution detail 'data' is not an object")
    return data


def found_execution(source: str, body: object, exec_id: str) -> Execution | None:
    """Execution `exec_id` in an answer of `GET .../executions?executionId=`;
    None when it is not there or does not parse."""
    items = envelope(source, body, "data")
    if not isinstance(items, list):
        raise BadResponseError(source, "page items are not a list")
    for item in items:
        if isinstance(item, dict) and item.get("id") == exec_id:
            try:
                return parse_execution(source, item, None)
            except BadRecordError:
                return None
    return None


def _next_cursor(pagination: object) -> str | None:
    if not isinstance(pagination, dict):
        return None
    cursor = pagination.get("nextCursor")
    if not isinstance(cursor, str) or not cursor:
        return None
    if "hasMore" in pagination and not pagination["hasMore"]:
        return None
    return cursor


def _json_text(value: object) -> str | None:
    """Content as text: strings as they are, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _error_text(value: object) -> str | None:
    """The detail's `error` / `errorMessage`: a string, or an object with a
    message (the shape is undocumented)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("message", "error", "code"):
            text = value.get(key)
            if isinstance(text, str) and text:
                return text
    return _json_text(value)
