"""The simulator in its own process, so its CPU and memory are not the
exporter's. Prints its base URL as the first line of stdout, then serves
until stdin closes or SIGTERM.

    python -m benchmarks.simserver --seed 1 --history 24000 --history-platforms runtools \
        --history-span 3600 --rpm 0 --run-seconds 2,8 --epoch 2026-01-01T00:00:00+00:00 \
        --latency 50ms --rate-limit 25
"""

from __future__ import annotations

import argparse
import signal
import socketserver
import sys
import threading
from datetime import datetime

from simulator import PLATFORMS, Simulator, SimulatorOptions, parse_latency


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--history", type=int, default=0)
    p.add_argument("--history-platforms", default=",".join(PLATFORMS))
    p.add_argument("--history-span", type=float, default=3600.0)
    p.add_argument("--rpm", type=float, default=0.0)
    p.add_argument("--run-seconds", default="2,8")
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--epoch", default=None)
    p.add_argument("--latency", default="0", help="per platform request: 50ms, or a range 50ms-300ms (0: none)")
    p.add_argument("--rate-limit", type=int, default=0, help="answer 429 beyond N requests per second (0: none)")
    p.add_argument(
        "--nagle",
        action="store_true",
        help="leave Nagle's algorithm on, as the simulator ships (a 40 ms stall per small response)",
    )
    args = p.parse_args()
    if not args.nagle:
        # The simulator writes a response's head and body in two writes; with
        # Nagle on, a small body waits for the client's delayed ACK (40 ms on
        # Linux). That is the fixture's cost, not the exporter's: turn it off.
        socketserver.StreamRequestHandler.disable_nagle_algorithm = True
    low, high = (float(x) for x in args.run_seconds.split(","))
    options = SimulatorOptions(
        seed=args.seed,
        runs_per_minute=args.rpm,
        run_seconds=(low, high),
        history_runs=args.history,
        history_span_seconds=args.history_span,
        history_platforms=tuple(args.history_platforms.split(",")),
        agents_per_platform=args.agents,
        epoch=datetime.fromisoformat(args.epoch) if args.epoch else None,
        latency_seconds=parse_latency(args.latency),
        rate_limit=args.rate_limit,
    )
    sim = Simulator(options)
    base = sim.start("127.0.0.1", 0)
    sys.stdout.write(base + "\n")
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def on_eof() -> None:  # read() returns at EOF: the parent closed our stdin
        sys.stdin.read()
        done.set()

    threading.Thread(target=on_eof, daemon=True).start()
    done.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
