"""Reference policies for the batched market env and the evaluation that compares them.

A *policy* here is any callable ``policy(observations) -> actions`` over the batched env's
rows: ``observations`` is ``(num_agents_total, obs_dim)`` float32 and the actions follow the
env's ``single_action_space`` per row. Every agent of every market acts by the same policy.

- :class:`RandomPolicy`: uniform samples of the action space (seeded).
- :class:`FixedSpreadMaker`: ``action_mode="market_making"`` only. Quotes both sides at a
  fixed offset behind the touch with a fixed size, keeping (not re-sending) a quote whose
  price is unchanged, moving it when the touch moves (the env's REPLACE), and withdrawing
  the side that would push the inventory beyond ``max_inventory`` of the position limit.
- :func:`evaluate`: runs a policy for whole episodes on a freshly seeded env and returns
  every agent's episode return; :class:`Evaluation` summarises them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names

Policy = Callable[[np.ndarray], np.ndarray]


class RandomPolicy:
    """Uniformly random actions of ``action_space`` for ``n`` rows, from ``seed``."""

    def __init__(self, action_space: spaces.Space, n: int, seed: int = 0) -> None:
        if not isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete)):
            raise TypeError(f"RandomPolicy needs a Discrete or MultiDiscrete action space, "
                            f"got {action_space}")
        self.rng = np.random.default_rng(seed)
        self.n = n
        self.high = (np.asarray(action_space.nvec) if isinstance(action_space, spaces.MultiDiscrete)
                     else int(action_space.n))

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        shape = (self.n,) + np.shape(self.high)
        return self.rng.integers(0, self.high, size=shape, dtype=np.int64)


class FixedSpreadMaker:
    """Quotes a bid and an ask ``offset`` ticks behind the touch, withdrawing one side at an
    inventory limit (``action_mode="market_making"``).

    Parameters
    ----------
    config : EnvConfig
        The env's configuration; ``offset`` must be one of its ``quote_offsets`` and
        ``size`` one of its ``quote_sizes``.
    n : int
        Rows (agents) per call.
    offset : int
        Ticks behind the own-side touch (0: join the best bid / ask).
    size : float
        Quote size as a multiple of the agent's order size.
    max_inventory : float
        Fraction of the position limit (the ``inventory`` observation) at which the side
        that would add to the position is withdrawn, in (0, 1].
    """

    def __init__(self, config: EnvConfig, n: int, *, offset: int = 0, size: float = 1.0,
                 max_inventory: float = 0.5) -> None:
        if config.action_mode != "market_making":
            raise ValueError(f"FixedSpreadMaker needs action_mode='market_making', got "
                             f"{config.action_mode!r}")
        if offset not in config.quote_offsets:
            raise ValueError(f"offset {offset} is not one of EnvConfig.quote_offsets "
                             f"{config.quote_offsets}")
        if size not in config.quote_sizes:
            raise ValueError(f"size {size} is not one of EnvConfig.quote_sizes "
                             f"{config.quote_sizes}")
        if not 0 < max_inventory <= 1:
            raise ValueError(f"max_inventory must be in (0, 1], got {max_inventory}")
        self.no_quote = len(config.quote_offsets)
        self.inventory_column = observation_names(config.depth).index("inventory")
        self.max_inventory = max_inventory
        self.actions = np.empty((n, 3), dtype=np.int64)
        self.quote = (config.quote_offsets.index(offset), config.quote_sizes.index(size))

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        inventory = observations[:, self.inventory_column]
        index, size = self.quote
        a = self.actions
        a[:, 0] = np.where(inventory >= self.max_inventory, self.no_quote, index)
        a[:, 1] = np.where(inventory <= -self.max_inventory, self.no_quote, index)
        a[:, 2] = size
        return a


@dataclass(frozen=True)
class Evaluation:
    """Episode returns of every agent, ``(episodes, n_envs, n_agents)``, in the env's reward
    units (``pnl``: ticks per lot of the agent's order size)."""

    returns: np.ndarray

    @property
    def mean(self) -> float:
        """Mean episode return over all agent-episodes."""
        return float(self.returns.mean())

    @property
    def standard_error(self) -> float:
        """Standard error of :attr:`mean`, with each (episode, market) as one observation:
        agents sharing a market are not independent, markets are."""
        per_market = self.returns.mean(axis=2).ravel()
        if per_market.size < 2:
            return float("nan")
        return float(per_market.std(ddof=1) / math.sqrt(per_market.size))

    def minus(self, other: Evaluation) -> tuple[float, float]:
        """Mean and standard error of ``self - other`` on the same markets, paired by
        (episode, market): both must come from :func:`evaluate` with the same arguments."""
        if self.returns.shape != other.returns.shape:
            raise ValueError(f"cannot pair evaluations of shapes {self.returns.shape} and "
                             f"{other.returns.shape}")
        per_market = (self.returns - other.returns).mean(axis=2).ravel()
        error = (float(per_market.std(ddof=1) / math.sqrt(per_market.size))
                 if per_market.size > 1 else float("nan"))
        return float(per_market.mean()), error

    def __str__(self) -> str:
        episodes, n_envs, n_agents = self.returns.shape
        return (f"{self.mean:+.3f} ± {self.standard_error:.3f} "
                f"({episodes} x {n_envs} x {n_agents} agent-episodes)")


def evaluate(policy: Policy, config: EnvConfig, *, n_envs: int, n_agents: int, seed: int,
             episodes: int = 1) -> Evaluation:
    """Run ``policy`` for ``episodes`` whole episodes in a new env built from ``seed``.

    The same ``(config, n_envs, n_agents, seed)`` gives every policy the same markets,
    size classes and background traders up to the point where the agents' orders change
    them.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed)
    observations = env.reset(seed=seed)
    returns = np.zeros((episodes, env.num_agents_total))
    running = np.zeros(env.num_agents_total)
    done_episodes = 0
    while done_episodes < episodes:
        observations, rewards, terminated, truncated = env.step(policy(observations))
        running += rewards
        ended = terminated | truncated
        if ended.any():
            if not ended.all():
                raise RuntimeError("evaluate expects every market to end its episode in the "
                                   "same step (a fixed horizon)")
            returns[done_episodes] = running
            running[:] = 0.0
            done_episodes += 1
    return Evaluation(returns.reshape(episodes, n_envs, n_agents))


#: inventory limits (fractions of the position limit) the maker's grid tries
MAKER_INVENTORY_LIMITS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class MakerChoice:
    """The fixed-spread maker chosen by :func:`tune_maker`, with the whole grid's scores
    (rows of ``(offset, size, max_inventory, mean, standard_error)``, best first)."""

    offset: int
    size: float
    max_inventory: float
    grid: list[tuple[int, float, float, float, float]]

    def policy(self, config: EnvConfig, n: int) -> FixedSpreadMaker:
        return FixedSpreadMaker(config, n, offset=self.offset, size=self.size,
                                max_inventory=self.max_inventory)


def tune_maker(config: EnvConfig, *, n_envs: int, n_agents: int, seed: int,
               episodes: int = 1) -> MakerChoice:
    """The best :class:`FixedSpreadMaker` on ``seed``'s markets over every quote offset and
    size of ``config`` and the limits of :data:`MAKER_INVENTORY_LIMITS` (ties: the earlier
    of offset, size, limit)."""
    n = n_envs * n_agents
    grid = []
    for offset in config.quote_offsets:
        for size in config.quote_sizes:
            for limit in MAKER_INVENTORY_LIMITS:
                maker = FixedSpreadMaker(config, n, offset=offset, size=size,
                                         max_inventory=limit)
                e = evaluate(maker, config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                             episodes=episodes)
                grid.append((offset, size, limit, e.mean, e.standard_error))
    ranked = sorted(grid, key=lambda row: -row[3])
    offset, size, limit = ranked[0][:3]
    return MakerChoice(offset, size, limit, ranked)
