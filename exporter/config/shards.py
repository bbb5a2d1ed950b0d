"""`sources[].shards: N`: a platform read agent by agent, split into N
sources, each reading the agents whose stable hash falls in its shard.

A shard is a source in every respect but its agents: named `name#k/N`, it
has its own lease (replicas on PostgreSQL read different shards), its own
checkpoint, open runs and series (its `source` label). The hash is of the
agent id alone, so every replica and every release puts an agent in the
same shard; changing N moves agents between shards, which then read them
from `start_from` again, as a renamed source would.
"""

from __future__ import annotations

import dataclasses
import hashlib

from exporter.config.model import SourceConfig

# The option that lists a platform's agents: its presence makes a platform shardable.
AGENTS_OPTION = "agents"


def shard_of(agent_id: str, shards: int) -> int:
    """The shard (0..shards-1) that reads `agent_id`."""
    return int.from_bytes(hashlib.sha256(agent_id.encode()).digest()[:8], "big") % shards


def shard_name(name: str, shard: int, shards: int) -> str:
    return f"{name}#{shard}/{shards}"


def in_shard(config: SourceConfig, agent_id: str) -> bool:
    """Whether this (shard of a) source reads `agent_id`."""
    return config.shard is None or shard_of(agent_id, config.shards) == config.shard


def expand(config: SourceConfig) -> list[SourceConfig]:
    """The sources a configured source is read as: itself, or its shards
    (a configured list of agents split among them)."""
    if config.shards <= 1:
        return [config]
    out = []
    for k in range(config.shards):
        options = config.options
        agents = getattr(options, AGENTS_OPTION, None)
        if isinstance(agents, tuple):
            mine = tuple(a for a in agents if shard_of(str(a), config.shards) == k)
            options = dataclasses.replace(options, **{AGENTS_OPTION: mine})  # type: ignore[type-var]
        out.append(
            dataclasses.replace(config, name=shard_name(config.name, k, config.shards), shard=k, options=options)
        )
    return out
