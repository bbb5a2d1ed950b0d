"""Requests and responses as the platform modules see them, independent of
the HTTP server: a platform turns a `Request` into a `Response`, and the fault
injector may then deform that response before it is written."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject = dict[str, JsonValue]


class BadRequest(Exception):
    """A query the platform rejects with HTTP 400."""


class NotFound(Exception):
    """A path or object the platform answers with HTTP 404."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # below the platform prefix, e.g. "/v1/activity"
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes = b""

    def arg(self, name: str) -> str | None:
        """The last value of a query parameter, None when absent."""
        values = self.query.get(name)
        return values[-1] if values else None

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, ()))

    def int_arg(self, name: str, default: int, *, minimum: int = 1) -> int:
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as err:
            raise BadRequest(f"{name} must be an integer, got {raw!r}") from err
        if value < minimum:
            raise BadRequest(f"{name} must be at least {minimum}, got {value}")
        return value

    def bool_arg(self, name: str) -> bool | None:
        raw = self.arg(name)
        if raw is None or raw == "":
            return None
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise BadRequest(f"{name} must be true or false, got {raw!r}")

    def path_parts(self) -> list[str]:
        return [part for part in self.path.split("/") if part]


@dataclass(frozen=True, slots=True)
class Listing:
    """Where a list page keeps its items and its next cursor, so the dup fault
    can repeat items without knowing the platform. `key` names the listing:
    the same path and filters, whatever the cursor or page number. `junk`,
    where the platform gives one, makes a malformed item of this listing for
    the junk fault (hostile.make_junk), from the RNG it is handed."""

    key: str
    items_path: tuple[str, ...]
    cursor_path: tuple[str, ...] | None = None
    junk: Callable[[random.Random], JsonObject] | None = None

    def items(self, payload: JsonValue) -> list[JsonValue]:
        value = _walk(payload, self.items_path)
        return list(value) if isinstance(value, list) else []

    def set_items(self, payload: JsonValue, items: list[JsonValue]) -> None:
        _assign(payload, self.items_path, items)

    def next_cursor(self, payload: JsonValue) -> JsonValue:
        return _walk(payload, self.cursor_path) if self.cursor_path else None

    def set_next_cursor(self, payload: JsonValue, cursor: JsonValue) -> None:
        if self.cursor_path:
            _assign(payload, self.cursor_path, cursor)


def _walk(payload: JsonValue, path: tuple[str, ...]) -> JsonValue:
    node = payload
    for name in path:
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def _assign(payload: JsonValue, path: tuple[str, ...], value: JsonValue) -> None:
    node = _walk(payload, path[:-1])
    if isinstance(node, dict):
        node[path[-1]] = value


@dataclass(slots=True)
class Response:
    status: int
    content_type: str = "application/json"
    payload: JsonValue = None  # JSON responses keep their value until written
    data: bytes | None = None  # anything else, already encoded
    headers: dict[str, str] = field(default_factory=dict)
    listing: Listing | None = None
    # For the backwards fault, set by platforms whose runs have a status: shows
    # one long-finished run of this response in an earlier state, with choices
    # from the RNG it is handed (hostile.pick_rewind). False: no run qualified.
    rewind: Callable[[random.Random], bool] | None = None

    @classmethod
    def json(cls, status: int, payload: JsonValue, listing: Listing | None = None) -> Response:
        return cls(status=status, payload=payload, listing=listing)

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        return cls(status=status, content_type="text/html; charset=utf-8", data=text.encode())

    @classmethod
    def raw(cls, status: int, data: bytes, content_type: str) -> Response:
        return cls(status=status, content_type=content_type, data=data)

    def body(self) -> bytes:
        if self.data is not None:
            return self.data
        return json.dumps(self.payload, separators=(",", ":")).encode()


def vendor_error(status: int, code: str, message: str) -> Response:
    """`{"error": {"code", "message"}}`: runtools, bctrl and runtype."""
    return Response.json(status, {"error": {"code": code, "message": message}})


def envelope_error(status: int, code: str, message: str) -> Response:
    """`{"status": "error", "status_code", "message"}`: agent_activities.
    `code` is unused: that platform's error body has no code field."""
    del code
    return Response.json(status, {"status": "error", "status_code": status, "message": message})


def listing_key(platform: str, request: Request, *, skip: tuple[str, ...]) -> str:
    """The identity of a listing: path and query minus the paging parameters."""
    params = sorted((k, tuple(v)) for k, v in request.query.items() if k not in skip)
    return f"{platform} {request.path.rstrip('/')} {params!r}"
