"""The `logs` section: off by default, resolved like `traces` (config, then
OTEL_EXPORTER_OTLP_LOGS_*, then OTEL_EXPORTER_OTLP_*), errors with their
key paths, header secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import Config, ConfigError, LogsConfig, load_config

SOURCE = "sources: [{name: a, type: runtools, base_url: 'https://x.example', api_key: k-1234}]\n"


def load(tmp_path: Path, logs: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text((f"logs: {logs}\n" if logs else "") + SOURCE, encoding="utf-8")
    return load_config(path, env=env or {})


def logs_of(tmp_path: Path, logs: str, env: dict[str, str] | None = None) -> LogsConfig:
    return load(tmp_path, logs, env).logs


def test_logs_are_off_by_default_even_with_an_endpoint_in_the_environment(tmp_path: Path) -> None:
    logs = logs_of(tmp_path, "", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert logs.enabled is False
    assert (logs.protocol, logs.file, logs.timeout) == ("http/protobuf", "./logs.jsonl", 10.0)
    # Resolved all the same (check-config shows where they would go).
    assert logs.url == "http://c:4318/v1/logs"


def test_generic_endpoint_is_a_base_url_for_logs(tmp_path: Path) -> None:
    logs = logs_of(tmp_path, "{enabled: true}", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://gw:4318/otlp/"})
    assert (logs.enabled, logs.endpoint, logs.url) == (True, "http://gw:4318/otlp/", "http://gw:4318/otlp/v1/logs")


def test_logs_variables_win_over_generic_and_config_wins_over_both(tmp_path: Path) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9999/custom",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:1",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "500",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-a=generic,x-b=generic",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-b=logs",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-c=traces",
    }
    logs = logs_of(tmp_path, "{enabled: true}", env)
    # The signal variable is a full URL, used as is.
    assert (logs.url, logs.protocol, logs.timeout) == ("http://logs:9999/custom", "http/protobuf", 0.5)
    assert logs.headers == {"x-a": "generic", "x-b": "logs"}
    configured = logs_of(
        tmp_path, "{enabled: true, endpoint: 'http://cfg:4318', protocol: grpc, timeout: 3s, headers: {x-b: cfg}}", env
    )
    assert (configured.url, configured.protocol, configured.timeout) == ("http://cfg:4318", "grpc", 3.0)
    assert configured.headers == {"x-a": "generic", "x-b": "cfg"}


def test_traces_variables_do_not_reach_logs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "{enabled: true}", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318"})
    assert "logs.enabled: is true, but no endpoint is set" in str(info.value)


def test_file_protocol_needs_no_endpoint(tmp_path: Path) -> None:
    logs = logs_of(tmp_path, "{enabled: true, protocol: file, file: /tmp/l.jsonl}")
    assert (logs.enabled, logs.protocol, logs.url, logs.file) == (True, "file", None, "/tmp/l.jsonl")


@pytest.mark.parametrize(
    ("logs", "env", "message"),
    [
        ("{enabled: yes-please}", {}, "logs.enabled: "),
        ("{enabled: true, endpoint: 'collector:4318'}", {}, "logs.endpoint: must be an http(s) URL"),
        ("{enabled: true, protocol: http/json}", {}, "logs.protocol: must be one of"),
        ("{enabled: true, timeout: soon}", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:1"}, "logs.timeout: "),
        ("{enabled: true, level: info}", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:1"}, "logs.level: "),
        ("{enabled: true}", {"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "json"}, "logs.protocol: must be one of"),
        (
            "{enabled: true}",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:1", "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "novalue"},
            "logs.headers: OTEL_EXPORTER_OTLP_LOGS_HEADERS: entry 1",
        ),
        (
            "{enabled: true}",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:1", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "-5"},
            "logs.timeout: must be a positive number of milliseconds",
        ),
    ],
)
def test_bad_logs_values_name_their_key(tmp_path: Path, logs: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, logs, env)
    assert message in str(info.value)


def test_logs_header_secrets_are_redacted(tmp_path: Path) -> None:
    env = {"OTEL_EXPORTER_OTLP_LOGS_HEADERS": "authorization=Bearer%20s3cr3t-logs-token"}
    config = load(tmp_path, "{enabled: true, endpoint: 'http://c:4318'}", env)
    assert "s3cr3t-logs-token" in config.secrets()
    shown = config.redacted()
    assert shown["logs"] == {**config.logs.redacted(), "headers": {"authorization": "***"}}
    assert "s3cr3t-logs-token" not in repr(shown) and "s3cr3t-logs-token" not in repr(config)
