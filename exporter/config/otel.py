"""The `traces` section, resolved with the OpenTelemetry exporter
variables (OTEL_EXPORTER_OTLP_*) as the OpenTelemetry specification reads
them: the config file wins, then the traces-specific variable, then the
general one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

from exporter.config.checker import Checker, Invalid, show
from exporter.config.model import TracesConfig
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
PROTOCOLS: Final = ("http/protobuf", "grpc", "file")
DEFAULT_TRACES_FILE: Final = "./traces.jsonl"

ENV_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_TRACES_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
ENV_TRACES_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
ENV_HEADERS: Final = "OTEL_EXPORTER_OTLP_HEADERS"
ENV_TRACES_HEADERS: Final = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
ENV_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TIMEOUT"
ENV_TRACES_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"


def first_env(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of `names` set to a non-empty value (the OTEL spec treats an
    empty variable as unset)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def parse_w3c_headers(text: str, var: str, ck: Checker) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_*HEADERS: `name=value,name2=value2`, URL-encoded
    (W3C baggage format). Problems name the entry, never its value."""
    out: dict[str, str] = {}
    for index, member in enumerate(text.split(","), start=1):
        if not member.strip():
            continue
        raw_name, sep, raw_value = member.partition("=")
        name = unquote(raw_name).strip().lower()
        if not sep or not HEADER_NAME_RE.fullmatch(name):
            ck.add("traces.headers", f"{var}: entry {index} is not name=value with a valid header name")
            continue
        out[name] = unquote(raw_value).strip()
    return out


def build_traces(section: Mapping[str, object], env: Mapping[str, str], ck: Checker) -> TracesConfig:
    path = "traces"

    if section.get("protocol") is not None:
        protocol = ck.get(section, "protocol", path, v_choice(PROTOCOLS), PROTOCOLS[0])
    elif found := first_env(env, ENV_TRACES_PROTOCOL, ENV_PROTOCOL):
        var, protocol = found
        if protocol not in PROTOCOLS:
            ck.add("traces.protocol", f"must be one of {', '.join(PROTOCOLS)} (got {show(protocol)} from {var})")
            protocol = PROTOCOLS[0]
    else:
        protocol = PROTOCOLS[0]

    endpoint: str | None = None
    use_as_is = False  # the signal-specific variable is a full URL already
    configured = section.get("endpoint")
    # `endpoint: ${OTLP_URL:-}` is how a template says "not set here".
    if configured is not None and not (isinstance(configured, str) and not configured.strip()):
        endpoint = ck.get(section, "endpoint", path, v_endpoint, None)
    elif found := first_env(env, ENV_TRACES_ENDPOINT, ENV_ENDPOINT):
        var, value = found
        use_as_is = var == ENV_TRACES_ENDPOINT
        try:
            endpoint = check_http_url(value, "traces.endpoint", ck, note=f" from {var}", example=ENDPOINT_EXAMPLE)
        except Invalid:
            endpoint = None

    url: str | None = None
    if endpoint is not None and protocol != "file":
        if protocol == "grpc" or use_as_is or endpoint.rstrip("/").endswith("/v1/traces"):
            url = endpoint
        else:
            url = endpoint.rstrip("/") + "/v1/traces"

    headers: dict[str, str] = {}
    for var in (ENV_HEADERS, ENV_TRACES_HEADERS):
        if env.get(var, "").strip():
            headers.update(parse_w3c_headers(env[var], var, ck))
    headers.update(ck.get(section, "headers", path, v_headers(lower=True), dict[str, str]()))

    if "timeout" in section:
        timeout = ck.get(section, "timeout", path, v_duration(), 10.0)
    elif found := first_env(env, ENV_TRACES_TIMEOUT, ENV_TIMEOUT):
        # The OTEL spec says milliseconds (the Python SDK reads seconds;
        # opentelemetry-python#4044), so we resolve it here and pass seconds.
        var, value = found
        try:
            timeout = float(value) / 1000.0
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(value)
        except ValueError:
            ck.add("traces.timeout", f"must be a positive number of milliseconds (got {show(value)} from {var})")
            timeout = 10.0
    else:
        timeout = 10.0

    return TracesConfig(
        endpoint=endpoint,
        url=url,
        protocol=protocol,
        headers=headers,
        file=ck.get(section, "file", path, v_str(), DEFAULT_TRACES_FILE),
        capture_content=ck.get(section, "capture_content", path, v_bool, False),
        max_attribute_length=ck.get(section, "max_attribute_length", path, v_int(16), 4096),
        timeout=timeout,
        outbox_max_spans=ck.get(section, "outbox_max_spans", path, v_int(100), 100_000),
        enabled=protocol == "file" or endpoint is not None,
    )
