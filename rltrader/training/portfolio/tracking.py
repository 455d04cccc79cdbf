"""The per-stock traders' task: hold a target position cheaply (:class:`TargetTrackingEnv`),
and scripted executors of it (:class:`ScriptedExecutor`).

Every row of a multi-symbol :class:`~rltrader.envs.BatchedMarketEnv` (row ``book x
n_agents + i``, books ``symbol x n_envs + market``) is one stock's trader. Its target is a
fraction of its position limit, set by a caller (the portfolio manager) or, for training,
drawn at random every ``hold_steps`` steps.

Observation: the env row's observation (docs/envs.md) and two columns: ``target_gap``
= (target - position) / position limit (target and position in lots, the position the
account's), and ``target_age`` = steps since the target was set / ``hold_steps``.

Reward per step (ticks per lot of order size): the env's ``pnl`` reward (the account's
value change under the env's liquidation valuation, fees included) minus
``tracking_penalty x |target - position| / order size``; with ``relative=True``, also
minus the target's own mark-to-mid change (``target x`` the mid's move / order size).
That term is the market risk of the target, which the portfolio manager chose and the
trader cannot change (but for its own impact on the mid, a cost it should bear): taking
it out leaves the trader the PnL of its deviation from the target and its trading costs,
a far less noisy signal to learn from. :attr:`pnl` holds the value change itself (ticks x
lots), which the portfolio manager sums.

Action space: the env's discrete one (hold, limit buy / sell at ``limit_offsets``,
market buy / sell, cancel all). Episodes, auto-reset and liquidation are the env's: at
an episode's end the positions are flattened, and a trader rebuilds its target from 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.envs.config import observation_names

#: target levels drawn in training, fractions of the position limit
TRAIN_LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)
#: the columns appended to the env's observation
EXTRA_COLUMNS = ("target_gap", "target_age")
#: SeedSequence spawn key of the training targets' generator (apart from the env's three)
_TARGET_KEY = 16


def check_trader_config(config: EnvConfig) -> None:
    """The env configuration a trader runs on: discrete actions and no inventory penalty
    (the env's reward is then exactly the account's value change per lot of order size)."""
    if not isinstance(config, EnvConfig):
        raise TypeError(f"config must be an EnvConfig, got {type(config).__name__}")
    if config.action_mode != "discrete":
        raise ValueError(f"the traders act in the discrete mode, got action_mode="
                         f"{config.action_mode!r}")
    if config.reward != "pnl" or config.running_inventory_penalty or \
            config.terminal_inventory_penalty:
        raise ValueError("the traders need reward='pnl' without inventory penalties (the "
                         "tracking penalty replaces them)")


class TargetTrackingEnv:
    """Per-stock traders that hold targets (module docstring).

    Parameters
    ----------
    config : EnvConfig
        Discrete actions, ``reward="pnl"``, no inventory penalties.
    n_envs, n_agents, seed
        As :class:`~rltrader.envs.BatchedMarketEnv`.
    hold_steps : int
        Steps a random target is held (training), and the unit of ``target_age``.
    tracking_penalty : float
        Ticks per lot of order size of target gap, per step.
    random_targets : bool
        Draw a target from ``levels`` for every row every ``hold_steps`` steps and at each
        episode's start; False: targets only from :meth:`set_targets` (0 until then).
    levels : tuple of float
        Random targets' values, in [-1, 1].
    relative : bool
        Subtract the target's mark-to-mid change from the reward (module docstring).
    source : sequence of HybridReplay, optional
        Real records as the books (one per book, ``symbol x n_envs + market``; the
        :class:`~rltrader.envs.BatchedMarketEnv`'s ``source``); None: the simulated
        market of ``config``.
    """

    def __init__(self, config: EnvConfig, *, n_envs: int, n_agents: int = 1, seed: int = 0,
                 hold_steps: int = 50, tracking_penalty: float = 0.5,
                 random_targets: bool = True, levels: tuple[float, ...] = TRAIN_LEVELS,
                 relative: bool = False, source: Any = None) -> None:
        check_trader_config(config)
        if not isinstance(hold_steps, (int, np.integer)) or isinstance(hold_steps, bool) \
                or hold_steps < 1:
            raise ValueError(f"hold_steps must be an int >= 1, got {hold_steps!r}")
        if not isinstance(tracking_penalty, (int, float)) or isinstance(tracking_penalty, bool) \
                or not 0 <= tracking_penalty < math.inf:
            raise ValueError(f"tracking_penalty must be finite and >= 0, got "
                             f"{tracking_penalty!r}")
        lv = np.asarray(levels, dtype=np.float64)
        if lv.ndim != 1 or not lv.size or not np.all(np.abs(lv) <= 1):
            raise ValueError(f"levels must be a non-empty sequence in [-1, 1], got {levels!r}")
        self.config = config
        self.hold_steps, self.tracking_penalty = int(hold_steps), float(tracking_penalty)
        self.random_targets, self.levels = bool(random_targets), lv
        self.relative = bool(relative)
        self.env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                                    source=source)
        e = self.env
        self.n_envs, self.n_agents, self.n_symbols = e.n_envs, e.n_agents, e.n_symbols
        self.num_agents_total = n = e.num_agents_total
        self.order_qty = e.order_qty.astype(np.float64)
        self.position_limit = e.position_limit.astype(np.float64)
        names = observation_names(config.depth, "discrete", config.max_orders)
        #: observation column of each name (the env's and the two appended ones)
        self.columns = {name: k for k, name in enumerate(names + list(EXTRA_COLUMNS))}
        self.obs_dim = e.obs_dim + len(EXTRA_COLUMNS)
        big = np.finfo(np.float32).max
        self.single_observation_space = spaces.Box(-big, big, (self.obs_dim,), np.float32)
        self.single_action_space = e.single_action_space
        self.observations = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.final_observations = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminated, self.truncated = e.terminated, e.truncated
        #: this step's value change per row, ticks x lots (the env's reward x order size)
        self.pnl = np.zeros(n)
        #: lots traded per row in this step
        self.traded = np.zeros(n)
        #: targets, fractions of the position limit, and in lots
        self.target = np.zeros(n)
        self.target_lots = np.zeros(n)
        #: steps since each row's target was set
        self.age = np.zeros(n, dtype=np.int64)
        self.seed = seed
        self._rng = self._target_rng(seed)
        self._volume = np.zeros(n)
        self.reset(seed)

    # ---- targets ----------------------------------------------------------------------

    def _target_rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TARGET_KEY,)))

    def set_targets(self, fractions: Any) -> None:
        """Targets of every row, fractions of the position limit in [-1, 1], shape
        ``(num_agents_total,)``; a row whose target changes restarts its ``target_age``."""
        f = np.asarray(fractions, dtype=np.float64)
        if f.shape != self.target.shape:
            raise ValueError(f"targets must have shape {self.target.shape}, got {f.shape}")
        if not np.isfinite(f).all() or np.any(np.abs(f) > 1):
            raise ValueError("targets must be finite fractions of the position limit in "
                             "[-1, 1]")
        self._assign(f != self.target, f)
        self._write(self.observations, self.env.observations, self._positions())

    def _assign(self, rows: np.ndarray, values: np.ndarray) -> None:
        self.target[rows] = values[rows]
        self.target_lots[rows] = np.rint(values[rows] * self.position_limit[rows])
        self.age[rows] = 0

    def _draw(self, rows: np.ndarray) -> None:
        if rows.any():
            drawn = np.zeros(self.num_agents_total)
            drawn[rows] = self._rng.choice(self.levels, size=int(rows.sum()))
            self._assign(rows, drawn)

    # ---- the batched env's protocol ---------------------------------------------------

    def _positions(self) -> np.ndarray:
        return self.env.accounts()["position"].reshape(-1).astype(np.float64)

    def _write(self, out: np.ndarray, env_obs: np.ndarray, position: np.ndarray) -> None:
        out[:, :self.env.obs_dim] = env_obs
        out[:, -2] = (self.target_lots - position) / self.position_limit
        out[:, -1] = self.age / self.hold_steps

    def reset(self, seed: int | None = None) -> np.ndarray:
        """New episodes (``seed``: the markets and the random targets rebuilt from it)."""
        obs = self.env.reset(seed)
        if seed is not None:
            self.seed, self._rng = seed, self._target_rng(seed)
        self._volume = self.env.accounts()["volume"].reshape(-1).astype(np.float64)
        everyone = np.ones(self.num_agents_total, dtype=bool)
        if self.random_targets:
            self._draw(everyone)
        else:
            self._assign(everyone, np.zeros(self.num_agents_total))
        self.pnl[:] = 0.0
        self.rewards[:] = 0.0
        self._write(self.observations, obs, self._positions())
        return self.observations

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One env step; returns this env's observation and reward buffers and the env's
        flags."""
        obs, rewards, terminated, truncated = self.env.step(actions)
        accounts = self.env.accounts()
        position = accounts["position"].reshape(-1).astype(np.float64)
        volume = accounts["volume"].reshape(-1).astype(np.float64)
        np.subtract(volume, self._volume, out=self.traded)
        self._volume = volume
        np.multiply(rewards, self.order_qty, out=self.pnl)
        ended = terminated | truncated
        # the gap is penalised on the position the step left (an ended row: before the
        # liquidation, as its final observation shows it)
        held = position.copy()
        if ended.any():
            inventory = self.env.final_observations[ended, self.columns["inventory"]]
            held[ended] = np.rint(inventory * self.position_limit[ended])
            self._write(self.final_observations, self.env.final_observations, held)
        self.rewards[:] = rewards - self.tracking_penalty * np.abs(
            self.target_lots - held) / self.order_qty
        if self.relative:       # the mid's move this step, in ticks (the market runs on)
            move = obs[:, self.columns["return_1"]] * self.config.price_scale
            self.rewards -= self.target_lots * move / self.order_qty
        self.age += 1
        if self.random_targets:
            self._draw(ended | (self.age >= self.hold_steps))
        self._write(self.observations, obs, position)
        return self.observations, self.rewards, terminated, truncated


class ScriptedExecutor:
    """A scripted trader of :class:`TargetTrackingEnv`: ``executor(obs) -> actions``
    (vectorised over rows; the same call as a trained :class:`~rltrader.training.fast_ppo.Policy`).

    - ``"aggressive"``: a market order toward the target whenever the gap is more than half
      an order (so that an order never overshoots by more than it leaves: no
      oscillation around a target between two orders' lots); cancels any resting order
      otherwise (it never rests one);
    - ``"patient"``: on a new target it cancels what rests; then it keeps one limit order
      at its own-side touch (``limit_offsets`` must contain 0) toward the target while the
      gap is more than half an order, and switches to market orders once the target is
      ``patience`` steps old (a TWAP-like "post, then cross" schedule).
    """

    KINDS = ("aggressive", "patient")

    def __init__(self, env: TargetTrackingEnv, kind: str = "aggressive",
                 patience: int = 10) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        offsets = list(env.config.limit_offsets)
        if kind == "patient" and 0 not in offsets:
            raise ValueError("the patient executor posts at the touch: limit_offsets must "
                             f"contain 0, got {tuple(offsets)}")
        self.kind, self.patience = kind, int(patience)
        n = len(offsets)
        self.hold, self.market_buy, self.market_sell, self.cancel = 0, 2 * n + 1, 2 * n + 2, \
            2 * n + 3
        k = offsets.index(0) if 0 in offsets else 0
        self.limit_buy, self.limit_sell = 1 + k, 1 + n + k
        self.limit, self.qty = env.position_limit, env.order_qty
        self.hold_steps = env.hold_steps
        c = env.columns
        self.gap, self.age = c["target_gap"], c["target_age"]
        self.orders, self.in_flight = c["orders"], c["in_flight"]
        self.n_rows = env.num_agents_total

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations)
        if obs.ndim != 2 or obs.shape[0] != self.n_rows:
            raise ValueError(f"observations must be ({self.n_rows}, obs_dim), got {obs.shape}")
        gap = np.rint(obs[:, self.gap] * self.limit)       # lots (float32 obs)
        half = 0.5 * self.qty
        buy, sell = gap > half, gap < -half
        resting = (obs[:, self.orders] > 0) | (obs[:, self.in_flight] > 0)
        actions = np.where(resting, self.cancel, self.hold).astype(np.int64)
        if self.kind == "aggressive":
            actions[buy] = self.market_buy
            actions[sell] = self.market_sell
            return actions
        age = np.rint(obs[:, self.age] * self.hold_steps)
        late = age >= self.patience
        fresh = age == 0
        post = ~late & ~fresh
        actions[buy & post] = np.where(resting, self.hold, self.limit_buy)[buy & post]
        actions[sell & post] = np.where(resting, self.hold, self.limit_sell)[sell & post]
        cross = late & ~resting
        actions[buy & cross] = self.market_buy
        actions[sell & cross] = self.market_sell
        return actions
