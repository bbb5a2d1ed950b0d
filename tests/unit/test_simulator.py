"""The simulator over real HTTP on 127.0.0.1: determinism, auth, pagination,
filters, in-progress runs, revocation, faults and a large history.

No fixed sleeps: where the clock must move, a polling loop with a deadline
waits for it; elsewhere the world is built from history while paused.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from simulator import Simulator, SimulatorOptions, parse_faults
from simulator.clock import SimClock
from simulator.options import PLATFORMS
from simulator.profiles import PROFILES
from simulator.runtools_events import feed_times
from simulator.world import Store
from tests.conftest import truth_of

EPOCH = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)


# -- helpers -----------------------------------------------------------------


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(url: str, headers: dict[str, str] | None = None, method: str = "GET", body: bytes | None = None) -> Reply:
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=body)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers.items()), err.read())


def get(sim: Simulator, platform: str, path: str) -> Reply:
    return call(sim.url(platform) + path, sim.headers(platform))


def get_json(sim: Simulator, platform: str, path: str) -> Any:
    reply = get(sim, platform, path)
    assert reply.status == 200, (path, reply.status, reply.body[:300])
    return reply.json()


def control(sim: Simulator, action: str, body: bytes | None = None) -> Reply:
    return call(sim.base_url + "/_control/" + action, method="POST", body=body if body is not None else b"")


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.05) -> Any:
    """Poll until predicate() is truthy; return its value. Fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(step)


def runtools_pages(sim: Simulator, query: str, limit: int = 37) -> Iterator[list[dict[str, Any]]]:
    body = get_json(sim, "runtools", f"/v1/activity?limit={limit}{query}")
    yield body["data"]["events"]
    while body["meta"]["nextCursor"]:
        assert body["meta"]["hasMore"] is True
        body = get_json(sim, "runtools", f"/v1/activity?limit={limit}&cursor={body['meta']['nextCursor']}")
        yield body["data"]["events"]
    assert body["meta"]["hasMore"] is False


def runtype_pages(sim: Simulator, agent: str, query: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    body = get_json(sim, "runtype", f"/v1/agents/{agent}/executions?limit=7{query}")
    out.extend(body["data"])
    while body["pagination"]["nextCursor"]:
        cursor = body["pagination"]["nextCursor"]
        body = get_json(sim, "runtype", f"/v1/agents/{agent}/executions?limit=7{query}&cursor={cursor}")
        out.extend(body["data"])
    return out


def started(options: SimulatorOptions, *, paused: bool = False) -> Simulator:
    sim = Simulator(options)
    if paused:
        sim.pause()  # before start: no live run ever begins
    sim.start(host="127.0.0.1", port=0)
    return sim


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_sim() -> Iterator[Simulator]:
    """A frozen world: 150 finished runs per platform, no live runs."""
    sim = started(
        SimulatorOptions(seed=11, history_runs=150, history_span_seconds=1800, agents_per_platform=3, epoch=EPOCH),
        paused=True,
    )
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def live_sim() -> Iterator[Simulator]:
    """Runs starting about every 0.1 s per platform, each lasting 3-4 s."""
    sim = started(SimulatorOptions(seed=5, runs_per_minute=600, run_seconds=(3.0, 4.0), agents_per_platform=3))
    yield sim
    sim.stop()


# -- options and faults ----------------------------------------------------------


def test_parse_faults() -> None:
    spec = parse_faults("429=0.1,500=0.05,html=0.01,truncate=0.01,slow=0.05,dup=0.05")
    assert (spec.rate_limited, spec.server_error, spec.html, spec.truncate, spec.slow, spec.dup) == (
        0.1,
        0.05,
        0.01,
        0.01,
        0.05,
        0.05,
    )
    hostile = parse_faults("oddtime=0.2, backwards=0.3,JUNK=1")
    assert (hostile.oddtime, hostile.backwards, hostile.junk) == (0.2, 0.3, 1.0) and hostile.active
    assert hostile.describe() == "oddtime=0.2,backwards=0.3,junk=1"
    assert parse_faults("") == parse_faults(None) and not parse_faults("").active
    for bad in ("404=0.1", "slow", "500=2", "500=x", "dup=0.1,dup=0.2", "oddtime=-0.1", "junk=0.1,junk=0.1"):
        with pytest.raises(ValueError):
            parse_faults(bad)
    with pytest.raises(ValueError) as err:
        parse_faults("nanoseconds=1")
    for name in ("429", "500", "html", "truncate", "slow", "dup", "oddtime", "backwards", "junk"):
        assert name in str(err.value)


# -- determinism -------------------------------------------------------------------


def test_same_seed_same_truth_and_faults_do_not_change_the_world() -> None:
    options = SimulatorOptions(seed=7, history_runs=60, history_span_seconds=600, agents_per_platform=3, epoch=EPOCH)
    first = started(options, paused=True)
    second = started(
        SimulatorOptions(
            seed=7,
            history_runs=60,
            history_span_seconds=600,
            agents_per_platform=3,
            epoch=EPOCH,
            faults=parse_faults("500=0.5,dup=0.5"),
        ),
        paused=True,
    )
    other = started(
        SimulatorOptions(seed=8, history_runs=60, history_span_seconds=600, agents_per_platform=3, epoch=EPOCH),
        paused=True,
    )
    try:
        for _ in range(10):  # requests draw faults from their own RNG
            get(second, "runtools", "/v1/activity")

        def world(sim: Simulator) -> dict[str, Any]:
            platforms = truth_of(sim)["platforms"]
            return {name: {k: v for k, v in body.items() if k != "requests"} for name, body in platforms.items()}

        a, b, c = world(first), world(second), world(other)
        assert a == b
        assert a != c
        assert all(len(a[p]["runs"]) >= 60 for p in PLATFORMS)
        assert first.agents("agent_activities") == a["agent_activities"]["agents"]
    finally:
        for sim in (first, second, other):
            sim.stop()


def test_pause_stops_new_runs_and_started_runs_finish_on_schedule() -> None:
    """Against the world directly, with a hand-driven monotonic clock."""
    ticks = [0]
    clock = SimClock(epoch_ms=1_800_000_000_000, monotonic_ns=lambda: ticks[0])
    options = SimulatorOptions(seed=3, runs_per_minute=60, run_seconds=(5.0, 5.0))

    def at(seconds: float) -> Store:
        ticks[0] = int(seconds * 1e9)
        store.advance(clock.now_ms())
        return store

    store = Store(PROFILES["runtools"], options, clock, feed_times)
    at(30)
    created_before = len(store.runs)
    assert created_before > 10
    clock.pause()
    at(90)
    assert len(store.runs) == created_before  # nothing new while paused
    last = store.runs[-1]
    assert last.end_ms <= clock.now_ms() and len(store.ended) == created_before  # in-flight runs ended on time
    clock.resume()
    at(120)
    assert len(store.runs) > created_before
    # The first run after the pause starts after the resume, not inside the pause.
    assert store.runs[created_before].created_ms > clock.epoch_ms + 90_000

    # The same schedule without the pause is the same sequence of runs.
    replay_clock = SimClock(epoch_ms=1_800_000_000_000, monotonic_ns=lambda: 60_000_000_000)
    replay = Store(PROFILES["runtools"], options, replay_clock, feed_times)
    replay.advance(replay_clock.now_ms())
    shifted = [(r.run_id, r.end_ms - r.created_ms, r.outcome) for r in store.runs]
    assert [(r.run_id, r.end_ms - r.created_ms, r.outcome) for r in replay.runs] == shifted[: len(replay.runs)]


# -- auth and control ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "path"),
    [
        ("runtools", "/v1/activity"),
        ("agent_activities", "/api/agents/{agent}/activities"),
        ("bctrl", "/v1/runs"),
        ("runtype", "/v1/agents"),
    ],
)
def test_wrong_or_missing_credentials_answer_401(history_sim: Simulator, platform: str, path: str) -> None:
    path = path.format(agent=history_sim.agents(platform)[0])
    url = history_sim.url(platform) + path
    good = history_sim.headers(platform)
    wrong = {name: value[:-1] + "x" for name, value in good.items()}
    assert call(url, good).status == 200
    for headers in ({}, wrong, {"Authorization": "Basic abc"}):
        reply = call(url, headers)
        assert reply.status == 401
        body = reply.json()
        if platform == "agent_activities":
            assert body["status"] == "error" and body["status_code"] == 401 and body["message"]
        else:
            assert body["error"]["code"] == "unauthorized" and body["error"]["message"]


def test_revoke_and_restore(history_sim: Simulator) -> None:
    assert control(history_sim, "revoke?platform=bctrl").status == 200
    try:
        assert get(history_sim, "bctrl", "/v1/runs").status == 401
        assert get(history_sim, "runtype", "/v1/agents").status == 200  # others unaffected
    finally:
        assert control(history_sim, "restore?platform=bctrl").status == 200
    assert get(history_sim, "bctrl", "/v1/runs").status == 200
    assert control(history_sim, "revoke?platform=nope").status == 400
    only = call(history_sim.base_url + "/_truth?platform=bctrl&platform=runtype").json()
    assert set(only["platforms"]) == {"bctrl", "runtype"} and only["now"].endswith("Z")
    assert call(history_sim.base_url + "/_truth?platform=nope").status == 400
    assert control(history_sim, "faults", b'{"spec": "teapot=1"}').status == 400


# -- runtools -------------------------------------------------------------------------------


def test_runtools_limit_above_200_is_an_error(history_sim: Simulator) -> None:
    reply = get(history_sim, "runtools", "/v1/activity?limit=201")
    assert reply.status == 400 and reply.json()["error"]["code"] == "bad_request"
    assert len(get_json(history_sim, "runtools", "/v1/activity?limit=200")["data"]["events"]) == 200
    assert len(get_json(history_sim, "runtools", "/v1/activity")["data"]["events"]) == 50


def test_runtools_pages_cover_every_event_exactly_once(history_sim: Simulator) -> None:
    pages = list(runtools_pages(history_sim, ""))
    ids = [event["id"] for page in pages for event in page]
    assert len(ids) == len(set(ids))
    truth = truth_of(history_sim)["platforms"]["runtools"]
    assert len(ids) == sum(entry["count"] for entry in truth["events"])
    # The order is not chronological: the first page holds the newest events.
    first_times = [e["occurredAt"] for e in pages[0]]
    last_times = [e["occurredAt"] for e in pages[-1]]
    assert min(first_times) > max(last_times)
    # Every finished run's events share its agentRunId and end with its outcome.
    events = [e for page in pages for e in page]
    run = truth["runs"][0]
    mine = [e for e in events if e.get("agentRunId") == run["run_id"]]
    assert {e["eventType"] for e in mine} >= {"agent.run.started"}
    word = {"succeeded": "completed"}.get(run["status"], run["status"])
    assert f"agent.run.{word}" in {e["eventType"] for e in mine}
    assert len([e for e in mine if e["eventType"].startswith("tool.call.") and e["status"] != "started"]) == len(
        run["tool_calls"]
    )
    # Events outside any run exist and carry no agentRunId.
    outside = [e for e in events if e["resourceType"] in ("sandbox", "workspace")]
    assert outside and all("agentRunId" not in e for e in outside)


def test_runtools_since_until_and_filters(history_sim: Simulator) -> None:
    events = sorted(
        (e for page in runtools_pages(history_sim, "", limit=200) for e in page), key=lambda e: e["occurredAt"]
    )
    since, until = events[100]["occurredAt"], events[400]["occurredAt"]
    expected = {e["id"] for e in events if since <= e["occurredAt"] < until}
    got = {e["id"] for page in runtools_pages(history_sim, f"&since={since}&until={until}") for e in page}
    assert got == expected
    # The same bound with another offset and microseconds means the same instant.
    as_offset = datetime.fromisoformat(since.replace("Z", "+00:00")).astimezone().isoformat(timespec="microseconds")
    query = "&since=" + urllib.parse.quote(as_offset) + "&until=" + until
    assert {e["id"] for page in runtools_pages(history_sim, query) for e in page} == expected

    errors = [e for page in runtools_pages(history_sim, "&severity=error&resource_type=tool") for e in page]
    assert errors and all(e["eventType"] == "tool.call.failed" for e in errors)
    run_id = events[0]["agentRunId"] if "agentRunId" in events[0] else events[1]["agentRunId"]
    one_run = [e for page in runtools_pages(history_sim, f"&agent_run_id={run_id}", limit=2) for e in page]
    assert {e["id"] for e in one_run} == {e["id"] for e in events if e.get("agentRunId") == run_id}
    assert get(history_sim, "runtools", "/v1/activity?since=yesterday").status == 400
    assert get(history_sim, "runtools", "/v1/activity?cursor=garbage").status == 400


def test_runtools_large_history_serves_pages(tmp_path: Any) -> None:
    sim = started(
        SimulatorOptions(
            seed=2,
            history_runs=40_000,
            history_span_seconds=7 * 86400,
            runs_per_minute=0,
            history_platforms=("runtools",),
        ),
    )
    try:
        first = get_json(sim, "runtools", "/v1/activity?limit=200")
        assert len(first["data"]["events"]) == 200 and first["meta"]["hasMore"]
        second = get_json(sim, "runtools", f"/v1/activity?limit=200&cursor={first['meta']['nextCursor']}")
        assert not {e["id"] for e in first["data"]["events"]} & {e["id"] for e in second["data"]["events"]}
        run_id = second["data"]["events"][0]["agentRunId"]
        one_run = get_json(sim, "runtools", f"/v1/activity?agent_run_id={run_id}&limit=200")
        assert one_run["data"]["events"] and not one_run["meta"]["hasMore"]
        old = get_json(sim, "runtools", "/v1/activity?limit=200&until=" + second["data"]["events"][-1]["occurredAt"])
        assert len(old["data"]["events"]) == 200
    finally:
        sim.stop()


# -- agent_activities -----------------------------------------------------------------------


def test_agent_activities_lists_and_details(history_sim: Simulator) -> None:
    agent = history_sim.agents("agent_activities")[0]
    base = f"/api/agents/{agent}/activities"
    body = get_json(history_sim, "agent_activities", base + "?per_page=500&sort=%2Bcompleted_on")
    meta = body["data"]["_meta"]
    assert meta["per_page"] == 50 and meta["total_items"] > 0
    completed = [item["attributes"]["completed_on"] for item in body["data"]["items"]]
    assert completed == sorted(completed)
    unencoded_plus = get_json(history_sim, "agent_activities", base + "?per_page=500&sort=+completed_on")
    assert unencoded_plus == body
    everything = []
    for page in range(1, meta["total_pages"] + 1):
        everything += get_json(history_sim, "agent_activities", f"{base}?per_page=50&page={page}")["data"]["items"]
    truth = [r for r in truth_of(history_sim)["platforms"]["agent_activities"]["runs"] if r["agent"] == agent]
    assert {item["id"] for item in everything} == {r["run_id"] for r in truth}

    bad = get(history_sim, "agent_activities", base + "?completed_on_from=2026-05-10T00:00:00")
    assert bad.status == 400 and bad.json()["status_code"] == 400
    window = get_json(
        history_sim, "agent_activities", base + "?status=failed,stopped&completed_on_from=2026-05-10T11:40:00%2B00:00"
    )
    assert all(i["attributes"]["status"] in ("failed", "stopped") for i in window["data"]["items"])
    assert all(i["attributes"]["completed_on"] >= "2026-05-10T11:40" for i in window["data"]["items"])

    record = next(r for r in truth if r["tool_calls"])
    fields = "?fields[agent-runs]=trigger_payload,result,error,token_usage"
    detail = get_json(history_sim, "agent_activities", f"{base}/{record['run_id']}{fields}")["data"]["attributes"]
    timeline = detail["result"]["timeline"]
    assert timeline[0]["event"] == "goal_defined"
    assert timeline[-1]["event"] == "run_" + record["raw_status"]
    assert [t["tool"] for t in timeline if t["event"] == "tool_called"] == [t["name"] for t in record["tool_calls"]]
    assert detail["token_usage"] is not None and detail["completed_on"] is not None
    for call_truth in record["tool_calls"]:
        step = detail["result"]["step_history"][int(call_truth["id"]) - 1]
        assert step["action"] == call_truth["name"]
        assert ("error" in step["output"]) == (call_truth["status"] == "failed")

    assert (
        get(history_sim, "agent_activities", "/api/agents/00000000-0000-4000-8000-000000000000/activities").status
        == 404
    )
    missing = get(history_sim, "agent_activities", f"{base}/00000000-0000-4000-8000-000000000000")
    assert missing.status == 404 and missing.json()["status"] == "error"


# -- bctrl ------------------------------------------------------------------------------------


def test_bctrl_runs_and_activity(history_sim: Simulator) -> None:
    seen: list[dict[str, Any]] = []
    body = get_json(history_sim, "bctrl", "/v1/runs?limit=500")
    assert len(body["data"]) == 100  # clamped
    body = get_json(history_sim, "bctrl", "/v1/runs?limit=40")
    seen += body["data"]
    while body["nextCursor"]:
        body = get_json(history_sim, "bctrl", f"/v1/runs?limit=40&cursor={body['nextCursor']}")
        seen += body["data"]
    truth = truth_of(history_sim)["platforms"]["bctrl"]
    assert sorted(r["id"] for r in seen) == sorted(r["run_id"] for r in truth["runs"])
    created = [r["createdAt"] for r in seen]
    assert created == sorted(created, reverse=True)

    record = next(r for r in truth["runs"] if len(r["tool_calls"]) >= 2)
    items = get_json(history_sim, "bctrl", f"/v1/runs/{record['run_id']}/activity?limit=100")["items"]
    assert [i["time"] for i in items] == sorted(i["time"] for i in items)
    assert items[0]["category"] == "system" and items[-1]["category"] == "system"
    assert items[-1]["status"] == record["status"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if "commandId" in item:
            groups.setdefault(item["commandId"], []).append(item)
    assert [(g[0]["status"], g[-1]["status"]) for g in groups.values()] == [
        ("running", t["status"]) for t in record["tool_calls"]
    ]
    assert [g[0]["type"] for g in groups.values()] == [t["name"] for t in record["tool_calls"]]

    paged, cursor = [], ""
    while True:
        page = get_json(history_sim, "bctrl", f"/v1/runs/{record['run_id']}/activity?limit=2{cursor}")
        paged += page["items"]
        if not page["nextCursor"]:
            break
        cursor = "&cursor=" + page["nextCursor"]
    assert [i["id"] for i in paged] == [i["id"] for i in items]
    summary = get_json(history_sim, "bctrl", f"/v1/runs/{record['run_id']}/activity?level=summary")["items"]
    assert summary and all(i["level"] == "summary" for i in summary)
    assert summary == [i for i in items if i["level"] == "summary"]
    both = get_json(history_sim, "bctrl", f"/v1/runs/{record['run_id']}/activity?categories=system&categories=action")
    assert {i["category"] for i in both["items"]} == {"system", "action"}
    comma = get_json(history_sim, "bctrl", f"/v1/runs/{record['run_id']}/activity?categories=system,action")
    assert comma == both
    assert get(history_sim, "bctrl", "/v1/runs/run_nope/activity").status == 404


# -- runtype ------------------------------------------------------------------------------------


def test_runtype_executions_sub_agents_and_tool_calls(history_sim: Simulator) -> None:
    agents = get_json(history_sim, "runtype", "/v1/agents")["data"]
    truth = truth_of(history_sim)["platforms"]["runtype"]["runs"]
    by_id = {r["run_id"]: r for r in truth}
    listed: dict[str, dict[str, Any]] = {}
    for agent in agents:
        executions = runtype_pages(history_sim, agent["id"])
        assert len({e["id"] for e in executions}) == len(executions)
        created = [e["createdAt"] for e in executions]
        assert created == sorted(created, reverse=True)
        for execution in executions:
            assert execution["id"] == execution["executionId"] and execution["agentId"] == agent["id"]
            listed[execution["id"]] = execution
    assert set(listed) == set(by_id)

    child = next(r for r in truth if r["parent_run_id"])
    parent = by_id[child["parent_run_id"]]
    assert parent["agent"] != child["agent"]
    assert parent["started_at"] <= child["started_at"] and child["ended_at"] <= parent["ended_at"]
    drill = get_json(
        history_sim, "runtype", f"/v1/agents/{parent['agent']}/executions?parentExecutionId={parent['run_id']}"
    )
    assert child["run_id"] in {e["id"] for e in drill["data"]}
    assert listed[child["run_id"]]["parentExecutionId"] == parent["run_id"]

    execution = listed[child["run_id"]]
    assert execution["totalCost"] is not None and float(execution["totalCost"]) == pytest.approx(child["cost_usd"])
    assert execution["totalTokens"] == child["total_tokens"]
    around = execution["createdAt"]
    window = get_json(history_sim, "runtype", f"/v1/agents/{child['agent']}/executions?from={around}&to={around}")
    assert child["run_id"] in {e["id"] for e in window["data"]}  # both bounds inclusive

    record = next(r for r in truth if r["tool_calls"])
    calls = get_json(history_sim, "runtype", f"/v1/agents/{record['agent']}/executions/{record['run_id']}/tool-calls")
    assert [(c["id"], c["toolName"]) for c in calls["data"]] == [(t["id"], t["name"]) for t in record["tool_calls"]]
    status = {"succeeded": "completed", "failed": "failed"}
    assert [c["status"] for c in calls["data"]] == [status[t["status"]] for t in record["tool_calls"]]
    detail = get_json(history_sim, "runtype", f"/v1/agents/{record['agent']}/executions/{record['run_id']}")
    assert detail["data"]["id"] == record["run_id"]
    assert get(history_sim, "runtype", f"/v1/agents/{record['agent']}/executions/exec_nope").status == 404


# -- live runs -------------------------------------------------------------------------------------


def test_in_progress_runs_are_served_without_an_end(live_sim: Simulator) -> None:
    def running_runtools() -> list[str]:
        events = get_json(live_sim, "runtools", "/v1/activity?limit=200")["data"]["events"]
        started_ids = {e["agentRunId"] for e in events if e["eventType"] == "agent.run.started"}
        ended = {
            e["agentRunId"]
            for e in events
            if e["eventType"].startswith("agent.run.") and e["eventType"] != "agent.run.started"
        }
        return sorted(started_ids - ended)

    open_runs = wait_for(running_runtools)
    assert not {r["run_id"] for r in truth_of(live_sim)["platforms"]["runtools"]["runs"]} & set(open_runs)

    agent = live_sim.agents("agent_activities")

    def running_activity() -> list[dict[str, Any]]:
        out = []
        for uid in agent:
            body = get_json(
                live_sim,
                "agent_activities",
                f"/api/agents/{uid}/activities?has_completed=false&fields[agent-runs]=token_usage,error",
            )
            out += body["data"]["items"]
        return out

    for item in wait_for(running_activity):
        attributes = item["attributes"]
        assert attributes["status"] in ("pending", "running")
        assert attributes["completed_on"] is None and attributes["token_usage"] is None and attributes["error"] is None

    def running_bctrl() -> list[dict[str, Any]]:
        return [r for r in get_json(live_sim, "bctrl", "/v1/runs")["data"] if r["status"] == "running"]

    for run in wait_for(running_bctrl):
        assert run["endedAt"] is None and run["startedAt"] is not None

    def running_runtype() -> list[dict[str, Any]]:
        out = []
        for agent_id in live_sim.agents("runtype"):
            out += get_json(live_sim, "runtype", f"/v1/agents/{agent_id}/executions?status=running")["data"]
        return out

    for execution in wait_for(running_runtype):
        assert execution["completedAt"] is None and execution["totalCost"] is None and execution["totalTokens"] is None


def test_bctrl_cursor_stays_valid_as_items_arrive(live_sim: Simulator) -> None:
    def fresh_run() -> dict[str, Any] | None:
        runs = get_json(live_sim, "bctrl", "/v1/runs?status=running")["data"]
        return runs[0] if runs else None

    run = wait_for(fresh_run)
    url = f"/v1/runs/{run['id']}/activity?limit=1"
    cursor, seen = "", []
    while True:  # read to the end of what is there now, keeping the last cursor
        page = get_json(live_sim, "bctrl", url + cursor)
        seen += [i["id"] for i in page["items"] if i["id"] not in seen]
        if not page["nextCursor"]:
            break
        cursor = "&cursor=" + page["nextCursor"]
    assert seen

    def more() -> list[str]:
        page = get_json(live_sim, "bctrl", url + cursor)
        new = [i for i in page["items"] if i["id"] not in seen]
        if not new and page["nextCursor"]:
            new = get_json(live_sim, "bctrl", url + "&cursor=" + page["nextCursor"])["items"]
        return [i["id"] for i in new if i["id"] not in seen]

    assert wait_for(more)


# -- faults ---------------------------------------------------------------------------------------


def test_each_fault_is_observable() -> None:
    sim = started(
        SimulatorOptions(seed=4, history_runs=40, history_span_seconds=600, agents_per_platform=2, slow_seconds=0.3),
        paused=True,
    )
    try:

        def fault(spec: str) -> Reply:
            assert control(sim, "faults", json.dumps({"spec": spec}).encode()).status == 200
            return get(sim, "bctrl", "/v1/runs?limit=5")

        first, second = fault("429=1"), get(sim, "bctrl", "/v1/runs?limit=5")
        assert first.status == second.status == 429
        forms = {first.headers["Retry-After"], second.headers["Retry-After"]}
        assert any(value.isdigit() for value in forms)
        assert any(not value.isdigit() and parsedate_to_datetime(value).tzinfo for value in forms)
        assert first.json()["error"]["code"] == "rate_limited"
        aa = get(sim, "agent_activities", f"/api/agents/{sim.agents('agent_activities')[0]}/activities")
        assert aa.status == 429 and aa.json()["status_code"] == 429

        reply = fault("500=1")
        assert reply.status == 500 and reply.json()["error"]["code"] == "internal_error"
        assert call(sim.base_url + "/_truth").status == 200  # never on truth or control

        reply = fault("html=1")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
        assert reply.body.lstrip().startswith(b"<!DOCTYPE html>")

        reply = fault("truncate=1")
        assert reply.status == 200 and reply.headers["X-Sim-Fault"] == "truncate"
        with pytest.raises(ValueError):
            json.loads(reply.body)

        began = time.monotonic()
        reply = fault("slow=1")
        assert reply.status == 200 and reply.headers["X-Sim-Fault"] == "slow"
        assert time.monotonic() - began >= 0.3
        reply.json()

        fault("")
        page1 = get_json(sim, "bctrl", "/v1/runs?limit=4&status=succeeded")
        control(sim, "faults", b'{"spec": "dup=1"}')
        page2 = get(sim, "bctrl", f"/v1/runs?limit=4&status=succeeded&cursor={page1['nextCursor']}")
        assert page2.headers["X-Sim-Fault"] == "dup"
        repeated = {r["id"] for r in page1["data"]} & {r["id"] for r in page2.json()["data"]}
        assert repeated
    finally:
        sim.stop()


# -- hostile content faults: oddtime, backwards, junk ------------------------------------------------

HOSTILE = "oddtime=1,backwards=1,junk=1"
FINISHED_LONG_AGO_S = 5  # the backwards fault only rewinds runs finished at least this long ago


@pytest.fixture(scope="module")
def hostile_sim() -> Iterator[Simulator]:
    """A frozen world, so that two answers to one request differ only by their faults."""
    sim = started(
        SimulatorOptions(seed=4, history_runs=60, history_span_seconds=900, agents_per_platform=2, epoch=EPOCH),
        paused=True,
    )
    yield sim
    sim.stop()


# name -> (platform, path, where the items of a list page are; None for a single object)
Endpoint = tuple[str, str, tuple[str, ...] | None]


def hostile_endpoints(sim: Simulator) -> dict[str, Endpoint]:
    truth = truth_of(sim)["platforms"]
    aa = truth["agent_activities"]["runs"][0]  # runs are in the order they ended: the oldest first
    bc = next(r for r in truth["bctrl"]["runs"] if r["tool_calls"])
    ry = next(r for r in truth["runtype"]["runs"] if r["tool_calls"])
    fields = "fields[agent-runs]=trigger_payload,result,error,token_usage"
    executions = f"/v1/agents/{ry['agent']}/executions"
    return {
        "runtools events": ("runtools", "/v1/activity?limit=20", ("data", "events")),
        "agent_activities runs": (
            "agent_activities",
            f"/api/agents/{aa['agent']}/activities?per_page=20&{fields}",
            ("data", "items"),
        ),
        "agent_activities run": (
            "agent_activities",
            f"/api/agents/{aa['agent']}/activities/{aa['run_id']}?{fields}",
            None,
        ),
        "bctrl runs": ("bctrl", "/v1/runs?limit=20", ("data",)),
        "bctrl run": ("bctrl", f"/v1/runs/{bc['run_id']}", None),
        "bctrl activity": ("bctrl", f"/v1/runs/{bc['run_id']}/activity", ("items",)),
        "runtype agents": ("runtype", "/v1/agents", ("data",)),
        "runtype executions": ("runtype", f"{executions}?limit=20", ("data",)),
        "runtype execution": ("runtype", f"{executions}/{ry['run_id']}", None),
        "runtype tool calls": ("runtype", f"{executions}/{ry['run_id']}/tool-calls", ("data",)),
    }


REWOUND = (
    "agent_activities runs",
    "agent_activities run",
    "bctrl runs",
    "bctrl run",
    "runtype executions",
    "runtype execution",
)
JUNKED = (
    "runtools events",
    "agent_activities runs",
    "bctrl runs",
    "bctrl activity",
    "runtype executions",
    "runtype tool calls",
)


def set_faults(sim: Simulator, spec: str) -> None:
    reply = control(sim, "faults", json.dumps({"spec": spec}).encode())
    assert reply.status == 200 and "X-Sim-Fault" not in reply.headers


def fetch(sim: Simulator, spec: str, endpoint: Endpoint) -> Reply:
    set_faults(sim, spec)
    reply = get(sim, endpoint[0], endpoint[1])
    assert reply.status == 200, (endpoint, reply.status, reply.body[:300])
    return reply


def at(body: Any, path: tuple[str, ...] | None) -> Any:
    for name in path or ():
        body = body[name]
    return body


def paired_strings(a: Any, b: Any) -> Iterator[tuple[str, str]]:
    """Walk two JSON values of the same shape; non-string leaves must be equal."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            yield from paired_strings(a[key], b[key])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            yield from paired_strings(x, y)
    elif isinstance(a, str):
        assert isinstance(b, str)
        yield a, b
    else:
        assert a == b


def strings(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(strings(v) for v in value.values()), *(strings(k) for k in value))
    if isinstance(value, list):
        return set().union(*(strings(v) for v in value))
    return {value} if isinstance(value, str) else set()


ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.(\d+)(Z|[+-]\d{2}:\d{2})"


def test_oddtime_writes_every_timestamp_as_the_same_instant_in_another_form(hostile_sim: Simulator) -> None:
    forms: set[tuple[str, int]] = set()
    try:
        for name, endpoint in hostile_endpoints(hostile_sim).items():
            clean = fetch(hostile_sim, "", endpoint).json()
            reply = fetch(hostile_sim, "oddtime=1", endpoint)
            assert reply.headers["X-Sim-Fault"] == "oddtime", name
            pairs = list(paired_strings(clean, reply.json()))  # the same document but for its timestamps
            stamps = [(a, b) for a, b in pairs if re.fullmatch(ISO, a)]
            assert stamps, name
            assert [(a, b) for a, b in pairs if a != b] == stamps, name  # every timestamp changed, nothing else
            for a, b in stamps:
                match = re.fullmatch(ISO, b)
                assert match, (name, b)
                fraction, zone = match.groups()
                forms.add((zone, len(fraction)))
                assert zone not in ("Z", "+00:00") or len(fraction) == 9
                # The same instant to the microsecond (fromisoformat drops digits past the µs).
                assert datetime.fromisoformat(b) == datetime.fromisoformat(a), (a, b)
                if len(fraction) == 9:
                    assert fraction[3:6] == "000" and int(fraction[6:]) < 500  # whole ms, ns below the µs
    finally:
        set_faults(hostile_sim, "")
    zones = {zone for zone, _ in forms}
    assert zones - {"Z", "+00:00"}, forms  # real offsets, e.g. +05:30 or -08:00
    assert any(digits == 9 for _, digits in forms), forms  # and nanoseconds


def run_state(platform: str, item: dict[str, Any]) -> tuple[str, Any, list[Any]]:
    """(status, end time, totals) of a rendered run."""
    if platform == "agent_activities":
        a = item["attributes"]
        return a["status"], a["completed_on"], [a["token_usage"], a["error"]]
    if platform == "bctrl":
        return item["status"], item["endedAt"], []
    return item["status"], item["completedAt"], [item["totalCost"], item["totalTokens"], item["stopReason"]]


def test_backwards_shows_a_long_finished_run_in_an_earlier_state(hostile_sim: Simulator) -> None:
    endpoints = hostile_endpoints(hostile_sim)
    now = datetime.fromisoformat(truth_of(hostile_sim)["now"])
    try:
        for name, endpoint in endpoints.items():
            platform, _, items_path = endpoint
            clean = fetch(hostile_sim, "", endpoint).json()
            reply = fetch(hostile_sim, "backwards=1", endpoint)
            if name not in REWOUND:  # feeds and tool calls have no run status to go back
                assert "X-Sim-Fault" not in reply.headers and reply.json() == clean, name
                continue
            assert reply.headers["X-Sim-Fault"] == "backwards", name
            body = reply.json()
            if items_path is None:
                before = [at(clean, ("data",) if platform != "bctrl" else None)]
                after = [at(body, ("data",) if platform != "bctrl" else None)]
            else:
                before, after = at(clean, items_path), at(body, items_path)
            assert [i["id"] for i in before] == [i["id"] for i in after]
            changed = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
            assert len(changed) == 1, name  # one run per response
            was, now_shown = changed[0]
            status, ended, _ = run_state(platform, was)
            assert status not in ("pending", "running") and ended is not None
            assert now - datetime.fromisoformat(ended) >= timedelta(seconds=FINISHED_LONG_AGO_S)
            status, ended, totals = run_state(platform, now_shown)
            assert status in ("pending", "running") and ended is None and totals == [None] * len(totals), name
            # The next clean answer shows the truth again.
            assert fetch(hostile_sim, "", endpoint).json() == clean
    finally:
        set_faults(hostile_sim, "")


def test_junk_adds_one_rejectable_item_about_nothing_real(hostile_sim: Simulator) -> None:
    endpoints = hostile_endpoints(hostile_sim)
    truth = truth_of(hostile_sim)["platforms"]
    real = {r["run_id"] for p in truth.values() for r in p["runs"]}
    real |= {t["id"] for p in truth.values() for r in p["runs"] for t in r["tool_calls"] if len(t["id"]) > 3}
    try:
        for name, endpoint in endpoints.items():
            clean = fetch(hostile_sim, "", endpoint).json()
            reply = fetch(hostile_sim, "junk=1", endpoint)
            if name not in JUNKED:  # single objects, and runtype's agent list
                assert "X-Sim-Fault" not in reply.headers and reply.json() == clean, name
                continue
            assert reply.headers["X-Sim-Fault"] == "junk", name
            before, after = at(clean, endpoint[2]), at(reply.json(), endpoint[2])
            extra = [item for item in after if item not in before]
            assert len(after) == len(before) + 1 and len(extra) == 1, name
            assert [item for item in after if item is not extra[0]] == before  # the real items, in order
            junk = extra[0]
            assert isinstance(junk, dict)
            for key in ("id", "executionId") if name == "runtype executions" else ("id",):
                assert not isinstance(junk.get(key), str), (name, junk)  # missing, null or not a string
            known = (
                real
                | {item["id"] for item in before}
                | {
                    value
                    for item in before
                    for value in strings(item)
                    if value.startswith(("run_", "exec_", "act_", "cmd_"))
                }
            )
            assert not strings(junk) & known, (name, junk)  # about no real run, event or tool call
        # Over many pages: ids missing and ids of the wrong type, and now and then another defect too.
        set_faults(hostile_sim, "junk=1")
        events = [get_json(hostile_sim, "runtools", "/v1/activity?limit=3")["data"]["events"] for _ in range(60)]
    finally:
        set_faults(hostile_sim, "")
    clean_ids = {e["id"] for e in get_json(hostile_sim, "runtools", "/v1/activity?limit=3")["data"]["events"]}
    junk = [e for page in events for e in page if not isinstance(e.get("id"), str) or e["id"] not in clean_ids]
    assert len(junk) == 60
    assert any("id" not in e for e in junk) and any("id" in e and not isinstance(e["id"], str) for e in junk)

    def odd(event: dict[str, Any]) -> bool:
        stamp = event.get("occurredAt")
        try:
            datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        except ValueError:
            return True
        return (
            not isinstance(stamp, str)
            or event.get("severity") not in ("info", "warning", "error")
            or event.get("resourceType") not in ("agent", "tool")
            or event.get("status") not in ("completed", "failed")
            or not isinstance(event.get("eventType"), str)
            or not isinstance(event.get("agentRunId"), str)
            or not isinstance(event.get("title"), str)
        )

    assert 0 < sum(map(odd, junk)) < len(junk)


def test_hostile_faults_never_touch_truth_or_control(hostile_sim: Simulator) -> None:
    set_faults(hostile_sim, HOSTILE + ",dup=1")
    try:
        for _ in range(3):
            reply = call(hostile_sim.base_url + "/_truth")
            assert reply.status == 200 and "X-Sim-Fault" not in reply.headers
            body = reply.json()
            assert body["now"].endswith("Z")
            runs = [r for p in body["platforms"].values() for r in p["runs"]]
            assert runs and all(r["ended_at"].endswith("Z") and r["started_at"].endswith("Z") for r in runs)
            assert all(isinstance(r["run_id"], str) for r in runs)
        reply = control(hostile_sim, "pause")
        assert (
            reply.status == 200 and reply.json() == {"ok": True, "paused": True} and "X-Sim-Fault" not in reply.headers
        )
    finally:
        set_faults(hostile_sim, "")


ALL_FAULTS = "429=0.1,500=0.1,html=0.05,truncate=0.05,slow=0.3,dup=0.6,oddtime=0.9,backwards=0.9,junk=0.9"


def _world(sim: Simulator) -> dict[str, Any]:
    platforms = truth_of(sim)["platforms"]
    return {name: {k: v for k, v in body.items() if k != "requests"} for name, body in platforms.items()}


def test_truth_with_every_fault_at_high_probability_equals_the_truth_without() -> None:
    def make(spec: str, *, live: bool) -> Simulator:
        options = SimulatorOptions(
            seed=7,
            history_runs=60,
            history_span_seconds=600,
            agents_per_platform=3,
            epoch=EPOCH,
            runs_per_minute=300 if live else 0,
            run_seconds=(0.3, 0.8),
            faults=parse_faults(spec),
            slow_seconds=0.01,
        )
        return started(options, paused=not live)

    clean, faulty = make("", live=False), make(ALL_FAULTS, live=False)
    clean_live, faulty_live = make("", live=True), make(ALL_FAULTS, live=True)
    try:
        seen: Counter[str] = Counter()
        for sim in (faulty, faulty_live):
            endpoints = list(hostile_endpoints(sim).values())
            for _ in range(8):
                for platform, path, _ in endpoints:
                    seen.update(get(sim, platform, path).headers.get("X-Sim-Fault", "").split(","))
        for name in ("429", "500", "dup", "slow", "oddtime", "backwards", "junk"):
            assert seen[name] > 0, seen

        # A frozen world: the whole truth is equal (runs, tool calls, tokens, cost, event counts).
        assert _world(faulty) == _world(clean)
        assert all(_world(clean)[p]["runs"] for p in PLATFORMS)

        # Live runs: both worlds are one function of time (same seed and epoch), read at
        # slightly different moments, so the runs that finished are one a prefix of the other.
        wait_for(lambda: len(truth_of(faulty_live)["platforms"]["runtools"]["runs"]) > 70)
        a, b = _world(faulty_live), _world(clean_live)
        for platform in PLATFORMS:
            x, y = a[platform]["runs"], b[platform]["runs"]
            shorter, longer = sorted((x, y), key=len)
            assert len(shorter) > 60 and longer[: len(shorter)] == shorter, platform
    finally:
        for sim in (clean, faulty, clean_live, faulty_live):
            sim.stop()
