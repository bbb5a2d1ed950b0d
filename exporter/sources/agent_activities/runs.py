"""agent_activities: a Run from a listing (status, times) and its detail
(`result.step_history`, `result.timeline`, `error`, `token_usage`).

A `tool_called` timeline entry is a tool call, matched in order to the step
with the same action, ending at the next timeline entry; every other entry
is a span event; steps no timeline entry names are Steps without times.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from exporter.model import (
    ActivityEvent,
    AttrValue,
    Batch,
    Rejected,
    Run,
    RunStatus,
    Severity,
    Step,
    ToolCall,
    ToolStatus,
)
from exporter.sources.agent_activities.api import (
    EXTRA_ATTRIBUTES,
    FAILED_EVENT,
    PLATFORM,
    TOOL_EVENT,
    Entry,
    StepRec,
    content,
    error,
    event_status,
    output_error,
    parse_steps,
    parse_timeline,
    run_status,
    token_usage,
)
from exporter.sources.windows import time_or

EVENT_CATEGORY = "timeline"


def build_run(
    source: str,
    base_url: str,
    uid: str,
    run_id: str,
    listing: Mapping[str, object],
    detail: dict[str, object] | None,
    batch: Batch | None,
    *,
    detail_missing: bool = False,
    forced: RunStatus | None = None,
) -> Run:
    """A Run from the listing attributes (status, times) and, when
    fetched, the detail's extra fields (result, error, token_usage)."""
    raw_status = str(listing.get("status") or "unknown")
    status = forced or run_status(raw_status)
    # A parsed listing has started_on or created_on (expire fills created_on in).
    started = time_or(listing.get("started_on"), None) or cast(datetime, time_or(listing.get("created_on"), None))
    ended = None if forced else time_or(listing.get("completed_on"), None)
    rejects: list[Rejected] = batch.rejected if batch is not None else []
    extra = dict(detail or {})
    if "token_usage" not in extra and "token_usage" in listing:
        extra["token_usage"] = listing["token_usage"]
    attrs: list[tuple[str, AttrValue]] = [
        (f"agent_activity.{key}", value)
        for key in EXTRA_ATTRIBUTES
        if isinstance(value := listing.get(key), str) and value
    ]
    if detail_missing:
        attrs.append(("agent_activity.detail_missing", True))
    tokens = token_usage(extra.get("token_usage"), run_id, rejects)
    error_type, error_message = error(extra.get("error"))
    calls: tuple[ToolCall, ...] = ()
    steps: tuple[Step, ...] = ()
    events: tuple[ActivityEvent, ...] = ()
    output = None
    result = extra.get("result")
    if isinstance(result, dict):
        calls, steps, events = _result_records(source, run_id, result, ended, rejects, batch)
        rest = {k: v for k, v in result.items() if k not in ("step_history", "timeline")}
        output = content(rest) if rest else None
    elif result is not None:
        rejects.append(Rejected(reason="bad_type", record_id=run_id, detail="result is not an object"))
    trigger_type, sandbox = listing.get("trigger_type"), listing.get("sandbox")
    return Run(
        source=source,
        platform=PLATFORM,
        base_url=base_url,
        run_id=run_id,
        agent_id=uid,
        agent_name=uid,  # the API gives no agent names
        status=status,
        raw_status="incomplete" if forced else raw_status,
        started_at=started,
        ended_at=ended,
        trigger_type=trigger_type if isinstance(trigger_type, str) else None,
        error_type=error_type if status is RunStatus.FAILED else None,
        error_message=error_message,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        total_tokens=tokens[2],
        sandbox=sandbox if isinstance(sandbox, bool) else None,
        input=content(extra["trigger_payload"]) if extra.get("trigger_payload") is not None else None,
        output=output,
        tool_calls=calls,
        steps=steps,
        events=events,
        attributes=tuple(attrs),
    )


def _result_records(
    source: str,
    run_id: str,
    result: dict[str, object],
    run_end: datetime | None,
    rejects: list[Rejected],
    batch: Batch | None,
) -> tuple[tuple[ToolCall, ...], tuple[Step, ...], tuple[ActivityEvent, ...]]:
    """`result.timeline` -> tool calls (tool_called entries, matched in order
    to the steps with the same action) and span events (every other entry);
    steps no timeline entry names -> Steps without times."""
    steps = parse_steps(source, run_id, result.get("step_history"), rejects, batch)
    entries = parse_timeline(source, run_id, result.get("timeline"), rejects, batch)
    by_action: dict[str, deque[StepRec]] = {}
    for rec in steps:
        by_action.setdefault(rec.action, deque()).append(rec)
    matched: set[str] = set()
    calls: list[ToolCall] = []
    events: list[ActivityEvent] = []
    for n, entry in enumerate(entries):
        if entry.event == TOOL_EVENT and entry.tool:
            queue = by_action.get(entry.tool)
            step = queue.popleft() if queue else None
            end = entries[n + 1].at if n + 1 < len(entries) else run_end
            if end is not None and end < entry.at:
                end = None
            calls.append(_tool_call(entry, entry.tool, step, end))
            if step is not None:
                matched.add(step.key)
            continue
        events.append(
            ActivityEvent(
                id=f"{run_id}:timeline:{entry.index}",
                name=entry.event,
                time=entry.at,
                category=EVENT_CATEGORY,
                severity=Severity.ERROR if entry.event == FAILED_EVENT else Severity.INFO,
                status=event_status(entry.event),
                attributes=(("agent_activity.timeline.index", entry.index),),
                run_id=run_id,
                message=entry.detail,
            )
        )
    rest = tuple(_step(rec) for rec in steps if rec.key not in matched)
    return tuple(calls), rest, tuple(events)


def _tool_call(entry: Entry, tool: str, step: StepRec | None, end: datetime | None) -> ToolCall:
    """Tool calls carry no status of their own on this platform (a timeline entry
    says only that a tool was called): unknown, or failed where the matching
    step's output is an error object."""
    attrs: list[tuple[str, AttrValue]] = [("agent_activity.timeline.index", entry.index)]
    if end is not None:
        attrs.append(("agent_activity.time_derived", True))  # end = the next timeline entry
    status, err = ToolStatus.UNKNOWN, None
    if step is not None:
        attrs.append(("agent_activity.step", step.key))
        attrs.extend(_sandbox_attributes(step.output))
        err = output_error(step.output)
        if err is not None:
            status = ToolStatus.FAILED
    return ToolCall(
        id=step.key if step is not None else f"timeline-{entry.index}",
        name=tool,
        started_at=entry.at,
        ended_at=end,
        status=status,
        error_message=err or None,
        input=content(step.input) if step is not None and step.input is not None else None,
        output=content(step.output) if step is not None and step.output is not None else None,
        attributes=tuple(attrs),
    )


def _step(step: StepRec) -> Step:
    failed = output_error(step.output) is not None
    return Step(
        key=step.key,
        name=step.action,
        started_at=None,
        ended_at=None,
        status=ToolStatus.FAILED if failed else ToolStatus.UNKNOWN,
        input=content(step.input) if step.input is not None else None,
        output=content(step.output) if step.output is not None else None,
        attributes=tuple(_sandbox_attributes(step.output)),
    )


def _sandbox_attributes(output: object) -> list[tuple[str, AttrValue]]:
    """`{"sandbox": true, "would_<verb>": {...}}`: what a guarded tool would
    have done in a sandbox run; recorded as such, never as a real effect."""
    if not isinstance(output, dict) or output.get("sandbox") is not True:
        return []
    verbs = sorted(k[len("would_") :] for k in output if isinstance(k, str) and k.startswith("would_") and len(k) > 6)
    if not verbs:
        return [("agent_activity.sandbox", True)]
    return [("agent_activity.sandbox", True), ("agent_activity.sandbox.would", ",".join(verbs))]
