"""The simulator's latency and rate limit (simulator/limits.py), over
real HTTP on 127.0.0.1.

The delays go through a sleep function and the rate limit's windows through
a monotonic clock, both injected: the tests record or block the sleeps and
move the clock by hand, so nothing here depends on how fast the host is (one
test sleeps for real and asserts only a lower bound).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from simulator import PLATFORMS, Simulator, SimulatorOptions, parse_faults, parse_latency
from tests.unit.test_simulator import Reply, call

EPOCH = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)
PATHS = {  # one cheap list request per platform
    "runtools": "/v1/activity?limit=5",
    "bctrl": "/v1/runs?limit=5",
    "runtype": None,  # needs an agent: filled in by path_for
    "agent_activities": None,
}


def path_for(sim: Simulator, platform: str) -> str:
    if platform == "runtype":
        return f"/v1/agents/{sim.agents('runtype')[0]}/executions?limit=5"
    if platform == "agent_activities":
        return f"/api/agents/{sim.agents('agent_activities')[0]}/activities"
    path = PATHS[platform]
    assert path is not None
    return path


def get(sim: Simulator, platform: str, headers: dict[str, str] | None = None) -> Reply:
    return call(sim.url(platform) + path_for(sim, platform), sim.headers(platform) if headers is None else headers)


class FakeMonotonic:
    """A monotonic clock the test moves by hand (ns)."""

    def __init__(self, seconds: float) -> None:
        self.ns = int(seconds * 1e9)

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.delays.append(seconds)


def options(**overrides: Any) -> SimulatorOptions:
    base: dict[str, Any] = {
        "seed": 3,
        "history_runs": 20,
        "history_span_seconds": 600,
        "agents_per_platform": 2,
        "epoch": EPOCH,
    }
    return SimulatorOptions(**{**base, **overrides})


@pytest.fixture
def make_sim() -> Iterator[Any]:
    """make_sim(options, **simulator kwargs): a started, paused simulator,
    stopped after the test."""
    sims: list[Simulator] = []

    def make(opts: SimulatorOptions, **kwargs: Any) -> Simulator:
        sim = Simulator(opts, **kwargs)
        sim.pause()  # no live runs: the world is the history alone
        sim.start(host="127.0.0.1", port=0)
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


# -- parsing and options ------------------------------------------------------------------------


def test_parse_latency() -> None:
    assert parse_latency("") == parse_latency(None) == parse_latency("0") == (0.0, 0.0)
    assert parse_latency("50ms") == (0.05, 0.05)
    assert parse_latency(" 0.2s ") == (0.2, 0.2)
    assert parse_latency("50ms-300ms") == (0.05, 0.3)
    assert parse_latency("50-300ms") == (0.05, 0.3)
    assert parse_latency("0.5-1s") == (0.5, 1.0)
    assert parse_latency("50ms-1s") == (0.05, 1.0)
    for bad in ("50", "fast", "300ms-50ms", "-5ms", "50ms-", "1h", "50ms-300", "5ms-6ms-7ms"):
        with pytest.raises(ValueError, match="latency"):
            parse_latency(bad)


def test_options_reject_bad_latency_and_rate_limit() -> None:
    for bad in ((0.3, 0.05), (-0.1, 0.1)):
        with pytest.raises(ValueError, match="latency_seconds"):
            SimulatorOptions(latency_seconds=bad)
    with pytest.raises(ValueError, match="rate_limit"):
        SimulatorOptions(rate_limit=-1)


# -- latency ------------------------------------------------------------------------------------


def test_fixed_latency_delays_every_platform_request_and_not_truth_or_control(make_sim: Any) -> None:
    sleep = RecordingSleep()
    sim = make_sim(options(latency_seconds=(0.05, 0.05)), sleep=sleep)
    for platform in PLATFORMS:
        assert get(sim, platform).status == 200, platform
    assert sleep.delays == [0.05] * len(PLATFORMS)
    assert call(sim.base_url + "/_truth").status == 200
    assert call(sim.base_url + "/_control/pause", method="POST", body=b"").status == 200
    assert sleep.delays == [0.05] * len(PLATFORMS)  # neither truth nor control waited
    # Answers a reader cannot use wait too: every platform request pays the latency.
    assert get(sim, "bctrl", headers={}).status == 401
    assert len(sleep.delays) == len(PLATFORMS) + 1


def test_ranged_latency_is_drawn_from_the_seed(make_sim: Any) -> None:
    def delays(seed: int) -> list[float]:
        sleep = RecordingSleep()
        sim = make_sim(options(seed=seed, latency_seconds=(0.05, 0.3)), sleep=sleep)
        for _ in range(12):
            assert get(sim, "runtools").status == 200
        return sleep.delays

    first, again, other = delays(3), delays(3), delays(4)
    assert first == again  # reproducible: the n-th request waits the same
    assert first != other
    assert all(0.05 <= d <= 0.3 for d in first + other)
    assert len(set(first)) > 6  # drawn, not one fixed value


def test_slow_fault_adds_to_the_latency(make_sim: Any) -> None:
    sleep = RecordingSleep()
    sim = make_sim(options(latency_seconds=(0.05, 0.05), faults=parse_faults("slow=1"), slow_seconds=0.5), sleep=sleep)
    reply = get(sim, "bctrl")
    assert reply.status == 200 and reply.headers["X-Sim-Fault"] == "slow"
    assert sleep.delays == [pytest.approx(0.55)]


def test_latency_really_delays_the_answer(make_sim: Any) -> None:
    sim = make_sim(options(latency_seconds=(0.15, 0.15)))
    began = time.monotonic()
    assert get(sim, "bctrl").status == 200
    assert time.monotonic() - began >= 0.15  # a lower bound only


def test_delayed_requests_overlap_instead_of_queueing(make_sim: Any) -> None:
    # The sleep waits until two requests are inside it at once. Were the delay
    # taken under the simulator's lock (or the server not threaded), the
    # second request could never get there and the barrier would break.
    barrier = threading.Barrier(2, timeout=10)
    state = {"in_flight": 0, "most": 0}
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        assert seconds == 0.2
        with lock:
            state["in_flight"] += 1
            state["most"] = max(state["most"], state["in_flight"])
        try:
            barrier.wait()
        finally:
            with lock:
                state["in_flight"] -= 1

    sim = make_sim(options(latency_seconds=(0.2, 0.2)), sleep=sleep)
    replies: list[Reply] = []

    def request() -> None:
        replies.append(get(sim, "bctrl"))

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not barrier.broken
    assert [r.status for r in replies] == [200, 200]
    assert state["most"] == 2  # both were waiting at once: one latency, not two


# -- rate limit ---------------------------------------------------------------------------------


def test_rate_limit_answers_429_beyond_n_per_second_then_lets_requests_pass(make_sim: Any) -> None:
    clock = FakeMonotonic(1000.25)  # a quarter into a window
    sim = make_sim(options(rate_limit=3), monotonic_ns=clock)
    statuses = [get(sim, "bctrl") for _ in range(5)]
    assert [r.status for r in statuses] == [200, 200, 200, 429, 429]
    for reply in statuses[3:]:
        assert reply.headers["Retry-After"] == "1"  # integer seconds, at least 1
        assert reply.json() == {"error": {"code": "rate_limited", "message": "Too many requests, slow down"}}
        assert "X-Sim-Fault" not in reply.headers  # the limit is no fault
    # Each platform has its own budget, and its own error body.
    aa = [get(sim, "agent_activities") for _ in range(4)]
    assert [r.status for r in aa] == [200, 200, 200, 429]
    assert aa[3].json()["status_code"] == 429 and aa[3].json()["status"] == "error"
    assert aa[3].headers["Retry-After"] == "1"
    # Truth and control are never limited.
    for _ in range(5):
        assert call(sim.base_url + "/_truth").status == 200
    truth = sim.truth()["platforms"]
    assert (truth["bctrl"]["requests"], truth["bctrl"]["rate_limited"]) == (5, 2)
    assert (truth["agent_activities"]["requests"], truth["agent_activities"]["rate_limited"]) == (4, 1)
    assert truth["runtools"]["rate_limited"] == 0

    clock.advance(0.74)  # still the same window: 1000.99 s
    reply = get(sim, "bctrl")
    assert reply.status == 429 and reply.headers["Retry-After"] == "1"
    clock.advance(0.01)  # the next window: the budget is whole again
    assert [get(sim, "bctrl").status for _ in range(4)] == [200, 200, 200, 429]
    assert sim.truth()["platforms"]["bctrl"]["rate_limited"] == 4


def test_rate_limit_is_per_key(make_sim: Any) -> None:
    clock = FakeMonotonic(50.0)
    sim = make_sim(options(rate_limit=2), monotonic_ns=clock)
    assert [get(sim, "runtools").status for _ in range(3)] == [200, 200, 429]
    # Another key has a budget of its own (here spent on 401s: the limit comes before auth).
    other = {"X-API-Key": "someone-else"}
    assert [get(sim, "runtools", headers=other).status for _ in range(3)] == [401, 401, 429]


def test_control_sets_latency_and_rate_limit_at_run_time(make_sim: Any) -> None:
    clock, sleep = FakeMonotonic(7.0), RecordingSleep()
    sim = make_sim(options(), monotonic_ns=clock, sleep=sleep)
    assert [get(sim, "runtype").status for _ in range(3)] == [200, 200, 200]
    assert sleep.delays == []

    def limits(body: bytes, query: str = "") -> Reply:
        return call(sim.base_url + "/_control/limits" + query, method="POST", body=body)

    reply = limits(b'{"latency": "20ms-40ms", "rate_limit": 1}')
    assert reply.status == 200
    assert reply.json() == {"ok": True, "latency": "20ms-40ms", "rate_limit": 1}
    clock.advance(1)
    assert [get(sim, "runtype").status for _ in range(2)] == [200, 429]
    assert len(sleep.delays) == 2 and all(0.02 <= d <= 0.04 for d in sleep.delays)

    assert limits(b'{"rate_limit": 0}').json() == {"ok": True, "latency": "20ms-40ms", "rate_limit": 0}
    assert limits(b"", "?latency=0").json() == {"ok": True, "latency": "0ms", "rate_limit": 0}
    assert [get(sim, "runtype").status for _ in range(3)] == [200, 200, 200]
    assert len(sleep.delays) == 2
    for bad in (b'{"latency": "fast"}', b'{"rate_limit": -1}', b'{"rate_limit": "x"}', b'{"speed": 1}', b"[1]"):
        assert limits(bad).status == 400, bad
    assert limits(b"", "?rate_limit=x").status == 400
    assert sim.limits() == ((0.0, 0.0), 0)


# -- the simulate command -----------------------------------------------------------------------


def test_simulate_command_takes_latency_and_rate_limit() -> None:
    command = [sys.executable, "-m", "exporter.cli", "simulate", "--port", "0", "--log-format", "text"]
    bad = subprocess.run([*command, "--latency", "fast"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--latency" in bad.stderr
    bad = subprocess.run([*command, "--rate-limit", "-1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--rate-limit" in bad.stderr

    process = subprocess.Popen([*command, "--latency", "10ms", "--rate-limit", "1"], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        base = None
        deadline = time.monotonic() + 60
        while base is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            match = re.search(r"serving on (http://\S+)", line)
            base = match.group(1) if match else None
        assert base is not None, "the simulator did not say where it serves"
        headers = {"Authorization": "Bearer sim-bctrl-token"}
        began = time.monotonic()
        first = call(base + "/bctrl/v1/runs?limit=1", headers)
        assert time.monotonic() - began >= 0.01
        # Two requests well within one second (the first took ~10 ms): the
        # second is over the limit, unless a window boundary fell between them.
        statuses = [first.status] + [call(base + "/bctrl/v1/runs?limit=1", headers).status for _ in range(2)]
        assert statuses[0] == 200 and 429 in statuses
        assert call(base + "/_truth").json()["platforms"]["bctrl"]["rate_limited"] >= 1
    finally:
        process.terminate()
        process.wait(timeout=30)
