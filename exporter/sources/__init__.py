"""The factory table: each `type:` of source maps to the class that reads it.
A new platform is one module plus one entry here (and its options in config)."""

from __future__ import annotations

import threading
from typing import Protocol

import httpx

from exporter.config import SourceConfig
from exporter.sources.agent_activities import AgentActivitiesSource
from exporter.sources.base import Source
from exporter.sources.bctrl import BctrlSource
from exporter.sources.runtools import RuntoolsSource
from exporter.sources.runtype import RuntypeSource


class SourceFactory(Protocol):
    def __call__(
        self, config: SourceConfig, *, transport: httpx.BaseTransport | None = ..., stop: threading.Event | None = ...
    ) -> Source: ...


SOURCES: dict[str, SourceFactory] = {
    "runtools": RuntoolsSource,
    "agent_activities": AgentActivitiesSource,
    "bctrl": BctrlSource,
    "runtype": RuntypeSource,
}


def build_source(config: SourceConfig, stop: threading.Event | None = None) -> Source:
    try:
        factory = SOURCES[config.type]
    except KeyError:
        raise ValueError(f"source {config.name}: type {config.type!r} is not implemented yet") from None
    return factory(config, stop=stop)
