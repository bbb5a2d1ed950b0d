"""Profile of the throughput benchmark's exporter run (E), for one platform.

    python -m benchmarks.profile --platform runtools --history 24000 [--top 30] [--out prof.txt]
    python -m benchmarks.profile --platform runtools --py-spy /path/to/py-spy   # sampling, all threads
    python -m benchmarks.profile --platform runtools --history 8000 --phases     # polling-thread CPU by stage
    python -m benchmarks.profile --platform runtools --history 8000 --headroom   # what a second process could save

cProfile (default) traces the polling thread only: the outbox drain thread
runs alongside unprofiled, so the drain's own cost (protobuf encoding, HTTP
posts) shows up under py-spy, which samples every thread (`--py-spy`: the
run is repeated in a child process under `py-spy record --format raw`, and
the collapsed stacks are summarised by own time per function and by
inclusive time per exporter module). `--phases` (benchmarks/phases.py) adds
up the polling thread's CPU time per pipeline stage: the steadiest of the
three on a noisy machine, and the one the tuning was steered by.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks import headroom, phases, throughput
from benchmarks.capture import Capture
from benchmarks.common import PY, ROOT, Child


def _run_once(pages: Path, work: Path, profiler: cProfile.Profile | None, timings: list[float] | None = None) -> float:
    """The exporter's run (E) of the captured pages; `timings` gets baseline
    A's seconds first, when given."""
    cap = Capture.load(pages)
    with (
        Child(["-m", "benchmarks.pageserver", str(pages)], "page server") as server,
        Child(["-m", "benchmarks.receiver"], "OTLP receiver") as receiver,
    ):
        otlp, count_url = receiver.url.split()
        if timings is not None:
            timings.append(throughput.baseline_a(cap, server.url))
        if profiler:
            profiler.enable()
        seconds, _, _, _ = throughput.run_exporter(cap, server.url, otlp, count_url, work)
        if profiler:
            profiler.disable()
    return seconds


WORK_FRAMES = ("SourceJob.poll", "OutboxDrain", "Exporter.__init__")


def summarise_raw(raw: Path, top: int) -> str:
    """py-spy --format raw: 'frame;frame;... count' lines -> own and inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        if not any(mark in stack for mark in WORK_FRAMES):
            continue  # set-up (imports, loading pages), helper threads: not the exporter's work
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    out = [f"py-spy samples in the exporter's threads (poll, outbox drain): {total}", "", "own time (self):"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top * 2)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--platform", default="runtools")
    p.add_argument("--history", type=int, default=24_000)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--out", default=None)
    p.add_argument("--py-spy", dest="pyspy", default=None, help="path to py-spy: sample all threads instead")
    p.add_argument("--phases", action="store_true", help="polling-thread CPU time per pipeline stage instead")
    p.add_argument("--headroom", action="store_true", help="what a second process could save (headroom.py)")
    p.add_argument("--pages", default=None, help="(internal) captured pages to reuse")
    p.add_argument("--plain", action="store_true", help="(internal) run once, unprofiled")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        pages = Path(args.pages) if args.pages else throughput.prepare(args.platform, args.history, work)
        if args.plain:
            print(f"exporter run: {_run_once(pages, work, None):.2f} s")
            return 0
        if args.phases or args.headroom:
            cap = Capture.load(pages)
            if args.phases:
                with phases.measured() as acc:
                    seconds = _run_once(pages, work, None)
                records, kind = (cap.events, "events") if cap.platform == "runtools" else (cap.runs, "runs")
                text = f"exporter run: {seconds:.2f} s\n" + phases.report(acc, records, kind) + "\n"
            else:
                timings: list[float] = []
                with headroom.observed() as seen:
                    seconds = _run_once(pages, work, None, timings)
                text = headroom.report(seen, seconds, timings[0], cap) + "\n"
            if args.out:
                Path(args.out).write_text(text)
            sys.stdout.write(text)
            return 0
        if args.pyspy:
            raw = work / "profile.raw"
            subprocess.run(
                [
                    args.pyspy,
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "-o",
                    str(raw),
                    "--",
                    PY,
                    "-m",
                    "benchmarks.profile",
                    "--pages",
                    str(pages),
                    "--plain",
                ],
                cwd=ROOT,
                check=True,
            )
            text = summarise_raw(raw, args.top)
        else:
            profiler = cProfile.Profile()
            seconds = _run_once(pages, work, profiler)
            buf = io.StringIO()
            stats = pstats.Stats(profiler, stream=buf)
            buf.write(f"exporter run under cProfile: {seconds:.2f} s\n")
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
            text = buf.getvalue()
        if args.out:
            Path(args.out).write_text(text)
        sys.stdout.write(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
