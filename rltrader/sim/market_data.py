"""What a market recording holds, as frozen dataclasses of numpy arrays (units per field).

- :class:`Quotes`: the top of book sampled on a uniform clock (what a simulator records per
  book), optionally with the quantities of the top ``L`` levels per side;
- :class:`Trades`: one row per aggressive order (fills of one taker at one instant merged,
  see :func:`merge_fills`), with the aggressor's sign;
- :class:`ParentOrders`: an execution agent's parent (meta-)orders with their normalisers;
- :class:`MarketData`: the three for one book.

:func:`sample_on_clock` turns event-time data into clocked samples; :func:`lobster_market`
builds a :class:`MarketData` from a LOBSTER message file by rebuilding the book with the core.
Constructors validate shapes, dtypes and values and raise ``ValueError``/``TypeError``
naming the field and row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from rltrader.core.constants import EMPTY_ASK, EMPTY_BID


def _array(name: str, values: np.ndarray, dtype: type, ndim: int = 1) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if dtype is np.int64 and a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _coerce(record: object, kinds: dict[str, type]) -> None:
    """Convert the named 1-D fields of a frozen dataclass in place; check equal lengths."""
    cls = type(record).__name__
    for name, kind in kinds.items():
        object.__setattr__(record, name, _array(f"{cls}.{name}", getattr(record, name), kind))
    lengths = {name: getattr(record, name).shape[0] for name in kinds}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{cls}: fields differ in length {lengths}")


def _require(record: object, name: str, ok: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise ValueError(f"{type(record).__name__}.{name} must be {what}, got "
                         f"{getattr(record, name)[bad[0]]} at row {bad[0]}")


@dataclass(frozen=True)
class Quotes:
    """The top of one book sampled on a uniform clock.

    Attributes
    ----------
    t_ns : int64 (n,)
        Sample times, ns; consecutive samples exactly ``interval_ns`` apart.
    bid, ask : int64 (n,)
        Best bid / ask, ticks. An empty side is ``EMPTY_BID`` (0) / ``EMPTY_ASK``; such a
        sample has no mid and is counted in :attr:`StylizedFacts.quotes_without_mid`.
    bid_qty, ask_qty : int64 (n,)
        Quantity at the best bid / ask, lots.
    depth : int64 (n, 2, L), optional
        Quantity of the ``L`` best non-empty levels per side, lots, in the layout of
        ``Books.top_levels``: side index 0 bids, 1 asks, best level first, 0 where missing.
    """

    t_ns: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    depth: np.ndarray | None = None

    def __post_init__(self) -> None:
        _coerce(self, dict.fromkeys(("t_ns", "bid", "ask", "bid_qty", "ask_qty"), np.int64))
        if self.t_ns.size < 2:
            raise ValueError(f"Quotes needs at least 2 samples, got {self.t_ns.size}")
        steps = np.diff(self.t_ns)
        if steps[0] <= 0 or np.any(steps != steps[0]):
            bad = int(np.flatnonzero(steps != steps[0])[0]) + 1 if steps[0] > 0 else 1
            raise ValueError(f"Quotes.t_ns is not a uniform increasing clock (step "
                             f"{steps[bad - 1]} ns at sample {bad}, first step {steps[0]} "
                             "ns); resample with sample_on_clock")
        if self.depth is not None:
            depth = _array("Quotes.depth", self.depth, np.int64, ndim=3)
            if depth.shape[:2] != (self.t_ns.size, 2):
                raise ValueError(f"Quotes.depth must have shape (n, 2, L) with n = "
                                 f"{self.t_ns.size}, got {depth.shape}")
            object.__setattr__(self, "depth", depth)

    @property
    def interval_ns(self) -> int:
        """The clock's step, ns."""
        return int(self.t_ns[1] - self.t_ns[0])

    @property
    def has_mid(self) -> np.ndarray:
        """bool (n,): both sides quoted and not crossed."""
        return (self.bid != EMPTY_BID) & (self.ask != EMPTY_ASK) & (self.ask > self.bid)

    @property
    def mid(self) -> np.ndarray:
        """float64 (n,): (bid + ask) / 2 in ticks, NaN where :attr:`has_mid` is false."""
        return np.where(self.has_mid, 0.5 * (self.bid + self.ask), np.nan)

    @property
    def spread(self) -> np.ndarray:
        """int64 (n,): ask - bid in ticks where :attr:`has_mid`; samples without are left out."""
        return (self.ask - self.bid)[self.has_mid]


@dataclass(frozen=True)
class Trades:
    """Trades of one book, one row per aggressive order, in time order.

    Attributes
    ----------
    t_ns : int64 (m,)
        Trade time, ns.
    price : int64 (m,)
        Price, ticks (volume-weighted when several fills were merged).
    qty : int64 (m,)
        Quantity, lots (> 0).
    sign : int8 (m,)
        Aggressor side: ``BUY`` (+1) buyer-initiated, ``SELL`` (-1) seller-initiated.
    """

    t_ns: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    sign: np.ndarray

    def __post_init__(self) -> None:
        _coerce(self, {"t_ns": np.int64, "price": np.int64, "qty": np.int64, "sign": np.int8})
        _require(self, "qty", self.qty > 0, "> 0")
        _require(self, "sign", np.abs(self.sign) == 1, "+1 or -1")
        if np.any(np.diff(self.t_ns) < 0):
            row = int(np.flatnonzero(np.diff(self.t_ns) < 0)[0]) + 1
            raise ValueError(f"Trades.t_ns decreases at row {row}")


@dataclass(frozen=True)
class ParentOrders:
    """Parent (meta-)orders of execution agents, one row each.

    Attributes
    ----------
    side : int8 (p,)
        ``BUY`` (+1) or ``SELL`` (-1).
    qty : int64 (p,)
        Executed size Q, lots (> 0).
    start_ns, end_ns : int64 (p,)
        First and last child fill times, ns.
    arrival_mid, end_mid : float64 (p,)
        Mid price at the start and at the end of the execution, ticks (> 0).
    vwap : float64 (p,)
        Volume-weighted average fill price, ticks.
    daily_volume : float64 (p,)
        Normaliser V: the traded volume of a day (or of the session), lots (> 0).
    daily_volatility : float64 (p,)
        Normaliser sigma: the standard deviation of daily (session) log returns, a fraction
        (> 0), e.g. 0.02 for 2 %.
    control_arrival_mid, control_end_mid : float64 (p,), optional
        Mid at the same two instants in a counterfactual run without the parent orders (the
        same seed, :func:`rltrader.analysis.realism.impact_experiment`), ticks (> 0). When given,
        :meth:`impact` is the paired difference, which removes the price move the market
        would have made anyway.
    """

    side: np.ndarray
    qty: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    arrival_mid: np.ndarray
    end_mid: np.ndarray
    vwap: np.ndarray
    daily_volume: np.ndarray
    daily_volatility: np.ndarray
    control_arrival_mid: np.ndarray | None = None
    control_end_mid: np.ndarray | None = None

    def __post_init__(self) -> None:
        kinds: dict[str, type] = {
            "side": np.int8, "qty": np.int64, "start_ns": np.int64, "end_ns": np.int64,
            "arrival_mid": np.float64, "end_mid": np.float64, "vwap": np.float64,
            "daily_volume": np.float64, "daily_volatility": np.float64}
        positive = ["qty", "arrival_mid", "end_mid", "daily_volume", "daily_volatility"]
        if (self.control_arrival_mid is None) != (self.control_end_mid is None):
            raise ValueError("ParentOrders: give both control_arrival_mid and control_end_mid "
                             "or neither")
        if self.control_arrival_mid is not None:
            kinds.update(control_arrival_mid=np.float64, control_end_mid=np.float64)
            positive += ["control_arrival_mid", "control_end_mid"]
        _coerce(self, kinds)
        for name in positive:
            _require(self, name, getattr(self, name) > 0, "> 0")
        _require(self, "side", np.abs(self.side) == 1, "+1 or -1")

    def participation(self) -> np.ndarray:
        """Q / V per order (dimensionless)."""
        return self.qty / self.daily_volume

    def impact(self, measure: str = "end_mid") -> np.ndarray:
        """Signed relative price move per order, in units of ``daily_volatility``.

        ``measure="end_mid"``: side * (end_mid - arrival_mid) / arrival_mid (peak impact, as
        Tóth et al. 2011); ``"vwap"``: side * (vwap - arrival_mid) / arrival_mid (the
        implementation shortfall). With a control run (:attr:`paired`) the control's move
        over the same interval, ``control_end_mid - control_arrival_mid``, is subtracted.
        """
        if measure not in ("end_mid", "vwap"):
            raise ValueError(f"measure must be 'end_mid' or 'vwap', got {measure!r}")
        price = self.end_mid if measure == "end_mid" else self.vwap
        move = price - self.arrival_mid
        if self.control_arrival_mid is not None and self.control_end_mid is not None:
            move = move - (self.control_end_mid - self.control_arrival_mid)
        return self.side * move / self.arrival_mid / self.daily_volatility

    @property
    def paired(self) -> bool:
        """Whether the orders carry a counterfactual (control) run's mids."""
        return self.control_arrival_mid is not None


@dataclass(frozen=True)
class MarketData:
    """What was recorded for one book; ``trades`` and ``parents`` may be absent."""

    quotes: Quotes
    trades: Trades | None = None
    parents: ParentOrders | None = None
    name: str = "market"
    tick_size: float = 1.0   # currency per tick, for plots only


def sample_on_clock(t_ns: np.ndarray, interval_ns: int, start_ns: int | None = None,
                    end_ns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clock times and, for each, the index of the last event at or before it.

    Parameters
    ----------
    t_ns : int64 (n,)
        Event times, ns, non-decreasing.
    interval_ns : int
        Clock step, ns.
    start_ns, end_ns : int, optional
        First and last clock time (default: the first event and the last event).

    Returns
    -------
    (clock, index): int64 arrays; ``values[index]`` is the state at each clock time. Clock
    times before the first event are not produced.
    """
    t_ns = _array("t_ns", t_ns, np.int64)
    if interval_ns <= 0:
        raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
    if t_ns.size == 0:
        raise ValueError("t_ns is empty")
    if np.any(np.diff(t_ns) < 0):
        raise ValueError(f"t_ns decreases at row {int(np.flatnonzero(np.diff(t_ns) < 0)[0]) + 1}")
    start = int(t_ns[0]) if start_ns is None else max(int(start_ns), int(t_ns[0]))
    end = int(t_ns[-1]) if end_ns is None else int(end_ns)
    clock = np.arange(start, end + 1, interval_ns, dtype=np.int64)
    return clock, np.searchsorted(t_ns, clock, side="right") - 1


def merge_fills(t_ns: np.ndarray, price: np.ndarray, qty: np.ndarray, sign: np.ndarray
                ) -> Trades:
    """Merge consecutive fills with the same time and aggressor sign into one trade.

    A market order that walks several resting orders prints one fill per maker; the order
    sign statistics count it once. The merged price is the volume-weighted price, rounded to
    the nearest tick.
    """
    fills = Trades(t_ns, price, qty, sign)
    if fills.t_ns.size == 0:
        return fills
    t_ns, price, qty, sign = fills.t_ns, fills.price, fills.qty, fills.sign
    starts = np.flatnonzero(np.r_[True, (np.diff(t_ns) != 0) | (np.diff(sign) != 0)])
    total = np.add.reduceat(qty, starts)
    notional = np.add.reduceat(price * qty, starts)
    vwap = np.rint(notional / total).astype(np.int64)
    return Trades(t_ns[starts], vwap, total, sign[starts])


def lobster_market(path: str | os.PathLike[str], *, interval_ms: int = 100, levels: int = 10,
                   tick_size: int = 100) -> MarketData:
    """A :class:`MarketData` from a LOBSTER message file, its book rebuilt by the core.

    The book after every row (``rltrader.data.lobster.replay_depth``) is sampled every
    ``interval_ms`` from the first row. Trades are the visible and hidden executions (types
    4 and 5); the aggressor is the opposite of the executed order's direction, and executions
    with the same time and sign are merged (:func:`merge_fills`).
    """
    from rltrader.data import lobster

    feed = lobster.read_messages(path, tick_size=tick_size)
    prices, qtys = lobster.replay_depth(feed, levels, capacity=1 << 16)
    raw = feed.raw
    clock, at = sample_on_clock(raw["timestamp"], interval_ms * 1_000_000)
    bid = np.where(qtys[at, 0, 0] > 0, prices[at, 0, 0], EMPTY_BID)
    ask = np.where(qtys[at, 1, 0] > 0, prices[at, 1, 0], EMPTY_ASK)
    quotes = Quotes(clock, bid, ask, qtys[at, 0, 0], qtys[at, 1, 0], qtys[at])
    executed = (raw["type"] == 4) | (raw["type"] == 5)
    ex = raw[executed]
    trades = merge_fills(ex["timestamp"], ex["price"] // tick_size, ex["size"],
                         -ex["direction"])
    return MarketData(quotes, trades, None, name=os.path.basename(os.fspath(path)),
                  tick_size=tick_size / 10_000)


__all__ = [
    "MarketData",
    "ParentOrders",
    "Quotes",
    "Trades",
    "lobster_market",
    "merge_fills",
    "sample_on_clock",
]
