"""Property tests: every source survives arbitrary JSON shaped around its
platform's schema. A record that does not parse is rejected (counted and
skipped); a response that is not the documented envelope fails the poll
with BadResponseError; nothing else may escape, and nothing may loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.sources.agent_activities.reader import AgentActivitiesSource
from exporter.sources.base import PollContext
from exporter.sources.bctrl.reader import BctrlSource
from exporter.sources.http import BadResponseError
from exporter.sources.runtools.reader import RuntoolsSource
from exporter.sources.runtype.reader import RuntypeSource
from tests.conftest import MemoryState, NoWait, source_config

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
timestamps = st.sampled_from(
    [
        "2026-05-10T11:59:00Z",
        "2026-05-10T11:58:00.123456789Z",
        "2026-05-10T13:58:00+02:00",
        "2026-05-10T11:57:00.5-00:30",
        "not a time",
        "",
        "2026-13-45T99:00:00Z",
    ]
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON at all."""
    return st.one_of(valid, valid, valid, json_values)


def shaped(schema: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """An object with each schema key present (plausible or wild) or
    missing, sometimes an extra key, sometimes not an object at all."""
    obj = st.fixed_dictionaries({}, optional={k: field(v) for k, v in schema.items()} | {"extra": json_values})
    return st.one_of(obj, obj, obj, obj, json_values)


def survive(source: Any, polls: int = 2) -> None:
    state = MemoryState()
    for _ in range(polls):
        try:
            for n, batch in enumerate(source.poll(PollContext(checkpoint=state.checkpoint, now=NOW, state=state))):
                state.apply(batch)
                assert n < 1000, "the poll does not end"  # pages are bounded by what the server claims
        except BadResponseError:
            pass  # the documented failure of a response that is not the documented shape
        for open_run in list(state.open.values()):
            source.expire(open_run, NOW)


def transport(route: Callable[[httpx.Request], object]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json=route(request)))


# -- runtools ---------------------------------------------------------------------

runtools_event = shaped(
    {
        "id": st.sampled_from(["a1", "a2", "a3", ""]),
        "occurredAt": timestamps,
        "eventType": st.sampled_from(
            [
                "agent.run.started",
                "agent.run.completed",
                "agent.run.failed",
                "tool.call.started",
                "tool.call.completed",
                "tool.call.failed",
                "agent.run.exploded",
                "x",
            ]
        ),
        "agentRunId": st.sampled_from(["r1", "r2"]),
        "resourceType": st.sampled_from(["agent", "tool", "thread", "?"]),
        "resourceId": st.sampled_from(["triage", "tc1"]),
        "severity": st.sampled_from(["info", "error", "loud"]),
        "status": st.text(max_size=8),
        "toolSlug": st.text(max_size=8),
        "threadId": st.text(max_size=5),
    }
)


@FUZZ
@given(
    events=st.lists(runtools_event, max_size=6),
    meta=shaped({"hasMore": st.booleans(), "nextCursor": st.sampled_from(["c1", "", None])}),
)
def test_runtools_survives_anything(events: list[Any], meta: Any) -> None:
    body = {"data": {"events": events}, "meta": meta}
    source = RuntoolsSource(source_config(max_window=3600.0), transport=transport(lambda r: body), stop=NoWait())
    survive(source)


# -- agent_activities -------------------------------------------------------------

aa_attributes = shaped(
    {
        "agent_uid": st.just("agt"),
        "status": st.sampled_from(["completed", "failed", "running", "stopped", "weird"]),
        "started_on": timestamps,
        "completed_on": timestamps,
        "created_on": timestamps,
        "sandbox": st.booleans(),
        "trigger_type": st.text(max_size=6),
        "result": shaped(
            {
                "step_history": st.lists(
                    shaped({"step": st.integers(0, 3), "action": st.text(max_size=5), "output": json_values}),
                    max_size=3,
                ),
                "timeline": st.lists(
                    shaped(
                        {
                            "event": st.sampled_from(["tool_called", "run_completed"]),
                            "at": timestamps,
                            "tool": st.text(max_size=5),
                        }
                    ),
                    max_size=3,
                ),
            }
        ),
        "token_usage": st.one_of(
            st.integers(), shaped({"input_tokens": st.integers(), "output_tokens": st.integers()})
        ),
        "error": json_values,
    }
)
aa_item = shaped({"id": st.sampled_from(["run1", "run2"]), "type": st.just("agent-runs"), "attributes": aa_attributes})


@FUZZ
@given(
    items=st.lists(aa_item, max_size=4),
    detail=aa_item,
    meta=shaped({"page": st.just(1), "per_page": st.integers(0, 50), "total_pages": st.integers(0, 3)}),
)
def test_agent_activities_survives_anything(items: list[Any], detail: Any, meta: Any) -> None:
    def route(request: httpx.Request) -> object:
        if request.url.path.count("/") > 4:  # /api/agents/{uid}/activities/{run}
            return {"status": "success", "data": detail}
        return {"status": "success", "data": {"items": items, "_meta": meta}}

    source = AgentActivitiesSource(
        source_config(
            "agent_activities",
            agents=("agt",),
            auth_header="Authorization",
            auth_scheme="Bearer",
            per_page=50,
            lookback=30.0,
            fetch_detail=True,
            inflight_every=1,
        ),
        transport=transport(route),
        stop=NoWait(),
    )
    survive(source)


# -- bctrl (items shaped by the OpenAPI schema of the seed page) -------------------

bctrl_item = shaped(
    {
        "id": st.sampled_from(["i1", "i2", "i3"]),
        "runId": st.just("run1"),
        "runtimeId": st.text(max_size=4),
        "runtimeKind": st.sampled_from(["browser", "desktop", "spreadsheet", "holodeck"]),
        "category": st.sampled_from(["action", "system", "network", "nonsense"]),
        "level": st.sampled_from(["summary", "debug", "verbose"]),
        "severity": st.sampled_from(["info", "error", "?"]),
        "time": timestamps,
        "title": st.text(max_size=6),
        "type": st.text(max_size=6),
        "status": st.sampled_from(["running", "succeeded", "failed", "timed_out", "paused"]),
        "commandId": st.sampled_from(["c1", "c2"]),
        "data": json_values,
    }
)
bctrl_run = shaped(
    {
        "id": st.just("run1"),
        "runtimeId": st.text(max_size=4),
        "createdAt": timestamps,
        "status": st.sampled_from(["running", "succeeded", "failed", "??"]),
        "startedAt": timestamps,
        "endedAt": timestamps,
    }
)


@FUZZ
@given(
    runs=st.lists(bctrl_run, max_size=3),
    items=st.lists(bctrl_item, max_size=5),
    cursor=st.sampled_from([None, "n1", "", 5]),
)
def test_bctrl_survives_anything(runs: list[Any], items: list[Any], cursor: Any) -> None:
    def route(request: httpx.Request) -> object:
        if request.url.path.endswith("/activity"):
            return {"items": items, "nextCursor": cursor}
        return {"data": runs, "nextCursor": None}

    source = BctrlSource(
        source_config("bctrl", level=None, categories=None, runs=None, page_size=100, lookback=30.0),
        transport=transport(route),
        stop=NoWait(),
    )
    survive(source)


# -- runtype ----------------------------------------------------------------------

execution = shaped(
    {
        "id": st.sampled_from(["e1", "e2", "e3"]),
        "executionId": st.sampled_from(["e1", "e2"]),
        "agentId": st.just("ag"),
        "parentExecutionId": st.sampled_from([None, "e1", "e9"]),
        "status": st.sampled_from(["completed", "failed", "running", "timed_out", "bogus"]),
        "totalCost": st.sampled_from(["0.023", "1e-3", "free", "-1", None, 3]),
        "totalTokens": st.integers(),
        "stopReason": st.text(max_size=5),
        "startedAt": timestamps,
        "completedAt": timestamps,
        "createdAt": timestamps,
        "iterations": st.integers(),
    }
)
tool_call = shaped(
    {
        "id": st.sampled_from(["t1", "t2"]),
        "toolName": st.text(max_size=5),
        "status": st.sampled_from(["completed", "failed", "running", "meh"]),
        "executionTimeMs": st.integers(-5, 10**6),
        "createdAt": timestamps,
        "errorMessage": json_values,
    }
)


@FUZZ
@given(
    executions=st.lists(execution, max_size=4),
    calls=st.lists(tool_call, max_size=3),
    single=execution,
    pagination=shaped({"hasMore": st.booleans(), "nextCursor": st.sampled_from([None, "x", ""])}),
)
def test_runtype_survives_anything(executions: list[Any], calls: list[Any], single: Any, pagination: Any) -> None:
    def route(request: httpx.Request) -> object:
        path = request.url.path
        if path.endswith("/tool-calls"):
            return {"data": calls, "pagination": {"hasMore": False, "nextCursor": None}}
        if path.rstrip("/").endswith("/executions"):
            return {"data": executions, "pagination": pagination}
        if "/executions/" in path:
            return {"data": single}
        return {"data": [{"id": "ag", "name": "Agent"}], "pagination": {"hasMore": False, "nextCursor": None}}

    source = RuntypeSource(
        source_config("runtype", agents="all", tool_calls=True, page_size=100, lookback=30.0),
        transport=transport(route),
        stop=NoWait(),
    )
    survive(source)
