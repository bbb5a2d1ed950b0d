"""agent_activities' own source keys."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.options import LOOKBACK_DOC, Options, duration_option, option
from exporter.config.validators import HEADER_NAME_RE, v_bool, v_id, v_int, v_list, v_str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentActivitiesOptions(Options):
    agents: tuple[str, ...] = option(v_list(v_id), doc="agent uids to read (no listing endpoint)")
    auth_header: str = option(
        v_str(pattern=HEADER_NAME_RE, what="an HTTP header name"),
        default="Authorization",
        doc="header that carries the token",
    )
    # Empty means the token is sent raw, without a scheme.
    auth_scheme: str = option(v_str(nonempty=False), default="Bearer", doc="scheme before the token")
    per_page: int = option(v_int(1, 1000), default=50, doc="runs per page")
    lookback: float = duration_option(30.0, LOOKBACK_DOC)
    fetch_detail: bool = option(v_bool, default=True, doc="fetch each finished run's detail (steps, tokens)")
    inflight_every: int = option(
        v_int(0, 1000), default=5, doc="list runs in flight every Nth quiet poll (1 = every poll, 0 = never)"
    )
