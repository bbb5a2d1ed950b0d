"""The typed configuration: frozen dataclasses, the only form of the
configuration the rest of the exporter sees."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.config.durations import format_duration
from exporter.config.options import Options
from exporter.redact import (
    REDACTED,
    Redactor,
    is_sensitive_header,
    redact_headers,
    secret_variants,
    url_password,
    url_without_password,
)


class ConfigError(Exception):
    """Every problem found in one configuration file.

    `problems` holds `(key_path, message)` pairs; `str()` gives one line per
    problem, `"<file>: <key_path>: <message>"`. Messages never contain a
    secret: values of secret keys are never quoted, and all messages pass
    through a `Redactor` built from the secrets the file held.
    """

    def __init__(self, path: str, problems: Iterable[tuple[str, str]]) -> None:
        self.path = path
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        return "\n".join(
            f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}" for key, message in self.problems
        )

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, tuple[tuple[str, str], ...]]]:
        # Exception pickles through self.args, which here is the rendered text.
        return (ConfigError, (self.path, self.problems))


# --------------------------------------------------------------------------
# Durations
@dataclass(frozen=True, slots=True, kw_only=True)
class TracesConfig:
    # Resolved: config, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is),
    # else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL). None when none is set.
    endpoint: str | None
    # Where spans are sent: http/protobuf -> "<base>/v1/traces" (unless the
    # endpoint already ends so, or came from the *_TRACES_ENDPOINT variable);
    # grpc -> the endpoint as given. None for protocol "file" or traces off.
    url: str | None
    protocol: str  # "http/protobuf" | "grpc" | "file"
    # OTEL_EXPORTER_OTLP_HEADERS, then _TRACES_HEADERS, then config on top.
    # Names are lower-case: gRPC metadata rejects upper-case keys. Kept out
    # of repr() so a logged config object shows no credentials.
    headers: dict[str, str] = field(repr=False)
    file: str
    capture_content: bool
    max_attribute_length: int
    timeout: float  # seconds
    outbox_max_spans: int
    # False when protocol != "file" and no endpoint is set anywhere.
    enabled: bool

    def redacted(self) -> dict[str, object]:
        return {
            "endpoint": self.endpoint,
            "url": self.url,
            "protocol": self.protocol,
            "headers": redact_headers(self.headers),
            "file": self.file,
            "capture_content": self.capture_content,
            "max_attribute_length": self.max_attribute_length,
            "timeout": format_duration(self.timeout),
            "outbox_max_spans": self.outbox_max_spans,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LogsConfig:
    """Activity items as OTLP log records: off unless `enabled`. Endpoint,
    url, protocol, headers and timeout resolve as TracesConfig's do, with
    OTEL_EXPORTER_OTLP_LOGS_* in place of _TRACES_ (http/protobuf posts to
    "<base>/v1/logs")."""

    enabled: bool
    endpoint: str | None
    url: str | None  # None for protocol "file", or when no endpoint is set
    protocol: str
    headers: dict[str, str] = field(repr=False)
    file: str
    timeout: float  # seconds

    def redacted(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "endpoint": self.endpoint,
            "url": self.url,
            "protocol": self.protocol,
            "headers": redact_headers(self.headers),
            "file": self.file,
            "timeout": format_duration(self.timeout),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    max_agents: int  # label cap; agents beyond it are counted as "other"
    max_tools: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunsConfig:
    max_open_age: float  # seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusConfig:
    # Link of each recent run on the status page: `{trace_id}` becomes the
    # run's 32-hex trace id.
    trace_url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StateConfig:
    path: str  # the SQLite file, unless `url` is set
    url: str | None = field(default=None, repr=False)  # a PostgreSQL database shared by replicas

    def secrets(self) -> frozenset[str]:
        return frozenset(url_password(self.url)) if self.url else frozenset()

    def redacted(self) -> dict[str, object]:
        return {"url": url_without_password(self.url)} if self.url else {"path": self.path}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceConfig:
    name: str
    type: str
    base_url: str  # without a trailing slash
    # runtools: `api_key`; the other types: `token`. Kept out of repr().
    secret: str | None = field(repr=False)
    interval: float  # seconds
    timeout: float  # seconds
    max_requests_per_minute: int | None
    max_requests_per_second: float | None
    concurrency: int  # requests of this source in flight at once, at most
    start_from: float  # seconds back for the first poll
    headers: dict[str, str] = field(repr=False)
    enabled: bool
    secret_key: str  # the YAML key of `secret` for this type (api_key, token)
    # The platform's own keys (its options.py), validated, defaults filled,
    # lists as tuples, durations in seconds.
    options: Options
    # Agent-by-agent platforms: read as this many shards, each its own
    # source named `name#k/N` (its own lease, checkpoint and series); `shard`
    # is k in one of them (config/shards.py), None in the configured source.
    shards: int = 1
    shard: int | None = None

    def secrets(self) -> frozenset[str]:
        found: set[str] = set()
        if self.secret:
            found.update(secret_variants(self.secret))
        for name, value in self.headers.items():
            if is_sensitive_header(name) and value:
                found.update(secret_variants(value))
        return frozenset(s for s in found if len(s) >= 4)

    def redacted(self) -> dict[str, object]:
        """This source as plain data, in the shape of its YAML, secrets hidden."""
        out: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "base_url": self.base_url,
            self.secret_key: None if self.secret is None else REDACTED,
            "interval": format_duration(self.interval),
            "timeout": format_duration(self.timeout),
            "max_requests_per_minute": self.max_requests_per_minute,
            "max_requests_per_second": self.max_requests_per_second,
            "concurrency": self.concurrency,
            "start_from": format_duration(self.start_from),
            "headers": redact_headers(self.headers),
            "enabled": self.enabled,
        }
        if self.shards > 1:
            out["shards"] = self.shards
        out.update(self.options.rendered())
        # Belt and braces: a secret pasted into some other value (a filter, a
        # URL path) is hidden too.
        redacted = Redactor(self.secrets()).redact_data(out)
        assert isinstance(redacted, dict)
        return redacted


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: str
    listen_host: str
    listen_port: int
    service_name: str
    state: StateConfig
    traces: TracesConfig
    metrics: MetricsConfig
    runs: RunsConfig
    sources: tuple[SourceConfig, ...]
    status: StatusConfig
    logs: LogsConfig

    def secrets(self) -> frozenset[str]:
        """Every secret string the exporter holds (min. 4 characters): each
        source's key or token, every sensitive header value and the
        password in state.url."""
        found: set[str] = set()
        found |= {s for s in self.state.secrets() if len(s) >= 4}
        for source in self.sources:
            found |= source.secrets()
        for name, value in (*self.traces.headers.items(), *self.logs.headers.items()):
            if is_sensitive_header(name) and value:
                found.update(s for s in secret_variants(value) if len(s) >= 4)
        return frozenset(found)

    def redactor(self) -> Redactor:
        return Redactor(self.secrets())

    def redacted(self) -> dict[str, object]:
        """The resolved configuration as plain data (what `check-config`
        prints as YAML), every secret replaced by "***"."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        out: dict[str, object] = {
            "listen": f"{host}:{self.listen_port}",
            "service_name": self.service_name,
            "state": self.state.redacted(),
            "traces": self.traces.redacted(),
            "logs": self.logs.redacted(),
            "metrics": {"max_agents": self.metrics.max_agents, "max_tools": self.metrics.max_tools},
            "runs": {"max_open_age": format_duration(self.runs.max_open_age)},
            "status": {"trace_url": self.status.trace_url},
            "sources": [source.redacted() for source in self.sources],
        }
        redacted = self.redactor().redact_data(out)
        assert isinstance(redacted, dict)
        return redacted
