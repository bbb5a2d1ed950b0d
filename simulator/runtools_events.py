"""runtools: what a run's events are (runtools.py serves them): when each
happens (`skeleton`, whose times are the run's entries in the store's feed),
what each says (`event_at`), its JSON (`render_event`), and the junk fault's
event of a run that never existed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.hostile import JunkShape, junk_hex
from simulator.specs import AgentSpec, RunSpec
from simulator.timefmt import iso_ms_z
from simulator.wire import JsonObject

# normalised outcome -> (event type suffix and status, severity)
TERMINAL: dict[str, tuple[str, str]] = {
    "succeeded": ("completed", "info"),
    "failed": ("failed", "error"),
    "cancelled": ("cancelled", "warning"),
    "timed_out": ("timed_out", "error"),
}


@dataclass(frozen=True, slots=True)
class Event:
    ms: int
    event_type: str
    resource_type: str
    resource_id: str
    severity: str
    status: str
    title: str
    summary: str
    in_run: bool  # False: an event of no run (no agentRunId / threadId)
    tool_slug: str | None = None
    sandbox_id: str | None = None
    workspace_id: str | None = None


def thread_id(run: RunSpec) -> str:
    return "thr_" + run.run_id[4:16]


# Kinds of entries in a run's event list.
_RUN_STARTED, _SANDBOX, _MESSAGE, _TOOL_STARTED, _TOOL_ENDED, _RUN_ENDED, _WORKSPACE = range(7)
Skeleton = list[tuple[int, int, int]]  # (ms, kind, index among that kind), in feed order


def skeleton(run: RunSpec) -> Skeleton:
    """When each of a run's events happens, in occurredAt order (stable). The
    position in this list is the event's k in the feed. Cheap on purpose:
    the feed needs only the times, and a page renders single events."""
    out = [(run.start_ms, _RUN_STARTED, 0)]
    if run.flavor & 3 == 0:
        out.append((run.start_ms, _SANDBOX, 0))  # outside the run: no agentRunId
    out.extend((ms, _MESSAGE, i) for i, ms in enumerate(run.marks))
    for i, tool in enumerate(run.tools):
        out.append((tool.start_ms, _TOOL_STARTED, i))
        out.append((tool.end_ms, _TOOL_ENDED, i))
    out.append((run.end_ms, _RUN_ENDED, 0))
    if (run.flavor >> 2) & 7 == 0:
        out.append((run.end_ms + 250, _WORKSPACE, 0))  # outside the run
    out.sort(key=lambda entry: entry[0])
    return out


def feed_times(run: RunSpec, agent: AgentSpec) -> list[int]:
    return [entry[0] for entry in skeleton(run)]


def event_at(run: RunSpec, agent: AgentSpec, entry: tuple[int, int, int]) -> Event:
    ms, kind, i = entry
    if kind == _RUN_STARTED:
        return Event(
            ms,
            "agent.run.started",
            "agent",
            agent.id,
            "info",
            "started",
            "Agent run started",
            f"{agent.id} started a run",
            True,
        )
    if kind == _SANDBOX:
        sandbox = "sbx_" + run.run_id[8:20]
        return Event(
            ms,
            "sandbox.created",
            "sandbox",
            sandbox,
            "info",
            "created",
            "Sandbox created",
            f"Sandbox {sandbox} created",
            False,
            sandbox_id=sandbox,
        )
    if kind == _MESSAGE:
        warning = (run.flavor >> (4 + 3 * i)) & 7 == 0
        return Event(
            ms,
            "agent.message.added",
            "thread",
            thread_id(run),
            "warning" if warning else "info",
            "added",
            "Message added",
            "Context window nearly full" if warning else "Assistant message added",
            True,
        )
    if kind == _TOOL_STARTED:
        tool = run.tools[i]
        return Event(
            ms,
            "tool.call.started",
            "tool",
            tool.call_id,
            "info",
            "started",
            "Tool call started",
            f"{tool.name} started",
            True,
            tool_slug=tool.name,
        )
    if kind == _TOOL_ENDED:
        tool = run.tools[i]
        if tool.failed:
            return Event(
                ms,
                "tool.call.failed",
                "tool",
                tool.call_id,
                "error",
                "failed",
                "Tool call failed",
                f"{tool.name} failed: upstream returned 502",
                True,
                tool_slug=tool.name,
            )
        return Event(
            ms,
            "tool.call.completed",
            "tool",
            tool.call_id,
            "info",
            "completed",
            "Tool call completed",
            f"{tool.name} completed",
            True,
            tool_slug=tool.name,
        )
    if kind == _RUN_ENDED:
        word, severity = TERMINAL[run.outcome]
        text = word.replace("_", " ")
        return Event(
            ms,
            f"agent.run.{word}",
            "agent",
            agent.id,
            severity,
            word,
            f"Agent run {text}",
            f"{agent.id} run {text}",
            True,
        )
    workspace = f"ws_{run.flavor % 3 + 1:04d}"
    return Event(
        ms,
        "workspace.updated",
        "workspace",
        workspace,
        "info",
        "updated",
        "Workspace updated",
        f"Workspace {workspace} files updated",
        False,
        workspace_id=workspace,
    )


def render_event(event: Event, run: RunSpec, k: int) -> JsonObject:
    out: JsonObject = {
        "id": f"act_{run.run_id[4:]}{k:02d}",
        "resourceType": event.resource_type,
        "resourceId": event.resource_id,
        "eventType": event.event_type,
        "severity": event.severity,
        "status": event.status,
        "title": event.title,
        "summary": event.summary,
    }
    if event.in_run:
        out["threadId"] = thread_id(run)
        out["agentRunId"] = run.run_id
    if event.tool_slug:
        out["toolSlug"] = event.tool_slug
    if event.sandbox_id:
        out["sandboxId"] = event.sandbox_id
    if event.workspace_id:
        out["workspaceId"] = event.workspace_id
    out["occurredAt"] = iso_ms_z(event.ms)
    return out


def junk_shape(rng: random.Random, agents: list[str], at_ms: int) -> JunkShape:
    """An event of a run that never existed (ids contain "junk"), for the junk fault."""
    agent = agents[int(rng.random() * len(agents))]
    run_id = "run_" + junk_hex(rng, 16)
    if rng.random() < 0.5:
        item: JsonObject = {
            "id": "act_" + junk_hex(rng, 18),
            "resourceType": "agent",
            "resourceId": agent,
            "eventType": "agent.run.completed",
            "severity": "info",
            "status": "completed",
            "title": "Agent run completed",
            "summary": f"{agent} run completed",
        }
    else:
        item = {
            "id": "act_" + junk_hex(rng, 18),
            "resourceType": "tool",
            "resourceId": "tc_" + junk_hex(rng, 12),
            "eventType": "tool.call.failed",
            "severity": "error",
            "status": "failed",
            "title": "Tool call failed",
            "summary": "web_search failed: upstream returned 502",
            "toolSlug": "web_search",
        }
    item.update({"threadId": "thr_" + run_id[4:16], "agentRunId": run_id, "occurredAt": iso_ms_z(at_ms)})
    return JunkShape(
        item,
        time_paths=(("occurredAt",),),
        unknown_enums={("severity",): "critical", ("status",): "exploded", ("resourceType",): "spaceship"},
        wrong_types={("eventType",): 42, ("agentRunId",): [run_id], ("title",): {"text": "Agent run completed"}},
        required=(("occurredAt",), ("eventType",), ("resourceType",)),
    )
