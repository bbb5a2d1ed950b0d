"""How one platform's agents and runs differ from another's (`Profile`, one
per platform in `PROFILES`), and each platform's agents, drawn from the seed."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from simulator.specs import AgentSpec


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
