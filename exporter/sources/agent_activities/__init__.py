"""agent_activities: per-agent run lists and run details."""

from __future__ import annotations

from exporter.sources.agent_activities.options import AgentActivitiesOptions
from exporter.sources.agent_activities.reader import AgentActivitiesSource
from exporter.sources.platform import Platform

PLATFORM = Platform(
    name="agent_activities",
    secret_key="token",
    doc="per-agent run list and run detail, GET /api/agents/{uid}/activities",
    options=AgentActivitiesOptions,
    reader=AgentActivitiesSource,
)
