"""Agent groups: market makers, executors and directional traders of different market
share, learning and scripted, in one market (:class:`GroupedMarketEnv`).

Every group has its own :class:`~rltrader.envs.config.EnvConfig` (action mode, reward,
valuation, size classes, latency, observation...) and its own buffers, exactly those of a
:class:`~rltrader.envs.batched.BatchedMarketEnv` (:attr:`GroupedMarketEnv.envs`); the
groups share one market (the first group's ``market``, ``horizon`` and ``warmup_steps``,
which every group must repeat; each group pays its own fees, a fee tier) and one step:
the compiled ``GroupStep`` puts every group's decisions and the background's in one
arrival order per book, and liquidates the groups' agents in one random order at an
episode's end. A group is learning (its actions are passed to
:meth:`GroupedMarketEnv.step`) or scripted (``policy``: called on the group's
observations inside the step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv  # type: ignore[import-untyped]

from rltrader._env import GroupStep
from rltrader.core.constants import AGENT_ID_BASE
from rltrader.envs.batched import BatchedMarketEnv, write_actions
from rltrader.envs.config import EnvConfig
from rltrader.envs.pettingzoo import ordered_actions
from rltrader.sim.market import Market, RecordConfig

#: fields every group must share with the first (they describe the market or the step)
SHARED = ("market", "horizon", "warmup_steps", "symbols")
#: order ids of group g start at AGENT_ID_BASE + g x GROUP_ID_SPAN (up to 8 groups)
GROUP_ID_SPAN = 1 << 57
MAX_GROUPS = 8


@dataclass(frozen=True)
class AgentGroup:
    """One group of agents in every market.

    Attributes
    ----------
    name : str
        Its key in :meth:`GroupedMarketEnv.step`'s actions and results.
    n_agents : int
        Agents per market.
    config : EnvConfig
        The group's action mode, reward, sizes, latency, ... (``SHARED`` fields as the
        first group's).
    policy : callable, optional
        A scripted group: ``policy(observations) -> actions`` on the group's arrays
        (``(n_envs * n_agents, obs_dim)`` -> its action array); ``None``: learning.
    """

    name: str
    n_agents: int
    config: EnvConfig
    policy: Callable[[np.ndarray], Any] | None = None


class GroupedMarketEnv:
    """``n_envs`` markets, each with every group's agents (module docstring).

    Parameters
    ----------
    groups : sequence of AgentGroup
        Distinct names; ``SHARED`` fields equal.
    n_envs : int
        Markets.
    seed : int
        ``SeedSequence(seed).spawn(1 + len(groups))``: the market, then each group (its
        size classes and arrival times).
    """

    def __init__(self, groups: Sequence[AgentGroup], *, n_envs: int = 1,
                 seed: int = 0) -> None:
        self.groups = tuple(groups)
        if not self.groups or not all(isinstance(g, AgentGroup) for g in self.groups):
            raise TypeError("groups must be a non-empty sequence of AgentGroup")
        if len(self.groups) > MAX_GROUPS:
            raise ValueError(f"at most {MAX_GROUPS} groups, got {len(self.groups)}")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be distinct, got {names}")
        first = self.groups[0].config
        for g in self.groups:
            if not isinstance(g.config, EnvConfig):
                raise TypeError(f"group {g.name!r}: config must be an EnvConfig")
            if not isinstance(g.n_agents, (int, np.integer)) or g.n_agents < 1:
                raise ValueError(f"group {g.name!r}: n_agents must be an int >= 1")
            for name in SHARED:
                if getattr(g.config, name) != getattr(first, name):
                    raise ValueError(f"group {g.name!r}: {name} must be the first group's "
                                     f"({getattr(first, name)!r})")
        if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be an int >= 1, got {n_envs!r}")
        self.n_envs = int(n_envs)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """New markets from ``seed`` (``None``: new episodes in the running markets);
        returns each group's observations."""
        if seed is None:
            return self._begin()
        self.seed = seed
        config = self.groups[0].config
        market_seed, *group_seeds = np.random.SeedSequence(seed).spawn(1 + len(self.groups))
        mc = config.market_config()
        symbols = (tuple(mc.symbols[:config.symbols]) if len(mc.symbols) >= config.symbols
                   else tuple(f"{mc.symbols[0]}{k}" for k in range(config.symbols)))
        mc = mc.replace(copies=self.n_envs, symbols=symbols,
                        extra_owners=sum(g.n_agents for g in self.groups),
                        record=RecordConfig())
        #: the shared market
        self.market = Market(mc, seed=int(market_seed.generate_state(1)[0]))
        self.market.books.set_fees(config.maker_fee_ppm, config.taker_fee_ppm)
        owner = self.market.n_traders
        # each group numbers its orders in its own range (the core is told they are fresh)
        #: each group's view: its buffers, spaces and accounts (a BatchedMarketEnv)
        self.envs: dict[str, BatchedMarketEnv] = {}
        for index, (group, group_seed) in enumerate(zip(self.groups, group_seeds,
                                                        strict=True)):
            # a fee tier: every group pays its own config's fees (the books' are the
            # first group's)
            self.market.books.set_owner_fees(
                np.arange(owner, owner + group.n_agents), group.config.maker_fee_ppm,
                group.config.taker_fee_ppm)
            self.envs[group.name] = BatchedMarketEnv(
                group.config, n_envs=self.n_envs, n_agents=group.n_agents,
                seed=int(group_seed.generate_state(1)[0]),
                _shared=(self.market, owner, AGENT_ID_BASE + index * GROUP_ID_SPAN))
            owner += group.n_agents
        kernels = [env.kernel for env in self.envs.values()]
        self.stepper = GroupStep(kernels, self.market.flow)
        # background-only steps; the last ones also fill every group's mid history
        warmup = config.warmup_steps
        tracked = min(warmup, max(g.config.return_lag for g in self.groups) + 1)
        self.market.flow.run(warmup - tracked)
        for _ in range(tracked):
            self.market.flow.run(1)
            for kernel in kernels:
                kernel.advance()
        return self._begin()

    def _begin(self) -> dict[str, np.ndarray]:
        """New episodes: every group's orders are withdrawn before any group values its
        start (else an earlier group's start would count later groups' orders in the
        book); the flags and rewards cleared. Returns each group's observations."""
        for env in self.envs.values():
            env._submit(0, env.kernel.cancel_orders(env._timestamp(), True))
        for env in self.envs.values():
            env.kernel.begin(True)
            env.terminated[:] = False
            env.truncated[:] = False
            env.rewards[:] = 0.0
        return {name: env.observations for name, env in self.envs.items()}

    def step(self, actions: Mapping[str, Any] | None = None
             ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """One step of every market: ``actions[name]`` for each learning group (as
        :meth:`BatchedMarketEnv.step` takes them), scripted groups act by their policy.
        Returns, per group, its (observations, rewards, terminated, truncated) buffers."""
        actions = {} if actions is None else actions
        unknown = set(actions) - set(self.envs)
        if unknown:
            raise ValueError(f"actions for unknown groups {sorted(unknown)}")
        for group in self.groups:
            env = self.envs[group.name]
            if group.policy is not None:
                if group.name in actions:
                    raise ValueError(f"group {group.name!r} is scripted: no actions for it")
                chosen = group.policy(env.observations)
            elif group.name in actions:
                chosen = actions[group.name]
            else:
                raise ValueError(f"actions needed for the learning group {group.name!r}")
            write_actions(chosen, env.actions, env.action_high, env.n_books, env.n_agents)
        env = next(iter(self.envs.values()))
        self.stepper.step(env._timestamp())
        return {name: (e.observations, e.rewards, e.terminated, e.truncated)
                for name, e in self.envs.items()}


class GroupedParallelEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` over one market of a :class:`GroupedMarketEnv`: every
    agent of every learning group is ``"{group}_{i}"`` with its group's spaces; scripted
    groups act inside the step and are not agents. At the horizon every agent is
    terminated with its final observation and ``agents`` becomes empty; ``reset()`` starts
    the next episode in the running market, ``reset(seed=s)`` rebuilds it."""

    metadata = {"render_modes": [], "name": "rltrader_groups_v0", "is_parallelizable": True}
    render_mode = None

    def __init__(self, groups: Sequence[AgentGroup], *, seed: int = 0) -> None:
        self.grouped = GroupedMarketEnv(groups, n_envs=1, seed=seed)
        if self.grouped.groups[0].config.symbols > 1:
            raise ValueError("GroupedParallelEnv is one symbol (EnvConfig.symbols = 1)")
        self._learning = [g for g in self.grouped.groups if g.policy is None]
        self.possible_agents = [f"{g.name}_{i}" for g in self._learning
                                for i in range(g.n_agents)]
        self._where = {f"{g.name}_{i}": (g.name, i) for g in self._learning
                       for i in range(g.n_agents)}
        self._names = {g.name: [f"{g.name}_{i}" for i in range(g.n_agents)]
                       for g in self._learning}
        self.observation_spaces = {a: self.grouped.envs[g].single_observation_space
                                   for a, (g, _) in self._where.items()}
        self.action_spaces = {a: self.grouped.envs[g].single_action_space
                              for a, (g, _) in self._where.items()}
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> Any:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Any:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        observations = self.grouped.reset(seed)
        self.agents = list(self.possible_agents)
        return ({a: observations[g][i].copy() for a, (g, i) in self._where.items()},
                {a: {} for a in self.agents})

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() after the episode ended: call reset()")
        values = ordered_actions(actions, self.agents, self._where)
        by_group, at = {}, 0
        for g in self._learning:             # agents are listed group by group
            by_group[g.name] = values[at: at + g.n_agents]
            at += g.n_agents
        result = self.grouped.step(by_group)
        first = next(iter(result.values()))
        done = bool(first[2][0] or first[3][0])  # every group's episode ends together
        obs: dict[str, np.ndarray] = {}
        rewards: dict[str, float] = {}
        terminated: dict[str, bool] = {}
        truncated: dict[str, bool] = {}
        for g in self._learning:
            names = self._names[g.name]
            rows, r, term, trunc = result[g.name]
            if done:
                rows = self.grouped.envs[g.name].final_observations
            obs.update(zip(names, rows.copy(), strict=True))
            rewards.update(zip(names, r.tolist(), strict=True))
            terminated.update(dict.fromkeys(names, bool(term[0])))
            truncated.update(dict.fromkeys(names, bool(trunc[0])))
        if done:
            self.agents = []
        return obs, rewards, terminated, truncated, {a: {} for a in obs}


class GroupLearner:
    """One learning group of a :class:`GroupedMarketEnv`, every other group scripted,
    seen as a batched env: ``reset(seed)``, ``step(actions)`` -> (observations, rewards,
    terminated, truncated), ``final_observations``, the spaces, ``num_agents_total``
    (its rows). :class:`~rltrader.envs.sb3.SB3VecEnv` serves it (each row a sub-env) and
    :class:`GroupGymEnv` a single agent of it."""

    def __init__(self, grouped: GroupedMarketEnv, name: str) -> None:
        if name not in grouped.envs:
            raise ValueError(f"no group {name!r} (groups: {list(grouped.envs)})")
        others = [g.name for g in grouped.groups if g.name != name and g.policy is None]
        if others:
            raise ValueError(f"the other groups must be scripted; learning: {others}")
        if next(g for g in grouped.groups if g.name == name).policy is not None:
            raise ValueError(f"group {name!r} is scripted")
        self.grouped, self.name = grouped, name

    @property
    def env(self) -> BatchedMarketEnv:
        """The group's view (its buffers and spaces; rebuilt by ``reset(seed)``)."""
        return self.grouped.envs[self.name]

    def __getattr__(self, name: str) -> Any:       # spaces, buffers, n_agents, ...
        return getattr(self.grouped.envs[self.name], name)

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.grouped.reset(seed)[self.name]

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.grouped.step({self.name: actions})[self.name]


class GroupGymEnv(gym.Env):
    """Gymnasium single-agent env: the learner is the one agent of a learning group (of
    ``n_agents=1``) in one market of :class:`GroupedMarketEnv`, every other group
    scripted. Spaces and rewards are the group's; the episode ends after its horizon with
    the final observation, ``reset()`` continues the market, ``reset(seed=s)`` rebuilds
    it."""

    metadata = {"render_modes": []}

    def __init__(self, groups: Sequence[AgentGroup], learner: str, *, seed: int = 0) -> None:
        chosen = [g for g in groups if g.name == learner]
        if not chosen or chosen[0].n_agents != 1:
            raise ValueError(f"the learner {learner!r} must be a group of n_agents=1")
        self.learner = GroupLearner(GroupedMarketEnv(groups, n_envs=1, seed=seed), learner)
        if self.learner.env.num_agents_total != 1:
            raise ValueError("GroupGymEnv is one symbol (EnvConfig.symbols = 1)")
        self.observation_space = self.learner.env.single_observation_space
        self.action_space = self.learner.env.single_action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self.learner.reset(seed)[0].copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action)
        obs, rewards, terminated, truncated = self.learner.step(action[None])
        done = bool(terminated[0] or truncated[0])
        row = (self.learner.env.final_observations if done else obs)[0].copy()
        return row, float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}
