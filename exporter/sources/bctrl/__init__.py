"""bctrl: browser and desktop runtime runs and their activity."""

from __future__ import annotations

from exporter.sources.bctrl.options import BctrlOptions
from exporter.sources.bctrl.reader import BctrlSource
from exporter.sources.platform import Platform

PLATFORM = Platform(
    name="bctrl",
    secret_key="token",
    doc="browser/desktop runtime runs and their activity, GET /v1/runs/{id}/activity",
    options=BctrlOptions,
    reader=BctrlSource,
)
