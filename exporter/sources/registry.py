"""The one list of platforms. Config, the CLI, tests and benchmarks read it;
a new platform is a package under exporter/sources/ plus one line here."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from exporter.config import SourceConfig
from exporter.sources import agent_activities, bctrl, runtools, runtype
from exporter.sources.base import Source
from exporter.sources.platform import Platform

PLATFORMS: Final[Mapping[str, Platform]] = MappingProxyType(
    {p.name: p for p in (runtools.PLATFORM, agent_activities.PLATFORM, bctrl.PLATFORM, runtype.PLATFORM)}
)


def build_source(
    config: SourceConfig, stop: threading.Event | None = None, platforms: Mapping[str, Platform] = PLATFORMS
) -> Source:
    try:
        platform = platforms[config.type]
    except KeyError:
        raise ValueError(f"source {config.name}: type {config.type!r} is not implemented yet") from None
    return platform.reader(config, stop=stop)
