"""The README's demo: simulator + exporter in one command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from testkit.exporter_io import free_port
from tests.conftest import wait_for

DEMO_INTERVAL = 5.0  # config/demo.yaml


def run_statuses(url: str) -> set[str]:
    try:
        text = httpx.get(f"{url}/metrics", timeout=2).text
    except httpx.TransportError:
        return set()
    return {
        s.labels["status"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "agent_runs_total" and s.value > 0
    }


def test_demo_shows_runs_of_several_statuses_and_writes_traces(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "demo", "--port", str(port)], cwd=tmp_path, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=30, what="demo /readyz")

        def several_statuses() -> set[str]:
            statuses = run_statuses(url)
            return statuses if len(statuses) >= 3 else set()

        # Within two poll intervals of being ready.
        statuses = wait_for(
            several_statuses,
            timeout=2 * DEMO_INTERVAL,
            interval=0.5,
            what="agent_runs_total for several statuses",
        )
        assert {"succeeded", "failed"} <= statuses
        traces = tmp_path / ".demo" / "traces.jsonl"

        def written() -> list[str]:
            return traces.read_text().splitlines() if traces.exists() else []

        first = wait_for(
            written,
            timeout=2 * DEMO_INTERVAL,
            what="traces written",
        )
        request = json.loads(first[0])
        span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        assert len(span["traceId"]) == 32 and span["name"].startswith(("invoke_agent", "execute_tool"))
        printed = (tmp_path / "demo.log").read_text()
        assert f"{url}/metrics" in printed and "traces.jsonl" in printed
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
