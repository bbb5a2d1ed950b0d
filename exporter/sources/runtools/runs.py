"""Building a runtools Run from its events (compact, in any order).

A run is the events sharing `agentRunId`, in time order: `agent.run.started`
starts it, a terminal `agent.run.*` event ends it (its outcome, and for a
failure or a timeout its summary as the error), `tool.call.*` events of a
resource make one tool call each, and every other event is a span event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from exporter.model import ActivityEvent, Run, RunStatus, ToolCall, ToolStatus, parse_time
from exporter.sources.runtools.api import (
    E_AT,
    E_ID,
    E_RID,
    E_SUMMARY,
    E_THREAD,
    E_TITLE,
    E_TOOL,
    E_TYPE,
    PLATFORM,
    RUN_STARTED,
    SPAN_EVENT_FIELDS,
    TOOL_OUTCOMES,
    TOOL_PREFIX,
    event_attributes,
    outcome,
)


@dataclass(slots=True)
class _Call:
    """A tool call as its events arrive."""

    name: str | None
    start: datetime | None = None
    end: datetime | None = None
    status: ToolStatus | None = None
    error: str | None = None


def build_run(
    source: str,
    base_url: str,
    run_id: str,
    agent: str,
    events: Iterable[list[object]],
    forced: RunStatus | None,
) -> Run:
    """The run of these events; `forced` (incomplete) for a run given up on."""
    timed = sorted(((parse_time(e[E_AT]), e) for e in events), key=lambda pair: pair[0])
    start = end = None
    status, raw_status = RunStatus.RUNNING, "running"
    error_message = None
    thread = None
    span_events: list[ActivityEvent] = []
    tools: dict[str, _Call] = {}
    for at, ev in timed:
        etype = cast(str, ev[E_TYPE])
        thread = thread or cast(str | None, ev[E_THREAD])
        if etype == RUN_STARTED:
            start = at
        elif (ended := outcome(etype)) is not None:
            end, status, raw_status = at, ended, etype.rsplit(".", 1)[1]
            if ended in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                error_message = cast(str | None, ev[E_SUMMARY] or ev[E_TITLE])
        elif etype.startswith(TOOL_PREFIX) and ev[E_RID]:
            _add_tool_event(tools, ev, etype, at)
            continue
        span_events.append(_span_event(ev, at))
    start = start or timed[0][0]
    if forced is not None:
        status, raw_status, end = forced, "incomplete", None
    return Run(
        source=source,
        platform=PLATFORM,
        base_url=base_url,
        run_id=run_id,
        agent_id=agent,
        agent_name=agent,
        status=status,
        raw_status=raw_status,
        started_at=start,
        ended_at=end,
        conversation_id=thread,
        error_type=status.value if status in (RunStatus.FAILED, RunStatus.TIMED_OUT) else None,
        error_message=error_message,
        tool_calls=tuple(_tool_call(call_id, call) for call_id, call in tools.items()),
        events=tuple(span_events),
    )


def _span_event(ev: list[object], at: datetime) -> ActivityEvent:
    return ActivityEvent(
        id=cast(str, ev[E_ID]), name=cast(str, ev[E_TYPE]), time=at, attributes=event_attributes(ev, SPAN_EVENT_FIELDS)
    )


def _add_tool_event(tools: dict[str, _Call], ev: list[object], etype: str, at: datetime) -> None:
    tool = cast(str | None, ev[E_TOOL])
    call = tools.setdefault(cast(str, ev[E_RID]), _Call(tool))
    call.name = call.name or tool
    status = TOOL_OUTCOMES.get(etype[len(TOOL_PREFIX) :], ToolStatus.UNKNOWN)
    if status is ToolStatus.RUNNING:
        call.start = at
        return
    call.end, call.status = at, status
    if status is ToolStatus.FAILED:
        call.error = cast(str | None, ev[E_SUMMARY] or ev[E_TITLE])


def _tool_call(call_id: str, call: _Call) -> ToolCall:
    return ToolCall(
        id=call_id,
        name=call.name or "unknown",
        started_at=cast(datetime, call.start or call.end),  # its first event set one of them
        ended_at=call.end,
        status=call.status or ToolStatus.UNKNOWN,
        error_message=call.error,
    )
