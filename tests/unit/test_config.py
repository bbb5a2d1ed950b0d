"""exporter.config: fixtures `configs/*.ok.yaml` load, `configs/*.bad.yaml`
fail naming the key path their header declares.

Fixture header lines (leading `#` comments):
    # env: NAME=value[, NAME2=value2]   environment for ${VAR} and OTEL_*
    # expect: sources[0].interval        a key path the error must name
    # message: text                      text the error line must contain
                                         (pairs with the `expect:` above it)
    # secret: text                       must not appear in the error text
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from exporter.config import (
    Config,
    ConfigError,
    format_duration,
    load_config,
    parse_duration,
)
from exporter.config.load import STATUS_KEYS, TOP_KEYS
from exporter.config.options import Options
from exporter.config.shards import expand, in_shard, shard_of
from exporter.redact import Redactor
from exporter.sources.agent_activities.options import AgentActivitiesOptions
from exporter.sources.bctrl.options import BctrlOptions
from exporter.sources.registry import PLATFORMS
from exporter.sources.runtools.options import RuntoolsOptions
from exporter.sources.runtype.options import RuntypeOptions

CONFIGS = Path(__file__).parent / "configs"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def option_values(options: Options) -> dict[str, object]:
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}  # type: ignore[arg-type]


@dataclass
class Header:
    env: dict[str, str] = field(default_factory=dict)
    # (key path or None for a file-level problem, expected message text or None)
    expects: list[tuple[str | None, str | None]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


def read_header(path: Path) -> Header:
    header = Header()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        tag, _, value = line.lstrip("# ").partition(":")
        value = value.strip()
        if tag == "env":
            for pair in value.split(", "):
                name, _, text = pair.partition("=")
                header.env[name.strip()] = text
        elif tag == "expect":
            header.expects.append((value, None))
        elif tag == "message":
            if header.expects and header.expects[-1][1] is None and header.expects[-1][0] is not None:
                header.expects[-1] = (header.expects[-1][0], value)
            else:
                header.expects.append((None, value))
        elif tag == "secret":
            header.secrets.append(value)
    return header


def load_fixture(name: str, env: Mapping[str, str] | None = None) -> Config:
    path = CONFIGS / name
    merged = dict(read_header(path).env)
    merged.update(env or {})
    return load_config(path, env=merged)


def fixture_ids(pattern: str) -> list[str]:
    return sorted(p.name for p in CONFIGS.glob(pattern))


# --------------------------------------------------------------------------
# Fixtures


@pytest.mark.parametrize("name", fixture_ids("*.ok.yaml"))
def test_ok_fixture_loads(name: str) -> None:
    config = load_fixture(name)
    assert config.sources
    assert any(source.enabled for source in config.sources)


@pytest.mark.parametrize("name", fixture_ids("*.bad.yaml"))
def test_bad_fixture_names_its_key(name: str) -> None:
    path = CONFIGS / name
    header = read_header(path)
    assert header.expects, f"{name} declares no `# expect:` / `# message:` line"
    with pytest.raises(ConfigError) as info:
        load_config(path, env=header.env)
    err = info.value
    text = str(err)
    lines = text.splitlines()
    assert len(lines) == len(err.problems)
    assert all(line.startswith(f"{path}: ") for line in lines)
    for key, message in header.expects:
        if key is not None:
            prefix = f"{path}: {key}: "
            matching = [line for line in lines if line.startswith(prefix)]
            assert matching, f"no problem names {key!r} in:\n{text}"
            if message is not None:
                assert any(message in line for line in matching), f"{key}: {message!r} not in:\n{text}"
        else:
            assert message is not None
            assert any(message in line for line in lines), f"{message!r} not in:\n{text}"
    for secret in header.secrets:
        assert secret not in text
        assert all(secret not in m for _, m in err.problems)


def test_every_bad_fixture_fails_only_where_declared() -> None:
    """A bad fixture with a second, accidental problem would hide a bug in
    the checker; each error line must be one the header expects."""
    for name in fixture_ids("*.bad.yaml"):
        path = CONFIGS / name
        header = read_header(path)
        with pytest.raises(ConfigError) as info:
            load_config(path, env=header.env)
        declared = {key for key, _ in header.expects if key is not None}
        if not declared:
            continue
        unexpected = [key for key, _ in info.value.problems if key not in declared]
        # secret_in_error also carries a list-valued header on purpose;
        # everything else must be exactly what is declared.
        allowed_extra = {"secret_in_error.bad.yaml": {"sources[0].headers.X-Other"}}
        assert set(unexpected) <= allowed_extra.get(name, set()), f"{name}: {unexpected}"


# --------------------------------------------------------------------------
# Errors


def test_error_line_format() -> None:
    path = CONFIGS / "bad_interval.bad.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: sources[0].interval: must be a duration like 30s (got 'abc')"
    assert info.value.problems == (("sources[0].interval", "must be a duration like 30s (got 'abc')"),)
    assert info.value.path == str(path)


def test_all_problems_are_collected_in_document_order() -> None:
    with pytest.raises(ConfigError) as info:
        load_fixture("many_problems.bad.yaml")
    keys = [key for key, _ in info.value.problems]
    assert keys == ["listen", "traces.endpoint", "sources[0].interval", "sources[1].type", "sources[2].token"]


def test_config_error_pickles() -> None:
    err = ConfigError("c.yaml", [("listen", "bad"), ("", "whole file")])
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == err.problems
    assert str(again) == "c.yaml: listen: bad\nc.yaml: whole file"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml", env={})


def test_yaml_syntax_error_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("sources:\n  - api_key: sk-very-secret-1\n   name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "invalid YAML at line" in str(info.value)
    assert "sk-very-secret-1" not in str(info.value)
    assert info.value.__cause__ is None


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTOOLS_API_KEY", "from-os-environ")
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(CONFIGS / "minimal.ok.yaml")
    assert config.sources[0].secret == "from-os-environ"


# --------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("30s", 30.0),
        ("1.5m", 90.0),
        ("6h", 21600.0),
        ("1d", 86400.0),
        (" 2s ", 2.0),
        ("0.25s", 0.25),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30", "", "s", "abc", "30 s", "-5s", "1h30m", "5w", "1e3s", "30S"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (30.0, "30s"), (90.0, "90s"), (21600.0, "6h"), (86400.0, "1d"), (1.25, "1250ms")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


# --------------------------------------------------------------------------
# Defaults, substitution, options


def test_defaults() -> None:
    config = load_fixture("minimal.ok.yaml")
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 9464)
    assert config.service_name == "agent-activity-exporter"
    assert config.state.path == "./exporter-state.db"
    assert config.metrics.max_agents == 500 and config.metrics.max_tools == 200
    assert config.runs.max_open_age == 6 * 3600
    traces = config.traces
    assert (traces.protocol, traces.file, traces.capture_content) == ("http/protobuf", "./traces.jsonl", False)
    assert (traces.max_attribute_length, traces.timeout, traces.outbox_max_spans) == (4096, 10.0, 100_000)
    (source,) = config.sources
    assert source.base_url == "https://api.runtools.example"
    assert source.secret == "rt-key-minimal"
    assert (source.interval, source.timeout, source.start_from) == (30.0, 10.0, 3600.0)
    assert source.max_requests_per_minute is None and source.headers == {} and source.enabled
    assert option_values(source.options) == {"filters": {}, "lookback": 30.0, "page_size": 200, "max_window": 3600.0}


def test_substitution_defaults_escapes_and_typed_values() -> None:
    config = load_fixture("substitution.ok.yaml")
    assert config.service_name == "my-exporter"  # ${SERVICE_NAME:-my-exporter}
    assert config.metrics.max_agents == 7  # "7" from the environment read as an int
    assert config.metrics.max_tools == 9  # default "9" read as an int
    a, b = config.sources
    assert a.base_url == "https://api.runtools.example"
    assert a.interval == 45.0
    assert a.max_requests_per_minute is None  # ${RT_BUDGET:-} -> no budget
    # $${ is a literal ${; ":-" also applies to a variable set to "".
    assert a.headers == {"X-Template": "${NOT_A_VARIABLE} and fallback"}
    assert b.secret == "tok-rt-key-subst"
    assert b.enabled is False  # "false" from the environment read as a bool
    assert type(a.name) is str and type(b.secret) is str


def test_a_list_from_one_variable_is_comma_separated(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "sources: [{name: a, type: agent_activities, base_url: 'https://x.example', token: t-1234,"
        " agents: '${AGENT_UIDS}'}]\n",
        encoding="utf-8",
    )
    config = load_config(path, env={"AGENT_UIDS": "uid-1, uid-2,uid-3"})
    assert AgentActivitiesOptions.of(config.sources[0].options).agents == ("uid-1", "uid-2", "uid-3")
    path.write_text(path.read_text().replace("'${AGENT_UIDS}'", "'uid-1,uid-2'"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.agents: must be a list"):
        load_config(path, env={})  # a literal string in the file stays a type error


def test_literal_string_is_not_coerced(tmp_path: Path) -> None:
    """Only values that came from a variable are read as numbers/bools."""
    path = tmp_path / "c.yaml"
    path.write_text(
        'metrics: {max_agents: "10"}\n'
        "sources: [{name: a, type: runtools, base_url: 'https://x.example', api_key: k-1234}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"metrics\.max_agents: must be an integer"):
        load_config(path, env={})


def test_options_filled_and_immutable() -> None:
    config = load_fixture("file_protocol.ok.yaml")
    bctrl, aa = config.sources
    assert bctrl.base_url == "http://127.0.0.1:8080/bctrl"  # trailing slash dropped
    assert (bctrl.interval, bctrl.timeout, bctrl.start_from) == (1.0, 0.5, 600.0)
    assert bctrl.max_requests_per_minute == 60
    assert option_values(bctrl.options) == {
        "level": None,
        "categories": ("action", "system"),
        "runs": ("run_1", "run_2"),
        "page_size": 10,
        "lookback": 0.5,
    }
    assert option_values(aa.options) == {
        "agents": ("agt_1",),
        "auth_header": "X-Token",
        "auth_scheme": "",
        "per_page": 10,
        "lookback": 30.0,
        "fetch_detail": False,
        "inflight_every": 5,
    }
    assert aa.enabled is False
    assert isinstance(bctrl.options, BctrlOptions)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bctrl.options.page_size = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        bctrl.interval = 5.0  # type: ignore[misc]
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 0)
    assert config.runs.max_open_age == 86400.0


def test_concurrency_and_the_per_second_budget_default_and_load(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: a, type: runtools, base_url: 'https://x.example', api_key: key-1234}\n"
        "  - {name: b, type: bctrl, base_url: 'https://y.example', token: tok-1234,"
        " concurrency: 2, max_requests_per_second: 0.5}\n"
    )
    a, b = load_config(path, env={}).sources
    assert (a.concurrency, a.max_requests_per_second) == (8, None)
    assert (b.concurrency, b.max_requests_per_second) == (2, 0.5)


def test_every_type_has_an_options_entry_and_a_secret_key() -> None:
    assert set(PLATFORMS) == {"runtools", "agent_activities", "bctrl", "runtype"}
    assert PLATFORMS["runtools"].secret_key == "api_key"
    assert {t.secret_key for name, t in PLATFORMS.items() if name != "runtools"} == {"token"}


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:9464", "0.0.0.0", 9464),
        (":9100", "0.0.0.0", 9100),
        ("[::]:80", "::", 80),
        ("localhost:0", "localhost", 0),
    ],
)
def test_listen(tmp_path: Path, listen: str, host: str, port: int) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f'listen: "{listen}"\nsources: [{{name: a, type: runtools, base_url: "https://x.example", api_key: k-1234}}]\n',
        encoding="utf-8",
    )
    config = load_config(path, env={})
    assert (config.listen_host, config.listen_port) == (host, port)
    assert load_config(path, env={}).redacted()["listen"] == (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


# --------------------------------------------------------------------------
# OTEL_* precedence (traces)


def test_traces_off_when_nothing_set() -> None:
    traces = load_fixture("traces_env.ok.yaml").traces
    assert traces.enabled is False
    assert traces.endpoint is None and traces.url is None
    assert traces.protocol == "http/protobuf"
    assert traces.headers == {}


@pytest.mark.parametrize(
    ("env", "endpoint", "url"),
    [
        # The generic variable is a base URL: /v1/traces is appended.
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            "http://collector:4318",
            "http://collector:4318/v1/traces",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://gw:4318/otlp/"},
            "http://gw:4318/otlp/",
            "http://gw:4318/otlp/v1/traces",
        ),
        # ... unless it already ends with /v1/traces.
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/v1/traces"},
            "http://c:4318/v1/traces",
            "http://c:4318/v1/traces",
        ),
        # The signal variable is used as is, and wins over the generic one.
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:4318",
            },
            "http://t:4318/custom",
            "http://t:4318/custom",
        ),
        # An empty variable counts as unset.
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://g:4318"},
            "https://g:4318",
            "https://g:4318/v1/traces",
        ),
    ],
)
def test_traces_endpoint_from_env(env: dict[str, str], endpoint: str, url: str) -> None:
    traces = load_fixture("traces_env.ok.yaml", env).traces
    assert traces.enabled is True
    assert (traces.endpoint, traces.url, traces.protocol) == (endpoint, url, "http/protobuf")


def test_config_endpoint_wins_over_env(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "traces: {endpoint: 'http://cfg:4318/v1/traces'}\n"
        "sources: [{name: a, type: runtools, base_url: 'https://x.example', api_key: k-1234}]\n",
        encoding="utf-8",
    )
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:2"}
    traces = load_config(path, env=env).traces
    assert (traces.endpoint, traces.url) == ("http://cfg:4318/v1/traces", "http://cfg:4318/v1/traces")
    path.write_text(path.read_text().replace("/v1/traces", ""), encoding="utf-8")
    assert load_config(path, env=env).traces.url == "http://cfg:4318/v1/traces"


@pytest.mark.parametrize(
    ("env", "protocol"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "grpc"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http/protobuf",
        ),
    ],
)
def test_traces_protocol_from_env(env: dict[str, str], protocol: str) -> None:
    env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    traces = load_fixture("traces_env.ok.yaml", env).traces
    assert traces.protocol == protocol
    # grpc uses the host:port URL as given; http/protobuf appends the path.
    expected = "http://collector:4317" if protocol == "grpc" else "http://collector:4317/v1/traces"
    assert traces.url == expected


def test_config_protocol_wins_over_env(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "traces: {protocol: grpc}\n"
        "sources: [{name: a, type: runtools, base_url: 'https://x.example', api_key: k-1234}]\n",
        encoding="utf-8",
    )
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"}
    traces = load_config(path, env=env).traces
    assert (traces.protocol, traces.url) == ("grpc", "https://c:4317")


def test_traces_headers_precedence() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "X-Tenant=generic, x-other=o%20k,Authorization=Basic%20dXNlcjpwYXNz",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=traces,x-only=1",
    }
    traces = load_fixture("traces_headers.ok.yaml", env).traces
    assert traces.headers == {
        "x-tenant": "from-config",  # config on top of both variables
        "x-other": "o k",  # URL-decoded
        "authorization": "Basic dXNlcjpwYXNz",
        "x-only": "1",  # the signal variable on top of the generic one
    }
    without_config = load_fixture("traces_env.ok.yaml", env).traces
    assert without_config.headers["x-tenant"] == "traces"


def test_traces_timeout_from_env_is_milliseconds() -> None:
    env = {"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert load_fixture("traces_env.ok.yaml", env).traces.timeout == 2.5
    env["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "750"
    assert load_fixture("traces_env.ok.yaml", env).traces.timeout == 0.75


def test_file_protocol_needs_no_endpoint() -> None:
    traces = load_fixture("file_protocol.ok.yaml").traces
    assert traces.enabled is True
    assert traces.protocol == "file" and traces.url is None
    assert traces.file == "/tmp/spans.jsonl" and traces.timeout == 2.5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "traces.endpoint: must be an http(s) URL"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "traces.protocol: must be one of"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "traces.headers: OTEL_EXPORTER_OTLP_HEADERS: entry 1"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "traces.timeout: must be a positive number of milliseconds"),
    ],
)
def test_bad_otel_env_is_a_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_fixture("traces_env.ok.yaml", env)
    assert message in str(info.value)
    # The message names the variable it came from.
    assert next(iter(env)) in str(info.value)


def test_otel_service_name_is_the_default_service_name() -> None:
    assert load_fixture("minimal.ok.yaml", {"OTEL_SERVICE_NAME": "svc"}).service_name == "svc"
    assert load_fixture("substitution.ok.yaml", {"OTEL_SERVICE_NAME": "svc"}).service_name == "my-exporter"


# --------------------------------------------------------------------------
# Secrets and redaction

REDACTION_SECRETS = (
    "rt-live-9f8e7d6c5b4a",
    "aa-tok-1a2b3c4d5e",
    "otlp-4x4x4x4x",
    "session=cookie-value-777",
    "second-key-888",
    "env-header-secret-42",
)


def redaction_config() -> Config:
    return load_fixture("redaction.ok.yaml", {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=env-header-secret-42"})


def test_secrets() -> None:
    config = redaction_config()
    secrets = config.secrets()
    for secret in REDACTION_SECRETS:
        assert secret in secrets
    assert "Bearer otlp-4x4x4x4x" in secrets  # the whole header value too
    assert "team-a" not in secrets and "exporter" not in secrets  # not sensitive headers
    assert config.sources[0].secrets() >= {"rt-live-9f8e7d6c5b4a", "second-key-888"}


def test_redacted_hides_every_secret() -> None:
    config = redaction_config()
    data = config.redacted()
    dumped = yaml.safe_dump(data, sort_keys=False)  # what check-config prints
    for secret in REDACTION_SECRETS:
        assert secret not in dumped
    traces = data["traces"]
    assert isinstance(traces, dict)
    assert traces["headers"] == {"api-key": "***", "authorization": "***", "x-tenant": "team-a"}
    sources = data["sources"]
    assert isinstance(sources, list)
    assert sources[0]["api_key"] == "***"
    assert sources[0]["headers"] == {"Cookie": "***", "X-Api-Key": "***", "X-Request-Source": "exporter"}
    assert sources[1]["token"] == "***"
    assert sources[1]["agents"] == ["agt_1"]
    assert sources[0]["interval"] == "30s" and sources[0]["lookback"] == "30s"


def test_redacted_output_is_a_loadable_config_shape(tmp_path: Path) -> None:
    """check-config output can be pasted back: same keys, secrets aside."""
    config = redaction_config()
    data = config.redacted()
    traces = data["traces"]
    assert isinstance(traces, dict)
    del traces["url"], traces["enabled"]  # resolved facts, not keys
    logs = data["logs"]
    assert isinstance(logs, dict)
    del logs["url"]  # a resolved fact (`enabled` is a key of logs)
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    again = load_config(path, env={})
    assert [s.name for s in again.sources] == [s.name for s in config.sources]
    assert again.sources[0].options == config.sources[0].options
    assert again.sources[0].secret == "***"


def test_state_url_password_is_a_secret_hidden_everywhere() -> None:
    config = load_fixture("state_url.ok.yaml")
    assert config.state.url == "postgresql://exporter:s3cret%2Fpg-pass@db.internal:5432/exporter?sslmode=require"
    assert {"s3cret%2Fpg-pass", "s3cret/pg-pass"} <= config.secrets()  # as written and as psycopg decodes it
    assert config.redacted()["state"] == {"url": "postgresql://exporter:***@db.internal:5432/exporter?sslmode=require"}
    assert "s3cret" not in repr(config)
    assert config.redactor().redact("FATAL: password s3cret/pg-pass refused") == "FATAL: password *** refused"


def test_state_defaults_to_the_sqlite_file_without_a_url() -> None:
    config = load_fixture("minimal.ok.yaml")
    assert config.state.url is None and config.redacted()["state"] == {"path": "./exporter-state.db"}


def test_shards_split_the_configured_agents_into_sources_of_their_own(tmp_path: Path) -> None:
    agents = [f"agt_{i}" for i in range(12)]
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {"name": "aa", "type": "agent_activities", "base_url": "https://x.example", "token": "tok-1234"}
                    | {"agents": agents, "shards": 3}
                ]
            }
        ),
        encoding="utf-8",
    )
    (source,) = load_config(path, env={}).sources
    assert source.shards == 3 and source.redacted()["shards"] == 3
    shards = expand(source)
    assert [s.name for s in shards] == ["aa#0/3", "aa#1/3", "aa#2/3"]
    assert [s.shard for s in shards] == [0, 1, 2]
    split = [AgentActivitiesOptions.of(s.options).agents for s in shards]
    assert sorted(a for part in split for a in part) == sorted(agents)  # each agent in exactly one shard
    assert all(part for part in split)  # 12 agents over 3 shards: none empty (the hash spreads them)
    for k, (shard, part) in enumerate(zip(shards, split, strict=True)):
        assert all(shard_of(a, 3) == k and in_shard(shard, a) for a in part)
        assert not any(in_shard(shard, a) for a in agents if a not in part)
    assert expand(load_config(path, env={}).sources[0]) == shards  # the same split every time
    assert all(in_shard(source, a) for a in agents)  # the configured source itself reads every agent


def test_repr_shows_no_secret() -> None:
    text = repr(redaction_config())
    for secret in REDACTION_SECRETS:
        assert secret not in text


def test_redactor_from_config() -> None:
    redactor = Redactor(redaction_config().secrets())
    line = "GET /x with key rt-live-9f8e7d6c5b4a and Authorization: Bearer otlp-4x4x4x4x"
    assert redactor.redact(line) == "GET /x with key *** and Authorization: ***"


# --------------------------------------------------------------------------
# The shipped example


def example_env() -> dict[str, str]:
    return {
        "RUNTOOLS_API_KEY": "rt-example-key",
        "AGENTS_TOKEN": "aa-example-token",
        "BCTRL_TOKEN": "bc-example-token",
        "RUNTYPE_TOKEN": "rty-example-token",
    }


def test_example_yaml_loads() -> None:
    config = load_config(EXAMPLE, env=example_env())
    assert [(s.name, s.type) for s in config.sources] == [
        ("prod-feed", "runtools"),
        ("support-agents", "agent_activities"),
        ("browser-runs", "bctrl"),
        ("runtype", "runtype"),
    ]
    assert config.traces.url == "http://localhost:4318/v1/traces"
    assert RuntoolsOptions.of(config.sources[0].options).filters == {"resource_type": "agent"}
    assert BctrlOptions.of(config.sources[2].options).level == "summary"
    assert RuntypeOptions.of(config.sources[3].options).agents == "all"


def test_example_yaml_needs_its_variables() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env={})
    assert {key for key, _ in info.value.problems} == {
        "sources[0].api_key",
        "sources[1].token",
        "sources[2].token",
        "sources[3].token",
    }


def test_example_yaml_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = {"listen", "state", "path", "url", "service_name", "traces", "metrics", "runs", "sources"}
    keys |= {
        "endpoint",
        "protocol",
        "headers",
        "file",
        "capture_content",
        "max_attribute_length",
        "timeout",
        "outbox_max_spans",
    }
    keys |= {"max_agents", "max_tools", "max_open_age"}
    keys |= TOP_KEYS | STATUS_KEYS
    keys |= {"name", "type", "base_url", "interval", "max_requests_per_minute", "start_from", "enabled"}
    keys |= {"max_requests_per_second", "concurrency", "shards"}
    for spec in PLATFORMS.values():
        keys |= {spec.secret_key, *spec.options.specs()}
    missing = sorted(
        key
        for key in keys
        if not re.search(rf"^\s*(- )?{re.escape(key)}:", text, re.MULTILINE)
        and not re.search(rf"#\s+{re.escape(key)}\b", text)
    )
    assert not missing, f"config/example.yaml does not document: {missing}"
