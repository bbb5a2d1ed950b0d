"""Durations as the configuration writes them: `<number><unit>`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_UNIT_SECONDS: Final[Mapping[str, float]] = MappingProxyType(
    {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
)


def parse_duration(text: str) -> float:
    """`<number><unit>` (unit ms|s|m|h|d) -> seconds, e.g. "30s" -> 30.0.

    A bare number is an error: "30" could mean seconds or milliseconds, and
    the OTEL variables alone already disagree about that.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r} (expected <number><unit> like 30s)")
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (expected <number><unit>, unit ms|s|m|h|d, like 30s)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration`, in the largest exact unit (21600 -> "6h")."""
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and math.isclose(count, round(count), abs_tol=1e-9):
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


# --------------------------------------------------------------------------
# The typed configuration
