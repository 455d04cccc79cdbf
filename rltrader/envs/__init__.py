"""Reinforcement-learning environments over the compiled market (docs/envs.md).

- :class:`BatchedMarketEnv`: ``n_envs`` markets x ``n_agents`` learners, one compiled call
  per step, caller-visible numpy buffers (the fast path).
- :class:`SB3VecEnv` (``rltrader.envs.sb3``, needs the ``rl`` extra): a Stable-Baselines3
  ``VecEnv`` where every agent is a sub-env sharing one policy.
- :class:`MarketParallelEnv`: PettingZoo ``ParallelEnv`` (one market).
- :class:`MarketEnv`: Gymnasium single-agent env, registered as ``rltrader/Market-v1``.
- :class:`MarketVectorEnv`: Gymnasium ``VectorEnv`` over the batched env.
- :class:`ShardedMarketEnv`: the batched env's markets split over worker processes.
- :class:`RayMarketEnv` (``rltrader.envs.ray_shards``, needs the ``ray`` extra): the same
  split over Ray actors, on one machine or a cluster (docs/scale.md).
- :class:`GroupedMarketEnv`: agent groups (each its own mode, reward, sizes, latency,
  learning or scripted) in one market, stepped as one (``rltrader.envs.groups``);
  :class:`GroupedParallelEnv`: its PettingZoo view, per-agent spaces by group;
  :class:`GroupLearner` (one learning group, for ``SB3VecEnv``) and :class:`GroupGymEnv`
  (its Gymnasium single agent), the other groups scripted.
"""

from __future__ import annotations

from typing import Any

from rltrader.envs.batched import BatchedMarketEnv
from rltrader.envs.config import EnvConfig, observation_names
from rltrader.envs.groups import (
    AgentGroup,
    GroupedMarketEnv,
    GroupedParallelEnv,
    GroupGymEnv,
    GroupLearner,
)
from rltrader.envs.gym import MarketEnv, MarketVectorEnv
from rltrader.envs.pettingzoo import MarketParallelEnv
from rltrader.envs.shards import ShardedMarketEnv

__all__ = ["AgentGroup", "BatchedMarketEnv", "EnvConfig", "GroupGymEnv", "GroupLearner",
           "GroupedMarketEnv", "GroupedParallelEnv", "MarketEnv",
           "MarketParallelEnv", "MarketVectorEnv", "RayMarketEnv", "SB3VecEnv",
           "ShardedMarketEnv",
           "observation_names"]


def __getattr__(name: str) -> Any:
    """Adapters whose libraries are optional are imported on first use."""
    if name == "SB3VecEnv":
        from rltrader.envs.sb3 import SB3VecEnv
        return SB3VecEnv
    if name == "RayMarketEnv":
        from rltrader.envs.ray_shards import RayMarketEnv
        return RayMarketEnv
    raise AttributeError(f"module 'rltrader.envs' has no attribute {name!r}")
