"""The simulated world: agents and their runs, generated from the seed.

Every platform has its own `Store`. Runs are drawn as compact `RunSpec`s
(times as integer ms, tool calls as small tuples) and are rendered into each
platform's JSON only when a page is served. A store learns what has become
visible by "now" through one heap of pending visibility moments (a run
created, a run ended, a feed entry occurred); each moment is appended to an
append-only log sorted by time when its time comes. Because a run is only
generated once its creation is due and every one of its moments lies at or
after its creation, those logs only ever grow at the end: that is what makes
positions in them usable as stable cursors, and pages a bisection away.

Runs start as a Poisson process at `runs_per_minute` per platform from the
start of the simulator (in virtual time, see clock.py); `history_runs` more
are spread over `history_span_seconds` before the start, all finished.
"""

from __future__ import annotations

import heapq
import logging
import random
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from exporter.simulator.clock import SimClock
from exporter.simulator.options import SimulatorOptions

log = logging.getLogger(__name__)

OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "cancelled", "timed_out")

# A visibility moment is one int: (ms << _SHIFT) | ((seq * 32 + k) * 4 + kind).
# Ints order by time first, then by run and entry, so equal times publish in a
# fixed order, and a pending history of 400,000 moments stays a plain list of
# ints (a tuple per moment would take four times the memory).
_CREATED, _ENDED, _FEED = 0, 1, 2
MAX_FEED_PER_RUN = 32
_SHIFT = 36
_LOW = (1 << _SHIFT) - 1


@dataclass(frozen=True, slots=True)
class AgentSpec:
    id: str  # the platform's id: slug, uuid, runtimeId or agentId
    name: str
    kind: str  # bctrl runtimeKind; "agent" elsewhere
    tools: tuple[str, ...]
    version_id: str  # agent_activities agent_version_uid
    space_id: str  # bctrl spaceId
    model: str  # runtype model


@dataclass(frozen=True, slots=True)
class ToolSpec:
    call_id: str  # "" where the platform gives tool calls no id
    name: str
    start_ms: int
    end_ms: int
    failed: bool


@dataclass(frozen=True, slots=True)
class RunSpec:
    seq: int  # position in Store.runs
    run_id: str
    agent: int  # index into Store.agents
    created_ms: int
    start_ms: int
    end_ms: int
    outcome: str  # one of OUTCOMES
    tools: tuple[ToolSpec, ...]
    marks: tuple[int, ...]  # moments of messages / notes inside the run
    input_tokens: int
    output_tokens: int
    cost_micros: int  # USD * 1e6, the run's own (sub-agents not included)
    parent: int | None  # seq of the run that spawned this one
    root: int | None  # seq of the top-level run of its trace
    children: tuple[int, ...]
    sandbox: bool
    flavor: int  # random bits for presentational choices (titles, payloads, forms)

    def status_at(self, now_ms: int) -> str:
        """pending | running | the outcome."""
        if now_ms < self.start_ms:
            return "pending"
        if now_ms < self.end_ms:
            return "running"
        return self.outcome

    def ended_by(self, now_ms: int) -> bool:
        return self.end_ms <= now_ms


@dataclass(frozen=True, slots=True)
class Profile:
    """How one platform's runs differ from another's."""

    platform: str
    outcomes: tuple[float, ...]  # weights aligned with OUTCOMES
    start_delay_ms: tuple[int, int]  # created -> started
    run_id: Callable[[random.Random], str]
    tool_id: Callable[[random.Random], str] | None
    agent_id: Callable[[random.Random, int], str]
    names: tuple[str, ...]
    tool_sets: dict[str, tuple[str, ...]]  # agent kind -> tools it may call
    subagent_prob: float = 0.0
    sandbox_prob: float = 0.0


def _hex(prefix: str, bits: int) -> Callable[[random.Random], str]:
    width = (bits + 3) // 4
    return lambda rng: f"{prefix}{rng.getrandbits(bits):0{width}x}"


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


_AGENT_NAMES = (
    "support-triage",
    "invoice-processor",
    "research-assistant",
    "code-reviewer",
    "lead-qualifier",
    "onboarding-guide",
    "incident-responder",
    "data-cleaner",
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "runtools": Profile(
            platform="runtools",
            outcomes=(0.78, 0.12, 0.05, 0.05),
            start_delay_ms=(0, 0),  # the feed has no queued state
            run_id=_hex("run_", 64),
            tool_id=_hex("tc_", 48),
            agent_id=lambda rng, i: (
                _AGENT_NAMES[i % len(_AGENT_NAMES)]
                + (f"-{i // len(_AGENT_NAMES) + 1}" if i >= len(_AGENT_NAMES) else "")
            ),
            names=_AGENT_NAMES,
            tool_sets={
                "agent": (
                    "web_search",
                    "read_file",
                    "write_file",
                    "send_email",
                    "query_db",
                    "browser.click",
                    "github.create_issue",
                    "slack.post_message",
                )
            },
        ),
        "agent_activities": Profile(
            platform="agent_activities",
            outcomes=(0.80, 0.12, 0.08, 0.0),  # no timed-out state on this platform
            start_delay_ms=(0, 1500),
            run_id=_uuid4,
            tool_id=None,
            agent_id=lambda rng, i: _uuid4(rng),
            names=(
                "Billing inbox",
                "Sales follow-up",
                "HR helpdesk",
                "IT requests",
                "Vendor onboarding",
                "Legal intake",
            ),
            tool_sets={
                "agent": (
                    "read_entity",
                    "search_knowledge_base",
                    "lookup_customer",
                    "send_email",
                    "create_ticket",
                    "update_record",
                    "post_message",
                )
            },
            sandbox_prob=0.2,
        ),
        "bctrl": Profile(
            platform="bctrl",
            outcomes=(0.76, 0.12, 0.06, 0.06),
            start_delay_ms=(0, 800),
            run_id=_hex("run_", 80),
            tool_id=_hex("cmd_", 48),
            agent_id=lambda rng, i: f"rt_{rng.getrandbits(64):016x}",
            names=("checkout-bot", "price-watcher", "form-filler", "report-exporter", "ledger-sync", "crm-updater"),
            tool_sets={
                "browser": ("browser.goto", "browser.click", "browser.type", "browser.extract", "browser.screenshot"),
                "desktop": ("desktop.open_app", "desktop.click", "desktop.type", "desktop.screenshot"),
                "spreadsheet": ("sheet.read_range", "sheet.write_range", "sheet.add_formula"),
            },
        ),
        "runtype": Profile(
            platform="runtype",
            outcomes=(0.78, 0.12, 0.05, 0.05),
            start_delay_ms=(0, 2000),
            run_id=_hex("exec_", 64),
            tool_id=_hex("tc_", 64),
            agent_id=lambda rng, i: f"agent_{rng.getrandbits(40):010x}",
            names=(
                "Support Concierge",
                "Market Researcher",
                "SQL Analyst",
                "Release Notes Writer",
                "Churn Predictor",
                "Travel Planner",
            ),
            tool_sets={
                "agent": ("web_search", "query_db", "http_request", "send_email", "code_interpreter", "read_file"),
            },
            subagent_prob=0.25,
        ),
    }
)

_BCTRL_KINDS = ("browser", "desktop", "spreadsheet")
_MODELS = ("gpt-4o-mini", "claude-3-5-sonnet", "gpt-4.1", "gemini-1.5-pro")
_TOOL_COUNT_WEIGHTS = (0.1, 0.25, 0.3, 0.2, 0.15)  # 0..4 tool calls
_CHILD_OUTCOMES = (0.85, 0.1, 0.0, 0.05)


def make_agents(seed: int, profile: Profile, count: int) -> list[AgentSpec]:
    rng = random.Random(f"{seed}|{profile.platform}|agents")
    agents = []
    for i in range(count):
        kind = _BCTRL_KINDS[i % len(_BCTRL_KINDS)] if profile.platform == "bctrl" else "agent"
        pool = profile.tool_sets[kind]
        agent_id = profile.agent_id(rng, i)
        base = profile.names[i % len(profile.names)]
        name = base if i < len(profile.names) else f"{base} {i // len(profile.names) + 1}"
        tools = tuple(rng.sample(pool, k=min(len(pool), rng.randint(3, 5))))
        agents.append(
            AgentSpec(
                id=agent_id,
                name=name,
                kind=kind,
                tools=tools,
                version_id=_uuid4(rng),
                space_id=f"spc_{(seed * 7919 + i % 2) % 10**6:06d}",
                model=_MODELS[rng.randrange(len(_MODELS))],
            )
        )
    return agents


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return tuple(x / total for x in out)


def _pick(rng: random.Random, cumulative: tuple[float, ...]) -> int:
    return min(bisect_right(cumulative, rng.random()), len(cumulative) - 1)


def _between(rng: random.Random, low: int, high: int) -> int:
    # random() and arithmetic: several times cheaper than randint(), which
    # matters when a history of 40,000 runs is drawn at start.
    return low + int(rng.random() * (high - low + 1))


class RunFactory:
    """Draws runs (with their tool calls and sub-agents) from an RNG."""

    def __init__(self, profile: Profile, agents: Sequence[AgentSpec], run_seconds: tuple[float, float]) -> None:
        self._profile = profile
        self._agents = agents
        self._run_ms = (max(1, round(run_seconds[0] * 1000)), max(1, round(run_seconds[1] * 1000)))
        self._outcomes = _cumulative(profile.outcomes)
        self._child_outcomes = _cumulative(_CHILD_OUTCOMES)
        self._tool_counts = _cumulative(_TOOL_COUNT_WEIGHTS)

    @property
    def max_delay_ms(self) -> int:
        return self._profile.start_delay_ms[1]

    def duration(self, rng: random.Random) -> int:
        return _between(rng, *self._run_ms)

    def draw(self, rng: random.Random, seq: int, created_ms: int, duration_ms: int) -> list[RunSpec]:
        """A top-level run created at `created_ms`, followed by its sub-agent runs."""
        agent = int(rng.random() * len(self._agents))
        delay = _between(rng, *self._profile.start_delay_ms)
        runs: list[RunSpec] = []
        self._draw_one(rng, runs, seq, agent, created_ms, delay, duration_ms, None)
        return runs

    def _draw_one(
        self,
        rng: random.Random,
        out: list[RunSpec],
        seq: int,
        agent: int,
        created: int,
        delay: int,
        duration: int,
        parent: RunSpec | None,
    ) -> None:
        profile = self._profile
        rnd = rng.random
        run_id = profile.run_id(rng)
        start = created + delay
        end = start + max(1, duration)
        outcome = OUTCOMES[_pick(rng, self._child_outcomes if parent else self._outcomes)]
        tools = self._draw_tools(rng, agent, start, end, outcome)
        span = end - start
        marks = tuple(sorted(start + int(rnd() * span) for _ in range(1 + int(rnd() * 3))))
        input_tokens = 300 + int(rnd() * 2200) + 900 * len(tools)
        output_tokens = 40 + int(rnd() * 860)
        sandbox = rnd() < profile.sandbox_prob
        flavor = rng.getrandbits(32)
        n_children = 0
        if parent is None and profile.subagent_prob and len(self._agents) > 1 and rnd() < profile.subagent_prob:
            n_children = 1 + int(rnd() * 2)
        index = len(out)
        spec = RunSpec(
            seq=seq,
            run_id=run_id,
            agent=agent,
            created_ms=created,
            start_ms=start,
            end_ms=end,
            outcome=outcome,
            tools=tools,
            marks=marks,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_micros=input_tokens * 3 + output_tokens * 15,  # $3 / $15 per million tokens
            parent=parent.seq if parent else None,
            root=(parent.root if parent.root is not None else parent.seq) if parent else None,
            children=(),
            sandbox=sandbox,
            flavor=flavor,
        )
        out.append(spec)
        children: list[int] = []
        n_agents = len(self._agents)
        for _ in range(n_children):
            # A sub-agent run of another agent, nested inside its parent's span.
            child_agent = (agent + 1 + int(rnd() * (n_agents - 1))) % n_agents
            child_created = start + int(span * (0.05 + 0.4 * rnd()))
            child_delay = int(rnd() * 100)
            room = end - 1 - (child_created + child_delay)
            child_duration = int(room * (0.3 + 0.65 * rnd()))
            if child_duration < 1:
                continue  # the parent is too short to hold a child
            child_seq = seq + (len(out) - index)
            children.append(child_seq)
            self._draw_one(rng, out, child_seq, child_agent, child_created, child_delay, child_duration, spec)
        if children:
            out[index] = _with_children(spec, tuple(children))

    def _draw_tools(self, rng: random.Random, agent: int, start: int, end: int, outcome: str) -> tuple[ToolSpec, ...]:
        count = _pick(rng, self._tool_counts)
        if count == 0:
            return ()
        rnd = rng.random
        names = self._agents[agent].tools
        make_id = self._profile.tool_id
        margin = max(1, (end - start) // 50)
        lo, hi = start + margin, max(start + margin + count, end - margin)
        slot = max(1, (hi - lo) // count)
        tools = []
        for i in range(count):
            begin = min(lo + i * slot + int(slot * 0.3 * rnd()), end)
            # min/max keep begin <= finish <= end even for runs of a few ms.
            finish = max(begin, min(begin + max(1, int(slot * (0.2 + 0.45 * rnd()))), end))
            name = names[int(rnd() * len(names))]
            # A failed run usually failed in its last tool; others fail now and then.
            failed = rnd() < (0.6 if outcome == "failed" and i == count - 1 else 0.07)
            call_id = make_id(rng) if make_id else ""
            tools.append(ToolSpec(call_id, name, begin, finish, failed))
        return tuple(tools)


def _with_children(spec: RunSpec, children: tuple[int, ...]) -> RunSpec:
    return RunSpec(
        seq=spec.seq,
        run_id=spec.run_id,
        agent=spec.agent,
        created_ms=spec.created_ms,
        start_ms=spec.start_ms,
        end_ms=spec.end_ms,
        outcome=spec.outcome,
        tools=spec.tools,
        marks=spec.marks,
        input_tokens=spec.input_tokens,
        output_tokens=spec.output_tokens,
        cost_micros=spec.cost_micros,
        parent=spec.parent,
        root=spec.root,
        children=children,
        sandbox=spec.sandbox,
        flavor=spec.flavor,
    )


class Log:
    """An append-only list of (time ms, value), sorted by time."""

    __slots__ = ("ms", "val")

    def __init__(self) -> None:
        self.ms = array("q")
        self.val = array("q")

    def __len__(self) -> int:
        return len(self.ms)

    def append(self, ms: int, value: int) -> None:
        self.ms.append(ms)
        self.val.append(value)

    def first_at_or_after(self, ms: int) -> int:
        return bisect_left(self.ms, ms)

    def first_after(self, ms: int) -> int:
        return bisect_right(self.ms, ms)


# Times of a run's feed entries (runtools events), in the order the platform
# module numbers them; each must be >= the run's creation.
FeedTimes = Callable[[RunSpec, AgentSpec], Sequence[int]]


class Store:
    """One platform's world. Not thread-safe: the simulator holds its lock."""

    def __init__(
        self,
        profile: Profile,
        options: SimulatorOptions,
        clock: SimClock,
        feed_times: FeedTimes | None = None,
    ) -> None:
        self.platform = profile.platform
        self.agents: list[AgentSpec] = make_agents(options.seed, profile, options.agents_per_platform)
        self.agent_index: dict[str, int] = {a.id: i for i, a in enumerate(self.agents)}
        self.runs: list[RunSpec] = []
        self.by_id: dict[str, int] = {}
        self.created = Log()  # value: seq
        self.ended = Log()  # value: seq
        self.agent_created = [Log() for _ in self.agents]
        self.agent_ended = [Log() for _ in self.agents]
        self.feed: Log | None = Log() if feed_times else None  # value: seq * 32 + k
        self._feed_times = feed_times
        self._factory = RunFactory(profile, self.agents, options.run_seconds)
        self._options = options
        self._clock = clock
        self._pending: list[int] = []  # packed visibility moments, a heap
        self._live_rng = random.Random(f"{options.seed}|{profile.platform}|live")
        self._rate_per_ms = options.runs_per_minute / 60_000.0
        self._next_virtual: int | None = self._gap() if self._rate_per_ms > 0 else None
        self._history_done = False
        self._bulk = False
        self._sorted = False

    @property
    def max_delay_ms(self) -> int:
        return self._factory.max_delay_ms

    @property
    def max_run_ms(self) -> int:
        """An upper bound on created -> ended of any run."""
        return self._factory.max_delay_ms + round(self._options.run_seconds[1] * 1000) + 1

    def _gap(self) -> int:
        return max(1, round(self._live_rng.expovariate(self._rate_per_ms)))

    def advance(self, now_ms: int) -> None:
        """Generate the runs created by now, and publish what became visible."""
        if not self._history_done:
            self._history_done = True
            self._generate_history()
        virtual_now = self._clock.virtual_now(now_ms)
        while self._next_virtual is not None and self._next_virtual <= virtual_now:
            created = self._clock.real_time(self._next_virtual)
            rng = self._live_rng
            self._add(self._factory.draw(rng, len(self.runs), created, self._factory.duration(rng)))
            self._next_virtual += self._gap()
        self._publish(now_ms)

    def _generate_history(self) -> None:
        count = self._options.history_runs
        if not count or self.platform not in self._options.history_platforms:
            return
        rng = random.Random(f"{self._options.seed}|{self.platform}|history")
        self._bulk = True
        span = round(self._options.history_span_seconds * 1000)
        start = self._clock.epoch_ms - span
        for _ in range(count):
            duration = self._factory.duration(rng)
            # Created early enough that the run has ended before the start
            # (even if that means before the span, when runs outlast it).
            latest = self._clock.epoch_ms - 1 - duration - self._factory.max_delay_ms
            created = min(start + int(rng.random() * max(0, latest - start)), latest)
            self._add(self._factory.draw(rng, len(self.runs), created, duration))
        self._bulk = False
        # A sorted list is also a heap; while it stays sorted, _publish can
        # take the due prefix in one slice instead of popping entry by entry.
        self._pending.sort()
        self._sorted = True
        log.debug("%s: generated %d history runs", self.platform, len(self.runs))

    def _add(self, runs: list[RunSpec]) -> None:
        for run in runs:
            self.runs.append(run)
            self.by_id[run.run_id] = run.seq
            self._schedule(run.created_ms, run.seq * MAX_FEED_PER_RUN * 4 + _CREATED)
            self._schedule(run.end_ms, run.seq * MAX_FEED_PER_RUN * 4 + _ENDED)
            if self._feed_times is not None:
                times = self._feed_times(run, self.agents[run.agent])
                if len(times) > MAX_FEED_PER_RUN:
                    raise ValueError(f"{len(times)} feed entries in one run, at most {MAX_FEED_PER_RUN}")
                for k, ms in enumerate(times):
                    self._schedule(ms, (run.seq * MAX_FEED_PER_RUN + k) * 4 + _FEED)

    def _schedule(self, ms: int, packed: int) -> None:
        entry = (ms << _SHIFT) | packed
        if self._bulk:
            self._pending.append(entry)  # sorted once the whole history is drawn
        else:
            self._sorted = False
            heapq.heappush(self._pending, entry)

    def _publish(self, now_ms: int) -> None:
        pending = self._pending
        if self._sorted:
            due = bisect_right(pending, (now_ms << _SHIFT) | _LOW)
            for entry in pending[:due]:
                self._apply(entry)
            del pending[:due]
        limit = (now_ms << _SHIFT) | _LOW
        while pending and pending[0] <= limit:
            self._apply(heapq.heappop(pending))

    def _apply(self, entry: int) -> None:
        ms = entry >> _SHIFT
        packed = entry & _LOW
        kind = packed & 3
        ref = packed >> 2
        seq = ref // MAX_FEED_PER_RUN
        if kind == _CREATED:
            self.created.append(ms, seq)
            self.agent_created[self.runs[seq].agent].append(ms, seq)
        elif kind == _ENDED:
            self.ended.append(ms, seq)
            self.agent_ended[self.runs[seq].agent].append(ms, seq)
        elif self.feed is not None:
            self.feed.append(ms, ref)
