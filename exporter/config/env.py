"""`${VAR}` and `${VAR:-default}` in string values, and the secrets of a
file that failed to load (so its error messages can be redacted)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Final
from urllib.parse import unquote

from exporter.config.checker import UNRESOLVED, Checker, Substituted, Unresolved, join_path, show
from exporter.config.otel import ENV_HEADERS, signal_env
from exporter.redact import is_sensitive_header, secret_variants, url_password

_VAR_TOKEN_RE: Final = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR_BODY_RE: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def _substitute(value: str, path: str, env: Mapping[str, str], ck: Checker) -> str | Unresolved:
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
            ck.add(path, f"bad variable reference {show(token)} (use ${{NAME}} or ${{NAME:-default}})")
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
        return UNRESOLVED
    return Substituted(result) if used_variable else result


def substitute_tree(value: object, path: str, env: Mapping[str, str], ck: Checker) -> object:
    if isinstance(value, str):
        return _substitute(value, path, env, ck)
    if isinstance(value, dict):
        return {key: substitute_tree(item, join_path(path, str(key)), env, ck) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute_tree(item, f"{path}[{index}]", env, ck) for index, item in enumerate(value)]
    return value


def raw_secrets(data: object, env: Mapping[str, str], secret_keys: Collection[str]) -> set[str]:
    """Secret-looking values of a config that failed validation, so that
    error messages can be redacted even though no Config was built."""
    found: set[str] = set()

    def headers(section: object) -> None:
        if isinstance(section, dict):
            for name, value in section.items():
                if isinstance(name, str) and isinstance(value, str) and is_sensitive_header(name):
                    found.update(secret_variants(value))

    if isinstance(data, dict):
        state = data.get("state")
        if isinstance(state, dict) and isinstance(state.get("url"), str):
            found.update(url_password(state["url"]))
        for signal in ("traces", "logs"):
            section = data.get(signal)
            if isinstance(section, dict):
                headers(section.get("headers"))
        sources = data.get("sources")
        if isinstance(sources, list):
            for source in sources:
                if not isinstance(source, dict):
                    continue
                for key in secret_keys:
                    value = source.get(key)
                    if isinstance(value, str):
                        found.add(value)
                headers(source.get("headers"))
    for var in (ENV_HEADERS, signal_env("traces", "HEADERS"), signal_env("logs", "HEADERS")):
        for member in env.get(var, "").split(","):
            name, sep, value = member.partition("=")
            if sep and is_sensitive_header(unquote(name)):
                found.update(secret_variants(unquote(value).strip()))
    return {s for s in found if s.strip()}


# ---- building ------------------------------------------------------------
