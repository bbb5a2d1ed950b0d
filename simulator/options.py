"""What a simulator is built from. Everything the world contains is a pure
function of these options and the moment the simulator starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from simulator.faults import FaultSpec

PLATFORMS: tuple[str, ...] = ("runtools", "agent_activities", "bctrl", "runtype")

# Path prefix under which each platform is served.
PREFIXES: Mapping[str, str] = MappingProxyType(
    {
        "runtools": "/runtools",
        "agent_activities": "/agent-activities",
        "bctrl": "/bctrl",
        "runtype": "/runtype",
    }
)

DEFAULT_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "runtools": "sim-runtools-key",  # sent as X-API-Key
        "agent_activities": "sim-agent_activities-token",  # the others as Authorization: Bearer
        "bctrl": "sim-bctrl-token",
        "runtype": "sim-runtype-token",
    }
)


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    seed: int = 1
    runs_per_minute: float = 30.0  # per platform; 0 starts no live runs
    run_seconds: tuple[float, float] = (2.0, 8.0)  # duration range of a run
    history_runs: int = 0  # per platform, all finished before start
    history_span_seconds: float = 3600.0  # history is spread over this long before start
    history_platforms: tuple[str, ...] = PLATFORMS  # which platforms get the history
    faults: FaultSpec = field(default_factory=FaultSpec)
    agents_per_platform: int = 4
    keys: dict[str, str] | None = None  # platform -> secret; missing ones use DEFAULT_KEYS
    # The time the simulator treats as its start; None means the wall clock at
    # start(). Pinning it makes two simulators with one seed serve identical
    # data (time then runs on from this instant at wall-clock speed).
    epoch: datetime | None = None
    slow_seconds: float = 2.0  # delay of the "slow" fault
    # Every platform request waits this long before it is answered: (low, high)
    # seconds, drawn uniformly from a seeded RNG; low == high is a fixed delay.
    latency_seconds: tuple[float, float] = (0.0, 0.0)
    # At most this many requests per second per platform and key, beyond
    # which the platform answers 429 (limits.py); 0 is no limit.
    rate_limit: int = 0

    def __post_init__(self) -> None:
        low, high = self.run_seconds
        if not 0 < low <= high:
            raise ValueError(f"run_seconds must satisfy 0 < min <= max, got {self.run_seconds}")
        if self.runs_per_minute < 0:
            raise ValueError("runs_per_minute must not be negative")
        if self.history_runs < 0:
            raise ValueError("history_runs must not be negative")
        if self.history_runs and self.history_span_seconds <= 0:
            raise ValueError("history_span_seconds must be positive when history_runs > 0")
        latency_low, latency_high = self.latency_seconds
        if not 0 <= latency_low <= latency_high:
            raise ValueError(f"latency_seconds must satisfy 0 <= min <= max, got {self.latency_seconds}")
        if self.rate_limit < 0:
            raise ValueError("rate_limit must not be negative")
        if self.agents_per_platform < 1:
            raise ValueError("agents_per_platform must be at least 1")
        if self.epoch is not None and self.epoch.tzinfo is None:
            raise ValueError("epoch must be timezone-aware")
        if set(self.history_platforms) - set(PLATFORMS):
            raise ValueError(f"history_platforms names unknown platforms: {self.history_platforms}")
        unknown = set(self.keys or {}) - set(PLATFORMS)
        if unknown:
            raise ValueError(f"keys for unknown platforms: {sorted(unknown)}")

    def key_for(self, platform: str) -> str:
        return (self.keys or {}).get(platform, DEFAULT_KEYS[platform])
