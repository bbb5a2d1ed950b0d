"""bctrl's own source keys."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.options import LOOKBACK_DOC, Options, duration_option, option
from exporter.config.validators import v_choice, v_id, v_int, v_list, v_optional
from exporter.sources.bctrl.api import CATEGORIES, LEVELS


@dataclass(frozen=True, slots=True, kw_only=True)
class BctrlOptions(Options):
    # None sends no `level`, which returns every item.
    level: str | None = option(v_optional(v_choice(LEVELS)), default=None, doc="summary | debug | null (all)")
    # None sends no `categories`, so categories the vendor adds later are
    # not silently filtered out.
    categories: tuple[str, ...] | None = option(
        v_optional(v_list(v_choice(CATEGORIES))), default=None, doc="activity categories to read; null = all"
    )
    runs: tuple[str, ...] | None = option(
        v_optional(v_list(v_id)), default=None, doc="fixed run ids; null = discover runs with GET /v1/runs"
    )
    page_size: int = option(v_int(1, 1000), default=100, doc="items per page")
    lookback: float = duration_option(30.0, LOOKBACK_DOC)
