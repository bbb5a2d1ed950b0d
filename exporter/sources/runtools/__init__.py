"""runtools: the organisation-wide activity feed."""

from __future__ import annotations

from exporter.sources.platform import Platform
from exporter.sources.runtools.options import RuntoolsOptions
from exporter.sources.runtools.reader import RuntoolsSource

PLATFORM = Platform(
    name="runtools",
    secret_key="api_key",
    doc="organisation-wide activity feed, GET /v1/activity",
    options=RuntoolsOptions,
    reader=RuntoolsSource,
)
