"""runtype's agents: which are read (the configured ids, or GET /v1/agents)
and how far each one's executions have been read.

Checkpoint part (each agent's progress in the shape of windows.Progress):
    "agents": {"<agent id>": {"watermark": iso,
                              "window": {"from": iso, "to": iso, "cursor": str}?,
                              "name": str?,
                              "missing_since": iso?}},  # no longer listed: not read
    "listed_at": iso?                                 # agents: all -- last GET /v1/agents
"window" is present only while a window is part-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.sources.windows import Progress, time_or

AGENT_REFRESH = timedelta(minutes=10)  # agents: all -- re-list at most this often
MISSING_KEEP = timedelta(days=1)  # agents: all -- an unlisted agent's watermark is kept this long


@dataclass(slots=True)
class Agent:
    """One agent's entry in the checkpoint."""

    progress: Progress
    name: str | None = None
    missing_since: datetime | None = None  # no longer listed: not read

    @classmethod
    def from_json(cls, data: object, start: datetime) -> Agent:
        entry = data if isinstance(data, Mapping) else {}
        name = entry.get("name")
        return cls(
            Progress.from_json(entry, start),
            name if isinstance(name, str) else None,
            time_or(entry.get("missing_since"), None),
        )

    def to_json(self) -> dict[str, object]:
        out = self.progress.to_json()
        if self.name is not None:
            out["name"] = self.name
        if self.missing_since is not None:
            out["missing_since"] = self.missing_since.isoformat()
        return out


class Agents:
    """The agents of one source, as the checkpoint keeps them. `start` is
    where an agent never read begins (now - start_from)."""

    def __init__(self, checkpoint: Mapping[str, object], start: datetime) -> None:
        stored = checkpoint.get("agents")
        self.entries: dict[str, Agent] = (
            {a: Agent.from_json(e, start) for a, e in stored.items()} if isinstance(stored, Mapping) else {}
        )
        self.listed_at: datetime | None = time_or(checkpoint.get("listed_at"), None)
        self._start = start

    def entries_json(self) -> dict[str, object]:
        return {a: e.to_json() for a, e in self.entries.items()}

    def __getitem__(self, agent_id: str) -> Agent:
        return self.entries[agent_id]

    def active(self) -> list[str]:
        return sorted(a for a, e in self.entries.items() if e.missing_since is None)

    def name(self, agent_id: str) -> str | None:
        entry = self.entries.get(agent_id)
        return entry.name if entry else None

    def configure(self, ids: tuple[str, ...]) -> bool:
        """Read exactly the configured `ids`; False when that is already so."""
        if set(ids) == set(self.entries) and self.listed_at is None:
            return False
        self.entries = {a: self.entries.get(a) or Agent(Progress(self._start)) for a in ids}
        for entry in self.entries.values():
            entry.missing_since = None  # configured: always read
        self.listed_at = None
        return True

    def listing_due(self, now: datetime) -> bool:
        return self.listed_at is None or now - self.listed_at >= AGENT_REFRESH

    def listed(self, listed: Mapping[str, str | None], now: datetime) -> None:
        """GET /v1/agents answered `listed` (id -> name). An agent that drops
        out of the list keeps its watermark for MISSING_KEEP (a passing glitch
        of the list must not make it re-read, and re-export, `start_from` of
        history)."""
        # A new agent has nothing older than the previous listing (it did not
        # exist then); on the first listing, read `start_from` back.
        start = self.listed_at or self._start
        entries: dict[str, Agent] = {}
        for agent_id, entry in self.entries.items():
            if agent_id not in listed:
                if entry.missing_since is None:
                    entry.missing_since = now
                if now - entry.missing_since < MISSING_KEEP:
                    entries[agent_id] = entry
        for agent_id, name in listed.items():
            entry = self.entries.get(agent_id) or Agent(Progress(start))
            entry.missing_since = None
            if name:
                entry.name = name
            entries[agent_id] = entry
        self.entries = entries
        self.listed_at = now

    def set_aside(self, agent_id: str, now: datetime) -> None:
        """An agent deleted since the list was read: not read until it is
        listed again, and the list is read again on the next poll."""
        self.entries[agent_id].missing_since = now
        self.listed_at = now - AGENT_REFRESH
