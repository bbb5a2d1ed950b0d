"""Metric totals: staging, publishing, persistence form, caps, exposition."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.convert.metrics import METRICS, Op, Update, run_updates
from exporter.export.prometheus import ActivityCollector, MetricsBook
from exporter.model import Run, RunStatus, ToolCall, ToolStatus

T0 = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)


def run(agent: str = "triage", status: RunStatus = RunStatus.FAILED) -> Run:
    return Run(
        source="feed",
        platform="runtools",
        base_url="http://x",
        run_id="r1",
        agent_id=agent,
        agent_name=agent,
        status=status,
        raw_status=status.value,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=7),
        input_tokens=10,
        output_tokens=5,
        tool_calls=(
            ToolCall(id="t", name="q", started_at=T0, ended_at=T0 + timedelta(seconds=1), status=ToolStatus.SUCCEEDED),
        ),
    )


def render(book: MetricsBook, openmetrics: bool = False) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ActivityCollector(book))
    return (generate_openmetrics if openmetrics else generate_latest)(registry).decode()


def test_staged_values_are_invisible_until_published() -> None:
    book = MetricsBook({}, max_agents=10, max_tools=10)
    staged = book.stage(run_updates(run(), "ab" * 16))
    assert book.value("agent_runs_total", ("feed", "runtools", "triage", "failed")) is None
    book.publish(staged)
    assert book.value("agent_runs_total", ("feed", "runtools", "triage", "failed")) == 1.0


def test_totals_continue_from_persisted_values() -> None:
    first = MetricsBook({}, max_agents=10, max_tools=10)
    staged = first.stage(run_updates(run(), "ab" * 16))
    persisted = first.persisted_form(staged)
    second = MetricsBook(persisted, max_agents=10, max_tools=10)  # a restart
    second.publish(second.stage(run_updates(run(), "cd" * 16)))
    text = render(second)
    assert 'agent_runs_total{agent="triage",platform="runtools",source="feed",status="failed"} 2.0' in text
    assert (
        'agent_run_duration_seconds_count{agent="triage",platform="runtools",source="feed",status="failed"} 2.0' in text
    )
    assert 'agent_tokens_total{agent="triage",platform="runtools",source="feed",type="total"} 30.0' in text


def test_agents_past_the_cap_become_other_and_the_cap_survives_restart() -> None:
    book = MetricsBook({}, max_agents=2, max_tools=10)
    staged = {}
    for agent in ("a", "b", "c", "d"):
        staged.update(book.stage([Update(Op.INC, "agent_runs_total", ("feed", "runtools", agent, "failed"), 1)]))
    agents = sorted(labels[2] for (_, labels) in staged)
    assert agents == ["a", "b", "other"]
    restarted = MetricsBook(book.persisted_form(staged), max_agents=2, max_tools=10)
    again = restarted.stage([Update(Op.INC, "agent_runs_total", ("feed", "runtools", "e", "failed"), 1)])
    assert [labels[2] for (_, labels) in again] == ["other"]
    other_source = restarted.stage([Update(Op.INC, "agent_runs_total", ("feed2", "runtools", "e", "failed"), 1)])
    assert [labels[2] for (_, labels) in other_source] == ["e"]  # the cap is per source


def test_exemplars_only_in_openmetrics() -> None:
    book = MetricsBook({}, max_agents=10, max_tools=10)
    book.publish(book.stage(run_updates(run(), "0123456789abcdef0123456789abcdef")))
    assert 'trace_id="0123456789abcdef0123456789abcdef"' in render(book, openmetrics=True)
    assert "trace_id=" not in render(book)


def test_every_declared_metric_is_exposed_with_help() -> None:
    text = render(MetricsBook({}, max_agents=10, max_tools=10))
    for spec in METRICS:
        assert f"# HELP {spec.name} " in text or f"# HELP {spec.name.removesuffix('_total')}_total " in text


def test_live_gauges_replace_per_source() -> None:
    book = MetricsBook({}, max_agents=10, max_tools=10)
    book.replace_live("agent_runs_in_progress", ("feed", "runtools"), {("feed", "runtools", "a"): 2.0})
    book.replace_live("agent_runs_in_progress", ("other", "bctrl"), {("other", "bctrl", "c"): 3.0})
    book.replace_live("agent_runs_in_progress", ("feed", "runtools"), {("feed", "runtools", "b"): 1.0})
    # An agent with no run in progress any more shows 0, not a vanished series.
    assert book.value("agent_runs_in_progress", ("feed", "runtools", "a")) == 0.0
    assert book.value("agent_runs_in_progress", ("other", "bctrl", "c")) == 3.0
    assert book.value("agent_runs_in_progress", ("feed", "runtools", "b")) == 1.0


def test_a_replica_shows_a_source_from_its_stored_totals_and_drops_it_with_its_lease() -> None:
    stored = {
        ("agent_runs_total", ("feed", "runtools", "triage", "failed")): 5.0,
        ("agent_runs_total", ("other", "runtools", "triage", "failed")): 7.0,
        ("agent_exporter_spans_exported_total", ("success",)): 99.0,
    }
    book = MetricsBook({}, max_agents=1, max_tools=10, shared=True)
    book.adopt("feed", stored)  # took feed's lease: feed's series only, at their totals
    assert book.value("agent_runs_total", ("feed", "runtools", "triage", "failed")) == 5.0
    assert book.value("agent_runs_total", ("other", "runtools", "triage", "failed")) is None
    assert book.value("agent_exporter_spans_exported_total", ("success",)) is None  # another process's count
    staged = book.stage(run_updates(run(), "ab" * 16))
    assert staged[("agent_runs_total", ("feed", "runtools", "triage", "failed"))] == 6.0  # continues
    capped = book.stage([Update(Op.INC, "agent_runs_total", ("feed", "runtools", "newcomer", "failed"), 1)])
    assert [labels[2] for (_, labels) in capped] == ["other"]  # the cap rebuilt from the adopted series
    book.publish(staged)
    book.set_live("agent_exporter_source_up", ("feed",), 1.0)
    book.forget("feed")  # the lease went elsewhere: nothing of feed is shown
    assert "feed" not in render(book)
    assert book.stage([Update(Op.INC, "agent_runs_total", ("feed", "runtools", "newcomer", "failed"), 1)]) == {
        ("agent_runs_total", ("feed", "runtools", "newcomer", "failed")): 1.0
    }  # caps forgotten too: the next holder rebuilds them from the stored series


def test_a_shared_book_stores_only_series_with_a_source() -> None:
    updates = [
        Update(Op.INC, "agent_exporter_spans_exported_total", ("success",), 3),
        Update(Op.INC, "agent_exporter_polls_total", ("feed", "success"), 1),
    ]
    shared = MetricsBook({}, max_agents=10, max_tools=10, shared=True)
    assert shared.persisted_form(shared.stage(updates)) == {("agent_exporter_polls_total", ("feed", "success")): 1.0}
    alone = MetricsBook({}, max_agents=10, max_tools=10)
    assert len(alone.persisted_form(alone.stage(updates))) == 2  # one process on a state file stores both
