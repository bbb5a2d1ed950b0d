"""What every benchmark shares: helper processes (simulator, page server,
OTLP receiver) on loopback ports, exporter configs, RSS from /proc, stats."""

from __future__ import annotations

import json
import os
import platform as _platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from exporter.sources.registry import PLATFORMS as REGISTERED
from simulator import DEFAULT_KEYS, Simulator, SimulatorOptions
from testkit.exporter_io import parse_metrics

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = tuple(REGISTERED)
SOURCE_NAMES = {"runtools": "rt", "agent_activities": "aa", "bctrl": "bc", "runtype": "ry"}
PREFIX = {"runtools": "/runtools", "agent_activities": "/agent-activities", "bctrl": "/bctrl", "runtype": "/runtype"}
PY = sys.executable


# -- helper processes -----------------------------------------------------------


class Child:
    """A helper process that prints its URL as the first line of stdout and
    stops when its stdin closes (or on SIGTERM)."""

    def __init__(self, args: Sequence[str], name: str, timeout: float = 120.0) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [PY, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"{name} did not start: {err[-2000:]}")
        self.url = line[0].strip()
        # Keep stderr drained so a chatty child never blocks on a full pipe.
        threading.Thread(target=lambda: self.proc.stderr and self.proc.stderr.read(), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.terminate()
                self.proc.wait(timeout=10)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


HISTORY_SPAN = 6 * 3600.0  # seconds of history the backfill benchmarks spread their runs over


def start_simulator(
    *,
    seed: int = 1,
    history: int = 0,
    history_platforms: Sequence[str] = PLATFORMS,
    history_span: float = 3600.0,
    rpm: float = 0.0,
    run_seconds: tuple[float, float] = (2.0, 8.0),
    agents: int = 4,
    epoch: str | None = None,
    latency: str = "0",
    rate_limit: int = 0,
) -> Child:
    args = [
        "-m",
        "benchmarks.simserver",
        "--seed",
        str(seed),
        "--history",
        str(history),
        "--history-platforms",
        ",".join(history_platforms),
        "--history-span",
        str(history_span),
        "--rpm",
        str(rpm),
        "--run-seconds",
        f"{run_seconds[0]},{run_seconds[1]}",
        "--agents",
        str(agents),
        "--latency",
        latency,
        "--rate-limit",
        str(rate_limit),
    ]
    if epoch:
        args += ["--epoch", epoch]
    return Child(args, "simulator", timeout=300)


def sim_agents(platform: str, seed: int = 1, agents: int = 4) -> list[str]:
    """A platform's agent ids (a pure function of seed and count)."""
    return Simulator(SimulatorOptions(seed=seed, agents_per_platform=agents)).agents(platform)


def sim_truth(base: str, platform: str) -> dict[str, object]:
    body = httpx.get(f"{base}/_truth", params={"platform": platform}, timeout=60).json()
    return body["platforms"][platform]  # type: ignore[no-any-return]


def sim_control(base: str, action: str) -> None:
    httpx.post(f"{base}/_control/{action}", timeout=10).raise_for_status()


# -- exporter configuration ---------------------------------------------------------


def source_entry(
    platform: str, base_url: str, *, interval: str = "1h", agents: Sequence[str] = (), **extra: object
) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": SOURCE_NAMES[platform],
        "type": platform,
        "base_url": base_url,
        "interval": interval,
    }
    entry[REGISTERED[platform].secret_key] = DEFAULT_KEYS[platform]
    if platform == "agent_activities":
        entry["agents"] = list(agents)
    if platform == "runtype":
        entry["tool_calls"] = True
    entry.update(extra)
    return entry


def write_config(
    path: Path,
    sources: list[dict[str, object]],
    *,
    traces: dict[str, object] | None,
    listen: str = "127.0.0.1:0",
    **top: object,
) -> Path:
    config: dict[str, object] = {
        "listen": listen,
        "state": {"path": str(path.parent / "state.db")},
        "sources": sources,
        **top,
    }
    config["traces"] = traces if traces is not None else {}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# -- measuring ----------------------------------------------------------------------


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, in MB, from /proc."""
    now = peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return now, peak


@dataclass
class RssSampler:
    """Samples a process's RSS (and a progress probe) every `every` seconds."""

    pid: int
    every: float = 0.25
    probe: Callable[[], float | None] | None = None
    samples: list[tuple[float, float, float | None]] = field(default_factory=list)  # (t, rss MB, progress)
    peak: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            try:
                rss, self.peak = rss_mb(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            progress = None
            if self.probe is not None:
                try:
                    progress = self.probe()
                except (httpx.HTTPError, OSError, ValueError):
                    progress = None
            self.samples.append((time.monotonic() - t0, rss, progress))
            self._stop.wait(self.every)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self, progress: float | None = None) -> None:
        """Stop sampling; one last sample, at `progress` when given."""
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            rss, self.peak = rss_mb(self.pid)
            self.samples.append((self.samples[-1][0] if self.samples else 0.0, rss, progress))
        except (FileNotFoundError, ProcessLookupError):
            pass

    def rss_at_progress(self, fraction: float, total: float) -> float | None:
        """Highest RSS sampled up to the moment progress first reached fraction*total."""
        best = 0.0
        for _, rss, progress in self.samples:
            best = max(best, rss)
            if progress is not None and progress >= fraction * total:
                return best
        return None


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)


def metric_sum(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **match: str) -> float:
    total = 0.0
    for (sample, labels), value in metrics.items():
        d = dict(labels)
        if sample == name and all(d.get(k) == v for k, v in match.items()):
            total += value
    return total


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def wait_until(check: Callable[[], object], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "python": _platform.python_version(),
        "os": f"{_platform.system()} {_platform.release()}",
    }


@contextmanager
def timer() -> Iterator[list[float]]:
    out: list[float] = []
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - t0)


def dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


class ExporterProc:
    """`agent-activity-exporter run -c CONFIG` as its own process (so that its
    RSS is its own), ready once /readyz answers 200."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [PY, "-m", "exporter", "run", "-c", str(config), "--log-level", "warning"],
            cwd=ROOT,
            stdout=self._log,
            stderr=self._log,
        )
        self.log = log

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from spawn to the first 200 from /readyz."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"exporter exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.monotonic() - self.started
                except httpx.TransportError:
                    pass
                time.sleep(0.005)
        raise TimeoutError("exporter not ready")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return scrape(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> ExporterProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
