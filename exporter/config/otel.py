"""The `traces` and `logs` sections, resolved with the OpenTelemetry
exporter variables (OTEL_EXPORTER_OTLP_*) as the OpenTelemetry
specification reads them: the config file wins, then the signal-specific
variable, then the general one. One resolver serves both signals."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from exporter.config.checker import Checker, Invalid, show
from exporter.config.model import LogsConfig, TracesConfig
from exporter.config.validators import (
    ENDPOINT_EXAMPLE,
    HEADER_NAME_RE,
    check_http_url,
    v_bool,
    v_choice,
    v_duration,
    v_endpoint,
    v_headers,
    v_int,
    v_str,
)

TRACES_KEYS: Final = frozenset(
    {
        "endpoint",
        "protocol",
        "headers",
        "file",
        "capture_content",
        "max_attribute_length",
        "timeout",
        "outbox_max_spans",
    }
)
LOGS_KEYS: Final = frozenset({"enabled", "endpoint", "protocol", "headers", "file", "timeout"})
PROTOCOLS: Final = ("http/protobuf", "grpc", "file")
DEFAULT_TRACES_FILE: Final = "./traces.jsonl"
DEFAULT_LOGS_FILE: Final = "./logs.jsonl"
DEFAULT_TIMEOUT: Final = 10.0

ENV_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
ENV_HEADERS: Final = "OTEL_EXPORTER_OTLP_HEADERS"
ENV_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TIMEOUT"


def signal_env(signal: str, setting: str) -> str:
    """The signal-specific variable: signal_env("logs", "ENDPOINT") is
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT."""
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_{setting}"


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how one signal is sent, resolved from its section and the
    environment."""

    endpoint: str | None
    url: str | None
    protocol: str
    headers: dict[str, str]
    file: str
    timeout: float


def first_env(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of `names` set to a non-empty value (the OTEL spec treats an
    empty variable as unset)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def parse_w3c_headers(text: str, var: str, ck: Checker, key: str = "traces.headers") -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_*HEADERS: `name=value,name2=value2`, URL-encoded
    (W3C baggage format). Problems name the entry, never its value."""
    out: dict[str, str] = {}
    for index, member in enumerate(text.split(","), start=1):
        if not member.strip():
            continue
        raw_name, sep, raw_value = member.partition("=")
        name = unquote(raw_name).strip().lower()
        if not sep or not HEADER_NAME_RE.fullmatch(name):
            ck.add(key, f"{var}: entry {index} is not name=value with a valid header name")
            continue
        out[name] = unquote(raw_value).strip()
    return out


def build_traces(section: Mapping[str, object], env: Mapping[str, str], ck: Checker) -> TracesConfig:
    target = resolve_target("traces", section, env, ck, DEFAULT_TRACES_FILE)
    return TracesConfig(
        endpoint=target.endpoint,
        url=target.url,
        protocol=target.protocol,
        headers=target.headers,
        file=target.file,
        capture_content=ck.get(section, "capture_content", "traces", v_bool, False),
        max_attribute_length=ck.get(section, "max_attribute_length", "traces", v_int(16), 4096),
        timeout=target.timeout,
        outbox_max_spans=ck.get(section, "outbox_max_spans", "traces", v_int(100), 100_000),
        enabled=target.protocol == "file" or target.endpoint is not None,
    )


def build_logs(section: Mapping[str, object], env: Mapping[str, str], ck: Checker) -> LogsConfig:
    """Off unless `enabled: true`; then an endpoint (or protocol: file) is
    required, as nothing could be sent otherwise."""
    enabled = ck.get(section, "enabled", "logs", v_bool, False)
    target = resolve_target("logs", section, env, ck, DEFAULT_LOGS_FILE)
    if enabled and target.protocol != "file" and target.endpoint is None:
        ck.add(
            "logs.enabled",
            f"is true, but no endpoint is set: set logs.endpoint, {signal_env('logs', 'ENDPOINT')} or "
            f"{ENV_ENDPOINT}, or logs.protocol: file",
        )
    return LogsConfig(
        enabled=enabled,
        endpoint=target.endpoint,
        url=target.url,
        protocol=target.protocol,
        headers=target.headers,
        file=target.file,
        timeout=target.timeout,
    )


def resolve_target(
    signal: str, section: Mapping[str, object], env: Mapping[str, str], ck: Checker, default_file: str
) -> Target:
    """One signal's endpoint, protocol, headers, file and timeout: the
    section wins, then OTEL_EXPORTER_OTLP_<SIGNAL>_*, then OTEL_EXPORTER_OTLP_*.
    http/protobuf posts to <base>/v1/<signal>."""
    protocol = _protocol(signal, section, env, ck)
    endpoint, use_as_is = _endpoint(signal, section, env, ck)
    url: str | None = None
    if endpoint is not None and protocol != "file":
        suffix = f"/v1/{signal}"
        if protocol == "grpc" or use_as_is or endpoint.rstrip("/").endswith(suffix):
            url = endpoint
        else:
            url = endpoint.rstrip("/") + suffix
    headers: dict[str, str] = {}
    for var in (ENV_HEADERS, signal_env(signal, "HEADERS")):
        if env.get(var, "").strip():
            headers.update(parse_w3c_headers(env[var], var, ck, f"{signal}.headers"))
    headers.update(ck.get(section, "headers", signal, v_headers(lower=True), dict[str, str]()))
    return Target(
        endpoint=endpoint,
        url=url,
        protocol=protocol,
        headers=headers,
        file=ck.get(section, "file", signal, v_str(), default_file),
        timeout=_timeout(signal, section, env, ck),
    )


def _protocol(signal: str, section: Mapping[str, object], env: Mapping[str, str], ck: Checker) -> str:
    if section.get("protocol") is not None:
        return ck.get(section, "protocol", signal, v_choice(PROTOCOLS), PROTOCOLS[0])
    if found := first_env(env, signal_env(signal, "PROTOCOL"), ENV_PROTOCOL):
        var, protocol = found
        if protocol in PROTOCOLS:
            return protocol
        ck.add(f"{signal}.protocol", f"must be one of {', '.join(PROTOCOLS)} (got {show(protocol)} from {var})")
    return PROTOCOLS[0]


def _endpoint(
    signal: str, section: Mapping[str, object], env: Mapping[str, str], ck: Checker
) -> tuple[str | None, bool]:
    """The endpoint, and whether it is a full URL already (it came from the
    signal-specific variable)."""
    configured = section.get("endpoint")
    # `endpoint: ${OTLP_URL:-}` is how a template says "not set here".
    if configured is not None and not (isinstance(configured, str) and not configured.strip()):
        return ck.get(section, "endpoint", signal, v_endpoint, None), False
    specific = signal_env(signal, "ENDPOINT")
    if found := first_env(env, specific, ENV_ENDPOINT):
        var, value = found
        try:
            url = check_http_url(value, f"{signal}.endpoint", ck, note=f" from {var}", example=ENDPOINT_EXAMPLE)
        except Invalid:
            return None, False
        return url, var == specific
    return None, False


def _timeout(signal: str, section: Mapping[str, object], env: Mapping[str, str], ck: Checker) -> float:
    if "timeout" in section:
        return ck.get(section, "timeout", signal, v_duration(), DEFAULT_TIMEOUT)
    if found := first_env(env, signal_env(signal, "TIMEOUT"), ENV_TIMEOUT):
        # The OTEL spec says milliseconds (the Python SDK reads seconds;
        # opentelemetry-python#4044), so we resolve it here and pass seconds.
        var, value = found
        try:
            timeout = float(value) / 1000.0
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(value)
        except ValueError:
            ck.add(f"{signal}.timeout", f"must be a positive number of milliseconds (got {show(value)} from {var})")
            return DEFAULT_TIMEOUT
        return timeout
    return DEFAULT_TIMEOUT
