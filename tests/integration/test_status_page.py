"""The status page in a real headless Chromium, the exporter running as a
process against the simulator over real HTTP, spans to a real OTLP receiver.

What it must show (issue #17): the page renders and shows every source (one
of them down, with its error), a running backfill's progress bar, the recent
runs linked to their traces through `status.trace_url` with the trace ids
the receiver got, and no secret; `curl`'s Accept and `application/json`
still get the JSON. While the backfill runs the log has progress lines and
`agent_exporter_backfill_remaining_seconds` is above 0; it falls to 0 once
the source is caught up.

STATUS_PAGE_SCREENSHOT=<file.png> also saves the page's screenshot there
(how docs/screenshots/status-page.png is made).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import Simulator, SimulatorOptions
from testkit.chromium import chromium_path, dump_dom, screenshot
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver
from tests.conftest import wait_for
from tests.integration.helpers import KEYS, OTLP_TOKEN, ExporterProcess, assert_no_secret, four_sources
from tests.integration.stack import require_program

TRACE_URL = "http://jaeger.test:16686/trace/{trace_id}"
DOWN_TOKEN = "revoked-token-0d1e2f3a4b"  # a key the platform refuses (401)
# rt reads 10 days of history in 1-hour windows at 15 requests per second:
# about 16 s of backfill: long enough to load the page and log progress.
BACKFILL = {"start_from": "10d", "max_window": "1h", "concurrency": 1, "max_requests_per_second": 15}


@pytest.fixture(scope="module")
def browser() -> str:
    require_program("chromium", "scripts/install-chromium.sh")
    path = chromium_path()
    assert path is not None
    return path


@pytest.fixture
def running(tmp_path: Path, receiver: OtlpReceiver) -> Iterator[ExporterProcess]:
    sim = Simulator(
        SimulatorOptions(
            seed=17,
            runs_per_minute=30.0,
            run_seconds=(0.5, 2.0),
            history_runs=12,
            history_span_seconds=1800.0,
            agents_per_platform=2,
            keys=dict(KEYS),
        )
    )
    sim.start(host="127.0.0.1", port=0)
    sources = four_sources(sim)
    sources[0].update(BACKFILL)
    sources.append(
        {"name": "gone", "type": "bctrl", "base_url": sim.url("bctrl"), "token": DOWN_TOKEN, "interval": "1s"}
    )
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        sources,
        port=port,
        traces={"endpoint": receiver.endpoint, "headers": {"authorization": f"Bearer {OTLP_TOKEN}"}},
        status={"trace_url": TRACE_URL},
    )
    exporter = ExporterProcess(config, port, tmp_path / "exporter.log").start()
    yield exporter
    exporter.stop()
    sim.stop()


class Page(HTMLParser):
    """What the assertions read from the DOM: the text of each source's
    row, trace links and progress bars."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.sources: dict[str, str] = {}
        self._row: str | None = None
        self.links: list[str] = []
        self.progress: list[str] = []  # aria-valuenow of each progress bar
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr":
            self._row = a.get("data-source")
            if self._row:
                self.sources[self._row] = ""
        if tag == "a" and "trace" in str(a.get("class", "")).split():
            self.links.append(str(a.get("href")))
        if a.get("role") == "progressbar":
            self.progress.append(str(a.get("aria-valuenow")))

    def handle_data(self, data: str) -> None:
        if self._row:
            self.sources[self._row] += data + " "


def remaining(exporter: ExporterProcess, source: str) -> float:
    return exporter.metrics()[("agent_exporter_backfill_remaining_seconds", (("source", source),))]


def test_the_status_page_in_a_browser_during_a_backfill(
    browser: str, running: ExporterProcess, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    exporter = running

    def backfilling() -> Any:
        status = exporter.status()
        rt, gone = status["sources"]["rt"]["backfill"], status["sources"]["gone"]
        live = all(status["sources"][s]["up"] for s in ("aa", "bc", "ry"))  # their hour of history read
        return rt and rt["fraction"] > 0 and status["recent_runs"] and gone["polls"] and live and status

    status = wait_for(backfilling, timeout=30, what="rt backfilling with progress, and finished runs")
    assert remaining(exporter, "rt") > 3600  # days of history still to read

    dom = dump_dom(browser, f"{exporter.url}/status")
    page = Page(dom)
    assert set(page.sources) == {"rt", "aa", "bc", "ry", "gone"}
    assert page.progress and 0 < float(page.progress[0]) < 100, "the running backfill's progress bar"
    assert "of history to read" in page.sources["rt"] and "left" in page.sources["rt"]
    assert re.search(r"\bdown\b.*401", page.sources["gone"]), page.sources["gone"]
    assert all(re.search(r"\bup\b.*caught up", page.sources[s]) for s in ("aa", "bc", "ry")), {
        k: v[:120] for k, v in page.sources.items()
    }
    assert page.links, "the recent runs, linked to their traces"
    trace_ids = [link.removeprefix(TRACE_URL.removesuffix("{trace_id}")) for link in page.links]
    assert all(link == TRACE_URL.format(trace_id=t) for link, t in zip(page.links, trace_ids, strict=True))
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids)
    # The linked traces are the ones the exporter sent (delivered from the outbox a moment later).
    wait_for(
        lambda: set(trace_ids) <= {s.trace_id for s in receiver.snapshot()},
        timeout=30,
        what="every linked trace id received",
    )
    for secret in [DOWN_TOKEN, *KEYS.values(), OTLP_TOKEN]:
        assert secret not in dom
    if target := os.environ.get("STATUS_PAGE_SCREENSHOT"):
        screenshot(browser, f"{exporter.url}/status", Path(target))
    else:
        screenshot(browser, f"{exporter.url}/status", tmp_path / "status.png")

    # curl and machines get the JSON as before; /status.json always.
    for accept in ("*/*", "application/json"):
        got = httpx.get(f"{exporter.url}/status", headers={"Accept": accept}, timeout=5)
        assert got.headers["content-type"] == "application/json"
        assert set(got.json()) >= {"version", "sources", "outbox_spans", "traces"}
    json_page = httpx.get(f"{exporter.url}/status.json", headers={"Accept": "text/html"}, timeout=5)
    assert json_page.json()["sources"].keys() == status["sources"].keys()

    wait_for(lambda: remaining(exporter, "rt") == 0, timeout=60, interval=0.5, what="rt caught up")
    assert exporter.status()["sources"]["rt"]["backfill"] is None
    log = exporter.log.read_text()
    assert re.search(r"backfill: \d+% of the history read .* records/s, about .* left", log)
    assert "backfill done: caught up" in log
    assert_no_secret(log)
    assert DOWN_TOKEN not in log
