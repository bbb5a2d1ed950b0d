"""The benchmarks still work: `python -m benchmarks.run --smoke` runs every
benchmark at tiny sizes and produces every figure. Nothing here judges speed
or memory (benchmarks/README.md holds the measured figures and targets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from exporter.sources.registry import PLATFORMS

ROOT = Path(__file__).resolve().parents[2]


def test_benchmarks_run_in_smoke_mode_and_produce_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    results = json.loads(out.read_text())

    platforms = tuple(PLATFORMS)
    throughput = {t["platform"]: t for t in results["throughput"]}
    assert set(throughput) == set(platforms)
    for t in throughput.values():
        assert t["records"] > 0 and t["spans"] > 0 and t["misses"] == 0, t
        assert t["e_dropped"] == 0 and t["b_spans"] > 0, t
        for key in ("a_rate", "e_rate", "b_rate", "e_over_a", "e_over_b"):
            assert t[key] > 0, (key, t)

    dense = results["dense"]  # the dense runtools row, three sizes of one density
    sizes = dense["sizes"]
    assert len(sizes) == 3 and sizes[0]["runs"] < sizes[1]["runs"] < sizes[2]["runs"], sizes
    assert sizes[0]["events"] < sizes[1]["events"] < sizes[2]["events"], sizes
    for d in sizes:
        # Every history run read and counted by E as by the capture, every
        # event of the simulator's truth counted by the capture's exporter and
        # a span of B's, nothing dropped, no page missed.
        assert d["e_runs"] == d["emitted_runs"] == d["runs"] and d["spans"] > 0, d
        assert d["b_spans"] == d["events"] == d["exporter_events"] and d["e_dropped"] == 0 and d["misses"] == 0, d
        for key in ("a_rate", "e_rate", "b_rate", "e_over_b", "e_cpu_us", "b_cpu_us"):
            assert d[key] > 0, (key, d)
        assert d["e_peak_rss_mb"] >= d["e_rss_start_mb"] > 0 or d["e_peak_rss_mb"] == 0, d  # 0: no clear_refs
    assert dense["e_cpu_growth"] > 0 and dense["e_over_b_largest"] > 0, dense

    backfill, steady = results["memory"]["backfill"], results["memory"]["steady"]
    for key in ("idle_rss_mb", "peak_rss_mb", "rss_at_25_mb", "rss_at_50_mb", "rss_at_100_mb"):
        assert backfill[key] and backfill[key] > 0, (key, backfill)
    assert steady["runs_in_progress"] >= steady["open_runs_seeded"] and steady["peak_rss_mb"] > 0, steady

    freshness = results["freshness"]
    assert set(freshness["freshness"]) == set(platforms) == set(freshness["api_cost"])
    for platform, f in freshness["freshness"].items():
        assert f["runs"] > 0 and f["missing_spans"] == 0, (platform, f)
        assert f["span_median_s"] == f["span_median_s"] and f["metric_median_s"] == f["metric_median_s"], f  # not NaN
    assert freshness["freshness"]["runtools"]["baseline_median_s"] is not None
    for platform, cost in freshness["api_cost"].items():
        assert cost["idle_per_poll"] >= 1 and cost["busy_per_poll"] >= 1, (platform, cost)

    concurrency = results["concurrency"]  # issue #15: each figure beside its `concurrency: 1` twin
    assert set(concurrency["backfill"]) == set(platforms), concurrency["backfill"]
    for platform, pair in concurrency["backfill"].items():
        for variant in ("default", "sequential"):
            p = pair[variant]
            assert p["requests"] > 0 and p["seconds"] > 0 and p["effective"] > 0 and p["runs"] > 0, (platform, p)
        assert pair["default"]["runs"] == pair["sequential"]["runs"], (platform, pair)
    idle = list(concurrency["idle"].values())
    assert {i["platform"] for i in idle} == {"agent_activities", "runtype"} and len({i["agents"] for i in idle}) >= 2
    for i in idle:
        assert i["seconds"] > 0 and i["requests"] >= i["agents"] and i["sequential_sum_s"] > 0, i
    assert any(i["sequential_s"] for i in idle), idle
    for platform, variants in concurrency["freshness"]["platforms"].items():
        for variant, f in variants.items():
            assert f["runs"] > 0 and f["missing_spans"] == 0, (platform, variant, f)
            assert f["span_median_s"] == f["span_median_s"] and f["metric_median_s"] == f["metric_median_s"], f
    limited = concurrency["rate_limit"]
    for variant in ("default", "sequential"):
        p = limited[variant]
        assert p["requests"] > 0 and p["over_ideal"] > 0 and 0 <= p["share_429"] <= 1, (variant, p)
        assert p["runs"] == limited["truth_runs"] > 0, (variant, p, limited["truth_runs"])

    startup = results["startup"]
    for key in ("python_pass_s", "import_app_s", "help_s", "readyz_s"):
        assert startup[key] > 0, (key, startup)
    for bench in ("throughput", "dense", "concurrency", "start-up"):
        assert f"| {bench} |" in proc.stdout, bench


def test_the_profile_modes_still_run() -> None:
    """`benchmarks.profile --phases` and `--headroom` (the tools the tuning
    is steered by) on a tiny history: every stage and figure is reported."""
    for mode, expected in (
        ("--phases", ("HTTP GET + json.loads", "convert: spans (protobuf)", "us per event")),
        ("--headroom", ("garbage collector during the poll", "JSON run row", "pickle.loads of parsed events")),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.profile", "--platform", "runtools", "--history", "200", mode],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-5000:]
        for text in expected:
            assert text in proc.stdout, (mode, text, proc.stdout)
