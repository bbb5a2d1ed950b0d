"""runtype: agent executions with sub-agents and tool calls."""

from __future__ import annotations

from exporter.sources.platform import Platform
from exporter.sources.runtype.options import RuntypeOptions
from exporter.sources.runtype.reader import RuntypeSource

PLATFORM = Platform(
    name="runtype",
    secret_key="token",
    doc="agent executions with sub-agents and tool calls, GET /v1/agents/{id}/executions",
    options=RuntypeOptions,
    reader=RuntypeSource,
)
