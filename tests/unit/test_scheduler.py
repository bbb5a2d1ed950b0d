"""The poll -> convert -> commit -> publish chain, with a scripted source
over a real SQLite store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from exporter.config import Config, load_config
from exporter.export.prometheus import MetricsBook
from exporter.model import ActivityEvent, Batch, OpenRun, Run, RunStatus, Severity
from exporter.pipeline import Pipeline, Recorder
from exporter.scheduler import SourceJob, precreate_series
from exporter.sources.base import PollContext
from exporter.sources.concurrency import Gate
from exporter.sources.http import AuthError, RequestStats, RetryableError
from exporter.state.store import StateStore

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)


def config(tmp_path: Path) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"state: {{path: {tmp_path / 's.db'}}}\nruns: {{max_open_age: 1h}}\n"
        "sources: [{name: feed, type: runtools, base_url: 'http://x.test', api_key: k-1234, interval: 10s}]\n"
    )
    return load_config(path, env={})


def run(run_id: str, status: RunStatus = RunStatus.SUCCEEDED) -> Run:
    return Run(
        source="feed",
        platform="runtools",
        base_url="http://x.test",
        run_id=run_id,
        agent_id="a",
        agent_name="a",
        status=status,
        raw_status=status.value,
        started_at=NOW,
        ended_at=NOW + timedelta(seconds=3),
    )


class Scripted:
    """A source whose polls are scripted: each a list of batches or an exception."""

    name, platform, base_url = "feed", "runtools", "http://x.test"

    def __init__(self, *polls: list[Batch | Exception] | Exception) -> None:
        self.polls = list(polls)
        self.stats = RequestStats()
        self.gate = Gate(1)
        self.contexts: list[PollContext] = []

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        self.contexts.append(ctx)
        script = self.polls.pop(0)
        if isinstance(script, Exception):
            raise script
        for item in script:
            if isinstance(item, Exception):
                raise item
            yield item

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        return run(open_run.run_id, RunStatus.INCOMPLETE)

    def probe(self) -> str:
        return "ok"

    def close(self) -> None:
        pass


def make(tmp_path: Path, source: Scripted) -> tuple[SourceJob, Pipeline]:
    cfg = config(tmp_path)
    store = StateStore(cfg.state.path)
    book = MetricsBook(store.series(), max_agents=10, max_tools=10)
    pipeline = Pipeline(config=cfg, recorder=Recorder(store, book), drain=None, clock=lambda: NOW)
    precreate_series(pipeline, [source])
    return SourceJob(source, pipeline, interval=10.0), pipeline


def value(p: Pipeline, name: str, *labels: str) -> object:
    return p.book.value(name, labels)


def test_batches_are_committed_and_published(tmp_path: Path) -> None:
    event = ActivityEvent(id="e", name="x", time=NOW, category="agent", severity=Severity.INFO, status="started")
    job, p = make(
        tmp_path,
        Scripted(
            [
                Batch(
                    runs=[run("r1"), run("r2", RunStatus.FAILED)],
                    events=[event],
                    checkpoint={"watermark": "w1"},
                    caught_up_to=NOW - timedelta(seconds=4),
                )
            ]
        ),
    )
    assert job.poll() is True
    assert value(p, "agent_runs_total", "feed", "runtools", "a", "failed") == 1.0
    assert value(p, "agent_activity_events_total", "feed", "runtools", "agent", "info", "started") == 1.0
    assert value(p, "agent_exporter_polls_total", "feed", "success") == 1.0
    assert value(p, "agent_exporter_source_up", "feed") == 1.0
    assert value(p, "agent_exporter_data_lag_seconds", "feed") == 4.0
    assert p.store.checkpoint("feed") == {"watermark": "w1"}


def test_a_failure_mid_poll_keeps_what_was_committed(tmp_path: Path) -> None:
    job, p = make(
        tmp_path,
        Scripted([Batch(runs=[run("r1")], checkpoint={"watermark": "w1"}), RetryableError("feed", "HTTP 503")]),
    )
    assert job.poll() is False
    assert p.store.checkpoint("feed") == {"watermark": "w1"}
    assert value(p, "agent_runs_total", "feed", "runtools", "a", "succeeded") == 1.0
    assert value(p, "agent_exporter_polls_total", "feed", "error") == 1.0
    assert value(p, "agent_exporter_source_up", "feed") == 0.0


def test_revoked_key_is_logged_once_and_retried_ever_more_slowly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [AuthError("feed", "GET /v1/activity: HTTP 401") for _ in range(4)]
    job, p = make(tmp_path, Scripted(*failures, []))
    caplog.set_level(logging.INFO, logger="exporter.scheduler")
    holds = []
    for _ in range(4):
        job._hold_until = 0.0  # as if the hold had passed
        assert job() is False
        holds.append(job.status.held_until)
    assert [r.message for r in caplog.records].count("source is down: GET /v1/activity: HTTP 401") == 1
    # interval 10 s: held 0, 10, 30, 70 s beyond the next tick (20, 40, 80 s apart), never more than 5 min.
    assert holds[0] is None and all(h is not None for h in holds[1:])
    assert holds[1] < holds[2] < holds[3]  # type: ignore[operator]
    assert not job.due()
    job._hold_until = 0.0
    assert job() is True
    assert job.status.held_until is None and job.due()
    assert value(p, "agent_exporter_polls_total", "feed", "auth_error") == 4.0
    assert any(r.message == "source is up again" for r in caplog.records)


def test_long_retry_after_holds_the_next_poll(tmp_path: Path) -> None:
    job, _ = make(tmp_path, Scripted(RetryableError("feed", "HTTP 429", retry_after=120.0)))
    job.poll()
    assert not job.due() and job.status.held_until is not None


def test_a_bug_in_a_source_is_logged_and_counted_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    job, p = make(tmp_path, Scripted(ZeroDivisionError("oops")))
    assert job.poll() is False
    assert value(p, "agent_exporter_polls_total", "feed", "error") == 1.0
    assert any(r.exc_info for r in caplog.records)


def test_runs_open_too_long_are_emitted_once_as_incomplete(tmp_path: Path) -> None:
    stale = OpenRun(run_id="old", agent="a", opened_at=(NOW - timedelta(hours=2)).timestamp(), data={})
    fresh = OpenRun(run_id="new", agent="a", opened_at=(NOW - timedelta(minutes=5)).timestamp(), data={})
    job, p = make(tmp_path, Scripted([Batch(open_upserts={"old": stale, "new": fresh})], []))
    job.poll()
    assert value(p, "agent_runs_total", "feed", "runtools", "a", "incomplete") == 1.0
    assert [o.run_id for o in p.store.open_runs("feed")] == ["new"]
    assert p.store.is_seen("feed", "run:old")
    assert value(p, "agent_runs_in_progress", "feed", "runtools", "a") == 1.0
    job.poll()
    assert value(p, "agent_runs_total", "feed", "runtools", "a", "incomplete") == 1.0


def test_stop_ends_a_poll_between_batches(tmp_path: Path) -> None:
    job, p = make(tmp_path, Scripted([Batch(checkpoint={"watermark": "w1"}), Batch(checkpoint={"watermark": "w2"})]))
    p.stop.set()
    job.poll()
    assert p.store.checkpoint("feed") == {"watermark": "w1"}


def test_per_source_series_exist_from_the_start(tmp_path: Path) -> None:
    _, p = make(tmp_path, Scripted())
    for outcome in ("success", "error", "auth_error", "bad_response"):
        assert value(p, "agent_exporter_polls_total", "feed", outcome) == 0.0
    assert value(p, "agent_exporter_source_up", "feed") == 0.0


def test_data_lag_keeps_growing_while_the_source_fails(tmp_path: Path) -> None:
    job, p = make(tmp_path, Scripted([Batch(caught_up_to=NOW)], AuthError("feed", "HTTP 401")))
    job.poll()
    assert value(p, "agent_exporter_data_lag_seconds", "feed") == 0.0
    p.clock = lambda: NOW + timedelta(minutes=20)
    job.poll()  # fails: nothing read, yet the lag must show that data stopped arriving
    assert value(p, "agent_exporter_data_lag_seconds", "feed") == 1200.0


def test_backfill_gauge_shows_the_history_left_and_falls_to_zero_when_caught_up(tmp_path: Path) -> None:
    day = timedelta(days=1)
    job, p = make(
        tmp_path,
        Scripted(
            # A backfill that fails part-way: 2 of 30 days are left, and stay shown.
            [Batch(caught_up_to=NOW - 30 * day), Batch(read_to=NOW - 2 * day), RetryableError("feed", "HTTP 503")],
            [Batch(caught_up_to=NOW - day), Batch(caught_up_to=NOW)],  # read to the end
        ),
    )
    assert value(p, "agent_exporter_backfill_remaining_seconds", "feed") == 0.0  # precreated
    job.poll()
    assert value(p, "agent_exporter_backfill_remaining_seconds", "feed") == 2 * 86400.0
    view = p.backfill.view("feed")
    assert view is not None and view.fraction == pytest.approx(28 / 30)
    assert job.poll() is True
    assert value(p, "agent_exporter_backfill_remaining_seconds", "feed") == 0.0
    assert p.backfill.view("feed") is None


def test_requests_are_counted_over_the_last_minutes(tmp_path: Path) -> None:
    source = Scripted([Batch()])
    job, _ = make(tmp_path, source)
    for code in ("200", "200", "429"):
        source.stats.count(code)
    job.poll()
    assert job.status.requests.totals() == (3, 1)
