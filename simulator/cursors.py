"""Opaque cursor tokens: a small JSON object, base64url without padding.

Readers must treat them as opaque; the platform modules decide what goes in
(a position in an append-only log, the query it belongs to, a run id).
"""

from __future__ import annotations

import base64
import binascii
import json

from simulator.wire import BadRequest, JsonObject


def encode_cursor(state: JsonObject) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str) -> JsonObject:
    """The state in a cursor; BadRequest (HTTP 400) for anything unreadable."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as err:
        raise BadRequest("invalid cursor") from err
    if not isinstance(state, dict):
        raise BadRequest("invalid cursor")
    return state
