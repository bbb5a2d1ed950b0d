"""The exporter as a test or a benchmark drives it from outside: a free
loopback port to listen on, a config file, its /metrics text parsed."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path, sources: list[dict[str, object]], *, port: int, traces: dict[str, object], **top: object
) -> Path:
    config = {
        "listen": f"127.0.0.1:{port}",
        "state": {"path": str(path.parent / "state.db")},
        "traces": traces,
        "sources": sources,
        **top,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def parse_metrics(text: str) -> Metrics:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
