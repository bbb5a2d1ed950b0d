"""runtools source: parsing, windows, run assembly, dedup, failures."""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from exporter.config import SourceConfig
from exporter.model import Batch, Run, RunStatus, Severity, ToolStatus
from exporter.sources.base import PollContext
from exporter.sources.http import AuthError, BadResponseError, CursorLoopError
from exporter.sources.runtools import api, backfill
from exporter.sources.runtools import reader as runtools
from exporter.sources.runtools.reader import RuntoolsSource
from exporter.state.store import StateStore
from exporter.state.view import SourceStateView
from tests.conftest import source_config

FIXTURES = Path(__file__).parent / "fixtures" / "runtools"
T0 = datetime(2026, 5, 10, 12, 0, 0, tzinfo=timezone.utc)
Handler = Callable[[httpx.Request], httpx.Response]


def ev(i: int, seconds: float, event_type: str, run: str | None = "run_1", **extra: object) -> dict[str, object]:
    rtype, rid = ("tool", extra.pop("call", "tc1")) if event_type.startswith("tool.") else ("agent", "triage")
    body: dict[str, object] = {
        "id": f"act_{i}",
        "resourceType": rtype,
        "resourceId": rid,
        "eventType": event_type,
        "severity": "error" if event_type.endswith("failed") else "info",
        "status": event_type.rsplit(".", 1)[1],
        "title": event_type,
        "summary": f"summary of {event_type}",
        "threadId": "thr_1",
        "occurredAt": (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
    }
    if run:
        body["agentRunId"] = run
    body.update(extra)
    return body


class Feed:
    """A runtools API over a list of events: since/until filter, pages in
    reverse order (order is undocumented), cursor = offset."""

    def __init__(self, events: list[dict[str, object]], page: int = 2) -> None:
        self.events = events
        self.page = page
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()  # concurrent readers call it from several threads

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        q = request.url.params
        since, until = datetime.fromisoformat(q["since"]), datetime.fromisoformat(q["until"])
        visible = [e for e in reversed(self.events) if since <= datetime.fromisoformat(str(e["occurredAt"])) < until]
        offset = int(q.get("cursor") or 0)
        chunk = visible[offset : offset + self.page]
        more = offset + self.page < len(visible)
        return httpx.Response(
            200,
            json={
                "data": {"events": chunk},
                "meta": {"hasMore": more, "nextCursor": str(offset + self.page) if more else None},
            },
        )


class Harness:
    """A source over a real SQLite store on disk; each poll commits batches
    as the scheduler does."""

    def __init__(self, tmp_path: Path, handler: Handler, start_from: float = 3600.0, **options: object) -> None:
        self._open(tmp_path, handler, source_config(start_from=start_from, option_map=options))

    @classmethod
    def reading(
        cls, tmp_path: Path, handler: Handler, concurrency: int, start_from: float, options: Mapping[str, object]
    ) -> Harness:
        """A harness whose source reads with `concurrency` requests at once."""
        h = cls.__new__(cls)
        config = source_config(start_from=start_from, concurrency=concurrency, option_map=options)
        h._open(tmp_path, handler, config)
        return h

    def _open(self, tmp_path: Path, handler: Handler, config: SourceConfig) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.store = StateStore(tmp_path / "state.db")
        self.source = RuntoolsSource(config, transport=httpx.MockTransport(handler))
        self.runs: list[Run] = []
        self.events = 0
        self.rejected: list[str] = []
        self.batches: list[Batch] = []

    def poll(self, now: datetime, stop_after: int | None = None) -> None:
        ctx = PollContext(checkpoint=self.store.checkpoint("feed"), now=now, state=SourceStateView(self.store, "feed"))
        for n, batch in enumerate(self.source.poll(ctx)):
            self.store.commit("feed", batch, [], {}, 1000)
            self.batches.append(batch)
            self.runs += batch.runs
            self.events += len(batch.events)
            self.rejected += [r.reason for r in batch.rejected]
            if stop_after is not None and n + 1 >= stop_after:
                return  # as if the process died after this commit


def test_seed_example_parses_and_counts(tmp_path: Path) -> None:
    page = json.loads((FIXTURES / "activity_page.json").read_text())  # the vendor page's example

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=page)

    h = Harness(tmp_path, handler)
    h.poll(datetime(2026, 5, 10, 12, 30, tzinfo=timezone.utc))
    assert h.rejected == []
    assert h.events == 1  # the example event counted once
    # Its run ended (agent.run.completed) and is exported, though its start is older than the window.
    assert [(r.run_id, r.status, r.conversation_id) for r in h.runs] == [
        ("run_abc123", RunStatus.SUCCEEDED, "thr_abc123")
    ]


def test_run_assembled_from_unordered_pages_with_tool_calls(tmp_path: Path) -> None:
    feed = Feed(
        [
            ev(1, 0, "agent.run.started"),
            ev(2, 1, "tool.call.started", toolSlug="web_search"),
            ev(3, 3, "tool.call.completed", toolSlug="web_search"),
            ev(4, 4, "tool.call.started", call="tc2", toolSlug="send_email"),
            ev(5, 5, "tool.call.failed", call="tc2", toolSlug="send_email"),
            ev(6, 6, "agent.message.added"),
            ev(7, 9, "agent.run.failed"),
            ev(8, 9.5, "sandbox.created", run=None, resourceType="sandbox", status="created"),
        ]
    )
    h = Harness(tmp_path, feed)
    h.poll(T0 + timedelta(seconds=30))
    assert len(h.runs) == 1
    run = h.runs[0]
    assert (run.status, run.agent_id, run.started_at, run.ended_at) == (
        RunStatus.FAILED,
        "triage",
        T0,
        T0 + timedelta(seconds=9),
    )
    assert run.error_message == "summary of agent.run.failed"
    calls = {c.id: c for c in run.tool_calls}
    assert (calls["tc1"].name, calls["tc1"].status) == ("web_search", ToolStatus.SUCCEEDED)
    assert (calls["tc2"].name, calls["tc2"].status) == ("send_email", ToolStatus.FAILED)
    assert calls["tc1"].ended_at is not None and calls["tc1"].ended_at - calls["tc1"].started_at == timedelta(seconds=2)
    assert [e.name for e in run.events] == ["agent.run.started", "agent.message.added", "agent.run.failed"]
    assert h.events == 8  # every event counted once, the sandbox one included


def test_run_stays_open_until_terminal_event_arrives_in_a_later_poll(tmp_path: Path) -> None:
    events = [ev(1, 0, "agent.run.started"), ev(2, 1, "tool.call.started", toolSlug="q")]
    feed = Feed(events)
    h = Harness(tmp_path, feed)
    h.poll(T0 + timedelta(seconds=5))
    assert h.runs == []
    assert [o.run_id for o in h.store.open_runs("feed")] == ["run_1"]
    assert h.store.open_run_counts("feed") == {"triage": 1}
    events += [ev(3, 7, "tool.call.completed", toolSlug="q"), ev(4, 8, "agent.run.completed")]
    h.poll(T0 + timedelta(seconds=10))
    assert [(r.run_id, r.status) for r in h.runs] == [("run_1", RunStatus.SUCCEEDED)]
    assert h.runs[0].tool_calls[0].status is ToolStatus.SUCCEEDED
    assert list(h.store.open_runs("feed")) == []
    # Re-reading the same window (lookback overlap) changes nothing.
    h.poll(T0 + timedelta(seconds=12))
    assert len(h.runs) == 1 and h.events == 4


def test_repeated_items_count_once(tmp_path: Path) -> None:
    base = [ev(1, 0, "agent.run.started"), ev(2, 2, "agent.run.completed")]

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        meta = {"hasMore": cursor is None, "nextCursor": "p2" if cursor is None else None}
        return httpx.Response(200, json={"data": {"events": base}, "meta": meta})  # page 2 repeats page 1

    h = Harness(tmp_path, handler)
    h.poll(T0 + timedelta(seconds=5))
    assert h.events == 2 and len(h.runs) == 1


def test_crash_mid_window_resumes_from_committed_cursor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)
    feed = Feed([ev(i, i, "agent.message.added") for i in range(1, 7)] + [ev(9, 8, "agent.run.completed")], page=2)
    h = Harness(tmp_path, feed, start_from=20.0)  # one window holds every event
    h.poll(T0 + timedelta(seconds=20), stop_after=1)  # one batch of two pages committed, then "kill -9"
    assert h.events == 4 and len(feed.requests) == 2
    first_requests = len(feed.requests)
    h2 = Harness(tmp_path, feed, start_from=20.0)  # a new process on the same state file
    h2.poll(T0 + timedelta(seconds=20))
    assert h.events + h2.events == 7  # nothing lost, nothing counted twice
    assert feed.requests[first_requests].url.params["cursor"] == "4"  # resumed, not restarted
    assert len(h2.runs) == 1


def test_idle_poll_costs_one_request(tmp_path: Path) -> None:
    feed = Feed([ev(1, 0, "agent.run.started"), ev(2, 1, "agent.run.completed")])
    h = Harness(tmp_path, feed)
    h.poll(T0 + timedelta(seconds=5))
    before = len(feed.requests)
    h.poll(T0 + timedelta(seconds=35))
    assert len(feed.requests) - before == 1


def test_backfill_is_read_in_bounded_windows_that_start_narrow(tmp_path: Path) -> None:
    feed = Feed([ev(1, 0, "agent.run.started"), ev(2, 1, "agent.run.completed")])
    h = Harness(tmp_path, feed, max_window=600.0, lookback=0.0, start_from=3600.0)
    now = T0 + timedelta(minutes=30)
    h.poll(now)
    windows = [(parse(r.url.params["since"]), parse(r.url.params["until"])) for r in feed.requests]
    assert windows[0][0] == now - timedelta(hours=1) and windows[-1][1] == now  # the whole of start_from
    assert all(b[0] == a[1] for a, b in pairwise(windows))  # contiguous, no gap
    spans = [(until - since).total_seconds() for since, until in windows]
    # A sparse feed: the first window is narrow (a dense one would hold every run open until its end),
    # and each one-page window doubles the next, up to max_window.
    assert spans[:5] == [60.0, 120.0, 240.0, 480.0, 600.0] and max(spans) == 600.0
    assert len(h.runs) == 1


def test_settled_backfill_windows_do_not_overlap_and_keep_no_event_keys(tmp_path: Path) -> None:
    past = [ev(1, -1500, "agent.run.started", run="old"), ev(2, -1499, "agent.run.completed", run="old")]
    live = [ev(3, 1790, "agent.run.started", run="new"), ev(4, 1791, "agent.run.completed", run="new")]
    feed = Feed(past + live)
    h = Harness(tmp_path, feed, max_window=600.0, lookback=30.0, start_from=3600.0)
    now = T0 + timedelta(minutes=30)
    h.poll(now)
    windows = [(parse(r.url.params["since"]), parse(r.url.params["until"])) for r in feed.requests]
    assert windows[0][0] == now - timedelta(seconds=3600 + 30)  # the first window has its lookback
    # After a settled window, only a 1 s overlap (boundary inclusivity is undocumented), not lookback.
    assert all(b[0] == a[1] - timedelta(seconds=1) for a, b in pairwise(windows))
    assert sorted(r.run_id for r in h.runs) == ["new", "old"] and h.events == 4
    assert not h.store.is_seen("feed", "ev:act_1")  # a settled window's events are never read again
    assert h.store.is_seen("feed", "ev:act_3")  # the live window's are: the next window overlaps it
    assert {"run:old", "run:new"} <= {k for b in h.batches for k in b.seen_add}  # exported runs are still marked
    h.poll(now + timedelta(seconds=5))
    assert parse(feed.requests[-1].url.params["since"]) == now - timedelta(seconds=30)  # live: overlap kept
    assert len(h.runs) == 2 and h.events == 4  # nothing counted twice


def test_dense_backfill_narrows_its_windows_and_exports_runs_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)
    events = []
    for n in range(30):  # a run every 2 minutes over the last hour, 3 events each
        t = -3500 + 120 * n
        events += [
            ev(3 * n, t, "agent.run.started", run=f"r{n}"),
            ev(3 * n + 1, t + 1, "agent.message.added", run=f"r{n}"),
            ev(3 * n + 2, t + 2, "agent.run.completed", run=f"r{n}"),
        ]
    feed = Feed(events, page=2)
    h = Harness(tmp_path, feed, max_window=1200.0, lookback=30.0, start_from=3600.0)
    h.poll(T0)
    spans = [
        parse(r.url.params["until"]) - parse(r.url.params["since"])
        for r in feed.requests
        if r.url.params.get("cursor") is None
    ]
    assert spans[0] == timedelta(seconds=90)  # FIRST_SPAN and the lookback: never the whole start_from
    assert max(spans) < timedelta(seconds=600)  # grown while sparse, narrowed once a window needed more pages
    assert sorted(r.run_id for r in h.runs) == sorted(f"r{n}" for n in range(30)) and h.events == 90
    upserted = {run_id for b in h.batches for run_id in b.open_upserts}
    assert len(upserted) <= 5  # most runs never went through the open-run table
    assert h.store.open_run_counts("feed") == {}


@pytest.mark.parametrize("crash_after", [1, 3, 7, 12, 20])
def test_a_backfill_killed_after_any_batch_resumes_without_loss_or_double_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)
    events = []
    for n in range(20):  # runs overlapping each other and window ends, tool calls on other pages
        t = -3500 + 150 * n
        events += [
            ev(5 * n, t, "agent.run.started", run=f"r{n}"),
            ev(5 * n + 1, t + 40, "tool.call.started", run=f"r{n}", call=f"c{n}", toolSlug="search"),
            ev(5 * n + 2, t + 90, "tool.call.completed", run=f"r{n}", call=f"c{n}", toolSlug="search"),
            ev(5 * n + 3, t + 100, "agent.message.added", run=f"r{n}"),
            ev(5 * n + 4, t + 200, "agent.run.completed", run=f"r{n}"),
        ]
    feed = Feed(events, page=2)
    options = {"max_window": 1200.0, "lookback": 30.0, "start_from": 3600.0}
    first = Harness(tmp_path, feed, **options)
    first.poll(T0, stop_after=crash_after)  # "kill -9" after this many committed batches
    second = Harness(tmp_path, feed, **options)  # a new process: the span narrowing starts over
    second.poll(T0)
    runs = first.runs + second.runs
    assert sorted(r.run_id for r in runs) == sorted(f"r{n}" for n in range(20))  # each once
    assert first.events + second.events == 100
    assert all(len(r.tool_calls) == 1 and r.tool_calls[0].ended_at is not None for r in runs)


def test_an_event_on_a_settled_window_boundary_counts_once_however_the_server_reads_until(tmp_path: Path) -> None:
    boundary = [ev(1, -3000, "agent.run.started", run="edge"), ev(2, -2999, "agent.run.completed", run="edge")]
    now = T0
    first_until = now - timedelta(seconds=3600) + timedelta(seconds=600)
    # The completing event sits exactly on the first window's end.
    feed = Feed([boundary[0], dict(boundary[1], occurredAt=first_until.isoformat().replace("+00:00", "Z"))])
    h = Harness(tmp_path, lambda request: _inclusive(feed, request), max_window=600.0, lookback=30.0, start_from=3600.0)
    h.poll(now)
    assert [r.run_id for r in h.runs] == ["edge"] and h.events == 2


def _inclusive(feed: Feed, request: httpx.Request) -> httpx.Response:
    """The feed with `until` read as inclusive."""
    q = request.url.params
    since, until = parse(q["since"]), parse(q["until"])
    visible = [e for e in reversed(feed.events) if since <= parse(str(e["occurredAt"])) <= until]
    offset = int(q.get("cursor") or 0)
    chunk = visible[offset : offset + feed.page]
    more = offset + feed.page < len(visible)
    return httpx.Response(
        200,
        json={
            "data": {"events": chunk},
            "meta": {"hasMore": more, "nextCursor": str(offset + feed.page) if more else None},
        },
    )


def test_narrowing_never_widens_a_window_past_max_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 1)
    feed = Feed([ev(i, -600 + i, "agent.message.added", run=None) for i in range(40)], page=2)
    h = Harness(tmp_path, feed, max_window=5.0, lookback=0.0, start_from=600.0)  # below MIN_SPAN
    h.poll(T0)
    spans = {parse(r.url.params["until"]) - parse(r.url.params["since"]) for r in feed.requests}
    assert max(spans) <= timedelta(seconds=5) and h.events == 40


def _params(request: httpx.Request) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(request.url.params.multi_items()))


def api_time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_bad_record_is_rejected_and_the_rest_used(tmp_path: Path) -> None:
    good = [ev(1, 0, "agent.run.started"), ev(2, 2, "agent.run.completed")]
    bad = [{"id": "act_x", "occurredAt": "yesterday"}, {"occurredAt": "2026-05-10T12:00:00Z"}, "not an object"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"events": bad + good}, "meta": {"hasMore": False}})

    h = Harness(tmp_path, handler, start_from=5.0)  # one window: the handler answers every window alike
    h.poll(T0 + timedelta(seconds=5))
    assert sorted(h.rejected) == ["bad_timestamp", "bad_type", "missing_field"]
    assert len(h.runs) == 1


def test_unknown_enum_values_are_counted_as_unknown(tmp_path: Path) -> None:
    odd = ev(1, 0, "agent.run.started", severity="catastrophic", status="exploded", resourceType="spaceship")
    h = Harness(tmp_path, Feed([odd]))
    ctx = PollContext(checkpoint={}, now=T0 + timedelta(seconds=5), state=SourceStateView(h.store, "feed"))
    events = [e for b in h.source.poll(ctx) for e in b.events]
    assert [(e.category, e.severity, e.status) for e in events] == [("unknown", Severity.UNKNOWN, "unknown")]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}), BadResponseError),
        (httpx.Response(200, text='{"data": {"events": [{"id": "a'), BadResponseError),
        (httpx.Response(200, json={"events": []}), BadResponseError),
        (httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad key"}}), AuthError),
    ],
)
def test_bad_responses_fail_the_poll_and_keep_the_checkpoint(
    tmp_path: Path, response: httpx.Response, error: type[Exception]
) -> None:
    h = Harness(tmp_path, lambda request: response)
    h.source._client._retries = 0  # retries are tested in test_http
    with pytest.raises(error):
        h.poll(T0)
    assert h.store.checkpoint("feed") == {}


def test_repeated_cursor_ends_the_poll(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"events": []}, "meta": {"hasMore": True, "nextCursor": "same"}})

    h = Harness(tmp_path, handler)
    with pytest.raises(CursorLoopError):
        h.poll(T0)


def test_requests_carry_the_key_and_the_filters(tmp_path: Path) -> None:
    feed = Feed([])
    h = Harness(tmp_path, feed, filters={"resource_type": "agent"})
    h.poll(T0)
    request = feed.requests[0]
    assert request.headers["X-API-Key"] == "s3cret-key-value"
    assert request.url.params["resource_type"] == "agent"
    assert request.url.params["limit"] == "200"


def test_expire_builds_an_incomplete_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, Feed([ev(1, 0, "agent.run.started"), ev(2, 1, "tool.call.started", toolSlug="q")]))
    h.poll(T0 + timedelta(seconds=5))
    open_run = next(h.store.open_runs("feed"))
    run = h.source.expire(open_run, T0 + timedelta(hours=7))
    assert (run.status, run.ended_at, run.agent_id) == (RunStatus.INCOMPLETE, None, "triage")
    assert run.tool_calls[0].status is ToolStatus.UNKNOWN


def test_narrow_windows_near_now_never_reread_a_settled_window(tmp_path: Path) -> None:
    """A dense feed narrows windows below `lookback`; the windows just before
    now are not settled, and each starts `lookback` back, which used to reach
    into the last settled window, whose event keys are not stored: its
    events counted twice."""
    events = [ev(i, -300 + i * 0.6, "agent.message.added", run=None) for i in range(492)]  # up to 5 s ago
    feed = Feed(events, page=2)  # ten pages (one committed batch) per 10 s window
    h = Harness(tmp_path, feed, start_from=400.0, lookback=30.0)
    now = T0
    h.poll(now)
    spans = [parse(r.url.params["until"]) - parse(r.url.params["since"]) for r in feed.requests]
    assert min(spans) < timedelta(seconds=30)  # the shape that broke: windows narrower than lookback
    assert h.events == len(events)  # each event counted once
    h.poll(now + timedelta(seconds=5))  # the next poll's live window starts lookback back, too
    assert h.events == len(events)


def test_window_bounds_are_whole_milliseconds_so_a_settled_edge_is_read_once(tmp_path: Path) -> None:
    """Bounds go to the platform with millisecond precision. A clock reading
    between two milliseconds made a settled window's edge (whose keys are
    kept from `until - 1 s` exactly) go out rounded down, so an event in that
    fraction of a millisecond was read again with its key gone: counted
    twice."""
    events = [ev(i, -100 + i, "agent.message.added", run=None) for i in range(95)]  # on whole seconds
    feed = Feed(events, page=10)  # the first window in one committed batch: only its edge's keys kept
    h = Harness(tmp_path, feed, start_from=100.0, lookback=30.0)
    h.poll(T0 + timedelta(microseconds=900))  # between two milliseconds
    assert h.events == len(events)


def _old_shape(checkpoint: dict[str, object]) -> dict[str, object]:
    """A checkpoint as an exporter before issue #14 wrote it: the window as
    {"since", "until", "cursor", "complete"}, no "settled" while reading."""
    window = checkpoint.get("window")
    old = {k: v for k, v in checkpoint.items() if k not in ("window", "settled")}
    if isinstance(window, dict):
        cursor = window.get("cursor")
        old["window"] = {"since": window["from"], "until": window["to"], "cursor": cursor, "complete": cursor is None}
    return old


@pytest.mark.parametrize("stop_after", [1, 2])  # mid-window (a cursor); read to its end, runs not yet finalized
def test_an_old_shaped_checkpoint_resumes_at_the_same_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_after: int
) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)
    events = [ev(i, i, "agent.message.added") for i in range(1, 7)] + [ev(9, 8, "agent.run.completed")]
    resumed = []
    for shape in ("new", "old"):
        (tmp_path / shape).mkdir()
        feed = Feed(events, page=2)
        first = Harness(tmp_path / shape, feed, start_from=20.0)
        first.poll(T0 + timedelta(seconds=20), stop_after=stop_after)  # then "kill -9"
        checkpoint = first.store.checkpoint("feed")
        assert isinstance(checkpoint.get("window"), dict)  # part-read
        if shape == "old":
            first.store.commit("feed", Batch(checkpoint=_old_shape(checkpoint)), [], {}, 1000)
            stored = first.store.checkpoint("feed")["window"]
            assert isinstance(stored, dict) and set(stored) == {"since", "until", "cursor", "complete"}
        done = len(feed.requests)
        second = Harness(tmp_path / shape, feed, start_from=20.0)  # the upgraded exporter on that state file
        second.poll(T0 + timedelta(seconds=20))
        requests = [dict(r.url.params) for r in feed.requests[done:]]
        resumed.append((requests, first.events + second.events, [r.run_id for r in first.runs + second.runs]))
    assert resumed[0] == resumed[1]
    assert resumed[1][1:] == (7, ["run_1"])  # nothing lost, nothing counted twice


def test_the_checkpoint_keeps_the_window_being_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)
    feed = Feed([ev(i, i, "agent.message.added") for i in range(1, 7)], page=2)
    h = Harness(tmp_path, feed, start_from=20.0)
    now = T0 + timedelta(seconds=20)
    h.poll(now, stop_after=1)
    since, until = now - timedelta(seconds=20 + 30), now
    assert h.store.checkpoint("feed") == {
        "watermark": (now - timedelta(seconds=20)).isoformat(),
        "window": {"from": since.isoformat(), "to": until.isoformat(), "cursor": "4"},
        "settled": False,
    }
    h.poll(now)
    assert h.store.checkpoint("feed") == {"watermark": until.isoformat(), "settled": False}


@pytest.mark.parametrize(
    ("meta", "cursor"),
    [
        ({"hasMore": True, "nextCursor": "c2"}, "c2"),
        ({"hasMore": True, "nextCursor": ""}, None),  # nothing more can be asked for
        ({"hasMore": True}, None),
        ({"hasMore": False, "nextCursor": "c2"}, None),
        ("not an object", None),
    ],
)
def test_a_page_names_the_next_cursor_only_when_there_is_more(meta: object, cursor: str | None) -> None:
    assert api.page("feed", {"data": {"events": []}, "meta": meta}) == api.Page([], cursor)


# -- concurrent backfill (issue #15) -------------------------------------------


def _busy_history(seed: int = 7) -> list[dict[str, object]]:
    """Runs of random length over the last 15 minutes, some crossing many
    windows, some still open at the end, tool calls on other pages, events
    without a run, and a few in the live part (within `lookback` of now)."""
    rnd = random.Random(seed)
    events: list[dict[str, object]] = []
    for n in range(90):
        start = rnd.uniform(-900, -5)
        run = f"r{n}"
        events.append(ev(len(events), start, "agent.run.started", run=run))
        t = start
        for c in range(rnd.randint(0, 3)):
            t += rnd.uniform(0.5, 20)
            events.append(ev(len(events), t, "tool.call.started", run=run, call=f"c{n}.{c}", toolSlug="q"))
            t += rnd.uniform(0.5, 30)
            events.append(ev(len(events), t, "tool.call.completed", run=run, call=f"c{n}.{c}", toolSlug="q"))
        t += rnd.uniform(0.5, 60)
        if t < -1 and n % 9:
            events.append(ev(len(events), t, rnd.choice(["agent.run.completed", "agent.run.failed"]), run=run))
    events += [ev(len(events) + i, rnd.uniform(-900, -1), "sandbox.created", run=None) for i in range(40)]
    return events


# max_window below MIN_SPAN: every backfill window spans exactly 10 s however
# many pages it has, so the concurrent reader's windows are the sequential
# one's, and its batches must be too.
FIXED_SPAN = {"max_window": 10.0, "lookback": 30.0}


def _read_all(tmp_path: Path, concurrency: int, feed: Feed, stop_after: int | None = None) -> Harness:
    h = Harness.reading(tmp_path, feed, concurrency, 900.0, FIXED_SPAN)
    h.poll(T0, stop_after)
    return h


def _outcome(h: Harness) -> tuple[object, ...]:
    return (h.batches, h.store.checkpoint("feed"), list(h.store.open_runs("feed")), h.events)


def test_a_concurrent_backfill_yields_exactly_the_batches_of_a_sequential_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)  # windows of several batches, prefetched in part
    events = _busy_history()
    sequential = _read_all(tmp_path / "1", 1, feed_1 := Feed(events, page=2))
    concurrent = _read_all(tmp_path / "8", 8, feed_8 := Feed(events, page=2))
    assert len(sequential.batches) > 100 and len(sequential.runs) > 50  # the history is a busy one
    chains = [
        len([r for r in feed_1.requests if parse(r.url.params["since"]) == s])
        for s in {parse(r.url.params["since"]) for r in feed_1.requests}
    ]
    assert max(chains) > 2 * backfill.PREFETCH_COMMITS * 2  # some window is longer than what is fetched ahead
    assert _outcome(concurrent) == _outcome(sequential)
    assert sorted(map(_params, feed_8.requests)) == sorted(map(_params, feed_1.requests))  # the same requests
    assert len({r.run_id for r in concurrent.runs}) == len(concurrent.runs)  # each run once
    # And a next poll (live, sequential) goes on alike from either state.
    for h in (sequential, concurrent):
        h.poll(T0 + timedelta(seconds=20))
    assert _outcome(concurrent) == _outcome(sequential)


def test_a_concurrent_backfill_killed_after_any_batch_resumes_as_a_sequential_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)
    events = _busy_history(seed=11)
    whole = _read_all(tmp_path / "whole", 1, Feed(events, page=2))
    for crash_after in (1, 5, 17, 40):
        directory = tmp_path / f"crash{crash_after}"
        first = _read_all(directory, 8, Feed(events, page=2), stop_after=crash_after)  # then "kill -9"
        second = _read_all(directory, 8, Feed(events, page=2))  # resumes, concurrently, from the checkpoint
        runs = first.runs + second.runs
        assert sorted(r.run_id for r in runs) == sorted(r.run_id for r in whole.runs)  # nothing lost or doubled
        assert first.events + second.events == whole.events
        assert second.store.checkpoint("feed") == whole.store.checkpoint("feed")


def test_a_concurrent_backfill_of_varying_density_reads_every_event_once(tmp_path: Path) -> None:
    """Spans adapt as windows are consumed (windows planned ahead keep
    theirs), so the windows differ from a sequential read's; what is read
    does not, and the windows are a function of the feed, not of timing."""
    events = _busy_history(seed=3)
    events += [ev(10_000 + i, -600 + i * 0.05, "agent.message.added", run=None) for i in range(2000)]  # a burst
    options = {"max_window": 600.0, "lookback": 30.0}
    results, feeds = [], []
    for n, concurrency in enumerate((1, 8, 8)):
        feed = Feed(events, page=20)
        h = Harness.reading(tmp_path / str(n), feed, concurrency, 900.0, options)
        h.poll(T0)
        results.append(h)
        feeds.append(feed)
    sequential, concurrent, again = results
    assert concurrent.events == sequential.events == len([e for e in events if parse(str(e["occurredAt"])) < T0])
    assert sorted((r.run_id, r.status, len(r.tool_calls)) for r in concurrent.runs) == sorted(
        (r.run_id, r.status, len(r.tool_calls)) for r in sequential.runs
    )
    assert sorted(o.run_id for o in concurrent.store.open_runs("feed")) == sorted(
        o.run_id for o in sequential.store.open_runs("feed")
    )
    assert concurrent.store.checkpoint("feed")["watermark"] == T0.isoformat()
    assert _outcome(again) == _outcome(concurrent)  # deterministic: the same windows, the same batches
    assert sorted(map(_params, feeds[2].requests)) == sorted(map(_params, feeds[1].requests))
    # Settled windows run up to now - lookback; only the live part after it is read alone.
    live = [r for r in feeds[1].requests if parse(r.url.params["until"]) > T0 - timedelta(seconds=30)]
    assert {(r.url.params["since"], r.url.params["until"]) for r in live} == {
        (api_time(T0 - timedelta(seconds=31)), api_time(T0))
    }


@pytest.mark.parametrize(("concurrency", "overlapped"), [(8, True), (1, False)])
def test_settled_windows_are_requested_together(tmp_path: Path, concurrency: int, overlapped: bool) -> None:
    """The first four requests each wait until all four are in flight: a
    sequential reader's first request waits alone until the barrier gives up."""
    feed = Feed([ev(i, -3000 + 30 * i, "agent.message.added", run=None) for i in range(100)], page=2)
    barrier = threading.Barrier(4, timeout=5 if overlapped else 0.5)
    waited: list[bool] = []
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            first = len(waited) < 4
            waited.append(first)
        if first:
            with contextlib.suppress(threading.BrokenBarrierError):  # answered anyway: the test looks at the barrier
                barrier.wait()
        return feed(request)

    h = Harness.reading(tmp_path, handler, concurrency, 3600.0, {"max_window": 600.0, "lookback": 30.0})
    h.poll(T0)
    assert barrier.broken is not overlapped
    assert h.events == 100


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}),
    ],
)
def test_a_failed_request_read_ahead_fails_the_poll_after_the_same_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: httpx.Response
) -> None:
    monkeypatch.setattr(runtools, "PAGES_PER_COMMIT", 2)
    events = _busy_history(seed=5)
    clean = Feed(events, page=2)
    _read_all(tmp_path / "clean", 1, clean)
    third_pages = [parse(r.url.params["since"]) for r in clean.requests if r.url.params.get("cursor") == "4"]
    failing_since = third_pages[len(third_pages) // 2]  # a window half-way through the backfill
    assert failing_since < T0 - timedelta(seconds=300)  # settled, and read with others ahead of it
    outcomes = []
    for concurrency in (1, 8):
        feed = Feed(events, page=2)

        def handler(request: httpx.Request, feed: Feed = feed) -> httpx.Response:
            q = request.url.params
            if parse(q["since"]) == failing_since and q.get("cursor") == "4":  # its third page
                return failure
            return feed(request)

        h = Harness.reading(tmp_path / str(concurrency), handler, concurrency, 900.0, FIXED_SPAN)
        h.source._client._retries = 0
        with pytest.raises(Exception) as raised:
            h.poll(T0)
        outcomes.append((type(raised.value), *_outcome(h)))
    sequential, concurrent = outcomes
    assert concurrent == sequential
    assert sequential[2]["window"]["cursor"] == "4"  # type: ignore[index]  # the failed window's first batch committed


def test_after_a_sparse_stretch_a_dense_one_is_read_in_windows_side_by_side(tmp_path: Path) -> None:
    """Two empty hours grow the span to `max_window`; a concurrent backfill
    then cuts the windows to a share of what is left, so the dense last half
    hour is read as many windows at once instead of one chain of pages. What
    is read is the same as a sequential read's."""
    events = [ev(i, -1800 + i * 0.5, "agent.message.added", run=None) for i in range(3000)]
    options = {"max_window": 3600.0, "lookback": 30.0}
    windows, counted = {}, {}
    for concurrency in (1, 8):
        feed = Feed(events, page=50)
        h = Harness.reading(tmp_path / str(concurrency), feed, concurrency, 3 * 3600.0, options)
        h.poll(T0)
        counted[concurrency] = h.events
        dense = {r.url.params["since"] for r in feed.requests if parse(r.url.params["until"]) > T0 - timedelta(hours=1)}
        windows[concurrency] = len(dense)
    assert counted[8] == counted[1] == len(events)
    assert windows[1] <= 3  # one long chain (and the live part)
    assert windows[8] >= 8  # a share each for the workers


def test_once_dense_windows_set_the_span_the_windows_up_to_the_horizon_keep_it(tmp_path: Path) -> None:
    """The cut to a share of what is left applies while the span grows:
    after dense windows have set it, the windows before the settled horizon
    keep it instead of shrinking, share after share, to a page or two each
    (a commit and a partial page apiece)."""
    events = [ev(i, -1800 + i * 0.5, "agent.message.added", run=None) for i in range(3600)]
    feed = Feed(events, page=20)
    h = Harness.reading(tmp_path, feed, 8, 3600.0, {"max_window": 3600.0, "lookback": 30.0})
    h.poll(T0)
    assert h.events == len(events)
    chains = Counter(r.url.params["since"] for r in feed.requests)
    pages = [chains[since] for since in sorted(chains, key=parse)]
    dense = next(i for i, n in enumerate(pages) if n >= runtools.PAGES_PER_COMMIT // 2)
    short = [n for n in pages[dense:] if n <= 2]
    assert len(short) <= 2, pages  # at most the window cut at the horizon and the live one
