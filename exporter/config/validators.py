"""The leaf validators: (value, key path, checker) -> typed value. Each
records its problem, naming the key, before it gives up (`Invalid`)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from typing import Final, TypeVar
from urllib.parse import urlsplit

from exporter.config.checker import (
    Anything,
    Checker,
    Invalid,
    Substituted,
    Unresolved,
    join_path,
    kind_of,
    scalar_from_env,
    show,
)
from exporter.config.durations import format_duration, parse_duration
from exporter.redact import is_sensitive_header, url_without_password

T = TypeVar("T")


def v_str(
    *, nonempty: bool = True, pattern: re.Pattern[str] | None = None, what: str = ""
) -> Callable[[object, str, Checker], str]:
    def validate(value: object, path: str, ck: Checker) -> str:
        if not isinstance(value, str):
            ck.fail(path, f"must be a string (got {show(value)})")
        if nonempty and not value.strip():
            ck.fail(path, "must not be empty")
        if pattern is not None and not pattern.fullmatch(value):
            ck.fail(path, f"must be {what} (got {show(value)})")
        return str(value)

    return validate


def v_trace_url(value: object, path: str, ck: Checker) -> str:
    """A link template for a trace viewer: an http(s) URL holding
    `{trace_id}` (only that is replaced: other braces, such as Grafana's
    JSON in a query, stay as written)."""
    text = v_str()(value, path, ck)
    if "{trace_id}" not in text:
        ck.fail(path, f"must contain {{trace_id}} where the trace id goes (got {show(text)})")
    if urlsplit(text).scheme not in ("http", "https"):
        ck.fail(path, f"must be an http:// or https:// URL (got {show(text)})")
    return text


def v_secret(value: object, path: str, ck: Checker) -> str:
    # Never quote the value: it is, or was meant to be, a secret.
    if not isinstance(value, str) or not value.strip():
        ck.fail(path, f"must be a non-empty string (got {kind_of(value)})")
    if value != value.strip():
        # Trailing newlines from `$(cat keyfile)` are a classic 401 cause.
        ck.fail(path, "must not start or end with whitespace")
    return str(value)


def v_choice(choices: Sequence[str]) -> Callable[[object, str, Checker], str]:
    def validate(value: object, path: str, ck: Checker) -> str:
        if not isinstance(value, str) or value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6) if isinstance(value, str) else []
            hint = f"; did you mean '{close[0]}'?" if close else ""
            ck.fail(path, f"must be one of {', '.join(choices)} (got {show(value)}{hint})")
        return str(value)

    return validate


def v_bool(value: object, path: str, ck: Checker) -> bool:
    value = scalar_from_env(value)
    if not isinstance(value, bool):
        ck.fail(path, f"must be true or false (got {show(value)})")
    return value


def v_int(lo: int | None = None, hi: int | None = None) -> Callable[[object, str, Checker], int]:
    def validate(value: object, path: str, ck: Checker) -> int:
        value = scalar_from_env(value)
        # bool is an int in Python; `max_agents: yes` is still a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            ck.fail(path, f"must be an integer (got {show(value)})")
        if lo is not None and value < lo:
            ck.fail(path, f"must be at least {lo} (got {value})")
        if hi is not None and value > hi:
            ck.fail(path, f"must be at most {hi} (got {value})")
        return value

    return validate


def v_rate(value: object, path: str, ck: Checker) -> float:
    """A positive number of requests per second (0.5 is one every two seconds)."""
    value = scalar_from_env(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        ck.fail(path, f"must be a number of requests per second, like 10 (got {show(value)})")
    if value <= 0:
        ck.fail(path, f"must be positive (got {show(value)})")
    return float(value)


def v_duration(minimum: float | None = None) -> Callable[[object, str, Checker], float]:
    def validate(value: object, path: str, ck: Checker) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ck.fail(path, f"must be a duration like 30s (got {show(value)}: add a unit, ms|s|m|h|d)")
        if not isinstance(value, str):
            ck.fail(path, f"must be a duration like 30s (got {show(value)})")
        try:
            seconds = parse_duration(value)
        except ValueError:
            ck.fail(path, f"must be a duration like 30s (got {show(value)})")
        if seconds <= 0:
            ck.fail(path, f"must be positive (got {show(value)})")
        if minimum is not None and seconds < minimum:
            ck.fail(path, f"must be at least {format_duration(minimum)} (got {show(value)})")
        return seconds

    return validate


def v_optional(inner: Callable[[object, str, Checker], T]) -> Callable[[object, str, Checker], T | None]:
    def validate(value: object, path: str, ck: Checker) -> T | None:
        # `${LIMIT:-}` expands to "": an unset variable means "no value".
        if value is None or (isinstance(value, Substituted) and value.strip() in ("", "null", "~")):
            return None
        return inner(value, path, ck)

    return validate


def v_list(
    item: Callable[[object, str, Checker], str], *, nonempty: bool = True, unique: bool = True
) -> Callable[[object, str, Checker], tuple[str, ...]]:
    def validate(value: object, path: str, ck: Checker) -> tuple[str, ...]:
        if isinstance(value, Substituted):
            # A list from one environment variable: `agents: ${AGENT_UIDS}` with "a,b,c".
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            ck.fail(path, f"must be a list (got {show(value)})")
        if nonempty and not value:
            ck.fail(path, "must not be empty")
        items: list[str] = []
        bad = False
        for index, element in enumerate(value):
            element_path = f"{path}[{index}]"
            if isinstance(element, Unresolved):
                bad = True
                continue
            try:
                checked = item(element, element_path, ck)
            except Invalid:
                bad = True
                continue
            if unique and checked in items:
                ck.add(element_path, f"duplicate {show(checked)}")
                bad = True
                continue
            items.append(checked)
        if bad:
            raise Invalid
        return tuple(items)

    return validate


HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def v_headers(*, lower: bool) -> Callable[[object, str, Checker], dict[str, str]]:
    def validate(value: object, path: str, ck: Checker) -> dict[str, str]:
        section = ck.mapping(value, path, allowed=Anything())
        out: dict[str, str] = {}
        bad = False
        for name, header_value in section.items():
            key_path = join_path(path, name)
            if not HEADER_NAME_RE.fullmatch(name):
                ck.add(key_path, "is not a valid HTTP header name")
                bad = True
                continue
            if isinstance(header_value, Unresolved):
                bad = True
                continue
            if not isinstance(header_value, str):
                shown = kind_of(header_value) if is_sensitive_header(name) else show(header_value)
                ck.add(key_path, f"must be a string (got {shown}; quote it)")
                bad = True
                continue
            if "\r" in header_value or "\n" in header_value:
                ck.add(key_path, "must not contain a line break")
                bad = True
                continue
            out[name.lower() if lower else name] = str(header_value)
        if bad:
            raise Invalid
        return out

    return validate


def _url_for_message(text: str) -> str:
    """A URL quoted for a message, with any user:password@ removed."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return show(text)
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    return show(parts.geturl())


def check_http_url(
    text: str, path: str, ck: Checker, *, note: str = "", example: str = "like https://api.example.com"
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


def v_base_url(value: object, path: str, ck: Checker) -> str:
    if not isinstance(value, str):
        ck.fail(path, f"must be an http(s) URL like https://api.example.com (got {show(value)})")
    # Stored without a trailing slash: trace ids hash the base URL (convert/traces.py),
    # so "https://x/" and "https://x" must be the same source.
    return check_http_url(value, path, ck).rstrip("/")


ENDPOINT_EXAMPLE: Final = "like http://localhost:4318"


DATABASE_EXAMPLE: Final = "like postgresql://exporter:${PGPASSWORD}@db:5432/exporter"


def v_database_url(value: object, path: str, ck: Checker) -> str:
    """A PostgreSQL URL (psycopg takes the query's connection parameters,
    such as sslmode). Messages show it with its password hidden."""
    if not isinstance(value, str) or not value.strip():
        ck.fail(path, f"must be a PostgreSQL URL {DATABASE_EXAMPLE} (got {kind_of(value)})")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as err:
        ck.fail(path, f"is not a valid URL ({err}; got {show(url_without_password(value))})")
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        ck.fail(
            path,
            f"must be a PostgreSQL URL with a database, {DATABASE_EXAMPLE} (got {show(url_without_password(value))})",
        )
    return value


def v_endpoint(value: object, path: str, ck: Checker) -> str:
    if not isinstance(value, str):
        ck.fail(path, f"must be an http(s) URL {ENDPOINT_EXAMPLE} (got {show(value)})")
    return check_http_url(value, path, ck, example=ENDPOINT_EXAMPLE)


def v_listen(value: object, path: str, ck: Checker) -> tuple[str, int]:
    message = f'must be "host:port" like "0.0.0.0:9464" (got {show(value)})'
    if not isinstance(value, str):
        ck.fail(path, message)
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        ck.fail(path, message)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        ck.fail(path, f'an IPv6 address must be in brackets, like "[::]:9464" (got {show(value)})')
    port = int(port_text)
    if port > 65535:
        ck.fail(path, f"port must be 0..65535 (got {port})")
    # ":9464" reads as "every interface", as it does for Prometheus.
    return (host or "0.0.0.0", port)


_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
# Ids go into URL paths (/api/agents/{uid}/...): no slash, no space.
_ID_RE: Final = re.compile(r"[^/\s?#]+")
v_name = v_str(pattern=_NAME_RE, what="letters, digits, '_', '.' or '-'")
v_id = v_str(pattern=_ID_RE, what="an id without '/', '?', '#' or spaces")
