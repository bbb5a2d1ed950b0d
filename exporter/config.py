"""YAML -> typed, validated configuration.

`load_config()` reads the file with a safe YAML loader, substitutes
`${VAR}` / `${VAR:-default}` in every string value, checks every key and
value, resolves the OTEL_EXPORTER_OTLP_* variables with the OpenTelemetry
spec's semantics, and returns frozen dataclasses. Nothing else in the
exporter sees YAML.

Every problem is collected before anything is raised, so one run of
`check-config` shows them all, each with its key path:

    config.yaml: sources[2].interval: must be a duration like 30s (got 'abc')

Type-specific source keys live in one table, `SOURCE_TYPES`: a new platform
is one more entry there.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

import yaml

from exporter.redact import (
    REDACTED,
    Redactor,
    is_sensitive_header,
    redact_headers,
    secret_variants,
)

__all__ = [
    "SOURCE_TYPES",
    "Config",
    "ConfigError",
    "MetricsConfig",
    "OptionSpec",
    "RunsConfig",
    "SourceConfig",
    "SourceType",
    "StateConfig",
    "TracesConfig",
    "format_duration",
    "load_config",
    "parse_duration",
]

T = TypeVar("T")

# --------------------------------------------------------------------------
# Errors


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

_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_UNIT_SECONDS: Final[Mapping[str, float]] = MappingProxyType(
    {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
)


def parse_duration(text: str) -> float:
    """`<number><unit>` (unit ms|s|m|h|d) -> seconds, e.g. "30s" -> 30.0.

    A bare number is an error: "30" could mean seconds or milliseconds, and
    the OTEL variables alone already disagree about that.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r} (expected <number><unit> like 30s)")
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (expected <number><unit>, unit ms|s|m|h|d, like 30s)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration`, in the largest exact unit (21600 -> "6h")."""
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and math.isclose(count, round(count), abs_tol=1e-9):
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


# --------------------------------------------------------------------------
# The typed configuration


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
class MetricsConfig:
    max_agents: int  # label cap; agents beyond it are counted as "other"
    max_tools: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunsConfig:
    max_open_age: float  # seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class StateConfig:
    path: str


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
    start_from: float  # seconds back for the first poll
    headers: dict[str, str] = field(repr=False)
    enabled: bool
    # Type-specific keys (SOURCE_TYPES[type].options), validated, defaults
    # filled, lists as tuples, durations in seconds.
    options: Mapping[str, object]

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
        spec = SOURCE_TYPES[self.type]
        out: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "base_url": self.base_url,
            spec.secret_key: None if self.secret is None else REDACTED,
            "interval": format_duration(self.interval),
            "timeout": format_duration(self.timeout),
            "max_requests_per_minute": self.max_requests_per_minute,
            "start_from": format_duration(self.start_from),
            "headers": redact_headers(self.headers),
            "enabled": self.enabled,
        }
        for key, value in self.options.items():
            option = spec.options.get(key)
            out[key] = option.render(value) if option is not None else _plain(value)
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

    def secrets(self) -> frozenset[str]:
        """Every secret string the exporter holds (min. 4 characters): each
        source's key or token and every sensitive header value."""
        found: set[str] = set()
        for source in self.sources:
            found |= source.secrets()
        for name, value in self.traces.headers.items():
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
            "state": {"path": self.state.path},
            "traces": self.traces.redacted(),
            "metrics": {"max_agents": self.metrics.max_agents, "max_tools": self.metrics.max_tools},
            "runs": {"max_open_age": format_duration(self.runs.max_open_age)},
            "sources": [source.redacted() for source in self.sources],
        }
        redacted = self.redactor().redact_data(out)
        assert isinstance(redacted, dict)
        return redacted


def _plain(value: object) -> object:
    """Options as YAML-dumpable plain data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Validation machinery


class _Invalid(Exception):
    """Raised by a validator after it has recorded its problem."""


class _Unresolved:
    """Stands for a value whose ${VAR} could not be substituted. The problem
    is already recorded; validators skip it instead of adding a second one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unresolved>"


_UNRESOLVED: Final = _Unresolved()


class _Substituted(str):
    """A string produced by ${VAR} substitution.

    Environment variables are always text, so `max_agents: ${MAX_AGENTS}`
    would otherwise never be a valid integer. Only such strings are read as
    YAML scalars where a number or bool is expected; a literal "10" written
    in the file stays a type error, as typed YAML should be.
    """

    __slots__ = ()


class _Checker:
    """Collects problems; owns the small helpers that read typed fields."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def fail(self, path: str, message: str) -> NoReturn:
        self.add(path, message)
        raise _Invalid

    def mapping(
        self,
        value: object,
        path: str,
        allowed: Collection[str],
        *,
        hints: Mapping[str, str] | None = None,
        elsewhere: Mapping[str, str] | None = None,
    ) -> dict[str, object]:
        """A mapping's known keys; each unknown key is a problem naming it.

        `hints` maps a wrong key to the right one where difflib cannot guess
        (runtools' `token` -> `api_key`); `elsewhere` says which other source
        types a key belongs to.
        """
        if value is None or isinstance(value, _Unresolved):
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping (got {_show(value)})")
        known: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.add(_join(path, str(key)), f"keys must be strings (got {_show(key)})")
                continue
            if key not in allowed:
                self.add(_join(path, key), _unknown_key_message(key, allowed, hints, elsewhere))
                continue
            known[key] = item
        return known

    def section(self, parent: Mapping[str, object], key: str, path: str, allowed: Collection[str]) -> dict[str, object]:
        """A nested mapping such as `traces`; missing or invalid -> {} (defaults)."""
        try:
            return self.mapping(parent.get(key), _join(path, key), allowed)
        except _Invalid:
            return {}

    def get(
        self,
        section: Mapping[str, object],
        key: str,
        path: str,
        validate: Callable[[object, str, _Checker], T],
        default: T,
        *,
        required: bool = False,
    ) -> T:
        """`section[key]` validated, else `default`.

        On a problem the default is returned as a placeholder so checking
        goes on; `load_config` raises before any placeholder is used.
        """
        key_path = _join(path, key)
        if key not in section:
            if required:
                self.add(key_path, "required")
            return default
        value = section[key]
        if isinstance(value, _Unresolved):
            return default
        try:
            return validate(value, key_path, self)
        except _Invalid:
            return default


def _and_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: object, limit: int = 60) -> str:
    """A value quoted for a message, YAML-flavoured and bounded in length."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(str(value))
    elif isinstance(value, dict):
        return "a mapping"
    elif isinstance(value, list):
        return "a list"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _kind(value: object) -> str:
    """A value's type in words; used where the value itself may be secret."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _unknown_key_message(
    key: str,
    allowed: Collection[str],
    hints: Mapping[str, str] | None,
    elsewhere: Mapping[str, str] | None,
) -> str:
    note = ""
    if elsewhere and key in elsewhere:
        note = f"; it is a key of {elsewhere[key]} sources"
    suggestion = (hints or {}).get(key)
    if suggestion is None:
        close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
        suggestion = close[0] if close else None
    if suggestion is not None:
        return f"unknown key{note} (did you mean '{suggestion}'?)"
    return f"unknown key{note} (valid keys: {', '.join(sorted(allowed))})"


def _scalar_from_env(value: object) -> object:
    """A substituted string read as a YAML scalar ("10" -> 10, "true" -> True)."""
    if isinstance(value, _Substituted):
        try:
            parsed = yaml.safe_load(str(value))
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, bool | int | float):
            return parsed
    return value


# ---- leaf validators (value, key path, checker) -> typed value -----------


def _v_str(
    *, nonempty: bool = True, pattern: re.Pattern[str] | None = None, what: str = ""
) -> Callable[[object, str, _Checker], str]:
    def validate(value: object, path: str, ck: _Checker) -> str:
        if not isinstance(value, str):
            ck.fail(path, f"must be a string (got {_show(value)})")
        if nonempty and not value.strip():
            ck.fail(path, "must not be empty")
        if pattern is not None and not pattern.fullmatch(value):
            ck.fail(path, f"must be {what} (got {_show(value)})")
        return str(value)

    return validate


def _v_secret(value: object, path: str, ck: _Checker) -> str:
    # Never quote the value: it is, or was meant to be, a secret.
    if not isinstance(value, str) or not value.strip():
        ck.fail(path, f"must be a non-empty string (got {_kind(value)})")
    if value != value.strip():
        # Trailing newlines from `$(cat keyfile)` are a classic 401 cause.
        ck.fail(path, "must not start or end with whitespace")
    return str(value)


def _v_choice(choices: Sequence[str]) -> Callable[[object, str, _Checker], str]:
    def validate(value: object, path: str, ck: _Checker) -> str:
        if not isinstance(value, str) or value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6) if isinstance(value, str) else []
            hint = f"; did you mean '{close[0]}'?" if close else ""
            ck.fail(path, f"must be one of {', '.join(choices)} (got {_show(value)}{hint})")
        return str(value)

    return validate


def _v_bool(value: object, path: str, ck: _Checker) -> bool:
    value = _scalar_from_env(value)
    if not isinstance(value, bool):
        ck.fail(path, f"must be true or false (got {_show(value)})")
    return value


def _v_int(lo: int | None = None, hi: int | None = None) -> Callable[[object, str, _Checker], int]:
    def validate(value: object, path: str, ck: _Checker) -> int:
        value = _scalar_from_env(value)
        # bool is an int in Python; `max_agents: yes` is still a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            ck.fail(path, f"must be an integer (got {_show(value)})")
        if lo is not None and value < lo:
            ck.fail(path, f"must be at least {lo} (got {value})")
        if hi is not None and value > hi:
            ck.fail(path, f"must be at most {hi} (got {value})")
        return value

    return validate


def _v_duration(minimum: float | None = None) -> Callable[[object, str, _Checker], float]:
    def validate(value: object, path: str, ck: _Checker) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ck.fail(path, f"must be a duration like 30s (got {_show(value)}: add a unit, ms|s|m|h|d)")
        if not isinstance(value, str):
            ck.fail(path, f"must be a duration like 30s (got {_show(value)})")
        try:
            seconds = parse_duration(value)
        except ValueError:
            ck.fail(path, f"must be a duration like 30s (got {_show(value)})")
        if seconds <= 0:
            ck.fail(path, f"must be positive (got {_show(value)})")
        if minimum is not None and seconds < minimum:
            ck.fail(path, f"must be at least {format_duration(minimum)} (got {_show(value)})")
        return seconds

    return validate


def _v_optional(inner: Callable[[object, str, _Checker], T]) -> Callable[[object, str, _Checker], T | None]:
    def validate(value: object, path: str, ck: _Checker) -> T | None:
        # `${LIMIT:-}` expands to "": an unset variable means "no value".
        if value is None or (isinstance(value, _Substituted) and value.strip() in ("", "null", "~")):
            return None
        return inner(value, path, ck)

    return validate


def _v_list(
    item: Callable[[object, str, _Checker], str], *, nonempty: bool = True, unique: bool = True
) -> Callable[[object, str, _Checker], tuple[str, ...]]:
    def validate(value: object, path: str, ck: _Checker) -> tuple[str, ...]:
        if isinstance(value, _Substituted):
            # A list from one environment variable: `agents: ${AGENT_UIDS}` with "a,b,c".
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            ck.fail(path, f"must be a list (got {_show(value)})")
        if nonempty and not value:
            ck.fail(path, "must not be empty")
        items: list[str] = []
        bad = False
        for index, element in enumerate(value):
            element_path = f"{path}[{index}]"
            if isinstance(element, _Unresolved):
                bad = True
                continue
            try:
                checked = item(element, element_path, ck)
            except _Invalid:
                bad = True
                continue
            if unique and checked in items:
                ck.add(element_path, f"duplicate {_show(checked)}")
                bad = True
                continue
            items.append(checked)
        if bad:
            raise _Invalid
        return tuple(items)

    return validate


_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _v_headers(*, lower: bool) -> Callable[[object, str, _Checker], dict[str, str]]:
    def validate(value: object, path: str, ck: _Checker) -> dict[str, str]:
        section = ck.mapping(value, path, allowed=_Anything())
        out: dict[str, str] = {}
        bad = False
        for name, header_value in section.items():
            key_path = _join(path, name)
            if not _HEADER_NAME_RE.fullmatch(name):
                ck.add(key_path, "is not a valid HTTP header name")
                bad = True
                continue
            if isinstance(header_value, _Unresolved):
                bad = True
                continue
            if not isinstance(header_value, str):
                shown = _kind(header_value) if is_sensitive_header(name) else _show(header_value)
                ck.add(key_path, f"must be a string (got {shown}; quote it)")
                bad = True
                continue
            if "\r" in header_value or "\n" in header_value:
                ck.add(key_path, "must not contain a line break")
                bad = True
                continue
            out[name.lower() if lower else name] = str(header_value)
        if bad:
            raise _Invalid
        return out

    return validate


class _Anything(Collection[str]):
    """`allowed` for mappings whose keys are free (headers, ...)."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _url_for_message(text: str) -> str:
    """A URL quoted for a message, with any user:password@ removed."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return _show(text)
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    return _show(parts.geturl())


def _check_http_url(
    text: str, path: str, ck: _Checker, *, note: str = "", example: str = "like https://api.example.com"
) -> str:
    """An http(s)://host[:port][/path] URL, stripped of surrounding spaces."""
    value = text.strip()
    try:
        parts = urlsplit(value)
        port_ok = True
        try:
            _ = parts.port
        except ValueError:
            port_ok = False
    except ValueError:
        ck.fail(path, f"must be an http(s) URL {example} (got {_url_for_message(value)}{note})")
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        ck.fail(path, f"must be an http(s) URL {example} (got {_url_for_message(value)}{note})")
    if not port_ok:
        ck.fail(path, f"has an invalid port (got {_url_for_message(value)}{note})")
    if parts.username is not None or parts.password is not None:
        ck.fail(
            path,
            f"must not contain user:password@; use the secret or headers keys (got {_url_for_message(value)}{note})",
        )
    if parts.query or parts.fragment:
        ck.fail(path, f"must not have a query or fragment (got {_url_for_message(value)}{note})")
    return value


def _v_base_url(value: object, path: str, ck: _Checker) -> str:
    if not isinstance(value, str):
        ck.fail(path, f"must be an http(s) URL like https://api.example.com (got {_show(value)})")
    # Stored without a trailing slash: trace ids hash the base URL (convert/traces.py),
    # so "https://x/" and "https://x" must be the same source.
    return _check_http_url(value, path, ck).rstrip("/")


_ENDPOINT_EXAMPLE: Final = "like http://localhost:4318"


def _v_endpoint(value: object, path: str, ck: _Checker) -> str:
    if not isinstance(value, str):
        ck.fail(path, f"must be an http(s) URL {_ENDPOINT_EXAMPLE} (got {_show(value)})")
    return _check_http_url(value, path, ck, example=_ENDPOINT_EXAMPLE)


def _v_listen(value: object, path: str, ck: _Checker) -> tuple[str, int]:
    message = f'must be "host:port" like "0.0.0.0:9464" (got {_show(value)})'
    if not isinstance(value, str):
        ck.fail(path, message)
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        ck.fail(path, message)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        ck.fail(path, f'an IPv6 address must be in brackets, like "[::]:9464" (got {_show(value)})')
    port = int(port_text)
    if port > 65535:
        ck.fail(path, f"port must be 0..65535 (got {port})")
    # ":9464" reads as "every interface", as it does for Prometheus.
    return (host or "0.0.0.0", port)


_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
# Ids go into URL paths (/api/agents/{uid}/...): no slash, no space.
_ID_RE: Final = re.compile(r"[^/\s?#]+")
_v_name = _v_str(pattern=_NAME_RE, what="letters, digits, '_', '.' or '-'")
_v_id = _v_str(pattern=_ID_RE, what="an id without '/', '?', '#' or spaces")


def _v_runtools_filters(value: object, path: str, ck: _Checker) -> Mapping[str, str]:
    section = ck.mapping(value, path, RUNTOOLS_FILTERS)
    out: dict[str, str] = {}
    bad = False
    for key, item in section.items():
        if isinstance(item, _Unresolved):
            bad = True
            continue
        try:
            out[key] = _v_str()(item, _join(path, key), ck)
        except _Invalid:
            bad = True
    if bad:
        raise _Invalid
    return MappingProxyType(out)


def _v_agents_or_all(value: object, path: str, ck: _Checker) -> str | tuple[str, ...]:
    if value == "all":
        return "all"
    if not isinstance(value, list):
        ck.fail(path, f'must be "all" or a list of agent ids (got {_show(value)})')
    return _v_list(_v_id)(value, path, ck)


# --------------------------------------------------------------------------
# Source types: the one table of type-specific keys


def _render_plain(value: object) -> object:
    return _plain(value)


def _render_duration(value: object) -> object:
    return format_duration(value) if isinstance(value, float | int) else value


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionSpec:
    """One type-specific source key."""

    validate: Callable[[object, str, _Checker], object]
    default: object = None
    required: bool = False
    doc: str = ""
    # How `redacted()` shows the value (durations back to "30s").
    render: Callable[[object], object] = _render_plain


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceType:
    secret_key: str  # the YAML key whose value becomes SourceConfig.secret
    options: Mapping[str, OptionSpec]
    doc: str = ""


def _duration_option(default: float, doc: str) -> OptionSpec:
    return OptionSpec(validate=_v_duration(), default=default, doc=doc, render=_render_duration)


_LOOKBACK_DOC = "re-read this far behind the watermark on every poll, for late events"

# The documented query filters of runtools' GET /v1/activity, minus the ones
# the source drives itself (since, until, limit, cursor).
RUNTOOLS_FILTERS: Final = frozenset(
    {
        "resource_type",
        "resource_id",
        "event_type",
        "severity",
        "status",
        "actor_user_id",
        "thread_id",
        "agent_run_id",
        "sandbox_id",
        "workspace_id",
        "tool_slug",
        "installable_agent_install_id",
        "code_execution_id",
        "runmesh_node_id",
    }
)

BCTRL_CATEGORIES: Final = (
    "action",
    "agent",
    "browser",
    "network",
    "console",
    "captcha",
    "storage",
    "artifact",
    "recording",
    "system",
)

SOURCE_TYPES: Final[Mapping[str, SourceType]] = MappingProxyType(
    {
        "runtools": SourceType(
            secret_key="api_key",
            doc="organisation-wide activity feed, GET /v1/activity",
            options=MappingProxyType(
                {
                    "filters": OptionSpec(
                        validate=_v_runtools_filters,
                        default=MappingProxyType({}),
                        doc="query filters of /v1/activity (resource_type, event_type, ...)",
                    ),
                    "lookback": _duration_option(30.0, _LOOKBACK_DOC),
                    "page_size": OptionSpec(
                        validate=_v_int(1, 200), default=200, doc="events per page (`limit`), 1..200"
                    ),
                    "max_window": _duration_option(3600.0, "a backfill is read in windows of at most this"),
                }
            ),
        ),
        "agent_activities": SourceType(
            secret_key="token",
            doc="per-agent run list and run detail, GET /api/agents/{uid}/activities",
            options=MappingProxyType(
                {
                    "agents": OptionSpec(
                        validate=_v_list(_v_id), required=True, doc="agent uids to read (no listing endpoint)"
                    ),
                    "auth_header": OptionSpec(
                        validate=_v_str(pattern=_HEADER_NAME_RE, what="an HTTP header name"),
                        default="Authorization",
                        doc="header that carries the token",
                    ),
                    # Empty means the token is sent raw, without a scheme.
                    "auth_scheme": OptionSpec(
                        validate=_v_str(nonempty=False), default="Bearer", doc="scheme before the token"
                    ),
                    "per_page": OptionSpec(validate=_v_int(1, 1000), default=50, doc="runs per page"),
                    "lookback": _duration_option(30.0, _LOOKBACK_DOC),
                    "fetch_detail": OptionSpec(
                        validate=_v_bool, default=True, doc="fetch each finished run's detail (steps, tokens)"
                    ),
                    "inflight_every": OptionSpec(
                        validate=_v_int(0, 1000),
                        default=5,
                        doc="list runs in flight every Nth quiet poll (1 = every poll, 0 = never)",
                    ),
                }
            ),
        ),
        "bctrl": SourceType(
            secret_key="token",
            doc="browser/desktop runtime runs and their activity, GET /v1/runs/{id}/activity",
            options=MappingProxyType(
                {
                    # None sends no `level`, which returns every item.
                    "level": OptionSpec(
                        validate=_v_optional(_v_choice(("summary", "debug"))),
                        default=None,
                        doc="summary | debug | null (all)",
                    ),
                    # None sends no `categories`, so categories the vendor
                    # adds later are not silently filtered out.
                    "categories": OptionSpec(
                        validate=_v_optional(_v_list(_v_choice(BCTRL_CATEGORIES))),
                        default=None,
                        doc="activity categories to read; null = all",
                    ),
                    "runs": OptionSpec(
                        validate=_v_optional(_v_list(_v_id)),
                        default=None,
                        doc="fixed run ids; null = discover runs with GET /v1/runs",
                    ),
                    "page_size": OptionSpec(validate=_v_int(1, 1000), default=100, doc="items per page"),
                    "lookback": _duration_option(30.0, _LOOKBACK_DOC),
                }
            ),
        ),
        "runtype": SourceType(
            secret_key="token",
            doc="agent executions with sub-agents and tool calls, GET /v1/agents/{id}/executions",
            options=MappingProxyType(
                {
                    "agents": OptionSpec(
                        validate=_v_agents_or_all, default="all", doc='"all" (GET /v1/agents) or a list of agent ids'
                    ),
                    "tool_calls": OptionSpec(validate=_v_bool, default=True, doc="read each execution's tool calls"),
                    "page_size": OptionSpec(validate=_v_int(1, 1000), default=100, doc="executions per page"),
                    "lookback": _duration_option(30.0, _LOOKBACK_DOC),
                }
            ),
        ),
    }
)

# --------------------------------------------------------------------------
# Keys and defaults

TOP_KEYS: Final = frozenset({"listen", "state", "service_name", "traces", "metrics", "runs", "sources"})
STATE_KEYS: Final = frozenset({"path"})
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
METRICS_KEYS: Final = frozenset({"max_agents", "max_tools"})
RUNS_KEYS: Final = frozenset({"max_open_age"})
SOURCE_COMMON_KEYS: Final = frozenset(
    {
        "name",
        "type",
        "base_url",
        "interval",
        "timeout",
        "max_requests_per_minute",
        "start_from",
        "headers",
        "enabled",
    }
)
PROTOCOLS: Final = ("http/protobuf", "grpc", "file")

DEFAULT_LISTEN: Final = ("0.0.0.0", 9464)
DEFAULT_SERVICE_NAME: Final = "agent-activity-exporter"
DEFAULT_STATE_PATH: Final = "./exporter-state.db"
DEFAULT_TRACES_FILE: Final = "./traces.jsonl"

_ENV_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
_ENV_TRACES_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_ENV_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
_ENV_TRACES_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
_ENV_HEADERS: Final = "OTEL_EXPORTER_OTLP_HEADERS"
_ENV_TRACES_HEADERS: Final = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
_ENV_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TIMEOUT"
_ENV_TRACES_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"

# --------------------------------------------------------------------------
# Loading


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


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute, validate and resolve one configuration file.

    `env` (default `os.environ`) supplies `${VAR}` values and the
    OTEL_EXPORTER_OTLP_* variables. Raises `ConfigError` listing every
    problem found.
    """
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

    ck = _Checker()
    data = _substitute_tree(raw, "", environ, ck)
    config = _build_config(data, file, environ, ck)
    if ck.problems or config is None:
        redactor = Redactor(_raw_secrets(data, environ))
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

_VAR_TOKEN_RE: Final = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR_BODY_RE: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def _substitute(value: str, path: str, env: Mapping[str, str], ck: _Checker) -> str | _Unresolved:
    if "${" not in value:
        return value
    failed = False
    used_variable = False

    def replace(match: re.Match[str]) -> str:
        nonlocal failed, used_variable
        token = match.group(0)
        if token == "$${":
            return "${"  # the escape for a literal "${"
        body = match.group(1)
        if body is None:
            ck.add(path, "unterminated ${ (write $${ for a literal ${)")
            failed = True
            return ""
        parsed = _VAR_BODY_RE.fullmatch(body)
        if parsed is None:
            ck.add(path, f"bad variable reference {_show(token)} (use ${{NAME}} or ${{NAME:-default}})")
            failed = True
            return ""
        name, default = parsed.group(1), parsed.group(2)
        used_variable = True
        current = env.get(name)
        if default is not None:
            # As in the shell: ":-" also replaces a variable set to "".
            return current if current else default
        if current is None:
            ck.add(path, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")
            failed = True
            return ""
        return current

    result = _VAR_TOKEN_RE.sub(replace, value)
    if failed:
        return _UNRESOLVED
    return _Substituted(result) if used_variable else result


def _substitute_tree(value: object, path: str, env: Mapping[str, str], ck: _Checker) -> object:
    if isinstance(value, str):
        return _substitute(value, path, env, ck)
    if isinstance(value, dict):
        return {key: _substitute_tree(item, _join(path, str(key)), env, ck) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute_tree(item, f"{path}[{index}]", env, ck) for index, item in enumerate(value)]
    return value


def _raw_secrets(data: object, env: Mapping[str, str]) -> set[str]:
    """Secret-looking values of a config that failed validation, so that
    error messages can be redacted even though no Config was built."""
    found: set[str] = set()

    def headers(section: object) -> None:
        if isinstance(section, dict):
            for name, value in section.items():
                if isinstance(name, str) and isinstance(value, str) and is_sensitive_header(name):
                    found.update(secret_variants(value))

    if isinstance(data, dict):
        traces = data.get("traces")
        if isinstance(traces, dict):
            headers(traces.get("headers"))
        sources = data.get("sources")
        if isinstance(sources, list):
            for source in sources:
                if not isinstance(source, dict):
                    continue
                for key in {spec.secret_key for spec in SOURCE_TYPES.values()}:
                    value = source.get(key)
                    if isinstance(value, str):
                        found.add(value)
                headers(source.get("headers"))
    for var in (_ENV_HEADERS, _ENV_TRACES_HEADERS):
        for member in env.get(var, "").split(","):
            name, sep, value = member.partition("=")
            if sep and is_sensitive_header(unquote(name)):
                found.update(secret_variants(unquote(value).strip()))
    return {s for s in found if s.strip()}


# ---- building ------------------------------------------------------------


def _build_config(data: object, file: str, env: Mapping[str, str], ck: _Checker) -> Config | None:
    if data is None:
        data = {}
    if isinstance(data, _Unresolved):
        return None
    if not isinstance(data, dict):
        ck.add("", f"the top level must be a mapping with keys such as listen, traces and sources (got {_show(data)})")
        return None
    top = ck.mapping(data, "", TOP_KEYS)

    listen_host, listen_port = ck.get(top, "listen", "", _v_listen, DEFAULT_LISTEN)
    if "service_name" in top:
        service_name = ck.get(top, "service_name", "", _v_str(), DEFAULT_SERVICE_NAME)
    else:
        # The OpenTelemetry convention, so the resource matches what the
        # deployment declares; the config still wins when it says otherwise.
        service_name = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME

    state_section = ck.section(top, "state", "", STATE_KEYS)
    state = StateConfig(path=ck.get(state_section, "path", "state", _v_str(), DEFAULT_STATE_PATH))

    traces = _build_traces(ck.section(top, "traces", "", TRACES_KEYS), env, ck)

    metrics_section = ck.section(top, "metrics", "", METRICS_KEYS)
    metrics = MetricsConfig(
        max_agents=ck.get(metrics_section, "max_agents", "metrics", _v_int(1), 500),
        max_tools=ck.get(metrics_section, "max_tools", "metrics", _v_int(1), 200),
    )

    runs_section = ck.section(top, "runs", "", RUNS_KEYS)
    runs = RunsConfig(max_open_age=ck.get(runs_section, "max_open_age", "runs", _v_duration(), 6 * 3600.0))

    sources = _build_sources(top, ck)

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
    )


def _first_env(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of `names` set to a non-empty value (the OTEL spec treats an
    empty variable as unset)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _parse_w3c_headers(text: str, var: str, ck: _Checker) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_*HEADERS: `name=value,name2=value2`, URL-encoded
    (W3C baggage format). Problems name the entry, never its value."""
    out: dict[str, str] = {}
    for index, member in enumerate(text.split(","), start=1):
        if not member.strip():
            continue
        raw_name, sep, raw_value = member.partition("=")
        name = unquote(raw_name).strip().lower()
        if not sep or not _HEADER_NAME_RE.fullmatch(name):
            ck.add("traces.headers", f"{var}: entry {index} is not name=value with a valid header name")
            continue
        out[name] = unquote(raw_value).strip()
    return out


def _build_traces(section: Mapping[str, object], env: Mapping[str, str], ck: _Checker) -> TracesConfig:
    path = "traces"

    if section.get("protocol") is not None:
        protocol = ck.get(section, "protocol", path, _v_choice(PROTOCOLS), PROTOCOLS[0])
    elif found := _first_env(env, _ENV_TRACES_PROTOCOL, _ENV_PROTOCOL):
        var, protocol = found
        if protocol not in PROTOCOLS:
            ck.add("traces.protocol", f"must be one of {', '.join(PROTOCOLS)} (got {_show(protocol)} from {var})")
            protocol = PROTOCOLS[0]
    else:
        protocol = PROTOCOLS[0]

    endpoint: str | None = None
    use_as_is = False  # the signal-specific variable is a full URL already
    configured = section.get("endpoint")
    # `endpoint: ${OTLP_URL:-}` is how a template says "not set here".
    if configured is not None and not (isinstance(configured, str) and not configured.strip()):
        endpoint = ck.get(section, "endpoint", path, _v_endpoint, None)
    elif found := _first_env(env, _ENV_TRACES_ENDPOINT, _ENV_ENDPOINT):
        var, value = found
        use_as_is = var == _ENV_TRACES_ENDPOINT
        try:
            endpoint = _check_http_url(value, "traces.endpoint", ck, note=f" from {var}", example=_ENDPOINT_EXAMPLE)
        except _Invalid:
            endpoint = None

    url: str | None = None
    if endpoint is not None and protocol != "file":
        if protocol == "grpc" or use_as_is or endpoint.rstrip("/").endswith("/v1/traces"):
            url = endpoint
        else:
            url = endpoint.rstrip("/") + "/v1/traces"

    headers: dict[str, str] = {}
    for var in (_ENV_HEADERS, _ENV_TRACES_HEADERS):
        if env.get(var, "").strip():
            headers.update(_parse_w3c_headers(env[var], var, ck))
    headers.update(ck.get(section, "headers", path, _v_headers(lower=True), dict[str, str]()))

    if "timeout" in section:
        timeout = ck.get(section, "timeout", path, _v_duration(), 10.0)
    elif found := _first_env(env, _ENV_TRACES_TIMEOUT, _ENV_TIMEOUT):
        # The OTEL spec says milliseconds (the Python SDK reads seconds;
        # opentelemetry-python#4044), so we resolve it here and pass seconds.
        var, value = found
        try:
            timeout = float(value) / 1000.0
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(value)
        except ValueError:
            ck.add("traces.timeout", f"must be a positive number of milliseconds (got {_show(value)} from {var})")
            timeout = 10.0
    else:
        timeout = 10.0

    return TracesConfig(
        endpoint=endpoint,
        url=url,
        protocol=protocol,
        headers=headers,
        file=ck.get(section, "file", path, _v_str(), DEFAULT_TRACES_FILE),
        capture_content=ck.get(section, "capture_content", path, _v_bool, False),
        max_attribute_length=ck.get(section, "max_attribute_length", path, _v_int(16), 4096),
        timeout=timeout,
        outbox_max_spans=ck.get(section, "outbox_max_spans", path, _v_int(100), 100_000),
        enabled=protocol == "file" or endpoint is not None,
    )


def _build_sources(top: Mapping[str, object], ck: _Checker) -> tuple[SourceConfig, ...]:
    path = "sources"
    if "sources" not in top:
        ck.add(path, "required: a list of at least one source")
        return ()
    value = top["sources"]
    if isinstance(value, _Unresolved):
        return ()
    if not isinstance(value, list) or not value:
        ck.add(path, f"must be a non-empty list of sources (got {_show(value)})")
        return ()

    built: list[SourceConfig] = []
    first_index_of: dict[str, int] = {}
    all_built = True
    for index, item in enumerate(value):
        source_path = f"{path}[{index}]"
        name, source = _build_source(item, source_path, ck)
        if name is not None:
            if name in first_index_of:
                ck.add(
                    _join(source_path, "name"),
                    f"duplicate name {_show(name)} (also sources[{first_index_of[name]}].name); "
                    "names must be unique: they are the `source` label",
                )
            else:
                first_index_of[name] = index
        if source is None:
            all_built = False
        else:
            built.append(source)
    # Only judged when every source was understood, so a typo in `enabled`
    # is not also reported as "nothing enabled".
    if all_built and not any(source.enabled for source in built):
        ck.add(path, "at least one source must be enabled")
    return tuple(built)


def _build_source(item: object, path: str, ck: _Checker) -> tuple[str | None, SourceConfig | None]:
    """(the name if valid, for the uniqueness check; the source if valid)."""
    if not isinstance(item, dict):
        if not isinstance(item, _Unresolved):
            ck.add(path, f"must be a mapping with name, type, base_url, ... (got {_show(item)})")
        return None, None

    spec: SourceType | None = None
    type_name = item.get("type")
    if "type" not in item:
        ck.add(_join(path, "type"), f"required (one of: {', '.join(sorted(SOURCE_TYPES))})")
    elif isinstance(type_name, _Unresolved):
        pass
    elif not isinstance(type_name, str) or type_name not in SOURCE_TYPES:
        close = difflib.get_close_matches(str(type_name), sorted(SOURCE_TYPES), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        ck.add(
            _join(path, "type"),
            f"unknown source type {_show(type_name)} (valid: {', '.join(sorted(SOURCE_TYPES))}{hint})",
        )
    else:
        spec = SOURCE_TYPES[type_name]

    allowed: set[str]
    if spec is not None:
        allowed = set(SOURCE_COMMON_KEYS) | {spec.secret_key} | set(spec.options)
        other_keys: dict[str, list[str]] = {}
        for other_name, other in SOURCE_TYPES.items():
            if other is spec:
                continue
            for key in (other.secret_key, *other.options):
                if key not in allowed:
                    other_keys.setdefault(key, []).append(other_name)
        elsewhere = {key: _and_list(names) for key, names in other_keys.items()}
        # The secret's key differs by type, and difflib sees no likeness
        # between "token" and "api_key".
        hints = {
            key: spec.secret_key for key in ("api_key", "token", "key", "secret", "password") if key != spec.secret_key
        }
    else:
        # Unknown type: only keys that no type knows are worth reporting.
        allowed = set(SOURCE_COMMON_KEYS)
        for other in SOURCE_TYPES.values():
            allowed |= {other.secret_key, *other.options}
        elsewhere, hints = {}, {}

    section = ck.mapping(item, path, allowed, hints=hints, elsewhere=elsewhere)

    name: str | None = ck.get(section, "name", path, _v_name, None, required=True)
    base_url = ck.get(section, "base_url", path, _v_base_url, "", required=True)
    interval = ck.get(section, "interval", path, _v_duration(minimum=1.0), 30.0)
    timeout = ck.get(section, "timeout", path, _v_duration(), 10.0)
    budget = ck.get(section, "max_requests_per_minute", path, _v_optional(_v_int(1)), None)
    start_from = ck.get(section, "start_from", path, _v_duration(), 3600.0)
    headers = ck.get(section, "headers", path, _v_headers(lower=False), dict[str, str]())
    enabled = ck.get(section, "enabled", path, _v_bool, True)
    if spec is None or name is None:
        return name, None
    secret = ck.get(section, spec.secret_key, path, _v_secret, None, required=True)
    options = {
        key: ck.get(section, key, path, option.validate, option.default, required=option.required)
        for key, option in spec.options.items()
    }
    return name, SourceConfig(
        name=name,
        type=str(type_name),
        base_url=base_url,
        secret=secret,
        interval=interval,
        timeout=timeout,
        max_requests_per_minute=budget,
        start_from=start_from,
        headers=headers,
        enabled=enabled,
        options=MappingProxyType(options),
    )
