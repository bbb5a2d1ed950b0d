"""runtype source: parsing, windows, open executions, sub-agents, tool calls,
dedup, failures and request counts."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import cast

import httpx
import pytest

from exporter.config.shards import shard_of
from exporter.convert.traces import run_to_spans, run_trace_id
from exporter.model import Batch, Run, RunStatus, ToolStatus, parse_time
from exporter.sources.base import PollContext
from exporter.sources.http import AuthError, BadResponseError, CursorLoopError, SourceError
from exporter.sources.runtype.reader import RuntypeSource
from tests.conftest import MemoryState, source_config

FIXTURES = Path(__file__).parent / "fixtures" / "runtype"
T0 = datetime(2026, 5, 10, 12, 0, 0, tzinfo=timezone.utc)
Handler = Callable[[httpx.Request], httpx.Response]


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def execution(
    exec_id: str,
    agent: str,
    created: float,
    status: str | None = "completed",
    *,
    parent: str | None = None,
    duration: float = 5.0,
    **extra: object,
) -> dict[str, object]:
    done = status not in ("pending", "running")
    body: dict[str, object] = {
        "id": exec_id,
        "agentId": agent,
        "agentSource": "runtype-core",
        "executionId": exec_id,
        "parentExecutionId": parent,
        "surfaceType": "web",
        "status": status,
        "iterations": 2 if done else None,
        "totalCost": "0.010" if done else None,
        "stopReason": "end_turn" if done else None,
        "startedAt": iso(created + 1),
        "completedAt": iso(created + 1 + duration) if done else None,
        "createdAt": iso(created),
        "agentSpec": None,
        "totalTokens": 100 if done else None,
        "inputMessages": [{"role": "user", "content": f"hello {exec_id}"}],
    }
    body.update(extra)
    return body


class Platform:
    """A runtype API over in-memory agents, executions and tool calls.
    Listings are newest first by createdAt, filtered by from/to (inclusive),
    cursor = offset; list items leave out the detail-only fields."""

    DETAIL_ONLY = ("finalOutput", "error", "errorMessage")

    def __init__(self, agents: list[str], page: int = 3) -> None:
        self.agents: list[dict[str, object]] = [{"id": a, "name": f"Agent {a}"} for a in agents]
        self.executions: dict[str, dict[str, object]] = {}
        self.tool_calls: dict[str, list[dict[str, object]]] = {}
        self.page = page
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()  # requests come from the source's worker threads

    def add(self, *items: dict[str, object]) -> None:
        for item in items:
            self.executions[str(item["id"])] = item

    def paths(self) -> list[str]:
        return [r.url.path + ("?executionId" if "executionId" in r.url.params else "") for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        parts = request.url.path.strip("/").split("/")
        q = request.url.params
        if parts == ["v1", "agents"]:
            return self._page(self.agents, q)
        agent = parts[2]
        if len(parts) == 4:  # executions listing
            if "executionId" in q:
                found = [self._list_item(e) for e in self.executions.values() if e["id"] == q["executionId"]]
                return self._page(found, q)
            lo = parse_time(q["from"]) if "from" in q else datetime.min.replace(tzinfo=timezone.utc)
            hi = parse_time(q["to"]) if "to" in q else datetime.max.replace(tzinfo=timezone.utc)
            mine = [
                e for e in self.executions.values() if e["agentId"] == agent and lo <= parse_time(e["createdAt"]) <= hi
            ]
            mine.sort(key=lambda e: parse_time(e["createdAt"]), reverse=True)
            return self._page([self._list_item(e) for e in mine], q)
        item = self.executions.get(parts[4])
        if item is None or item["agentId"] != agent:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "execution not found"}})
        if len(parts) == 5:
            return httpx.Response(200, json={"data": item})
        return self._page(self.tool_calls.get(parts[4], []), q)

    def _list_item(self, item: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in item.items() if k not in self.DETAIL_ONLY}

    def _page(self, items: list[dict[str, object]], q: httpx.QueryParams) -> httpx.Response:
        offset = int(q.get("cursor") or 0)
        size = min(self.page, int(q.get("limit") or self.page))
        more = offset + size < len(items)
        return httpx.Response(
            200,
            json={
                "data": items[offset : offset + size],
                "pagination": {
                    "nextCursor": str(offset + size) if more else None,
                    "prevCursor": None,
                    "hasMore": more,
                    "hasPrev": offset > 0,
                    "limit": size,
                },
            },
        )


class Harness:
    def __init__(
        self, handler: Handler, start_from: float = 3600.0, *, concurrency: int = 1, **options: object
    ) -> None:
        self.state = MemoryState()
        config = source_config("runtype", name="rt", start_from=start_from, concurrency=concurrency, option_map=options)
        self.source = RuntypeSource(config, transport=httpx.MockTransport(handler))
        self.batches: list[Batch] = []
        self.runs: list[Run] = []
        self.rejected: list[tuple[str, str]] = []
        self.records: dict[str, int] = {}
        self.caught_up: datetime | None = None

    def poll(self, now: datetime, stop_after: int | None = None) -> None:
        ctx = PollContext(checkpoint=self.state.checkpoint, now=now, state=self.state)
        for n, batch in enumerate(self.source.poll(ctx)):
            self.state.apply(batch)
            self.batches.append(batch)
            self.runs += batch.runs
            self.rejected += [(r.reason, r.record_id) for r in batch.rejected]
            for kind, count in batch.records.items():
                self.records[kind] = self.records.get(kind, 0) + count
            self.caught_up = batch.caught_up_to or self.caught_up
            if stop_after is not None and n + 1 >= stop_after:
                return  # as if the process died after this commit

    def by_id(self) -> dict[str, Run]:
        return {r.run_id: r for r in self.runs}

    def agent_checkpoint(self, agent: str) -> dict[str, object]:
        agents = self.state.checkpoint["agents"]
        assert isinstance(agents, dict)
        return dict(agents[agent])


# -- the vendor page's example -----------------------------------------------------------


def test_seed_example_parses() -> None:
    page = json.loads((FIXTURES / "executions_page.json").read_text())  # the vendor page's example

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor"):  # the example says hasMore: true
            return httpx.Response(200, json={"data": [], "pagination": {"nextCursor": None, "hasMore": False}})
        return httpx.Response(200, json=page)

    h = Harness(handler, agents=["agent_12345abcde"], tool_calls=False)
    h.poll(datetime(2024, 6, 10, 14, 30, tzinfo=timezone.utc))
    assert h.rejected == []
    [run] = h.runs
    assert (run.run_id, run.agent_id, run.agent_name, run.status, run.raw_status) == (
        "exec_9f8b7c6d5a4e3f21",
        "agent_12345abcde",
        "agent_12345abcde",
        RunStatus.SUCCEEDED,
        "completed",
    )
    assert run.started_at == datetime(2024, 6, 10, 14, 22, 30, tzinfo=timezone.utc)
    assert run.ended_at == datetime(2024, 6, 10, 14, 25, 45, tzinfo=timezone.utc)
    assert (run.cost_usd, run.total_tokens, run.iterations) == (Decimal("0.023"), 450, 3)
    assert (run.finish_reasons, run.trigger_type, run.root_run_id, run.parent_run_id) == (
        ("max_iterations_reached",),
        "webhook",
        None,
        None,
    )
    assert ("agent_activity.agent_source", "runtype-core") in run.attributes


# -- incremental reading -------------------------------------------------------


def test_incremental_polls_with_all_agents_and_a_ten_minute_agent_list() -> None:
    p = Platform(["alpha", "beta"])
    p.add(execution("e1", "alpha", -600), execution("e2", "beta", -300))
    h = Harness(p)
    h.poll(T0)
    assert sorted(h.by_id()) == ["e1", "e2"]
    assert h.by_id()["e1"].agent_name == "Agent alpha"
    assert h.by_id()["e1"].input == '[{"content": "hello e1", "role": "user"}]'
    assert h.caught_up == T0
    assert p.paths().count("/v1/agents") == 1

    p.add(execution("e3", "alpha", 20), execution("e4", "alpha", 40))
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=60))
    assert sorted(r.run_id for r in h.runs) == ["e1", "e2", "e3", "e4"]
    assert "/v1/agents" not in p.paths()  # listed less than 10 minutes ago
    q = p.requests[0].url.params
    assert (q["from"], q["to"]) == ("2026-05-10T11:59:30.000Z", "2026-05-10T12:01:00.000Z")  # watermark - lookback

    # A new agent appears; it is found by the next listing, 10 minutes on.
    p.agents.append({"id": "gamma", "name": "Agent gamma"})
    p.add(execution("e5", "gamma", 500))
    h.poll(T0 + timedelta(seconds=550))
    assert "e5" not in h.by_id()
    h.poll(T0 + timedelta(seconds=660))
    assert h.by_id()["e5"].agent_name == "Agent gamma"
    assert len(h.runs) == 5
    assert sorted(cast(dict[str, object], h.state.checkpoint["agents"])) == ["alpha", "beta", "gamma"]


def test_crash_mid_window_resumes_from_committed_cursor() -> None:
    p = Platform(["alpha"], page=2)
    p.add(*(execution(f"e{i}", "alpha", -100 * i) for i in range(1, 8)))
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0, stop_after=2)  # the agent-set batch, then the first page
    assert len(h.runs) == 2
    window = cast(dict[str, object], h.agent_checkpoint("alpha")["window"])
    assert window["cursor"] == "2"
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=5))
    assert sorted(r.run_id for r in h.runs) == [f"e{i}" for i in range(1, 8)]
    assert p.requests[0].url.params["cursor"] == "2"  # resumed, not restarted
    assert "window" not in h.agent_checkpoint("alpha")


def test_repeated_items_and_pages_count_once() -> None:
    items = [execution("e1", "alpha", -30), execution("e2", "alpha", -20)]

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        pagination = {"nextCursor": "p2" if cursor is None else None, "hasMore": cursor is None}
        return httpx.Response(200, json={"data": items + items[:1], "pagination": pagination})  # page 2 repeats page 1

    h = Harness(handler, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    h.poll(T0 + timedelta(seconds=10))  # the overlap re-reads them again
    assert sorted(r.run_id for r in h.runs) == ["e1", "e2"]


def test_idle_poll_costs_one_listing_per_agent() -> None:
    p = Platform(["alpha", "beta"])
    p.add(execution("e1", "alpha", -100))
    p.tool_calls["e1"] = [{"id": "tc1", "toolName": "search", "status": "completed", "createdAt": iso(-98)}]
    h = Harness(p)
    h.poll(T0)
    p.requests.clear()
    for minute in range(1, 6):
        h.poll(T0 + timedelta(minutes=minute))
    assert p.paths() == ["/v1/agents/alpha/executions", "/v1/agents/beta/executions"] * 5
    p.requests.clear()
    h.poll(T0 + timedelta(minutes=11))  # the agent list is refreshed every 10 minutes
    assert p.paths() == ["/v1/agents", "/v1/agents/alpha/executions", "/v1/agents/beta/executions"]
    assert len(h.runs) == 1


# -- open executions ------------------------------------------------------------


def test_running_execution_is_rechecked_by_id_and_exported_once_finished() -> None:
    p = Platform(["alpha"])
    p.add(execution("e1", "alpha", -10, "running"))
    h = Harness(p, agents=["alpha"])
    h.poll(T0)
    assert h.runs == []
    [open_run] = h.state.open.values()
    assert (open_run.run_id, open_run.agent, open_run.finished) == ("e1", "alpha", False)

    # Still in the listing's window (lookback): no detail request needed.
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=15))
    h.poll(T0 + timedelta(seconds=60))
    assert p.paths() == ["/v1/agents/alpha/executions"] * 2

    # Out of the window: re-read by id, still running.
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=120))
    assert p.paths() == ["/v1/agents/alpha/executions", "/v1/agents/alpha/executions/e1"]
    assert h.runs == [] and list(h.state.open) == ["e1"]

    # It ends: the detail (with finalOutput) makes the run, its tool calls are read once.
    p.add(execution("e1", "alpha", -10, "completed", duration=200, finalOutput={"answer": 42}))
    p.tool_calls["e1"] = [
        {
            "id": "tc1",
            "toolName": "search",
            "status": "completed",
            "createdAt": iso(5),
            "executionTimeMs": 1500,
            "inputParameters": {"q": "x"},
            "outputResult": "found",
        }
    ]
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=240))
    assert p.paths() == [
        "/v1/agents/alpha/executions",
        "/v1/agents/alpha/executions/e1",
        "/v1/agents/alpha/executions/e1/tool-calls",
    ]
    [run] = h.runs
    assert (run.status, run.output, run.ended_at) == (
        RunStatus.SUCCEEDED,
        '{"answer": 42}',
        T0 + timedelta(seconds=191),
    )
    assert [(c.id, c.name, c.status, c.input, c.output) for c in run.tool_calls] == [
        ("tc1", "search", ToolStatus.SUCCEEDED, '{"q": "x"}', "found")
    ]
    assert run.tool_calls[0].ended_at is not None
    assert run.tool_calls[0].ended_at - run.tool_calls[0].started_at == timedelta(milliseconds=1500)
    assert ("agent_activity.time_derived", True) in run.tool_calls[0].attributes
    assert h.state.open == {}

    p.requests.clear()
    h.poll(T0 + timedelta(seconds=300))
    assert p.paths() == ["/v1/agents/alpha/executions"] and len(h.runs) == 1


def test_open_execution_that_vanishes_is_given_up_as_incomplete() -> None:
    p = Platform(["alpha"])
    p.add(execution("e1", "alpha", -10, "pending"))
    h = Harness(p, agents=["alpha"])
    h.poll(T0)
    del p.executions["e1"]
    h.poll(T0 + timedelta(seconds=120))
    [run] = h.runs
    assert (run.status, run.ended_at, run.raw_status) == (RunStatus.INCOMPLETE, None, "pending")
    assert h.state.open == {}
    h.poll(T0 + timedelta(seconds=180))
    assert len(h.runs) == 1


def test_unknown_status_is_open_without_completed_at_and_unknown_with_it() -> None:
    p = Platform(["alpha"])
    p.add(execution("e1", "alpha", -20, "paused", completedAt=None), execution("e2", "alpha", -10, "archived"))
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    assert [(r.run_id, r.status, r.raw_status) for r in h.runs] == [("e2", RunStatus.UNKNOWN, "archived")]
    assert list(h.state.open) == ["e1"]


def test_expire_builds_an_incomplete_run() -> None:
    p = Platform(["alpha"])
    p.add(execution("e1", "alpha", -10, "running"))
    h = Harness(p, agents=["alpha"])
    h.poll(T0)
    run = h.source.expire(h.state.open["e1"], T0 + timedelta(hours=2))
    assert (run.run_id, run.status, run.ended_at, run.started_at, run.agent_id) == (
        "e1",
        RunStatus.INCOMPLETE,
        None,
        T0 - timedelta(seconds=9),
        "alpha",
    )


# -- failures of one execution ----------------------------------------------------


def test_failed_execution_takes_the_error_from_its_detail() -> None:
    p = Platform(["alpha"])
    p.add(
        execution("e1", "alpha", -30, "failed", error={"message": "model quota exceeded"}),
        execution("e2", "alpha", -20, "timed_out", stopReason="timeout"),
        execution("e3", "alpha", -10, "failed", errorMessage="search failed"),
    )
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    runs = h.by_id()
    assert (runs["e1"].status, runs["e1"].error_message, runs["e1"].error_type) == (
        RunStatus.FAILED,
        "model quota exceeded",
        "failed",
    )
    assert (runs["e2"].status, runs["e2"].error_message) == (RunStatus.TIMED_OUT, "timeout")  # no error: stopReason
    assert runs["e3"].error_message == "search failed"  # the detail's errorMessage
    assert sorted(p.paths()) == sorted(
        [
            "/v1/agents/alpha/executions",
            "/v1/agents/alpha/executions/e1",
            "/v1/agents/alpha/executions/e2",
            "/v1/agents/alpha/executions/e3",
        ]
    )


def test_bad_record_is_rejected_and_the_rest_used() -> None:
    items: list[object] = [
        execution("e1", "alpha", -30),
        execution("e2", "alpha", -20, startedAt="not a time"),
        execution("e3", "alpha", -10, totalCost="n/a"),
        execution("e4", "alpha", -5, status=None),
        "not an object",
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": items, "pagination": {"nextCursor": None, "hasMore": False}})

    h = Harness(handler, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    assert sorted(r.run_id for r in h.runs) == ["e1", "e3"]
    assert h.by_id()["e3"].cost_usd is None  # kept, without its cost
    assert sorted(h.rejected) == [
        ("bad_timestamp", "e2"),
        ("bad_type", "?"),
        ("bad_value", "e3"),
        ("missing_field", "e4"),
    ]
    assert h.records["execution"] == 5


def test_bad_tool_call_is_rejected_and_the_run_kept() -> None:
    p = Platform(["alpha"])
    p.add(execution("e1", "alpha", -30))
    p.tool_calls["e1"] = [
        {
            "id": "tc1",
            "toolName": "search",
            "status": "failed",
            "createdAt": iso(-29),
            "executionTimeMs": 10,
            "errorMessage": "boom",
        },
        {"id": "tc2", "toolName": "send", "status": "completed"},  # no createdAt
        {"id": "tc3", "toolName": "odd", "status": "exploded", "createdAt": iso(-27)},
        {"id": "tc1", "toolName": "search", "status": "failed", "createdAt": iso(-29)},  # repeated
    ]
    p.page = 2
    h = Harness(p, agents=["alpha"])
    h.poll(T0)
    [run] = h.runs
    calls = {c.id: c for c in run.tool_calls}
    assert sorted(calls) == ["tc1", "tc3"]
    assert (calls["tc1"].status, calls["tc1"].error_message) == (ToolStatus.FAILED, "boom")
    assert (calls["tc3"].status, calls["tc3"].ended_at, calls["tc3"].raw_status) == (
        ToolStatus.UNKNOWN,
        None,
        "exploded",
    )
    assert h.rejected == [("missing_field", "tc2")]


# -- sub-agents --------------------------------------------------------------------


def test_sub_agents_land_in_the_top_level_trace_whoever_is_read_first() -> None:
    # Agents are read in id order: the sub-sub-agent first, the top-level agent last.
    p = Platform(["a_leaf", "b_sub", "c_top"])
    p.add(
        execution("top", "c_top", -100, "running"),
        execution("mid", "b_sub", -90, parent="top"),
        execution("leaf", "a_leaf", -80, parent="mid"),
        execution("leaf2", "a_leaf", -70, parent="mid"),
    )
    h = Harness(p, tool_calls=False)
    h.poll(T0)
    runs = h.by_id()
    assert sorted(runs) == ["leaf", "leaf2", "mid"]  # "top" still running
    assert {(r.run_id, r.parent_run_id, r.root_run_id) for r in runs.values()} == {
        ("leaf", "mid", "top"),
        ("leaf2", "mid", "top"),
        ("mid", "top", "top"),
    }
    # The chain was followed by the executionId filter, once per unknown ancestor
    # (asked of the agent that named it: mid via a_leaf, then top via mid's b_sub).
    assert [x for x in p.paths() if x.endswith("?executionId")] == [
        "/v1/agents/a_leaf/executions?executionId",
        "/v1/agents/b_sub/executions?executionId",
    ]
    assert runs["mid"].agent_id == "b_sub" and runs["mid"].agent_name == "Agent b_sub"

    p.add(execution("top", "c_top", -100, "completed", duration=60))
    h.poll(T0 + timedelta(seconds=120))
    top = h.by_id()["top"]
    assert (top.root_run_id, top.parent_run_id) == (None, None)
    trace = run_trace_id(top)
    assert {run_trace_id(r) for r in h.runs} == {trace}
    spans = {s["name"]: s for r in h.runs for s in run_to_spans(r)}
    assert "parentSpanId" not in spans["invoke_agent Agent c_top"]
    assert spans["invoke_agent Agent b_sub"]["parentSpanId"] == spans["invoke_agent Agent c_top"]["spanId"]
    leaf_spans = [s for r in h.runs if r.agent_id == "a_leaf" for s in run_to_spans(r)]
    assert {s["parentSpanId"] for s in leaf_spans} == {spans["invoke_agent Agent b_sub"]["spanId"]}


def test_child_listed_before_its_parent_on_the_same_page_needs_no_lookup() -> None:
    p = Platform(["alpha"], page=10)
    p.add(execution("top", "alpha", -100), execution("child", "alpha", -50, parent="top"))
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    assert h.by_id()["child"].root_run_id == "top"
    assert p.paths() == ["/v1/agents/alpha/executions"]
    # A later child of the same (finished) parent, in another poll: known top-level, no lookup.
    p.add(execution("child2", "alpha", 30, parent="top"))
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=60))
    assert h.by_id()["child2"].root_run_id == "top"
    assert p.paths() == ["/v1/agents/alpha/executions"]


def test_unresolvable_parent_keeps_the_run_and_marks_it() -> None:
    p = Platform(["alpha"])
    p.add(execution("child", "alpha", -50, parent="ghost"))
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    [run] = h.runs
    assert (run.parent_run_id, run.root_run_id) == ("ghost", "ghost")
    assert ("agent_activity.root_unresolved", True) in run.attributes


# -- bad responses -------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}),
        httpx.Response(200, json={"items": []}),
        httpx.Response(200, text='{"data": [{"id": '),
    ],
)
def test_bad_responses_fail_the_poll_and_keep_the_checkpoint(response: httpx.Response) -> None:
    p = Platform(["alpha"])
    p.add(execution("e1", "alpha", -30))
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    before = json.loads(json.dumps(h.state.checkpoint))
    h.source._client._retries = 0
    h.source._client._client._transport = httpx.MockTransport(lambda r: response)
    with pytest.raises(BadResponseError):
        h.poll(T0 + timedelta(seconds=60))
    assert h.state.checkpoint == before


def test_401_is_an_auth_error() -> None:
    h = Harness(lambda r: httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad key"}}))
    with pytest.raises(AuthError):
        h.poll(T0)
    with pytest.raises(AuthError):
        h.source.probe()


def test_repeated_cursor_ends_the_poll() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"data": [execution("e1", "alpha", -30)], "pagination": {"nextCursor": "same", "hasMore": True}}
        )

    h = Harness(handler, agents=["alpha"], tool_calls=False)
    with pytest.raises(CursorLoopError):
        h.poll(T0)


def test_requests_carry_the_token_and_probe_uses_one_request() -> None:
    p = Platform(["alpha"])
    h = Harness(p)
    assert h.source.probe() == "ok: GET /v1/agents returned 1 agent(s)"
    assert p.requests[0].headers["authorization"] == "Bearer s3cret-key-value"
    assert p.requests[0].url.params["limit"] == "1"
    h2 = Harness(p, agents=["alpha"])
    assert h2.source.probe() == "ok: GET /v1/agents/alpha/executions returned 0 execution(s)"


def test_agent_missing_from_one_listing_resumes_without_duplicates() -> None:
    p = Platform(["alpha", "beta"])
    p.add(execution("e1", "beta", -100))
    h = Harness(p, tool_calls=False)
    h.poll(T0)
    p.agents = p.agents[:1]  # beta drops out of the list for a while ...
    h.poll(T0 + timedelta(minutes=11))
    assert "missing_since" in h.agent_checkpoint("beta")
    p.add(execution("e2", "beta", 15 * 60))  # ... and runs meanwhile
    p.agents.append({"id": "beta", "name": "Agent beta"})
    p.requests.clear()
    h.poll(T0 + timedelta(minutes=22))
    assert sorted(r.run_id for r in h.runs) == ["e1", "e2"]  # the gap is read, nothing twice
    beta = [r for r in p.requests if r.url.path == "/v1/agents/beta/executions"]
    assert beta[0].url.params["from"] == "2026-05-10T11:59:30.000Z"  # its own watermark, kept


def test_sub_agent_roots_are_remembered_then_pruned() -> None:
    p = Platform(["alpha"])
    p.add(execution("top", "alpha", -100), execution("child", "alpha", -50, parent="top"))
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    assert h.state.checkpoint["subs"] == {"child": ["top", (T0 - timedelta(seconds=50)).timestamp()]}
    assert h.state.is_seen("top:top")
    h.poll(T0 + timedelta(hours=2))
    assert h.state.checkpoint["subs"] == {}
    assert not h.state.seen  # dedup keys pruned behind the window too


def test_real_store_round_trip(tmp_path: Path) -> None:
    from exporter.state.store import StateStore
    from exporter.state.view import SourceStateView

    p = Platform(["a_sub", "b_top"])
    p.add(execution("top", "b_top", -100, "running"), execution("sub", "a_sub", -90, "running", parent="top"))
    store = StateStore(tmp_path / "state.db")
    source = RuntypeSource(source_config("runtype", name="rt"), transport=httpx.MockTransport(p))
    runs: list[Run] = []

    def poll(now: datetime) -> None:
        ctx = PollContext(checkpoint=store.checkpoint("rt"), now=now, state=SourceStateView(store, "rt"))
        for batch in source.poll(ctx):
            store.commit("rt", batch, [], {}, 1000)
            runs.extend(batch.runs)

    poll(T0)
    assert store.open_run_counts("rt") == {"a_sub": 1, "b_top": 1}
    p.add(execution("sub", "a_sub", -90, "completed", parent="top"))
    poll(T0 + timedelta(minutes=5))
    assert [(r.run_id, r.root_run_id) for r in runs] == [("sub", "top")]
    assert store.open_run_counts("rt") == {"b_top": 1}
    expired = source.expire(next(store.open_runs("rt")), T0 + timedelta(hours=3))
    assert (expired.run_id, expired.status, expired.agent_name) == ("top", RunStatus.INCOMPLETE, "Agent b_top")
    store.close()


def test_agent_deleted_after_listing_is_set_aside_not_failing_the_poll() -> None:
    p = Platform(["alpha", "beta"])
    p.add(execution("e1", "alpha", -10))
    h = Harness(p, tool_calls=False)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/agents/beta"):
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "agent not found"}})
        return p(request)

    h.source._client._client._transport = httpx.MockTransport(handler)
    h.poll(T0)
    assert [r.run_id for r in h.runs] == ["e1"]
    assert "missing_since" in h.agent_checkpoint("beta")
    p.agents = p.agents[:1]
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=60))  # re-listed at once; beta is not read
    assert p.paths() == ["/v1/agents", "/v1/agents/alpha/executions"]
    # A configured agent that does not exist fails the poll (a configuration error).
    h2 = Harness(handler, agents=["beta"])
    with pytest.raises(BadResponseError, match="HTTP 404"):
        h2.poll(T0)


def test_timestamps_with_offsets_and_nanoseconds() -> None:
    p = Platform(["alpha"])
    p.add(
        execution(
            "e1",
            "alpha",
            -60,
            createdAt="2026-05-10T13:59:00.123456789+02:00",
            startedAt="2026-05-10T11:59:01.5Z",
            completedAt="2026-05-10T07:59:30-04:00",
        )
    )
    h = Harness(p, agents=["alpha"], tool_calls=False)
    h.poll(T0)
    [run] = h.runs
    assert run.started_at == T0 - timedelta(seconds=58.5)
    assert run.ended_at == T0 - timedelta(seconds=30)


def test_a_failure_late_in_a_page_keeps_the_runs_already_done() -> None:
    from exporter.sources.http import RetryableError

    p = Platform(["alpha"], page=100)
    p.add(*(execution(f"e{i:02d}", "alpha", -100 + i) for i in range(30)))
    failing = {"e03"}  # newest first: e29 ... e04 are done before e03's tool calls fail

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tool-calls") and request.url.path.split("/")[-2] in failing:
            failing.clear()
            return httpx.Response(500, json={"error": {"code": "internal", "message": "boom"}})
        return p(request)

    h = Harness(handler, agents=["alpha"])
    h.source._client._retries = 0
    with pytest.raises(RetryableError):
        h.poll(T0)
    assert len(h.runs) == 20  # one committed part of the page
    assert "window" not in h.agent_checkpoint("alpha")  # the page's cursor has not moved
    p.requests.clear()
    h.poll(T0 + timedelta(seconds=5))
    assert sorted(r.run_id for r in h.runs) == [f"e{i:02d}" for i in range(30)]
    assert len([x for x in p.paths() if x.endswith("/tool-calls")]) == 10  # only the runs not yet exported


# -- checkpoints written before the reader was split (windows.Progress) ---------------

OLD_CHECKPOINT: dict[str, object] = {  # as the single-module reader wrote it
    "agents": {
        "alpha": {
            "watermark": "2026-05-10T11:00:00+00:00",
            "name": "Agent alpha",
            "window": {"from": "2026-05-10T10:59:30+00:00", "to": "2026-05-10T12:00:00+00:00", "cursor": "2"},
        },
        "beta": {"watermark": "2026-05-10T11:30:00+00:00", "missing_since": "2026-05-10T11:59:00+00:00"},
    },
    "subs": {"child": ["top", (T0 - timedelta(seconds=50)).timestamp()]},
    "listed_at": "2026-05-10T11:59:00+00:00",
}


def test_old_checkpoint_resumes_where_it_stopped() -> None:
    p = Platform(["alpha", "beta"], page=2)
    p.add(*(execution(f"e{i}", "alpha", -100 * i) for i in range(1, 8)))
    p.add(execution("grand", "alpha", 2, parent="child"))  # "child" is known to the old `subs` only
    h = Harness(p, tool_calls=False)
    h.state.checkpoint = json.loads(json.dumps(OLD_CHECKPOINT))
    h.state.seen = {
        "run:e1": (T0 - timedelta(seconds=100)).timestamp(),
        "run:e2": (T0 - timedelta(seconds=200)).timestamp(),
    }
    h.poll(T0 + timedelta(seconds=5))
    assert [
        (r.url.path, r.url.params.get("from"), r.url.params.get("to"), r.url.params.get("cursor")) for r in p.requests
    ] == [
        ("/v1/agents/alpha/executions", "2026-05-10T10:59:30.000Z", "2026-05-10T12:00:00.000Z", "2"),
        ("/v1/agents/alpha/executions", "2026-05-10T10:59:30.000Z", "2026-05-10T12:00:00.000Z", "4"),
        ("/v1/agents/alpha/executions", "2026-05-10T10:59:30.000Z", "2026-05-10T12:00:00.000Z", "6"),
        ("/v1/agents/alpha/executions", "2026-05-10T11:59:30.000Z", "2026-05-10T12:00:05.000Z", None),
    ]  # the part-read window resumed at its cursor, then the next one; beta still set aside
    assert sorted(r.run_id for r in h.runs) == ["e3", "e4", "e5", "e6", "e7", "grand"]
    assert h.by_id()["grand"].root_run_id == "top"  # from the old `subs`, without a request
    assert h.agent_checkpoint("alpha") == {"watermark": "2026-05-10T12:00:05+00:00", "name": "Agent alpha"}
    agents = cast(dict[str, object], OLD_CHECKPOINT["agents"])
    assert h.agent_checkpoint("beta") == agents["beta"]
    assert h.state.checkpoint["listed_at"] == OLD_CHECKPOINT["listed_at"]


def test_old_checkpoint_is_written_back_unchanged() -> None:
    from exporter.sources.runtype.agents import Agents
    from exporter.sources.runtype.lineage import Lineage

    agents = Agents(OLD_CHECKPOINT, T0 - timedelta(hours=1))
    assert agents.entries_json() == OLD_CHECKPOINT["agents"]
    assert agents.listed_at is not None and agents.listed_at.isoformat() == OLD_CHECKPOINT["listed_at"]
    lineage = Lineage("rt", OLD_CHECKPOINT["subs"], MemoryState(), lambda exec_id, agent: None)
    assert lineage.subs_json() == OLD_CHECKPOINT["subs"]


# -- concurrent reads (issue #15) -------------------------------------------------------

AGENTS = [f"ag{a:02d}" for a in range(12)]
STATUSES = ["completed", "failed", "running", "completed", "timed_out", "cancelled", "completed", "failed"]


def busy_platform() -> Platform:
    """Many agents, several pages and windows each: failed runs without error
    text (detail reads), tool calls over two pages (one bad), running runs
    (re-read by id once out of the window), sub-agents of other agents'
    runs (lineage look-ups), and a bad record."""
    p = Platform(AGENTS, page=3)
    for a, agent in enumerate(AGENTS):
        for n, status in enumerate(STATUSES):
            exec_id = f"{agent}-e{n}"
            extra: dict[str, object] = {}
            if n == 1:
                extra["error"] = {"message": f"quota of {agent}"}  # detail only: the list item has no error
            if n == 6:
                extra["totalCost"] = "n/a"
            parent = f"{AGENTS[(a + 1) % len(AGENTS)]}-e0" if n == 3 else None
            item = execution(exec_id, agent, -3000 + 37 * a + 300 * n, status, parent=parent)
            item.update(extra)
            p.add(item)
            p.tool_calls[exec_id] = [
                {"id": f"{exec_id}-tc{k}", "toolName": f"tool{k}", "status": "completed", "createdAt": iso(-2990 + k)}
                for k in range((a + n) % 5)
            ]
            if n == 5:
                p.tool_calls[exec_id].append({"id": f"{exec_id}-bad", "toolName": "odd"})  # no createdAt
    return p


def advance(p: Platform, step: int) -> None:
    """Between polls: running runs finish, new runs arrive."""
    for agent in AGENTS:
        p.add(execution(f"{agent}-e2", agent, -3000 + 600, "completed", duration=900 + step, finalOutput="done"))
        # n1 is listed again by the next poll's lookback (seen: skipped, nothing fetched for it)
        p.add(execution(f"{agent}-n{step}", agent, 100 * step, "completed" if step == 1 else "failed"))


POLLS = (T0, T0 + timedelta(seconds=120), T0 + timedelta(seconds=700))


def scenario(
    concurrency: int, wrap: Callable[[Handler], Handler] = lambda h: h
) -> tuple[Harness, Platform, SourceError | None]:
    p = busy_platform()
    h = Harness(wrap(p), concurrency=concurrency)
    h.source._client._retries = 0
    try:
        for step, now in enumerate(POLLS):
            if step:
                advance(p, step)
            h.poll(now)
    except SourceError as err:
        return h, p, err
    return h, p, None


def request_keys(p: Platform) -> list[str]:
    return sorted(str(r.url) for r in p.requests)


def test_concurrent_polls_yield_exactly_the_batches_of_a_sequential_read() -> None:
    h1, p1, err1 = scenario(1)
    h8, p8, err8 = scenario(8)
    assert err1 is None and err8 is None
    assert len(h1.runs) == len(AGENTS) * (len(STATUSES) + 2)  # the history exercises what runs ahead
    assert h1.records["tool_call"] > 100 and any(r.parent_run_id for r in h1.runs) and h1.rejected
    assert [x for x in p1.paths() if x.endswith("?executionId")]  # sub-agent look-ups happened
    assert len([r for r in p1.requests if r.url.path.endswith("-e2")]) == len(AGENTS)  # open runs re-read by id
    assert h8.batches == h1.batches  # runs, open runs, seen keys, records, rejects, checkpoints, in order
    assert (h8.state.checkpoint, h8.state.open, h8.state.seen) == (h1.state.checkpoint, h1.state.open, h1.state.seen)
    assert request_keys(p8) == request_keys(p1)  # nothing read twice or for nothing


def test_idle_poll_of_many_agents_asks_the_same_as_a_sequential_one() -> None:
    p1, p8 = Platform(AGENTS), Platform(AGENTS)
    h1, h8 = Harness(p1, concurrency=1), Harness(p8, concurrency=8)
    for h in (h1, h8):
        h.poll(T0)
        h.poll(T0 + timedelta(seconds=60))
    assert h8.batches == h1.batches
    assert p8.paths() == p1.paths()  # the first pages come back in agent order


def lineage_platform() -> Platform:
    """Sub-agents whose parents are on later pages of their own agent (a
    chain of two), of other agents (read before or after), shared, a ghost
    (404 on look-up: unresolved), running (a child's root held open) or in
    a cycle."""
    p = Platform(["a", "b", "c"], page=3)
    p.add(
        execution("a1", "a", -10, parent="a8"),  # a8 -> a9: the second step is a2's planned look-up
        execution("a2", "a", -20, parent="a9"),
        execution("a3", "a", -30, parent="b1"),  # b1 -> c2 via b
        execution("a4", "a", -40, "running", parent="b1"),
        execution("a5", "a", -50, parent="ghost"),
        execution("a6", "a", -60, parent="c1"),
        execution("a7", "a", -70, parent="x1"),  # x1 <-> x2: a cycle
        execution("a8", "a", -80, parent="a9"),
        execution("a9", "a", -90),
        execution("b1", "b", -150, parent="c2"),
        execution("b2", "b", -160, parent="c1"),
        execution("c1", "c", -300, "running"),
        execution("c2", "c", -310),
        execution("x1", "c", -320, parent="x2"),
        execution("x2", "c", -330, parent="x1"),
    )
    for exec_id in p.executions:
        p.tool_calls[exec_id] = [{"id": f"{exec_id}-tc", "toolName": "t", "status": "completed", "createdAt": iso(-5)}]
    return p


def test_sub_agent_look_ups_run_ahead_and_change_nothing() -> None:
    def run(concurrency: int) -> tuple[Harness, Platform, list[str]]:
        p = lineage_platform()
        threads: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            if "executionId" in request.url.params:
                threads.append(threading.current_thread().name)
            return p(request)

        h = Harness(handler, concurrency=concurrency)
        h.poll(T0)
        p.add(execution("a4", "a", -40, parent="b1"), execution("c1", "c", -300))  # the running ones finish
        p.add(execution("a0", "a", 30, parent="b2"), execution("b3", "b", 40, parent="a0"))
        h.poll(T0 + timedelta(seconds=120))
        return h, p, threads

    h1, p1, _ = run(1)
    h8, p8, threads8 = run(8)
    roots = {r.run_id: (r.parent_run_id, r.root_run_id) for r in h1.runs}
    assert roots["a1"] == ("a8", "a9") and roots["a3"] == ("b1", "c2") and roots["a5"] == ("ghost", "ghost")
    assert roots["a6"] == ("c1", "c1") and roots["b3"] == ("a0", "c1") and "a7" in roots
    # Each unknown ancestor looked up once (as a read that plans nothing
    # ahead asks), asked of the agent that named it; nothing asked twice.
    looked_up = [r.url.params["executionId"] for r in p1.requests if "executionId" in r.url.params]
    assert looked_up == ["a8", "a9", "b1", "c2", "ghost", "c1", "x1", "x2"]
    assert len(set(request_keys(p1))) == len(p1.requests)
    assert h8.batches == h1.batches
    assert (h8.state.checkpoint, h8.state.open, h8.state.seen) == (h1.state.checkpoint, h1.state.open, h1.state.seen)
    assert request_keys(p8) == request_keys(p1)
    # On the workers: all but the chains' second steps (a8 -> a9 is a2's look-up, planned).
    assert sorted(t.startswith("read-") for t in threads8) == [False] * 2 + [True] * 6


class Overlap:
    """A handler that holds `kind` requests until `parties` of them wait
    together (a barrier with a timeout, no sleeps), recording whether that
    ever failed to happen and the most requests in flight at once."""

    def __init__(self, p: Platform, kind: Callable[[httpx.Request], bool], parties: int, timeout: float) -> None:
        self.p, self.kind = p, kind
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.armed = False
        self.broken = False
        self.in_flight = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.armed and self.kind(request):
            with self.lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                self.broken = True
            finally:
                with self.lock:
                    self.in_flight -= 1
        return self.p(request)


def first_listing(r: httpx.Request) -> bool:
    return r.url.path.endswith("/executions") and "cursor" not in r.url.params and "executionId" not in r.url.params


def tool_calls(r: httpx.Request) -> bool:
    return r.url.path.endswith("/tool-calls")


def detail(r: httpx.Request) -> bool:
    return r.url.path.count("/") == 5


@pytest.mark.parametrize("phase", ["listings", "tool-calls", "re-reads"])
@pytest.mark.parametrize(("concurrency", "overlaps"), [(8, True), (1, False)])
def test_requests_really_overlap(phase: str, concurrency: int, overlaps: bool) -> None:
    parties = 4
    agents = [f"ag{i}" for i in range(2 * parties)]
    p = Platform(agents, page=100)
    kind = {"listings": first_listing, "tool-calls": tool_calls, "re-reads": detail}[phase]
    # listings: an idle poll, one listing per agent
    if phase == "tool-calls":  # one page of finished runs, each with its tool calls
        p.add(*(execution(f"e{i}", "ag0", -100 + i) for i in range(2 * parties)))
    elif phase == "re-reads":  # runs left running, re-read by id once out of the window
        p.add(*(execution(f"e{i}", agents[i], -100 + i, "running") for i in range(2 * parties)))
    overlap = Overlap(p, kind, parties, timeout=5.0 if overlaps else 0.3)
    h = Harness(overlap, concurrency=concurrency, agents=agents)
    if phase != "tool-calls":
        h.poll(T0)  # the listings and re-reads of the next poll are held
    overlap.armed = True
    h.poll(T0 + timedelta(seconds=120))
    assert len([r for r in p.requests if kind(r)]) >= 2 * parties
    if overlaps:
        assert not overlap.broken and overlap.most >= parties  # `parties` requests in flight together
    else:
        assert overlap.broken and overlap.most == 1  # a sequential reader never gets there


def fails(
    match: Callable[[httpx.Request], bool], response: Callable[[], httpx.Response]
) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        def failing(request: httpx.Request) -> httpx.Response:
            return response() if match(request) else handler(request)

        return failing

    return wrap


def http_500() -> httpx.Response:
    return httpx.Response(500, json={"error": {"code": "internal", "message": "boom"}})


def html_200() -> httpx.Response:
    return httpx.Response(200, text="<html>Bad gateway</html>", headers={"content-type": "text/html"})


@pytest.mark.parametrize(
    ("match", "response"),
    [
        (lambda r: r.url.path.endswith("/ag04-e3/tool-calls"), http_500),  # a page's tool calls
        (lambda r: r.url.path.endswith("/ag04-e0/tool-calls") and "cursor" in r.url.params, html_200),  # 2nd page
        (lambda r: r.url.path.endswith("/ag07-e4"), http_500),  # a failed run's detail
        (lambda r: r.url.path == "/v1/agents/ag05/executions" and "cursor" not in r.url.params, http_500),  # listing
        (lambda r: r.url.path.endswith("/ag09-e2"), http_500),  # an open run's re-read (second poll)
        (lambda r: r.url.path.endswith("/ag02-e2/tool-calls"), http_500),  # a re-read run's tool calls
        (lambda r: r.url.params.get("executionId") == "ag05-e0", http_500),  # a sub-agent's parent look-up
    ],
    ids=[
        "tool-calls",
        "tool-calls-page-2",
        "error-detail",
        "first-listing",
        "re-read",
        "re-read-tool-calls",
        "parent-look-up",
    ],
)
def test_a_failing_concurrent_request_fails_the_poll_as_a_sequential_read_does(
    match: Callable[[httpx.Request], bool], response: Callable[[], httpx.Response]
) -> None:
    h1, _, err1 = scenario(1, fails(match, response))
    h8, _, err8 = scenario(8, fails(match, response))  # (requests read ahead of the failure may differ)
    assert err1 is not None and err8 is not None
    assert (type(err8), str(err8)) == (type(err1), str(err1))
    assert h8.batches == h1.batches and h1.batches  # the same commits before the failure
    assert h8.state.checkpoint == h1.state.checkpoint


def test_a_shard_reads_only_the_listed_agents_of_its_shard() -> None:
    agents = [f"agent{i}" for i in range(8)]
    p = Platform(agents)
    p.add(*(execution(f"e{i}", a, -60 * (i + 1)) for i, a in enumerate(agents)))
    read: dict[int, set[str]] = {}
    for k in range(2):
        h = Harness(p)
        config = dataclasses.replace(source_config("runtype", name=f"rt#{k}/2"), shards=2, shard=k)
        h.source = RuntypeSource(config, transport=httpx.MockTransport(p))
        h.poll(T0)
        read[k] = {r.agent_id for r in h.runs}
        assert read[k] == {a for a in agents if shard_of(a, 2) == k}
        assert sorted(cast(dict[str, object], h.state.checkpoint["agents"])) == sorted(read[k])
    assert read[0] | read[1] == set(agents) and read[0] and read[1]  # every agent, in one shard each
