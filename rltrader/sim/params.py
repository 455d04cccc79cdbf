"""The background flow's parameters as the compiled kernel takes them (``rltrader._flow``).

One frozen dataclass per C struct of ``rltrader/_flow.pxd`` (``Sizes``, ``Noise``, ``Value``,
``Momentum``, ``Maker``, ``Liquidity``, ``Splitter``, ``Fundamental``, ``Parent``), each
field named and typed like the struct's field. Units are the kernel's: rates and times per
step, prices and distances in ticks, sizes in lots. :func:`flow_params` turns a
:class:`~rltrader.sim.config.MarketConfig` (rates per second, times in seconds) into them;
this module is the only place where that conversion happens.

``Flow(books, ..., noise=NoiseParams(...), ...)`` checks that every argument has exactly
its struct's fields (a missing or unknown one raises ``TypeError``), so a field renamed on
one side cannot be silently dropped or left at zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rltrader.core.constants import NS_PER_S
from rltrader.sim.config import MarketConfig, OrderSize, Population

#: The populations in owner order (owners ``[0, n_traders)`` of every book).
POPULATIONS = ("noise", "value", "momentum", "makers", "liquidity", "splitters", "parents")


@dataclass(frozen=True)
class SizeParams:
    """``Sizes``: heavy-tailed order sizes, ``floor(scale * min_lots * U^(-1/alpha))``."""

    min_lots: float         # lots
    alpha: float            # tail exponent
    max_lots: float         # cap, lots


@dataclass(frozen=True)
class NoiseParams:
    """``Noise``: zero-intelligence traders."""

    first: int              # owner of the first trader
    count: int
    latency: int            # steps between decision and arrival
    rate: float             # wake-ups per trader per step
    p_market: float
    p_cancel: float
    ring: int               # resting orders a trader keeps
    depth_alpha: float
    depth_max: int          # ticks
    size: SizeParams


@dataclass(frozen=True)
class ValueParams:
    """``Value``: fundamental traders."""

    first: int
    count: int
    latency: int
    rate: float
    obs_sd: float           # ticks
    threshold: float        # ticks
    passive_offset: float   # ticks
    size: SizeParams


@dataclass(frozen=True)
class MomentumParams:
    """``Momentum``: trend followers."""

    first: int
    count: int
    latency: int
    rate: float
    alpha_short: float      # EMA weight per step
    alpha_long: float
    threshold: float        # ticks
    size: SizeParams


@dataclass(frozen=True)
class MakerParams:
    """``Maker``: market makers."""

    first: int
    count: int
    latency: int
    rate: float             # scheduled re-quotes per maker per step
    levels: int
    spacing: int            # ticks
    half_spread: float      # ticks
    qty: float              # lots per quote (times the size class)
    skew: float             # ticks per lot of inventory
    max_inventory: int      # lots
    requote_ticks: int      # ticks (0: schedule only)


@dataclass(frozen=True)
class LiquidityParams:
    """``Liquidity``: latent liquidity providers."""

    first: int
    count: int
    latency: int
    rate: float
    depth: float            # ticks
    price_weight: float
    alpha_anchor: float     # EMA weight per step
    ring: int
    size: SizeParams


@dataclass(frozen=True)
class SplitterParams:
    """``Splitter``: metaorder splitters."""

    first: int
    count: int
    latency: int
    rate: float             # child orders per trader per step
    alpha: float
    max_children: float
    size: SizeParams


@dataclass(frozen=True)
class FundamentalParams:
    """``Fundamental``: the latent value's Ornstein-Uhlenbeck motion and jumps."""

    kappa: float            # mean reversion per step
    sigma: float            # ticks per step
    jump_rate: float        # jumps per step
    jump_mean: float        # ticks
    jump_sd: float          # ticks
    correlation: float      # of the diffusion shocks of one copy's symbols


@dataclass(frozen=True)
class ParentParams:
    """``Parent``: one execution agent's parent order."""

    owner: int
    side: int               # +1 buy, -1 sell
    pov: int                # 0: TWAP, 1: percentage of volume
    latency: int            # steps
    qty: int                # lots
    start: int              # step of the first child order
    end: int                # step after the last child order
    interval: int           # steps between child orders
    participation: float


@dataclass(frozen=True)
class FlowParams:
    """Everything :class:`rltrader._flow.Flow` takes from the configuration, one field per
    keyword argument of it."""

    noise: NoiseParams
    value: ValueParams
    momentum: MomentumParams
    maker: MakerParams
    liquidity: LiquidityParams
    splitter: SplitterParams
    fundamental: FundamentalParams
    parents: tuple[ParentParams, ...]


def steps(config: MarketConfig, seconds: float) -> int:
    """Whole steps (rounded to the nearest) in ``seconds``."""
    return int(round(seconds * NS_PER_S / config.dt_ns))


def latency_steps(config: MarketConfig, latency_ns: int) -> int:
    """Latency rounds up to whole steps: an order never arrives before its latency."""
    return -(-latency_ns // config.dt_ns)


def owner_ranges(config: MarketConfig) -> dict[str, tuple[int, int]]:
    """Owner range ``(first, stop)`` of each population in every book, in owner order."""
    counts = {"noise": config.noise.count, "value": config.value.count,
              "momentum": config.momentum.count, "makers": config.makers.count,
              "liquidity": config.liquidity.count, "splitters": config.splitters.count,
              "parents": len(config.parents)}
    out, first = {}, 0
    for name in POPULATIONS:
        out[name] = (first, first + counts[name])
        first += counts[name]
    return out


def _sizes(size: OrderSize) -> SizeParams:
    return SizeParams(min_lots=size.min_lots, alpha=size.alpha, max_lots=size.max_lots)


def _rate(config: MarketConfig, pop: Population) -> float:
    """Wake-ups per trader per step."""
    return pop.rate_per_s * (config.dt_ns / NS_PER_S)


def _alpha(config: MarketConfig, seconds: float) -> float:
    """Per-step weight of an exponential average over ``seconds``."""
    return min(1.0, (config.dt_ns / NS_PER_S) / seconds)


def _noise(c: MarketConfig, first: int) -> NoiseParams:
    p = c.noise
    return NoiseParams(first=first, count=p.count, latency=latency_steps(c, p.latency_ns),
                       rate=_rate(c, p), p_market=p.p_market, p_cancel=p.p_cancel,
                       ring=p.ring, depth_alpha=p.depth_alpha, depth_max=p.depth_max,
                       size=_sizes(p.size))


def _value(c: MarketConfig, first: int) -> ValueParams:
    p = c.value
    return ValueParams(first=first, count=p.count, latency=latency_steps(c, p.latency_ns),
                       rate=_rate(c, p), obs_sd=p.obs_sd, threshold=p.threshold,
                       passive_offset=p.passive_offset, size=_sizes(p.size))


def _momentum(c: MarketConfig, first: int) -> MomentumParams:
    p = c.momentum
    return MomentumParams(first=first, count=p.count,
                          latency=latency_steps(c, p.latency_ns), rate=_rate(c, p),
                          alpha_short=_alpha(c, p.short_s), alpha_long=_alpha(c, p.long_s),
                          threshold=p.threshold, size=_sizes(p.size))


def _maker(c: MarketConfig, first: int) -> MakerParams:
    p = c.makers
    return MakerParams(first=first, count=p.count, latency=latency_steps(c, p.latency_ns),
                       rate=_rate(c, p), levels=p.levels, spacing=p.spacing,
                       half_spread=p.half_spread, qty=p.qty, skew=p.skew,
                       max_inventory=p.max_inventory, requote_ticks=p.requote_ticks)


def _liquidity(c: MarketConfig, first: int) -> LiquidityParams:
    p = c.liquidity
    return LiquidityParams(first=first, count=p.count,
                           latency=latency_steps(c, p.latency_ns), rate=_rate(c, p),
                           depth=p.depth, price_weight=p.price_weight,
                           alpha_anchor=_alpha(c, p.anchor_s), ring=p.ring,
                           size=_sizes(p.size))


def _splitter(c: MarketConfig, first: int) -> SplitterParams:
    p = c.splitters
    return SplitterParams(first=first, count=p.count, latency=latency_steps(c, p.latency_ns),
                          rate=_rate(c, p), alpha=p.alpha,
                          max_children=float(p.max_children), size=_sizes(p.size))


def _fundamental(c: MarketConfig) -> FundamentalParams:
    p, dt_s = c.fundamental, c.dt_ns / NS_PER_S
    return FundamentalParams(kappa=p.kappa_per_s * dt_s, sigma=p.sigma * math.sqrt(dt_s),
                             jump_rate=p.jump_rate_per_s * dt_s, jump_mean=p.jump_mean,
                             jump_sd=p.jump_sd, correlation=p.correlation)


def _parents(c: MarketConfig, first: int) -> tuple[ParentParams, ...]:
    # steps count from step 0, the warm-up's first step; the open is step warmup_steps
    return tuple(
        ParentParams(owner=first + j, side=1 if p.side == "buy" else -1,
                     pov=int(p.strategy == "pov"), latency=latency_steps(c, p.latency_ns),
                     qty=p.qty, start=c.warmup_steps + steps(c, p.start_s),
                     end=c.warmup_steps + steps(c, p.end_s),
                     interval=max(1, steps(c, p.interval_s)), participation=p.participation)
        for j, p in enumerate(c.parents))


def flow_params(config: MarketConfig) -> FlowParams:
    """The per-step parameters of ``config``'s populations, owners per
    :func:`owner_ranges`."""
    first = {name: lo for name, (lo, _) in owner_ranges(config).items()}
    return FlowParams(
        noise=_noise(config, first["noise"]), value=_value(config, first["value"]),
        momentum=_momentum(config, first["momentum"]), maker=_maker(config, first["makers"]),
        liquidity=_liquidity(config, first["liquidity"]),
        splitter=_splitter(config, first["splitters"]), fundamental=_fundamental(config),
        parents=_parents(config, first["parents"]))
