"""The shapes a simulated world is drawn in: an agent, a run and its tool
calls, compact (times as integer ms, tool calls as small tuples) and
rendered into each platform's JSON only when a page is served (world.py
holds them; generate.py draws them)."""

from __future__ import annotations

from dataclasses import dataclass

OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "cancelled", "timed_out")


@dataclass(frozen=True, slots=True)
class AgentSpec:
    id: str  # the platform's id: slug, uuid, runtimeId or agentId
    name: str
    kind: str  # bctrl runtimeKind; "agent" elsewhere
    tools: tuple[str, ...]
    version_id: str  # agent_activities agent_version_uid
    space_id: str  # bctrl spaceId
    model: str  # runtype model


@dataclass(frozen=True, slots=True)
class ToolSpec:
    call_id: str  # "" where the platform gives tool calls no id
    name: str
    start_ms: int
    end_ms: int
    failed: bool


@dataclass(frozen=True, slots=True)
class RunSpec:
    seq: int  # position in Store.runs
    run_id: str
    agent: int  # index into Store.agents
    created_ms: int
    start_ms: int
    end_ms: int
    outcome: str  # one of OUTCOMES
    tools: tuple[ToolSpec, ...]
    marks: tuple[int, ...]  # moments of messages / notes inside the run
    input_tokens: int
    output_tokens: int
    cost_micros: int  # USD * 1e6, the run's own (sub-agents not included)
    parent: int | None  # seq of the run that spawned this one
    root: int | None  # seq of the top-level run of its trace
    children: tuple[int, ...]
    sandbox: bool
    flavor: int  # random bits for presentational choices (titles, payloads, forms)

    def status_at(self, now_ms: int) -> str:
        """pending | running | the outcome."""
        if now_ms < self.start_ms:
            return "pending"
        if now_ms < self.end_ms:
            return "running"
        return self.outcome

    def ended_by(self, now_ms: int) -> bool:
        return self.end_ms <= now_ms
