"""The gate every request of a source passes, and the ordered worker map."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from exporter.sources.concurrency import Gate, Stopped, Workers
from exporter.sources.http import ApiClient
from tests.conftest import NoWait


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_429_halves_the_limit_once_per_pause_and_clean_rounds_grow_it_back() -> None:
    clock = Clock()
    gate = Gate(8, clock=clock, stop=NoWait())
    seen: list[tuple[int, int]] = []
    gate.watch(lambda in_flight, limit: seen.append((in_flight, limit)))
    gate.rate_limited(2.0)
    gate.rate_limited(2.0)  # a second answer of the same burst: the same signal
    assert gate.limit == 4
    clock.now += 3.0
    gate.rate_limited(None)  # a new pause: cut again
    assert gate.limit == 2
    for _ in range(5):
        gate.answered()
    assert gate.limit == 2  # clean answers, but within GROW_EVERY of the cut
    clock.now += 1.0
    gate.answered()
    assert gate.limit == 3  # one more after `limit` clean answers, a second on
    for _ in range(10):
        clock.now += 1.0
        for _ in range(8):
            gate.answered()
    assert gate.limit == 8  # never above the configured concurrency
    assert seen[-1] == (0, 8)


def test_a_paused_source_waits_out_the_retry_after_before_any_request() -> None:
    stop = NoWait()
    clock = Clock()
    gate = Gate(4, clock=clock, stop=stop)
    gate.rate_limited(5.0)
    with gate.slot():
        pass
    assert stop.waits == [pytest.approx(5.0)]
    stop.waits.clear()
    clock.now += 6.0
    with gate.slot():
        pass
    assert stop.waits == []  # the pause is over: no wait


def test_no_more_than_the_limit_are_in_flight() -> None:
    gate = Gate(3)
    peak, lock = [0], threading.Lock()
    release = threading.Event()
    entered = threading.Semaphore(0)

    def request() -> None:
        with gate.slot():
            with lock:
                peak[0] = max(peak[0], gate.in_flight)
            entered.release()
            release.wait(5)

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for _ in range(3):
        assert entered.acquire(timeout=5)
    assert not entered.acquire(timeout=0.2)  # the fourth waits at the gate
    release.set()
    for t in threads:
        t.join(5)
    assert peak[0] == 3 and gate.in_flight == 0


def test_a_token_bucket_spaces_requests_out() -> None:
    stop = NoWait()
    gate = Gate(8, per_second=2.0, clock=Clock(), stop=stop)
    for _ in range(4):
        with gate.slot():
            pass
    # A burst of two, then one every half second (the clock stands still).
    assert stop.waits == [pytest.approx(0.5), pytest.approx(1.0)]


def test_stopping_ends_a_wait_at_the_gate() -> None:
    stop = threading.Event()
    gate = Gate(1, stop=stop)
    gate.rate_limited(60.0)
    stop.set()
    with pytest.raises(Stopped), gate.slot():
        pass


def test_map_ordered_overlaps_the_work_and_keeps_the_order() -> None:
    workers = Workers(4, "t")
    barrier = threading.Barrier(4, timeout=5)

    def fetch(n: int) -> int:
        if n < 4:
            barrier.wait()  # only passes when four run at once
        return n * n

    try:
        assert list(workers.map_ordered(fetch, range(10))) == [n * n for n in range(10)]
    finally:
        workers.close()


@pytest.mark.parametrize(("ahead", "done_while_held"), [(None, 1), (6, 5)])
def test_map_ordered_works_ahead_while_a_result_is_held(ahead: int | None, done_while_held: int) -> None:
    """While the caller works on the first result, the workers go on with
    the items after it: `size - 1` of them by default, `ahead - 1` when asked
    (the items are read no further ahead than that)."""
    workers = Workers(2, "t")
    done = threading.Semaphore(0)
    read: list[int] = []

    def items() -> Iterator[int]:
        for n in range(20):
            read.append(n)
            yield n

    def fetch(n: int) -> int:
        if n > 0:
            done.release()
        return n

    results = workers.map_ordered(fetch, items(), ahead)
    try:
        assert next(results) == 0  # held: the generator is not resumed until the waits below are over
        for _ in range(done_while_held):
            assert done.acquire(timeout=5)
        assert len(read) == (ahead or 2)  # and read no further
        assert list(results) == list(range(1, 20))
    finally:
        workers.close()


def test_map_ordered_raises_in_the_place_of_the_failed_item() -> None:
    workers = Workers(3, "t")

    def fetch(n: int) -> int:
        if n == 2:
            raise ValueError("item 2")
        return n

    results = workers.map_ordered(fetch, range(6))
    try:
        assert next(results) == 0 and next(results) == 1
        with pytest.raises(ValueError, match="item 2"):
            next(results)
    finally:
        workers.close()


def test_the_client_pauses_the_source_on_429_and_cuts_its_limit() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json=[])]
    stop = NoWait()
    client = ApiClient(
        source="s",
        base_url="http://x.test",
        headers={},
        timeout=1.0,
        concurrency=8,
        transport=httpx.MockTransport(lambda r: answers.pop(0)),
        stop=stop,
    )
    assert client.get_json("/p") == []
    assert client.gate.limit == 4
    assert any(w == pytest.approx(2.0, abs=0.1) for w in stop.waits)
