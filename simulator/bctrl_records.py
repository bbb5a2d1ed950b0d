"""bctrl: how a run and its activity timeline look on this platform (bctrl.py
serves them): the run's items in time order (`items_of`), each item's and the
run's JSON as of a moment, and the junk fault's run and item that never
existed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.hostile import JunkShape, junk_hex
from simulator.specs import AgentSpec, RunSpec
from simulator.timefmt import iso_ms_z
from simulator.wire import JsonObject

# normalised outcome -> severity of the run's end item
_END_SEVERITY = {"succeeded": "info", "failed": "error", "cancelled": "warning", "timed_out": "error"}


@dataclass(frozen=True, slots=True)
class Item:
    ms: int
    category: str
    level: str
    severity: str
    type: str
    title: str
    status: str | None = None
    message: str | None = None
    command_id: str | None = None
    artifact_id: str | None = None
    data: JsonObject | None = None


def items_of(run: RunSpec, agent: AgentSpec) -> list[Item]:
    """The run's whole activity timeline, in time order (stable)."""
    items = [
        Item(
            run.start_ms,
            "system",
            "summary",
            "info",
            "run.started",
            "Run started",
            status="running",
            data={"spaceId": agent.space_id},
        ),
    ]
    if agent.kind == "browser" and run.flavor & 1:
        items.append(
            Item(
                run.start_ms + 1,
                "recording",
                "summary",
                "info",
                "recording.started",
                "Recording started",
                artifact_id=f"art_{run.run_id[4:16]}",
            )
        )
    for i, ms in enumerate(run.marks):
        items.append(
            Item(
                ms,
                "agent",
                "summary",
                "info",
                "agent.step",
                "Agent planned the next step",
                message=("Open the target page", "Find the submit button", "Verify the result")[i % 3],
            )
        )
    for i, tool in enumerate(run.tools):
        group: JsonObject = {"command": tool.name}
        items.append(
            Item(
                tool.start_ms,
                "action",
                "summary",
                "info",
                tool.name,
                f"{tool.name} started",
                status="running",
                command_id=tool.call_id,
                data=dict(group),
            )
        )
        debug = (run.flavor >> (2 + 2 * i)) & 3  # 0..3 debug items inside the command
        span = tool.end_ms - tool.start_ms
        for j in range(min(debug, 2)):
            ms = tool.start_ms + span * (j + 1) // 3
            if j == 0:
                items.append(
                    Item(
                        ms,
                        "network",
                        "debug",
                        "info",
                        "network.request",
                        "GET https://app.example.com/api/orders",
                        command_id=tool.call_id,
                        data={**group, "status": 200},
                    )
                )
            else:
                items.append(
                    Item(
                        ms,
                        "console",
                        "debug",
                        "warning",
                        "console.warn",
                        "Deprecated API used",
                        command_id=tool.call_id,
                        data=dict(group),
                    )
                )
        done = {**group, "durationMs": span}
        if tool.failed:
            items.append(
                Item(
                    tool.end_ms,
                    "action",
                    "summary",
                    "error",
                    tool.name,
                    f"{tool.name} failed",
                    status="failed",
                    message="Element not found: #submit",
                    command_id=tool.call_id,
                    data=done,
                )
            )
        else:
            items.append(
                Item(
                    tool.end_ms,
                    "action",
                    "summary",
                    "info",
                    tool.name,
                    f"{tool.name} succeeded",
                    status="succeeded",
                    command_id=tool.call_id,
                    data=done,
                )
            )
    word = run.outcome
    items.append(
        Item(
            run.end_ms,
            "system",
            "summary",
            _END_SEVERITY[word],
            f"run.{word}",
            f"Run {word.replace('_', ' ')}",
            status=word,
            message=None if word == "succeeded" else f"Run {word.replace('_', ' ')}",
        )
    )
    items.sort(key=lambda item: item.ms)
    return items


def render_item(item: Item, k: int, run: RunSpec, agent: AgentSpec) -> JsonObject:
    out: JsonObject = {
        "id": f"act_{run.run_id[4:]}{k:03x}",
        "runId": run.run_id,
        "runtimeId": agent.id,
        "runtimeKind": agent.kind,
        "category": item.category,
        "level": item.level,
        "severity": item.severity,
        "time": iso_ms_z(item.ms),
        "title": item.title,
        "type": item.type,
    }
    if item.status is not None:
        out["status"] = item.status
    if item.message is not None:
        out["message"] = item.message
    if item.command_id is not None:
        out["commandId"] = item.command_id
        out["correlationId"] = f"cor_{item.command_id[4:]}"
    if item.artifact_id is not None:
        out["artifactId"] = item.artifact_id
    if agent.kind == "browser" and item.category in ("action", "network", "console"):
        out["pageId"] = f"page_{run.run_id[4:12]}"
        out["contextId"] = f"ctx_{run.run_id[4:12]}"
    if item.data is not None:
        out["data"] = item.data
    return out


def render_run(run: RunSpec, agent: AgentSpec, now_ms: int) -> JsonObject:
    return {
        "id": run.run_id,
        "runtimeId": agent.id,
        "spaceId": agent.space_id,
        "runtimeKind": agent.kind,
        "status": run.status_at(now_ms),
        "createdAt": iso_ms_z(run.created_ms),
        "startedAt": iso_ms_z(run.start_ms) if run.start_ms <= now_ms else None,
        "endedAt": iso_ms_z(run.end_ms) if run.ended_by(now_ms) else None,
    }


def junk_run(rng: random.Random, agents: list[AgentSpec], at_ms: int) -> JunkShape:
    """A finished run that never existed (its id contains "junk"), for the junk fault."""
    agent = agents[int(rng.random() * len(agents))]
    started = at_ms + 300
    item: JsonObject = {
        "id": "run_" + junk_hex(rng, 20),
        "runtimeId": agent.id,
        "spaceId": agent.space_id,
        "runtimeKind": agent.kind,
        "status": "succeeded",
        "createdAt": iso_ms_z(at_ms),
        "startedAt": iso_ms_z(started),
        "endedAt": iso_ms_z(started + 2_000 + int(rng.random() * 5_000)),
    }
    return JunkShape(
        item,
        time_paths=(("createdAt",), ("startedAt",), ("endedAt",)),
        unknown_enums={("status",): "paused", ("runtimeKind",): "quantum"},
        wrong_types={("runtimeId",): {"id": agent.id}, ("status",): 1, ("endedAt",): True},
        required=(("status",), ("createdAt",), ("runtimeId",)),
    )


def junk_item(rng: random.Random, agent: AgentSpec, at_ms: int) -> JunkShape:
    """An activity item of a run and command that never existed, for the junk fault."""
    command = "cmd_" + junk_hex(rng, 12)
    item: JsonObject = {
        "id": "act_" + junk_hex(rng, 23),
        "runId": "run_" + junk_hex(rng, 20),
        "runtimeId": agent.id,
        "runtimeKind": agent.kind,
        "category": "action",
        "level": "summary",
        "severity": "info",
        "time": iso_ms_z(at_ms),
        "title": "browser.click succeeded",
        "type": "browser.click",
        "status": "succeeded",
        "commandId": command,
        "data": {"command": "browser.click", "durationMs": 412},
    }
    return JunkShape(
        item,
        time_paths=(("time",),),
        unknown_enums={
            ("category",): "telepathy",
            ("level",): "verbose",
            ("severity",): "critical",
            ("status",): "paused",
            ("runtimeKind",): "quantum",
        },
        wrong_types={("data",): ["not", "an", "object"], ("title",): 42, ("commandId",): [command]},
        required=(("runId",), ("category",), ("level",), ("severity",), ("time",), ("type",)),
    )
