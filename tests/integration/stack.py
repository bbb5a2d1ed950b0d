"""The monitoring stack for integration tests: a real Prometheus (Debian
package `prometheus`, scripts/install-prometheus.sh) and a real Arize
Phoenix (its own venv, scripts/install-phoenix.sh), each started on a free
127.0.0.1 port; the PromQL that the shipped dashboards and alert rules
evaluate; and a proxy that breaks a few records on their way to the
exporter, so that rejected-record metrics exist.

A missing program is a test failure, never a skip: the test setup
(`bash scripts/test.sh`) installs both, so their absence in CI is a broken setup.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from testkit.exporter_io import free_port
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "config" / "alerts.yml"
ALERT_TESTS = ROOT / "config" / "alerts.test.yml"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus.yml"
DASHBOARDS = ROOT / "dashboards"


def require_program(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `bash {install}` (`bash scripts/test.sh` runs it before the tests)",
            pytrace=False,
        )
    return path


# -- processes ---------------------------------------------------------------------


class Process:
    """A child process with its output in a log file, stopped by its own pid."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.argv, self.log, self.env, self.cwd = argv, log, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, env=self.env, cwd=self.cwd)

    def alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return True

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class PrometheusError(Exception):
    """The API answered with an error (a parse error names the position)."""


class Prometheus:
    """`prometheus` with exemplar storage, its HTTP API, and a temp TSDB."""

    def __init__(self, config: dict[str, object], workdir: Path) -> None:
        binary = require_program("prometheus", "scripts/install-prometheus.sh")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process = Process(
            [
                binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
        )

    def start(self) -> Prometheus:
        self.process.start()
        wait_for(self._ready, timeout=30, what="Prometheus /-/ready")
        return self

    def _ready(self) -> bool:
        self.process.alive()
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.process.stop()

    def api(self, path: str, **params: str | float) -> object:
        """GET /api/v1/<path>; the `data` of a success, else PrometheusError
        with Prometheus's own error text."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, object]]:
        data = self.api("query", query=expr)
        assert isinstance(data, dict)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def rules(self) -> list[dict[str, object]]:
        data = self.api("rules")
        assert isinstance(data, dict)
        return [rule for group in data["groups"] for rule in group["rules"]]

    def targets(self) -> list[dict[str, object]]:
        data = self.api("targets")
        assert isinstance(data, dict)
        return list(data["activeTargets"])


def prometheus_config(*targets: str, interval: str = "1s") -> dict[str, object]:
    """config/prometheus.yml as shipped (job name, relabelling), pointed at
    `targets` (one exporter, or several replicas), with config/alerts.yml and
    a short interval."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(ALERTS)]
    (job,) = config["scrape_configs"]
    job.update(scrape_interval=interval, scrape_timeout=interval)
    job["static_configs"] = [{"targets": list(targets)}]
    return config


def phoenix_executable() -> Path:
    venv = Path(os.environ.get("PHOENIX_VENV", ROOT / ".venv-phoenix"))
    if not venv.is_absolute():
        venv = ROOT / venv
    executable = venv / "bin" / "phoenix"
    if not executable.exists():
        pytest.fail(
            f"Arize Phoenix is not installed at {venv}: run `bash scripts/install-phoenix.sh` "
            "(`bash scripts/test.sh` runs it before the tests)",
            pytrace=False,
        )
    return executable


class Phoenix:
    """`phoenix serve` with an in-memory database; OTLP/HTTP on /v1/traces."""

    def __init__(self, workdir: Path) -> None:
        executable = phoenix_executable()
        self.port, grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_SQL_DATABASE_URL": "sqlite:///:memory:",
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_WORKING_DIR": str(workdir),
        }
        self.process = Process([str(executable), "serve"], workdir / "phoenix.log", env=env, cwd=workdir)

    def start(self, timeout: float = 90) -> Phoenix:
        self.process.start()
        wait_for(self._ready, timeout=timeout, interval=0.25, what="Phoenix /healthz")
        return self

    def _ready(self) -> bool:
        self.process.alive()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.process.stop()

    def spans(self, project: str) -> list[dict[str, Any]]:
        """Every span of a project, in OTLP form (GET .../spans/otlpv1, paged),
        as JSON the assertions index freely."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            response = httpx.get(
                f"{self.url}/v1/projects/{project}/spans/otlpv1",
                params=params,
                timeout=30,
            )
            if response.status_code == 404:
                return []  # the project exists only once its first span is stored
            response.raise_for_status()
            body = response.json()
            out += body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return out


# -- the expressions the stack evaluates ----------------------------------------------


@dataclass(frozen=True)
class Expression:
    where: str  # "overview.json: Failure ratio [B]", "alerts.yml: AgentSourceDown"
    expr: str


def has_data(result: list[dict[str, object]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)  # type: ignore[index]


def all_return_data(prometheus: Prometheus, expressions: list[Expression]) -> None:
    """Poll until every expression returns data; a parse or evaluation error
    fails at once (Prometheus's error text names the expression's problem)."""
    missing: list[Expression] = []

    def check() -> bool:
        missing[:] = [e for e in expressions if not has_data(prometheus.query(e.expr))]
        return not missing

    try:
        wait_for(check, timeout=90, interval=1, what="data for every expression")
    except AssertionError:
        pytest.fail(
            "no data (after 90 s of scrapes) for:\n" + "\n".join(f"  {e.where}: {e.expr}" for e in missing),
            pytrace=False,
        )


def dashboards() -> dict[str, dict[str, object]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, object]) -> Iterator[dict[str, object]]:
    for panel in dashboard["panels"]:  # type: ignore[attr-defined]
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions() -> list[Expression]:
    out = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):  # type: ignore[attr-defined]
                out.append(Expression(f"{name}: {panel['title']} [{target['refId']}]", target["expr"]))
    return out


LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)\s*$")


def variable_expressions() -> list[Expression]:
    """Template variables `label_values(selector, label)`, as the query
    `count by (label) (selector)`: each must list at least one value."""
    out = []
    for name, dashboard in dashboards().items():
        for var in dashboard["templating"]["list"]:  # type: ignore[index]
            if var["type"] != "query":
                continue
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = LABEL_VALUES.match(query)
            assert match, f"{name}: variable {var['name']}: only label_values(selector, label) is supported: {query}"
            out.append(
                Expression(f"{name}: variable ${var['name']}", f"count by ({match['label']}) ({match['selector']})")
            )
    return out


def alert_rules() -> list[dict[str, object]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def grafana_to_promql(expr: str, *, rate_interval: str = "1m", range_: str = "10m") -> str:
    """What Grafana sends for "All" of every variable and a given range."""
    out = expr.replace("$__rate_interval", rate_interval).replace("$__range", range_).replace("$__interval", "15s")
    out = re.sub(r"\$\{?(source|platform|agent|instance|job)\}?", ".*", out)
    assert "$" not in out, f"unsubstituted variable in {out}"
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (ours are agent_*, plus `up`).
    Histogram series are reduced to their family name."""
    return set(re.findall(r"\b(agent_[a-z_]+|up)\b", _without_strings(expr)))


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


_SET_OP = re.compile(r" (and|or|unless)(?: (?:on|ignoring) ?\([^)]*\))? ")
_COMPARISON = re.compile(r"(?P<lhs>.+?) (?:==|!=|>=|<=|>|<) (?:bool )?(?P<rhs>-?[0-9][0-9.eE+-]*)")


def signals(expr: str) -> list[str]:
    """The parts of an alert expression that must return data whether or not
    the alert fires: the expression split at its top-level and/or/unless,
    each operand without its final comparison to a number.

    `A > 0.25 and B >= 5` gives [A, B]; `A unless on (x) B < 3600` gives
    [A, B]. This is how the test shows that every series a rule looks at
    exists, without waiting for it to fire (promtool's unit tests show that
    it fires when it should)."""
    text = _collapse(expr)
    parts = _split_top_level(text)
    if len(parts) > 1:
        return [s for part in parts for s in signals(part)]
    text = _strip_parens(text)
    if _split_top_level(text) != [text]:
        return signals(text)
    match = _COMPARISON.fullmatch(text)
    if match and _balanced(match["lhs"]):
        return signals(match["lhs"])
    return [text]


def _collapse(expr: str) -> str:
    text = re.sub(r"\s+", " ", expr.strip())
    return re.sub(r"\( ", "(", re.sub(r" \)", ")", text))


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for c in _without_strings(text):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth < 0:
            return False
    return depth == 0


def _split_top_level(text: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    # Positions must match `text`: mask string contents instead of removing them.
    masked = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + "x" * (len(m.group()) - 2) + '"', text)
    while i < len(masked):
        c = masked[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = _SET_OP.match(masked, i)
            if m:
                parts.append(text[start:i].strip())
                i = start = m.end()
                continue
        i += 1
    parts.append(text[start:].strip())
    return parts


# -- a proxy that breaks records ---------------------------------------------------------------


class BreakingProxy:
    """Forwards requests to the simulator; in runtools activity pages, drops
    the `id` of every `every`-th thread event (a record the exporter must
    reject and count, while using the rest of the page)."""

    def __init__(self, upstream: str, every: int = 4) -> None:
        self.upstream = upstream.rstrip("/")
        self.every = every
        self.broken = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30)
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("authorization", "x-api-key", "accept")
                }
                upstream = proxy._client.get(proxy.upstream + self.path, headers=headers)
                body = upstream.content
                if upstream.status_code == 200 and "/v1/activity" in self.path:
                    body = proxy._break(body)
                self.send_response(upstream.status_code)
                for name in ("Content-Type", "Retry-After", "X-Sim-Fault"):
                    if name in upstream.headers:
                        self.send_header(name, upstream.headers[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _break(self, body: bytes) -> bytes:
        try:
            document = json.loads(body)
            events = document["data"]["events"]
        except (ValueError, KeyError, TypeError):
            return body  # an injected fault (html, truncated): pass it on as it is
        for event in events:
            # Chosen by content, so a re-read of the same event breaks it again.
            key = str(event.get("id", ""))
            if event.get("resourceType") == "thread" and zlib.crc32(key.encode()) % self.every == 0:
                del event["id"]
                with self._lock:
                    self.broken += 1
        return json.dumps(document).encode()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._client.close()
