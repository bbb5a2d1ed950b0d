"""The `sources` list: common keys, the platform's own keys (from its
options dataclass) and its secret, each problem named by its key path."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Final

from exporter.config.checker import Checker, Unresolved, and_list, join_path, show
from exporter.config.model import SourceConfig
from exporter.config.options import PlatformSpec
from exporter.config.validators import (
    v_base_url,
    v_bool,
    v_duration,
    v_headers,
    v_int,
    v_name,
    v_optional,
    v_rate,
    v_secret,
)

# Requests of one source in flight at once: enough to hide 50-300 ms of
# latency per request, few enough not to look like a flood to the platform.
DEFAULT_CONCURRENCY: Final = 8

SOURCE_COMMON_KEYS: Final = frozenset(
    {
        "name",
        "type",
        "base_url",
        "interval",
        "timeout",
        "max_requests_per_minute",
        "max_requests_per_second",
        "concurrency",
        "start_from",
        "headers",
        "enabled",
        "shards",
    }
)


def build_sources(
    top: Mapping[str, object], ck: Checker, platforms: Mapping[str, PlatformSpec]
) -> tuple[SourceConfig, ...]:
    path = "sources"
    if "sources" not in top:
        ck.add(path, "required: a list of at least one source")
        return ()
    value = top["sources"]
    if isinstance(value, Unresolved):
        return ()
    if not isinstance(value, list) or not value:
        ck.add(path, f"must be a non-empty list of sources (got {show(value)})")
        return ()

    built: list[SourceConfig] = []
    first_index_of: dict[str, int] = {}
    all_built = True
    for index, item in enumerate(value):
        source_path = f"{path}[{index}]"
        name, source = _build_source(item, source_path, ck, platforms)
        if name is not None:
            if name in first_index_of:
                ck.add(
                    join_path(source_path, "name"),
                    f"duplicate name {show(name)} (also sources[{first_index_of[name]}].name); "
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


def _build_source(
    item: object, path: str, ck: Checker, platforms: Mapping[str, PlatformSpec]
) -> tuple[str | None, SourceConfig | None]:
    """(the name if valid, for the uniqueness check; the source if valid)."""
    if not isinstance(item, dict):
        if not isinstance(item, Unresolved):
            ck.add(path, f"must be a mapping with name, type, base_url, ... (got {show(item)})")
        return None, None

    spec: PlatformSpec | None = None
    type_name = item.get("type")
    if "type" not in item:
        ck.add(join_path(path, "type"), f"required (one of: {', '.join(sorted(platforms))})")
    elif isinstance(type_name, Unresolved):
        pass
    elif not isinstance(type_name, str) or type_name not in platforms:
        close = difflib.get_close_matches(str(type_name), sorted(platforms), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        ck.add(
            join_path(path, "type"),
            f"unknown source type {show(type_name)} (valid: {', '.join(sorted(platforms))}{hint})",
        )
    else:
        spec = platforms[type_name]

    allowed: set[str]
    if spec is not None:
        allowed = set(SOURCE_COMMON_KEYS) | {spec.secret_key} | set(spec.options.specs())
        other_keys: dict[str, list[str]] = {}
        for other_name, other in platforms.items():
            if other is spec:
                continue
            for key in (other.secret_key, *other.options.specs()):
                if key not in allowed:
                    other_keys.setdefault(key, []).append(other_name)
        elsewhere = {key: and_list(names) for key, names in other_keys.items()}
        # The secret's key differs by type, and difflib sees no likeness
        # between "token" and "api_key".
        hints = {
            key: spec.secret_key for key in ("api_key", "token", "key", "secret", "password") if key != spec.secret_key
        }
    else:
        # Unknown type: only keys that no type knows are worth reporting.
        allowed = set(SOURCE_COMMON_KEYS)
        for other in platforms.values():
            allowed |= {other.secret_key, *other.options.specs()}
        elsewhere, hints = {}, {}

    section = ck.mapping(item, path, allowed, hints=hints, elsewhere=elsewhere)

    name: str | None = ck.get(section, "name", path, v_name, None, required=True)
    base_url = ck.get(section, "base_url", path, v_base_url, "", required=True)
    interval = ck.get(section, "interval", path, v_duration(minimum=1.0), 30.0)
    timeout = ck.get(section, "timeout", path, v_duration(), 10.0)
    budget = ck.get(section, "max_requests_per_minute", path, v_optional(v_int(1)), None)
    per_second = ck.get(section, "max_requests_per_second", path, v_optional(v_rate), None)
    concurrency = ck.get(section, "concurrency", path, v_int(1, 64), DEFAULT_CONCURRENCY)
    start_from = ck.get(section, "start_from", path, v_duration(), 3600.0)
    headers = ck.get(section, "headers", path, v_headers(lower=False), dict[str, str]())
    enabled = ck.get(section, "enabled", path, v_bool, True)
    shards = ck.get(section, "shards", path, v_int(1, 64), 1)
    if spec is not None and shards > 1 and "agents" not in spec.options.specs():
        shardable = and_list(sorted(p.name for p in platforms.values() if "agents" in p.options.specs()))
        ck.add(join_path(path, "shards"), f"only platforms read agent by agent can be sharded ({shardable})")
    if spec is None or name is None:
        return name, None
    secret = ck.get(section, spec.secret_key, path, v_secret, None, required=True)
    options = spec.options.build(section, path, ck)
    return name, SourceConfig(
        name=name,
        type=str(type_name),
        base_url=base_url,
        secret=secret,
        secret_key=spec.secret_key,
        interval=interval,
        timeout=timeout,
        max_requests_per_minute=budget,
        max_requests_per_second=per_second,
        concurrency=concurrency,
        start_from=start_from,
        headers=headers,
        enabled=enabled,
        options=options,
        shards=shards,
    )
