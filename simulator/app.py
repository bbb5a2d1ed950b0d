"""`Simulator`: the four fake platforms on one port, plus the control and
truth endpoints that are part of no platform.

    /runtools/...  /agent-activities/...  /bctrl/...  /runtype/...   the platform APIs
    POST /_control/revoke?platform=P   P answers 401 until restored
    POST /_control/restore?platform=P
    POST /_control/pause               no new runs start (started ones finish)
    POST /_control/resume
    POST /_control/faults              body {"spec": "500=0.2"} replaces the fault spec
    POST /_control/limits              body {"latency": "50ms-300ms", "rate_limit": 10} sets
                                       either or both (limits.py; "0" and 0 turn them off)
    GET  /_truth[?platform=P]          what was generated and has finished (truth.py)

One lock guards the world, the fault and latency RNGs, the rate limiter and
the counters; only the delays (latency and the "slow" fault) and the writing
of bodies happen outside it, so delayed requests overlap as on a real API.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from simulator.agent_activities import AgentActivitiesApi
from simulator.bctrl import BctrlApi
from simulator.clock import SimClock
from simulator.faults import FaultInjector, FaultPlan, FaultSpec, parse_faults, too_many_requests
from simulator.limits import Latency, RateLimiter, describe_latency, parse_latency
from simulator.options import PLATFORMS, PREFIXES, SimulatorOptions
from simulator.profiles import PROFILES, make_agents
from simulator.runtools import RuntoolsApi
from simulator.runtools_events import feed_times
from simulator.runtype import RuntypeApi
from simulator.server import HttpServer, Reply
from simulator.timefmt import from_datetime, iso_ms_z
from simulator.wire import BadRequest, JsonObject, NotFound, Request, Response
from simulator.world import Store

log = logging.getLogger(__name__)


class PlatformApi(Protocol):
    platform: str

    def handle(self, request: Request, now_ms: int) -> Response: ...

    def error(self, status: int, code: str, message: str) -> Response: ...

    def truth(self, now_ms: int) -> JsonObject: ...


class Simulator:
    def __init__(
        self,
        options: SimulatorOptions | None = None,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`monotonic_ns` drives the clock (world time and the rate limit's
        windows) and `sleep` the delays; tests pass fakes."""
        self.options = options or SimulatorOptions()
        self._monotonic_ns = monotonic_ns
        self._sleep = sleep
        self._lock = threading.Lock()
        self._faults = FaultInjector(self.options.faults, self.options.seed)
        self._latency = Latency(self.options.latency_seconds, self.options.seed)
        self._limiter = RateLimiter(self.options.rate_limit)
        self._revoked: set[str] = set()
        self._requests = dict.fromkeys(PLATFORMS, 0)
        self._rate_limited = dict.fromkeys(PLATFORMS, 0)
        self._start_paused = False
        self._clock: SimClock | None = None
        self._stores: dict[str, Store] = {}
        self._apis: dict[str, PlatformApi] = {}
        self._http = HttpServer(self._dispatch)
        self._base_url: str | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Generate the world (history included) and serve it in a background
        thread. Returns the base URL, e.g. "http://127.0.0.1:PORT"."""
        with self._lock:
            if self._clock is not None:
                raise RuntimeError("simulator already started")
            epoch = self.options.epoch or datetime.now(timezone.utc)
            clock = SimClock(epoch_ms=from_datetime(epoch), monotonic_ns=self._monotonic_ns)
            if self._start_paused:
                clock.pause()
            self._clock = clock
            for platform in PLATFORMS:
                store = Store(PROFILES[platform], self.options, clock, feed_times if platform == "runtools" else None)
                self._stores[platform] = store
            self._apis = {
                "runtools": RuntoolsApi(self._stores["runtools"]),
                "agent_activities": AgentActivitiesApi(self._stores["agent_activities"]),
                "bctrl": BctrlApi(self._stores["bctrl"]),
                "runtype": RuntypeApi(self._stores["runtype"]),
            }
            # History is drawn now rather than at the first request, so that no
            # reader's first page pays for it (nor a benchmark's timing).
            started = time.monotonic()
            now = clock.now_ms()
            for store in self._stores.values():
                store.advance(now)
            if self.options.history_runs:
                log.info(
                    "generated %d history runs per platform in %.1f s",
                    self.options.history_runs,
                    time.monotonic() - started,
                )
        bound_host, bound_port = self._http.start(host, port)
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._base_url = f"http://{url_host}:{bound_port}"
        return self._base_url

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- public controls ------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("simulator not started")
        return self._base_url

    def url(self, platform: str) -> str:
        return self.base_url + PREFIXES[_known(platform)]

    def headers(self, platform: str) -> dict[str, str]:
        """The auth header a reader of `platform` must send."""
        key = self.options.key_for(_known(platform))
        if platform == "runtools":
            return {"X-API-Key": key}
        return {"Authorization": f"Bearer {key}"}

    def agents(self, platform: str) -> list[str]:
        """The agent labels of a platform (slug, uid, runtimeId or agentId);
        the only way to learn agent_activities' agents."""
        profile = PROFILES[_known(platform)]
        return [a.id for a in make_agents(self.options.seed, profile, self.options.agents_per_platform)]

    def pause(self) -> None:
        with self._lock:
            self._with_world_now()
            if self._clock is None:
                self._start_paused = True
            else:
                self._clock.pause()

    def resume(self) -> None:
        with self._lock:
            self._start_paused = False
            if self._clock is not None:
                self._clock.resume()

    def revoke(self, platform: str) -> None:
        with self._lock:
            self._revoked.add(_known(platform))

    def restore(self, platform: str) -> None:
        with self._lock:
            self._revoked.discard(_known(platform))

    def set_faults(self, spec: FaultSpec | str) -> None:
        parsed = parse_faults(spec) if isinstance(spec, str) else spec
        with self._lock:
            self._faults.spec = parsed

    def set_limits(self, latency: tuple[float, float] | str | None = None, rate_limit: int | None = None) -> None:
        """Change the latency (seconds, or a spec such as "50ms-300ms") and/or
        the rate limit (requests per second per platform and key; 0: none).
        None leaves that one as it is."""
        seconds = parse_latency(latency) if isinstance(latency, str) else latency
        if seconds is not None and not 0 <= seconds[0] <= seconds[1]:
            raise ValueError(f"latency must satisfy 0 <= min <= max, got {seconds}")
        if rate_limit is not None and rate_limit < 0:
            raise ValueError("rate_limit must not be negative")
        with self._lock:
            if seconds is not None:
                self._latency.seconds = seconds
            if rate_limit is not None:
                self._limiter.per_second = rate_limit

    def limits(self) -> tuple[tuple[float, float], int]:
        """The latency (low, high seconds) and rate limit now in force."""
        with self._lock:
            return self._latency.seconds, self._limiter.per_second

    def truth(self, platforms: Iterable[str] | None = None) -> JsonObject:
        """What has finished by now (shape in truth.py); `platforms` limits
        it to some platforms (GET /_truth?platform=P, repeatable)."""
        chosen = [_known(p) for p in platforms] if platforms else list(PLATFORMS)
        with self._lock:
            now = self._with_world_now()
            if now is None:
                raise RuntimeError("simulator not started")
            out: JsonObject = {}
            for platform in chosen:
                body = self._apis[platform].truth(now)
                body["agents"] = [a.id for a in self._stores[platform].agents]
                body["requests"] = self._requests[platform]
                body["rate_limited"] = self._rate_limited[platform]
                out[platform] = body
            return {"now": iso_ms_z(now), "platforms": out}

    def _with_world_now(self) -> int | None:
        """Bring every store up to now (caller holds the lock)."""
        if self._clock is None:
            return None
        now = self._clock.now_ms()
        for store in self._stores.values():
            store.advance(now)
        return now

    # -- HTTP ----------------------------------------------------------------

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path
        if path == "/_truth" or path.startswith("/_control/"):
            return _reply(self._control(method, path, query, body))
        for platform, prefix in PREFIXES.items():
            if path == prefix or path.startswith(prefix + "/"):
                request = Request(method, path[len(prefix) :] or "/", query, headers, body)
                return self._platform(platform, request)
        return _reply(Response.json(404, {"error": {"code": "not_found", "message": f"no platform at {path}"}}))

    def _platform(self, platform: str, request: Request) -> Reply:
        with self._lock:
            self._requests[platform] += 1
            key = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            retry_after = self._limiter.admit(platform, key, self._monotonic_ns())
            plan: FaultPlan | None = None
            if retry_after is None:
                plan = self._faults.draw()
            else:
                self._rate_limited[platform] += 1
            delay = self._latency.draw()
        if plan is not None and plan.slow:
            delay += self.options.slow_seconds
        if delay > 0:
            self._sleep(delay)  # outside the lock: other requests go on meanwhile
        if plan is None:
            # Over the rate limit: the platform's 429, before auth, faults or the world.
            log.debug("%s %s: rate limited", platform, request.path)
            return _reply(too_many_requests(self._apis[platform].error, str(retry_after)))
        with self._lock:
            now = self._with_world_now()
            assert now is not None  # requests only arrive once started
            api = self._apis[platform]
            response = self._answer(api, request, now)
            response = self._faults.apply(plan, response, api.error, now)
        if "X-Sim-Fault" in response.headers:
            log.debug("%s %s: fault %s", platform, request.path, response.headers["X-Sim-Fault"])
        return _reply(response)

    def _answer(self, api: PlatformApi, request: Request, now: int) -> Response:
        if not self._authorised(api.platform, request.headers):
            return api.error(401, "unauthorized", "Invalid or missing credentials")
        if request.method != "GET":
            return api.error(405, "method_not_allowed", f"{request.method} is not supported here")
        try:
            return api.handle(request, now)
        except BadRequest as err:
            return api.error(400, "bad_request", str(err))
        except NotFound as err:
            return api.error(404, "not_found", str(err))
        except Exception:  # a simulator bug must show as a 500 and a traceback, not kill the thread
            log.exception("%s: failed to answer %s", api.platform, request.path)
            return api.error(500, "internal_error", "Simulator error")

    def _authorised(self, platform: str, headers: Mapping[str, str]) -> bool:
        if platform in self._revoked:
            return False
        key = self.options.key_for(platform)
        if platform == "runtools":
            return headers.get("x-api-key") == key
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == key

    def _control(self, method: str, path: str, query: Mapping[str, list[str]], body: bytes) -> Response:
        if path == "/_truth":
            if method != "GET":
                return _control_error(405, "use GET")
            try:
                return Response.json(200, self.truth(query.get("platform")))
            except ValueError as err:
                return _control_error(400, str(err))
        if method != "POST":
            return _control_error(405, "use POST")
        action = path[len("/_control/") :].strip("/")
        try:
            if action in ("revoke", "restore"):
                platform = (query.get("platform") or [""])[-1]
                (self.revoke if action == "revoke" else self.restore)(platform)
                return Response.json(200, {"ok": True, "platform": platform, "revoked": action == "revoke"})
            if action == "pause":
                self.pause()
                return Response.json(200, {"ok": True, "paused": True})
            if action == "resume":
                self.resume()
                return Response.json(200, {"ok": True, "paused": False})
            if action == "limits":
                latency, rate_limit = _limits_from(body, query)
                self.set_limits(latency, rate_limit)
                seconds, per_second = self.limits()
                return Response.json(200, {"ok": True, "latency": describe_latency(seconds), "rate_limit": per_second})
            if action == "faults":
                spec = _spec_from(body, query)
                self.set_faults(spec)
                return Response.json(200, {"ok": True, "faults": parse_faults(spec).describe()})
        except ValueError as err:
            return _control_error(400, str(err))
        return _control_error(404, f"no control action {action!r}")


def _spec_from(body: bytes, query: Mapping[str, list[str]]) -> str:
    if body.strip():
        try:
            document = json.loads(body)
        except ValueError as err:
            raise ValueError(f"body is not JSON: {err}") from err
        if not isinstance(document, dict) or not isinstance(document.get("spec", ""), str):
            raise ValueError('body must be {"spec": "name=probability,..."}')
        return str(document.get("spec", ""))
    return (query.get("spec") or [""])[-1]


def _limits_from(body: bytes, query: Mapping[str, list[str]]) -> tuple[str | None, int | None]:
    """{"latency": "50ms-300ms", "rate_limit": 10} in the body (or
    ?latency=...&rate_limit=... without one); either may be left out."""
    if body.strip():
        try:
            document = json.loads(body)
        except ValueError as err:
            raise ValueError(f"body is not JSON: {err}") from err
        if not isinstance(document, dict) or set(document) - {"latency", "rate_limit"}:
            raise ValueError('body must be {"latency": "50ms-300ms", "rate_limit": N}, either key optional')
        latency, rate_limit = document.get("latency"), document.get("rate_limit")
        if latency is not None and not isinstance(latency, str):
            raise ValueError('latency must be a string such as "50ms" or "50ms-300ms"')
        if rate_limit is not None and (isinstance(rate_limit, bool) or not isinstance(rate_limit, int)):
            raise ValueError("rate_limit must be a whole number of requests per second")
        return latency, rate_limit
    latency_param = query["latency"][-1] if query.get("latency") else None
    rate_param = query["rate_limit"][-1] if query.get("rate_limit") else None
    try:
        return latency_param, int(rate_param) if rate_param is not None else None
    except ValueError as err:
        raise ValueError(f"rate_limit {rate_param!r} is not a whole number") from err


def _known(platform: str) -> str:
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")
    return platform


def _control_error(status: int, message: str) -> Response:
    return Response.json(status, {"error": {"code": "bad_request" if status == 400 else "error", "message": message}})


def _reply(response: Response) -> Reply:
    headers = {"Content-Type": response.content_type, **response.headers}
    return Reply(response.status, headers, response.body())
