"""agent_activities' checkpoint: how far each agent's runs are read.

{"agents": {uid: {"watermark": iso, "inflight_wait": int,
"window": {"from": iso, "to": iso, "page": int, "per_page": int|null}}}}:
`windows.Progress` plus "inflight_wait" (quiet polls left before the next
in-flight listing). "window" is present only while a window is part-read
(with the next page to read and the server's page size then); "watermark"
once a window of the agent was read to its end; "inflight_wait" once a
poll of the agent ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from exporter.sources.windows import Progress, Window, time_or


@dataclass(slots=True)
class AgentProgress:
    """One agent's entry; the reader updates it as pages are committed."""

    progress: Progress
    read: bool  # a window was read to its end: the watermark is stored
    inflight_wait: int | None = None

    @classmethod
    def from_json(cls, data: object, default_watermark: datetime) -> AgentProgress:
        stored = data if isinstance(data, Mapping) else {}
        wait = stored.get("inflight_wait")
        return cls(
            progress=Progress.from_json(stored, default_watermark),
            read=time_or(stored.get("watermark"), None) is not None,
            inflight_wait=wait if isinstance(wait, int) else None,
        )

    def to_json(self) -> dict[str, object]:
        progress = self.progress.to_json()
        out: dict[str, object] = {"watermark": progress["watermark"]} if self.read else {}
        if self.inflight_wait is not None:
            out["inflight_wait"] = self.inflight_wait
        if "window" in progress:
            out["window"] = progress["window"]
        return out


def agents_from_json(
    checkpoint: Mapping[str, object], uids: tuple[str, ...], default_watermark: datetime
) -> dict[str, AgentProgress]:
    """The configured agents' progress (an agent never read starts at `default_watermark`)."""
    saved = checkpoint.get("agents")
    stored = saved if isinstance(saved, Mapping) else {}
    return {uid: AgentProgress.from_json(stored.get(uid), default_watermark) for uid in uids}


def to_json(agents: Mapping[str, AgentProgress]) -> dict[str, object]:
    return {"agents": {uid: agent.to_json() for uid, agent in agents.items()}}


def resume_at(window: Window) -> tuple[int, int | None]:
    """Where a window resumes: (page, the server's page size when it was committed)."""
    page, per_page = _int(window.resume.get("page")), _int(window.resume.get("per_page"))
    return page or 1, per_page


def at_page(window: Window, page: int, per_page: int) -> Window:
    """`window`, part-read: to resume at `page` of `per_page` runs."""
    return window.at(page=page, per_page=per_page)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
