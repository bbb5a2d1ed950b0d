"""runtools' own source keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from exporter.config.checker import Checker, Invalid, Unresolved, join_path
from exporter.config.options import LOOKBACK_DOC, Options, duration_option, option
from exporter.config.validators import v_int, v_str
from exporter.sources.runtools.api import FILTERS


def v_filters(value: object, path: str, ck: Checker) -> Mapping[str, str]:
    section = ck.mapping(value, path, FILTERS)
    out: dict[str, str] = {}
    bad = False
    for key, item in section.items():
        if isinstance(item, Unresolved):
            bad = True
            continue
        try:
            out[key] = v_str()(item, join_path(path, key), ck)
        except Invalid:
            bad = True
    if bad:
        raise Invalid
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntoolsOptions(Options):
    filters: Mapping[str, str] = option(
        v_filters, default=MappingProxyType({}), doc="query filters of /v1/activity (resource_type, event_type, ...)"
    )
    lookback: float = duration_option(30.0, LOOKBACK_DOC)
    page_size: int = option(v_int(1, 200), default=200, doc="events per page (`limit`), 1..200")
    max_window: float = duration_option(3600.0, "a backfill is read in windows of at most this")
