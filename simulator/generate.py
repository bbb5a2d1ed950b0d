"""Runs drawn from an RNG: a top-level run with its tool calls, token counts
and marks, followed by its sub-agent runs nested inside it (`RunFactory`)."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence

from simulator.profiles import Profile
from simulator.specs import OUTCOMES, AgentSpec, RunSpec, ToolSpec

_TOOL_COUNT_WEIGHTS = (0.1, 0.25, 0.3, 0.2, 0.15)  # 0..4 tool calls
_CHILD_OUTCOMES = (0.85, 0.1, 0.0, 0.05)


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
