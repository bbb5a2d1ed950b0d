"""Loading: read the YAML safely, substitute variables, check every key and
value, and build the typed configuration.

Every problem is collected before anything is raised, so one run of
`check-config` shows them all, each with its key path:

    config.yaml: sources[2].interval: must be a duration like 30s (got 'abc')
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import yaml

from exporter.config.checker import Checker, Unresolved, show
from exporter.config.env import raw_secrets, substitute_tree
from exporter.config.model import Config, ConfigError, MetricsConfig, RunsConfig, StateConfig, StatusConfig
from exporter.config.options import PlatformSpec
from exporter.config.otel import LOGS_KEYS, TRACES_KEYS, build_logs, build_traces
from exporter.config.sources import build_sources
from exporter.config.validators import (
    v_database_url,
    v_duration,
    v_int,
    v_listen,
    v_optional,
    v_str,
    v_trace_url,
)
from exporter.redact import Redactor

TOP_KEYS: Final = frozenset(
    {"listen", "state", "service_name", "traces", "logs", "metrics", "runs", "status", "sources"}
)
STATE_KEYS: Final = frozenset({"path", "url"})
METRICS_KEYS: Final = frozenset({"max_agents", "max_tools"})
RUNS_KEYS: Final = frozenset({"max_open_age"})
STATUS_KEYS: Final = frozenset({"trace_url"})
DEFAULT_TRACE_URL: Final = "http://localhost:16686/trace/{trace_id}"  # Jaeger's UI
DEFAULT_LISTEN: Final = ("0.0.0.0", 9464)
DEFAULT_SERVICE_NAME: Final = "agent-activity-exporter"
DEFAULT_STATE_PATH: Final = "./exporter-state.db"


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects duplicate keys.

    safe_load keeps the last of two equal keys silently; a second `interval:`
    in a source is a typo that must not pass, like an unknown key.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges may override keys on purpose
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, platforms: Mapping[str, PlatformSpec] | None = None
) -> Config:
    """Read, substitute, validate and resolve one configuration file.

    `env` (default `os.environ`) supplies `${VAR}` values and the
    OTEL_EXPORTER_OTLP_* variables; `platforms` (default: every platform
    the exporter ships) the source types it accepts. Raises `ConfigError`
    listing every problem found.
    """
    known = _shipped_platforms() if platforms is None else platforms
    environ: Mapping[str, str] = os.environ if env is None else env
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(file, [("", f"cannot read the file: {err.strerror or err}")]) from err
    except UnicodeDecodeError as err:
        raise ConfigError(file, [("", "is not UTF-8 text")]) from err
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: as safe as safe_load
    except yaml.YAMLError as err:
        # `from None`: the YAML error's own text quotes the offending lines,
        # which may hold a literal secret.
        raise ConfigError(file, [("", _yaml_problem(err))]) from None

    ck = Checker()
    data = substitute_tree(raw, "", environ, ck)
    config = _build_config(data, file, environ, ck, known)
    if ck.problems or config is None:
        redactor = Redactor(raw_secrets(data, environ, {p.secret_key for p in known.values()}))
        problems = _in_document_order(ck.problems or [("", "invalid configuration")], data)
        raise ConfigError(file, [(key, redactor.redact(message)) for key, message in problems])
    return config


_PATH_HEAD_RE: Final = re.compile(r"([^.\[]*)(?:\[(\d+)\])?")


def _in_document_order(problems: Sequence[tuple[str, str]], data: object) -> list[tuple[str, str]]:
    """Problems sorted by where their key sits in the file (top-level key,
    then list index); substitution runs before validation, so its problems
    would otherwise all come first. The sort is stable within one item."""
    order = {key: index for index, key in enumerate(data)} if isinstance(data, dict) else {}

    def position(problem: tuple[str, str]) -> tuple[int, int]:
        match = _PATH_HEAD_RE.match(problem[0])
        if match is None or not problem[0]:
            return (-1, -1)
        head, index = match.group(1), match.group(2)
        return (order.get(head, len(order)), int(index) if index is not None else -1)

    return sorted(problems, key=position)


def _yaml_problem(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {err.problem}"
    return "invalid YAML"


# ---- ${VAR} substitution ---------------------------------------------------


def _build_config(
    data: object, file: str, env: Mapping[str, str], ck: Checker, platforms: Mapping[str, PlatformSpec]
) -> Config | None:
    if data is None:
        data = {}
    if isinstance(data, Unresolved):
        return None
    if not isinstance(data, dict):
        ck.add("", f"the top level must be a mapping with keys such as listen, traces and sources (got {show(data)})")
        return None
    top = ck.mapping(data, "", TOP_KEYS)

    listen_host, listen_port = ck.get(top, "listen", "", v_listen, DEFAULT_LISTEN)
    if "service_name" in top:
        service_name = ck.get(top, "service_name", "", v_str(), DEFAULT_SERVICE_NAME)
    else:
        # The OpenTelemetry convention, so the resource matches what the
        # deployment declares; the config still wins when it says otherwise.
        service_name = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME

    state_section = ck.section(top, "state", "", STATE_KEYS)
    state = StateConfig(
        path=ck.get(state_section, "path", "state", v_str(), DEFAULT_STATE_PATH),
        url=ck.get(state_section, "url", "state", v_optional(v_database_url), None),
    )
    if "path" in state_section and "url" in state_section:
        ck.add("state", "set either path (SQLite, one replica) or url (PostgreSQL, shared by replicas), not both")

    traces = build_traces(ck.section(top, "traces", "", TRACES_KEYS), env, ck)
    logs = build_logs(ck.section(top, "logs", "", LOGS_KEYS), env, ck)

    metrics_section = ck.section(top, "metrics", "", METRICS_KEYS)
    metrics = MetricsConfig(
        max_agents=ck.get(metrics_section, "max_agents", "metrics", v_int(1), 500),
        max_tools=ck.get(metrics_section, "max_tools", "metrics", v_int(1), 200),
    )

    runs_section = ck.section(top, "runs", "", RUNS_KEYS)
    runs = RunsConfig(max_open_age=ck.get(runs_section, "max_open_age", "runs", v_duration(), 6 * 3600.0))

    status_section = ck.section(top, "status", "", STATUS_KEYS)
    status = StatusConfig(trace_url=ck.get(status_section, "trace_url", "status", v_trace_url, DEFAULT_TRACE_URL))

    sources = build_sources(top, ck, platforms)

    return Config(
        path=file,
        listen_host=listen_host,
        listen_port=listen_port,
        service_name=service_name,
        state=state,
        traces=traces,
        metrics=metrics,
        runs=runs,
        sources=sources,
        status=status,
        logs=logs,
    )


def _shipped_platforms() -> Mapping[str, PlatformSpec]:
    # Imported here, not at the top: each platform's options module imports
    # this package's validators, so the registry cannot load with it.
    from exporter.sources.registry import PLATFORMS

    return PLATFORMS
