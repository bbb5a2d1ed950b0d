"""A platform's registry entry: everything the rest of the exporter needs to
know of it, in one descriptor."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import httpx

from exporter.config import SourceConfig
from exporter.config.options import Options
from exporter.sources.base import Source


class ReaderFactory(Protocol):
    def __call__(
        self, config: SourceConfig, *, transport: httpx.BaseTransport | None = ..., stop: threading.Event | None = ...
    ) -> Source: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    name: str  # the `type:` of a source
    secret_key: str  # the YAML key of its credential (api_key, token)
    doc: str  # one line: what it reads
    options: type[Options]  # its own source keys
    reader: ReaderFactory
