"""The status page: the renderer (escaping, what it shows, no secret, no
external asset), content negotiation on /status, and the in-memory views it
shows (recent runs, requests over the last minutes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exporter.app import Exporter
from exporter.config import load_config
from exporter.convert.traces import run_trace_id
from exporter.model import Run, RunStatus
from exporter.recent import REQUEST_BUCKET, REQUEST_WINDOW, RecentRuns, RequestWindow
from exporter.server import ExporterServer, prefers_html
from exporter.statuspage import render_status_page

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)
KEY = "rt-secret-key-8c1f2e"
HEADER_TOKEN = "hdr-secret-33aa91"


def run(run_id: str, ended_at: datetime | None, agent: str = "triage", status: RunStatus = RunStatus.SUCCEEDED) -> Run:
    return Run(
        source="feed",
        platform="runtools",
        base_url="http://x.test",
        run_id=run_id,
        agent_id=agent,
        agent_name=agent,
        status=status,
        raw_status=status.value,
        started_at=NOW - timedelta(seconds=90),
        ended_at=ended_at,
    )


def status(**source: object) -> dict[str, object]:
    """A status as Exporter.status() returns it, one source."""
    return {
        "version": "1.2.3",
        "generated_at": NOW.isoformat(),
        "sources": {
            "feed": {
                "platform": "runtools",
                "up": True,
                "polls": 3,
                "last_success_at": (NOW - timedelta(seconds=5)).isoformat(),
                "last_error": None,
                "open_runs": 2,
                "checkpoint": {"watermark": "2026-05-10T11:59:00+00:00"},
                "data_lag_seconds": 12.0,
                "recent_requests": {"window_seconds": 300.0, "requests": 1234, "rate_limited": 7},
                "backfill_remaining_seconds": 0.0,
                "backfill": None,
                **source,
            }
        },
        "outbox_spans": 10,
        "outbox_max_spans": 1000,
        "traces": "http/protobuf",
        "spans_exported": {"success": 5, "failure": 0, "rejected": 0, "dropped": 0},
        "recent_runs": [],
    }


def test_the_page_shows_a_source_and_its_numbers() -> None:
    page = render_status_page(status())
    assert '<meta http-equiv="refresh" content="10">' in page
    assert re.search(r'data-source="feed".*?badge up">up<', page, re.S)
    assert ">1,234<" in page and ">7<" in page  # requests and 429s over the window
    assert "Requests (5m)" in page
    assert "caught up" in page and "12s" in page  # no backfill; the data lag


def test_delivery_shows_log_records_only_when_logs_are_on() -> None:
    off = render_status_page(status())
    assert ">5<" in off and "Spans delivered" in off
    assert "Log records" not in off and ">Logs<" not in off
    on = status()
    on.update(logs="grpc", log_records_exported={"success": 42, "failure": 3, "rejected": 0, "dropped": 0})
    page = render_status_page(on)
    assert re.search(r'class="v">grpc</div><div class="k">Logs<', page)
    assert re.search(r'class="v">42</div><div class="k">Log records delivered<', page)
    assert re.search(r'class="v">3</div><div class="k">Log records: failed sends \(retried\)<', page)


def test_replicas_show_every_lease_holder_and_sources_read_elsewhere() -> None:
    shared = status(lease_held=False, polls=0)
    shared["replicas"] = {
        "replica": "pod-a",
        "held": {"aa": 3},
        "database": "ok",
        "leases": {
            "aa": {"holder": "pod-a", "epoch": 3, "expires_in": 1.5},
            "feed": {"holder": "pod-b", "epoch": 7, "expires_in": 0.2},
        },
    }
    page = render_status_page(shared)
    assert "this replica: pod-a; database: ok" in page
    assert re.search(r"<strong>aa</strong></td><td>pod-a <span class=\"badge up\">this replica</span>", page)
    assert re.search(r"<strong>feed</strong></td><td>pod-b</td><td class=\"num\">7</td>", page)
    assert re.search(r'data-source="feed".*?another replica holds its lease', page, re.S)  # not "pending"
    assert "first poll running" not in page
    assert "<h2>Leases" not in render_status_page(status())  # one exporter on a state file: no such section


def test_an_unreachable_state_database_is_said_first() -> None:
    down = status()
    down["state"] = "state database postgresql://exporter:***@db/state: connection refused"
    down["replicas"] = {"replica": "pod-a", "held": {"feed": 2}, "database": "connection refused", "leases": None}
    page = render_status_page(down)
    assert 'id="state">state database postgresql://exporter:***@db/state: connection refused<' in page
    assert "held here: feed" in page


def test_a_backfill_shows_a_progress_bar_with_the_time_left() -> None:
    backfill = {
        "read_seconds": 86400.0 * 3,
        "remaining_seconds": 86400.0,
        "fraction": 0.75,
        "records_per_second": 1520.0,
        "eta_seconds": 130.0,
    }
    page = render_status_page(status(backfill=backfill, backfill_remaining_seconds=86400.0))
    assert 'role="progressbar" aria-valuenow="75"' in page
    assert 'style="width:75.0%"' in page
    assert "1d 0h of history to read" in page and "about 2m 10s left" in page and "1,520 records/s" in page


def test_a_down_source_shows_its_error_and_a_first_poll_is_pending() -> None:
    down = render_status_page(status(up=False, last_error="GET /v1/activity: HTTP 401"))
    assert 'badge down">down<' in down and "HTTP 401" in down
    pending = render_status_page(status(up=False, polls=0))
    assert "pending" in pending and 'badge down"' not in pending


def test_every_value_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    s = status(platform=evil, last_error=evil, checkpoint={"k": evil})
    sources = s["sources"]
    assert isinstance(sources, dict)
    sources[evil] = sources.pop("feed")
    s["recent_runs"] = [
        {
            "source": evil,
            "agent": evil,
            "status": '"><b>',
            "duration_seconds": 1.0,
            "ended_at": NOW.isoformat(),
            "trace_id": "ab" * 16,
            "trace_url": 'http://j.test/trace/"><script>x</script>',
        }
    ]
    page = render_status_page(s)
    assert "<script" not in page.lower()
    assert "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'href="http://j.test/trace/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in page


def test_the_page_loads_nothing_from_elsewhere() -> None:
    s = status()
    s["recent_runs"] = [
        {
            "source": "feed",
            "agent": "a",
            "status": "failed",
            "duration_seconds": 2.5,
            "ended_at": NOW.isoformat(),
            "trace_id": "cd" * 16,
            "trace_url": "http://jaeger.test/trace/" + "cd" * 16,
        }
    ]
    page = render_status_page(s)
    # The only absolute URL is the trace link; no script, stylesheet, font or image is fetched.
    assert re.findall(r"https?://[^\"'<> ]+", page) == ["http://jaeger.test/trace/" + "cd" * 16]
    assert not re.search(r"<(script|link|img|iframe)\b|@import|url\(", page)


# -- the Exporter's status, redacted, rendered ---------------------------------


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"state: {{path: {tmp_path / 's.db'}}}\n"
        "status: {trace_url: 'http://tempo.test/{trace_id}/view'}\n"
        "sources:\n"
        f"  - {{name: feed, type: runtools, base_url: 'http://x.test', api_key: {KEY},"
        f" headers: {{Authorization: 'Bearer {HEADER_TOKEN}'}}}}\n"
    )
    config = load_config(path, env={})
    exp = Exporter(config, config.redactor())
    yield exp
    exp.shutdown()


def test_no_secret_reaches_the_status_or_the_page(exporter: Exporter) -> None:
    job = exporter.jobs[0]
    # Say a platform echoed the credentials into an error and an id.
    job.status.last_error = f"HTTP 400: bad key {KEY} / Bearer {HEADER_TOKEN}"
    job.status.polls = 1
    exporter.pipeline.recent.add([run(f"run-{KEY}", NOW)])
    got = exporter.status()
    text = json.dumps(got) + render_status_page(got)
    assert KEY not in text and HEADER_TOKEN not in text
    assert "bad key ***" in text


def test_recent_runs_link_their_traces_through_the_template(exporter: Exporter) -> None:
    finished = run("r1", NOW)
    exporter.pipeline.recent.add([finished])
    runs = exporter.status()["recent_runs"]
    assert isinstance(runs, list)
    trace_id = run_trace_id(finished)
    assert runs[0]["trace_id"] == trace_id
    assert runs[0]["trace_url"] == f"http://tempo.test/{trace_id}/view"
    assert f'href="http://tempo.test/{trace_id}/view"' in render_status_page(exporter.status())


# -- content negotiation -------------------------------------------------------

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("application/xhtml+xml", True),
        ("*/*", False),  # curl
        ("", False),
        ("application/json", False),
        ("application/json, text/html", False),  # a tie: the first named wins
        ("text/html, application/json", True),
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=0", False),
        ("text/html;q=bogus", False),
    ],
)
def test_prefers_html(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


@pytest.fixture
def server() -> Iterator[ExporterServer]:
    srv = ExporterServer("127.0.0.1", 0, CollectorRegistry(), lambda: status(), render_status_page)
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("path", "accept", "kind"),
    [
        ("/status", BROWSER, "text/html; charset=utf-8"),
        ("/", BROWSER, "text/html; charset=utf-8"),
        ("/status", "*/*", "application/json"),
        ("/status", "application/json", "application/json"),
        ("/status.json", BROWSER, "application/json"),
    ],
)
def test_status_by_content_negotiation(server: ExporterServer, path: str, accept: str, kind: str) -> None:
    got = httpx.get(f"http://127.0.0.1:{server.port}{path}", headers={"Accept": accept}, timeout=5)
    assert got.status_code == 200
    assert got.headers["content-type"] == kind
    if kind == "application/json":
        assert got.json() == json.loads(json.dumps(status()))
    else:
        assert got.text.startswith("<!DOCTYPE html>") and 'data-source="feed"' in got.text


# -- the in-memory views -------------------------------------------------------


def test_recent_runs_keep_the_latest_ends_newest_first_once_each() -> None:
    ring = RecentRuns(size=3)
    ring.add([run(f"r{i}", NOW + timedelta(minutes=i)) for i in (3, 1, 4, 2)])
    ring.add([run("r4", NOW + timedelta(minutes=4))])  # the same run again: kept once
    ring.add([run("old", NOW - timedelta(days=1))])  # older than every kept run: not kept
    ring.add([run("gave-up", None, status=RunStatus.INCOMPLETE)])  # no end: its start counts
    assert [r.run_id for r in ring.latest()] == ["r4", "r3", "r2"]
    latest = ring.latest()[0]
    assert latest.duration_seconds == 330.0 and latest.trace_id == run_trace_id(run("r4", None))


def test_the_request_window_forgets_what_is_older_than_it() -> None:
    now = [1000.0]
    window = RequestWindow(clock=lambda: now[0])
    window.add(10, 1)
    now[0] += REQUEST_WINDOW / 2
    window.add(5, 0)
    assert window.totals() == (15, 1)
    now[0] += REQUEST_WINDOW / 2 + REQUEST_BUCKET
    assert window.totals() == (5, 0)
    now[0] += REQUEST_WINDOW
    assert window.totals() == (0, 0)
