"""Shared test helpers: config objects without YAML, a polling wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import MappingProxyType
from typing import TypeVar

from exporter.config import SourceConfig

T = TypeVar("T")


def source_config(type_: str = "runtools", base_url: str = "http://platform.test", name: str = "feed",
                  secret: str = "s3cret-key-value", start_from: float = 3600.0, **options: object) -> SourceConfig:
    return SourceConfig(name=name, type=type_, base_url=base_url, secret=secret, interval=1.0, timeout=5.0,
                        max_requests_per_minute=None, start_from=start_from, headers={}, enabled=True,
                        options=MappingProxyType(dict(options)))


def wait_for(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


SEEDS = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "seeds"


def seed_json_blocks(prefix: str) -> list[object]:
    """Every JSON object example in the vendor's seed page(s) `prefix*`,
    read from ../shared/seeds as shipped (line-numbered listings included)."""
    import json
    import re

    blocks: list[object] = []
    for path in sorted(SEEDS.glob(f"{prefix}*.txt")):
        text = path.read_text()
        # Some pages number their code lines ("12 "): drop those prefixes.
        text = re.sub(r"(?m)^\d+\s?(?=[{}\[\]\"]|$)", "", text)
        decoder = json.JSONDecoder()
        i = 0
        while (i := text.find("{", i)) != -1:
            try:
                obj, end = decoder.raw_decode(text, i)
            except ValueError:
                i += 1
                continue
            if isinstance(obj, dict) and obj:
                blocks.append(obj)
            i = end
    return blocks


class NoWait(__import__("threading").Event):
    """A stop event for unit tests: retry back-offs and Retry-After waits
    return at once (and are recorded) instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False
