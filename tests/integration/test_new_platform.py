"""CONTRIBUTING.md's walk-through of adding a platform, proved: a small
platform ("jobs") defined in this file alone (its API served over real HTTP,
its options, its reader, its registry entry) runs end to end through the
config loader, the pipeline, the outbox and /metrics, with nothing else in
the repository knowing of it."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from exporter.app import Exporter
from exporter.config import SourceConfig, load_config
from exporter.config.options import LOOKBACK_DOC, Options, duration_option, option
from exporter.config.validators import v_int
from exporter.convert.traces import trace_id_for
from exporter.model import Batch, OpenRun, Run, RunStatus, parse_enum, parse_time
from exporter.sources.base import Fields, PlatformSource, PollContext, envelope, export_run, parse_each, run_key
from exporter.sources.platform import Platform
from exporter.sources.registry import PLATFORMS
from exporter.sources.windows import Progress
from testkit.exporter_io import free_port, parse_metrics, write_config
from testkit.receiver import OtlpReceiver

TOKEN = "jobs-token-0123456789"
NOW = datetime.now(timezone.utc).replace(microsecond=0)

# -- the platform's API (what a vendor would serve) ---------------------------


def history(count: int) -> list[dict[str, object]]:
    """Finished jobs over the last 50 minutes, a few of them failed."""
    jobs: list[dict[str, object]] = []
    for n in range(count):
        ended = NOW - timedelta(minutes=50) + timedelta(seconds=n * 2900 / count)
        jobs.append(
            {
                "id": f"job-{n}",
                "agent": f"agent-{n % 3}",
                "status": "failed" if n % 7 == 0 else "succeeded",
                "started": (ended - timedelta(seconds=5 + n % 11)).isoformat(),
                "ended": ended.isoformat(),
            }
        )
    return jobs


def serve(jobs: list[dict[str, object]]) -> ThreadingHTTPServer:
    """GET /v1/jobs?from&to&page_size&cursor: jobs ended in [from, to), by end time."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            since, until = parse_time(query["from"]), parse_time(query["to"])
            chosen = [j for j in jobs if since <= parse_time(j["ended"]) < until]
            start, size = int(query.get("cursor", "0")), int(query["page_size"])
            page = chosen[start : start + size]
            more = start + size < len(chosen)
            body = json.dumps({"jobs": page, "next": str(start + size) if more else None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# -- the platform's package: options, reader, registry entry -------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JobsOptions(Options):
    page_size: int = option(v_int(1, 100), default=20, doc="jobs per page")
    lookback: float = duration_option(30.0, LOOKBACK_DOC)


class JobsReader(PlatformSource):
    PLATFORM = "jobs"

    def configure(self, config: SourceConfig) -> None:
        self._options = JobsOptions.of(config.options)  # the credential goes as a bearer token: no auth() needed

    def probe(self) -> str:
        self._client.get_json("/v1/jobs", {"from": NOW.isoformat(), "to": NOW.isoformat(), "page_size": 1})
        return "ok"

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        lookback = timedelta(seconds=self._options.lookback)
        progress = Progress.from_json(ctx.checkpoint.get("progress"), ctx.now - self.start_from)
        while (window := progress.next_window(ctx.now, lookback)) is not None:
            since, until = window.query()
            params = {"from": since, "to": until, "page_size": self._options.page_size, **window.resume}
            body = self._client.get_json("/v1/jobs", params)
            batch = Batch()
            for run in parse_each(self.name, envelope(self.name, body, "jobs"), self._run, batch, "job"):
                if not ctx.state.is_seen(run_key(run.run_id)):
                    export_run(batch, run, run.ended_at or run.started_at)
            cursor = body.get("next") if isinstance(body, dict) else None
            progress = progress.reading(window.at(cursor=cursor)) if cursor else progress.finished(window)
            batch.checkpoint = {"progress": progress.to_json()}
            batch.caught_up_to = None if cursor else window.until
            yield batch

    def _run(self, item: object) -> Run:
        f = Fields(self.name, item)
        return Run(
            source=self.name,
            platform=self.platform,
            base_url=self.base_url,
            run_id=f.str("id"),
            agent_id=f.str("agent"),
            agent_name=f.str("agent"),
            status=parse_enum(RunStatus, f.str("status"), RunStatus.UNKNOWN),
            raw_status=f.str("status"),
            started_at=f.time("started"),
            ended_at=f.time("ended"),
        )

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        raise AssertionError("jobs are listed once finished: no run is ever kept open")


JOBS = Platform(
    name="jobs", secret_key="token", doc="finished jobs, GET /v1/jobs", options=JobsOptions, reader=JobsReader
)


# -- the walk-through, end to end ------------------------------------------


@pytest.fixture()
def api() -> Iterator[tuple[str, list[dict[str, object]]]]:
    jobs = history(95)
    server = serve(jobs)
    yield f"http://127.0.0.1:{server.server_port}", jobs
    server.shutdown()


def test_a_platform_registered_from_a_test_runs_end_to_end(
    tmp_path: Path, api: tuple[str, list[dict[str, object]]]
) -> None:
    base_url, jobs = api
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    platforms = {**PLATFORMS, JOBS.name: JOBS}
    path = write_config(
        tmp_path / "config.yaml",
        [{"name": "jobs-prod", "type": "jobs", "base_url": base_url, "token": TOKEN, "page_size": 7}],
        port=free_port(),
        traces={"endpoint": endpoint},
    )
    config = load_config(path, platforms=platforms)
    assert JobsOptions.of(config.sources[0].options).page_size == 7

    exporter = Exporter(config, config.redactor(), platforms=platforms)
    try:
        exporter.serve()
        assert exporter.once()
        scraped = parse_metrics(httpx.get(f"http://127.0.0.1:{exporter.server.port}/metrics").text)  # type: ignore[union-attr]
    finally:
        exporter.shutdown()
        receiver.stop()

    truth = Counter((str(j["agent"]), str(j["status"])) for j in jobs)
    counted = {
        (labels["agent"], labels["status"]): value
        for (name, label_items), value in scraped.items()
        if name == "agent_runs_total" and (labels := dict(label_items))["source"] == "jobs-prod"
    }
    assert counted == {key: float(n) for key, n in truth.items()}
    assert {s.trace_id for s in receiver.snapshot()} == {trace_id_for("jobs", base_url, str(j["id"])) for j in jobs}


def test_the_loader_checks_the_new_platforms_keys_by_path(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "config.yaml",
        [{"name": "jobs-prod", "type": "jobs", "base_url": "http://127.0.0.1:1", "token": TOKEN, "page_size": 500}],
        port=0,
        traces={"protocol": "file"},
    )
    with pytest.raises(Exception, match=r"sources\[0\]\.page_size: must be at most 100 \(got 500\)"):
        load_config(path, platforms={**PLATFORMS, JOBS.name: JOBS})
    with pytest.raises(Exception, match=r"sources\[0\]\.type: unknown source type 'jobs'"):
        load_config(path)
