"""Paired, seeded evaluation of scripted or learned strategies in the batched env.

Evaluation
----------
:func:`run_lineup` runs strategies in chosen rows of ``n_envs`` markets for ``episodes``
whole episodes under each seed (one ``env.step`` per step, vectorised over markets) and
returns a :class:`Run`: per-episode reward sums, real-account positions and cash from
``env.accounts()``, the position the agent observes, and the largest real position against
``env.position_limit``. :func:`evaluate_strategy` places one strategy in one row.
:meth:`Run.summary`, :meth:`Run.rows` (fairness: row against row, same markets) and
:meth:`Run.minus` (strategy against another on the same seeds) give a :class:`Summary`:
mean, standard error and a Student-t 95 % interval, with each market (seed, env), its
episodes averaged, as one independent observation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names
from rltrader.training.exploits import Hold, Strategy

# ---- statistics -----------------------------------------------------------------------


def student_t_quantile(p: float, dof: int) -> float:
    """Quantile ``p`` of Student's t with ``dof`` degrees of freedom (numpy only).

    Bisection on the CDF, integrated by Simpson's rule (error below 1e-9 for ``dof >= 1``,
    ``p`` in [0.5, 0.9999]); the normal quantile beyond 10,000 degrees of freedom.

    Parameters
    ----------
    p : float
        Probability in (0, 1).
    dof : int
        Degrees of freedom, >= 1.

    Returns
    -------
    float
        ``t`` with ``P(T <= t) = p``.
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    if p < 0.5:
        return -student_t_quantile(1 - p, dof)
    if dof == 1:
        return math.tan(math.pi * (p - 0.5))
    if dof == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    normal = dof > 10_000
    log_c = (-0.5 * math.log(2 * math.pi) if normal else math.lgamma((dof + 1) / 2)
             - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi))

    def cdf(t: float) -> float:
        x = np.linspace(0.0, t, 4001)
        log_f = -x * x / 2 if normal else -(dof + 1) / 2 * np.log1p(x * x / dof)
        f = np.exp(log_c + log_f)
        h = t / 4000
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    low, high = 0.0, 1.0
    while cdf(high) < p:
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class Summary:
    """Mean of a sample of independent observations with its standard error and a
    Student-t confidence interval."""

    mean: float
    standard_error: float
    ci_low: float
    ci_high: float
    n: int
    level: float = 0.95

    @classmethod
    def of(cls, sample: Iterable[float] | np.ndarray, level: float = 0.95) -> Summary:
        """Summary of ``sample`` (NaN error and interval for fewer than two values)."""
        x = np.asarray(sample, dtype=np.float64).ravel()
        if x.size == 0:
            raise ValueError("cannot summarise an empty sample")
        mean = float(x.mean())
        if x.size < 2:
            return cls(mean, math.nan, math.nan, math.nan, 1, level)
        error = float(x.std(ddof=1) / math.sqrt(x.size))
        half = student_t_quantile(0.5 + level / 2, x.size - 1) * error
        return cls(mean, error, mean - half, mean + half, int(x.size), level)

    def as_dict(self) -> dict[str, float]:
        """The numbers, for JSON (:func:`interval_text` formats it back)."""
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "standard_error": self.standard_error, "n": self.n}

    def __str__(self) -> str:
        return (f"{self.mean:+.2f} ± {self.standard_error:.2f} "
                f"({self.level:.0%} CI {self.ci_low:+.2f} .. {self.ci_high:+.2f}, n={self.n})")


def interval_text(summary: dict[str, float], digits: int = 2) -> str:
    """``+mean [+low, +high]`` of a :meth:`Summary.as_dict` (report tables)."""
    return (f"{summary['mean']:+.{digits}f} [{summary['ci_low']:+.{digits}f}, "
            f"{summary['ci_high']:+.{digits}f}]")


# ---- evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What :func:`run_lineup` measured; arrays are indexed ``[seed, episode, env, agent]``
    (or ``[seed, env, agent]``).

    Attributes
    ----------
    names : tuple of str
        The strategy of each agent row.
    seeds : tuple of int
    returns : ndarray of float64
        Sum of the agent's rewards over the episode (``reward="pnl"``: ticks per lot of its
        order size).
    position, cash : ndarray of int64
        The real account (``env.accounts()``, since the market was built) right after the
        episode's last step.
    observed_position : ndarray of float64
        Position the agent observes then (``inventory`` x limit, on the first observation
        of the next episode).
    max_abs_position : ndarray of int64, ``[seed, env, agent]``
        Largest ``|position|`` of the real account after any step.
    position_limit, order_qty : ndarray of int64, ``[seed, env, agent]``
    """

    names: tuple[str, ...]
    seeds: tuple[int, ...]
    returns: np.ndarray
    position: np.ndarray
    cash: np.ndarray
    observed_position: np.ndarray
    max_abs_position: np.ndarray
    position_limit: np.ndarray
    order_qty: np.ndarray

    def per_market(self, agents: int | Sequence[int]) -> np.ndarray:
        """Mean episode return of ``agents`` (summed over a list: a pair's joint return)
        per market, shape ``(n_seeds * n_envs,)``: the independent observations."""
        r = self.returns[..., agents]
        if r.ndim == 4:
            r = r.sum(axis=3)
        return r.mean(axis=1).ravel()

    def summary(self, agents: int | Sequence[int] = 0, level: float = 0.95) -> Summary:
        """Mean episode return of ``agents`` with its error, markets as the units."""
        return Summary.of(self.per_market(agents), level)

    def rows(self, a: int, b: int, level: float = 0.95) -> Summary:
        """Fairness: agent ``a`` minus agent ``b`` of the same markets, paired."""
        return Summary.of(self.per_market(a) - self.per_market(b), level)

    def minus(self, other: Run, agents: int | Sequence[int] = 0,
              other_agents: int | Sequence[int] | None = None, level: float = 0.95) -> Summary:
        """``agents`` here minus ``other_agents`` (default the same) of ``other``, paired
        by market: both runs must share seeds, ``n_envs`` and episodes."""
        if self.returns.shape[:3] != other.returns.shape[:3] or self.seeds != other.seeds:
            raise ValueError("runs to pair must share seeds, episodes and n_envs, got "
                             f"{self.seeds}, {self.returns.shape} and {other.seeds}, "
                             f"{other.returns.shape}")
        theirs = other.per_market(agents if other_agents is None else other_agents)
        return Summary.of(self.per_market(agents) - theirs, level)

    def limit_ratio(self, agents: int | Sequence[int] = 0) -> float:
        """Largest real ``|position| / position_limit`` of ``agents`` in any market."""
        return float((self.max_abs_position[..., agents]
                      / self.position_limit[..., agents]).max())


def run_lineup(config: EnvConfig, lineup: Sequence[tuple[Strategy, Sequence[int]]], *,
               n_envs: int, n_agents: int, seeds: Sequence[int] = (0,),
               episodes: int = 1, source: Any = None) -> Run:
    """Run strategies in chosen agent rows of every market; the other rows hold.

    Parameters
    ----------
    config : EnvConfig
        The env's configuration (every market ends its episode after ``horizon`` steps).
    lineup : sequence of (Strategy, agents)
        Each strategy with the agent indices (within a market) it plays; a row appears
        at most once.
    n_envs, n_agents : int
        Markets and agents per market.
    seeds : sequence of int
        One env built from each seed; the same seeds give every lineup the same markets.
    episodes : int
        Whole episodes recorded per market and seed.
    source : callable, optional
        ``source(seed)`` gives the env's data source for that seed (one ``HybridReplay``
        per env: markets replaying real data); default: the simulated market.

    Returns
    -------
    Run
    """
    if episodes < 1 or not seeds:
        raise ValueError(f"need episodes >= 1 and a seed, got {episodes} and {list(seeds)}")
    names: list[str | None] = [None] * n_agents
    placed: list[tuple[Strategy, list[int]]] = []
    for strategy, agents in lineup:
        agents = [int(i) for i in agents]
        if strategy.n_agents is not None and len(agents) != strategy.n_agents:
            raise ValueError(f"{strategy.name} plays {strategy.n_agents} agents, got {agents}")
        for i in agents:
            if not 0 <= i < n_agents or names[i] is not None:
                raise ValueError(f"agent {i} is outside 0..{n_agents - 1} or placed twice")
            names[i] = strategy.name
        placed.append((strategy, agents))
    idle = [i for i in range(n_agents) if names[i] is None]
    if idle:
        placed.append((Hold(), idle))
    row_names = tuple(name or "hold" for name in names)
    shape = (len(seeds), episodes, n_envs, n_agents)
    out = {name: np.zeros(shape, dtype) for name, dtype in (
        ("returns", np.float64), ("position", np.int64), ("cash", np.int64),
        ("observed_position", np.float64))}
    per_env = {name: np.zeros((len(seeds), n_envs, n_agents), np.int64)
               for name in ("max_abs_position", "position_limit", "order_qty")}
    inventory = observation_names(config.depth).index("inventory")
    for s, seed in enumerate(seeds):
        env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                               source=None if source is None else source(seed))
        limit = np.asarray(env.position_limit).reshape(n_envs, n_agents)
        per_env["position_limit"][s] = limit
        per_env["order_qty"][s] = np.asarray(env.order_qty).reshape(n_envs, n_agents)
        for strategy, _ in placed:
            strategy.begin(env)
        discrete = config.action_mode in ("discrete", "execution")     # Discrete spaces
        actions = np.zeros((n_envs, n_agents) if discrete else (n_envs, n_agents, 3), np.int64)
        running = np.zeros((n_envs, n_agents))
        done = np.zeros(n_envs, dtype=np.int64)
        horizon, steps = config.horizon, 0
        while done.min() < episodes:
            steps += 1
            if steps > (episodes + 1) * horizon:
                raise RuntimeError(f"markets did not end {episodes} episodes in {steps} steps")
            step = np.array(env.episode_step, dtype=np.int64)
            for strategy, agents in placed:
                actions[:, agents] = strategy.actions(step, horizon, env, agents)
            observations, rewards, terminated, truncated = env.step(actions)
            running += rewards.reshape(n_envs, n_agents)
            account = env.accounts()
            position = account["position"]
            np.maximum(per_env["max_abs_position"][s], np.abs(position),
                       out=per_env["max_abs_position"][s])
            ended = np.flatnonzero((terminated | truncated).reshape(n_envs, n_agents).any(axis=1)
                                   & (done < episodes))
            if ended.size:
                e = done[ended]
                out["returns"][s, e, ended] = running[ended]
                out["position"][s, e, ended] = position[ended]
                out["cash"][s, e, ended] = account["cash"][ended]
                seen = observations.reshape(n_envs, n_agents, -1)[ended, :, inventory]
                out["observed_position"][s, e, ended] = seen * limit[ended]
                done[ended] += 1
            running[(terminated | truncated).reshape(n_envs, n_agents)] = 0.0
    return Run(row_names, tuple(int(x) for x in seeds), **out, **per_env)


def evaluate_strategy(strategy: Strategy, config: EnvConfig | None = None, *,
                      agent: int = 0, n_agents: int | None = None,
                      others: Strategy | None = None, n_envs: int = 64,
                      seeds: Sequence[int] = (0, 1, 2), episodes: int = 3) -> Run:
    """Run ``strategy`` from agent ``agent`` (a pair: ``agent`` and ``agent + 1``) of each
    of ``n_envs`` markets, the other rows running ``others`` (default: holding).

    ``n_agents`` defaults to the rows the strategy needs. See :func:`run_lineup`.
    """
    config = EnvConfig() if config is None else config
    width = strategy.n_agents or 1
    n_agents = agent + width if n_agents is None else n_agents
    mine = list(range(agent, agent + width))
    lineup: list[tuple[Strategy, Sequence[int]]] = [(strategy, mine)]
    rest = [i for i in range(n_agents) if i not in mine]
    if others is not None and others.n_agents is not None:
        raise ValueError(f"others must be a one-row strategy, got {others.name}")
    if others is not None and rest:
        lineup.append((others, rest))
    return run_lineup(config, lineup, n_envs=n_envs, n_agents=n_agents, seeds=seeds,
                      episodes=episodes)
