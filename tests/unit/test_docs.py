"""The docs match the code: the README's metric table and the declared metrics."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.convert.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]


def readme_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\| `(agent_[a-z_]+)` \| (counter|gauge|histogram) \| ([a-z_, ]*?) ?\|", line)
        if m:
            labels = tuple(x.strip() for x in m.group(3).split(",") if x.strip())
            rows[m.group(1)] = (m.group(2), labels)
    return rows


def test_readme_metric_table_matches_the_declared_metrics() -> None:
    declared = {spec.name: (spec.kind.value, spec.labels) for spec in METRICS}
    assert readme_metrics() == declared
