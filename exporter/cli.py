"""Command line: run | once | check-config | simulate | demo."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from exporter import __version__

log = logging.getLogger("exporter")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-activity-exporter",
        description="Poll AI-agent platforms' activity APIs; export runs as OTLP traces and Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", default=os.environ.get("LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"]
    )
    common.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: object, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        if config:
            p.add_argument("-c", "--config", required=True, help="YAML configuration file")
        p.set_defaults(func=func)
        return p

    command("run", "Run the exporter: poll every source on schedule, serve /metrics, export traces.", _run)
    command("once", "Poll every source once, deliver all spans, exit 0 if every source succeeded, else 1.", _once)
    check = command("check-config", "Validate the configuration and print it resolved, secrets redacted.", _check)
    check.add_argument("--connect", action="store_true", help="also make one authenticated request per source")
    sim = command("simulate", "Serve the four fake platforms (for trying the exporter out).", _simulate, config=False)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8080)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--faults",
        default="",
        help="fault probabilities: 429, 500, html, truncate, slow, dup, oddtime, backwards, junk; "
        "e.g. 429=0.1,500=0.05,html=0.01,truncate=0.01,slow=0.05,dup=0.05,oddtime=0.1,backwards=0.05,junk=0.05",
    )
    sim.add_argument("--history", type=int, default=0, help="finished runs per platform before start")
    sim.add_argument(
        "--latency",
        default="",
        help="delay before every platform request is answered: fixed (50ms, 0.2s) or a range drawn "
        "uniformly from a seeded RNG (50ms-300ms); default none",
    )
    sim.add_argument(
        "--rate-limit",
        type=int,
        default=0,
        metavar="N",
        help="answer 429 with Retry-After beyond N requests per second per platform and key; default 0 (no limit)",
    )
    demo = command("demo", "Start the simulator and the exporter together (config/demo.yaml).", _demo, config=False)
    demo.add_argument("--config", default=None, help="default: config/demo.yaml")
    demo.add_argument("--port", type=int, default=9464, help="port for /metrics and /status (0: any free port)")
    return parser


def _setup(args: argparse.Namespace, secrets: frozenset[str] = frozenset()) -> None:
    from exporter.logs import setup_logging
    from exporter.redact import Redactor

    setup_logging(args.log_level, args.log_format, Redactor(secrets))


def _load(args: argparse.Namespace, path: str, env: dict[str, str] | None = None) -> object:
    """Load config; on error print every problem and return None."""
    from exporter.config import ConfigError, load_config

    try:
        return load_config(path, env)
    except ConfigError as err:
        print(str(err), file=sys.stderr)  # noqa: T201 (the CLI's own output)
        return None


def _build(args: argparse.Namespace, config_path: str, env: dict[str, str] | None = None) -> object:
    """Config -> a ready Exporter, or an exit code."""
    from exporter.app import Exporter
    from exporter.config import Config
    from exporter.redact import Redactor
    from exporter.state.store import StateError

    config = _load(args, config_path, env)
    if not isinstance(config, Config):
        return EXIT_CONFIG
    _setup(args, config.secrets())
    try:
        return Exporter(config, Redactor(config.secrets()))
    except StateError as err:
        log.error("%s", err)
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    built = _build(args, args.config)
    if isinstance(built, int):
        return built
    return _serve_until_signal(built)


def _serve_until_signal(exporter: object, before_stop: object = None) -> int:
    from exporter.app import Exporter, tuned_gc

    assert isinstance(exporter, Exporter)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with tuned_gc():
        exporter.start()
        stop.wait()
        log.info("stopping: finishing the current transaction and flushing spans (up to 10 s)")
        exporter.shutdown()
    if callable(before_stop):
        before_stop()
    return EXIT_OK


def _once(args: argparse.Namespace) -> int:
    from exporter.app import Exporter, tuned_gc

    built = _build(args, args.config)
    if isinstance(built, int):
        return built
    assert isinstance(built, Exporter)
    with tuned_gc():
        try:
            ok = built.once()
        finally:
            built.shutdown()
    return EXIT_OK if ok else EXIT_FAILED


def _check(args: argparse.Namespace) -> int:
    import yaml

    from exporter.config import Config
    from exporter.redact import Redactor
    from exporter.sources.http import SourceError
    from exporter.sources.registry import build_source

    config = _load(args, args.config)
    if not isinstance(config, Config):
        return EXIT_CONFIG
    _setup(args, config.secrets())
    out = sys.stdout
    out.write(yaml.safe_dump(config.redacted(), sort_keys=False))
    if not args.connect:
        return EXIT_OK
    redactor, failed = Redactor(config.secrets()), False
    for source_config in config.sources:
        if not source_config.enabled:
            continue
        source = build_source(source_config)
        try:
            out.write(f"{source_config.name}: {source.probe()}\n")
        except SourceError as err:
            failed = True
            out.write(f"{source_config.name}: FAILED: {redactor.redact(err.message)}\n")
        finally:
            source.close()
    return EXIT_FAILED if failed else EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    from simulator import Simulator, SimulatorOptions, parse_faults, parse_latency

    _setup(args)
    try:
        faults = parse_faults(args.faults)
    except ValueError as err:
        print(f"--faults: {err}", file=sys.stderr)  # noqa: T201
        return EXIT_CONFIG
    try:
        latency = parse_latency(args.latency)
    except ValueError as err:
        print(f"--latency: {err}", file=sys.stderr)  # noqa: T201
        return EXIT_CONFIG
    if args.rate_limit < 0:
        print("--rate-limit: must not be negative (0: no limit)", file=sys.stderr)  # noqa: T201
        return EXIT_CONFIG
    sim = Simulator(
        SimulatorOptions(
            seed=args.seed,
            faults=faults,
            history_runs=args.history,
            latency_seconds=latency,
            rate_limit=args.rate_limit,
        )
    )
    base = sim.start(host=args.host, port=args.port)
    log.info("simulator serving on %s (runtools %s, truth %s/_truth)", base, sim.url("runtools"), base)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sim.stop()
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from simulator import Simulator, SimulatorOptions

    config_path = args.config or _find_demo_config()
    sim = Simulator(
        SimulatorOptions(
            seed=1, runs_per_minute=20.0, run_seconds=(3.0, 20.0), history_runs=60, history_span_seconds=1800.0
        )
    )
    sim.start(host="127.0.0.1", port=0)
    workdir = Path(".demo")
    workdir.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "DEMO_DIR": str(workdir),
            "DEMO_LISTEN": f"127.0.0.1:{args.port}",
            "SIM_RUNTOOLS_URL": sim.url("runtools"),
            "SIM_AGENT_ACTIVITIES_URL": sim.url("agent_activities"),
            "SIM_BCTRL_URL": sim.url("bctrl"),
            "SIM_RUNTYPE_URL": sim.url("runtype"),
            "SIM_AGENT_ACTIVITIES_AGENTS": ",".join(sim.agents("agent_activities")),
        }
    )
    built = _build(args, config_path, env)
    if isinstance(built, int):
        sim.stop()
        return built
    from exporter.app import Exporter

    assert isinstance(built, Exporter)
    port = built.serve().port  # serve first so the URLs printed name the real port
    host = f"http://127.0.0.1:{port}"
    traces = built.config.traces.file if built.config.traces.protocol == "file" else built.config.traces.url
    sys.stderr.write(
        "\nagent-activity-exporter demo\n"
        f"  metrics      {host}/metrics\n"
        f"  status page  {host}/status\n"
        f"  traces       {traces}\n"
        f"  simulator    {sim.url('runtools').rsplit('/', 1)[0]}/_truth\n"
        "Ctrl-C to stop.\n\n"
    )
    return _serve_until_signal(built, before_stop=sim.stop)


def _find_demo_config() -> str:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base / "config" / "demo.yaml"
        if candidate.is_file():
            return str(candidate)
    raise SystemExit("config/demo.yaml not found: run the demo from the project's directory or pass --config")


if __name__ == "__main__":
    sys.exit(main())
