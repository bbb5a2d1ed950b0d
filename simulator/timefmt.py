"""Timestamps as the simulated platforms write and read them.

The world keeps every time as integer milliseconds since the Unix epoch (UTC):
exact comparisons, cheap bisection, no float drift. This module turns those
integers into the text forms the platforms use, and parses query bounds back.
It deliberately does not reuse the exporter's own parsing: the simulator is
an independent reading of the platforms, so a parsing bug on the exporter's
side shows up as a disagreement instead of being shared.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_datetime(ms: int) -> datetime:
    # timedelta arithmetic is exact; datetime.fromtimestamp(ms / 1000) is not.
    return _EPOCH + timedelta(milliseconds=ms)


def from_datetime(dt: datetime) -> int:
    """Milliseconds since the epoch, truncated."""
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def iso_ms_z(ms: int) -> str:
    """`2026-05-10T12:00:00.123Z`: runtools, bctrl, runtype and the truth."""
    seconds, millis = divmod(ms, 1000)
    # time.gmtime + strftime: about three times faster than going through datetime.
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def iso_us_offset(ms: int) -> str:
    """`2026-03-19T14:30:00.123000+00:00`: agent_activities. A different form on
    purpose, so readers meet microseconds and a numeric offset (docs/platforms.md,
    "What every reader must survive")."""
    return to_datetime(ms).isoformat(timespec="microseconds")


def http_date(ms: int) -> str:
    """RFC 9110 IMF-fixdate, for Retry-After in its date form."""
    return format_datetime(to_datetime(ms).replace(microsecond=0), usegmt=True)


def parse_iso_us(text: str, *, require_tz: bool) -> int:
    """Parse an ISO 8601 timestamp into microseconds since the epoch.

    Accepts `Z` or any numeric offset and fractions of any length (digits past
    microseconds are dropped). Without an offset the value is UTC, unless
    `require_tz` is set, in which case it is rejected. Raises ValueError.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    if value[-1] in "Zz":
        value = value[:-1] + "+00:00"
    dot = value.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(value) and value[end].isdigit():
            end += 1
        digits = value[dot + 1 : end][:6]
        value = value[:dot] + ("." + digits if digits else "") + value[end:]
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        if require_tz:
            raise ValueError(f"timestamp without a timezone: {text!r}")
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def ceil_ms(us: int) -> int:
    """The first whole millisecond at or after `us` microseconds."""
    return -((-us) // 1000)


def floor_ms(us: int) -> int:
    """The last whole millisecond at or before `us` microseconds."""
    return us // 1000
