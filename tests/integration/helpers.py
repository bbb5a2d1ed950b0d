"""Real processes for integration tests: the exporter as a subprocess, its
/metrics scraped over HTTP (parsed by testkit) and summed by label."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from testkit.exporter_io import parse_metrics
from tests.conftest import wait_for


class ExporterProcess:
    """`agent-activity-exporter run` as a real process."""

    def __init__(self, config: Path, port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.port, self.log = config, port, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ExporterProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "exporter", "run", "-c", str(self.config), "--log-level", "debug"],
                stdout=out,
                stderr=out,
                env=self.env,
            )
        wait_for(self._ready, timeout=30, what="/readyz")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"exporter exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return parse_metrics(httpx.get(f"{self.url}/metrics", timeout=5).text)

    def status(self) -> Any:
        """The /status JSON, for assertions to index freely."""
        return httpx.get(f"{self.url}/status", timeout=5).json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def by_label(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, label: str, **match: str
) -> dict[str, float]:
    """Sum of the samples of `name` matching `match`, by the value of `label`;
    zero-valued series are left out."""
    out: dict[str, float] = {}
    for (sample, labels), value in metrics.items():
        d = dict(labels)
        if sample == name and value and all(d.get(k) == v for k, v in match.items()):
            out[d[label]] = out.get(d[label], 0.0) + value
    return out
