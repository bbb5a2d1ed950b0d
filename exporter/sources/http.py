"""The one HTTP client every source uses, and the one place platform errors
are mapped onto our taxonomy.

Retries 5xx, timeouts, connection resets and 429 (honouring Retry-After in
both forms) with jittered backoff; 401/403 raise AuthError at once; a body
that is not JSON raises BadResponseError after the same retries (HTML with
200 and truncated bodies are usually passing faults of a proxy).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlencode

import httpx

from exporter.config import SourceConfig
from exporter.httpx_response import released
from exporter.retry_after import parse_retry_after
from exporter.sources.concurrency import Gate, Stopped

log = logging.getLogger(__name__)

JSONValue = object  # parsed JSON: dict | list | str | int | float | bool | None

MAX_RETRY_AFTER = 60.0  # a longer wait fails the poll instead of stalling it
MAX_RATE_LIMITED = 10  # 429s one request waits out (the source paused each time) before the poll fails


class SourceError(Exception):
    """Text never holds a header, token or secret query parameter."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class RetryableError(SourceError):
    """5xx, 429, timeouts, resets: the poll failed, try again next interval."""

    def __init__(
        self, source: str, message: str, retry_after: float | None = None, *, rate_limited: bool = False
    ) -> None:
        super().__init__(source, message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited  # HTTP 429: the platform's budget, not this request, is the problem


class Stopping(SourceError):
    """The exporter is shutting down: the poll ends without counting as failed."""


class AuthError(SourceError):
    """401/403: the source is down until its key works again."""


class BadResponseError(SourceError):
    """Not the documented JSON: fail the poll, keep the checkpoint.
    `status` is set for a 4xx answer, which retrying cannot fix."""

    def __init__(self, source: str, message: str, status: int | None = None) -> None:
        super().__init__(source, message)
        self.status = status


class BadRecordError(SourceError):
    """One record that does not parse: counted, logged by id, skipped."""

    def __init__(self, source: str, reason: str, record_id: str, detail: str = "") -> None:
        super().__init__(source, f"record {record_id}: {reason} {detail}".strip())
        self.reason = reason
        self.record_id = record_id


class NotFound(BadResponseError):
    """HTTP 404: the thing asked for does not exist (or is not visible)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(source, message, status=404)


class CursorLoopError(BadResponseError):
    """The platform handed back a cursor already followed in this poll."""


@dataclass(slots=True)
class RequestStats:
    """Per-source request counters, drained into each poll's commit."""

    codes: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, code: str) -> None:
        with self._lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            if code == "429":
                self.rate_limited += 1

    def drain(self) -> tuple[dict[str, int], int]:
        with self._lock:
            codes, limited = self.codes, self.rate_limited
            self.codes, self.rate_limited = {}, 0
        return codes, limited


class ApiClient:
    """A long-lived httpx client for one source."""

    def __init__(
        self,
        *,
        source: str,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        max_requests_per_minute: int | None = None,
        max_requests_per_second: float | None = None,
        concurrency: int = 1,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.stats = RequestStats()
        self._retries = retries
        self._backoff = backoff
        self._stop = stop or threading.Event()
        # Every request of the source, from any of its threads, passes here.
        self.gate = Gate(
            concurrency, per_second=max_requests_per_second, per_minute=max_requests_per_minute, stop=self._stop
        )
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=dict(headers),  # auth built once; never logged
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport or httpx.HTTPTransport(retries=1),
            follow_redirects=False,
        )

    @classmethod
    def for_source(
        cls,
        config: SourceConfig,
        auth: Mapping[str, str],
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> ApiClient:
        """The client of one configured source: its timeout, request budget
        and extra headers, with the platform's auth header on top."""
        return cls(
            source=config.name,
            base_url=config.base_url,
            headers={**config.headers, **auth, "Accept": "application/json"},
            timeout=config.timeout,
            max_requests_per_minute=config.max_requests_per_minute,
            max_requests_per_second=config.max_requests_per_second,
            concurrency=config.concurrency,
            transport=transport,
            stop=stop,
        )

    def close(self) -> None:
        self._client.close()

    def get_json(self, path: str, params: Mapping[str, object] | None = None) -> JSONValue:
        """GET and parse JSON, retrying what is worth retrying. The error text
        names the path only: query values may carry ids but never secrets, and
        headers are never included."""
        last: SourceError | None = None
        failures = limited = 0  # a 429 is the platform's pacing, not a failure: it has its own, larger allowance
        while failures <= self._retries and limited <= MAX_RATE_LIMITED:
            if last is not None:
                self._pause(self._delay(failures, last))
            try:
                with self.gate.slot():
                    body = self._get_once(path, params)
                self.gate.answered()
                return body
            except Stopped:
                raise Stopping(self.source, "stopping") from None
            except Stopping:
                raise
            except (RetryableError, BadResponseError) as err:
                if isinstance(err, BadResponseError) and err.status is not None:
                    raise
                if isinstance(err, RetryableError) and err.rate_limited:
                    self.gate.rate_limited(err.retry_after)
                    if (err.retry_after or 0) > MAX_RETRY_AFTER:
                        raise
                    limited += 1
                else:
                    failures += 1
                last = err
                log.debug("retrying %s after: %s", path, err.message, extra={"source": self.source})
        assert last is not None
        raise last

    def _delay(self, failures: int, last: SourceError) -> float:
        if isinstance(last, RetryableError) and last.rate_limited:
            return 0.0  # the gate holds every request of the source until Retry-After has passed
        return float(self._backoff * 2.0 ** (failures - 1) * random.uniform(0.5, 1.5))

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and self._stop.wait(seconds):
            raise Stopping(self.source, "stopping")

    def _get_once(self, path: str, params: Mapping[str, object] | None) -> JSONValue:
        try:
            response = released(self._client.get(_with_query(path, params)))
        except httpx.TimeoutException:
            self.stats.count("timeout")
            raise RetryableError(self.source, f"GET {path}: timed out") from None
        except httpx.TransportError as err:
            self.stats.count("error")
            raise RetryableError(self.source, f"GET {path}: {type(err).__name__}") from None
        code = response.status_code
        self.stats.count(str(code))
        if code in (401, 403):
            raise AuthError(self.source, f"GET {path}: HTTP {code} (check the source's credentials)")
        if code == 429:
            wait = parse_retry_after(response.headers.get("retry-after"), time.time())
            raise RetryableError(self.source, f"GET {path}: HTTP 429 rate limited", retry_after=wait, rate_limited=True)
        if code >= 500:
            raise RetryableError(self.source, f"GET {path}: HTTP {code}")
        if code == 404:
            raise NotFound(self.source, f"GET {path}: HTTP 404: {_error_text(response)}")
        if code >= 400:
            raise BadResponseError(self.source, f"GET {path}: HTTP {code}: {_error_text(response)}", status=code)
        try:
            return cast(JSONValue, json.loads(response.content))
        except ValueError:
            kind = response.headers.get("content-type", "unknown content type").split(";")[0]
            raise BadResponseError(
                self.source, f"GET {path}: HTTP {code} body is not JSON ({kind}, {len(response.content)} bytes)"
            ) from None


def _with_query(path: str, params: Mapping[str, object] | None) -> str:
    """The path with its query string. Built here rather than with httpx's
    `params=`, which costs ~15 % more per request (URL merging in Python);
    None leaves a parameter out, lists repeat it, booleans are true/false."""
    items = [(k, _query_value(v)) for k, v in (params or {}).items() if v is not None]
    return f"{path}?{urlencode(items, doseq=True)}" if items else path


def _query_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_query_value(v) for v in value]
    return value


def _error_text(response: httpx.Response) -> str:
    """The platform's own error message, short; platforms' error bodies
    are {"error": {"message"}} or {"message"}."""
    try:
        body = response.json()
    except ValueError:
        return "(no JSON error body)"
    message: object = None
    if isinstance(body, dict):
        err = body.get("error")
        message = err.get("message") if isinstance(err, dict) else body.get("message")
    return str(message)[:200] if message else "(no message)"
