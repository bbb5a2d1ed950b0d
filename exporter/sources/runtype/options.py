"""runtype's own source keys."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.checker import Checker, show
from exporter.config.options import LOOKBACK_DOC, Options, duration_option, option
from exporter.config.validators import v_bool, v_id, v_int, v_list


def v_agents_or_all(value: object, path: str, ck: Checker) -> str | tuple[str, ...]:
    if value == "all":
        return "all"
    if not isinstance(value, list):
        ck.fail(path, f'must be "all" or a list of agent ids (got {show(value)})')
    return v_list(v_id)(value, path, ck)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntypeOptions(Options):
    agents: str | tuple[str, ...] = option(
        v_agents_or_all, default="all", doc='"all" (GET /v1/agents) or a list of agent ids'
    )
    tool_calls: bool = option(v_bool, default=True, doc="read each execution's tool calls")
    page_size: int = option(v_int(1, 1000), default=100, doc="executions per page")
    lookback: float = duration_option(30.0, LOOKBACK_DOC)
