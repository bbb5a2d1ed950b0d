"""runtype executions as Runs: built once terminal, held open until then.

An execution still pending/running is held as an open run whose data is
{"x": Execution.to_data(), "root": str|null, "name": str|null,
"checked": iso (the poll that last read it), "unresolved": true?}.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from exporter.model import AttrValue, OpenRun, Run, RunStatus, ToolCall
from exporter.sources.runtype.api import ERROR_STATUSES, PLATFORM, Execution, parse_execution


@dataclass(frozen=True, slots=True)
class Held:
    """An open execution's data, as kept between polls."""

    x: Execution
    root: str | None
    name: str | None
    checked: str | None = None  # the poll (its clock reading) that last read it
    unresolved: bool = False  # the root is the highest known ancestor, not the top

    @classmethod
    def of(cls, open_run: OpenRun) -> Held:
        data = open_run.data
        return cls(
            x=parse_execution("state", data.get("x")),
            root=_opt_str(data.get("root")),
            name=_opt_str(data.get("name")),
            checked=_opt_str(data.get("checked")),
            unresolved=bool(data.get("unresolved")),
        )

    def to_data(self) -> dict[str, object]:
        data: dict[str, object] = {"x": self.x.to_data(), "root": self.root, "name": self.name, "checked": self.checked}
        if self.unresolved:
            data["unresolved"] = True
        return data


def build_run(
    source: str,
    base_url: str,
    x: Execution,
    *,
    root: str | None,
    name: str | None,
    tool_calls: tuple[ToolCall, ...],
    unresolved: bool = False,
    forced: RunStatus | None = None,
) -> Run:
    status = forced or x.status
    started = x.started_at or x.created_at
    ended: datetime | None = None
    attrs: list[tuple[str, AttrValue]] = []
    if forced is None:
        ended = x.completed_at
        if ended is None:  # terminal without completedAt: the last time we know
            ended = max([started, *(c.ended_at or c.started_at for c in tool_calls)])
            attrs.append(("agent_activity.end_time_derived", True))
    error_message = x.error
    if status in ERROR_STATUSES:
        error_message = x.error or x.stop_reason
    if x.agent_source:
        attrs.append(("agent_activity.agent_source", x.agent_source))
    if unresolved:
        attrs.append(("agent_activity.root_unresolved", True))
    return Run(
        source=source,
        platform=PLATFORM,
        base_url=base_url,
        run_id=x.id,
        agent_id=x.agent_id,
        agent_name=name or x.agent_id,
        status=status,
        raw_status=x.raw_status,
        started_at=started,
        ended_at=ended,
        root_run_id=root if x.parent_id else None,
        parent_run_id=x.parent_id,
        trigger_type=x.surface,
        error_type=status.value if status in ERROR_STATUSES else None,
        error_message=error_message,
        finish_reasons=(x.stop_reason,) if x.stop_reason else (),
        total_tokens=x.total_tokens,
        cost_usd=x.cost,
        iterations=x.iterations,
        input=x.input,
        output=x.output,
        tool_calls=tool_calls,
        attributes=tuple(attrs),
    )


def expired_run(source: str, base_url: str, held: Held) -> Run:
    """An open execution given up on, as an incomplete Run."""
    return build_run(
        source,
        base_url,
        held.x,
        root=held.root,
        name=held.name,
        tool_calls=(),
        unresolved=held.unresolved,
        forced=RunStatus.INCOMPLETE,
    )


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
