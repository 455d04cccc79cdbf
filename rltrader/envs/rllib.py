"""The market as an RLlib multi-agent env, through PettingZoo (the ``rllib`` extra).

RLlib wraps a PettingZoo ``ParallelEnv`` in its own ``ParallelPettingZooEnv``; this module
registers :class:`~rltrader.envs.MarketParallelEnv` (one market, ``n_agents`` traders
``trader_0 ..``) under :data:`ENV_NAME` with ``ray.tune.registry.register_env``, so that an
RLlib algorithm names it and builds one copy per env runner:

    from rltrader.envs.rllib import ENV_NAME, ppo_config, register
    register()
    algo = ppo_config({"n_agents": 4, "env": {"horizon": 200}}).build_algo()
    algo.train()

``env_config`` keys: ``n_agents`` (default 2), ``seed`` (default 0; each env runner and
vector index adds its own offset, so that runners see different markets) and ``env`` (a
dict of :class:`EnvConfig` fields). Unknown keys raise ``ValueError``.

RLlib pins its own Gymnasium (``ray[rllib]==2.60.0``: ``gymnasium==1.2.2``): install the
``rllib`` extra in an environment of its own (docs/scale.md, "RLlib"). This path steps one
market per env copy and builds per-agent dicts every step (PettingZoo's API): for
throughput use the fast trainer over :class:`~rltrader.envs.ray_shards.RayMarketEnv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rltrader.envs.config import EnvConfig
from rltrader.envs.pettingzoo import MarketParallelEnv

#: the name the env is registered under
ENV_NAME = "rltrader_market"
#: the id of the one policy every trader shares in :func:`ppo_config`
SHARED_POLICY = "shared"
_KEYS = ("n_agents", "seed", "env")
#: seed offset per env runner (``worker_index``); ``vector_index`` adds 1 per copy
RUNNER_SEED_STRIDE = 1_000


def make_env(env_config: Mapping[str, Any]) -> Any:
    """RLlib's ``ParallelPettingZooEnv`` over a :class:`MarketParallelEnv` built from
    ``env_config`` (module docstring; RLlib's ``EnvContext`` adds ``worker_index`` and
    ``vector_index``)."""
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    unknown = sorted(set(env_config) - set(_KEYS))
    if unknown:
        raise ValueError(f"env_config: unknown keys {unknown} (known: {list(_KEYS)})")
    fields = env_config.get("env", {})
    if not isinstance(fields, Mapping):
        raise TypeError(f"env_config['env'] must be a dict of EnvConfig fields, got "
                        f"{type(fields).__name__}")
    config = EnvConfig().replace(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in fields.items()})
    seed = env_config.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"env_config['seed'] must be an int >= 0, got {seed!r}")
    seed += (RUNNER_SEED_STRIDE * int(getattr(env_config, "worker_index", 0))
             + int(getattr(env_config, "vector_index", 0)))
    market = MarketParallelEnv(config, n_agents=env_config.get("n_agents", 2), seed=seed)
    return ParallelPettingZooEnv(market)


def register(name: str = ENV_NAME) -> str:
    """Register :func:`make_env` with Ray Tune under ``name``; returns ``name``."""
    from ray.tune.registry import register_env

    register_env(name, make_env)
    return name


def shared_policy(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """RLlib's ``policy_mapping_fn``: every trader acts with :data:`SHARED_POLICY`."""
    return SHARED_POLICY


def ppo_config(env_config: Mapping[str, Any] | None = None, *, name: str = ENV_NAME) -> Any:
    """An RLlib ``PPOConfig`` on the registered env (:func:`register` it first): one
    policy shared by every trader, sampled in the driver (``num_env_runners=0``); chain
    ``.env_runners(...)``, ``.training(...)`` on it to scale or tune."""
    from ray.rllib.algorithms.ppo import PPOConfig

    return (PPOConfig()
            .environment(name, env_config=dict(env_config or {}))
            .multi_agent(policies={SHARED_POLICY}, policy_mapping_fn=shared_policy)
            .env_runners(num_env_runners=0))


__all__ = ["ENV_NAME", "SHARED_POLICY", "make_env", "ppo_config", "register",
           "shared_policy"]
