"""The portfolio manager's env (:class:`PortfolioEnv`) and its allocation baselines.

Description
-----------
One row per market: every ``decision_steps`` env steps the manager sets a target weight
per stock (a fraction of that stock's position limit, from ``levels``); the market's
per-stock traders (a :class:`~rltrader.training.portfolio.tracking.TargetTrackingEnv`,
one agent per market and symbol) execute the targets for the next ``decision_steps``
steps, acting through ``executor`` (a scripted executor or a frozen trained policy, one
batched call per env step for every trader of every market).

Action space
------------
``MultiDiscrete([len(levels)] * symbols)``: the level index of each stock's target
(opt-in: every target 0 during an episode's first ``PortfolioConfig.wait_decisions``
decisions, and a target of size below ``PortfolioConfig.min_weight`` set to 0).

Observation space
-----------------
``Box((9 x symbols + 3,), float32)`` (``10 x symbols + 3`` with ``cost_feature``); per
symbol, over the last decision's window of ``decision_steps`` steps: ``ret`` (the mid's
change / ``price_scale`` / sqrt(window)), ``trend`` (an EMA of ``ret`` over decisions,
weight ``trend_alpha``), ``vol`` (root mean square of the one-step mid change /
``price_scale``), ``vol_slow`` (an EMA of ``vol`` over decisions, weight ``vol_alpha``; 0
before the first window), ``spread`` (mean, / ``price_scale``), ``flow`` (the flow
imbalance at the window's end), ``position`` (/ position limit) and ``target`` (the
current one), ``episode_ret`` (the mean of ``ret`` over the episode's windows so far, 0 at
its start: the trailing estimate of a drift drawn per episode), with
``PortfolioConfig.cost_feature`` also ``cost`` (the round-trip cost of crossing, bp of the
mid now: the spread, an EMA over decisions of the windows' mean spread, weight
``cost_alpha``, set from the quotes at ``reset(seed)``, plus twice the taker fee); then
``sharpe_mean`` and ``sharpe_sd`` (the differential Sharpe ratio's running ``A`` and
``sqrt(max(B - A^2, 0))``, bp: the reward of a return depends on them, so they are part of
the state) and ``time_left`` (share of the episode left). Column ``k x symbols + s`` is
feature ``k`` of symbol ``s`` (:attr:`PortfolioEnv.features` order: ``FEATURES``, then
``cost``).

Rewards
-------
The portfolio's return over the window, ``r = sum of the traders' value changes (the env's
liquidation valuation, fees included) / capital`` in basis points (capital: the sum over
stocks of position limit x the mid at the market's build), and the reward is the
differential Sharpe ratio ``D`` of ``r`` (:class:`~rltrader.training.portfolio.sharpe.
DifferentialSharpe`, its averages running across episodes; with
``PortfolioConfig.sharpe_prior`` ``v`` they restart at every episode's start from ``A = 0``,
``B = v``, so that a flat episode's reward is exactly 0 and its first decision's cost
counts; with ``sharpe_guard`` its variance term is dropped while ``A <= 0``; with
``PortfolioConfig.hold_charge`` ``h``, a training charge, the ratio is of ``r - h x`` the
decision's gross target weight, and so are the observed ``sharpe_mean`` and ``sharpe_sd``
unless ``PortfolioConfig.charge_observed`` is off: then they are the uncharged ``r``'s, as
evaluation, never charged, shows them). :attr:`returns` keeps ``r``.

Episode end
-----------
The env's: every ``horizon`` steps (a multiple of ``decision_steps``) the positions are
liquidated (the cost in that decision's return) and the market's row is ``terminated``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from rltrader.core.constants import EMPTY_ASK
from rltrader.envs import EnvConfig
from rltrader.training.portfolio.sharpe import DifferentialSharpe
from rltrader.training.portfolio.tracking import (
    ScriptedExecutor,
    TargetTrackingEnv,
    check_trader_config,
)

FEATURES = ("ret", "trend", "vol", "vol_slow", "spread", "flow", "position", "target",
            "episode_ret")
#: the default target levels: fractions of the position limit
LEVELS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)

Executor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PortfolioConfig:
    """The portfolio manager's task.

    Attributes
    ----------
    env : EnvConfig
        The market (``symbols >= 2``, discrete actions, ``reward="pnl"`` without
        inventory penalties; ``horizon`` a multiple of ``decision_steps``).
    decision_steps : int
        Env steps per decision (K).
    levels : tuple of float
        Target weights a decision may set per stock, fractions of the position limit.
    sharpe_eta, sharpe_min_var : float
        The differential Sharpe ratio's rate and variance floor (bp^2).
    tracking_penalty : float
        The traders' tracking penalty (their reward; ticks per lot of order size).
    trend_alpha, vol_alpha : float
        EMA weights of the ``trend`` and ``vol_slow`` features per decision.
    cost_feature : bool
        Add the ``cost`` feature per stock (the round-trip cost of crossing, bp of the mid:
        spread plus twice the taker fee); off by default (the observation of the earlier
        checkpoints).
    cost_alpha : float
        EMA weight of the ``cost`` feature's spread per decision.
    sharpe_prior : float or None
        None (default): the differential Sharpe ratio's averages run across episodes. A
        value ``v > sharpe_min_var`` (bp^2): they restart at every episode's start from
        ``A = 0``, ``B = v`` (a prior variance of the returns), so a flat episode's reward
        is exactly 0 and entering a position costs from the first decision.
    sharpe_guard : bool
        Drop the ratio's variance term while its running mean ``A <= 0``
        (:mod:`~rltrader.training.portfolio.sharpe`): a losing stream's Sharpe ratio rises
        with its variance, and restarted from a small prior a manager learns to churn for
        it. Off by default.
    wait_decisions : int
        The first ``wait_decisions`` decisions of every episode set every target to 0
        whatever the action (a manager that cannot act before it has seen that many
        windows of the market; whoever runs in the env waits, baselines included).
        0 by default: no wait.
    min_weight : float
        A no-trade band: a target weight of size below ``min_weight`` is set to 0. 0 by
        default: none.
    hold_charge : float
        A training charge (bp of capital per decision per unit of gross target weight, the
        sum of the targets' sizes the decision set): the reward's differential Sharpe
        ratio sees the return minus ``hold_charge x gross``; :attr:`PortfolioEnv.returns`
        (what evaluation reads) does not. The experiment sets it on the training markets
        drawn without a premium (``--no-premium-charge``). 0 by default: none.
    charge_observed : bool
        With a ``hold_charge``, whether the observed running Sharpe ratio (``sharpe_mean``,
        ``sharpe_sd``) is the charged return's too (True, the default: the observation
        holds the reward's own averages) or the uncharged return's (False, the charge on
        the reward alone: the observation is what evaluation would show for the same
        positions, and the reward's averages are kept apart, unobserved). No effect
        without a charge.
    """

    env: EnvConfig = dataclasses.field(default_factory=lambda: EnvConfig(
        symbols=4, horizon=1_000, warmup_steps=200, size_classes=(1.0,), base_qty=2))
    decision_steps: int = 50
    levels: tuple[float, ...] = LEVELS
    sharpe_eta: float = 0.05
    sharpe_min_var: float = 0.01
    tracking_penalty: float = 0.5
    trend_alpha: float = 0.3
    vol_alpha: float = 0.1
    cost_feature: bool = False
    cost_alpha: float = 0.3
    sharpe_prior: float | None = None
    sharpe_guard: bool = False
    wait_decisions: int = 0
    min_weight: float = 0.0
    hold_charge: float = 0.0
    charge_observed: bool = True

    def __post_init__(self) -> None:
        check_trader_config(self.env)
        if self.env.symbols < 2:
            raise ValueError(f"a portfolio needs EnvConfig.symbols >= 2, got "
                             f"{self.env.symbols}")
        k = self.decision_steps
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"decision_steps must be an int >= 1, got {k!r}")
        if self.env.horizon % k:
            raise ValueError(f"EnvConfig.horizon ({self.env.horizon}) must be a multiple of "
                             f"decision_steps ({k}): decisions align with episodes")
        lv = self.levels
        if isinstance(lv, (str, bytes)) or not hasattr(lv, "__len__") or len(lv) < 2 or \
                not all(isinstance(x, (int, float)) and -1 <= x <= 1 for x in lv):
            raise ValueError(f"levels must be at least two weights in [-1, 1], got {lv!r}")
        for name in ("sharpe_eta", "trend_alpha", "vol_alpha", "cost_alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        for name in ("sharpe_min_var", "tracking_penalty"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        for name in ("cost_feature", "sharpe_guard", "charge_observed"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        w = self.wait_decisions
        if not isinstance(w, int) or isinstance(w, bool) or \
                not 0 <= w < self.env.horizon // k:
            raise ValueError(f"wait_decisions must be an int in [0, decisions per episode "
                             f"({self.env.horizon // k})), got {w!r}")
        m = self.min_weight
        if not isinstance(m, (int, float)) or isinstance(m, bool) or not 0 <= m <= 1:
            raise ValueError(f"min_weight must be in [0, 1], got {m!r}")
        h = self.hold_charge
        if not isinstance(h, (int, float)) or isinstance(h, bool) or \
                not 0 <= h < math.inf:
            raise ValueError(f"hold_charge must be finite and >= 0 (bp per decision per "
                             f"unit of gross weight), got {h!r}")
        v = self.sharpe_prior
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or
                              not self.sharpe_min_var < v < math.inf):
            raise ValueError(f"sharpe_prior must be None or finite and > sharpe_min_var "
                             f"({self.sharpe_min_var}), got {v!r}")


class PortfolioEnv:
    """The portfolio manager's batched env (module docstring); it has the batched env's
    protocol, so :class:`~rltrader.training.fast_ppo.FastPPO` trains it with one row per
    market (``n_agents = 1``).

    Parameters
    ----------
    config : PortfolioConfig
    executor : "aggressive", "patient" or callable
        The traders: a :class:`ScriptedExecutor` kind, or ``executor(obs) -> actions`` on
        the :class:`TargetTrackingEnv`'s observations (a trained trader's ``Policy``).
    n_envs : int
        Markets.
    seed : int
    source : sequence of HybridReplay, optional
        Real records as the stocks' books, one per book (``symbol x n_envs + market``,
        docs/envs.md "Several symbols"); None: the simulated market of ``config.env``.
    """

    def __init__(self, config: PortfolioConfig | None = None, *,
                 executor: str | Executor = "aggressive", n_envs: int = 1,
                 seed: int = 0, source: Any = None) -> None:
        self.config = c = PortfolioConfig() if config is None else config
        if not isinstance(c, PortfolioConfig):
            raise TypeError(f"config must be a PortfolioConfig, got {type(c).__name__}")
        self.traders = TargetTrackingEnv(c.env, n_envs=n_envs, n_agents=1, seed=seed,
                                         hold_steps=c.decision_steps,
                                         tracking_penalty=c.tracking_penalty,
                                         random_targets=False, source=source)
        if isinstance(executor, str):
            self.executor: Executor = ScriptedExecutor(self.traders, executor)
        elif callable(executor):
            self.executor = executor
        else:
            raise TypeError(f"executor must be a scripted kind or a callable, got "
                            f"{type(executor).__name__}")
        t = self.traders
        self.n_envs = self.num_agents_total = t.n_envs
        self.n_agents, self.n_symbols = 1, t.n_symbols
        self.levels = np.asarray(c.levels, dtype=np.float64)
        self.single_action_space = spaces.MultiDiscrete([len(self.levels)] * self.n_symbols)
        #: the per-symbol features, in column order
        self.features = observation_features(c)
        self.obs_dim = len(self.features) * self.n_symbols + 3
        big = np.finfo(np.float32).max
        self.single_observation_space = spaces.Box(-big, big, (self.obs_dim,), np.float32)
        n, s = self.n_envs, self.n_symbols
        self.observations = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.final_observations = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        #: the last decision's portfolio return per market (bp of capital)
        self.returns = np.zeros(n)
        #: the last decision's lots traded and tracking error (mean |target - position| /
        #: limit over the window's steps and the stocks), per market
        self.traded = np.zeros(n)
        self.tracking_error = np.zeros(n)
        #: the running Sharpe ratio the manager observes (the reward's, unless
        #: ``charge_observed`` is off and a charge is on)
        self.sharpe = DifferentialSharpe(n, c.sharpe_eta, c.sharpe_min_var, c.sharpe_guard)
        # a charge on the reward alone: the reward's averages, of the charged return, apart
        self._charged = DifferentialSharpe(
            n, c.sharpe_eta, c.sharpe_min_var, c.sharpe_guard) \
            if c.hold_charge and not c.charge_observed else None
        self._trend = np.zeros((n, s))
        self._episode_sum = np.zeros((n, s))
        self._episode_windows = np.zeros(n)
        self._vol = np.zeros((n, s))
        self._spread_slow = np.zeros((n, s))    # ticks
        self._mid = np.full((n, s), np.nan)     # the last two-sided mid, ticks
        self._step_in_episode = 0
        self.steps_per_episode = c.env.horizon // c.decision_steps
        col = t.columns
        self._ret, self._spread, self._flow = col["return_1"], col["spread"], \
            col["flow_imbalance"]
        self._inventory = col["inventory"]
        self.seed = seed
        self._capital()

    def _quotes(self) -> tuple[np.ndarray, np.ndarray]:
        """The books' best bid and ask now (ticks), ``(n_envs, symbols)``."""
        env = self.traders.env
        # a simulated market's books are one core's; replays' are book 0 of each
        books = ([(r.books, 0) for r in env.sources] if env.sources else
                 [(env.kernel.books, b) for b in range(env.n_books)])
        bid = np.array([core.best_bid(b) for core, b in books], dtype=np.float64)
        ask = np.array([core.best_ask(b) for core, b in books], dtype=np.float64)
        shape = (self.n_symbols, self.n_envs)
        return bid.reshape(shape).T, ask.reshape(shape).T

    @staticmethod
    def _two_sided(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
        """Books with both sides quoted (an empty side reads 0 or ``EMPTY_ASK``)."""
        return (bid > 0) & (ask < EMPTY_ASK) & (ask > bid)

    def _capital(self) -> None:
        """Capital per market (ticks x lots): the stocks' position limits at their mids
        now (at the build); the ``cost`` feature's spread starts from the quotes now."""
        bid, ask = self._quotes()
        limit = self.traders.position_limit.reshape(self.n_symbols, self.n_envs).T
        #: per market, ticks x lots
        self.capital = (limit * (bid + ask) / 2.0).sum(1)
        # a one-sided book has no spread: it starts from its symbol's mean over the
        # two-sided ones (0 when there are none), not from EMPTY_ASK - bid
        quoted = self._two_sided(bid, ask)
        spread = np.where(quoted, ask - bid, np.nan)
        with np.errstate(invalid="ignore"):
            fill = np.nan_to_num(np.nanmean(np.where(quoted.any(0), spread, 0.0), axis=0))
        self._spread_slow[:] = np.where(quoted, ask - bid, fill)
        self._mid[:] = np.where(quoted, (bid + ask) / 2.0, np.nan)

    # ---- actions ----------------------------------------------------------------------

    def weights(self, actions: Any) -> np.ndarray:
        """Level indices ``(n_envs, symbols)`` (checked) as target weights (before the
        wait and the no-trade band of :meth:`targets`)."""
        a = np.asarray(actions)
        if a.shape != (self.n_envs, self.n_symbols):
            raise ValueError(f"actions must have shape {(self.n_envs, self.n_symbols)}, got "
                             f"{a.shape}")
        if a.dtype.kind not in "iu":
            if a.dtype.kind != "f" or not np.isfinite(a).all() or np.any(a != np.floor(a)):
                raise TypeError(f"actions must be level indices (integers), got {a.dtype}")
        if a.min() < 0 or a.max() >= len(self.levels):
            raise ValueError(f"actions must be level indices in [0, {len(self.levels)}), got "
                             f"values in [{a.min()}, {a.max()}]")
        return self.levels[a.astype(np.int64)]

    @property
    def waiting(self) -> bool:
        """Whether the next decision is one of the episode's first ``wait_decisions``
        (its targets are 0 whatever the action)."""
        return self._step_in_episode < self.config.wait_decisions

    def targets(self, actions: Any) -> np.ndarray:
        """The target weights ``(n_envs, symbols)`` the next decision sets: the actions'
        levels, 0 while :attr:`waiting` and where of size below ``min_weight``."""
        w = self.weights(actions)
        if self.waiting:
            return np.zeros_like(w)
        return np.where(np.abs(w) < self.config.min_weight, 0.0, w)

    # ---- the batched env's protocol ---------------------------------------------------

    def reset(self, seed: int | None = None) -> np.ndarray:
        """New episodes; ``seed`` rebuilds the markets (and clears the Sharpe averages)."""
        self.traders.reset(seed)
        if seed is not None:
            self.seed = seed
            self.sharpe.reset()
            if self._charged is not None:
                self._charged.reset()
            self._trend[:] = 0.0
            self._vol[:] = 0.0
            self._capital()
        if self.config.sharpe_prior is not None:    # every reset begins episodes
            self._restart(np.ones(self.n_envs, dtype=bool))
        self._step_in_episode = 0
        self._episode_sum[:] = 0.0
        self._episode_windows[:] = 0.0
        self.terminated[:] = False
        self.rewards[:] = 0.0
        zero = np.zeros((self.n_envs, self.n_symbols))
        self._features(zero, None, zero, self.traders.observations)
        return self.observations

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One decision: set the targets, let the traders work ``decision_steps`` env
        steps; returns this env's buffers."""
        t, n, s, k = self.traders, self.n_envs, self.n_symbols, self.config.decision_steps
        # trader rows are symbol x n_envs + market
        targets = self.targets(actions)
        t.set_targets(targets.T.reshape(-1))
        value = np.zeros(n)
        traded = np.zeros(n)
        gap = np.zeros(n)
        ret = np.zeros((s, n))
        square = np.zeros((s, n))
        spread = np.zeros((s, n))
        ended = np.zeros(n, dtype=bool)
        obs = t.observations
        for _ in range(k):
            obs, _, terminated, truncated = t.step(self.executor(obs))
            value += t.pnl.reshape(s, n).sum(0)
            traded += t.traded.reshape(s, n).sum(0)
            gap += np.abs(obs[:, -2]).reshape(s, n).mean(0)
            r = obs[:, self._ret].reshape(s, n).astype(np.float64)
            ret += r
            square += r * r
            spread += obs[:, self._spread].reshape(s, n)
            ended |= (terminated | truncated).reshape(s, n).any(0)
        np.multiply(value, 1e4 / self.capital, out=self.returns)
        self.traded[:] = traded
        self.tracking_error[:] = gap / k
        if self.config.hold_charge:     # training only: the reward sees the charge
            charged = self.returns - self.config.hold_charge * np.abs(targets).sum(1)
            if self._charged is None:   # the observed averages are the reward's
                self.rewards[:] = self.sharpe.update(charged)
            else:
                self.sharpe.update(self.returns)
                self.rewards[:] = self._charged.update(charged)
        else:
            self.rewards[:] = self.sharpe.update(self.returns)
        self._step_in_episode += 1
        if ended.any():
            self._step_in_episode = 0
        self.terminated[:] = ended
        if self.config.sharpe_prior is not None and ended.any():
            self._restart(ended)
        ret = ret.T / math.sqrt(k)
        self._episode_sum += ret
        self._episode_windows += 1.0
        self._episode_sum[ended] = 0.0          # a new episode begins: no window yet
        self._episode_windows[ended] = 0.0
        self._features(ret, np.sqrt(square.T / k), spread.T / k, obs)
        self.final_observations[ended] = self.observations[ended]
        return self.observations, self.rewards, self.terminated, self.truncated

    def _restart(self, rows: np.ndarray) -> None:
        """The Sharpe averages of ``rows`` (a boolean mask) restart from the prior."""
        self.sharpe.restart(rows, self.config.sharpe_prior)
        if self._charged is not None:
            self._charged.restart(rows, self.config.sharpe_prior)

    def _features(self, ret: np.ndarray, vol: np.ndarray | None, spread: np.ndarray,
                  trader_obs: np.ndarray) -> None:
        """The observation after a window (``vol`` None: no window yet, after a reset)."""
        n, s = self.n_envs, self.n_symbols
        c = self.config
        self._trend += c.trend_alpha * (ret - self._trend)
        had_window = vol is not None
        if vol is None:
            vol = np.zeros((n, s))
        else:
            # the first window sets the slow volatility; later ones move it
            alpha = np.where(self._vol > 0, c.vol_alpha, 1.0)
            self._vol += alpha * (vol - self._vol)
        flow = trader_obs[:, self._flow].reshape(s, n).T
        position = trader_obs[:, self._inventory].reshape(s, n).T
        target = self.traders.target.reshape(s, n).T
        o = self.observations
        episode = self._episode_sum / np.maximum(self._episode_windows, 1.0)[:, None]
        columns = [ret, self._trend, vol, self._vol, spread, flow, position, target, episode]
        if c.cost_feature:
            columns.append(self._cost(spread if had_window else None))
        for j, x in enumerate(columns):
            o[:, j * s:(j + 1) * s] = x
        a, b = self.sharpe.a, self.sharpe.b
        o[:, -3] = a
        o[:, -2] = np.sqrt(np.maximum(b - a * a, 0.0))
        o[:, -1] = 1.0 - self._step_in_episode / self.steps_per_episode

    def _cost(self, spread: np.ndarray | None) -> np.ndarray:
        """The ``cost`` feature: the slow spread (moved by a window's mean ``spread``, in
        units of ``price_scale``; None: no window, the quotes' spread stays) in bp of the
        mid now, plus twice the taker fee in bp."""
        env = self.config.env
        if spread is not None:
            self._spread_slow += self.config.cost_alpha * (
                spread * env.price_scale - self._spread_slow)
        bid, ask = self._quotes()
        quoted = self._two_sided(bid, ask)
        self._mid[quoted] = ((bid + ask) / 2.0)[quoted]   # one-sided: the last mid
        mid = self._mid
        return 1e4 * self._spread_slow / np.where(mid > 0, mid, np.inf) + \
            2.0 * env.taker_fee_ppm / 100.0

    def column(self, feature: str) -> slice:
        """The observation columns of ``feature`` (one per symbol)."""
        j = self.features.index(feature)
        return slice(j * self.n_symbols, (j + 1) * self.n_symbols)


class StackedPortfolioEnv:
    """Several :class:`PortfolioEnv` (markets of different presets, say) as one batched env
    for the trainer: their rows one after the other, the same spaces (the same symbols).
    ``reset(seed)`` rebuilds env ``i`` from ``SeedSequence(seed, spawn_key=(i,))``."""

    def __init__(self, envs: list[PortfolioEnv]) -> None:
        if not envs or not all(isinstance(e, PortfolioEnv) for e in envs):
            raise TypeError("envs must be a non-empty list of PortfolioEnv")
        if len({e.obs_dim for e in envs}) != 1 or len({e.n_symbols for e in envs}) != 1:
            raise ValueError("stacked portfolio envs must have the same symbols")
        self.envs = envs
        first = envs[0]
        self.n_agents, self.n_symbols = 1, first.n_symbols
        self.n_envs = self.num_agents_total = sum(e.n_envs for e in envs)
        self.single_action_space = first.single_action_space
        self.single_observation_space = first.single_observation_space
        self.obs_dim = first.obs_dim
        self._cuts = np.cumsum([0] + [e.n_envs for e in envs])
        n = self.n_envs
        self.observations = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.final_observations = np.zeros_like(self.observations)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)

    def _rows(self, i: int) -> slice:
        return slice(int(self._cuts[i]), int(self._cuts[i + 1]))

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i, env in enumerate(self.envs):
            own = None if seed is None else int(np.random.SeedSequence(
                seed, spawn_key=(i,)).generate_state(1)[0])
            self.observations[self._rows(i)] = env.reset(own)
        self.terminated[:] = False
        self.truncated[:] = False
        self.rewards[:] = 0.0
        return self.observations

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        a = np.asarray(actions)
        if a.shape[:1] != (self.n_envs,):
            raise ValueError(f"actions must have {self.n_envs} rows, got shape {a.shape}")
        for i, env in enumerate(self.envs):
            rows = self._rows(i)
            obs, reward, terminated, truncated = env.step(a[rows])
            self.observations[rows] = obs
            self.rewards[rows] = reward
            self.terminated[rows] = terminated
            self.truncated[rows] = truncated
            self.final_observations[rows] = env.final_observations
        return self.observations, self.rewards, self.terminated, self.truncated


def observation_features(config: PortfolioConfig) -> tuple[str, ...]:
    """The per-symbol features of ``config``'s observation, in column order
    (:attr:`PortfolioEnv.features`): ``FEATURES``, then ``cost`` when it is on."""
    return FEATURES + (("cost",) if config.cost_feature else ())


# ---- the out-of-distribution guard ------------------------------------------------------------

#: the observation's last three columns, after the per-symbol features
TAIL = ("sharpe_mean", "sharpe_sd", "time_left")


def guard_clips(spec: str, features: tuple[str, ...], symbols: int) -> list[float]:
    """``--manager-guard``'s ``spec`` as one clip per observation column (standard
    deviations of the manager's training statistics): ``"C"`` every column at ``C``;
    ``"FEATURE=C,..."`` those features' columns (every symbol's; ``FEATURES``, ``cost``,
    or ``sharpe_mean``, ``sharpe_sd``, ``time_left``) at ``C`` and the others not read
    (``inf``); ``"C,FEATURE=C2,..."`` every column at ``C`` but those."""
    names = list(features) + list(TAIL)
    default = math.inf
    per: dict[str, float] = {}
    parts = [part.strip() for part in str(spec).split(",")]
    for i, part in enumerate(parts):
        name, eq, value = part.rpartition("=")
        name, value = name.strip(), value.strip()
        if not eq and i > 0:
            raise ValueError(f"manager guard {spec!r}: only the first item may be a bare "
                             f"clip (then FEATURE=CLIP), got {part!r}")
        if eq and name not in names:
            raise ValueError(f"manager guard {spec!r}: unknown feature {name!r} (the "
                             f"observation's: {', '.join(names)})")
        try:
            clip = float(value)
        except ValueError:
            raise ValueError(f"manager guard {spec!r}: {value!r} is not a number") from None
        if not math.isfinite(clip) or clip <= 0:
            raise ValueError(f"manager guard {spec!r}: a clip is a finite number > 0, got "
                             f"{value!r}")
        if eq:
            if name in per:
                raise ValueError(f"manager guard {spec!r}: {name!r} given twice")
            per[name] = clip
        else:
            default = clip
    clips = [per.get(f, default) for f in features for _ in range(symbols)]
    return clips + [per.get(f, default) for f in TAIL]


def stand_aside(levels: tuple[float, ...] | np.ndarray, symbols: int) -> list[int]:
    """The manager's stand-aside action: every stock's target at the level 0."""
    lv = [float(x) for x in levels]
    if 0.0 not in lv:
        raise ValueError(f"the levels {lv} have no 0: a guarded manager cannot stand aside")
    return [lv.index(0.0)] * symbols


def guard_manager(policy: Any, config: PortfolioConfig, spec: str) -> Any:
    """``policy`` (a manager of the task ``config``; an already guarded one's own guard
    replaced) as a :class:`~rltrader.training.ppo.guard.GuardedPolicy`: where a column of
    its observation lies beyond its clip (:func:`guard_clips`) of the manager's training
    statistics, every target is 0 (:func:`stand_aside`)."""
    from rltrader.training.ppo.guard import GuardedPolicy

    symbols = config.env.symbols
    inner = policy.policy if isinstance(policy, GuardedPolicy) else policy
    return GuardedPolicy(inner, clip=guard_clips(spec, observation_features(config), symbols),
                         action=stand_aside(config.levels, symbols))


# ---- allocation baselines -------------------------------------------------------------------

class Allocator:
    """A scripted manager: ``allocator(obs) -> level indices (n_envs, symbols)`` for a
    :class:`PortfolioEnv`."""

    name = "allocator"

    def __init__(self, env: PortfolioEnv, gross: float = 0.5) -> None:
        if not 0 < gross <= 1:
            raise ValueError(f"gross must be in (0, 1], got {gross!r}")
        self.env, self.gross = env, float(gross)

    def nearest(self, weights: np.ndarray) -> np.ndarray:
        lv = self.env.levels
        return np.abs(weights[..., None] - lv).argmin(-1).astype(np.int64)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Flat(Allocator):
    """No position: the cash baseline (return 0 up to the traders' residual moves)."""

    name = "flat"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.nearest(np.zeros((len(obs), self.env.n_symbols)))


class EqualWeight(Allocator):
    """Every stock at ``gross`` of its limit, rebalanced at every decision."""

    name = "equal_weight"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.nearest(np.full((len(obs), self.env.n_symbols), self.gross))


class InverseVolatility(Allocator):
    """Weights proportional to 1 / the slow volatility estimate (``vol_slow``), the gross
    exposure that of :class:`EqualWeight` (``gross x symbols``), each at most 1 (on the
    grid of levels); equal weights while no volatility is known."""

    name = "inverse_vol"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        vol = np.asarray(obs[:, self.env.column("vol_slow")], dtype=np.float64)
        s = self.env.n_symbols
        inverse = np.where(vol > 0, 1.0 / np.maximum(vol, 1e-12), 0.0)
        total = inverse.sum(1, keepdims=True)
        w = np.where(total > 0, self.gross * s * inverse / np.maximum(total, 1e-12),
                     self.gross)
        return self.nearest(np.minimum(w, 1.0))


class BuyAndHold(Allocator):
    """Equal weights bought at an episode's first decision (under a wait,
    ``PortfolioConfig.wait_decisions``, the first after it), then held: the targets never
    change (the traders stop trading once they reach them)."""

    name = "buy_and_hold"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        # time_left is 1 - decision / decisions per episode: the decisions up to the
        # first that acts (half a decision's margin for the float32 column)
        env = self.env
        first = obs[:, -1] > 1.0 - (env.config.wait_decisions + 0.5) / env.steps_per_episode
        keep = np.asarray(obs[:, self.env.column("target")], dtype=np.float64)
        w = np.where(first[:, None], self.gross, keep)
        return self.nearest(w)


class Momentum(Allocator):
    """Time-series momentum on the episode's trailing return: each stock at ``+gross``
    when its ``episode_ret`` (the mean window return since the episode began) is
    positive, ``-gross`` when negative; equal weight before the episode's first window
    (the drift's prior sign, when it has one, is long)."""

    name = "momentum"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        mean = np.asarray(obs[:, self.env.column("episode_ret")], dtype=np.float64)
        w = np.where(mean > 0, self.gross, np.where(mean < 0, -self.gross, self.gross))
        return self.nearest(w)


class MeanVariance(Allocator):
    """Mean-variance weights from trailing estimates: ``w ~ mu / sigma^2`` per stock (a
    diagonal covariance), ``mu`` the episode's mean window return (``episode_ret``) and
    ``sigma`` the slow volatility estimate (``vol_slow``, the same units: a window's
    return / sqrt(window) has the one-step s.d.), scaled to the gross exposure of
    :class:`EqualWeight` (``gross x symbols``), each at most 1 in size, on the grid of
    levels; equal weights before the episode's first window or while no volatility is
    known."""

    name = "mean_variance"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        mean = np.asarray(obs[:, self.env.column("episode_ret")], dtype=np.float64)
        vol = np.asarray(obs[:, self.env.column("vol_slow")], dtype=np.float64)
        s = self.env.n_symbols
        raw = np.where(vol > 0, mean / np.maximum(vol, 1e-12) ** 2, 0.0)
        total = np.abs(raw).sum(1, keepdims=True)
        w = np.where(total > 0, self.gross * s * raw / np.maximum(total, 1e-300), self.gross)
        return self.nearest(np.clip(w, -1.0, 1.0))


BASELINES = {cls.name: cls for cls in (Flat, EqualWeight, InverseVolatility, BuyAndHold,
                                       Momentum, MeanVariance)}
