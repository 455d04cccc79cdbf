"""Smart order routers: library calls that split a parent order across venues.

Every router reads a *snapshot*: a sequence of :class:`VenueView`, one per venue (its
index is the venue's), each with the venue's top levels in common ticks, its tick factor,
fees, the router's latency to it and, for Cont–Kukanov, its touch queues and samples of
their outflow. :func:`snapshot_of` takes one from a
:class:`~rltrader.routing.consolidated.ConsolidatedBook`. A router returns a
:class:`Route`: the children (:class:`Child`, prices on the venue's own grid), the lots of
the parent it did not send (``remainder``) and what it expects the children to cost.

================  ====================================================================
router            what it sends
================  ====================================================================
greedy_sweep      IOC children that take the visible depth of every venue in order of
                  fee- (and latency-) adjusted price, up to the parent's qty or limit
cont_kukanov      Cont & Kukanov's split between an immediate sweep (IOC children)
                  and limit orders at each venue's touch (GTC), from the venues' flow
even_split        equal shares over the venues, each an IOC sweep of its venue
single_venue      the whole parent as one IOC sweep of one venue
================  ====================================================================

Units: prices in common ticks in the snapshot and the parent's limit, in each venue's own
ticks in the children; lots; fees in ppm of notional (a negative maker fee is a rebate);
latencies in ns; a route's ``cost`` in common ticks x lots against the snapshot's
consolidated mid (what the fills pay beyond the mid, fees in; negative is a gain).
:func:`children_messages` turns children into ``MESSAGE_DTYPE`` per venue, and
:func:`outflow_samples` estimates a venue's touch outflow from its event stream.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.core.constants import (
    ACCEPTED,
    BUY,
    CANCELLED,
    FILL,
    GTC,
    IOC,
    LIMIT,
    MAX_FEE_PPM,
    MAX_PRICE,
    MAX_QTY,
    REDUCED,
    SELL,
    Reason,
)
from rltrader.core.messages import EVENT_DTYPE, empty_messages

_BID, _ASK = 0, 1
_IOC, _GTC = int(IOC), int(GTC)
_EXACT_POINTS = 20_000          # "auto" searches every allocation up to this many
_CHUNK = 1 << 21                # candidates x samples x venues evaluated per numpy call


def _integer(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _side(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in (
            BUY, SELL):
        raise ValueError(f"side must be BUY (+1) or SELL (-1), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Parent:
    """The order to route: ``side`` (+1 buy, -1 sell), ``qty`` lots and an optional
    ``limit`` in common ticks (a buy pays at most, a sell receives at least, that price)."""

    side: int
    qty: int
    limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", _side(self.side))
        object.__setattr__(self, "qty", _integer(self.qty, "qty", 1, MAX_QTY))
        if self.limit is not None:
            object.__setattr__(self, "limit", _integer(self.limit, "limit", 1))

    def allows(self, price: int) -> bool:
        """Whether a price (common ticks) respects the limit."""
        return self.limit is None or self.side * price <= self.side * self.limit


@dataclass(frozen=True)
class Child:
    """One order to send: ``price`` in the venue's own ticks, ``tif`` IOC or GTC (a
    ``LIMIT``); ``qty`` lots."""

    venue: int
    side: int
    qty: int
    price: int
    tif: int


@dataclass(frozen=True, eq=False)
class VenueView:
    """What a router knows of one venue.

    Parameters
    ----------
    prices, qtys : array_like of int, (2, n)
        The venue's top levels in common ticks: row 0 bids, row 1 asks, best first, qty 0
        where missing (``ConsolidatedBook.venue_levels``' layout). Prices lie on the
        venue's grid (multiples of ``factor``).
    factor : int
        Common ticks per venue tick.
    maker_fee_ppm, taker_fee_ppm : int
        Fees per million of notional; a negative maker fee is a rebate.
    latency_ns : int
        The router's one-way latency to the venue.
    outflow : array_like of int, (2, N), optional
        Samples of the lots that left the touch queue (traded or cancelled) per window of
        ``outflow_window_ns``: row 0 the bid's, row 1 the ask's (:func:`outflow_samples`).
        Cont–Kukanov posts no limit order on a venue without them.
    outflow_window_ns : int
        The samples' window (> 0 when ``outflow`` is given).
    queue_ahead : (int, int), optional
        Lots ahead of a new order joining the bid / ask touch; default the touch's size.
    """

    prices: Any
    qtys: Any
    factor: int = 1
    maker_fee_ppm: int = 0
    taker_fee_ppm: int = 0
    latency_ns: int = 0
    outflow: Any = None
    outflow_window_ns: int = 0
    queue_ahead: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        prices = np.array(self.prices, dtype=np.int64, copy=True)
        qtys = np.array(self.qtys, dtype=np.int64, copy=True)
        if prices.ndim != 2 or prices.shape[0] != 2 or prices.shape != qtys.shape:
            raise ValueError(f"prices and qtys must both be (2, n), got {prices.shape} and "
                             f"{qtys.shape}")
        factor = _integer(self.factor, "factor", 1)
        for name in ("maker_fee_ppm", "taker_fee_ppm"):
            object.__setattr__(self, name, _integer(getattr(self, name), name, -MAX_FEE_PPM,
                                                    MAX_FEE_PPM))
        object.__setattr__(self, "latency_ns", _integer(self.latency_ns, "latency_ns", 0))
        if (qtys < 0).any():
            raise ValueError("qtys must be >= 0")
        depth = (qtys > 0).sum(axis=1)
        for row, sign in ((_BID, -1), (_ASK, 1)):
            n = int(depth[row])
            p = prices[row, :n]
            if (qtys[row, n:] != 0).any():
                raise ValueError("levels must come first in each row (qty 0 only after them)")
            if n and (p.min() < 1 or p.max() > MAX_PRICE * factor):
                raise ValueError("level prices must be in [1, MAX_PRICE] venue ticks")
            if (p % factor != 0).any():
                raise ValueError(f"level prices must be multiples of factor {factor}")
            if (sign * np.diff(p) <= 0).any():
                raise ValueError("levels must be best first: bids descending, asks ascending")
        object.__setattr__(self, "factor", factor)
        prices.flags.writeable = qtys.flags.writeable = False
        object.__setattr__(self, "prices", prices)
        object.__setattr__(self, "qtys", qtys)
        object.__setattr__(self, "_depth", (int(depth[0]), int(depth[1])))
        if self.outflow is not None:
            outflow = np.array(self.outflow, dtype=np.int64, copy=True)
            if outflow.ndim != 2 or outflow.shape[0] != 2 or outflow.shape[1] < 1:
                raise ValueError(f"outflow must be (2, N) with N >= 1, got {outflow.shape}")
            if (outflow < 0).any():
                raise ValueError("outflow samples must be >= 0")
            outflow.flags.writeable = False
            object.__setattr__(self, "outflow", outflow)
            object.__setattr__(self, "outflow_window_ns",
                               _integer(self.outflow_window_ns, "outflow_window_ns", 1))
        if self.queue_ahead is not None:
            if len(self.queue_ahead) != 2:
                raise ValueError("queue_ahead must be (bid, ask) lots")
            object.__setattr__(self, "queue_ahead", tuple(
                _integer(q, "queue_ahead", 0) for q in self.queue_ahead))

    def levels(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """``(prices, qtys)`` of row 0 (bids) or 1 (asks), best first, only real levels."""
        n = self._depth[row]  # type: ignore[attr-defined]
        return self.prices[row, :n], self.qtys[row, :n]

    def queue(self, row: int) -> int:
        """Lots ahead of a new order at the touch of row ``row``."""
        if self.queue_ahead is not None:
            return self.queue_ahead[row]
        return int(self.qtys[row, 0])


@dataclass(frozen=True)
class Route:
    """A router's decision: iterate it for the children.

    ``remainder`` is the parent's qty less the children's (lots not sent: beyond the
    visible depth or the limit, or held back; negative when Cont–Kukanov over-posts with
    ``max_total`` above the qty); ``cost`` what the route is expected to
    cost in common ticks x lots against the snapshot's mid (see each router);
    ``expected_fill`` the lots expected to fill.
    """

    children: tuple[Child, ...]
    remainder: int
    cost: float
    expected_fill: float

    def __iter__(self) -> Iterator[Child]:
        return iter(self.children)

    def __len__(self) -> int:
        return len(self.children)


# ---- the snapshot ------------------------------------------------------------------------


def snapshot_of(book: Any, n_levels: int = 10, *, outflow: Sequence[Any] | None = None,
                outflow_window_ns: int = 0,
                queue_ahead: Sequence[tuple[int, int] | None] | None = None
                ) -> tuple[VenueView, ...]:
    """The views of a :class:`~rltrader.routing.consolidated.ConsolidatedBook` (anything
    with ``n_venues``, ``factor``, ``fees`` (V, 2), ``latency_ns`` (V,) and
    ``venue_levels(v, n)``): its top ``n_levels`` per venue as that participant sees them,
    with per-venue ``outflow`` samples and ``queue_ahead`` when given."""
    n = _integer(book.n_venues, "n_venues", 1)
    views = []
    for v in range(n):
        prices, qtys = book.venue_levels(v, n_levels)
        views.append(VenueView(
            prices, qtys, int(book.factor[v]), int(book.fees[v][0]), int(book.fees[v][1]),
            int(book.latency_ns[v]), None if outflow is None else outflow[v],
            outflow_window_ns, None if queue_ahead is None else queue_ahead[v]))
    return tuple(views)


def _views(snapshot: Sequence[VenueView]) -> tuple[VenueView, ...]:
    views = tuple(snapshot)
    if not views:
        raise ValueError("the snapshot holds no venue")
    for v, view in enumerate(views):
        if not isinstance(view, VenueView):
            raise ValueError(f"snapshot[{v}] must be a VenueView, got {type(view).__name__}")
    return views


def _parent(parent: Any) -> Parent:
    if not isinstance(parent, Parent):
        raise ValueError(f"parent must be a Parent, got {type(parent).__name__}")
    return parent


def _mid(views: tuple[VenueView, ...]) -> float:
    """The consolidated mid (common ticks); the one side's best when the other is empty."""
    bids = [int(view.prices[_BID, 0]) for view in views if view.levels(_BID)[0].size]
    asks = [int(view.prices[_ASK, 0]) for view in views if view.levels(_ASK)[0].size]
    if bids and asks:
        return (max(bids) + min(asks)) / 2
    return float(max(bids) if bids else min(asks) if asks else 0)


class _Takeable:
    """The levels a parent may take, in the order a sweep takes them: fee- and
    latency-adjusted price, then latency, venue, price."""

    def __init__(self, parent: Parent, views: tuple[VenueView, ...], mid: float,
                 penalty_per_ms: float) -> None:
        if not math.isfinite(penalty_per_ms) or penalty_per_ms < 0:
            raise ValueError(f"latency_penalty_ticks_per_ms must be finite and >= 0, got "
                             f"{penalty_per_ms}")
        s = parent.side
        row = _ASK if s == BUY else _BID
        price, qty, venue, unit, key, latency = [], [], [], [], [], []
        for v, view in enumerate(views):
            p, q = view.levels(row)
            if parent.limit is not None:
                keep = s * p <= s * parent.limit           # best first: a prefix
                p, q = p[keep], q[keep]
            # cost per lot beyond the mid, taker fee in: s (p - mid) + p f
            u = s * (p - mid) + p * (view.taker_fee_ppm / 1e6)
            price.append(p)
            qty.append(q)
            venue.append(np.full(p.size, v))
            unit.append(u)
            key.append(u + penalty_per_ms * view.latency_ns / 1e6)
            latency.append(np.full(p.size, view.latency_ns))
        price_a, venue_a, key_a = np.concatenate(price), np.concatenate(venue), np.concatenate(key)
        order = np.lexsort((s * price_a, venue_a, np.concatenate(latency), key_a))
        self.side = s
        self.price = price_a[order]
        self.qty = np.concatenate(qty)[order]
        self.venue = venue_a[order]
        self.unit = np.concatenate(unit)[order]
        self.key = key_a[order]
        self.cum_qty = np.cumsum(self.qty)
        self.depth = int(self.cum_qty[-1]) if self.cum_qty.size else 0

    def take(self, qty: int) -> np.ndarray:
        """Lots taken of each level by a sweep of ``qty`` (<= depth) lots."""
        before = self.cum_qty - self.qty
        return np.clip(qty - before, 0, self.qty)

    def children(self, taken: np.ndarray, views: tuple[VenueView, ...]) -> list[Child]:
        """One IOC child per venue at the worst price it takes there (venue ticks)."""
        out = []
        for v in np.unique(self.venue[taken > 0]).tolist():
            mask = (self.venue == v) & (taken > 0)
            worst = int((self.side * self.price[mask]).max()) * self.side
            out.append(Child(v, self.side, int(taken[mask].sum()),
                             worst // views[v].factor, _IOC))
        return out

    def cost_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lots, cost)``: the sweep's decision cost (the sort key, latency penalty in) of
        its first ``lots`` lots at the breakpoints, linear in between."""
        return (np.concatenate(([0], self.cum_qty)),
                np.concatenate(([0.0], np.cumsum(self.key * self.qty))))


# ---- the sweeping routers ----------------------------------------------------------------


def greedy_sweep(parent: Parent, snapshot: Sequence[VenueView], *,
                 latency_penalty_ticks_per_ms: float = 0.0) -> Route:
    """Take the venues' visible opposite levels, cheapest first, until the parent's qty.

    A level's decision price is, for a buy, ``price * (1 + taker_fee) + penalty x latency``
    (a sell: ``-price * (1 - taker_fee) + penalty x latency``, the same order of proceeds);
    levels beyond the parent's limit are not taken. Each venue gets one IOC child at the
    worst price it takes there; the lots the visible depth cannot give are the
    ``remainder``. Taking the cheapest lots first is the cheapest allocation, since each
    venue's own lots get dearer as it goes deeper.

    Parameters
    ----------
    parent : Parent
    snapshot : sequence of VenueView
    latency_penalty_ticks_per_ms : float
        Common ticks per lot added to a venue's levels per ms of latency (the price of the
        risk that the level is gone when the child arrives).

    Returns
    -------
    Route
        ``cost``: the spread and taker fees the children pay at the snapshot (without the
        latency penalty).
    """
    parent, views = _parent(parent), _views(snapshot)
    book = _Takeable(parent, views, _mid(views), float(latency_penalty_ticks_per_ms))
    qty = min(parent.qty, book.depth)
    taken = book.take(qty)
    return Route(tuple(book.children(taken, views)), parent.qty - qty,
                 float((taken * book.unit).sum()), float(qty))


def _venue_sweeps(parent: Parent, views: tuple[VenueView, ...],
                  shares: Mapping[int, int]) -> Route:
    mid = _mid(views)
    children, cost, sent = [], 0.0, 0
    for v, share in shares.items():
        if share <= 0:
            continue
        book = _Takeable(parent, (views[v],), mid, 0.0)
        qty = min(share, book.depth)
        taken = book.take(qty)
        children += [Child(v, c.side, c.qty, c.price, c.tif)
                     for c in book.children(taken, (views[v],))]
        cost += float((taken * book.unit).sum())
        sent += qty
    return Route(tuple(children), parent.qty - sent, cost, float(sent))


def even_split(parent: Parent, snapshot: Sequence[VenueView]) -> Route:
    """The naive baseline: ``qty // V`` lots per venue (the first ``qty % V`` venues one
    more), each an IOC at the price that sweeps its share of that venue's visible depth
    (within the limit); what a venue cannot give is the ``remainder``, not moved to
    another venue. ``cost`` as in :func:`greedy_sweep`."""
    parent, views = _parent(parent), _views(snapshot)
    base, extra = divmod(parent.qty, len(views))
    return _venue_sweeps(parent, views, {v: base + (v < extra) for v in range(len(views))})


def single_venue(parent: Parent, snapshot: Sequence[VenueView], venue: int) -> Route:
    """The whole parent as one IOC sweep of ``venue``'s visible depth (within the limit);
    the rest is the ``remainder``. ``cost`` as in :func:`greedy_sweep`."""
    parent, views = _parent(parent), _views(snapshot)
    venue = _integer(venue, "venue", 0, len(views) - 1)
    return _venue_sweeps(parent, views, {venue: parent.qty})


# ---- Cont–Kukanov ------------------------------------------------------------------------


class _Problem:
    """The sample average of Cont–Kukanov's cost over integer allocations ``X = (M, L_1 ..
    L_J)`` (``J`` the venues that may hold a limit order), with the bounds of the search."""

    def __init__(self, target: int, total: int, lots: np.ndarray, cost: np.ndarray,
                 key: np.ndarray, m_max: int, excess: np.ndarray, gain: np.ndarray,
                 lambda_under: float, lambda_over: float) -> None:
        self.target, self.total = target, total
        self.lots, self.cost, self.key = lots, cost, key
        # (N, J): (xi - Q)_+, the lots a limit order can get, capped at ``total`` (no order
        # is larger), then the distinct rows with their weights (many repeat at the cap).
        excess, count = np.unique(np.minimum(excess, total), axis=0, return_counts=True)
        self.excess, self.weight = excess, count / count.sum()
        self.gain = gain                      # (J,): earned per filled lot against the mid
        self.lambda_under, self.lambda_over = lambda_under, lambda_over
        reach = excess.max(axis=0) if excess.shape[0] else np.zeros(0, np.int64)
        # More than the largest sample's excess never fills more: no need to search there.
        self.upper = np.concatenate(([min(m_max, target, total)],
                                     np.minimum(reach, total))).astype(np.int64)
        # Steps of -1, 0 or +1 on every coordinate at once (few venues): a local search
        # over single coordinates and pairs stops where several must move together.
        d = self.upper.size
        self._cube = (np.array(list(itertools.product((-1, 0, 1), repeat=d)), dtype=np.int64)
                      if d <= 5 else None)

    def values(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cost, expected fill)`` of each row of ``x`` (C, J + 1)."""
        n, j = self.excess.shape
        market = x[:, 0].astype(np.float64)
        cost = np.interp(market, self.lots, self.cost)
        fill = market.copy()
        rows = max(1, _CHUNK // max(1, n * j))
        for lo in range(0, x.shape[0], rows):
            part = x[lo:lo + rows, 1:]
            filled = np.minimum(part[:, None, :], self.excess[None])      # (c, N, J)
            got = filled.sum(axis=2)
            a = x[lo:lo + rows, 0, None] + got
            cost[lo:lo + rows] += (
                (self.lambda_under * np.maximum(self.target - a, 0)
                 + self.lambda_over * np.maximum(a - self.target, 0)) @ self.weight
                - np.einsum("cnj,n,j->c", filled, self.weight, self.gain))
            fill[lo:lo + rows] += got @ self.weight
        return cost, fill

    def exact(self) -> np.ndarray:
        """Every allocation in the bounds: the cheapest, then the fewest market lots, then
        the most limit lots."""
        grid = np.indices(tuple(self.upper + 1)).reshape(self.upper.size, -1).T
        grid = grid[grid.sum(axis=1) <= self.total]
        cost, _ = self.values(grid)
        best = cost.min()
        tied = np.flatnonzero(cost <= best + 1e-9 * (1.0 + abs(best)))
        pick = np.lexsort((-grid[tied, 1:].sum(axis=1), grid[tied, 0]))[0]
        return grid[tied[pick]]

    def approximate(self, iterations: int, rng: np.random.Generator) -> np.ndarray:
        """Cont & Kukanov's stochastic approximation: projected stochastic subgradient
        steps, one outflow sample each, ``gamma = total / (G sqrt(iterations))`` with ``G``
        a bound on the subgradient; returns the average iterate (continuous)."""
        n, j = self.excess.shape
        upper = self.upper.astype(np.float64).tolist()
        g_bound = (float(np.abs(self.key).max(initial=0.0)) + float(np.abs(self.gain).max(
            initial=0.0)) + self.lambda_under + self.lambda_over)
        gamma = self.total / (max(g_bound, 1e-12) * math.sqrt(iterations))
        cum = self.lots[1:].tolist()
        key = self.key.tolist() or [0.0]
        gain = self.gain.tolist()
        samples = self.excess.tolist()
        x = [0.0] + [min(u, self.target / max(j, 1)) for u in upper[1:]]
        x = _project(x, upper, self.total)
        mean = [0.0] * (j + 1)
        target, under, over = self.target, self.lambda_under, self.lambda_over
        for t, k in enumerate(rng.choice(n, iterations, p=self.weight).tolist(), 1):
            e = samples[k]
            a = x[0] + sum(min(x[i + 1], e[i]) for i in range(j))
            penalty = -under if a < target else over if a > target else 0.0
            step = [key[min(_bisect(cum, x[0]), len(key) - 1)] + penalty]
            step += [(penalty - gain[i]) if x[i + 1] < e[i] else 0.0 for i in range(j)]
            x = _project([xi - gamma * gi for xi, gi in zip(x, step, strict=True)], upper,
                         self.total)
            mean = [m + (xi - m) / t for m, xi in zip(mean, x, strict=True)]
        return np.array(mean)

    def polish(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Integer local search from ``x``: the best value of each coordinate and the best
        transfer between two coordinates; when neither improves, the best step of -1, 0 or
        +1 on every coordinate at once (few venues); until nothing improves."""
        x = x.astype(np.int64).copy()
        for _ in range(64):
            moved = False
            for i in range(x.size):
                others = int(x.sum() - x[i])
                values = self._line(x, i, 0, min(int(self.upper[i]), self.total - others))
                cand = np.tile(x, (values.size, 1))
                cand[:, i] = values
                moved |= self._accept(x, cand, (i,))
            for i, k in itertools.combinations(range(x.size), 2):
                lo = max(int(x[i] - self.upper[i]), -int(x[k]))
                hi = min(int(x[i]), int(self.upper[k] - x[k]))
                d = self._line(x, i, x[i] - hi, x[i] - lo, k)
                cand = np.tile(x, (d.size, 1))
                cand[:, i] = d
                cand[:, k] = x[k] + x[i] - d
                moved |= self._accept(x, cand, (i, k))
            if not moved and self._cube is not None:
                moved = self._accept(x, np.clip(x + self._cube, 0, self.upper))
            if not moved:
                break
        return x, float(self.values(x[None])[0][0])

    def _accept(self, x: np.ndarray, cand: np.ndarray, coords: tuple[int, ...] = ()) -> bool:
        """Move ``x`` to the cheapest candidate if it is cheaper; candidates that differ
        from ``x`` only in ``coords`` are costed on those coordinates alone."""
        cand = np.vstack((x[None], cand[cand.sum(axis=1) <= self.total]))
        cost = self._along(x, cand, coords) if coords else self.values(cand)[0]
        i = int(np.argmin(cost))
        if i == 0 or cost[i] >= cost[0] - 1e-9 * (1.0 + abs(cost[0])):
            return False
        x[:] = cand[i]
        return True

    def _along(self, x: np.ndarray, cand: np.ndarray, coords: tuple[int, ...]) -> np.ndarray:
        """:meth:`values`' cost of candidates equal to ``x`` but in ``coords``: the other
        coordinates' fills are computed once, per sample, not per candidate."""
        fills = np.minimum(x[1:], self.excess)                       # (N, J)
        a = x[0] + fills.sum(axis=1)
        earned = fills @ self.gain
        for i in coords:
            if i == 0:
                a = a - x[0]
            else:
                a = a - fills[:, i - 1]
                earned = earned - self.gain[i - 1] * fills[:, i - 1]
        a = np.broadcast_to(a, (cand.shape[0], a.size))
        earned = np.broadcast_to(earned, a.shape)
        for i in coords:
            if i == 0:
                a = a + cand[:, :1]
            else:
                got = np.minimum(cand[:, i, None], self.excess[None, :, i - 1])
                a = a + got
                earned = earned + self.gain[i - 1] * got
        penalty = (self.lambda_under * np.maximum(self.target - a, 0)
                   + self.lambda_over * np.maximum(a - self.target, 0))
        return np.interp(cand[:, 0].astype(np.float64), self.lots, self.cost) + (
            penalty - earned) @ self.weight

    def _line(self, x: np.ndarray, i: int, lo: int, hi: int, k: int = -1) -> np.ndarray:
        """Values of coordinate ``i`` to try in ``[lo, hi]``: all of them when few, else the
        points where the cost's slope can change (its pieces are linear in between)."""
        if hi - lo <= 256:
            return np.arange(lo, hi + 1)
        points = [np.array([lo, hi, x[i] - 1, x[i] + 1])]
        if i == 0:
            points.append(self.lots)
        else:
            points.append(self.excess[:, i - 1])
        if k > 0:                              # a transfer: where coordinate k's fills bend
            points.append(x[i] + x[k] - self.excess[:, k - 1])
        else:                                  # where the fills reach the target
            got = np.minimum(x[1:], self.excess).sum(axis=1) + x[0]
            own = x[0] if i == 0 else np.minimum(x[i], self.excess[:, i - 1])
            points.append(self.target - (got - own))
        p = np.unique(np.concatenate(points))
        return p[(p >= lo) & (p <= hi)]


def _bisect(cum: list[int], x: float) -> int:
    """Index of the level that holds lot ``x`` (continuous) of the sweep."""
    lo, hi = 0, len(cum)
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _project(x: list[float], upper: list[float], total: float) -> list[float]:
    """Euclidean projection onto ``{0 <= x_i <= upper_i, sum x <= total}``: clip, or clip
    ``x - tau`` with the ``tau > 0`` that brings the sum to ``total``. The sum falls
    linearly in ``tau`` between the points where a coordinate leaves its upper bound
    (``x_i - upper_i``) or reaches 0 (``x_i``): walk them in order."""
    y = [min(max(v, 0.0), u) for v, u in zip(x, upper, strict=True)]
    mass = sum(y)
    if mass <= total:
        return y
    events = sorted([(v - u, 1) for v, u in zip(x, upper, strict=True) if v - u > 0]
                    + [(v, -1) for v in x if v > 0])
    slope = sum(1 for v, u in zip(x, upper, strict=True) if 0 < v <= u)
    tau = 0.0
    for point, change in events:
        drop = slope * (point - tau)
        if mass - drop <= total:
            break
        mass, tau = mass - drop, point
        slope += change
    tau += (mass - total) / slope if slope else 0.0
    return [min(max(v - tau, 0.0), u) for v, u in zip(x, upper, strict=True)]


def _horizon_samples(views: tuple[VenueView, ...], venues: list[int], row: int,
                     horizon_ns: int, rng: np.random.Generator) -> np.ndarray:
    """(N, J) outflow over the horizon: sums of consecutive windows; paired across venues
    when every venue has as many, else each resampled (with replacement) to the most."""
    per = []
    for v in venues:
        view = views[v]
        windows, rest = divmod(horizon_ns, view.outflow_window_ns)
        if rest or not windows:
            raise ValueError(f"horizon_ns {horizon_ns} must be a multiple of venue {v}'s "
                             f"outflow_window_ns {view.outflow_window_ns}")
        c = np.concatenate(([0], np.cumsum(view.outflow[row])))
        if c.size - 1 < windows:
            raise ValueError(f"venue {v}'s outflow samples span less than horizon_ns")
        per.append(c[windows:] - c[:-windows])
    if not per:
        return np.zeros((0, 0), dtype=np.int64)
    n = max(p.size for p in per)
    if any(p.size != n for p in per):
        per = [p if p.size == n else p[rng.integers(0, p.size, n)] for p in per]
    return np.stack(per, axis=1)


def cont_kukanov(parent: Parent, snapshot: Sequence[VenueView], *, horizon_ns: int,
                 lambda_under: float, lambda_over: float,
                 latency_penalty_ticks_per_ms: float = 0.0, max_total: int | None = None,
                 method: str = "auto", iterations: int = 300, seed: int = 0) -> Route:
    """Cont & Kukanov's optimal split between market and limit orders across venues.

    Cont, R. and Kukanov, A. (2017), "Optimal order placement in limit order markets",
    Quantitative Finance 17(1). A trader must buy (sell) ``S`` lots within a horizon
    ``T``. At ``t = 0`` it sends a market order of ``M`` lots and a limit order of ``L_k``
    lots at the touch of each venue ``k`` (the bid for a buy), behind a queue of ``Q_k``
    lots. Over ``[0, T]`` the queue loses ``xi_k`` lots (trades and cancellations), so the
    limit order fills ``min(L_k, (xi_k - Q_k)_+)``; in all ``A(X, xi) = M + sum_k min(L_k,
    (xi_k - Q_k)_+)`` lots. The cost of ``X = (M, L_1 .. L_K)`` against the mid is

        V(X, xi) = (h + f) M - sum_k (h + r_k) min(L_k, (xi_k - Q_k)_+)
                   + lambda_u (S - A)_+ + lambda_o (A - S)_+

    with ``h`` the half spread, ``f`` the taker fee, ``r_k`` the venue's rebate (the
    paper's fees per lot), ``lambda_u`` the penalty per lot left unfilled at ``T`` (it must
    then be bought at a worse price) and ``lambda_o`` per lot bought beyond ``S``. The
    optimal ``X`` minimises ``E V(X, xi)`` over ``M, L_k >= 0``.

    Here: ``(h + f) M`` is the cost of sweeping the first ``M`` lots of the venues' visible
    depth (as :func:`greedy_sweep`: each lot's price beyond the mid plus its venue's taker
    fee, plus the latency penalty), so ``M`` may be spread over venues and levels; ``h +
    r_k`` is ``side x (mid - touch_k) - touch_k x maker_fee_k`` per lot; the expectation is
    the average over the outflow samples (the venues' own flow, summed over ``horizon_ns``
    and paired across venues); ``M + sum L_k <= max_total`` (default ``S``, so the
    children sum to at most the parent; a larger value lets the router over-post limit
    orders as in the paper, ``lambda_o`` pricing the risk). ``X`` is found over integers
    by an exhaustive search (``method="exact"``; ``"auto"`` when the allocations in the
    bounds are at most 20,000) or by the paper's stochastic approximation (``"sa"``:
    ``iterations`` projected subgradient steps, one sample each, seeded) followed by an
    integer local search (best single coordinate, best transfer between two) from its
    average and from the all-market and all-limit allocations. Limit lots that never fill
    in any sample cost nothing in the model: when ``M + sum L_k`` falls short of
    ``min(S, max_total)``, the rest is posted on the venue with the best ``h + r_k`` among
    those whose limit order already exceeds every sample's outflow.

    A venue takes no limit order without outflow samples, without a touch on the parent's
    side, or with a touch beyond the limit; the latency to a venue is not modelled in its
    queue (pass ``queue_ahead`` in the view).

    Parameters
    ----------
    parent : Parent
    snapshot : sequence of VenueView
    horizon_ns : int
        ``T``: a multiple of each venue's ``outflow_window_ns``.
    lambda_under, lambda_over : float
        ``lambda_u``, ``lambda_o`` in common ticks per lot (>= 0).
    latency_penalty_ticks_per_ms : float
        As in :func:`greedy_sweep`, for the market order's levels.
    max_total : int, optional
        Bound on ``M + sum L_k`` (default the parent's qty).
    method : {"auto", "exact", "sa"}
    iterations : int
        Stochastic approximation steps.
    seed : int
        Seeds the sample order (and the resampling of unequal sample counts).

    Returns
    -------
    Route
        IOC children for ``M`` (one per venue, as :func:`greedy_sweep`), GTC children for
        the ``L_k`` at each venue's touch; ``cost`` the minimised sample-average ``V``
        (common ticks x lots, latency penalty in), ``expected_fill`` the average ``A``.
    """
    parent, views = _parent(parent), _views(snapshot)
    horizon_ns = _integer(horizon_ns, "horizon_ns", 1)
    for name, value in (("lambda_under", lambda_under), ("lambda_over", lambda_over)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not (
                math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    total = parent.qty if max_total is None else _integer(max_total, "max_total", 1)
    if method not in ("auto", "exact", "sa"):
        raise ValueError(f"method must be 'auto', 'exact' or 'sa', got {method!r}")
    iterations = _integer(iterations, "iterations", 1)
    rng = np.random.default_rng(_integer(seed, "seed", 0))
    s, mid = parent.side, _mid(views)
    book = _Takeable(parent, views, mid, float(latency_penalty_ticks_per_ms))
    row = _BID if s == BUY else _ASK
    venues = [v for v, view in enumerate(views) if view.outflow is not None
              and view.levels(row)[0].size and parent.allows(int(view.prices[row, 0]))]
    touch = np.array([views[v].prices[row, 0] for v in venues], dtype=np.float64)
    maker = np.array([views[v].maker_fee_ppm for v in venues], dtype=np.float64) / 1e6
    queue = np.array([views[v].queue(row) for v in venues], dtype=np.int64)
    xi = _horizon_samples(views, venues, row, horizon_ns, rng)
    excess = np.maximum(xi - queue, 0) if venues else np.zeros((1, 0), dtype=np.int64)
    lots, cost = book.cost_curve()
    problem = _Problem(parent.qty, total, lots, cost, book.key, book.depth, excess,
                       s * (mid - touch) - touch * maker, float(lambda_under),
                       float(lambda_over))
    points = math.prod(int(u) + 1 for u in problem.upper)
    if method == "exact" or (method == "auto" and points <= _EXACT_POINTS):
        if points > 50 * _EXACT_POINTS:
            raise ValueError(f"method='exact' would search {points} allocations; use 'sa'")
        x = problem.exact()
    else:
        starts = [np.floor(problem.approximate(iterations, rng)),
                  np.concatenate(([problem.upper[0]], np.zeros(len(venues)))),
                  np.concatenate(([0], _project(problem.upper[1:].astype(float).tolist(),
                                                problem.upper[1:].tolist(),
                                                float(total))))]
        found = [problem.polish(np.floor(start)) for start in starts]
        x = min(found, key=lambda pair: pair[1])[0]
    x = _top_up(problem, x, min(parent.qty, total))
    expected, fill = problem.values(x[None])
    children = book.children(book.take(int(x[0])), views)
    children += [Child(v, s, int(q), int(views[v].prices[row, 0]) // views[v].factor, _GTC)
                 for v, q in zip(venues, x[1:].tolist(), strict=True) if q > 0]
    return Route(tuple(children), parent.qty - int(x.sum()), float(expected[0]),
                 float(fill[0]))


def _top_up(problem: _Problem, x: np.ndarray, want: int) -> np.ndarray:
    """Post the lots short of ``want`` where they change nothing in the model: on the
    venue with the best gain among those whose order exceeds every sample's excess."""
    short = want - int(x.sum())
    if short <= 0 or problem.gain.size == 0:
        return x
    idle = (x[1:] >= problem.excess.max(axis=0)) & (problem.gain > 0)
    if not idle.any():
        return x
    x = x.copy()
    x[1 + int(np.argmax(np.where(idle, problem.gain, -np.inf)))] += short
    return x


# ---- flow and messages -------------------------------------------------------------------


def outflow_samples(events: np.ndarray, side: int, horizon_ns: int, *,
                    start_ns: int | None = None, end_ns: int | None = None,
                    book: int = 0) -> np.ndarray:
    """Lots that left a venue's touch queue per window of ``horizon_ns``: ``xi`` samples.

    ``events`` is the venue's ``EVENT_DTYPE`` stream (in the core's order, timestamps
    non-decreasing); ``side`` the queue's side (``BUY``: the bid, where a buyer's limit
    order waits). The windows are ``[start + i h, start + (i + 1) h)`` inside ``[start_ns,
    end_ns)`` (default: the first event's timestamp to the last one's + 1), complete
    ones only; events before ``start_ns`` only build the book. A window's outflow is what
    left the queue that was the touch when it began (its price ``P``, read from the level
    book of :class:`~rltrader.analytics.FeatureEngine`): the lots traded against resting
    orders of ``side`` at ``P`` or worse (a trade through ``P`` took the queue first) and
    the lots cancelled or reduced from resting orders at ``P`` (an IOC's or FOK's own
    cancel, and the cancels of an order in its own message, are not in the book). A window
    that begins with that side empty has outflow 0. Give every venue the same
    ``start_ns``/``end_ns`` to pair their samples by window.

    Returns
    -------
    numpy.ndarray
        int64 ``(N,)``; stack a venue's bid and ask samples as ``VenueView.outflow``.
    """
    from rltrader.analytics import FeatureEngine

    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        got = getattr(events, "dtype", type(events).__name__)
        raise ValueError(f"events must be a 1-D EVENT_DTYPE array, got {got}")
    side, horizon_ns = _side(side), _integer(horizon_ns, "horizon_ns", 1)
    events = events[events["book"] == _integer(book, "book", 0)].copy()
    if events.size == 0:
        raise ValueError(f"no event of book {book}")
    t = events["timestamp"]
    if (np.diff(t) < 0).any():
        raise ValueError("event timestamps must be non-decreasing")
    start = int(t[0]) if start_ns is None else _integer(start_ns, "start_ns", 0)
    end = int(t[-1]) + 1 if end_ns is None else _integer(end_ns, "end_ns", start + 1)
    n = (end - start) // horizon_ns
    if n < 1:
        raise ValueError(f"[{start}, {end}) holds no whole window of {horizon_ns} ns")
    events["book"] = 0
    edges = np.searchsorted(t, start + horizon_ns * np.arange(n + 1), side="left")
    engine = FeatureEngine(1, intervals=(horizon_ns,), sample=horizon_ns, indicators=False,
                           embedding=None, history=1)
    row = _BID if side == BUY else _ASK
    touch = np.zeros(n, dtype=np.int64)
    engine.process_events(events[:edges[0]])
    for i in range(n):
        touch[i] = engine.top_levels(0, 1)[0][row, 0]
        engine.process_events(events[edges[i]:edges[i + 1]])
    ev = events[edges[0]:edges[-1]]
    window = np.repeat(np.arange(n), np.diff(edges))
    p0 = touch[window]
    price, qty, kind = ev["price"], ev["qty"], ev["kind"]
    traded = (kind == FILL) & (ev["side"] == -side) & (side * price <= side * p0)
    # The order accepted earlier in the same message (a taker that never rested).
    index = np.arange(ev.size)
    new_message = np.ones(ev.size, dtype=bool)
    new_message[1:] = ev["message_index"][1:] != ev["message_index"][:-1]
    first = np.maximum.accumulate(np.where(new_message, index, 0))
    last_accept = np.maximum.accumulate(np.where(kind == ACCEPTED, index, -1))
    own = np.where(last_accept >= first, ev["order_id"][np.maximum(last_accept, 0)], 0)
    pulled = (((kind == CANCELLED) | (kind == REDUCED)) & (ev["side"] == side)
              & (price == p0) & (ev["order_id"] != own)
              & (ev["reason"] != Reason.IOC_REMAINDER) & (ev["reason"] != Reason.FOK_UNFILLABLE))
    out = np.bincount(window, weights=np.where((traded | pulled) & (p0 > 0), qty, 0),
                      minlength=n)
    return out.astype(np.int64)


def children_messages(children: Sequence[Child] | Route, *, owner: int | Sequence[int],
                      next_order_id: int, timestamp: int, book: int = 0
                      ) -> dict[int, np.ndarray]:
    """The children as ``MESSAGE_DTYPE`` records per venue (``{venue: array}``, in the
    children's order): ``LIMIT`` orders with their price (venue ticks), qty, side and tif;
    ids ``next_order_id``, ``next_order_id + 1`` ... in the children's order (the next
    free id is ``next_order_id + len(children)``), or all 0 with ``next_order_id=0`` for a
    receiver that names new orders itself (``MultiVenueMarket.submit``); ``owner`` one for
    every venue or one per venue (an account's index differs between venues' books)."""
    children = list(children)
    order_id = _integer(next_order_id, "next_order_id", 0)
    timestamp = _integer(timestamp, "timestamp", 0)
    out: dict[int, list[tuple[int, Child]]] = {}
    for i, child in enumerate(children):
        if not isinstance(child, Child):
            raise ValueError(f"children[{i}] must be a Child, got {type(child).__name__}")
        _integer(child.qty, "child qty", 1, MAX_QTY)
        _integer(child.price, "child price", 1, MAX_PRICE)
        out.setdefault(_integer(child.venue, "child venue", 0), []).append(
            (order_id + i if order_id else 0, child))
    result = {}
    for venue, rows in out.items():
        who = owner if isinstance(owner, (int, np.integer)) else operator.index(owner[venue])
        msgs = empty_messages(len(rows))
        msgs["timestamp"], msgs["book"], msgs["op"] = timestamp, book, LIMIT
        msgs["owner"] = _integer(who, "owner", -1)
        for k, (oid, child) in enumerate(rows):
            msgs[k]["order_id"], msgs[k]["price"], msgs[k]["qty"] = oid, child.price, child.qty
            msgs[k]["side"], msgs[k]["tif"] = _side(child.side), child.tif
        result[venue] = msgs
    return result
