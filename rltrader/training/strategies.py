"""Strong scripted baselines for the batched env's tasks, as :class:`Strategy` subclasses.

Every strategy here acts through one action mode and raises ``ValueError`` from
:meth:`~Strategy.begin` on an env of another. They run in :func:`~rltrader.training.
evaluation.run_lineup` beside learned policies, on the same seeded markets.

=====================================  =================  ==================================
strategy                               action mode        what it does
=====================================  =================  ==================================
:class:`AvellanedaStoikov`             ``market_making``  reservation price and optimal
                                                          spread (Avellaneda & Stoikov 2008)
                                                          from a fitted sigma and k
:class:`SizeAwareMaker`                ``market_making``  quotes at the touch, its size cut
                                                          for large agents and with
                                                          inventory
:func:`best_fixed_spread`              ``market_making``  the grid-tuned fixed-spread maker
                                                          (``baselines.tune_maker``)
:class:`FlowMaker`,                    ``market_making``  a fixed-spread maker that
:class:`BestFlowMaker`                                    withdraws the side the order flow
                                                          hits (grid-tuned)
:class:`TWAP`, :class:`VWAP`,          ``execution``      a parent order along a schedule:
:class:`POV`, :class:`AlmgrenChriss`                      even, by volume profile, a share
                                                          of market volume, or the
                                                          Almgren-Chriss optimal trajectory
:class:`BuyAndHold`, :class:`Momentum` ``discrete``       directional: long to the limit;
                                                          long or short with the sign of
                                                          the past ``lookback`` steps' return
:class:`FlowFollowing`,                ``discrete``       long or short with the order
:class:`BestFlowFollowing`                                flow's imbalance, by limit orders
                                                          at the touch (grid-tuned)
=====================================  =================  ==================================

Market parameters come from :func:`fit_market`, a probe run on a fresh market of the same
configuration (never the env being evaluated): the mid's volatility per step, the fill
intensity of a quote against its distance from the mid, ``lambda(d) = A exp(-k d)``, and
the temporary impact of a market order from the book's depth.

Units: prices and distances in ticks, sizes in lots, time in env steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names
from rltrader.sim.config import MarketConfig
from rltrader.training.baselines import tune_maker
from rltrader.training.exploits import BuyAndHold as _BuyAndHold
from rltrader.training.exploits import FixedSpreadMaker, Strategy

Source = BatchedMarketEnv | EnvConfig | MarketConfig | str


def _env_config(source: Source) -> EnvConfig:
    """The env configuration behind ``source`` (a preset name or market: the defaults)."""
    if isinstance(source, BatchedMarketEnv):
        return source.config
    if isinstance(source, EnvConfig):
        return source
    if isinstance(source, (MarketConfig, str)):
        return EnvConfig(market=source)
    raise TypeError(f"expected a BatchedMarketEnv, EnvConfig, MarketConfig or preset name, "
                    f"got {type(source).__name__}")


def _column(env: BatchedMarketEnv, agents: Sequence[int], name: str) -> np.ndarray:
    """Observation column ``name`` (any mode's) of rows ``agents``: ``(n_envs, len(agents))``."""
    c = env.config
    index = observation_names(c.depth, c.action_mode, c.max_orders).index(name)
    return env.observations.reshape(env.n_envs, env.n_agents, -1)[:, list(agents), index]


def _per_agent(env: BatchedMarketEnv, values: np.ndarray, agents: Sequence[int]) -> np.ndarray:
    """A per-row array of the env (``order_qty`` ...) as ``(n_envs, len(agents))``."""
    return np.asarray(values).reshape(env.n_envs, env.n_agents)[:, list(agents)]


class _ModeStrategy(Strategy):
    """A strategy for one action mode: :meth:`begin` refuses an env of another."""

    mode = "discrete"

    def begin(self, env: BatchedMarketEnv) -> None:
        if env.config.action_mode != self.mode:
            raise ValueError(f"{type(self).__name__} needs action_mode={self.mode!r}, got "
                             f"{env.config.action_mode!r}")
        if env.n_symbols != 1:
            raise ValueError(f"{type(self).__name__} trades one symbol, got "
                             f"symbols={env.n_symbols}")
        super().begin(env)


# ---- fitting the market -----------------------------------------------------------------


@dataclass(frozen=True)
class MarketFit:
    """What :func:`fit_market` measured on a probe market.

    Attributes
    ----------
    sigma : float
        Standard deviation of the mid's change over one step, ticks.
    k : float
        Decay of the fill intensity with the quote's distance from the mid, 1 / tick.
    intensity : float
        ``A``: the fitted fill intensity of a quote at the mid, fills per step.
    spread : float
        Mean spread, ticks.
    eta : float
        Temporary impact: ticks per lot of extra cost per lot of a market order's size
        (``cost per lot = epsilon + eta x lots``, from walking the book).
    epsilon : float
        Fixed cost per lot of a market order (about half the spread), ticks.
    volume : float
        Mean lots traded per step.
    distances, fill_rates : ndarray
        The points ``k`` and ``A`` are fitted to: distance from the mid (ticks) and fills
        per quoted side-step (as an intensity, ``-log(1 - p)``).
    profile : ndarray
        Relative traded volume per time-of-day bin of the session (mean 1; bins the probe
        did not see hold 1).
    """

    sigma: float
    k: float
    intensity: float
    spread: float
    eta: float
    epsilon: float
    volume: float
    distances: np.ndarray = field(repr=False)
    fill_rates: np.ndarray = field(repr=False)
    profile: np.ndarray = field(repr=False)


def fit_market(source: Source, *, n_envs: int = 64, steps: int = 1000, seed: int = 0,
               offsets: Sequence[int] = (0, 1, 2, 3, 5),
               impact_sizes: Sequence[int] = (1, 2, 5, 10, 20, 50),
               profile_bins: int = 13) -> MarketFit:
    """Fit the market parameters of the strategies on a fresh probe market.

    The probe is ``n_envs`` markets of ``source``'s background (its ``EnvConfig``, or the
    defaults with that market), with one agent of size class 1 per offset of ``offsets``
    quoting one lot on each side that many ticks behind the touch, with no position limit
    in reach, for ``steps`` steps after the usual warm-up. From it:

    - ``sigma``: the s.d. of the mid's one-step change (``return_1`` x ``price_scale``);
    - ``k``, ``A``: every quoted side-step is an observation of the quote's distance from
      the mid at the decision (half the observed spread plus the offset) and whether it
      filled in the step. Per distance (0.5-tick bins with at least 10 fills), the fill
      intensity per step is ``-log(1 - p)``; ``log intensity = log A - k x distance`` is
      fitted by least squares weighted by the fills;
    - ``eta``, ``epsilon``: the mean cost per lot, against the mid, of a market buy and a
      market sell of each of ``impact_sizes`` lots walked through the observed levels
      (10 per side; lots beyond them at the last level), fitted as ``epsilon + eta x lots``
      (Almgren-Chriss's linear temporary impact);
    - ``volume`` and ``profile``: lots traded per step, and per time-of-day bin of the
      session relative to the mean (a probe of 40 s sees one bin: the rest stay flat).

    Parameters
    ----------
    source : BatchedMarketEnv, EnvConfig, MarketConfig or str
        The market to fit (an env is not stepped: its configuration is).
    n_envs, steps, seed : int
        Probe markets, steps and seed: the same arguments give the same fit.
    offsets : sequence of int
        Quote offsets of the probe agents (ticks behind the touch, >= 0).
    impact_sizes : sequence of int
        Market order sizes of the impact fit, lots.
    profile_bins : int
        Time-of-day bins of the volume profile.

    Returns
    -------
    MarketFit
    """
    if steps < 10 or n_envs < 1:
        raise ValueError(f"need steps >= 10 and n_envs >= 1, got {steps} and {n_envs}")
    if not offsets or min(offsets) < 0:
        raise ValueError(f"offsets must be ticks >= 0, got {list(offsets)}")
    base = _env_config(source)
    n = len(offsets)
    depth = 10
    config = base.replace(action_mode="market_making", symbols=1, horizon=steps + 2,
                          depth=depth, quote_offsets=tuple(int(o) for o in offsets),
                          quote_sizes=(1.0,), size_classes=(1.0,) * n, base_qty=1,
                          base_position_limit=10 * steps, latency_ns=0,
                          end_of_episode="carry")
    env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n, seed=seed)
    names = observation_names(depth, "market_making")
    col = {name: names.index(name) for name in ("spread", "return_1", "bought", "sold",
                                                 "time_of_day")}
    actions = np.empty((n_envs, n, 3), dtype=np.int64)
    actions[..., 0] = actions[..., 1] = np.arange(n)
    actions[..., 2] = 0
    scale = config.price_scale
    books = env.market.books
    traded = np.array([books.volume(b) for b in range(n_envs)])
    distance, filled, returns, spreads, volumes, clock = [], [], [], [], [], []
    walks = {q: [] for q in impact_sizes}
    for _ in range(steps):
        before = env.observations.reshape(n_envs, n, -1)[:, 0].copy()
        spread = before[:, col["spread"]] * scale
        obs, *_ = env.step(actions)
        rows = obs.reshape(n_envs, n, -1)
        quoted = spread > 0
        d = spread[:, None] / 2 + np.asarray(offsets)[None, :]
        for side in ("bought", "sold"):
            distance.append(d[quoted].ravel())
            filled.append(rows[quoted][:, :, col[side]].ravel() > 0)
        returns.append(rows[:, 0, col["return_1"]] * scale)
        spreads.append(spread[quoted])
        now = np.array([books.volume(b) for b in range(n_envs)])
        volumes.append(now - traded)
        clock.append(rows[:, 0, col["time_of_day"]])
        traded = now
        first = rows[:, 0]
        for q in impact_sizes:
            walks[q].append(_walk_cost(first, depth, q, scale, config.qty_scale))
    sigma = float(np.std(np.concatenate(returns)))
    k, intensity, points, rates = _fit_intensity(np.concatenate(distance),
                                                 np.concatenate(filled))
    sizes = np.asarray(impact_sizes, dtype=np.float64)
    costs = np.array([np.nanmean(np.concatenate(walks[q])) for q in impact_sizes])
    eta, epsilon = (np.polyfit(sizes, costs, 1) if len(sizes) > 1
                    else (0.0, float(costs[0])))
    volume = np.concatenate(volumes).astype(np.float64)
    bins = np.minimum((np.concatenate(clock) * profile_bins).astype(np.int64),
                      profile_bins - 1)
    profile = np.ones(profile_bins)
    if volume.mean() > 0:
        for b in np.unique(bins):
            profile[b] = volume[bins == b].mean() / volume.mean()
    return MarketFit(sigma=sigma, k=k, intensity=intensity,
                     spread=float(np.concatenate(spreads).mean()), eta=float(max(eta, 0.0)),
                     epsilon=float(epsilon), volume=float(volume.mean()),
                     distances=points, fill_rates=rates, profile=profile)


_FITS: dict[str, MarketFit] = {}


def fitted(env: BatchedMarketEnv) -> MarketFit:
    """:func:`fit_market` of ``env``'s market with the default probe (cached per market
    configuration): what a strategy built without parameters fits when it begins, on every
    env it begins on. A replay's market cannot be probed: there the fit is that of the
    env config's simulated preset (``EnvConfig.market``; ``resilient`` in ``rltrader
    evaluate``), the same whatever else is evaluated."""
    key = repr(env.config.market)
    if key not in _FITS:
        _FITS[key] = fit_market(env.config)
    return _FITS[key]


def _walk_cost(rows: np.ndarray, depth: int, lots: int, price_scale: float,
               qty_scale: float) -> np.ndarray:
    """Mean cost per lot against the mid (ticks) of a market order of ``lots`` into the
    observed levels, buy and sell per row: ``(2 x rows,)``, NaN where a side is empty."""
    out = []
    for price_at, qty_at in ((2 * depth, 3 * depth), (0, depth)):     # asks, then bids
        price = np.abs(rows[:, price_at: price_at + depth]) * price_scale
        qty = np.rint(rows[:, qty_at: qty_at + depth] * qty_scale)
        take = np.minimum(qty, np.maximum(0.0, lots - np.cumsum(qty, axis=1) + qty))
        rest = lots - take.sum(axis=1)
        present = qty > 0
        last = np.where(present.any(axis=1),
                        np.take_along_axis(price, np.maximum(0, present.sum(axis=1) - 1)[:, None],
                                           axis=1)[:, 0], np.nan)
        out.append(((take * price).sum(axis=1) + rest * last) / lots)
    return np.concatenate(out)


def _fit_intensity(distance: np.ndarray, filled: np.ndarray) -> tuple[float, float, np.ndarray,
                                                                      np.ndarray]:
    """``k`` and ``A`` of ``lambda(d) = A exp(-k d)`` from per side-step distances and
    fills (module docstring of :func:`fit_market`)."""
    key = np.rint(distance * 2).astype(np.int64)
    points, rates, weights = [], [], []
    for b in np.unique(key):
        mask = key == b
        fills = int(filled[mask].sum())
        if fills < 10 or fills == mask.sum():
            continue
        p = fills / mask.sum()
        points.append(distance[mask].mean())
        rates.append(-math.log1p(-p))
        weights.append(fills)
    if len(points) < 2:
        raise RuntimeError("too few fills to fit the intensity's decay: run a longer probe "
                           "(steps, n_envs) or quote nearer the touch (offsets)")
    slope, intercept = _weighted_line(points, [math.log(r) for r in rates], weights)
    return -slope, math.exp(intercept), np.array(points), np.array(rates)


def _weighted_line(x: Sequence[float], y: Sequence[float], w: Sequence[float]
                   ) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through ``(x, y)`` weighted by ``w``.

    In correctly rounded sums of the C library's ``log`` (not ``np.polyfit`` over numpy's
    ``log``): numpy's SIMD ``log`` and the BLAS kernels behind ``polyfit`` differ in their
    last bits between CPUs, and a fitted baseline must be the same on every machine."""
    total = math.fsum(w)
    mx = math.fsum(wi * xi for wi, xi in zip(w, x, strict=True)) / total
    my = math.fsum(wi * yi for wi, yi in zip(w, y, strict=True)) / total
    sxy = math.fsum(wi * (xi - mx) * (yi - my) for wi, xi, yi in zip(w, x, y, strict=True))
    sxx = math.fsum(wi * (xi - mx) ** 2 for wi, xi in zip(w, x, strict=True))
    slope = sxy / sxx
    return slope, my - slope * mx


# ---- market making ----------------------------------------------------------------------


def _quote_index(offset: np.ndarray, offsets: Sequence[int], withdraw_beyond: float
                 ) -> np.ndarray:
    """Index of the quote offset nearest each wanted ``offset`` (ticks behind the touch);
    below the smallest: the smallest; beyond the largest by more than ``withdraw_beyond``:
    no quote (index ``len(offsets)``)."""
    grid = np.asarray(offsets, dtype=np.float64)
    index = np.abs(offset[..., None] - grid).argmin(axis=-1)
    return np.where(offset > grid.max() + withdraw_beyond, len(grid), index)


class AvellanedaStoikov(_ModeStrategy):
    """Avellaneda-Stoikov market making (``action_mode="market_making"``).

    With ``q`` the position in order sizes, ``sigma`` the mid's s.d. per step (ticks),
    ``tau`` the steps left in the episode (positions are liquidated at its end) and ``k``
    the decay of the fill intensity ``A exp(-k d)`` with the distance ``d`` from the mid:

    - reservation price ``r = mid - q gamma sigma^2 tau``;
    - optimal total spread ``delta = gamma sigma^2 tau + (2 / gamma) log(1 + gamma / k)``;
    - bid ``r - delta / 2``, ask ``r + delta / 2``.

    Each side's price becomes the env's quote offset nearest its distance behind the own
    touch (``mid - spread / 2`` for the bid): a wanted price inside the spread quotes at
    the most aggressive offset, one more than ``withdraw_beyond`` ticks beyond the farthest
    is not quoted. Size: the quote size nearest ``size`` order sizes.

    Parameters
    ----------
    gamma : float
        Risk aversion, 1 / (tick x order size).
    sigma, k : float, optional
        Market parameters; :meth:`fit` estimates them (:func:`fit_market`).
    size : float
        Quote size, order sizes.
    withdraw_beyond : float
        Ticks beyond the farthest quote offset at which a side is withdrawn.
    """

    mode = "market_making"
    name = "avellaneda_stoikov"

    def __init__(self, gamma: float = 0.2, sigma: float | None = None,
                 k: float | None = None, *, size: float = 1.0,
                 withdraw_beyond: float = 2.0) -> None:
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma, self.sigma, self.k = gamma, sigma, k
        self.size, self.withdraw_beyond = size, withdraw_beyond
        self.market: MarketFit | None = None
        #: parameters given or fitted by the caller: kept; else fitted to each env
        self.given = sigma is not None and k is not None

    def fit(self, source: Source, **probe: Any) -> AvellanedaStoikov:
        """Set ``sigma`` and ``k`` from :func:`fit_market` (``probe``: its keywords);
        returns ``self``."""
        self.market = fit_market(source, **probe)
        self.sigma, self.k = self.market.sigma, self.market.k
        self.given = True
        return self

    def begin(self, env: BatchedMarketEnv) -> None:
        super().begin(env)
        if not self.given:                  # this env's market, not the first one seen
            self.market = fitted(env)
            self.sigma, self.k = self.market.sigma, self.market.k

    def quotes(self, inventory: np.ndarray | float, steps_left: np.ndarray | float
               ) -> tuple[np.ndarray, np.ndarray]:
        """Reservation price and total spread, ticks: ``(r - mid, delta)`` for positions
        ``inventory`` (order sizes) with ``steps_left`` steps to go."""
        if self.sigma is None or self.k is None:
            raise ValueError("AvellanedaStoikov needs sigma and k: pass them or call fit()")
        if not (self.sigma >= 0 and self.k > 0):
            raise ValueError(f"need sigma >= 0 and k > 0, got {self.sigma} and {self.k}")
        risk = self.gamma * self.sigma**2 * np.asarray(steps_left, dtype=np.float64)
        shift = -np.asarray(inventory, dtype=np.float64) * risk
        spread = risk + 2 / self.gamma * math.log1p(self.gamma / self.k)
        return shift, spread

    def actions(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                agents: Sequence[int]) -> np.ndarray:
        c = env.config
        limit = _per_agent(env, env.position_limit, agents)
        q = self.observed(env, agents, "inventory") * limit / _per_agent(env, env.order_qty,
                                                                          agents)
        shift, delta = self.quotes(q, (horizon - step)[:, None])
        half_book = self.observed(env, agents, "spread") * c.price_scale / 2
        # bid r - delta / 2 and ask r + delta / 2, as ticks behind each own-side touch
        bid = _quote_index(delta / 2 - shift - half_book, c.quote_offsets, self.withdraw_beyond)
        ask = _quote_index(delta / 2 + shift - half_book, c.quote_offsets, self.withdraw_beyond)
        size = int(np.abs(np.asarray(c.quote_sizes) - self.size).argmin())
        return self.codes.quotes(bid, ask, size, q.shape)


class SizeAwareMaker(_ModeStrategy):
    """Quotes both sides ``offset`` ticks behind the touch with a size that depends on the
    agent (``action_mode="market_making"``).

    Agents of size class above ``large_class`` quote ``large_size`` order sizes, the others
    ``size`` (docs/training.md: a large agent's large quote is swept by the orders that
    move the price). The size is then cut with the inventory: ``size x (1 - shrink x
    |inventory| / max_inventory)``, rounded down to a quote size (at least the smallest),
    and the side that would push ``|inventory|`` past ``max_inventory`` is withdrawn.

    Parameters
    ----------
    offset : int
        Ticks behind the touch (the nearest quote offset).
    size, large_size : float
        Quote sizes of small and large agents, order sizes.
    large_class : float
        Size class above which an agent is large.
    max_inventory : float
        Share of the position limit at which the side adding to it is withdrawn.
    shrink : float
        How much of the size goes as ``|inventory|`` reaches ``max_inventory`` (0: none).
    """

    mode = "market_making"
    name = "size_aware_maker"

    def __init__(self, offset: int = 0, size: float = 4.0, large_size: float = 1.0,
                 large_class: float = 4.5, max_inventory: float = 0.75,
                 shrink: float = 0.0) -> None:
        if not 0 < max_inventory <= 1 or not 0 <= shrink <= 1:
            raise ValueError(f"need max_inventory in (0, 1] and shrink in [0, 1], got "
                             f"{max_inventory} and {shrink}")
        self.offset, self.size, self.large_size = offset, size, large_size
        self.large_class, self.max_inventory, self.shrink = large_class, max_inventory, shrink

    def actions(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                agents: Sequence[int]) -> np.ndarray:
        c, codes = env.config, self.codes
        inventory = self.observed(env, agents, "inventory")
        large = _per_agent(env, env.size_class, agents) > self.large_class
        wanted = np.where(large, self.large_size, self.size) * (
            1 - self.shrink * np.minimum(1.0, np.abs(inventory) / self.max_inventory))
        sizes = np.asarray(c.quote_sizes, dtype=np.float64)
        fits = sizes[None, None, :] <= wanted[..., None] + 1e-9
        size = np.where(fits.any(axis=-1), np.where(fits, sizes, -np.inf).argmax(axis=-1),
                        sizes.argmin())
        index = int(np.abs(np.asarray(c.quote_offsets) - self.offset).argmin())
        return codes.quotes(np.where(inventory < self.max_inventory, index, codes.no_quote),
                            np.where(inventory > -self.max_inventory, index, codes.no_quote),
                            size, inventory.shape)


def best_fixed_spread(config: EnvConfig, *, n_envs: int = 32, n_agents: int = 4,
                      seed: int = 0, episodes: int = 1) -> FixedSpreadMaker:
    """The best grid-tuned fixed-spread maker of ``config`` (``action_mode=
    "market_making"``), as a :class:`Strategy`.

    :func:`rltrader.training.baselines.tune_maker` tries every quote offset and size of
    ``config`` and the inventory limits of ``MAKER_INVENTORY_LIMITS`` on ``seed``'s
    markets (every agent quoting); the winner's offset, size and limit make the returned
    maker (named ``"best_fixed_spread"``). Tune on other seeds than those it is evaluated
    on. Its grid is on :attr:`choice`.
    """
    if config.action_mode != "market_making":
        raise ValueError(f"best_fixed_spread needs action_mode='market_making', got "
                         f"{config.action_mode!r}")
    choice = tune_maker(config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                        episodes=episodes)
    maker = FixedSpreadMaker(choice.offset, choice.size, choice.max_inventory)
    maker.name = "best_fixed_spread"
    maker.choice = choice  # type: ignore[attr-defined]
    return maker


class BestFixedSpread(FixedSpreadMaker):
    """:func:`best_fixed_spread` tuned when it begins, on the env's own configuration and
    ``tune_seed``'s markets (cached per configuration), for callers that build baselines
    without arguments (``action_mode="market_making"``)."""

    mode = "market_making"
    _tuned: dict[str, tuple[int, float, float]] = {}

    def __init__(self, tune_seed: int = 10_000, n_envs: int = 16) -> None:
        super().__init__()
        self.name, self.tune_seed, self.n_envs = "best_fixed_spread", tune_seed, n_envs

    def begin(self, env: BatchedMarketEnv) -> None:
        key = repr((env.config, env.n_agents, self.tune_seed, self.n_envs))
        if key not in self._tuned:
            maker = best_fixed_spread(env.config, n_envs=self.n_envs, n_agents=env.n_agents,
                                      seed=self.tune_seed)
            self._tuned[key] = (maker.offset, maker.size, maker.max_inventory)
        self.offset, self.size, self.max_inventory = self._tuned[key]
        super().begin(env)


class FlowMaker(_ModeStrategy):
    """A fixed-spread maker that withdraws the side the order flow is hitting
    (``action_mode="market_making"``).

    Both sides are quoted ``offset`` ticks behind the touch at ``size`` order sizes; the
    side that would push the ``inventory`` observation past ``max_inventory`` is withdrawn
    (as :class:`~rltrader.training.exploits.FixedSpreadMaker`). While the ``flow_imbalance``
    observation (an EMA of signed traded volume over volume) is above ``threshold``, buyers
    are taking liquidity and the ask is withdrawn; below ``-threshold`` the bid. With
    ``threshold`` None it is the fixed-spread maker.

    On ``informed`` (accurate value traders, jumps in the fundamental) the flow tells which
    way the price is going and quotes on the side it hits are picked off: the touch maker
    that withdraws them earns there, where the fixed makers make about 0. On ``realistic``
    withdrawing costs the queue priority of the touch quote, more than it saves.
    """

    mode = "market_making"
    name = "flow_maker"

    def __init__(self, threshold: float | None = 0.3, offset: int = 0, size: float = 4.0,
                 max_inventory: float = 1.0) -> None:
        if threshold is not None and not 0 <= threshold < 1:
            raise ValueError(f"threshold must be None or in [0, 1), got {threshold}")
        if not 0 < max_inventory <= 1:
            raise ValueError(f"max_inventory must be in (0, 1], got {max_inventory}")
        self.threshold, self.offset, self.size = threshold, offset, size
        self.max_inventory = max_inventory

    def actions(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                agents: Sequence[int]) -> np.ndarray:
        c, codes = env.config, self.codes
        inventory = self.observed(env, agents, "inventory")
        index = int(np.abs(np.asarray(c.quote_offsets) - self.offset).argmin())
        may_buy, may_sell = inventory < self.max_inventory, inventory > -self.max_inventory
        if self.threshold is not None:
            flow = self.observed(env, agents, "flow_imbalance")
            may_buy &= flow >= -self.threshold
            may_sell &= flow <= self.threshold
        size = int(np.abs(np.asarray(c.quote_sizes) - self.size).argmin())
        return codes.quotes(np.where(may_buy, index, codes.no_quote),
                            np.where(may_sell, index, codes.no_quote), size, inventory.shape)


def _best_of_grid(cache: dict[str, tuple], env: BatchedMarketEnv, tune_seed: int,
                  n_envs: int, make: Any, grid: Sequence[Sequence[Any]],
                  n_agents: int | None = None) -> tuple:
    """The point of ``grid`` (one sequence of values per parameter, every combination in
    order) whose strategy ``make(*point)`` earned most on ``tune_seed``'s ``n_envs``
    markets of ``env``'s own configuration with ``n_agents`` agents a market (default:
    ``env``'s), every agent row playing it for one episode; ties go to the earlier
    point. Cached in ``cache`` per configuration."""
    from rltrader.training.evaluation import run_lineup

    n_agents = env.n_agents if n_agents is None else int(n_agents)
    key = repr((env.config, n_agents, tune_seed, n_envs))
    if key not in cache:
        agents = range(n_agents)
        scores = {}
        for point in itertools.product(*grid):
            run = run_lineup(env.config, [(make(*point), agents)], n_envs=n_envs,
                             n_agents=n_agents, seeds=[tune_seed])
            scores[point] = float(run.per_market(agents).mean())
        cache[key] = max(scores, key=scores.__getitem__)
    return cache[key]


#: the grid of :class:`BestFlowMaker`: flow thresholds (None: never withdraw), quote
#: offsets, sizes (order sizes) and inventory limits
FLOW_MAKER_GRID = ((None, 0.2, 0.3, 0.5), (0, 1, 2), (1.0, 4.0), (0.25, 0.5, 1.0))


class BestFlowMaker(FlowMaker):
    """:class:`FlowMaker` with the threshold, offset, size and inventory limit of
    :data:`FLOW_MAKER_GRID` that earned most on ``tune_seed``'s markets of the env's own
    configuration (one episode, every agent row playing it; cached per configuration),
    chosen when it begins. Its grid holds the tuned fixed-spread maker's choices on
    ``realistic``, ``thin`` and ``resilient`` (threshold None; not on ``informed``, where
    that maker quotes 4 ticks back), and ``n_envs`` is 64, not 16: with 16 markets the
    choice on ``informed`` and ``thin`` moved with the tune seed's noise (round 10)."""

    _tuned: dict[str, tuple[float | None, int, float, float]] = {}

    def __init__(self, tune_seed: int = 10_000, n_envs: int = 64,
                 tune_agents: int | None = None) -> None:
        super().__init__()
        self.name, self.tune_seed, self.n_envs = "best_flow_maker", tune_seed, n_envs
        #: agents a market of the tune (None: the env's own); a residual policy's teacher
        #: is tuned with the agents a market it was trained with (``ResidualStrategy``)
        self.tune_agents = tune_agents

    def begin(self, env: BatchedMarketEnv) -> None:
        self.threshold, self.offset, self.size, self.max_inventory = _best_of_grid(
            self._tuned, env, self.tune_seed, self.n_envs, FlowMaker, FLOW_MAKER_GRID,
            self.tune_agents)
        super().begin(env)


# ---- execution --------------------------------------------------------------------------


def _parent_lots(env: BatchedMarketEnv) -> np.ndarray:
    """Every row's parent order, lots, ``(n_envs, n_agents)``."""
    lots = np.concatenate([k.agent_arrays["parent_lots"] for k in env.kernels])
    return lots.reshape(env.n_envs, env.n_agents)


def _traded_volume(env: BatchedMarketEnv) -> np.ndarray:
    """Lots traded in each market's book since it was built, ``(n_envs,)``."""
    if env.market is not None:
        return np.array([env.market.books.volume(b) for b in range(env.n_envs)])
    return np.array([replay.books.volume(0) for replay in env.sources])


class _Execution(_ModeStrategy):
    """A parent order worked along a schedule (``action_mode="execution"``).

    Subclasses give the lots to trade this step (:meth:`wanted`); the strategy sends the
    env's child nearest them: waiting (0 lots), or a child at one of the env's
    ``execution_rates``, ``ceil(rate x lots left / steps left)`` lots, a market order
    (``passive=False``) or one resting at the touch. A schedule steeper than the largest
    rate (4 x TWAP of what is left, by default) is followed as fast as that rate allows.
    What is left at the deadline the env completes with a market order.
    """

    mode = "execution"

    def __init__(self, passive: bool = False) -> None:
        self.passive = passive

    def schedule(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                 agents: Sequence[int]) -> np.ndarray:
        """Share of the parent that should be left after this step, ``(n_envs, len(agents))``
        or broadcastable (subclasses define this or :meth:`wanted`)."""
        raise NotImplementedError

    def wanted(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
               agents: Sequence[int], left: np.ndarray, parent: np.ndarray) -> np.ndarray:
        """Lots to trade this step: down to :meth:`schedule`'s share of the parent."""
        return left - self.schedule(step, horizon, env, agents) * parent

    def actions(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                agents: Sequence[int]) -> np.ndarray:
        parent = _parent_lots(env)[:, list(agents)].astype(np.float64)
        left = np.rint(_column(env, agents, "parent_left") * parent)
        want = self.wanted(step, horizon, env, agents, left, parent)
        steps_left = np.maximum(1, horizon - step)[:, None]
        rates = np.asarray(env.config.execution_rates, dtype=np.float64)
        children = np.ceil(rates * left[..., None] / steps_left[..., None])
        options = np.concatenate([np.zeros(left.shape + (1,)), children], axis=-1)
        # nearest child to the wanted lots; ties go to the smaller child (options ascend
        # with the rates only when they are sorted: sort them)
        order = np.argsort(np.concatenate([[0.0], rates]), kind="stable")
        choice = order[np.abs(options[..., order] - want[..., None]).argmin(axis=-1)]
        choice = np.where((want <= 0) | (left <= 0), 0, choice)
        return np.where(choice > 0, choice + self.passive * len(rates), 0).astype(np.int64)


class TWAP(_Execution):
    """Time-weighted: the parent evenly over the episode, ``1 - (t + 1) / T`` of it left
    after step ``t`` (``action_mode="execution"``; ``passive``: children rest at the touch).
    """

    name = "twap"

    def schedule(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                 agents: Sequence[int]) -> np.ndarray:
        return (1 - (step + 1) / horizon)[:, None]


class PassiveTWAP(TWAP):
    """:class:`TWAP` whose children rest at the own-side touch (they earn the spread when
    they fill; what is left at the deadline is completed with a market order)."""

    name = "twap_passive"

    def __init__(self) -> None:
        super().__init__(passive=True)


class VWAP(_Execution):
    """Volume-weighted: the parent along the market's expected volume per step
    (``action_mode="execution"``).

    ``profile`` is the relative volume per time-of-day bin of the session (uniform bins,
    ``MarketFit.profile``; :meth:`fit` estimates it from the market's own traded volume);
    each step's expected volume is its bin's, at the time of day the step falls on (from
    the ``time_of_day`` observation and the market's step length). Without a profile, or
    on a replay (no time of day), the schedule is flat: TWAP.
    """

    name = "vwap"

    def __init__(self, profile: Sequence[float] | None = None, passive: bool = False) -> None:
        super().__init__(passive)
        self.profile = None if profile is None else np.asarray(profile, dtype=np.float64)
        if self.profile is not None and (self.profile.ndim != 1 or self.profile.size == 0
                                         or (self.profile < 0).any()
                                         or self.profile.sum() <= 0):
            raise ValueError("profile must be a non-empty 1-d array of volumes >= 0 with a "
                             "positive sum")

    def fit(self, source: Source, **probe: Any) -> VWAP:
        """Set the profile from :func:`fit_market`; returns ``self``."""
        self.profile = fit_market(source, **probe).profile
        return self

    def schedule(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                 agents: Sequence[int]) -> np.ndarray:
        if self.profile is None or env.market is None:
            return (1 - (step + 1) / horizon)[:, None]
        mc = env.market.config
        per_step = mc.dt_ns / (mc.close_ns - mc.open_ns)
        now = self.observed(env, agents[:1], "time_of_day")[:, 0]
        clock = (now - step * per_step)[:, None] + np.arange(horizon)[None, :] * per_step
        bins = np.minimum((np.mod(clock, 1.0) * self.profile.size).astype(np.int64),
                          self.profile.size - 1)
        volume = self.profile[bins]
        done = np.cumsum(volume, axis=1)[np.arange(len(step)), np.minimum(step, horizon - 1)]
        return (1 - done / volume.sum(axis=1))[:, None]


class POV(_Execution):
    """Percentage of volume: trades ``rate`` of the market's traded volume since the
    episode began, the own fills included (``action_mode="execution"``).

    Each step it trades up to ``rate x`` (lots the book traded since the episode's first
    step) minus what it has done; the env completes what is left at the deadline.
    """

    name = "pov"

    def __init__(self, rate: float = 0.1, passive: bool = False) -> None:
        if not 0 < rate < 1:
            raise ValueError(f"rate must be in (0, 1), got {rate}")
        super().__init__(passive)
        self.rate = rate

    def begin(self, env: BatchedMarketEnv) -> None:
        super().begin(env)
        self.start = _traded_volume(env)

    def wanted(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
               agents: Sequence[int], left: np.ndarray, parent: np.ndarray) -> np.ndarray:
        traded = _traded_volume(env)
        self.start = np.where(step == 0, traded, self.start)
        return self.rate * (traded - self.start)[:, None] - (parent - left)


class AlmgrenChriss(_Execution):
    """Almgren-Chriss: the trajectory that minimises expected cost plus ``risk_aversion``
    x variance under linear temporary impact (``action_mode="execution"``).

    With ``N`` steps, the share left after step ``j`` is ``sinh(kappa (N - j)) /
    sinh(kappa N)``, where ``2 (cosh kappa - 1) = risk_aversion sigma^2 / eta`` (the
    discrete-time form, permanent impact neglected; Almgren & Chriss 2000). As
    ``risk_aversion`` goes to 0 it becomes TWAP; larger values trade earlier.

    Parameters
    ----------
    risk_aversion : float
        Lambda, 1 / (tick x lot).
    sigma : float, optional
        The mid's s.d. per step, ticks.
    eta : float, optional
        Temporary impact, ticks per lot per lot traded in a step. :meth:`fit` estimates
        both (:func:`fit_market`).
    """

    name = "almgren_chriss"

    def __init__(self, risk_aversion: float = 1e-3, sigma: float | None = None,
                 eta: float | None = None, passive: bool = False) -> None:
        if not risk_aversion >= 0:
            raise ValueError(f"risk_aversion must be >= 0, got {risk_aversion}")
        super().__init__(passive)
        self.risk_aversion, self.sigma, self.eta = risk_aversion, sigma, eta
        #: parameters given or fitted by the caller: kept; else fitted to each env
        self.given = sigma is not None and eta is not None

    def fit(self, source: Source, **probe: Any) -> AlmgrenChriss:
        """Set ``sigma`` and ``eta`` from :func:`fit_market`; returns ``self``."""
        market = fit_market(source, **probe)
        self.sigma, self.eta = market.sigma, market.eta
        self.given = True
        return self

    def begin(self, env: BatchedMarketEnv) -> None:
        super().begin(env)
        if not self.given:                  # this env's market, not the first one seen
            market = fitted(env)
            self.sigma, self.eta = market.sigma, market.eta

    @property
    def kappa(self) -> float:
        """The trajectory's decay per step."""
        if self.sigma is None or self.eta is None:
            raise ValueError("AlmgrenChriss needs sigma and eta: pass them or call fit()")
        if self.eta <= 0:
            raise ValueError(f"eta must be > 0, got {self.eta}")
        return math.acosh(1 + self.risk_aversion * self.sigma**2 / (2 * self.eta))

    def trajectory(self, horizon: int) -> np.ndarray:
        """Share of the parent left after each of ``0 .. horizon`` steps, ``(horizon + 1,)``."""
        j = np.arange(horizon + 1, dtype=np.float64)
        kappa = self.kappa
        if kappa * horizon < 1e-8:
            return 1 - j / horizon
        # sinh(kappa (N - j)) / sinh(kappa N), written with exponentials that do not
        # overflow for large kappa N; the C library's exp, the same on every CPU (numpy's
        # SIMD exp differs in the last bits between CPUs)
        exp = np.vectorize(math.exp, otypes=[np.float64])
        return (exp(-kappa * j) - exp(-kappa * (2 * horizon - j))) / (
            1 - math.exp(-2 * kappa * horizon))

    def schedule(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                 agents: Sequence[int]) -> np.ndarray:
        return self.trajectory(horizon)[np.minimum(step + 1, horizon)][:, None]


# ---- directional ------------------------------------------------------------------------


class BuyAndHold(_ModeStrategy, _BuyAndHold):
    """Buys with market orders until the position reaches ``fraction`` of the limit, then
    holds (``action_mode="discrete"``; :class:`rltrader.training.exploits.BuyAndHold`)."""


class Momentum(_ModeStrategy):
    """Long ``fraction`` of the limit after the mid rose over the past ``lookback`` steps,
    short after it fell (``action_mode="discrete"``).

    The past return is the sum of the ``return_1`` observations of the last ``lookback``
    steps (ticks); beyond ``threshold`` ticks either way it sets the target position, within
    it the target stays. The position moves toward the target by one market order (the
    agent's order size) per step, and holds within half an order size of it.
    """

    name = "momentum"

    def __init__(self, lookback: int = 100, threshold: float = 4.0,
                 fraction: float = 1.0) -> None:
        if lookback < 1 or threshold < 0 or not 0 < fraction <= 1:
            raise ValueError(f"need lookback >= 1, threshold >= 0 and fraction in (0, 1], "
                             f"got {lookback}, {threshold}, {fraction}")
        self.lookback, self.threshold, self.fraction = lookback, threshold, fraction

    def begin(self, env: BatchedMarketEnv) -> None:
        super().begin(env)
        self.returns = np.zeros((self.lookback, env.n_envs))
        self.steps = 0
        self.target: np.ndarray | None = None

    def signal(self, env: BatchedMarketEnv) -> np.ndarray:
        """Record this step's mid return; the past ``lookback`` steps' return, ticks."""
        self.returns[self.steps % self.lookback] = (self.observed(env, [0], "return_1")[:, 0]
                                                    * env.config.price_scale)
        self.steps += 1
        return self.returns.sum(axis=0)

    def actions(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                agents: Sequence[int]) -> np.ndarray:
        past = self.signal(env)[:, None]
        inventory = self.observed(env, agents, "inventory")
        if self.target is None:
            self.target = np.zeros_like(inventory)
        self.target = np.where(past > self.threshold, self.fraction,
                               np.where(past < -self.threshold, -self.fraction, self.target))
        half = 0.5 * _per_agent(env, env.order_qty, agents) / _per_agent(
            env, env.position_limit, agents)
        codes = self.codes
        gap = self.target - inventory
        return np.where(gap > half, codes.market_buy,
                        np.where(gap < -half, codes.market_sell, codes.hold)).astype(np.int64)


class FlowFollowing(_ModeStrategy):
    """Trades with the order flow, passively (``action_mode="discrete"``).

    The target position is ``fraction`` of the limit long while the ``flow_imbalance``
    observation (an EMA of signed traded volume over volume) is above ``threshold``, as
    much short while it is below ``-threshold``, and flat in between. The position moves
    toward the target by limit orders at the touch (no taker fee, no spread crossed); once
    within half an order size of it, the resting orders are cancelled.

    On markets whose flow has long memory (metaorders split into children, as on
    ``realistic``) the imbalance predicts the next minute's return; taking liquidity to
    follow it loses the fee and the spread, resting at the touch earns them.
    """

    name = "flow_following"

    def __init__(self, threshold: float = 0.6, fraction: float = 1.0) -> None:
        if not 0 <= threshold < 1 or not 0 < fraction <= 1:
            raise ValueError(f"need threshold in [0, 1) and fraction in (0, 1], got "
                             f"{threshold}, {fraction}")
        self.threshold, self.fraction = threshold, fraction

    def actions(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                agents: Sequence[int]) -> np.ndarray:
        flow = self.observed(env, agents, "flow_imbalance")
        inventory = self.observed(env, agents, "inventory")
        resting = self.observed(env, agents, "orders") > 0
        target = np.where(flow > self.threshold, self.fraction,
                          np.where(flow < -self.threshold, -self.fraction, 0.0))
        half = 0.5 * _per_agent(env, env.order_qty, agents) / _per_agent(
            env, env.position_limit, agents)
        gap, codes = target - inventory, self.codes
        settled = np.where(resting, codes.cancel, codes.hold)
        return np.where(gap > half, codes.buy_touch,
                        np.where(gap < -half, codes.sell_touch, settled)).astype(np.int64)


#: the grid of :class:`BestFlowFollowing`: flow thresholds x position fractions
FLOW_GRID = ((0.2, 0.4, 0.6, 0.8), (0.25, 1.0))


class BestFlowFollowing(FlowFollowing):
    """:class:`FlowFollowing` with the threshold and fraction of :data:`FLOW_GRID` that
    earned most on ``tune_seed``'s markets of the env's own configuration (one episode,
    every agent row playing it; cached per configuration), chosen when it begins."""

    _tuned: dict[str, tuple[float, float]] = {}

    def __init__(self, tune_seed: int = 10_000, n_envs: int = 16) -> None:
        super().__init__()
        self.name, self.tune_seed, self.n_envs = "best_flow_following", tune_seed, n_envs

    def begin(self, env: BatchedMarketEnv) -> None:
        self.threshold, self.fraction = _best_of_grid(
            self._tuned, env, self.tune_seed, self.n_envs, FlowFollowing, FLOW_GRID)
        super().begin(env)


#: every baseline of this module by name, built without arguments (market parameters are
#: fitted, the fixed-spread maker tuned, when it begins on an env)
BASELINES: dict[str, type[Strategy]] = {
    "avellaneda_stoikov": AvellanedaStoikov, "size_aware_maker": SizeAwareMaker,
    "best_fixed_spread": BestFixedSpread, "flow_maker": FlowMaker,
    "best_flow_maker": BestFlowMaker, "twap": TWAP, "twap_passive": PassiveTWAP,
    "vwap": VWAP, "pov": POV,
    "almgren_chriss": AlmgrenChriss, "buy_and_hold": BuyAndHold, "momentum": Momentum,
    "flow_following": FlowFollowing, "best_flow_following": BestFlowFollowing,
}
