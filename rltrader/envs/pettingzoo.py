"""PettingZoo ``ParallelEnv`` over one market of the batched env (``n_envs=1``).

Agents are ``"trader_0" .. "trader_{n-1}"``; spaces are cached (one object each, shared by
all agents). Per step the adapter builds five dicts of ``n_agents`` entries: observations
are row views of one fresh copy of the batched buffer (so they stay valid after the next
step; the view objects are most of the cost), rewards and flags Python scalars (the flag
dicts are copies of two prebuilt ones: one market, one flag for every agent). The
overhead above the batched step is ``adapter_overhead_us`` in
``benchmarks/test_bench_env.py`` (docs/envs.md quotes it). At the horizon every agent is
terminated with its final observation and ``agents`` becomes empty; ``reset()`` starts the
next episode in the running market, ``reset(seed=s)`` rebuilds it from ``s``. Actions are
checked as the batched env checks them (``write_actions``): a value that is not a whole
number in the action space (``1.7``, ``"2"``) raises ``ValueError``/``TypeError``.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv  # type: ignore[import-untyped]

from rltrader.envs.batched import BatchedMarketEnv, write_actions
from rltrader.envs.config import EnvConfig


def ordered_actions(actions: Mapping[str, Any], agents: list[str],
                    known: Container[str]) -> list[Any]:
    """The live ``agents``' actions in their order (``actions`` must name each of them
    and only ``known`` agents)."""
    if list(actions) == agents:             # every agent, in order: no lookups
        return list(actions.values())
    missing = [a for a in agents if a not in actions]
    unknown = [a for a in actions if a not in known]
    if missing or unknown:
        raise ValueError(f"actions needed for every live agent; missing {missing}, "
                         f"unknown {unknown}")
    return [actions[a] for a in agents]


class MarketParallelEnv(ParallelEnv):
    """``n_agents`` learners in one simulated market (PettingZoo parallel API).

    Parameters
    ----------
    config : EnvConfig, optional
    n_agents : int
    seed : int
        Seed of the market built now; ``reset(seed=...)`` rebuilds it.
    """

    metadata = {"render_modes": [], "name": "rltrader_market_v0", "is_parallelizable": True}
    render_mode = None

    def __init__(self, config: EnvConfig | None = None, *, n_agents: int = 2,
                 seed: int = 0) -> None:
        self.batched = BatchedMarketEnv(config, n_envs=1, n_agents=n_agents, seed=seed)
        if self.batched.n_symbols > 1:
            raise ValueError("MarketParallelEnv is one symbol: for EnvConfig.symbols > 1 use "
                             "BatchedMarketEnv (one row per agent and symbol)")
        self.possible_agents = [f"trader_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self._index = {name: i for i, name in enumerate(self.possible_agents)}
        self._observation_space = self.batched.single_observation_space
        self._action_space = self.batched.single_action_space
        # the batched env's own action buffer: validated once by write_actions, then stepped
        self._actions = self.batched.actions
        self.observation_spaces = dict.fromkeys(self.possible_agents, self._observation_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, self._action_space)
        self._flags = {flag: dict.fromkeys(self.possible_agents, flag) for flag in (False, True)}

    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    def reset(self, seed: int | None = None, options: dict | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        obs = self.batched.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return (dict(zip(self.agents, obs.copy(), strict=True)),
                {a: {} for a in self.agents})

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() after the episode ended: call reset()")
        values = ordered_actions(actions, self.agents, self._index)
        # the batched env's checks (agent i is trader_i): no silent truncation of 1.7 or "2"
        write_actions(values, self._actions, self.batched.action_high, 1,
                      self.batched.n_agents)
        obs, rewards, terminated, truncated = self.batched._step_written()
        done = bool(terminated[0] or truncated[0])
        rows = (self.batched.final_observations if done else obs).copy()
        names = self.agents
        out: tuple[dict, dict, dict, dict, dict] = (
            dict(zip(names, rows, strict=True)),
            dict(zip(names, rewards.tolist(), strict=True)),
            self._flags[bool(terminated[0])].copy(),   # every agent is live until the end
            self._flags[bool(truncated[0])].copy(),
            {a: {} for a in names})
        if done:
            self.agents = []
        return out

    def state(self) -> np.ndarray:
        """Every agent's observation, stacked ``(n_agents, obs_dim)``."""
        return self.batched.observations.copy()

    def close(self) -> None:
        """Nothing to release."""
