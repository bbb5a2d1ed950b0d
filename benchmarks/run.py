"""Run the benchmarks and print one table of every figure with its target.

    python -m benchmarks.run                 # full: about 10 minutes on 2 cores
    python -m benchmarks.run --smoke         # seconds: checks that every benchmark still works (CI)
    python -m benchmarks.run --only throughput,startup --platforms runtools
    python -m benchmarks.run --only dense    # the dense runtools row at three sizes (issue #12)
    python -m benchmarks.run --json results.json --markdown results.md

Every figure comes with the baseline it is measured against, taken in the same
run; the machine is noisy, so the ratio is the figure and the absolute number
stands beside it. Smoke mode uses tiny sizes: its numbers mean nothing, only
that every benchmark ran and produced its figures. Exit status 0 when every
benchmark ran (targets missed do not fail the run: benchmarks are not tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from benchmarks.common import PLATFORMS, machine

BENCHMARKS = ("throughput", "dense", "memory", "freshness", "concurrency", "startup")


def _run(name: str, smoke: bool, platforms: tuple[str, ...]) -> object:
    if name == "throughput":
        from benchmarks import throughput

        return throughput.main(smoke, platforms)
    if name == "dense":
        from benchmarks import throughput

        return throughput.dense(smoke)
    if name == "memory":
        from benchmarks import memory

        return memory.main(smoke)
    if name == "freshness":
        from benchmarks import freshness

        return freshness.main(smoke)
    if name == "concurrency":
        from benchmarks import concurrency

        return concurrency.main(smoke)
    from benchmarks import startup

    return startup.main(smoke)


def _f(value: object, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ok(met: bool) -> str:
    return "met" if met else "**missed**"


def table(results: dict[str, object]) -> str:
    """Markdown: one row per figure, with baseline, ratio, target, verdict."""
    rows = ["| benchmark | figure | exporter | baseline | ratio | target | verdict |", "|---|---|---|---|---|---|---|"]

    def row(bench: str, figure: str, value: str, base: str, ratio: str, target: str, verdict: str) -> None:
        rows.append(f"| {bench} | {figure} | {value} | {base} | {ratio} | {target} | {verdict} |")

    for t in cast(list[dict[str, Any]], results.get("throughput", []) or []):
        p, unit = t["platform"], t["record_kind"]
        rate = f"{_f(t['e_rate'], 0)} {unit}/s"
        row(
            "throughput",
            f"{p}: {_f(t['records'], 0)} {unit}, vs A (fetch + json.loads)",
            rate,
            f"{_f(t['a_rate'], 0)}/s",
            f"{_f(t['e_over_a'])}x",
            ">= 0.5x",
            _ok(t["e_over_a"] >= 0.5),
        )
        row(
            "throughput",
            f"{p}: vs B (OTel SDK, span per record, commit per page)",
            rate,
            f"{_f(t['b_rate'], 0)}/s",
            f"{_f(t['e_over_b'])}x",
            ">= 3x",
            _ok(t["e_over_b"] >= 3),
        )
        if p == "runtools":
            row("throughput", "runtools events/s (absolute)", rate, "", "", ">= 20,000/s", _ok(t["e_rate"] >= 20_000))
    dense = results.get("dense")
    if isinstance(dense, dict):
        sizes = cast(list[dict[str, Any]], dense["sizes"])
        for d in sizes:
            row(
                "dense",
                f"runtools, {_f(d['events'], 0)} events ({_f(d['emitted_runs'], 0)} runs,"
                f" ~{_f(d['open_median'], 0)} open): vs B",
                f"{_f(d['e_rate'], 0)} events/s",
                f"{_f(d['b_rate'], 0)}/s",
                f"{_f(d['e_over_b'])}x",
                "",
                "",
            )
            row(
                "dense",
                f"runtools, {_f(d['events'], 0)} events: CPU per event, E / B",
                f"{_f(d['e_cpu_us'], 1)} us",
                f"{_f(d['b_cpu_us'], 1)} us",
                "",
                "",
                "",
            )
        last = sizes[-1]
        row(
            "dense",
            f"E CPU per event, {_f(last['events'], 0)} / {_f(sizes[0]['events'], 0)} events",
            f"{_f(last['e_cpu_us'], 1)} / {_f(sizes[0]['e_cpu_us'], 1)} us",
            "",
            f"{_f(dense['e_cpu_growth'])}x",
            "<= 1.25x",
            _ok(dense["e_cpu_growth"] <= 1.25),
        )
        row(
            "dense",
            f"runtools, {_f(last['events'], 0)} events: vs B",
            f"{_f(last['e_rate'], 0)} events/s",
            f"{_f(last['b_rate'], 0)}/s",
            f"{_f(dense['e_over_b_largest'])}x",
            ">= 1.25x",
            _ok(dense["e_over_b_largest"] >= 1.25),
        )
        row(
            "dense",
            "peak RSS of the harness process during E",
            f"{_f(dense['e_peak_rss_mb'], 1)} MB",
            f"start {_f(last['e_rss_start_mb'], 1)} MB",
            "",
            "< 150 MB",
            _ok(0 < dense["e_peak_rss_mb"] < 150),
        )
    mem = results.get("memory")
    if isinstance(mem, dict):
        b, s = mem["backfill"], mem["steady"]
        row(
            "memory",
            f"backfill peak RSS ({_f(b['runs'], 0)} runs, {_f(b['records'], 0)} records)",
            f"{_f(b['peak_rss_mb'], 1)} MB",
            f"idle {_f(b['idle_rss_mb'], 1)} MB",
            f"{_f(b['peak_rss_mb'] / b['idle_rss_mb'])}x",
            "<= 150 MB",
            _ok(b["peak_rss_mb"] <= 150),
        )
        flat = (
            b["rss_at_100_mb"] is not None
            and b["rss_at_25_mb"] is not None
            and b["rss_at_100_mb"] - b["rss_at_25_mb"] <= 0.15 * b["rss_at_25_mb"]
        )
        row(
            "memory",
            "backfill RSS at 25 / 50 / 100 %",
            f"{_f(b['rss_at_25_mb'], 1)} / {_f(b['rss_at_50_mb'], 1)} / {_f(b['rss_at_100_mb'], 1)} MB",
            "",
            "",
            "not growing with history",
            _ok(flat),
        )
        row(
            "memory",
            f"steady state, {_f(s['runs_in_progress'], 0)} runs open: peak RSS",
            f"{_f(s['peak_rss_mb'], 1)} MB",
            f"idle {_f(b['idle_rss_mb'], 1)} MB",
            f"{_f(s['peak_rss_mb'] / b['idle_rss_mb'])}x",
            "<= 150 MB",
            _ok(s["peak_rss_mb"] <= 150),
        )
        row(
            "memory",
            "steady state RSS, first third / last third",
            f"{_f(s['rss_first_third_mb'], 1)} / {_f(s['rss_last_third_mb'], 1)} MB",
            "",
            "",
            "not growing",
            _ok(s["rss_last_third_mb"] - s["rss_first_third_mb"] <= 0.1 * s["rss_first_third_mb"]),
        )
    fr = results.get("freshness")
    if isinstance(fr, dict):
        interval = fr["interval_s"]
        for p, f in fr["freshness"].items():
            base = f"{_f(f['baseline_median_s'])} s" if f["baseline_median_s"] is not None else f"U(0, {interval:g}) s"
            for what in ("span", "metric"):
                med, p99 = f[f"{what}_median_s"], f[f"{what}_p99_s"]
                met = med <= interval + 1 and p99 <= 2 * interval and f["missing_spans"] == 0
                row(
                    "freshness",
                    f"{p}: end -> {'root span at receiver' if what == 'span' else 'count on /metrics'}"
                    f" ({f['runs']} runs), median / p99",
                    f"{_f(med)} / {_f(p99)} s",
                    base if what == "span" else "",
                    "",
                    f"<= {interval + 1:g} / {2 * interval:g} s",
                    _ok(met),
                )
        for p, c in fr["api_cost"].items():
            row(
                "API cost",
                f"{p}: requests per poll, busy / idle",
                f"{_f(c['busy_per_poll'])} / {_f(c['idle_per_poll'])}",
                f"floor {c['floor_per_poll']}",
                f"{_f(c['idle_per_poll'] / c['floor_per_poll'])}x idle",
                "idle = floor",
                _ok(abs(c["idle_per_poll"] - c["floor_per_poll"]) < 1e-9),
            )
    co = results.get("concurrency")
    if isinstance(co, dict):
        _concurrency_rows(co, row)
    st = results.get("startup")
    if isinstance(st, dict):
        row(
            "start-up",
            "`--help` wall time",
            f"{_f(st['help_s'], 3)} s",
            f"python -c pass {_f(st['python_pass_s'], 3)} s",
            f"{_f(st['help_s'] / st['python_pass_s'])}x",
            "<= 0.5 s",
            _ok(st["help_s"] <= 0.5),
        )
        row(
            "start-up",
            "spawn -> /readyz 200, demo config",
            f"{_f(st['readyz_s'], 3)} s",
            f"import exporter.app {_f(st['import_app_s'], 3)} s",
            f"{_f(st['readyz_s'] / st['import_app_s'])}x",
            "<= 2 s",
            _ok(st["readyz_s"] <= 2),
        )
    return "\n".join(rows)


def _concurrency_rows(co: dict[str, Any], row: Callable[..., None]) -> None:
    """Issue #15: every figure beside the same with `concurrency: 1`."""
    ms = f"{co['latency_s'] * 1000:g} ms"
    for p, b in co.get("backfill", {}).items():
        d, s = b["default"], b["sequential"]
        row(
            "concurrency",
            f"{p}: backfill ({_f(d['runs'], 0)} runs, {_f(d['requests'], 0)} requests, {ms}),"
            f" effective concurrency (requests x latency / wall)",
            f"{_f(d['effective'])} ({_f(d['seconds'], 1)} s)",
            f"{_f(s['effective'])} ({_f(s['seconds'], 1)} s)",
            f"{_f(s['seconds'] / d['seconds'])}x faster",
            ">= 4",
            _ok(d["effective"] >= 4),
        )
    for i in co.get("idle", {}).values():
        ratio = i["seconds"] / i["sequential_sum_s"]
        seq = f"{_f(i['sequential_s'], 2)} s" if i["sequential_s"] is not None else "not run"
        row(
            "concurrency",
            f"{i['platform']}: idle poll, {_f(i['agents'], 0)} agents ({_f(i['requests'], 0)} requests)",
            f"{_f(i['seconds'], 2)} s",
            f"{seq}; sum {_f(i['sequential_sum_s'], 1)} s",
            f"{_f(ratio)}x sum",
            "<= 0.3x sum, <= 2.5 s" if i["agents"] == 300 else "",
            _ok(ratio <= 0.3 and i["seconds"] <= 2.5) if i["agents"] == 300 else "",
        )
    fr = co.get("freshness", {"interval_s": 0, "platforms": {}})
    interval = fr["interval_s"]
    for p, f in fr["platforms"].items():
        d, s = f["default"], f["sequential"]
        for what in ("span", "metric"):
            row(
                "concurrency",
                f"{p}: freshness, {fr['agents']} agents, {interval:g} s interval, end ->"
                f" {'root span' if what == 'span' else 'count on /metrics'} ({d['runs']} runs), median / p99",
                f"{_f(d[f'{what}_median_s'])} / {_f(d[f'{what}_p99_s'])} s",
                f"{_f(s[f'{what}_median_s'])} / {_f(s[f'{what}_p99_s'])} s",
                "",
                f"median <= {interval + 1:g} s",
                _ok(d[f"{what}_median_s"] <= interval + 1 and d["missing_spans"] == 0),
            )
    if "rate_limit" not in co:
        return
    rl = co["rate_limit"]
    d, s = rl["default"], rl["sequential"]
    limit = rl["rate_limit"]
    row(
        "concurrency",
        f"runtype: backfill against {limit} req/s ({_f(d['requests'], 0)} requests),"
        f" wall / (requests answered / {limit})",
        f"{_f(d['seconds'], 1)} s",
        f"{_f(s['seconds'], 1)} s",
        f"{_f(d['over_ideal'])}x (seq {_f(s['over_ideal'])}x)",
        "<= 1.6x",
        _ok(d["over_ideal"] <= 1.6),
    )
    row(
        "concurrency",
        f"runtype: requests answered 429 under {limit} req/s",
        f"{_f(100 * d['share_429'], 1)} % ({_f(d['rate_limited'], 0)})",
        f"{_f(100 * s['share_429'], 1)} % ({_f(s['rate_limited'], 0)})",
        "",
        "<= 15 %",
        _ok(d["share_429"] <= 0.15),
    )
    row(
        "concurrency",
        "runtype: runs counted under the rate limit / truth",
        f"{_f(d['runs'], 0)} / {_f(rl['truth_runs'], 0)}",
        f"{_f(s['runs'], 0)}",
        "",
        "= truth",
        _ok(d["runs"] == s["runs"] == rl["truth_runs"]),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that every benchmark works")
    p.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    p.add_argument("--platforms", default=",".join(PLATFORMS), help="throughput: which platforms")
    p.add_argument("--json", dest="json_out", default=None, help="write every figure as JSON here")
    p.add_argument("--markdown", default=None, help="write the table here")
    args = p.parse_args(argv)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    platforms = tuple(x.strip() for x in args.platforms.split(",") if x.strip())
    results: dict[str, object] = {
        "machine": machine(),
        "mode": "smoke" if args.smoke else "full",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    failed = []
    for name in chosen:
        t0 = time.monotonic()
        log(f"{name}: running ({'smoke' if args.smoke else 'full'})")
        try:
            results[name] = _run(name, args.smoke, platforms)
        except Exception:  # a benchmark that breaks is reported, and the others still run
            failed.append(name)
            results[name] = {"error": traceback.format_exc()}
            log(f"{name}: FAILED\n{traceback.format_exc()}")
        log(f"{name}: {time.monotonic() - t0:.1f} s")
    text = table({k: v for k, v in results.items() if k not in failed})
    m = results["machine"]
    assert isinstance(m, dict)
    header = (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB, Python {m['python']}, {m['os']};"
        f" mode: {results['mode']}"
    )
    sys.stdout.write(header + "\n\n" + text + "\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str))
    if args.markdown:
        Path(args.markdown).write_text(header + "\n\n" + text + "\n")
    if failed:
        sys.stderr.write(f"benchmarks that failed: {', '.join(failed)}\n")
        return 1
    return 0


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
