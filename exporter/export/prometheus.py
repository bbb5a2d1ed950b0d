"""Committed metric totals and the Prometheus collector that renders them.

The database is the truth: `MetricsBook` holds the totals last committed to
state (loaded at start), stages a poll's updates as new absolute values for
the same transaction, and publishes them only after the commit. Scrapes read
an immutable snapshot swapped in after each commit, so a scrape never waits
on a poll and never sees half of one.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar

from exporter.convert.metrics import METRICS, SPECS, Kind, MetricSpec, Op, Update

SeriesKey = tuple[str, tuple[str, ...]]
OTHER = "other"


@dataclass(frozen=True, slots=True)
class Histogram:
    counts: tuple[int, ...]  # per bucket, not cumulative; last is +Inf
    sum: float
    exemplars: tuple[tuple[str, float, float] | None, ...]  # (trace_id, value, unix time) per bucket

    def to_json(self) -> dict[str, object]:
        return {"c": list(self.counts), "s": self.sum, "x": [list(x) if x else None for x in self.exemplars]}

    @staticmethod
    def from_json(data: object, buckets: int) -> Histogram:
        if isinstance(data, dict) and len(data.get("c", ())) == buckets + 1:
            ex = tuple((str(x[0]), float(x[1]), float(x[2])) if x else None for x in data["x"])
            return Histogram(tuple(int(c) for c in data["c"]), float(data["s"]), ex)
        return Histogram((0,) * (buckets + 1), 0.0, (None,) * (buckets + 1))


class MetricsBook:
    """`shared`: replicas share the state (PostgreSQL). Then the book holds
    only the series of the sources this replica reads (`adopt` on taking a
    source's lease, `forget` on losing it), and a series without a source
    label is this process's own: counted from 0, never stored, as two
    replicas would otherwise write one row."""

    def __init__(
        self, persisted: Mapping[SeriesKey, object], *, max_agents: int, max_tools: int, shared: bool = False
    ) -> None:
        self._lock = threading.Lock()
        self._values: dict[SeriesKey, object] = {}
        self._live: dict[SeriesKey, float] = {}
        self._caps = {"agent": max_agents, "tool": max_tools}
        self._shared = shared
        # Admitted values per (label, source): the cap is per source, and is
        # rebuilt from the persisted series so it holds across restarts.
        self._admitted: dict[tuple[str, str], set[str]] = {}
        self._load(persisted.items())
        self._snapshot: Mapping[SeriesKey, object] = MappingProxyType(dict(self._values))

    def _load(self, persisted: Iterable[tuple[SeriesKey, object]]) -> None:
        for (name, labels), value in persisted:
            spec = SPECS.get(name)
            if spec is None or not spec.persisted or len(labels) != len(spec.labels):
                continue  # a metric this version no longer has
            self._values[(name, labels)] = (
                Histogram.from_json(value, len(spec.buckets)) if spec.kind is Kind.HISTOGRAM else float(value)  # type: ignore[arg-type]
            )
            self._capped(spec.labels, labels)

    # -- a source's series coming and going (replicas; under the commit lock) -

    def adopt(self, source: str, persisted: Mapping[SeriesKey, object]) -> None:
        """Take on a source's series at their stored totals (of `persisted`,
        only those of `source`), replacing what the book had of it."""
        self.forget(source)
        with self._lock:
            self._load((k, v) for k, v in persisted.items() if _source_of(k) == source)
            self._snapshot = MappingProxyType(dict(self._values))

    def forget(self, source: str) -> None:
        """Stop showing a source's series (stored and live): another replica reads it now."""
        with self._lock:
            for store in (self._values, self._live):
                for key in [k for k in store if _source_of(k) == source]:
                    del store[key]
            for capped in [k for k in self._admitted if k[1] == source]:
                del self._admitted[capped]
            self._snapshot = MappingProxyType(dict(self._values))

    # -- staging and publishing (by pipeline.Recorder, under its commit lock) -

    def stage(self, updates: Iterable[Update]) -> dict[SeriesKey, object]:
        """New absolute values of every series the updates touch, not yet
        visible: written to state in the poll's transaction, then `publish`ed."""
        staged: dict[SeriesKey, object] = {}
        for u in updates:
            spec = SPECS[u.name]
            key = (u.name, self._capped(spec.labels, u.labels))
            current = staged.get(key, self._values.get(key))
            staged[key] = _apply(spec.kind, spec.buckets, u, current)
        return staged

    def publish(self, staged: Mapping[SeriesKey, object]) -> None:
        if not staged:
            return
        with self._lock:
            self._values.update(staged)
            self._snapshot = MappingProxyType(dict(self._values))

    def persisted_form(self, staged: Mapping[SeriesKey, object]) -> dict[SeriesKey, object]:
        return {
            k: (v.to_json() if isinstance(v, Histogram) else v)
            for k, v in staged.items()
            if not self._shared or _source_of(k) is not None
        }

    def _capped(self, names: tuple[str, ...], values: tuple[str, ...]) -> tuple[str, ...]:
        """Bound label cardinality: past the cap, new agents and tools are 'other'."""
        if not self._caps.keys() & names:
            return values  # the usual case for self-metrics: nothing to cap
        out = list(values)
        source = values[names.index("source")] if "source" in names else ""
        for i, label in enumerate(names):
            if label in self._caps and out[i] != OTHER:
                admitted = self._admitted.setdefault((label, source), set())
                if out[i] not in admitted:
                    if len(admitted) >= self._caps[label]:
                        out[i] = OTHER
                    else:
                        admitted.add(out[i])
        return tuple(out)

    # -- live gauges ---------------------------------------------------------

    def set_live(self, name: str, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._live[(name, labels)] = value

    def replace_live(self, name: str, prefix: tuple[str, ...], values: Mapping[tuple[str, ...], float]) -> None:
        """Replace every live series of `name` whose labels start with prefix."""
        spec = SPECS[name]
        with self._lock:
            for key in [k for k in self._live if k[0] == name and k[1][: len(prefix)] == prefix]:
                self._live[key] = 0.0  # stays at 0 rather than vanishing: absent must not read as "none"
            for labels, value in values.items():
                key = (name, self._capped(spec.labels, labels))
                self._live[key] = self._live.get(key, 0.0) + value

    # -- reading -------------------------------------------------------------

    def snapshot(self) -> tuple[Mapping[SeriesKey, object], dict[SeriesKey, float]]:
        with self._lock:
            return self._snapshot, dict(self._live)

    def value(self, name: str, labels: tuple[str, ...]) -> object:
        values, live = self.snapshot()
        return live.get((name, labels), values.get((name, labels)))


def _source_of(key: SeriesKey) -> str | None:
    """The series' source label, if its metric has one."""
    spec = SPECS.get(key[0])
    if spec is None or "source" not in spec.labels or len(key[1]) != len(spec.labels):
        return None
    return key[1][spec.labels.index("source")]


def _apply(kind: Kind, buckets: tuple[float, ...], u: Update, current: object) -> object:
    if kind is Kind.HISTOGRAM:
        h = current if isinstance(current, Histogram) else Histogram.from_json(None, len(buckets))
        index = bisect_left(buckets, u.value)  # the first bucket with value <= bound; len(buckets): +Inf
        counts = list(h.counts)
        counts[index] += 1
        exemplars = list(h.exemplars)
        if u.exemplar:
            exemplars[index] = (u.exemplar, u.value, time.time())
        return Histogram(tuple(counts), h.sum + u.value, tuple(exemplars))
    base = float(current) if isinstance(current, (int, float)) else 0.0
    if u.op is Op.INC:
        return base + u.value
    if u.op is Op.MAX:
        return max(base, u.value)
    return u.value


class ActivityCollector:
    """Renders the last published snapshot; cheap, thread-safe, no I/O.

    # HELP agent_runs_total Agent runs that ended, by normalised status.
    # TYPE agent_runs_total counter
    agent_runs_total{agent="triage",platform="runtools",source="feed",status="succeeded"} 12.0
    """

    def __init__(self, book: MetricsBook) -> None:
        self._book = book

    def collect(self) -> Iterator[Metric]:
        values, live = self._book.snapshot()
        by_name: dict[str, list[tuple[tuple[str, ...], object]]] = {}
        for (name, labels), value in [*values.items(), *live.items()]:
            by_name.setdefault(name, []).append((labels, value))
        for spec in METRICS:
            yield _family(spec, sorted(by_name.get(spec.name, []), key=lambda item: item[0]))


def _family(spec: MetricSpec, series: list[tuple[tuple[str, ...], object]]) -> Metric:
    labels = list(spec.labels)
    if spec.kind is Kind.COUNTER:
        fam: Metric = CounterMetricFamily(spec.name.removesuffix("_total"), spec.help, labels=labels)
        for values, value in series:
            fam.add_metric(list(values), float(value))  # type: ignore[arg-type, attr-defined]
        return fam
    if spec.kind is Kind.GAUGE:
        gauge = GaugeMetricFamily(spec.name, spec.help, labels=labels)
        for values, value in series:
            gauge.add_metric(list(values), float(value))  # type: ignore[arg-type]
        return gauge
    hist = HistogramMetricFamily(spec.name, spec.help, labels=labels)
    for values, value in series:
        assert isinstance(value, Histogram)
        hist.add_metric(list(values), _cumulative(spec.buckets, value), value.sum)
    return hist


def _cumulative(buckets: tuple[float, ...], h: Histogram) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
    out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
    running = 0
    for i, bound in enumerate([*[_fmt(b) for b in buckets], "+Inf"]):
        running += h.counts[i]
        ex = h.exemplars[i]
        if ex:
            out.append((bound, float(running), Exemplar({"trace_id": ex[0]}, ex[1], ex[2])))
        else:
            out.append((bound, float(running)))
    return out


def _fmt(bound: float) -> str:
    return repr(float(bound))
