"""The shared platform client: retries, Retry-After, taxonomy, budget."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from exporter.retry_after import parse_retry_after
from exporter.sources.concurrency import TokenBucket
from exporter.sources.http import (
    ApiClient,
    AuthError,
    BadResponseError,
    RetryableError,
)
from tests.conftest import NoWait


def client(responses: list[httpx.Response], stop: NoWait | None = None, retries: int = 3) -> ApiClient:
    queue = list(responses)
    return ApiClient(
        source="feed",
        base_url="http://x",
        headers={"X-API-Key": "k3y-secret"},
        timeout=1.0,
        retries=retries,
        transport=httpx.MockTransport(lambda r: queue.pop(0)),
        stop=stop or NoWait(),
    )


def test_retry_after_both_forms() -> None:
    now = datetime(2026, 5, 10, tzinfo=timezone.utc)
    assert parse_retry_after("7", now.timestamp()) == 7.0
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after("soon", now.timestamp()) is None


def test_429_waits_as_told_then_succeeds() -> None:
    stop = NoWait()
    c = client([httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={"ok": 1})], stop)
    assert c.get_json("/v1/activity") == {"ok": 1}
    # The source is paused until the Retry-After has passed (measured from the answer).
    assert any(w == pytest.approx(3.0, abs=0.1) for w in stop.waits)
    assert c.stats.drain() == ({"429": 1, "200": 1}, 1)


def test_5xx_and_garbage_are_retried_then_fail() -> None:
    c = client([httpx.Response(503), httpx.Response(200, text="<html>"), httpx.Response(500), httpx.Response(502)])
    with pytest.raises(RetryableError, match="HTTP 502"):
        c.get_json("/v1/activity")


def test_garbage_that_persists_is_a_bad_response() -> None:
    c = client([httpx.Response(200, text="<html>")] * 4)
    with pytest.raises(BadResponseError, match="not JSON"):
        c.get_json("/v1/activity")


def test_auth_errors_are_not_retried_and_name_no_secret() -> None:
    c = client([httpx.Response(401, json={"error": {"message": "nope"}})])
    with pytest.raises(AuthError) as err:
        c.get_json("/v1/activity")
    assert "k3y-secret" not in str(err.value)


def test_other_4xx_is_a_bad_response_with_the_platform_message() -> None:
    c = client([httpx.Response(400, json={"error": {"code": "bad", "message": "limit must be <= 200"}})])
    with pytest.raises(BadResponseError, match="limit must be <= 200"):
        c.get_json("/v1/activity")


def test_very_long_retry_after_fails_the_poll_instead_of_stalling() -> None:
    c = client([httpx.Response(429, headers={"Retry-After": "3600"})])
    with pytest.raises(RetryableError) as err:
        c.get_json("/v1/activity")
    assert err.value.retry_after == 3600.0


def test_timeouts_are_counted_and_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=[])

    c = ApiClient(
        source="feed",
        base_url="http://x",
        headers={},
        timeout=1.0,
        transport=httpx.MockTransport(handler),
        stop=NoWait(),
    )
    assert c.get_json("/p") == []
    assert c.stats.drain()[0] == {"timeout": 1, "200": 1}


def test_budget_spaces_requests() -> None:
    now = [0.0]
    budget = TokenBucket(1.0, 60.0, clock=lambda: now[0])  # max_requests_per_minute: 60, a burst of 60
    waits = [budget.take() for _ in range(61)]
    assert waits[:60] == [0.0] * 60 and waits[60] == pytest.approx(1.0)


def test_query_parameters_reach_the_server_as_given() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    api = ApiClient(
        source="s",
        base_url="https://api.example",
        headers={},
        timeout=5.0,
        transport=httpx.MockTransport(handler),
        stop=NoWait(),
    )
    api.get_json(
        "/v1/x",
        {
            "cursor": "a+b/c==",
            "since": "2026-05-10T12:00:00.000+00:00",
            "gone": None,
            "flag": True,
            "off": False,
            "categories": ["a b", "c&d"],
            "limit": 200,
            "q": "é ü",
        },
    )
    api.get_json("/v1/y", {"cursor": None})
    params = seen[0].url.params
    assert params["cursor"] == "a+b/c==" and params["since"] == "2026-05-10T12:00:00.000+00:00"
    assert "gone" not in params and params["flag"] == "true" and params["off"] == "false"
    assert params.get_list("categories") == ["a b", "c&d"] and params["limit"] == "200" and params["q"] == "é ü"
    assert seen[0].url.path == "/v1/x" and str(seen[1].url) == "https://api.example/v1/y"
