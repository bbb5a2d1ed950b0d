"""agent_activities source: the vendor pages' examples, completed windows, in-flight runs,
detail -> tool calls and span events, dedup, failures, idle cost."""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import httpx
import pytest

from exporter.model import Batch, Run, RunStatus, Severity, ToolStatus
from exporter.sources.agent_activities.checkpoint import AgentProgress
from exporter.sources.agent_activities.reader import AgentActivitiesSource
from exporter.sources.base import PollContext
from exporter.sources.http import AuthError, BadResponseError, CursorLoopError
from exporter.state.store import StateStore
from exporter.state.view import SourceStateView
from tests.conftest import MemoryState, json_of, source_config

FIXTURES = Path(__file__).parent / "fixtures" / "agent_activities"
T0 = datetime(2026, 3, 19, 14, 30, 0, tzinfo=timezone.utc)
TOKEN = "tok-123"
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> dict[str, object]:
    body: dict[str, object] = json.loads((FIXTURES / name).read_text())
    return body


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


# -- an in-memory state that applies batches as the store commits them ------


class Harness:
    def __init__(self, handler: Handler, state: MemoryState | None = None, **options: object) -> None:
        options.setdefault("agents", ["agent-a"])
        secret = str(options.pop("secret", TOKEN))
        start_from = float(cast(float | str, options.pop("start_from", 3600.0)))
        concurrency = int(cast(int, options.pop("concurrency", 1)))
        self.state = state or MemoryState()
        self.source = AgentActivitiesSource(
            source_config(
                "agent_activities",
                name="acts",
                secret=secret,
                start_from=start_from,
                concurrency=concurrency,
                option_map=options,
            ),
            transport=httpx.MockTransport(handler),
        )
        self.source._client._retries = 0  # retries are tested in test_http
        self.batches: list[Batch] = []  # every batch yielded, in order
        self.runs: list[Run] = []
        self.events = 0
        self.rejected: list[str] = []
        self.records: dict[str, int] = {}

    def poll(self, now: datetime, stop_after: int | None = None) -> None:
        ctx = PollContext(checkpoint=self.state.checkpoint, now=now, state=self.state)
        for n, batch in enumerate(self.source.poll(ctx)):
            self.batches.append(batch)
            self.state.apply(batch)
            self.runs += batch.runs
            self.events += len(batch.events)
            self.rejected += [r.reason for r in batch.rejected]
            for kind, count in batch.records.items():
                self.records[kind] = self.records.get(kind, 0) + count
            if stop_after is not None and n + 1 >= stop_after:
                return  # as if the process died after this commit


# -- a fake platform ----------------------------------------------------------


def envelope_error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"status": "error", "status_code": status, "message": message})


class Api:
    """The documented API over in-memory runs: completed_on/has_completed
    filters, sort, page/per_page (capped by the server), run detail."""

    def __init__(self, cap: int = 100) -> None:
        self.cap = cap
        self.runs: dict[str, list[dict[str, object]]] = {"agent-a": [], "agent-b": []}
        self.details: dict[str, dict[str, object]] = {}
        self.requests: list[httpx.Request] = []

    def add(
        self,
        run_id: str,
        start: float,
        end: float | None,
        status: str = "completed",
        agent: str = "agent-a",
        **detail: object,
    ) -> dict[str, object]:
        attrs: dict[str, object] = {
            "agent_uid": agent,
            "agent_version_uid": "ver-1",
            "scratchpad_uid": "sp-1",
            "workflow_id": "wf-1",
            "approach": "loop",
            "status": status,
            "sandbox": False,
            "trigger_type": "email_received",
            "started_on": iso(start),
            "completed_on": iso(end) if end is not None else None,
            "created_on": iso(start),
        }
        run: dict[str, object] = {"id": run_id, "type": "agent-runs", "attributes": attrs}
        self.runs.setdefault(agent, []).append(run)
        self.details[run_id] = {"result": None, "error": None, "token_usage": None, **detail}
        return run

    def finish(self, run_id: str, end: float, status: str = "completed", **detail: object) -> None:
        for runs in self.runs.values():
            for run in runs:
                if run["id"] == run_id:
                    attrs = run["attributes"]
                    assert isinstance(attrs, dict)
                    attrs.update(status=status, completed_on=iso(end))
        self.details[run_id].update(detail)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return envelope_error(401, "unauthorized")
        parts = request.url.path.strip("/").split("/")  # api agents {uid} activities [run]
        runs = self.runs.get(parts[2])
        if runs is None:
            return envelope_error(404, "agent not found")
        if len(parts) == 5:
            run = next((r for r in runs if r["id"] == parts[4]), None)
            if run is None or parts[4] not in self.details:
                return envelope_error(404, "run not found")
            data = copy.deepcopy(run)
            cast(dict[str, object], data["attributes"]).update(self.details[parts[4]])
            return httpx.Response(200, json={"status": "success", "status_code": 200, "data": data})
        return self.listing(request, runs)

    def listing(self, request: httpx.Request, runs: list[dict[str, object]]) -> httpx.Response:
        q = request.url.params

        def attr(run: dict[str, object], key: str) -> object:
            return run["attributes"][key]  # type: ignore[index]

        def when(text: str) -> datetime:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            assert parsed.tzinfo is not None, "date filters must carry a timezone"
            return parsed

        visible = list(runs)
        if "has_completed" in q:
            done = q["has_completed"] == "true"
            visible = [r for r in visible if (attr(r, "completed_on") is not None) == done]
        if "completed_on_from" in q:
            low = when(q["completed_on_from"])
            visible = [r for r in visible if attr(r, "completed_on") and when(str(attr(r, "completed_on"))) >= low]
        if "completed_on_to" in q:
            high = when(q["completed_on_to"])
            visible = [r for r in visible if attr(r, "completed_on") and when(str(attr(r, "completed_on"))) <= high]
        field = q.get("sort", "-started_on")
        visible.sort(key=lambda r: str(attr(r, field[1:]) or ""), reverse=field.startswith("-"))
        per_page = min(int(q.get("per_page", 10)), self.cap)
        page = int(q.get("page", 1))
        chunk = visible[(page - 1) * per_page : page * per_page]
        meta = {
            "page": page,
            "per_page": per_page,
            "total_pages": math.ceil(len(visible) / per_page),
            "total_items": len(visible),
        }
        return httpx.Response(
            200, json={"status": "success", "status_code": 200, "data": {"items": copy.deepcopy(chunk), "_meta": meta}}
        )

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


STEPS = [
    {"step": 1, "action": "read_entity", "input": {"uid": "m1"}, "output": {"subject": "hi"}},
    {"step": 2, "action": "classify_entity", "input": {"uid": "m1"}, "output": {"classification": "x"}},
    {"step": 3, "action": "web_search", "input": {"q": "acme"}, "output": {"error": {"message": "quota exceeded"}}},
]
TIMELINE = [
    {"event": "goal_defined", "at": iso(0), "detail": "goal"},
    {"event": "tool_called", "at": iso(1), "tool": "read_entity"},
    {"event": "tool_called", "at": iso(3), "tool": "web_search"},
    {"event": "run_failed", "at": iso(6)},
]


# -- the vendor pages' examples ----------------------------------------------


def seed_handler(detail: dict[str, object]) -> Callable[[httpx.Request], httpx.Response]:
    listing = fixture("list_activities.json")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/activities"):
            body = copy.deepcopy(listing)
            if request.url.params.get("has_completed") == "false":
                body["data"]["items"] = []  # type: ignore[index]
                body["data"]["_meta"].update(total_pages=0, total_items=0)  # type: ignore[index]
            else:
                body["data"]["_meta"]["total_pages"] = 1  # type: ignore[index]  # the example says 5
            return httpx.Response(200, json=body)
        return httpx.Response(200, json=detail)

    return handler


def test_seed_examples_parse_into_a_run_with_tool_calls_steps_and_events() -> None:
    h = Harness(seed_handler(fixture("get_activity.json")), agents=["a1b2c3d4-e5f6-7890-abcd-ef1234567890"])
    h.poll(datetime(2026, 3, 19, 15, 0, tzinfo=timezone.utc))
    assert h.rejected == []
    [run] = h.runs
    assert (run.run_id, run.agent_id, run.agent_name) == (
        "run-uuid-here",
        "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
    )
    assert (run.status, run.raw_status, run.trigger_type, run.sandbox) == (
        RunStatus.SUCCEEDED,
        "completed",
        "email_received",
        False,
    )
    assert (run.started_at, run.ended_at) == (T0, T0 + timedelta(seconds=75))
    assert run.input == '{"message_uid":"msg-uuid-here"}' and run.error_message is None
    calls = [(c.name, c.id, c.started_at, c.ended_at, c.status) for c in run.tool_calls]
    assert calls == [
        ("read_entity", "1", T0 + timedelta(seconds=5), T0 + timedelta(seconds=10), ToolStatus.UNKNOWN),
        ("send_email", "3", T0 + timedelta(seconds=10), T0 + timedelta(seconds=75), ToolStatus.UNKNOWN),
    ]
    assert all(("agent_activity.time_derived", True) in c.attributes for c in run.tool_calls)
    assert run.tool_calls[1].output == '{"uid":"sent-email-uuid","status":"sent"}'
    assert [(s.key, s.name, s.started_at) for s in run.steps] == [("2", "classify_entity", None)]
    assert [(e.name, e.category, e.severity, e.status) for e in run.events] == [
        ("goal_defined", "timeline", Severity.INFO, "defined"),
        ("run_completed", "timeline", Severity.INFO, "completed"),
    ]
    assert h.events == 2
    assert ("agent_activity.workflow_id", "agent-loop-a1b2c3d4") in run.attributes
    assert h.records == {"run": 1, "run_detail": 1, "step": 3, "timeline_entry": 4}


def test_sandbox_step_is_recorded_as_what_it_would_do() -> None:
    detail = fixture("get_activity.json")
    attrs = detail["data"]["attributes"]  # type: ignore[index]
    attrs["sandbox"] = True
    attrs["result"]["step_history"][2] = fixture("sandbox_step.json")
    listing_sandbox = fixture("list_activities.json")
    listing_sandbox["data"]["items"][0]["attributes"]["sandbox"] = True  # type: ignore[index]
    base = seed_handler(detail)

    def handler(request: httpx.Request) -> httpx.Response:
        response = base(request)
        if request.url.path.endswith("/activities") and request.url.params.get("has_completed") == "true":
            body = copy.deepcopy(listing_sandbox)
            body["data"]["_meta"]["total_pages"] = 1  # type: ignore[index]
            return httpx.Response(200, json=body)
        return response

    h = Harness(handler, agents=["a1b2c3d4-e5f6-7890-abcd-ef1234567890"])
    h.poll(datetime(2026, 3, 19, 15, 0, tzinfo=timezone.utc))
    [run] = h.runs
    assert run.sandbox is True
    send = run.tool_calls[1]
    assert send.name == "send_email" and send.status is ToolStatus.UNKNOWN  # never a real effect
    assert ("agent_activity.sandbox.would", "send") in send.attributes


# -- detail mapping --------------------------------------------------------------


def test_failed_run_with_error_object_failed_tool_and_token_object() -> None:
    api = Api()
    api.add(
        "r1",
        0,
        6,
        status="failed",
        result={"step_history": STEPS, "timeline": TIMELINE},
        error={"message": "tool quota", "type": "QuotaError"},
        token_usage={"input_tokens": 100, "output_tokens": 20},
    )
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1))
    [run] = h.runs
    assert (run.status, run.error_message, run.error_type) == (RunStatus.FAILED, "tool quota", "QuotaError")
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (100, 20, None)
    search = run.tool_calls[1]
    assert (search.name, search.status, search.error_message) == ("web_search", ToolStatus.FAILED, "quota exceeded")
    assert run.tool_calls[0].status is ToolStatus.UNKNOWN
    failed = [e for e in run.events if e.name == "run_failed"]
    assert [(e.severity, e.status) for e in failed] == [(Severity.ERROR, "failed")]


@pytest.mark.parametrize(
    ("status", "error", "tokens", "expected"),
    [
        ("stopped", None, 42, (RunStatus.CANCELLED, None, (None, None, 42))),
        ("cancelled", None, {"total_tokens": 7}, (RunStatus.CANCELLED, None, (None, None, 7))),
        (
            "failed",
            "boom",
            {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            (RunStatus.FAILED, "boom", (1, 2, 3)),
        ),
        ("exploded", None, None, (RunStatus.UNKNOWN, None, (None, None, None))),
    ],
)
def test_status_error_and_token_shapes(
    status: str, error: object, tokens: object, expected: tuple[object, ...]
) -> None:
    api = Api()
    api.add("r1", 0, 5, status=status, error=error, token_usage=tokens)
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1))
    [run] = h.runs
    assert (run.status, run.error_message, (run.input_tokens, run.output_tokens, run.total_tokens)) == expected
    assert run.raw_status == status and h.rejected == []


def test_bad_parts_of_a_detail_are_rejected_and_the_run_kept() -> None:
    api = Api()
    timeline = [*TIMELINE, {"event": "tool_called", "at": "yesterday", "tool": "x"}, "junk"]
    api.add(
        "r1",
        0,
        6,
        status="failed",
        result={"step_history": [*STEPS, {"step": "two"}], "timeline": timeline},
        token_usage={"input_tokens": "many"},
    )
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1))
    [run] = h.runs
    assert sorted(h.rejected) == ["bad_timestamp", "bad_type", "bad_type", "bad_value"]
    assert len(run.tool_calls) == 2 and run.total_tokens is None


def test_detail_404_exports_the_run_from_its_listing() -> None:
    api = Api()
    api.add("r1", 0, 5)
    del api.details["r1"]  # deleted between listing and detail
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1))
    [run] = h.runs
    assert run.status is RunStatus.SUCCEEDED and run.tool_calls == ()
    assert ("agent_activity.detail_missing", True) in run.attributes


def test_fetch_detail_off_reads_listings_only() -> None:
    api = Api()
    api.add("r1", 0, 5)
    h = Harness(api, fetch_detail=False)
    h.poll(T0 + timedelta(minutes=1))
    assert len(h.runs) == 1
    assert all(p.endswith("/activities") for p in api.paths())


# -- incremental reading -----------------------------------------------------------


def test_window_params_and_auth_header() -> None:
    api = Api()
    h = Harness(api, per_page=7, lookback=30.0)
    h.poll(T0 + timedelta(hours=1))
    completed, inflight = api.requests
    q = completed.url.params
    assert q["completed_on_from"] == "2026-03-19T14:29:30.000Z"  # watermark (now - start_from) - lookback
    assert q["completed_on_to"] == "2026-03-19T15:30:00.000Z"
    assert (q["sort"], q["has_completed"], q["per_page"], q["page"]) == ("+completed_on", "true", "7", "1")
    assert inflight.url.params["has_completed"] == "false"
    assert completed.headers["Authorization"] == f"Bearer {TOKEN}"
    assert h.state.checkpoint == {
        "agents": {"agent-a": {"watermark": (T0 + timedelta(hours=1)).isoformat(), "inflight_wait": 4}}
    }


def test_custom_auth_header_and_raw_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "status": "success",
                "status_code": 200,
                "data": {"items": [], "_meta": {"page": 1, "per_page": 50, "total_pages": 0, "total_items": 0}},
            },
        )

    h = Harness(handler, auth_header="X-Token", auth_scheme="")
    h.poll(T0)
    assert seen[0].headers["X-Token"] == TOKEN and "Authorization" not in seen[0].headers


def test_incremental_polls_export_each_run_once_and_trust_server_page_size() -> None:
    api = Api(cap=2)  # asks for 50, the server gives 2 per page
    for i in range(5):
        api.add(f"r{i}", i * 10, i * 10 + 5)
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1))
    assert sorted(r.run_id for r in h.runs) == ["r0", "r1", "r2", "r3", "r4"]
    pages = [r.url.params["page"] for r in api.requests if r.url.params.get("has_completed") == "true"]
    assert pages == ["1", "2", "3"]
    api.add("r5", 70, 75)
    api.add("r6", 80, 95)
    h.poll(T0 + timedelta(minutes=2))
    h.poll(T0 + timedelta(minutes=3))
    assert sorted(r.run_id for r in h.runs) == [f"r{i}" for i in range(7)]
    assert len(h.runs) == 7


def test_repeated_page_counts_once() -> None:
    api = Api()
    api.add("r1", 0, 5, result={"timeline": TIMELINE[:1]})
    api.add("r2", 1, 6, result={"timeline": TIMELINE[:1]})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":  # page 2 repeats page 1
            request = httpx.Request("GET", request.url.copy_set_param("page", "1"), headers=request.headers)
            response = api(request)
            body = response.json()
            body["data"]["_meta"].update(page=2, total_pages=2)
            return httpx.Response(200, json=body)
        response = api(request)
        if request.url.path.endswith("/activities") and request.url.params.get("has_completed") == "true":
            body = response.json()
            body["data"]["_meta"]["total_pages"] = 2
            return httpx.Response(200, json=body)
        return response

    h = Harness(handler)
    h.poll(T0 + timedelta(minutes=1))
    assert sorted(r.run_id for r in h.runs) == ["r1", "r2"]
    assert h.events == 2


def test_in_flight_run_is_open_then_exported_once_finished() -> None:
    api = Api()
    api.add("r1", 0, None, status="running")
    api.add("r2", 2, None, status="pending")
    h = Harness(api)
    h.poll(T0 + timedelta(seconds=10))
    assert h.runs == []
    assert h.state.in_progress() == {"agent-a": 2}
    assert h.state.open["r1"].data["listing"]["status"] == "running"  # type: ignore[index]
    api.finish("r1", 20, result={"timeline": TIMELINE})
    h.poll(T0 + timedelta(seconds=30))
    assert [(r.run_id, r.status) for r in h.runs] == [("r1", RunStatus.SUCCEEDED)]
    assert h.state.in_progress() == {"agent-a": 1}
    assert "r1" not in h.state.open
    h.poll(T0 + timedelta(seconds=40))  # re-read in the lookback: nothing changes
    assert len(h.runs) == 1 and h.events == 2


def test_in_flight_run_that_vanished_stops_counting_as_in_progress() -> None:
    api = Api()
    api.add("r1", 0, None, status="running")
    h = Harness(api)
    h.poll(T0 + timedelta(seconds=10))
    assert h.state.in_progress() == {"agent-a": 1}
    api.runs["agent-a"].clear()  # gone from the in-flight list, not (yet) in any completed window
    h.poll(T0 + timedelta(seconds=20))
    assert h.state.in_progress() == {} and h.state.open["r1"].finished


def test_crash_mid_window_resumes_at_the_committed_page() -> None:
    api = Api(cap=2)
    for i in range(6):
        api.add(f"r{i}", i, i + 1)
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1), stop_after=1)  # page 1 committed, then "kill -9"
    assert len(h.runs) == 2
    assert json_of(h.state.checkpoint)["agents"]["agent-a"]["window"]["page"] == 2
    first = len(api.requests)
    h2 = Harness(api, state=h.state)  # a new process on the same state
    h2.poll(T0 + timedelta(minutes=2))
    assert sorted(r.run_id for r in h.runs + h2.runs) == [f"r{i}" for i in range(6)]
    resumed = api.requests[first]
    assert resumed.url.params["page"] == "2"
    assert resumed.url.params["completed_on_to"] == "2026-03-19T14:31:00.000Z"  # the same window


def test_resume_restarts_the_window_when_the_server_page_size_changed() -> None:
    api = Api(cap=2)
    for i in range(6):
        api.add(f"r{i}", i, i + 1)
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1), stop_after=1)
    api.cap = 4  # page 2 of 4-run pages is not page 2 of 2-run pages
    first = len(api.requests)
    h.poll(T0 + timedelta(minutes=2))
    assert [r.url.params["page"] for r in api.requests[first : first + 2]] == ["2", "1"]
    assert sorted(r.run_id for r in h.runs) == [f"r{i}" for i in range(6)]
    assert len(h.runs) == 6


def test_idle_polls_cost_one_request_per_agent_plus_an_occasional_in_flight_listing() -> None:
    api = Api()
    api.add("r1", 0, 5, agent="agent-a")
    api.add("r2", 0, 5, agent="agent-b")
    h = Harness(api, agents=["agent-a", "agent-b"])
    h.poll(T0 + timedelta(minutes=1))
    assert len(h.runs) == 2
    costs = []
    for n in range(2, 12):
        before = len(api.requests)
        h.poll(T0 + timedelta(minutes=n))
        costs.append(len(api.requests) - before)
    # Busy first poll asked the in-flight list; then 4 idle polls at 1 per agent, the 5th adds it again.
    assert costs == [2, 2, 2, 2, 4, 2, 2, 2, 2, 4]


def test_new_runs_trigger_the_in_flight_listing() -> None:
    api = Api()
    h = Harness(api, inflight_every=100)
    h.poll(T0 + timedelta(minutes=1))  # the first poll lists the runs in flight
    h.poll(T0 + timedelta(minutes=2))  # idle: the completed window only
    api.add("r1", 150, 170)
    h.poll(T0 + timedelta(minutes=3))  # a run ended: the agent is busy, look for runs in flight too
    kinds = [r.url.params.get("has_completed") for r in api.requests if r.url.path.endswith("/activities")]
    assert kinds == ["true", "false", "true", "true", "false"]


def test_in_flight_listing_can_be_turned_off() -> None:
    api = Api()
    api.add("r1", 0, 5)
    h = Harness(api, inflight_every=0)
    h.poll(T0 + timedelta(minutes=1))
    h.poll(T0 + timedelta(minutes=2))
    assert len(h.runs) == 1
    assert all(r.url.params.get("has_completed") != "false" for r in api.requests)


def test_seen_keys_are_pruned_behind_the_windows() -> None:
    api = Api()
    api.add("r1", 0, 5)
    h = Harness(api)
    h.poll(T0 + timedelta(minutes=1))
    assert "run:r1" in h.state.seen
    h.poll(T0 + timedelta(hours=1))
    assert "run:r1" not in h.state.seen
    assert len(h.runs) == 1


# -- failures ------------------------------------------------------------------------


def test_bad_record_is_rejected_and_the_rest_of_the_page_used() -> None:
    api = Api()
    api.add("r1", 0, 5)
    bad = [
        {"id": "x1", "attributes": {"status": "completed", "completed_on": iso(3)}},  # no start or creation
        {"id": "x2", "attributes": {"started_on": "soon", "completed_on": iso(3)}},
        {"attributes": {}},
        "nope",
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        response = api(request)
        if request.url.params.get("has_completed") == "true":
            body = response.json()
            body["data"]["items"] = bad + body["data"]["items"]
            return httpx.Response(200, json=body)
        return response

    h = Harness(handler)
    h.poll(T0 + timedelta(minutes=1))
    assert sorted(h.rejected) == ["bad_timestamp", "bad_type", "missing_field", "missing_field"]
    assert [r.run_id for r in h.runs] == ["r1"]


def test_repeated_page_number_ends_the_poll() -> None:
    def handler(request: httpx.Request) -> httpx.Response:  # ignores `page`: always page 1 of 3
        item = {"id": f"z{request.url.params['page']}", "attributes": {"status": "running", "started_on": iso(0)}}
        return httpx.Response(
            200,
            json={
                "status": "success",
                "status_code": 200,
                "data": {"items": [item], "_meta": {"page": 1, "per_page": 1, "total_pages": 3, "total_items": 3}},
            },
        )

    h = Harness(handler)
    with pytest.raises(CursorLoopError):
        h.poll(T0)
    assert "watermark" not in json_of(h.state.checkpoint)["agents"]["agent-a"]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}), BadResponseError),
        (httpx.Response(200, text='{"status": "success", "data": {"items": [{"id": "a'), BadResponseError),
        (httpx.Response(200, json={"status": "success", "data": []}), BadResponseError),
        (httpx.Response(200, json={"status": "success", "data": {"items": []}}), BadResponseError),
        (envelope_error(401, "invalid token"), AuthError),
        (envelope_error(403, "no permission"), AuthError),
    ],
)
def test_bad_responses_fail_the_poll_and_keep_the_checkpoint(response: httpx.Response, error: type[Exception]) -> None:
    h = Harness(lambda request: response)
    with pytest.raises(error):
        h.poll(T0)
    assert json_of(h.state.checkpoint).get("agents", {}).get("agent-a", {}).get("watermark") is None


def test_an_unknown_agent_fails_the_poll_but_not_the_other_agents() -> None:
    api = Api()
    api.add("r1", 0, 5, agent="agent-b")
    h = Harness(api, agents=["missing", "agent-b"])
    with pytest.raises(BadResponseError, match="HTTP 404"):
        h.poll(T0 + timedelta(minutes=1))
    assert [r.run_id for r in h.runs] == ["r1"]
    agents = json_of(h.state.checkpoint)["agents"]
    assert "watermark" in agents["agent-b"] and "watermark" not in agents["missing"]


def test_wrong_token_is_an_auth_error() -> None:
    h = Harness(Api(), secret="wrong")
    with pytest.raises(AuthError):
        h.poll(T0)


# -- expire and probe ------------------------------------------------------------------


def test_expire_builds_an_incomplete_run() -> None:
    api = Api()
    api.add("r1", 0, None, status="running")
    h = Harness(api)
    h.poll(T0 + timedelta(seconds=10))
    run = h.source.expire(h.state.open["r1"], T0 + timedelta(hours=7))
    assert (run.status, run.ended_at, run.started_at, run.agent_id) == (RunStatus.INCOMPLETE, None, T0, "agent-a")


def test_probe_asks_one_small_page() -> None:
    api = Api()
    api.add("r1", 0, 5)
    h = Harness(api)
    assert h.source.probe() == "ok: agent agent-a lists 1 run(s)"
    [request] = api.requests
    assert request.url.params["per_page"] == "1"


def test_batches_commit_to_the_real_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    api = Api()
    api.add("r1", 0, None, status="running")
    api.add("r2", 0, 4, result={"step_history": STEPS, "timeline": TIMELINE}, token_usage=9)
    source = AgentActivitiesSource(
        source_config("agent_activities", name="acts", secret=TOKEN, agents=["agent-a"]),
        transport=httpx.MockTransport(api),
    )
    runs: list[Run] = []

    def poll(now: datetime) -> None:
        ctx = PollContext(checkpoint=store.checkpoint("acts"), now=now, state=SourceStateView(store, "acts"))
        for batch in source.poll(ctx):
            store.commit("acts", batch, [], {}, 1000)
            runs.extend(batch.runs)

    poll(T0 + timedelta(seconds=10))
    assert [r.run_id for r in runs] == ["r2"] and store.open_run_counts("acts") == {"agent-a": 1}
    api.finish("r1", 12)
    poll(T0 + timedelta(seconds=20))
    poll(T0 + timedelta(seconds=30))
    assert [r.run_id for r in runs] == ["r2", "r1"] and store.open_run_counts("acts") == {}
    checkpoint = json_of(store.checkpoint("acts"))
    assert checkpoint["agents"]["agent-a"]["watermark"] == (T0 + timedelta(seconds=30)).isoformat()


# -- statuses going backwards (docs/platforms.md, "What every reader must survive") --


def earlier(attrs: dict[str, object], status: str = "running") -> dict[str, object]:
    """A finished run's attributes as the platform showed them before it ended."""
    cut = attrs.get("result")
    if isinstance(cut, dict):
        cut = {"step_history": cut.get("step_history", [])[:1], "timeline": cut.get("timeline", [])[:2]}
    return {
        **attrs,
        "status": status,
        "completed_on": None,
        "token_usage": None,
        "error": None,
        "result": cut if "result" in attrs else None,
    }


class Backwards:
    """The Api with a fault: the next `listings` completed-window pages and
    the next `details` detail answers of run `run_id` show it in an earlier
    state; `inflight` in-flight listings list it running."""

    def __init__(self, api: Api, run_id: str, listings: int = 0, details: int = 0, inflight: int = 0) -> None:
        self.api, self.run_id = api, run_id
        self.listings, self.details, self.inflight = listings, details, inflight

    def detail_requests(self) -> int:
        return sum(1 for r in self.api.requests if r.url.path.endswith(f"/{self.run_id}"))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self.api(request)
        body = response.json()
        if request.url.path.endswith(f"/{self.run_id}") and response.status_code == 200 and self.details > 0:
            self.details -= 1
            body["data"]["attributes"] = earlier(body["data"]["attributes"])
            return httpx.Response(200, json=body)
        completed = request.url.params.get("has_completed")
        if completed == "true" and self.listings > 0:
            for item in body["data"]["items"]:
                if item["id"] == self.run_id:
                    self.listings -= 1
                    item["attributes"] = earlier(item["attributes"])
            return httpx.Response(200, json=body)
        if completed == "false" and self.inflight > 0:
            self.inflight -= 1
            run = next(r for r in self.api.runs["agent-a"] if r["id"] == self.run_id)
            item = copy.deepcopy(run)
            item["attributes"] = earlier(item["attributes"])  # type: ignore[arg-type]
            body["data"]["items"].append(item)
            body["data"]["_meta"].update(total_items=len(body["data"]["items"]), total_pages=1)
            return httpx.Response(200, json=body)
        return response


def full_run(api: Api) -> None:
    api.add(
        "r1",
        0,
        6,
        status="failed",
        result={"step_history": STEPS, "timeline": TIMELINE},
        error={"message": "tool quota"},
        token_usage={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120},
    )


def assert_full(run: Run) -> None:
    assert (run.run_id, run.status, run.raw_status) == ("r1", RunStatus.FAILED, "failed")
    assert (run.started_at, run.ended_at) == (T0, T0 + timedelta(seconds=6))
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (100, 20, 120)
    assert [c.name for c in run.tool_calls] == ["read_entity", "web_search"]
    assert run.error_message == "tool quota" and len(run.events) == 2


def test_run_shown_unfinished_in_its_completed_window_is_asked_by_id_and_not_lost() -> None:
    api = Api()
    full_run(api)
    fault = Backwards(api, "r1", listings=1)
    h = Harness(fault)
    h.poll(T0 + timedelta(minutes=1))  # the window [.., 14:31] shows r1 running
    assert h.runs == [] and fault.detail_requests() == 0
    held = h.state.open["r1"]
    assert held.finished and held.data["recheck"] == "listed_unfinished"
    assert h.state.in_progress() == {}  # it has ended: the server filtered it as completed
    assert json_of(h.state.checkpoint)["agents"]["agent-a"]["watermark"] == (T0 + timedelta(minutes=1)).isoformat()
    h.poll(T0 + timedelta(minutes=2))  # completed_on 14:30:06 is behind this window: only the re-check finds it
    [run] = h.runs
    assert_full(run)
    assert fault.detail_requests() == 1 and h.state.open == {} and "run:r1" in h.state.seen
    h.poll(T0 + timedelta(minutes=3))
    assert len(h.runs) == 1 and h.events == 2 and fault.detail_requests() == 1


def test_a_re_check_showing_an_earlier_state_again_waits_another_poll() -> None:
    api = Api()
    full_run(api)
    fault = Backwards(api, "r1", listings=1, details=1)
    h = Harness(fault)
    h.poll(T0 + timedelta(minutes=1))
    h.poll(T0 + timedelta(minutes=2))  # the detail too shows it running: not exported, still held
    assert h.runs == [] and h.state.open["r1"].data["recheck"] == "listed_unfinished"
    h.poll(T0 + timedelta(minutes=3))
    [run] = h.runs
    assert_full(run)
    assert fault.detail_requests() == 2


def test_detail_showing_an_earlier_state_is_not_exported_and_is_asked_again() -> None:
    api = Api()
    full_run(api)
    fault = Backwards(api, "r1", details=1)
    h = Harness(fault)
    h.poll(T0 + timedelta(minutes=1))  # listed finished, detail shows it running with no tokens
    assert h.runs == [] and "run:r1" not in h.state.seen
    held = h.state.open["r1"]
    assert held.finished and held.data["recheck"] == "detail_behind"
    assert held.data["listing"]["completed_on"] == iso(6)  # type: ignore[index]
    h.poll(T0 + timedelta(minutes=2))
    [run] = h.runs
    assert_full(run)  # full tokens and tool calls, from the final detail
    assert fault.detail_requests() == 2 and h.state.open == {}
    h.poll(T0 + timedelta(minutes=3))
    assert len(h.runs) == 1 and fault.detail_requests() == 2


def test_a_held_run_listed_again_in_the_lookback_is_asked_once_per_poll() -> None:
    api = Api()
    full_run(api)
    fault = Backwards(api, "r1", details=2)
    h = Harness(fault, lookback=600.0)  # the next window re-reads r1 finished
    h.poll(T0 + timedelta(minutes=1))
    h.poll(T0 + timedelta(minutes=2))  # the window asks the detail (behind again); no second ask by id
    assert h.runs == [] and fault.detail_requests() == 2
    h.poll(T0 + timedelta(minutes=3))
    [run] = h.runs
    assert_full(run)
    assert fault.detail_requests() == 3


def test_status_going_backwards_after_export_changes_nothing() -> None:
    api = Api()
    full_run(api)
    fault = Backwards(api, "r1")
    h = Harness(fault, lookback=600.0, inflight_every=1)  # the next window and in-flight list both re-read
    h.poll(T0 + timedelta(minutes=1))
    [run] = h.runs
    assert_full(run)
    fault.listings, fault.details, fault.inflight = 1, 1, 1
    before = len(api.requests)
    h.poll(T0 + timedelta(minutes=2))  # window and in-flight list both show r1 running again
    assert fault.listings == 0 and fault.inflight == 0  # it was shown, and ignored
    assert len(h.runs) == 1 and h.state.open == {} and h.state.in_progress() == {}
    assert fault.detail_requests() == 1  # the one of the first poll: nothing asked again
    assert len(api.requests) - before == 2  # the two listings


def test_run_that_left_the_in_flight_list_is_asked_by_id() -> None:
    api = Api()
    api.add("r1", 0, None, status="running")
    h = Harness(api)
    h.poll(T0 + timedelta(seconds=10))
    assert h.state.in_progress() == {"agent-a": 1}
    api.finish("r1", 12, result={"step_history": STEPS, "timeline": TIMELINE}, token_usage=9)
    hidden = api.runs["agent-a"].pop()  # the platform's windows miss it for a while (a shifting page, a lag)
    h.poll(T0 + timedelta(seconds=20))
    assert h.runs == [] and h.state.open["r1"].data["recheck"] == "left_inflight"
    api.runs["agent-a"].append(hidden)
    h.poll(T0 + timedelta(minutes=5))  # 14:30:12 is long behind this window: found by id
    [run] = h.runs
    assert (run.status, run.ended_at, run.total_tokens, len(run.tool_calls)) == (
        RunStatus.SUCCEEDED,
        T0 + timedelta(seconds=12),
        9,
        2,
    )
    assert h.state.open == {}


def test_re_check_404_exports_a_run_listed_finished_from_its_listing() -> None:
    api = Api()
    full_run(api)
    fault = Backwards(api, "r1", details=1)
    h = Harness(fault)
    h.poll(T0 + timedelta(minutes=1))  # held: the detail was behind
    del api.details["r1"]  # deleted at the platform before the re-check
    h.poll(T0 + timedelta(minutes=2))
    [run] = h.runs
    assert (run.status, run.ended_at, run.tool_calls) == (RunStatus.FAILED, T0 + timedelta(seconds=6), ())
    assert ("agent_activity.detail_missing", True) in run.attributes
    assert h.state.open == {} and "run:r1" in h.state.seen


def test_re_check_404_of_a_run_never_seen_finished_waits_for_expiry_without_asking_again() -> None:
    api = Api()
    api.add("r1", 0, 5)
    fault = Backwards(api, "r1", listings=1)
    h = Harness(fault)
    h.poll(T0 + timedelta(minutes=1))
    del api.details["r1"]
    h.poll(T0 + timedelta(minutes=2))
    assert h.runs == [] and h.state.open["r1"].data["recheck"] is False
    before = fault.detail_requests()
    h.poll(T0 + timedelta(minutes=3))
    assert fault.detail_requests() == before == 1
    run = h.source.expire(h.state.open["r1"], T0 + timedelta(hours=7))
    assert run.status is RunStatus.INCOMPLETE


def test_idle_cost_is_unchanged_once_held_runs_are_settled() -> None:
    api = Api()
    full_run(api)
    api.add("r2", 0, 5, agent="agent-b")
    fault = Backwards(api, "r1", details=1)
    h = Harness(fault, agents=["agent-a", "agent-b"])
    h.poll(T0 + timedelta(minutes=1))  # r1 held (detail behind), r2 exported
    costs = []
    for n in range(2, 13):
        before = len(api.requests)
        h.poll(T0 + timedelta(minutes=n))
        costs.append(len(api.requests) - before)
    assert sorted(r.run_id for r in h.runs) == ["r1", "r2"]
    # One ask by id while r1 is held; then 1 listing per agent, the in-flight lists every 5th poll.
    assert costs == [3, 2, 2, 2, 4, 2, 2, 2, 2, 4, 2]


# -- checkpoints written before the reader used windows.Progress -------------


def old_window(page: int) -> dict[str, object]:
    return {"from": iso(-30), "to": iso(60), "page": page, "per_page": 2}


def test_checkpoint_written_by_the_old_reader_resumes_at_the_same_place() -> None:
    api = Api(cap=2)
    for i in range(6):
        api.add(f"r{i}", i, i + 1)
    h = Harness(api)
    h.state.checkpoint = {"agents": {"agent-a": {"watermark": iso(0), "inflight_wait": 3, "window": old_window(2)}}}
    h.poll(T0 + timedelta(minutes=2), stop_after=1)
    resumed = api.requests[0].url.params
    assert (resumed["page"], resumed["completed_on_from"], resumed["completed_on_to"]) == (
        "2",
        "2026-03-19T14:29:30.000Z",
        "2026-03-19T14:31:00.000Z",
    )
    # Written back in the very shape (and key order) the old reader wrote.
    expected = {"agents": {"agent-a": {"watermark": iso(0), "inflight_wait": 3, "window": old_window(3)}}}
    assert json.dumps(h.state.checkpoint) == json.dumps(expected)
    h.poll(T0 + timedelta(minutes=2))
    assert [r.run_id for r in h.runs] == ["r2", "r3", "r4", "r5"]
    assert json.dumps(h.state.checkpoint) == json.dumps(
        {"agents": {"agent-a": {"watermark": iso(120), "inflight_wait": 4}}}
    )


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"window": old_window(2)},
        {"watermark": iso(60)},
        {"watermark": iso(60), "inflight_wait": 0},
        {"watermark": iso(60), "inflight_wait": 4, "window": old_window(5)},
    ],
)
def test_checkpoint_entries_round_trip_byte_for_byte(entry: dict[str, object]) -> None:
    progress = AgentProgress.from_json(entry, T0)
    assert json.dumps(progress.to_json()) == json.dumps(entry)
    assert progress.read is ("watermark" in entry)


# -- concurrency: requests fetched ahead, handled in order -------------------------


class LockedList(list[httpx.Request]):
    """Api.requests, appended to from the source's worker threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def append(self, request: httpx.Request) -> None:
        with self._lock:
            super().append(request)


AGENTS = [f"a{i}" for i in range(10)]


def busy_api() -> Api:
    """Ten agents, 3-run pages: windows of several pages, details, runs in
    flight, a detail behind (re-checked), a detail 404, a bad record."""
    api = Api(cap=3)
    api.requests = LockedList()
    for i, agent in enumerate(AGENTS):
        api.runs[agent] = []
        for j in range(4 + i):
            result = {"step_history": STEPS, "timeline": TIMELINE} if j % 2 else None
            api.add(f"{agent}-r{j}", 10 * j + i, 10 * j + i + 5, agent=agent, result=result, token_usage=j)
        if i % 2 == 0:
            api.add(f"{agent}-live", 300 + i, None, status="running", agent=agent)
    api.details["a1-r0"]["status"] = "running"  # the detail shows an earlier state: held, re-checked
    del api.details["a2-r1"]  # detail 404: exported from its listing
    api.runs["a3"].append({"id": "a3-bad", "attributes": {"status": "completed", "completed_on": iso(50)}})
    return api


def busy_history(api: Api, h: Harness, shutdown: Callable[[Harness], None]) -> list[tuple[list[Batch], list[str]]]:
    """Polls over busy_api, with a crash mid-window and a restart; per poll:
    (batches, sorted request URLs; none for the crashed poll)."""
    polls: list[tuple[list[Batch], list[str]]] = []

    def poll(harness: Harness, at: float, stop_after: int | None = None) -> None:
        batches, requests = len(harness.batches), len(api.requests)
        harness.poll(T0 + timedelta(seconds=at), stop_after=stop_after)
        if stop_after is not None:
            shutdown(harness)  # its threads' last requests are done before the next poll
        urls = [] if stop_after is not None else sorted(str(r.url) for r in api.requests[requests:])
        polls.append((harness.batches[batches:], urls))

    poll(h, 600)
    for i, agent in enumerate(AGENTS):
        if i % 2 == 0 and i > 0:
            api.finish(f"{agent}-live", 610)
        if i >= 4:
            for j in range(3):
                api.add(f"{agent}-n{j}", 605 + j, 615 + j, agent=agent)
    api.runs["a0"] = [r for r in api.runs["a0"] if r["id"] != "a0-live"]  # left the in-flight list
    del api.details["a1-r0"]["status"]  # its detail now shows it finished
    poll(h, 700)
    for agent in AGENTS:
        for j in range(8):
            api.add(f"{agent}-m{j}", 700 + 10 * j, 705 + 10 * j, agent=agent)
    poll(h, 800, stop_after=12)  # "kill -9" mid-window
    restarted = Harness(api, state=h.state, agents=AGENTS, concurrency=h.source.workers.size)
    poll(restarted, 900)  # resumes the part-read windows, then reads on to now
    for n in range(6):  # idle polls: the in-flight countdown
        poll(restarted, 1000 + 100 * n)
    return polls


def stop_threads(harness: Harness) -> None:
    harness.source.workers._pool.shutdown(wait=True)


def test_concurrent_reading_yields_the_batches_of_a_sequential_read() -> None:
    sequential_api, concurrent_api = busy_api(), busy_api()
    sequential = Harness(sequential_api, agents=AGENTS, concurrency=1)
    concurrent = Harness(concurrent_api, agents=AGENTS, concurrency=8)
    expected = busy_history(sequential_api, sequential, stop_threads)
    got = busy_history(concurrent_api, concurrent, stop_threads)
    assert len(got) == len(expected)
    for n, ((batches, urls), (want_batches, want_urls)) in enumerate(zip(got, expected, strict=True)):
        assert batches == want_batches, f"poll {n}"  # runs, checkpoints, seen keys, open runs, records, rejects
        assert urls == want_urls, f"poll {n}"  # the same requests (in another order)
    # The history did exercise every part: pages, details, re-checks, 404s, rejects, in-flight runs.
    all_urls = [str(r.url) for r in sequential_api.requests]
    assert any("page=3" in url and "has_completed=true" in url for url in all_urls)
    assert sum(1 for url in all_urls if url.split("?")[0].endswith("/a1-r0")) == 2  # asked again by id
    assert any(url.split("?")[0].endswith("/a0-live") for url in all_urls)  # left the in-flight list
    runs = [run for batches, _ in expected for batch in batches for run in batch.runs]
    assert len(runs) == len({run.run_id for run in runs}) == sum(4 + i for i in range(10)) + 6 * 3 + 4 + 80
    assert sequential.state.rejected == concurrent.state.rejected and sequential.state.rejected
    assert sequential.state.open == concurrent.state.open


class Overlap:
    """A handler that holds each request `counted` picks out until `n` of
    them are waiting at once, then lets every one through: it proves `n`
    requests in flight together (or gives up after `timeout`)."""

    def __init__(self, api: Api, n: int, counted: Callable[[httpx.Request], bool], timeout: float = 5.0) -> None:
        self.api, self.n, self.counted, self.timeout = api, n, counted, timeout
        self._cond = threading.Condition()
        self._waiting = 0
        self.reached = False
        self.timed_out = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.counted(request):
            with self._cond:
                self._waiting += 1
                if self._waiting >= self.n:
                    self.reached = True
                    self._cond.notify_all()
                if not self._cond.wait_for(lambda: self.reached or self.timed_out, self.timeout):
                    self.timed_out = True  # never n at once: let every request through
                    self._cond.notify_all()
                self._waiting -= 1
        return self.api(request)


def is_detail(request: httpx.Request) -> bool:
    return len(request.url.path.strip("/").split("/")) == 5


def is_later_page(request: httpx.Request) -> bool:
    return not is_detail(request) and request.url.params.get("page") != "1"


def is_inflight(request: httpx.Request) -> bool:
    return bool(request.url.params.get("has_completed") == "false")


def is_window(request: httpx.Request) -> bool:
    return bool(request.url.params.get("has_completed") == "true")


OVERLAP_CASES: dict[str, tuple[list[str], bool, Callable[[httpx.Request], bool]]] = {  # agents, fetch_detail
    # (a) the first window page of every agent (an idle poll: one request per agent)
    "agents": (AGENTS, True, lambda r: is_window(r) and r.url.params.get("page") == "1"),
    # (b) the details of one page's runs
    "details": (["a9"], True, is_detail),
    # (c) pages 2..total_pages of one window
    "pages": (["a9"], False, is_later_page),
    # (d) the in-flight listings of all agents (the first poll asks them all)
    "inflight": (AGENTS, True, is_inflight),
}


@pytest.mark.parametrize("case", sorted(OVERLAP_CASES))
def test_requests_overlap(case: str) -> None:
    agents, fetch_detail, counted = OVERLAP_CASES[case]
    api = Api(cap=100 if case == "details" else 1)
    api.requests = LockedList()
    for agent in AGENTS:
        api.runs[agent] = []
    for j in range(10):
        api.add(f"a9-r{j}", j, j + 1, agent="a9")
    overlap = Overlap(api, 4, counted)
    h = Harness(overlap, agents=agents, concurrency=8, fetch_detail=fetch_detail)
    h.poll(T0 + timedelta(minutes=10))
    assert overlap.reached and not overlap.timed_out
    assert len(h.runs) == 10


def test_a_sequential_reader_never_has_requests_overlap() -> None:
    """The check above has teeth: one request at a time never gets 2 in flight."""
    api = Api()
    api.requests = LockedList()
    for agent in AGENTS:
        api.runs[agent] = []
    overlap = Overlap(api, 2, is_window, timeout=0.2)
    h = Harness(overlap, agents=AGENTS[:2], concurrency=1)
    h.poll(T0 + timedelta(minutes=10))
    assert overlap.timed_out and not overlap.reached


def failing(api: Api, fails: Callable[[httpx.Request], httpx.Response | None]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return fails(request) or api(request)

    return handler


def server_error(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text="boom")


HTML = httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"})
FAULTS: dict[str, Callable[[httpx.Request], httpx.Response | None]] = {
    # a 500 forever on one run's detail, mid-window of a later agent
    "detail_500": lambda r: server_error(r) if r.url.path.endswith("/a6-r5") else None,
    # a 500 forever on page 2 of one agent's window
    "page_500": lambda r: (
        server_error(r) if "/a5/" in r.url.path and is_window(r) and r.url.params["page"] == "2" else None
    ),
    # a bad answer to one agent's first page (fetched ahead): that agent is skipped, the poll fails at its end
    "first_page_bad": lambda r: HTML if "/a4/" in r.url.path and is_window(r) else None,
    # a bad answer to one agent's in-flight listing (fetched ahead too)
    "inflight_bad": lambda r: HTML if "/a7/" in r.url.path and is_inflight(r) else None,
    # a 500 on one agent's in-flight listing
    "inflight_500": lambda r: server_error(r) if "/a3/" in r.url.path and is_inflight(r) else None,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_request_fails_the_poll_as_the_sequential_read_does(fault: str) -> None:
    outcomes = []
    for concurrency in (1, 8):
        api = busy_api()
        h = Harness(failing(api, FAULTS[fault]), agents=AGENTS, concurrency=concurrency)
        with pytest.raises(Exception) as raised:
            h.poll(T0 + timedelta(minutes=10))
        outcomes.append((h.batches, type(raised.value), str(raised.value), h.state.checkpoint))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0]  # some batches were committed before the failure
