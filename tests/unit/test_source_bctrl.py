"""bctrl source: the vendor page's schema, discovery, incremental activity reading,
de-duplication, export once, failures. No network, no sleeps."""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.model import Batch, OpenRun, Run, RunStatus, Severity, ToolStatus, parse_time
from exporter.sources.base import PollContext
from exporter.sources.bctrl.api import parse_item
from exporter.sources.bctrl.reader import BctrlSource
from exporter.sources.http import AuthError, BadRecordError, BadResponseError, CursorLoopError, RetryableError
from tests.conftest import MemoryState, NoWait, source_config

FIXTURES = Path(__file__).parent / "fixtures" / "bctrl"
NOW = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)
ITEM_SCHEMA = "V1RunsIdActivityGetResponsesContentApplicationJsonSchemaItemsItems"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# -- a fake platform -------------------------------------------------------------


class FakeBctrl:
    """GET /v1/runs (newest first) and GET /v1/runs/{id}/activity (oldest
    first) with offset cursors; nextCursor is null at the current end."""

    MAX_LIMIT = 100

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.activity: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()  # the handler runs on the source's worker threads
        # path -> handler returning a Response to override the fake, or None
        self.override: dict[str, Callable[[httpx.Request], httpx.Response | None]] = {}

    def add_run(
        self, run_id: str, created: datetime, status: str = "running", runtime: str = "rt_1", **extra: Any
    ) -> None:
        self.runs[run_id] = {
            "id": run_id,
            "runtimeId": runtime,
            "spaceId": "space_1",
            "status": status,
            "createdAt": iso(created),
            "startedAt": iso(created),
            "endedAt": None,
            **extra,
        }
        self.activity.setdefault(run_id, [])

    def add_items(self, run_id: str, *items: dict[str, Any]) -> None:
        self.activity.setdefault(run_id, []).extend(items)

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        path, q = request.url.path, request.url.params
        if path in self.override and (response := self.override[path](request)) is not None:
            return response
        limit = min(int(q.get("limit", self.MAX_LIMIT)), self.MAX_LIMIT)
        cursor = q.get("cursor")
        offset = int(cursor[1:]) if cursor else 0
        if path == "/v1/runs":
            rows = sorted(self.runs.values(), key=lambda r: r["createdAt"], reverse=True)
            page = rows[offset : offset + limit]
            more = offset + limit < len(rows)
            return httpx.Response(200, json={"data": page, "nextCursor": f"r{offset + limit}" if more else None})
        m = re.fullmatch(r"/v1/runs/([^/]+)/activity", path)
        if m and m.group(1) in self.activity:
            items = self.activity[m.group(1)]
            if q.get("level"):
                items = [i for i in items if i["level"] == q["level"]]
            if cats := q.get_list("categories"):
                items = [i for i in items if i["category"] in cats]
            page = items[offset : offset + limit]
            more = offset + limit < len(items)
            return httpx.Response(200, json={"items": page, "nextCursor": f"a{offset + limit}" if more else None})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "Run not found"}})

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()


def item(
    item_id: str,
    run_id: str,
    at: datetime,
    *,
    category: str = "action",
    level: str = "summary",
    severity: str = "info",
    title: str = "Step",
    type_: str = "command.step",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": item_id,
        "runId": run_id,
        "runtimeId": "rt_1",
        "runtimeKind": "browser",
        "category": category,
        "level": level,
        "severity": severity,
        "time": iso(at),
        "title": title,
        "type": type_,
        **extra,
    }


def run_start(run_id: str, at: datetime) -> dict[str, Any]:
    return item(
        f"{run_id}-start", run_id, at, category="system", status="running", title="Run started", type_="run.started"
    )


def run_end(run_id: str, at: datetime, status: str = "succeeded") -> dict[str, Any]:
    return item(f"{run_id}-end", run_id, at, category="system", status=status, title="Run ended", type_="run.ended")


# -- an in-memory StateView that applies committed batches -------------------------


def make_source(fake: FakeBctrl, *, concurrency: int = 1, **options: Any) -> BctrlSource:
    opts: dict[str, Any] = {"level": None, "categories": None, "runs": None, "page_size": 100, "lookback": 30.0}
    opts.update(options)
    src = BctrlSource(
        source_config("bctrl", base_url="http://bctrl.test", name="bc", concurrency=concurrency, **opts),
        transport=httpx.MockTransport(fake.handler),
        stop=NoWait(),
    )
    return src


def poll(src: BctrlSource, state: MemoryState, now: datetime = NOW) -> list[Batch]:
    batches = []
    for batch in src.poll(PollContext(checkpoint=dict(state.checkpoint), now=now, state=state)):
        state.apply(batch)
        batches.append(batch)
    return batches


def by_id(runs: list[Run]) -> dict[str, Run]:
    return {r.run_id: r for r in runs}


# -- parsing payloads built from the vendor page's schema ------------------------------------


def test_fixture_page_items_all_parse() -> None:
    page = load("activity_page.json")
    assert set(page) == {"items", "nextCursor"}
    parsed = [parse_item("bc", obj) for obj in page["items"]]
    assert [p[0][0] for p in parsed] == [f"act_00{i}" for i in range(1, 10)]
    assert {p[1] for p in parsed} == {"run_01"}
    assert {(p[2], p[3]) for p in parsed} == {("rt_browser_1", "browser")}
    # offsets and nanoseconds normalise to UTC microseconds
    times = [parse_time(p[0][1]) for p in parsed]
    assert times[5] == datetime(2026, 5, 10, 11, 0, 3, tzinfo=timezone.utc)
    assert times[8] == datetime(2026, 5, 10, 11, 0, 6, tzinfo=timezone.utc)


def test_fixture_run_exported_with_tool_calls_and_events() -> None:
    """The fixture timeline through the source: listing (runs_page.json) then activity."""
    fake = FakeBctrl()
    listing = load("runs_page.json")
    page = load("activity_page.json")
    fake.override["/v1/runs"] = lambda r: httpx.Response(200, json=listing)
    fake.override["/v1/runs/run_01/activity"] = lambda r: httpx.Response(200, json=page)
    fake.override["/v1/runs/run_02/activity"] = lambda r: httpx.Response(200, json={"items": [], "nextCursor": None})
    state = MemoryState()
    poll(make_source(fake), state)

    assert [r.run_id for r in state.runs] == ["run_01"]
    run = state.runs[0]
    assert (run.agent_id, run.agent_name, run.platform, run.source) == ("rt_browser_1", "rt_browser_1", "bctrl", "bc")
    assert (run.status, run.raw_status) == (RunStatus.SUCCEEDED, "succeeded")
    assert run.started_at == datetime(2026, 5, 10, 11, 0, 0, tzinfo=timezone.utc)  # startedAt
    assert run.ended_at == datetime(2026, 5, 10, 11, 0, 6, tzinfo=timezone.utc)  # endedAt
    assert dict(run.attributes) == {
        "agent_activity.runtime.kind": "browser",
        "agent_activity.runtime.id": "rt_browser_1",
        "agent_activity.space_id": "space_1",
    }
    assert run.error_message is None

    nav, click = run.tool_calls
    assert (nav.id, nav.name, nav.status, nav.raw_status) == (
        "cmd_1",
        "command.navigate",
        ToolStatus.SUCCEEDED,
        "succeeded",
    )
    assert nav.started_at == datetime(2026, 5, 10, 11, 0, 1, tzinfo=timezone.utc)
    assert nav.ended_at == datetime(2026, 5, 10, 11, 0, 2, 250000, tzinfo=timezone.utc)
    assert [e.id for e in nav.events] == ["act_003"]  # the debug item between first and last
    assert (click.id, click.status, click.error_message) == ("cmd_2", ToolStatus.FAILED, "element not found: #submit")
    assert click.events == ()
    # items without commandId are span events of the run, system start/end included
    assert [e.id for e in run.events] == ["act_001", "act_005", "act_008", "act_009"]
    assert run.events[1].name == "console.message"
    assert ("agent_activity.event.title", "Console warning") in run.events[1].attributes

    # every item counted once, by category / severity / status ("none" when absent)
    assert len(state.events) == 9
    counted = {e.id: (e.category, e.severity, e.status) for e in state.events}
    assert counted["act_003"] == ("network", Severity.INFO, "none")
    assert counted["act_005"] == ("console", Severity.WARNING, "none")
    assert counted["act_007"] == ("action", Severity.ERROR, "failed")
    assert counted["act_009"] == ("system", Severity.INFO, "succeeded")
    # run_02 is running: open, not exported, counted in progress under its runtime
    assert set(state.open) == {"run_02"}
    assert state.open["run_02"].agent == "rt_desktop_7" and not state.open["run_02"].finished
    assert state.checkpoint == {"watermark": "2026-05-10T11:30:00+00:00"}
    assert state.caught_up_to == NOW


# -- the item schema, field by field (no hypothesis: every case in turn) -------------


def _schema() -> dict[str, Any]:
    doc = yaml.safe_load((FIXTURES / "activity_openapi.yaml").read_text())
    schemas: dict[str, Any] = doc["components"]["schemas"]
    return schemas


def _resolve(prop: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return dict(schemas[prop["$ref"].rsplit("/", 1)[1]])
    return prop


def _valid_item(schemas: dict[str, Any]) -> dict[str, Any]:
    """Every property of the schema with a valid value."""
    out: dict[str, Any] = {}
    for name, prop in schemas[ITEM_SCHEMA]["properties"].items():
        prop = _resolve(prop, schemas)
        if "enum" in prop:
            out[name] = prop["enum"][0]
        elif prop.get("type") == "object":
            out[name] = {"k": 1}
        elif name == "time":
            out[name] = "2026-05-10T11:00:00.000Z"
        else:
            out[name] = f"{name}-value"
    return out


def test_schema_item_with_every_field_parses() -> None:
    schemas = _schema()
    parsed, run_id, runtime_id, kind = parse_item("bc", _valid_item(schemas))
    assert (run_id, runtime_id, kind) == ("runId-value", "runtimeId-value", "browser")
    assert parsed[0] == "id-value"


def test_schema_each_required_field_missing_is_rejected() -> None:
    schemas = _schema()
    required = schemas[ITEM_SCHEMA]["required"]
    assert len(required) == 10
    for field in required:
        for broken in ("absent", None, ""):
            obj = _valid_item(schemas)
            if broken == "absent":
                del obj[field]
            else:
                obj[field] = broken
            with pytest.raises(BadRecordError) as err:
                parse_item("bc", obj)
            assert err.value.reason == "missing_field", (field, broken)
            assert field in err.value.message


def test_schema_optional_fields_may_be_missing() -> None:
    schemas = _schema()
    required = set(schemas[ITEM_SCHEMA]["required"])
    obj = {k: v for k, v in _valid_item(schemas).items() if k in required}
    parsed = parse_item("bc", obj)[0]
    assert parsed[5] == "none"  # no status
    assert parsed[9] is None  # no commandId


def test_schema_enums_known_values_kept_unknown_values_accepted_as_unknown() -> None:
    schemas = _schema()
    fields = {"category": 2, "level": 3, "severity": 4, "status": 5}  # compact item positions
    enums = {name: _resolve(prop, schemas).get("enum") for name, prop in schemas[ITEM_SCHEMA]["properties"].items()}
    assert {n for n, e in enums.items() if e} == {"category", "level", "severity", "status", "runtimeKind"}
    for name, values in enums.items():
        if not values:
            continue
        for value in values:
            obj = {**_valid_item(schemas), name: value}
            parsed, _, _, kind = parse_item("bc", obj)
            assert (kind if name == "runtimeKind" else parsed[fields[name]]) == value
        obj = {**_valid_item(schemas), name: "brand_new_value"}
        parsed, _, _, kind = parse_item("bc", obj)
        assert (kind if name == "runtimeKind" else parsed[fields[name]]) == "unknown", name


def test_schema_bad_types_and_timestamps_rejected() -> None:
    schemas = _schema()
    cases = {
        "time": ("yesterday", "bad_timestamp"),
        "commandId": ({"a": 1}, "bad_type"),
        "title": (["x"], "bad_type"),
        "message": (True, "bad_type"),
    }
    for field, (value, reason) in cases.items():
        with pytest.raises(BadRecordError) as err:
            parse_item("bc", {**_valid_item(schemas), field: value})
        assert err.value.reason == reason, field
    with pytest.raises(BadRecordError) as err:
        parse_item("bc", ["not", "an", "object"])
    assert err.value.reason == "bad_type"


# -- incremental polling ---------------------------------------------------------------


def test_in_flight_run_read_incrementally_and_exported_once() -> None:
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=10)
    fake.add_run("r1", t0, status="running", runtime="rt_a")
    fake.add_items(
        "r1",
        run_start("r1", t0),
        item("i1", "r1", t0 + timedelta(seconds=1), status="running", commandId="c1", title="Type"),
        item("n1", "r1", t0 + timedelta(seconds=1), category="network", level="debug"),
    )
    src, state = make_source(fake, page_size=2), MemoryState()

    poll(src, state)
    assert state.runs == [] and set(state.open) == {"r1"}
    assert state.open["r1"].agent == "rt_a" and not state.open["r1"].finished
    assert len(state.events) == 3
    # pages of 2: the cursor of the last page followed is kept (its nextCursor was null)
    assert state.open["r1"].data["cursor"] == "a2"

    fake.add_items(
        "r1",
        item("i2", "r1", t0 + timedelta(seconds=2), level="debug", commandId="c1"),
        item("i3", "r1", t0 + timedelta(seconds=3), status="succeeded", commandId="c1", title="Type"),
    )
    fake.reset()
    poll(src, state, NOW + timedelta(seconds=30))
    activity = [r for r in fake.requests if r.url.path.endswith("/activity")]
    assert [r.url.params.get("cursor") for r in activity] == ["a2", "a4"]  # resumed, never from the start
    assert state.runs == [] and len(state.events) == 5

    fake.runs["r1"].update(status="succeeded", endedAt=iso(t0 + timedelta(seconds=5)))
    fake.add_items("r1", run_end("r1", t0 + timedelta(seconds=5)))
    poll(src, state, NOW + timedelta(seconds=60))
    assert [r.run_id for r in state.runs] == ["r1"] and state.open == {}
    run = state.runs[0]
    assert (run.status, run.agent_id, run.ended_at) == (RunStatus.SUCCEEDED, "rt_a", t0 + timedelta(seconds=5))
    assert [(c.id, c.name, c.status) for c in run.tool_calls] == [("c1", "command.step", ToolStatus.SUCCEEDED)]
    assert [e.id for e in run.tool_calls[0].events] == ["i2"]
    assert len(state.events) == 6 and len({e.id for e in state.events}) == 6
    assert [e.id for e in run.events] == ["r1-start", "n1", "r1-end"]

    # exported: never asked for again, even though the listing still shows it
    fake.reset()
    poll(src, state, NOW + timedelta(seconds=90))
    assert fake.paths() == ["/v1/runs"]
    assert len(state.runs) == 1 and len(state.events) == 6


def test_last_page_reread_is_deduplicated() -> None:
    """nextCursor null keeps the cursor last followed: that page is read
    again next poll and changes nothing."""
    fake = FakeBctrl()
    fake.add_run("r1", NOW - timedelta(minutes=1))
    fake.add_items("r1", run_start("r1", NOW - timedelta(minutes=1)), item("i1", "r1", NOW))
    src, state = make_source(fake), MemoryState()
    poll(src, state)
    before = copy.deepcopy(state.open["r1"].data)
    batches = poll(src, state, NOW + timedelta(seconds=30))
    assert state.open["r1"].data == before and before["cursor"] is None
    assert len(state.events) == 2 and state.records == {"run": 2, "activity": 2}
    assert all(not b.open_upserts and not b.events for b in batches)


def test_idle_request_pattern() -> None:
    """Idle: one listing request + one activity request per open run."""
    fake = FakeBctrl()
    for n in range(3):
        fake.add_run(f"r{n}", NOW - timedelta(minutes=5 - n))
        fake.add_items(f"r{n}", run_start(f"r{n}", NOW - timedelta(minutes=5 - n)))
    fake.add_run("done", NOW - timedelta(minutes=6), status="succeeded")
    fake.add_items("done", run_start("done", NOW - timedelta(minutes=6)), run_end("done", NOW - timedelta(minutes=5)))
    src, state = make_source(fake), MemoryState()
    poll(src, state)
    assert [r.run_id for r in state.runs] == ["done"]
    for k in range(3):
        fake.reset()
        poll(src, state, NOW + timedelta(seconds=30 * (k + 1)))
        assert sorted(fake.paths()) == [
            "/v1/runs",
            "/v1/runs/r0/activity",
            "/v1/runs/r1/activity",
            "/v1/runs/r2/activity",
        ]


def test_listing_stops_at_the_window_and_moves_its_watermark() -> None:
    fake = FakeBctrl()
    # 12 old runs (before the first window: now - start_from) and 5 new ones
    for n in range(12):
        fake.add_run(f"old{n:02d}", NOW - timedelta(hours=3, minutes=n), status="succeeded")
    for n in range(5):
        fake.add_run(f"new{n}", NOW - timedelta(minutes=n + 1), status="succeeded")
        fake.add_items(f"new{n}", run_start(f"new{n}", NOW - timedelta(minutes=n + 1)))
    src, state = make_source(fake, page_size=4), MemoryState()
    poll(src, state)
    listing = [r for r in fake.requests if r.url.path == "/v1/runs"]
    assert [r.url.params.get("cursor") for r in listing] == [None, "r4"]  # stopped on the first old run
    assert {r.run_id for r in state.runs} == {f"new{n}" for n in range(5)}
    assert state.checkpoint == {"watermark": (NOW - timedelta(minutes=1)).isoformat()}
    assert not any(k.startswith("run:old") for k in state.seen)

    fake.reset()
    fake.add_run("newer", NOW + timedelta(seconds=10))
    poll(src, state, NOW + timedelta(seconds=30))
    assert fake.paths() == ["/v1/runs", "/v1/runs/newer/activity"]
    assert state.checkpoint == {"watermark": (NOW + timedelta(seconds=10)).isoformat()}


def test_repeated_listing_rows_and_repeated_activity_items_count_once() -> None:
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=2)
    run = {
        "id": "r1",
        "runtimeId": "rt",
        "status": "succeeded",
        "createdAt": iso(t0),
        "startedAt": iso(t0),
        "endedAt": iso(t0 + timedelta(seconds=9)),
    }
    pages = {None: {"data": [run], "nextCursor": "p2"}, "p2": {"data": [run, run], "nextCursor": None}}
    fake.override["/v1/runs"] = lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")])
    items = [
        run_start("r1", t0),
        item("i1", "r1", t0 + timedelta(seconds=1)),
        item("i2", "r1", t0 + timedelta(seconds=2)),
        run_end("r1", t0 + timedelta(seconds=9)),
    ]
    act = {
        None: {"items": items[:2], "nextCursor": "q2"},
        "q2": {"items": items[1:3] + items[1:2], "nextCursor": "q3"},  # repeats the previous page's item
        "q3": {"items": items[2:], "nextCursor": None},
    }
    fake.override["/v1/runs/r1/activity"] = lambda r: httpx.Response(200, json=act[r.url.params.get("cursor")])
    src, state = make_source(fake), MemoryState()
    poll(src, state)
    assert [r.run_id for r in state.runs] == ["r1"]
    assert sorted(e.id for e in state.events) == ["i1", "i2", "r1-end", "r1-start"]
    assert len(state.runs[0].events) == 4
    poll(src, state, NOW + timedelta(seconds=30))
    assert len(state.runs) == 1 and len(state.events) == 4


def test_status_going_backwards_keeps_the_terminal_status() -> None:
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=2)
    fake.add_run("r1", t0, status="failed", endedAt=iso(t0 + timedelta(seconds=3)))
    fake.add_items(
        "r1",
        run_start("r1", t0),
        item("e1", "r1", t0 + timedelta(seconds=1), severity="error", title="Crash", message="boom"),
        item("e2", "r1", t0 + timedelta(seconds=2), severity="error", title="Page closed"),
    )
    src, state = make_source(fake), MemoryState()
    fake.override["/v1/runs/r1/activity"] = lambda r: httpx.Response(503)
    with pytest.raises(RetryableError):  # the listing is committed, the activity read fails
        poll(src, state)
    assert state.open["r1"].finished
    fake.override.clear()
    fake.runs["r1"]["status"] = "running"  # the listing goes backwards
    poll(src, state, NOW + timedelta(seconds=30))
    run = state.runs[0]
    assert (run.status, run.raw_status, run.error_type) == (RunStatus.FAILED, "failed", "failed")
    assert run.error_message == "Page closed"  # the last error item: its message, else its title


def test_run_older_than_the_window_ends_on_its_system_item() -> None:
    """A long run falls out of the listing window: its system end item ends it."""
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=30)
    fake.add_run("long", t0)
    fake.add_items("long", run_start("long", t0))
    src, state = make_source(fake), MemoryState()
    poll(src, state)
    for n in range(3):
        fake.add_run(f"later{n}", NOW + timedelta(minutes=n))
    poll(src, state, NOW + timedelta(minutes=5))  # watermark moves past "long"
    fake.add_items("long", run_end("long", NOW + timedelta(minutes=6), status="timed_out"))
    poll(src, state, NOW + timedelta(minutes=10))
    long = by_id(state.runs)["long"]
    assert (long.status, long.raw_status) == (RunStatus.TIMED_OUT, "timed_out")
    assert long.ended_at == NOW + timedelta(minutes=6)
    assert long.started_at == t0


# -- failures ---------------------------------------------------------------------------


def test_activity_cursor_loop_ends_the_poll() -> None:
    fake = FakeBctrl()
    fake.add_run("r1", NOW - timedelta(minutes=1))
    fake.override["/v1/runs/r1/activity"] = lambda r: httpx.Response(200, json={"items": [], "nextCursor": "same"})
    with pytest.raises(CursorLoopError):
        poll(make_source(fake), MemoryState())


def test_listing_cursor_loop_ends_the_poll_without_moving_the_watermark() -> None:
    fake = FakeBctrl()
    row = {"id": "r1", "status": "running", "createdAt": iso(NOW)}
    fake.override["/v1/runs"] = lambda r: httpx.Response(200, json={"data": [row], "nextCursor": "again"})
    state = MemoryState()
    with pytest.raises(CursorLoopError):
        poll(make_source(fake), state)
    assert state.checkpoint == {}


def test_bad_item_rejected_rest_of_page_used_and_rejected_once() -> None:
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=1)
    fake.add_run("r1", t0)
    bad = item("bad1", "r1", t0)
    del bad["severity"]
    fake.add_items(
        "r1",
        run_start("r1", t0),
        bad,
        item("ok1", "r1", t0 + timedelta(seconds=1)),
        {**item("bad2", "r1", t0), "time": "not-a-time"},
    )
    src, state = make_source(fake), MemoryState()
    poll(src, state)
    assert sorted((r.reason, r.record_id) for r in state.rejected) == [
        ("bad_timestamp", "bad2"),
        ("missing_field", "bad1"),
    ]
    assert sorted(e.id for e in state.events) == ["ok1", "r1-start"]
    poll(src, state, NOW + timedelta(seconds=30))  # the same last page again
    assert len(state.rejected) == 2 and len(state.events) == 2


def test_bad_listing_row_rejected_once_rest_used() -> None:
    fake = FakeBctrl()
    fake.add_run("r1", NOW - timedelta(minutes=1))
    broken = {"id": "r2", "runtimeId": "rt", "status": "running", "createdAt": None}
    fake.override["/v1/runs"] = lambda r: httpx.Response(
        200, json={"data": [fake.runs["r1"], broken], "nextCursor": None}
    )
    src, state = make_source(fake), MemoryState()
    poll(src, state)
    poll(src, state, NOW + timedelta(seconds=30))
    assert [(r.reason, r.record_id) for r in state.rejected] == [("missing_field", "r2")]
    assert set(state.open) == {"r1"}


def test_html_body_is_a_bad_response_and_keeps_the_checkpoint() -> None:
    fake = FakeBctrl()
    fake.override["/v1/runs"] = lambda r: httpx.Response(
        200, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}
    )
    state = MemoryState()
    state.checkpoint = {"watermark": iso(NOW - timedelta(minutes=5))}
    with pytest.raises(BadResponseError):
        poll(make_source(fake), state)
    assert state.checkpoint == {"watermark": iso(NOW - timedelta(minutes=5))}


def test_wrong_envelope_is_a_bad_response() -> None:
    fake = FakeBctrl()
    fake.add_run("r1", NOW - timedelta(minutes=1))
    fake.override["/v1/runs/r1/activity"] = lambda r: httpx.Response(200, json={"data": []})
    with pytest.raises(BadResponseError):
        poll(make_source(fake), MemoryState())


def test_unauthorized_is_an_auth_error() -> None:
    fake = FakeBctrl()
    fake.override["/v1/runs"] = lambda r: httpx.Response(
        401, json={"error": {"code": "unauthorized", "message": "bad key"}}
    )
    with pytest.raises(AuthError):
        poll(make_source(fake), MemoryState())
    assert fake.requests[0].headers["authorization"] == "Bearer s3cret-key-value"


def test_404_drops_the_run_with_a_warning_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=1)
    fake.add_run("a-gone", t0)
    fake.add_run("b-ok", t0, status="succeeded")
    fake.add_items("b-ok", run_start("b-ok", t0), run_end("b-ok", t0 + timedelta(seconds=2)))
    del fake.activity["a-gone"]  # listed, but its activity answers 404
    src, state = make_source(fake), MemoryState()
    with caplog.at_level(logging.WARNING, logger="exporter.sources.bctrl"):
        poll(src, state)
    assert [r.run_id for r in state.runs] == ["b-ok"] and state.open == {}
    assert any(rec.levelno == logging.WARNING and getattr(rec, "record_id", None) == "a-gone" for rec in caplog.records)
    fake.reset()
    poll(src, state, NOW + timedelta(seconds=30))
    assert fake.paths() == ["/v1/runs"]  # neither the gone run nor the exported one


# -- fixed run ids ------------------------------------------------------------------------


def test_fixed_runs_need_no_listing_and_end_on_a_system_item() -> None:
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=3)
    fake.add_items(
        "f1", run_start("f1", t0), item("x1", "f1", t0 + timedelta(seconds=1), category="network", level="debug")
    )
    fake.add_items("f2", run_start("f2", t0))
    src = make_source(fake, runs=("f1", "f2"), level="summary", categories=("system", "action"))
    state = MemoryState()
    poll(src, state)
    assert "/v1/runs" not in fake.paths()
    q = fake.requests[0].url.params
    assert q.get("level") == "summary" and q.get_list("categories") == ["system", "action"]
    assert set(state.open) == {"f1", "f2"} and state.open["f1"].agent == "rt_1"
    assert len(state.events) == 2  # the debug network item is filtered by the platform

    fake.add_items("f1", run_end("f1", t0 + timedelta(seconds=4), status="cancelled"))
    fake.reset()
    poll(src, state, NOW + timedelta(seconds=30))
    run = by_id(state.runs)["f1"]
    assert (run.status, run.raw_status, run.agent_id) == (RunStatus.CANCELLED, "cancelled", "rt_1")
    assert (run.started_at, run.ended_at) == (t0, t0 + timedelta(seconds=4))
    assert set(state.open) == {"f2"}
    fake.reset()
    poll(src, state, NOW + timedelta(seconds=60))
    assert fake.paths() == ["/v1/runs/f2/activity"]
    assert state.checkpoint == {}


def test_fixed_run_404_is_not_asked_for_again() -> None:
    fake = FakeBctrl()
    fake.add_items("f2", run_start("f2", NOW))
    src, state = make_source(fake, runs=("nope", "f2")), MemoryState()
    poll(src, state)
    assert set(state.open) == {"f2"}
    fake.reset()
    poll(src, state, NOW + timedelta(seconds=30))
    assert fake.paths() == ["/v1/runs/f2/activity"]


def test_expire_gives_an_incomplete_run_with_what_was_read() -> None:
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=3)
    fake.add_run("r1", t0, runtime="rt_x")
    fake.add_items(
        "r1",
        run_start("r1", t0),
        item("c", "r1", t0 + timedelta(seconds=1), status="running", commandId="cmd", title="Scroll"),
    )
    src, state = make_source(fake), MemoryState()
    poll(src, state)
    run = src.expire(state.open["r1"], NOW + timedelta(hours=24))
    assert (run.status, run.ended_at, run.agent_id, run.started_at) == (RunStatus.INCOMPLETE, None, "rt_x", t0)
    (call,) = run.tool_calls
    assert (call.name, call.status, call.ended_at) == ("command.step", ToolStatus.RUNNING, None)


def test_probe() -> None:
    fake = FakeBctrl()
    fake.add_run("r1", NOW)
    assert make_source(fake).probe().startswith("ok: GET /v1/runs returned 1 run")
    assert fake.requests[-1].url.params["limit"] == "1"
    fake.add_items("f1", run_start("f1", NOW))
    assert make_source(fake, runs=("f1",)).probe().startswith("ok: GET /v1/runs/f1/activity returned 1 item")


# -- state written before the reader was split (exporter/sources/bctrl.py) ----------------


def test_state_written_by_the_old_reader_resumes_where_it_left_off() -> None:
    """An exporter upgraded in place: the checkpoint, an open run's data and
    the dedup keys, literally as the single-module reader stored them."""
    fake = FakeBctrl()
    t0 = NOW - timedelta(minutes=10)
    fake.add_run("r1", t0, status="succeeded", runtime="rt_a", endedAt=iso(t0 + timedelta(seconds=5)))
    fake.add_run("done", t0 - timedelta(minutes=1), status="succeeded")
    fake.add_items(
        "r1",
        run_start("r1", t0),
        item("i1", "r1", t0 + timedelta(seconds=1), status="running", commandId="c1", title="Type"),
        item("i2", "r1", t0 + timedelta(seconds=2), status="succeeded", commandId="c1", title="Type"),
        run_end("r1", t0 + timedelta(seconds=5)),
    )
    state = MemoryState()
    state.checkpoint = {"watermark": (NOW - timedelta(minutes=5)).isoformat()}
    state.seen = {"run:done": (t0 - timedelta(minutes=1)).timestamp()}
    # [id, time, category, level, severity, status, title, type,
    #  message, commandId, correlationId, contextId, pageId, artifactId]
    start = ["r1-start", t0.isoformat(), "system", "summary", "info", "running", "Run started", "run.started"]
    step = ["i1", (t0 + timedelta(seconds=1)).isoformat(), "action", "summary", "info", "running", "Type"]
    held: list[list[object]] = [
        [*start, None, None, None, None, None, None],
        [*step, "command.step", None, "c1", None, None, None, None],
    ]
    listed = {
        "status": "running",
        "created": t0.isoformat(),
        "started": t0.isoformat(),
        "ended": None,
        "runtime": "rt_a",
        "space": "space_1",
    }
    state.open["r1"] = OpenRun(
        run_id="r1",
        agent="rt_a",
        opened_at=t0.timestamp(),
        data={"v": 1, "run": listed, "cursor": "a2", "items": held, "bad": [], "runtime": "rt_1", "kind": "browser"},
    )

    poll(make_source(fake, page_size=2), state)

    assert [(r.url.path, r.url.params.get("cursor")) for r in fake.requests] == [
        ("/v1/runs", None),  # the first page already reaches watermark - lookback
        ("/v1/runs/r1/activity", "a2"),  # the stored cursor, not the start
    ]
    assert [e.id for e in state.events] == ["i2", "r1-end"]  # only what the old reader had not read
    (run,) = state.runs
    assert (run.run_id, run.status, run.agent_id) == ("r1", RunStatus.SUCCEEDED, "rt_a")
    assert (run.started_at, run.ended_at) == (t0, t0 + timedelta(seconds=5))
    assert [(c.id, c.status) for c in run.tool_calls] == [("c1", ToolStatus.SUCCEEDED)]
    assert [e.id for e in run.events] == ["r1-start", "r1-end"]
    assert state.open == {} and state.seen["run:r1"] == t0.timestamp()
    assert state.checkpoint == {"watermark": (NOW - timedelta(minutes=5)).isoformat()}


# -- concurrent activity reads ---------------------------------------------------------------


def busy_history(fake: FakeBctrl, runs: int = 130) -> None:
    """Many open runs with several activity pages each (page_size 3): finished
    ones, running ones, gone ones (404) and ones with a bad item, across more
    than one grouped commit."""
    for n in range(runs):
        run_id, t0 = f"r{n:03d}", NOW - timedelta(minutes=50) + timedelta(seconds=20 * n)
        status = ("succeeded", "running", "failed", "running")[n % 4]
        fake.add_run(run_id, t0, status=status, runtime=f"rt_{n % 7}")
        if n % 11 == 5:
            del fake.activity[run_id]  # listed, but its activity answers 404
            continue
        steps = [run_start(run_id, t0)]
        steps += [item(f"{run_id}-{k}", run_id, t0 + timedelta(seconds=k + 1)) for k in range(n % 9)]
        if n % 13 == 0:
            steps.append({**item(f"{run_id}-bad", run_id, t0), "time": "not-a-time"})
        if status != "running":
            steps.append(run_end(run_id, t0 + timedelta(seconds=15), status))
        fake.add_items(run_id, *steps)


def grow(fake: FakeBctrl, step: int) -> None:
    """More activity for the running runs, some of them ending."""
    for run_id, run in fake.runs.items():
        if run["status"] != "running" or run_id not in fake.activity:
            continue
        n = int(run_id[1:])
        t = NOW + timedelta(seconds=step)
        fake.add_items(run_id, *(item(f"{run_id}-s{step}-{k}", run_id, t) for k in range(n % 5)))
        if (n + step) % 3 == 0:
            fake.add_items(run_id, run_end(run_id, t + timedelta(seconds=1)))


def polls(concurrency: int, rounds: int = 3) -> tuple[list[list[Batch]], MemoryState, list[tuple[str, str | None]]]:
    fake = FakeBctrl()
    busy_history(fake)
    src, state = make_source(fake, concurrency=concurrency, page_size=3), MemoryState()
    out = []
    for k in range(rounds):
        out.append(poll(src, state, NOW + timedelta(seconds=30 * k)))
        grow(fake, k + 1)
    requests = sorted(((r.url.path, r.url.params.get("cursor")) for r in fake.requests), key=str)
    src.close()
    return out, state, requests


def test_concurrent_activity_reads_give_exactly_the_batches_of_a_sequential_read() -> None:
    sequential, seq_state, seq_requests = polls(1)
    concurrent, state, requests = polls(8)
    assert len(sequential[0]) > 3  # several grouped commits: the concurrent part is exercised
    assert sum(len(b.runs) for b in sequential[0]) > 30 and len(seq_state.open) >= 10
    assert concurrent == sequential  # runs, events, open runs, seen keys, checkpoints, records, in order
    assert (state.open, state.seen, state.checkpoint, state.records) == (
        seq_state.open,
        seq_state.seen,
        seq_state.checkpoint,
        seq_state.records,
    )
    assert requests == seq_requests  # the same requests, only overlapping


@pytest.mark.parametrize("concurrency", [8, 1])
def test_activity_requests_of_different_runs_are_in_flight_together(concurrency: int) -> None:
    """Each activity request waits until 4 are waiting at once: only a reader
    with 4 in flight together gets past. The sequential reader cannot (its
    barrier times out), which proves the test tells the two apart."""
    fake = FakeBctrl()
    for n in range(8):
        fake.add_run(f"r{n}", NOW - timedelta(minutes=5 - n / 2))
        fake.add_items(f"r{n}", run_start(f"r{n}", NOW - timedelta(minutes=5)))
    barrier = threading.Barrier(4, timeout=5 if concurrency > 1 else 0.2)
    lock, in_flight, most, broken = threading.Lock(), [0], [0], []

    def together(request: httpx.Request) -> httpx.Response | None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            broken.append(request.url.path)
        finally:
            with lock:
                in_flight[0] -= 1
        return None  # the fake's answer

    for n in range(8):
        fake.override[f"/v1/runs/r{n}/activity"] = together
    state = MemoryState()
    poll(make_source(fake, concurrency=concurrency), state)
    assert len(state.open) == 8 and len(state.events) == 8
    if concurrency > 1:
        assert broken == [] and most[0] >= 4
    else:
        assert broken and most[0] == 1


def failing_history(fake: FakeBctrl, fail: str) -> None:
    busy_history(fake, runs=90)
    if fail == "http_500":
        fake.override["/v1/runs/r070/activity"] = lambda r: httpx.Response(500, json={"error": "boom"})
    else:  # a bad response on the second page of r070's chain
        fake.override["/v1/runs/r070/activity"] = lambda r: (
            httpx.Response(200, json={"data": []}) if r.url.params.get("cursor") == "a3" else None
        )


@pytest.mark.parametrize(
    ("fail", "error"), [("http_500", RetryableError), ("bad_response", BadResponseError)], ids=["500", "bad"]
)
def test_a_failing_concurrent_request_fails_the_poll_as_a_sequential_read_does(
    fail: str, error: type[Exception]
) -> None:
    results = []
    for concurrency in (1, 8):
        fake = FakeBctrl()
        failing_history(fake, fail)
        src, state, committed = make_source(fake, concurrency=concurrency, page_size=3), MemoryState(), []
        with pytest.raises(error) as err:
            for batch in src.poll(PollContext(checkpoint={}, now=NOW, state=state)):
                state.apply(batch)
                committed.append(batch)
        src.close()
        results.append((committed, state.open, state.seen, state.checkpoint, str(err.value)))
    sequential, concurrent = results
    assert concurrent == sequential
    committed, open_runs, seen, _, _ = sequential
    assert len(committed) >= 2 and any(b.runs for b in committed[1:])  # activity groups committed before it
    assert "r070" in open_runs and "run:r070" not in seen and "run:r099" not in seen
