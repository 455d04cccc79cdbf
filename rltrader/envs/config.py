"""Configuration of the batched market environment (:class:`EnvConfig`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rltrader._env import ActionMode, Layout, RewardKind
from rltrader.sim.config import MarketConfig, preset

ACTION_MODES = {"discrete": ActionMode.DISCRETE, "market_making": ActionMode.MARKET_MAKING}
REWARDS = {"pnl": RewardKind.PNL, "pnl_inventory": RewardKind.PNL_INVENTORY,
           "sharpe": RewardKind.DIFFERENTIAL_SHARPE}
END_OF_EPISODE = ("mark", "liquidate")


def _fail(name: str, rule: str, value: object) -> None:
    raise ValueError(f"EnvConfig.{name} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class EnvConfig:
    """Everything about the environment except ``n_envs``, ``n_agents`` and the seed.

    Units: prices and offsets in ticks, quantities in lots, cash in ticks x lots, time in
    steps of the market's ``dt_ns``.

    Attributes
    ----------
    market : str or MarketConfig
        Background populations: a preset name (default ``"light"``: 20 noise, 4 value
        traders and one market maker per book, cheap to step) or a config. The environment
        keeps its first symbol and sets ``copies`` (one book per env), ``extra_owners``
        (the agents' accounts) and turns recording off.
    horizon : int
        Steps per episode.
    warmup_steps : int
        Background-only steps after a seeded reset, before the first episode.
    depth : int
        Price levels per side in the observation.
    action_mode : str
        ``"discrete"`` or ``"market_making"`` (see docs/envs.md).
    limit_offsets : tuple of int
        Discrete limit orders: ticks behind the own-side touch (negative: inside the
        spread; a price that would cross is moved to one tick off the opposite best).
    quote_offsets : tuple of int
        Market making: the quote offsets of each side (same convention).
    quote_sizes : tuple of float
        Market making: quote sizes as multiples of the agent's order size.
    max_orders : int
        Resting orders an agent may keep (>= 2); a new limit order beyond it cancels the
        agent's oldest.
    reward : str
        ``"pnl"``, ``"pnl_inventory"`` or ``"sharpe"`` (docs/envs.md).
    inventory_penalty : float
        ``pnl_inventory``: penalty per step per order size of |position|, ticks.
    sharpe_eta : float
        ``sharpe``: adaptation rate of the differential Sharpe ratio.
    end_of_episode : str
        ``"mark"``: the inventory is valued at the mid; ``"liquidate"``: orders are
        cancelled and the position is flattened with a market order (what cannot fill is
        marked at the mid).
    maker_fee_ppm, taker_fee_ppm : int
        Fees of every book, per million of notional (negative: rebate).
    size_alpha, size_max : float
        Size classes: Pareto(``size_alpha``) multipliers >= 1, capped at ``size_max``.
    size_classes : tuple of float, optional
        Fixed size class of agent ``i`` (same in every env) instead of random ones.
    base_qty, base_position_limit : int
        Order size and position limit (lots) of size class 1; an agent of class ``s`` has
        ``round(s * base_qty)`` and ``round(s * base_position_limit)``.
    base_capital : float
        Starting cash of size class 1 (ticks x lots); scales cash and PnL observations.
    qty_scale : float
        Lots per unit of level size and queue-ahead observations.
    return_lag : int
        Steps of the long mid return.
    flow_alpha : float
        EMA weight per step of the trade-flow imbalance.
    scan_ticks : int
        Ticks beyond the touch searched for the top levels.
    replay_step_ns : int
        With a hybrid replay as the source: market time per step, ns.
    """

    market: str | MarketConfig = "light"
    horizon: int = 1_000
    warmup_steps: int = 200
    depth: int = 5
    action_mode: str = "discrete"
    limit_offsets: tuple[int, ...] = (-1, 0, 1, 3)
    quote_offsets: tuple[int, ...] = (0, 1, 2, 4)
    quote_sizes: tuple[float, ...] = (1.0, 2.0, 4.0)
    max_orders: int = 4
    reward: str = "pnl"
    inventory_penalty: float = 0.01
    sharpe_eta: float = 0.01
    end_of_episode: str = "mark"
    maker_fee_ppm: int = 0
    taker_fee_ppm: int = 100
    size_alpha: float = 1.5
    size_max: float = 50.0
    size_classes: tuple[float, ...] | None = None
    base_qty: int = 1
    base_position_limit: int = 20
    base_capital: float = 2_000_000.0
    qty_scale: float = 10.0
    return_lag: int = 10
    flow_alpha: float = 0.1
    scan_ticks: int = 64
    replay_step_ns: int = 100_000_000

    def __post_init__(self) -> None:
        if not isinstance(self.market, (str, MarketConfig)):
            _fail("market", "a preset name or a MarketConfig", self.market)
        for name in ("horizon", "depth", "base_qty", "base_position_limit", "return_lag",
                     "scan_ticks", "replay_step_ns"):
            if getattr(self, name) < 1:
                _fail(name, ">= 1", getattr(self, name))
        if self.warmup_steps < 0:
            _fail("warmup_steps", ">= 0", self.warmup_steps)
        if self.max_orders < 2:
            _fail("max_orders", ">= 2", self.max_orders)
        if self.action_mode not in ACTION_MODES:
            _fail("action_mode", f"one of {sorted(ACTION_MODES)}", self.action_mode)
        if self.reward not in REWARDS:
            _fail("reward", f"one of {sorted(REWARDS)}", self.reward)
        if self.end_of_episode not in END_OF_EPISODE:
            _fail("end_of_episode", f"one of {END_OF_EPISODE}", self.end_of_episode)
        for name in ("limit_offsets", "quote_offsets", "quote_sizes"):
            values = getattr(self, name)
            if not 1 <= len(values) <= Layout.MAX_OFFSETS:
                _fail(name, f"1 to {int(Layout.MAX_OFFSETS)} values", values)
        if any(not (math.isfinite(v) and v > 0) for v in self.quote_sizes):
            _fail("quote_sizes", "finite and > 0", self.quote_sizes)
        for name in ("size_alpha", "size_max", "base_capital", "qty_scale", "sharpe_eta",
                     "flow_alpha"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                _fail(name, "finite and > 0", getattr(self, name))
        if self.size_max < 1:
            _fail("size_max", ">= 1", self.size_max)
        if not 0 <= self.inventory_penalty < math.inf:
            _fail("inventory_penalty", "finite and >= 0", self.inventory_penalty)
        if self.size_classes is not None and any(
                not (math.isfinite(s) and s > 0) for s in self.size_classes):
            _fail("size_classes", "finite values > 0", self.size_classes)

    def market_config(self) -> MarketConfig:
        """The background market's configuration (a preset resolved)."""
        return preset(self.market) if isinstance(self.market, str) else self.market

    def replace(self, **changes: Any) -> EnvConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def observation_names(depth: int) -> list[str]:
    """The name of every observation column, in order (docs/envs.md explains them)."""
    levels = [f"{side}_{what}_{k}" for side in ("bid", "ask") for what in ("price", "qty")
              for k in range(depth)]
    return levels + ["spread", "return_1", "return_lag", "flow_imbalance", "inventory",
                     "cash", "pnl", "orders", "queue_ahead", "time_left", "log_size_class"]
