"""What a source may read of the state: its own committed records only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from exporter.model import OpenRun
from exporter.state.store import StateStore


class SourceStateView:
    """The read-only view a source gets of its own committed state."""

    def __init__(self, store: StateStore, source: str) -> None:
        self._store = store
        self._source = source

    def open_run(self, run_id: str) -> OpenRun | None:
        return self._store.open_run(self._source, run_id)

    def open_runs(self) -> Iterator[OpenRun]:
        return self._store.open_runs(self._source)

    def finished_open_runs(self, limit: int) -> list[OpenRun]:
        return self._store.finished_open_runs(self._source, limit)

    def is_seen(self, key: str) -> bool:
        return self._store.is_seen(self._source, key)

    def seen_among(self, keys: Iterable[str]) -> set[str]:
        return self._store.seen_among(self._source, keys)

    def open_runs_among(self, run_ids: Iterable[str]) -> dict[str, OpenRun]:
        return self._store.open_runs_among(self._source, run_ids)

    def open_items_among(self, run_ids: Iterable[str]) -> dict[str, tuple[object, ...]]:
        return self._store.open_items_among(self._source, run_ids)
