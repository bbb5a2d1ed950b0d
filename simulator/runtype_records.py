"""runtype: how an agent, an execution and a tool call look on this platform
(runtype.py serves them) as of a moment, list and detail forms, and the junk
fault's execution and tool call that never happened.
"""

from __future__ import annotations

import random
import zlib
from decimal import Decimal

from simulator.hostile import JunkShape, junk_hex
from simulator.specs import AgentSpec, RunSpec, ToolSpec
from simulator.timefmt import iso_ms_z
from simulator.wire import JsonObject
from simulator.world import Store

_SURFACES = ("webhook", "web", "api", "slack", "schedule")
_SUBAGENT_SURFACE = "agent"
_STOP_REASONS = {"failed": "error", "cancelled": "cancelled", "timed_out": "timeout"}
_DESCRIPTIONS = {
    "web_search": "Search the web and return the top results",
    "query_db": "Run a read-only SQL query against the analytics warehouse",
    "http_request": "Call an HTTP API",
    "send_email": "Send an email on behalf of the workspace",
    "code_interpreter": "Run Python in a sandbox",
    "read_file": "Read a file from the knowledge base",
}


def raw_status(run: RunSpec, now_ms: int) -> str:
    status = run.status_at(now_ms)
    return "completed" if status == "succeeded" else status


def _cost(run: RunSpec) -> str:
    # A decimal string, as the platform sends it: "0.0123".
    return str(Decimal(run.cost_micros).scaleb(-6).normalize()) if run.cost_micros else "0"


def surface_type(run: RunSpec) -> str:
    return _SUBAGENT_SURFACE if run.parent is not None else _SURFACES[run.flavor % len(_SURFACES)]


def _tool_status(tool: ToolSpec, now_ms: int) -> str:
    if now_ms < tool.end_ms:
        return "running"
    return "failed" if tool.failed else "completed"


def run_id_of(store: Store, seq: int | None) -> str | None:
    return store.runs[seq].run_id if seq is not None else None


def render_execution(store: Store, run: RunSpec, now_ms: int, *, detail: bool) -> JsonObject:
    ended = run.ended_by(now_ms)
    started = run.start_ms <= now_ms
    agent = store.agents[run.agent]
    stop_reason = None
    if ended:
        default = "max_iterations_reached" if run.flavor & 7 == 0 else "end_turn"
        stop_reason = _STOP_REASONS.get(run.outcome, default)
    out: JsonObject = {
        "id": run.run_id,
        "agentId": agent.id,
        "agentSource": "runtype-core",
        "executionId": run.run_id,
        "parentExecutionId": run_id_of(store, run.parent),
        "surfaceType": surface_type(run),
        "status": raw_status(run, now_ms),
        "iterations": (sum(1 for t in run.tools if t.start_ms <= now_ms) + 1) if started else 0,
        "totalCost": _cost(run) if ended else None,
        "stopReason": stop_reason,
        "startedAt": iso_ms_z(run.start_ms) if started else None,
        "completedAt": iso_ms_z(run.end_ms) if ended else None,
        "createdAt": iso_ms_z(run.created_ms),
        "agentSpec": None,
        "totalTokens": run.input_tokens + run.output_tokens if ended else None,
        "inputMessages": None,
    }
    if detail:
        out["inputMessages"] = [
            {"role": "system", "content": f"You are {agent.name}."},
            {"role": "user", "content": "Summarise yesterday's failed payments and notify the owners."},
        ]
        out["finalOutput"] = "Done: 3 owners notified." if ended and run.outcome == "succeeded" else None
        out["errorMessage"] = (
            (f"{run.tools[-1].name} failed" if run.tools and run.tools[-1].failed else "Model returned an error")
            if ended and run.outcome == "failed"
            else None
        )
        out["model"] = agent.model
    return out


def render_tool_call(tool: ToolSpec, agent: AgentSpec, now_ms: int) -> JsonObject:
    status = _tool_status(tool, now_ms)
    return {
        "id": tool.call_id,
        "toolId": f"tool_{zlib.crc32(tool.name.encode()):08x}",
        "toolName": tool.name,
        "toolDescription": _DESCRIPTIONS.get(tool.name, tool.name),
        "model": agent.model,
        "status": status,
        "errorMessage": "Upstream returned HTTP 502" if status == "failed" else None,
        "executionTimeMs": tool.end_ms - tool.start_ms if status != "running" else None,
        "createdAt": iso_ms_z(tool.start_ms),
        "inputParameters": {"query": f"{tool.name} input"},
        "outputResult": {"ok": True, "items": 3} if status == "completed" else None,
    }


def render_agent(agent: AgentSpec) -> JsonObject:
    return {
        "id": agent.id,
        "name": agent.name,
        "description": f"{agent.name} agent",
        "status": "active",
        "model": agent.model,
        "createdAt": "2025-01-15T09:00:00.000Z",
    }


def junk_execution(rng: random.Random, agent: AgentSpec, at_ms: int) -> JunkShape:
    """A finished top-level execution that never existed, for the junk fault."""
    execution_id = "exec_" + junk_hex(rng, 16)
    started = at_ms + 500
    item: JsonObject = {
        "id": execution_id,
        "agentId": agent.id,
        "agentSource": "runtype-core",
        "executionId": execution_id,
        "parentExecutionId": None,
        "surfaceType": "api",
        "status": "completed",
        "iterations": 2,
        "totalCost": "0.0123",
        "stopReason": "end_turn",
        "startedAt": iso_ms_z(started),
        "completedAt": iso_ms_z(started + 2_000 + int(rng.random() * 5_000)),
        "createdAt": iso_ms_z(at_ms),
        "agentSpec": None,
        "totalTokens": 1500,
        "inputMessages": None,
    }
    return JunkShape(
        item,
        id_paths=(("id",), ("executionId",)),
        time_paths=(("startedAt",), ("completedAt",), ("createdAt",)),
        unknown_enums={("status",): "paused", ("surfaceType",): "carrier_pigeon"},
        wrong_types={
            ("totalCost",): ["0.0123"],
            ("totalTokens",): "many",
            ("iterations",): "three",
            ("parentExecutionId",): {"id": execution_id},
        },
        required=(("status",), ("createdAt",), ("agentId",)),
    )


def junk_tool_call(rng: random.Random, agent: AgentSpec, at_ms: int) -> JunkShape:
    """A tool call that never happened, for the junk fault."""
    item: JsonObject = {
        "id": "tc_" + junk_hex(rng, 16),
        "toolId": f"tool_{zlib.crc32(b'web_search'):08x}",
        "toolName": "web_search",
        "toolDescription": _DESCRIPTIONS["web_search"],
        "model": agent.model,
        "status": "completed",
        "errorMessage": None,
        "executionTimeMs": 120,
        "createdAt": iso_ms_z(at_ms),
        "inputParameters": {"query": "web_search input"},
        "outputResult": {"ok": True, "items": 3},
    }
    return JunkShape(
        item,
        time_paths=(("createdAt",),),
        unknown_enums={("status",): "queued"},
        wrong_types={("executionTimeMs",): "fast", ("toolName",): 42, ("inputParameters",): "q"},
        required=(("toolName",), ("status",), ("createdAt",)),
    )
