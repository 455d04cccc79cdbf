"""Configuration of the batched market environment (:class:`EnvConfig`)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader._env import ActionMode, Layout, RewardKind, Valuation
from rltrader.core.checks import is_int
from rltrader.core.constants import MAX_FEE_PPM, MAX_QTY
from rltrader.sim.config import MarketConfig, preset

ACTION_MODES = {"discrete": ActionMode.DISCRETE, "market_making": ActionMode.MARKET_MAKING,
                "order": ActionMode.ORDER, "continuous": ActionMode.CONTINUOUS,
                "execution": ActionMode.EXECUTION}
#: ORDER mode's time in force column: GTC, IOC, FOK, post-only (core.constants.TimeInForce)
ORDER_TIFS = 4
REWARDS = {"pnl": RewardKind.PNL, "sharpe": RewardKind.DIFFERENTIAL_SHARPE}
END_OF_EPISODE = ("liquidate", "carry")
EXECUTION_REWARDS = ("shortfall", "marked")
VALUATIONS = {"liquidation": Valuation.LIQUIDATION, "mid": Valuation.MID}


_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
#: the largest position limit: twice it (a limit's room when the position is at the other
#: limit) must fit int64
MAX_POSITION_LIMIT = 2**62
_F32_MAX = float(np.finfo(np.float32).max)
#: the longest latency (and jitter): an hour, far beyond any venue's, and small enough that
#: the outbox's arithmetic stays exact
_MAX_LATENCY_NS = 3_600 * 10**9
#: the smallest divisor that keeps every int64 quotient a finite float32 (level sizes and
#: the queue ahead are divided by ``qty_scale``, cash and PnL by the capital)
_MIN_SCALE = 2.0**63 / _F32_MAX


def _fail(name: str, rule: str, value: object) -> None:
    raise ValueError(f"EnvConfig.{name} must be {rule}, got {value!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
        _fail(name, f"an int in [{low}, {high}]" if high < _INT64_MAX else
              f"an int >= {low}", value)


@dataclass(frozen=True)
class EnvConfig:
    """Everything about the environment except ``n_envs``, ``n_agents`` and the seed.

    Units: prices and offsets in ticks, quantities in lots, cash in ticks x lots, time in
    steps of the market's ``dt_ns``.

    Attributes
    ----------
    market : str or MarketConfig
        Background populations: a preset name (default ``"resilient"``: 27 traders per
        book, cheap to step, whose book survives the largest agent's market orders; see
        docs/market.md) or a config. The environment keeps its first symbol and sets
        ``copies`` (one book per env), ``extra_owners`` (the agents' accounts) and turns
        recording off.
    symbols : int
        Symbols per market (1 to 64): the market's first ``symbols`` symbols (or, when it
        has fewer, its first one's populations under ``NAME0``, ``NAME1`` ...), each its own
        book with its own background. Every agent trades all of them: one row per agent
        and symbol (books ``symbol x n_envs + market``), its own account (position, limit)
        in each; its reward is the sum of its rows'. The market config's
        ``FundamentalConfig.correlation`` makes the symbols move together.
    horizon : int
        Steps per episode.
    warmup_steps : int
        Background-only steps after a seeded reset, before the first episode.
    depth : int
        Price levels per side in the observation.
    action_mode : str
        ``"discrete"``, ``"market_making"``, ``"order"``, ``"continuous"`` or
        ``"execution"`` (see docs/envs.md).
    limit_offsets : tuple of int
        Discrete limit orders: ticks behind the own-side touch (negative: inside the
        spread; a price that would cross is moved to one tick off the opposite best).
    order_offsets : tuple of int
        Order mode: the price offsets of a new or replaced order, ticks behind the own-side
        touch; a negative offset moves toward the other side and may cross it (a
        marketable limit order; with IOC or FOK, a taker order).
    continuous_max_offset, continuous_max_size : float
        Continuous mode: the bounds of its ``Box``: offsets in ``[-max_offset, max_offset]``
        ticks (rounded to the nearest tick), sizes in ``[0, max_size]`` order sizes
        (rounded to lots; under half a lot withdraws that side's quote).
    execution_size : float
        Execution mode: a fresh parent order's size, in order sizes (at most the position
        limit's).
    execution_reward : str
        Execution mode: ``"shortfall"``: each step's change of the implementation
        shortfall against the arrival mid; ``"marked"``: also the parent's unfilled lots
        marked at what completing them now would cost (a walk of the book and the taker
        fee), so that a child taken now is paid the deeper levels it spares the rest. The
        first step's reward carries the whole parent's mark and the last step's mark is 0
        (with the parent complete): the rewards of an episode sum to the same shortfall.
    execution_rates : tuple of float
        Execution mode: the child rates (1 to 8): a child is ``ceil(rate x lots left /
        steps left)``; rate 1 is TWAP over what is left.
    quote_offsets : tuple of int
        Market making: the quote offsets of each side (same convention).
    quote_sizes : tuple of float
        Market making: quote sizes as multiples of the agent's order size.
    max_orders : int
        Resting orders an agent may keep (2 to 16); a new limit order beyond it cancels
        the agent's oldest.
    reward : str
        ``"pnl"``: the change of the account's value per lot of order size, minus the
        inventory penalties; ``"sharpe"``: the differential Sharpe ratio of those changes
        (docs/envs.md).
    valuation : str
        ``"liquidation"``: a position is worth what selling (buying back) it into the book
        now would fetch, the agent's own orders excluded, net of the taker fee;
        ``"mid"``: position x mid (gameable: an agent that pushes the mid is paid for it;
        for comparison only).
    running_inventory_penalty : float
        Subtracted from every step's reward: ``x (position / order size)^2``.
    terminal_inventory_penalty : float
        Subtracted from the reward of an episode's last step: ``x (position / order
        size)^2``, the position after the liquidation: with ``"liquidate"`` it bites only
        on what the book could not take (the liquidation's cost is already in the reward);
        with ``"carry"`` on the whole position.
    sharpe_eta : float
        ``sharpe``: adaptation rate of the differential Sharpe ratio.
    end_of_episode : str
        ``"liquidate"``: the agent's orders are withdrawn and its position is flattened
        with a market order, the cost in that episode's reward (what the book cannot take
        is carried); ``"carry"``: the position is carried into the next episode, where it
        is observed and valued from its first step.
    latency_ns : int or tuple of int
        Time from an agent's decision (sent at a uniformly random time within the step)
        to its arrival at the book, ns: one value, or one per agent row (same in every
        env). Decisions arriving in the same step reach the book in arrival order.
    latency_jitter_ns : int
        Every decision's latency gets an extra uniform ``[0, latency_jitter_ns)`` ns; an
        agent's decisions still arrive in the order it sent them.
    maker_fee_ppm, taker_fee_ppm : int
        Fees of every book, per million of notional (negative: rebate).
    size_alpha, size_max : float
        Size classes: Pareto(``size_alpha``) multipliers >= 1, capped at ``size_max``.
    size_classes : tuple of float, optional
        Fixed size class of agent ``i`` (same in every env) instead of random ones.
    base_qty, base_position_limit : int
        Order size and position limit (lots) of size class 1; an agent of class ``s`` has
        ``round(s * base_qty)`` and ``round(s * base_position_limit)``.
    qty_scale : float
        Lots per unit of level size and queue-ahead observations.
    price_scale : float
        Ticks per unit of the level price, spread and return observations (default 2: a
        level a few ticks from the mid reads about 1).
    pnl_scale : float
        Ticks per lot of order size per unit of the ``pnl`` observation (default 50).
    return_lag : int
        Steps of the long mid return.
    flow_alpha : float
        EMA weight per step of the trade-flow imbalance.
    scan_ticks : int
        Ticks beyond the touch searched for the top levels.
    replay_step_ns : int
        With a hybrid replay as the source: market time per step, ns.
    drift_mean, drift_sd : float
        An opt-in drift of the simulated fundamental (docs/market.md, "Drift"): at the
        build and at every episode's start, each book (symbol and market) draws a drift
        ``~ N(drift_mean, drift_sd)`` ticks per second, and during the episode's steps its
        fundamental and long-run mean ``r_bar`` move by it (a risk premium: with a
        positive mean, holding pays on average; the draw differs per symbol). Default 0:
        no drift, no draws, every seed's run unchanged. Not for replay sources.
    """

    market: str | MarketConfig = "resilient"
    symbols: int = 1
    horizon: int = 1_000
    warmup_steps: int = 200
    depth: int = 5
    action_mode: str = "discrete"
    limit_offsets: tuple[int, ...] = (-1, 0, 1, 3)
    order_offsets: tuple[int, ...] = (-2, -1, 0, 1, 2, 4)
    continuous_max_offset: float = 10.0
    continuous_max_size: float = 4.0
    execution_size: float = 10.0
    execution_rates: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    execution_reward: str = "shortfall"
    quote_offsets: tuple[int, ...] = (0, 1, 2, 4)
    quote_sizes: tuple[float, ...] = (1.0, 2.0, 4.0)
    max_orders: int = 4
    reward: str = "pnl"
    valuation: str = "liquidation"
    running_inventory_penalty: float = 0.0
    terminal_inventory_penalty: float = 0.0
    sharpe_eta: float = 0.01
    end_of_episode: str = "liquidate"
    latency_ns: int | tuple[int, ...] = 0
    latency_jitter_ns: int = 0
    maker_fee_ppm: int = 0
    taker_fee_ppm: int = 100
    size_alpha: float = 1.5
    size_max: float = 50.0
    size_classes: tuple[float, ...] | None = None
    base_qty: int = 1
    base_position_limit: int = 20
    qty_scale: float = 10.0
    price_scale: float = 2.0
    pnl_scale: float = 50.0
    return_lag: int = 10
    flow_alpha: float = 0.1
    scan_ticks: int = 64
    replay_step_ns: int = 100_000_000
    drift_mean: float = 0.0
    drift_sd: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.market, (str, MarketConfig)):
            _fail("market", "a preset name or a MarketConfig", self.market)
        for name, low, high in (("horizon", 1, _INT64_MAX), ("warmup_steps", 0, _INT64_MAX),
                                ("depth", 1, _INT32_MAX),
                                ("max_orders", 2, int(Layout.MAX_ORDERS)),
                                ("base_qty", 1, _INT64_MAX),
                                ("base_position_limit", 1, _INT64_MAX),
                                ("return_lag", 1, _INT32_MAX), ("scan_ticks", 1, _INT32_MAX),
                                ("replay_step_ns", 1, _INT64_MAX), ("symbols", 1, 64),
                                ("latency_jitter_ns", 0, _MAX_LATENCY_NS)):
            _check_int(name, getattr(self, name), low, high)
        for name in ("maker_fee_ppm", "taker_fee_ppm"):
            _check_int(name, getattr(self, name), -MAX_FEE_PPM, MAX_FEE_PPM)
        for name, values in (("action_mode", ACTION_MODES), ("reward", REWARDS),
                             ("end_of_episode", END_OF_EPISODE), ("valuation", VALUATIONS),
                             ("execution_reward", EXECUTION_REWARDS)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in values:
                _fail(name, f"one of {sorted(values)}", value)
        for name in ("limit_offsets", "quote_offsets", "quote_sizes", "order_offsets",
                     "execution_rates"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or \
                    not 1 <= len(values) <= Layout.MAX_OFFSETS:
                _fail(name, f"1 to {int(Layout.MAX_OFFSETS)} values", values)
        for name in ("limit_offsets", "quote_offsets", "order_offsets"):
            if not all(is_int(v) and abs(v) <= _INT32_MAX for v in getattr(self, name)):
                _fail(name, f"ints of magnitude <= {_INT32_MAX}", getattr(self, name))
        for name in ("quote_sizes", "execution_rates"):
            if any(not (_is_real(v) and math.isfinite(v) and v > 0) for v in getattr(self, name)):
                _fail(name, "finite and > 0", getattr(self, name))
        if self.action_mode == "execution" and self.execution_size > self.base_position_limit \
                / self.base_qty:
            _fail("execution_size", f"at most base_position_limit / base_qty = "
                  f"{self.base_position_limit / self.base_qty:g} (a parent order must fit the "
                  "position limit)", self.execution_size)
        for name in ("size_alpha", "size_max", "qty_scale", "price_scale", "pnl_scale",
                     "sharpe_eta", "flow_alpha", "continuous_max_offset",
                     "continuous_max_size", "execution_size"):
            value = getattr(self, name)
            if not (_is_real(value) and math.isfinite(value) and value > 0):
                _fail(name, "finite and > 0", value)
        if self.size_max < 1:
            _fail("size_max", ">= 1", self.size_max)
        for name in ("running_inventory_penalty", "terminal_inventory_penalty"):
            value = getattr(self, name)
            if not (_is_real(value) and 0 <= value < math.inf):
                _fail(name, "finite and >= 0", value)
        if not (_is_real(self.drift_mean) and math.isfinite(self.drift_mean)):
            _fail("drift_mean", "finite (ticks per second)", self.drift_mean)
        if not (_is_real(self.drift_sd) and 0 <= self.drift_sd < math.inf):
            _fail("drift_sd", "finite and >= 0 (ticks per second)", self.drift_sd)
        latencies = (self.latency_ns,) if is_int(self.latency_ns) else self.latency_ns
        if isinstance(latencies, (str, bytes)) or not hasattr(latencies, "__len__") \
                or not latencies or not all(is_int(v) and 0 <= v <= _MAX_LATENCY_NS
                                            for v in latencies):
            _fail("latency_ns", f"an int in [0, {_MAX_LATENCY_NS}] or a non-empty sequence "
                  "of them", self.latency_ns)
        if self.size_classes is not None and (
                isinstance(self.size_classes, (str, bytes))
                or not hasattr(self.size_classes, "__len__") or not self.size_classes
                or any(not (_is_real(s) and math.isfinite(s) and s > 0)
                       for s in self.size_classes)):
            _fail("size_classes", "a non-empty sequence of finite values > 0",
                  self.size_classes)
        self._check_magnitudes()

    def _check_magnitudes(self) -> None:
        """Bounds that depend on several fields: every agent order fits the core's
        ``MAX_QTY``, every position limit fits int64 arithmetic, observations and rewards
        stay finite float32."""
        if self.qty_scale < _MIN_SCALE:
            _fail("qty_scale", f">= {_MIN_SCALE:.3g} (level sizes / qty_scale must be finite "
                  "float32)", self.qty_scale)
        classes = (self.size_classes if self.size_classes is not None
                   else (1.0, float(self.size_max)))  # Pareto classes: in [1, size_max]
        top, bottom = float(max(classes)), float(min(classes))
        # as batched.py computes them: order size and position limit of the largest class
        qty = max(1.0, float(np.rint(top * self.base_qty)))
        if qty > MAX_QTY:
            _fail("base_qty", f"small enough that the largest agent's order (size class "
                  f"{top:g} x base_qty = {qty:.0f} lots) is at most MAX_QTY={MAX_QTY}",
                  self.base_qty)
        limit = max(qty, float(np.rint(top * self.base_position_limit)))
        if limit > MAX_POSITION_LIMIT:
            _fail("base_position_limit", f"small enough that the largest agent's position "
                  f"limit (size class {top:g} x base_position_limit = {limit:.0f} lots) is "
                  f"at most 2**62", self.base_position_limit)
        if self.action_mode == "continuous":           # the space's float32 bound
            quote = math.floor(float(np.float32(self.continuous_max_size)) * qty + 0.5)
            if quote > MAX_QTY or self.continuous_max_offset > _INT32_MAX:
                _fail("continuous_max_size", f"small enough that the largest agent's quote "
                      f"({self.continuous_max_size:g} x {qty:.0f} lots = {quote} lots) is at "
                      f"most MAX_QTY={MAX_QTY} (and the offset at most {_INT32_MAX})",
                      self.continuous_max_size)
        if self.action_mode in ("market_making", "order"):
            quote = math.floor(max(self.quote_sizes) * qty + 0.5)
            if quote > MAX_QTY:
                _fail("quote_sizes", f"small enough that the largest agent's quote "
                      f"({max(self.quote_sizes):g} x {qty:.0f} lots = {quote} lots) is at "
                      f"most MAX_QTY={MAX_QTY}", self.quote_sizes)
        for name in ("price_scale", "pnl_scale"):
            if getattr(self, name) < _MIN_SCALE:
                _fail(name, f">= {_MIN_SCALE:.3g} (prices and PnL divided by it must be "
                      "finite float32)", getattr(self, name))
        ratio = 0.0                 # the largest |position| / order size of any class
        for s in (top, bottom):
            q = max(1.0, float(np.rint(s * self.base_qty)))
            ratio = max(ratio, max(q, float(np.rint(s * self.base_position_limit))) / q)
        for name in ("running_inventory_penalty", "terminal_inventory_penalty"):
            if getattr(self, name) * ratio**2 > _F32_MAX / 4:
                _fail(name, f"<= {_F32_MAX / 4 / ratio**2:.3g} (x the largest (position / "
                      f"order size)^2, {ratio**2:.3g}, the reward must be finite float32)",
                      getattr(self, name))

    def market_config(self) -> MarketConfig:
        """The background market's configuration (a preset resolved)."""
        return preset(self.market) if isinstance(self.market, str) else self.market

    def replace(self, **changes: Any) -> EnvConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def observation_names(depth: int, action_mode: str = "discrete",
                      max_orders: int = 4) -> list[str]:
    """The name of every observation column, in order (docs/envs.md explains them); the
    order mode adds, per order slot, its price, lots and in-flight flag; the execution
    mode the parent order's side, share left and the mid's move since arrival."""
    levels = [f"{side}_{what}_{k}" for side in ("bid", "ask") for what in ("price", "qty")
              for k in range(depth)]
    names = levels + ["spread", "return_1", "return_lag", "flow_imbalance", "volatility",
                      "volume", "last_trade", "time_of_day", "inventory", "pnl", "orders",
                      "in_flight", "queue_ahead", "time_left", "log_size_class", "limited",
                      "bought", "sold"]
    if action_mode == "order":
        names += [f"slot_{j}_{what}" for j in range(max_orders)
                  for what in ("price", "qty", "in_flight", "queue")]
    elif action_mode == "execution":
        names += ["parent_side", "parent_left", "arrival_move"]
    return names
