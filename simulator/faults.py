"""Fault injection for the platform APIs: what a platform does on a bad day
(docs/platforms.md, "What every reader must survive"), on demand.

`parse_faults("429=0.1,500=0.05,html=0.01,truncate=0.01,slow=0.05,dup=0.05")`
gives the probability of each fault per API request (names: 429, 500, html,
truncate, slow, dup, oddtime, backwards, junk). The injector draws from its
own RNG so that turning faults on or off never changes the world, nor the
truth.

- 429: the platform's error body, with Retry-After alternating between
  delta-seconds and an HTTP date;
- 500: the platform's JSON error body;
- html: status 200 with an HTML page (a proxy's error page);
- truncate: status 200 with the JSON body cut in half;
- slow: answer after a delay (2 s by default);
- dup: a list page that repeats items of the previous page of the same
  listing and, one time in four, the previous page's nextCursor as well;
- oddtime: every timestamp in the JSON body is the same instant (to the
  microsecond) in another form, one per response: a non-Z offset such as
  +05:30 or -08:00 with 3, 6 or 9 fractional digits, or Z with 9 digits
  (nine digits carry 0-499 ns below the microsecond);
- backwards: one run of the response that finished at least 5 s ago is
  shown in an earlier state (running, or pending where it had a queued
  time: end time, totals, result null), as if its status went backwards;
  the next clean response shows it finished again. agent_activities runs
  (list and detail), bctrl runs (list and GET /v1/runs/{id}), runtype
  executions (list and detail); never an activity feed (runtools events,
  bctrl activity items) nor tool calls;
- junk: a list page gets one extra malformed item at a random place: its id
  missing or not a string (null, an object, a list, true), always, and now
  and then also a garbage timestamp, an unknown enum value, a field of the
  wrong type or required fields missing. It is about no real run or event
  (made-up references containing "junk"), so a reader that rejects it (as
  it must: it has no usable id) stays equal to the truth. On runtools
  events, agent_activities runs, bctrl runs and activity items, runtype
  executions and tool calls; not on runtype's agent list.

At most one of 429/500/html/truncate applies to a request; slow and dup
combine with anything; oddtime, backwards and junk combine with each other,
slow and dup, and apply only to a 200 JSON answer that none of
429/500/html/truncate replaced. Faults never apply to /_truth or /_control
(the simulator does not route them here). Every faulted response carries
`X-Sim-Fault`, a comma list of the faults that changed it (a content fault
that found nothing to change, say backwards on a page of running runs, is
not named).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from simulator.hostile import insert_junk, oddtime
from simulator.timefmt import http_date
from simulator.wire import JsonValue, Listing, Response

# Spec names -> dataclass fields; the order is the order of the draws.
_NAMES: dict[str, str] = {
    "429": "rate_limited",
    "500": "server_error",
    "html": "html",
    "truncate": "truncate",
    "slow": "slow",
    "dup": "dup",
    "oddtime": "oddtime",
    "backwards": "backwards",
    "junk": "junk",
}
_DUP_SAME_CURSOR = 0.25  # share of dup faults that also repeat the cursor
_DUP_MEMORY = 512  # listings remembered for dup; oldest forgotten first
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class FaultSpec:
    rate_limited: float = 0.0
    server_error: float = 0.0
    html: float = 0.0
    truncate: float = 0.0
    slow: float = 0.0
    dup: float = 0.0
    oddtime: float = 0.0
    backwards: float = 0.0
    junk: float = 0.0

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))

    def describe(self) -> str:
        parts = [f"{name}={getattr(self, attr):g}" for name, attr in _NAMES.items() if getattr(self, attr) > 0]
        return ",".join(parts)


def parse_faults(spec: str | None) -> FaultSpec:
    """Parse `name=probability,...`, names among 429, 500, html, truncate,
    slow, dup, oddtime, backwards, junk (module docstring). Unknown names
    (the message lists the known ones), repeated names and probabilities
    outside [0, 1] raise ValueError; an empty spec is no faults."""
    values: dict[str, float] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in _NAMES:
            known = ", ".join(_NAMES)
            raise ValueError(f"unknown fault {part!r} (known: {known}; form name=probability)")
        attr = _NAMES[name]
        if attr in values:
            raise ValueError(f"fault {name!r} given twice")
        try:
            probability = float(raw)
        except ValueError as err:
            raise ValueError(f"fault {name!r}: {raw!r} is not a number") from err
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"fault {name!r}: probability {probability} is not within [0, 1]")
        values[attr] = probability
    return FaultSpec(**values)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults drawn for one request."""

    replace: str | None = None  # "429" | "500" | "html" | "truncate"
    slow: bool = False
    dup: bool = False
    dup_cursor: bool = False
    oddtime: bool = False
    backwards: bool = False
    junk: bool = False
    choices: int = 0  # seeds the RNG of this request's hostile choices (hostile.py)


@dataclass(frozen=True, slots=True)
class _Page:
    items: list[JsonValue]
    next_cursor: JsonValue


@dataclass(slots=True)
class FaultInjector:
    """Not thread-safe: the simulator calls it under its lock."""

    spec: FaultSpec
    seed: int
    _rng: random.Random = field(init=False)
    # The content faults (oddtime, backwards, junk) draw from a second stream,
    # so that adding them to a spec leaves the requests the older faults hit as they were.
    _hostile_rng: random.Random = field(init=False)
    _retry_as_date: bool = False
    _pages: OrderedDict[str, _Page] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}|faults")
        self._hostile_rng = random.Random(f"{self.seed}|faults|hostile")

    def draw(self) -> FaultPlan:
        if not self.spec.active:
            return FaultPlan()
        # A fixed number of draws per request keeps the sequence reproducible.
        u = [self._rng.random() for _ in range(7)]
        replace = None
        for i, name in enumerate(("429", "500", "html", "truncate")):
            if u[i] < getattr(self.spec, _NAMES[name]):
                replace = name
                break
        dup = u[5] < self.spec.dup
        h = [self._hostile_rng.random() for _ in range(3)]
        choices = self._hostile_rng.getrandbits(64)
        return FaultPlan(
            replace=replace,
            slow=u[4] < self.spec.slow,
            dup=dup,
            dup_cursor=dup and u[6] < _DUP_SAME_CURSOR,
            oddtime=h[0] < self.spec.oddtime,
            backwards=h[1] < self.spec.backwards,
            junk=h[2] < self.spec.junk,
            choices=choices,
        )

    def apply(
        self,
        plan: FaultPlan,
        response: Response,
        error: Callable[[int, str, str], Response],
        now_ms: int,
    ) -> Response:
        """The response as the faults in `plan` deform it. `error` builds the
        platform's own error body. Remembers clean list pages for later dups."""
        applied: list[str] = []
        listing = response.listing
        if listing is not None and response.status == 200 and plan.replace is None:
            # Only pages the reader actually receives count as "the previous page".
            previous = self._pages.get(listing.key)
            self._remember(listing, response.payload)
            if plan.dup and previous is not None and _add_dup(response, listing, previous, plan.dup_cursor):
                applied.append("dup")
        content = plan.oddtime or plan.backwards or plan.junk
        if content and plan.replace is None and response.status == 200 and response.data is None:
            applied += _deform(plan, response)
        if plan.replace == "429":
            response = too_many_requests(error, self._retry_after(now_ms))
            applied.append("429")
        elif plan.replace == "500":
            response = error(500, "internal_error", "Internal server error")
            applied.append("500")
        elif plan.replace == "html":
            response = Response.html(200, _HTML_PAGE)
            applied.append("html")
        elif plan.replace == "truncate" and response.status == 200:
            body = response.body()
            response = Response.raw(200, body[: len(body) // 2], "application/json")
            applied.append("truncate")
        if plan.slow:
            applied.append("slow")
        if applied:
            response.headers["X-Sim-Fault"] = ",".join(applied)
        return response

    def _retry_after(self, now_ms: int) -> str:
        # Alternate the two forms RFC 9110 allows, so readers meet both.
        as_date = self._retry_as_date
        self._retry_as_date = not as_date
        if not as_date:
            return str(RETRY_AFTER_SECONDS)
        # An HTTP date has whole seconds: one more so it is never in the past.
        return http_date(now_ms + (RETRY_AFTER_SECONDS + 1) * 1000)

    def _remember(self, listing: Listing, payload: JsonValue) -> None:
        self._pages[listing.key] = _Page(items=listing.items(payload), next_cursor=listing.next_cursor(payload))
        self._pages.move_to_end(listing.key)
        while len(self._pages) > _DUP_MEMORY:
            self._pages.popitem(last=False)


def too_many_requests(error: Callable[[int, str, str], Response], retry_after: str) -> Response:
    """The platform's 429 (`error` builds its own error body), as both the
    429 fault and the rate limit (limits.py) answer it."""
    response = error(429, "rate_limited", "Too many requests, slow down")
    response.headers["Retry-After"] = retry_after
    return response


def _deform(plan: FaultPlan, response: Response) -> list[str]:
    """The content faults, in place on this request's own payload (items
    are replaced, never mutated: the dup memory holds the clean ones).
    Returns the names of those that changed something."""
    applied: list[str] = []
    rng = random.Random(plan.choices)
    if plan.backwards and response.rewind is not None and response.rewind(rng):
        applied.append("backwards")
    listing = response.listing
    if plan.junk and listing is not None and listing.junk is not None:
        listing.set_items(response.payload, insert_junk(listing.items(response.payload), listing.junk(rng), rng))
        applied.append("junk")
    if plan.oddtime:
        payload, rewritten = oddtime(response.payload, rng)
        if rewritten:
            response.payload = payload
            applied.append("oddtime")
    return applied


def _add_dup(response: Response, listing: Listing, previous: _Page, same_cursor: bool) -> bool:
    """Put up to three items of the previous page in front of this page's own.
    The payload is this request's alone, so it is changed in place; the items
    remembered for the next dup are the clean ones, taken before."""
    repeated = previous.items[-3:]
    if not repeated:
        return False
    listing.set_items(response.payload, repeated + listing.items(response.payload))
    if same_cursor and previous.next_cursor is not None:
        listing.set_next_cursor(response.payload, previous.next_cursor)
    return True


_HTML_PAGE = """<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><h1>502 Bad Gateway</h1><p>The upstream server is temporarily unavailable.
Please try again in a few moments.</p><hr><address>edge-proxy</address></body></html>
"""
