"""agent_activities: how a run looks on this platform (agent_activities.py
serves it): its "agent-runs" resource as of a moment, with the sparse
`fields[agent-runs]` extras (trigger_payload, result, error, token_usage),
the platform's statuses, and the junk fault's run that never existed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from simulator.hostile import JunkShape, junk_uuid
from simulator.specs import AgentSpec, RunSpec
from simulator.timefmt import iso_us_offset
from simulator.wire import JsonObject, JsonValue

_TRIGGERS = ("email_received", "schedule", "webhook", "manual")
# Tools whose effects a sandbox run only pretends: output {"sandbox": true, "would_<verb>": {...}}.
_GUARDED = {
    "send_email": "would_send",
    "create_ticket": "would_create",
    "update_record": "would_update",
    "post_message": "would_post",
}
_NAMESPACE = uuid.UUID("5f0c8f4e-4a53-4d2e-9a47-2b1c1f0e9d11")


def raw_status(run: RunSpec, now_ms: int) -> str:
    status = run.status_at(now_ms)
    if status == "succeeded":
        return "completed"
    if status == "cancelled":
        # Both words mean a run that did not finish on its own; the platform uses both.
        return "stopped" if run.flavor & 1 else "cancelled"
    if status == "timed_out":  # never drawn here (no such state); kept total for safety
        return "failed"
    return status  # pending | running | failed


def normalised_status(raw: str) -> str:
    return {"completed": "succeeded", "stopped": "cancelled"}.get(raw, raw)


def _derived_uuid(run: RunSpec, salt: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{run.run_id}|{salt}"))


def trigger_type(run: RunSpec) -> str:
    return _TRIGGERS[(run.flavor >> 1) % len(_TRIGGERS)]


def token_usage_is_int(run: RunSpec) -> bool:
    return (run.flavor >> 5) & 3 == 0  # about one run in four


@dataclass(frozen=True, slots=True)
class _Step:
    ms: int  # when its output is known
    action: str
    tool_index: int | None  # index into run.tools; None for a step that is no tool call
    failed: bool


def run_steps(run: RunSpec) -> list[_Step]:
    """step_history in order, numbered from 1 over the whole run so that the
    numbers of a running run's steps never change as more appear."""
    steps = [_Step(t.end_ms, t.name, i, t.failed) for i, t in enumerate(run.tools)]
    if (run.flavor >> 8) & 1:
        # A reasoning step of no tool: in step_history, never in the timeline.
        steps.append(_Step(run.marks[0], "classify_entity", None, False))
    steps.sort(key=lambda s: s.ms)
    return steps


def _step_output(run: RunSpec, step: _Step, number: int) -> JsonValue:
    if step.failed:
        return {"error": {"code": "upstream_error", "message": f"{step.action} failed: service returned 503"}}
    if step.tool_index is None:
        return {"classification": ("payment_inquiry", "refund_request", "general_question")[run.flavor % 3]}
    uid = _derived_uuid(run, f"out{number}")
    if run.sandbox and step.action in _GUARDED:
        return {
            "sandbox": True,
            _GUARDED[step.action]: {
                "uid": uid,
                "status": "sent",
                "to": ["billing@acme.example"],
                "subject": "RE: Invoice inquiry",
                "body_preview": "Thank you for your inquiry regarding...",
            },
        }
    outputs: dict[str, JsonValue] = {
        "read_entity": {"subject": "Invoice inquiry from Acme Corp"},
        "search_knowledge_base": {"results": [{"title": "Refund policy", "score": 0.87}]},
        "lookup_customer": {"customer_uid": uid, "plan": "pro"},
        "send_email": {"uid": uid, "status": "sent"},
        "create_ticket": {"uid": uid, "status": "open"},
        "update_record": {"uid": uid, "updated": True},
        "post_message": {"uid": uid, "channel": "#billing"},
    }
    return outputs.get(step.action, {"ok": True})


def _step_input(run: RunSpec, step: _Step) -> JsonValue:
    if step.action in ("send_email", "post_message"):
        return {"to": ["billing@acme.example"], "subject": "RE: Invoice inquiry"}
    if step.action == "search_knowledge_base":
        return {"query": "refund policy for annual plans"}
    return {"entity_type": "message", "uid": _derived_uuid(run, "trigger")}


def _result(run: RunSpec, now_ms: int) -> JsonValue:
    if now_ms < run.start_ms:
        return None
    steps = run_steps(run)
    history: list[JsonValue] = [
        {"step": n, "action": s.action, "input": _step_input(run, s), "output": _step_output(run, s, n)}
        for n, s in enumerate(steps, start=1)
        if s.ms <= now_ms
    ]
    timeline: list[JsonValue] = [
        {"event": "goal_defined", "at": iso_us_offset(run.start_ms), "detail": "Respond to payment inquiry"}
    ]
    for tool in run.tools:
        if tool.start_ms <= now_ms:
            timeline.append(
                {
                    "event": "tool_called",
                    "at": iso_us_offset(tool.start_ms),
                    "tool": tool.name,
                    "detail": f"Called {tool.name}",
                }
            )
    if run.ended_by(now_ms):
        timeline.append({"event": f"run_{raw_status(run, now_ms)}", "at": iso_us_offset(run.end_ms)})
    return {"step_history": history, "timeline": timeline}


def _error(run: RunSpec, now_ms: int) -> JsonValue:
    if not run.ended_by(now_ms) or run.outcome != "failed":
        return None
    if run.tools and run.tools[-1].failed:
        return {"code": "tool_error", "message": f"{run.tools[-1].name} failed: service returned 503"}
    return {"code": "max_steps_exceeded", "message": "The agent did not reach its goal within 25 steps"}


def _token_usage(run: RunSpec, now_ms: int) -> JsonValue:
    if not run.ended_by(now_ms):
        return None
    total = run.input_tokens + run.output_tokens
    if token_usage_is_int(run):
        return total
    return {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens, "total_tokens": total}


def _trigger_payload(run: RunSpec) -> JsonValue:
    trigger = trigger_type(run)
    if trigger == "email_received":
        return {"message_uid": _derived_uuid(run, "trigger")}
    if trigger == "schedule":
        return {"cron": "*/15 * * * *"}
    if trigger == "webhook":
        return {"event": "ticket.created", "ticket_id": f"T-{run.flavor % 100000:05d}"}
    return {"user_uid": _derived_uuid(run, "user")}


def render_run(run: RunSpec, agent: AgentSpec, now_ms: int, fields: frozenset[str]) -> JsonObject:
    attributes: JsonObject = {
        "agent_uid": agent.id,
        "agent_version_uid": agent.version_id,
        "scratchpad_uid": _derived_uuid(run, "scratchpad"),
        "workflow_id": f"agent-loop-{agent.id[:8]}",
        "approach": "loop" if (run.flavor >> 3) & 3 else "plan_and_execute",
        "status": raw_status(run, now_ms),
        "sandbox": run.sandbox,
        "trigger_type": trigger_type(run),
    }
    if "trigger_payload" in fields:
        attributes["trigger_payload"] = _trigger_payload(run)
    if "result" in fields:
        attributes["result"] = _result(run, now_ms)
    if "error" in fields:
        attributes["error"] = _error(run, now_ms)
    if "token_usage" in fields:
        attributes["token_usage"] = _token_usage(run, now_ms)
    attributes["started_on"] = iso_us_offset(run.start_ms) if run.start_ms <= now_ms else None
    attributes["completed_on"] = iso_us_offset(run.end_ms) if run.ended_by(now_ms) else None
    attributes["created_on"] = iso_us_offset(run.created_ms)
    return {"id": run.run_id, "type": "agent-runs", "attributes": attributes}


def junk_shape(rng: random.Random, agent: AgentSpec, now_ms: int, fields: frozenset[str]) -> JunkShape:
    """A finished run that never existed (its uuids are not uuid4s), for the junk fault."""
    ended = now_ms - int(rng.random() * 60_000)
    started = ended - 2_000 - int(rng.random() * 6_000)
    attributes: JsonObject = {
        "agent_uid": agent.id,
        "agent_version_uid": agent.version_id,
        "scratchpad_uid": junk_uuid(rng),
        "workflow_id": f"agent-loop-{agent.id[:8]}",
        "approach": "loop",
        "status": "completed",
        "sandbox": False,
        "trigger_type": "manual",
    }
    if "token_usage" in fields:
        attributes["token_usage"] = {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500}
    attributes.update(
        {
            "started_on": iso_us_offset(started),
            "completed_on": iso_us_offset(ended),
            "created_on": iso_us_offset(started - 400),
        }
    )
    return JunkShape(
        {"id": junk_uuid(rng), "type": "agent-runs", "attributes": attributes},
        time_paths=(("attributes", "started_on"), ("attributes", "completed_on"), ("attributes", "created_on")),
        unknown_enums={
            ("attributes", "status"): "paused",
            ("attributes", "trigger_type"): "carrier_pigeon",
            ("type",): "agent-walks",
        },
        wrong_types={("attributes",): "completed", ("attributes", "sandbox"): "yes", ("attributes", "status"): 3},
        required=(("attributes", "status"), ("attributes", "created_on"), ("type",)),
    )
