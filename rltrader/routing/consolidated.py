"""The consolidated book of one symbol across venues, as one participant sees it.

:class:`ConsolidatedBook` takes each venue's event stream (the core's ``EVENT_DTYPE``, in
that venue's ticks), keeps each venue's level-2 book in one
:class:`~rltrader.analytics.FeatureEngine` (book ``v`` is venue ``v``) and answers, on the
common price grid (venue ``v``'s price ``p`` is ``p * factor[v]`` common ticks):

- the NBBO (:meth:`~ConsolidatedBook.nbbo`), kept up to date at O(V) per update;
- the consolidated depth (:meth:`~ConsolidatedBook.depth`): every venue's levels merged,
  one row per venue level with its venue, best first, optionally ordered by the taker's
  fee-adjusted price; built on demand from the venues' top levels;
- each venue's own levels (:meth:`~ConsolidatedBook.venue_levels`) and a float32
  observation vector for environments (:meth:`~ConsolidatedBook.observation`).

Latency: the participant sees venue ``v`` as of its one-way latency: an event stamped
``t`` reaches it at ``t + latency_ns[v]``. :meth:`~ConsolidatedBook.on_events` queues a
venue's events with their arrival times; :meth:`~ConsolidatedBook.advance` applies, venue by
venue and in each venue's own order, everything that has arrived by ``now``. With zero
latency, ``on_events`` then ``advance(t)`` shows the venues as the core left them.

Each ``on_events`` call carries whole messages (every event of a message, as
``Books.process`` writes them): the level book rests a limit order's remainder when its
message's events end, and the events of one message share the message's timestamp, hence
their arrival.
"""

from __future__ import annotations

import operator
from collections import deque
from typing import Any

import numpy as np

from rltrader.analytics.engine import FeatureEngine
from rltrader.core.constants import ACCEPTED, BUY, MAX_FEE_PPM, SELL
from rltrader.core.messages import EVENT_DTYPE

#: One row of the consolidated depth: a venue's level on the common grid. ``adjusted`` is
#: the price a taker really gets per lot, in common ticks, net of the venue's taker fee
#: (an ask's cost ``price * (1 + fee)``, a bid's proceeds ``price * (1 - fee)``) when the
#: depth was asked for ``fee_adjusted``; otherwise ``price`` as a float.
DEPTH_DTYPE = np.dtype([("price", np.int64), ("qty", np.int64), ("venue", np.int32),
                        ("adjusted", np.float64)])

_INT32_SPAN = 1 << 32


class ConsolidatedBook:
    """NBBO and consolidated depth of ``n_venues`` venues of one symbol, latency-aware.

    Parameters
    ----------
    n_venues : int
        Venues (``0 .. n_venues - 1``).
    factor : sequence of int, shape (n_venues,)
        Common ticks per tick of each venue (``MultiVenueMarket.factor``), all >= 1.
    fees : array of int, shape (n_venues, 2), optional
        Maker and taker fee of each venue, ppm (negative: rebate); zero when None. The
        fee-adjusted depth uses the taker fee.
    latency_ns : sequence of int, shape (n_venues,), optional
        One-way latency of the participant to each venue, ns (``MultiVenueMarket
        .latency_ns[p]``); zero when None.
    depth : int
        Default rows of :meth:`depth` and levels of :meth:`observation`'s imbalance.
    capacity : int
        Levels kept per side and venue (the level book's; deeper levels are dropped and
        counted in ``engine.counters``).

    Attributes
    ----------
    engine : FeatureEngine
        The venues' level books (book ``v``: venue ``v``, in venue ticks).
    time_ns : int
        The view's clock: the last :meth:`advance` (-1 before the first).
    pending : int
        Events queued and not yet seen.
    """

    def __init__(self, n_venues: int, factor: Any, fees: Any = None, latency_ns: Any = None,
                 depth: int = 20, *, capacity: int = 8192) -> None:
        n = operator.index(n_venues)
        if n < 1:
            raise ValueError(f"n_venues must be >= 1, got {n}")
        self.n_venues = n
        self.factor = _vector(factor, n, "factor")
        if np.any(self.factor < 1):
            raise ValueError(f"factor must be >= 1 common tick per venue tick, got "
                             f"{self.factor.tolist()}")
        if fees is None:
            self.fees = np.zeros((n, 2), dtype=np.int64)
        else:
            self.fees = np.array(fees, dtype=np.int64)
            if self.fees.shape != (n, 2):
                raise ValueError(f"fees must be ({n}, 2) maker, taker ppm, got shape "
                                 f"{self.fees.shape}")
            if np.any(np.abs(self.fees) > MAX_FEE_PPM):
                raise ValueError(f"fees must be within +-{MAX_FEE_PPM} ppm, got "
                                 f"{self.fees.tolist()}")
        self.latency_ns = (np.zeros(n, dtype=np.int64) if latency_ns is None
                           else _vector(latency_ns, n, "latency_ns"))
        if np.any(self.latency_ns < 0):
            raise ValueError(f"latency_ns must be >= 0, got {self.latency_ns.tolist()}")
        self.depth_rows = _positive(depth, "depth")
        # the level books: bars and samples are not used, so their clocks tick rarely
        self.engine = FeatureEngine(n, intervals=("1d",), sample="1d", indicators=False,
                                    embedding=None, history=1, capacity=capacity)
        kernel = self.engine.kernel
        self._level_price = kernel.level_price      # (V, 2, capacity), best last
        self._level_qty = kernel.level_qty
        self._level_n = kernel.level_n              # (V, 2) levels held
        # fee-adjusted price per common tick, per side (0: a bid's proceeds, 1: an ask's cost)
        taker = self.fees[:, 1] / 1e6
        self._fee_scale = np.stack([1.0 - taker, 1.0 + taker])
        self._factors = self.factor.tolist()
        self._latencies = self.latency_ns.tolist()
        # per venue: queued (events, arrival ns: one int or one per event) chunks, the last
        # queued arrival, and the last message index given to the level book (kept
        # distinct across calls)
        self._queues: list[deque[tuple[np.ndarray, Any]]] = [deque() for _ in range(n)]
        self._last_arrival = [-1] * n
        self._last_message = [-1] * n
        self.pending = 0                # events queued, not yet seen
        self.time_ns = -1
        # each venue's touch on the common grid (price 0, qty 0: the side is empty)
        self._bid = [0] * n
        self._bid_qty = [0] * n
        self._ask = [0] * n
        self._ask_qty = [0] * n
        self._nbbo = (0, 0, -1, 0, 0, -1)

    @classmethod
    def of_market(cls, market: Any, participant: int, depth: int = 20) -> ConsolidatedBook:
        """The book ``participant`` of a :class:`~rltrader.routing.venues.MultiVenueMarket`
        sees: its factors, fees and that participant's latencies."""
        latency = np.asarray(market.latency_ns)
        if not 0 <= operator.index(participant) < latency.shape[0]:
            raise ValueError(f"participant must be in [0, {latency.shape[0]}), got "
                             f"{participant}")
        return cls(market.n_venues, market.factor, market.fees, latency[participant], depth)

    # ---- input --------------------------------------------------------------------------

    def on_events(self, venue: int, events: np.ndarray, arrival_ns: int | None = None) -> None:
        """Queue venue ``venue``'s events (``EVENT_DTYPE``, venue ticks, in the venue's
        order, whole messages).

        They are seen at ``arrival_ns`` when given, else each at its timestamp plus the
        venue's latency; a venue's events are seen in order, so none is seen before those
        queued ahead of it. The events are copied (their ``book`` becomes ``venue``).
        """
        v = self._venue(venue)
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            got = getattr(events, "dtype", type(events).__name__)
            raise TypeError(f"events must be a 1-D array of EVENT_DTYPE, got {got}")
        k = events.shape[0]
        if k == 0:
            return
        chunk = _copied(events)
        chunk["book"] = v
        # the level book ends a message where the message index changes: keep this call's
        # first message apart from the last one queued (a constant shift, modulo 2**32,
        # keeps every neighbouring pair equal or different as it was)
        indices = chunk["message_index"]
        shift = (self._last_message[v] + 1 - int(indices[0])) % _INT32_SPAN
        if shift:
            indices += shift - _INT32_SPAN if shift >= _INT32_SPAN // 2 else shift
        self._last_message[v] = int(indices[-1])
        # arrival: per event (a venue's events are seen in order, so never before the last
        # one queued); one number when the whole call arrives at once (the usual case)
        last = self._last_arrival[v]
        if arrival_ns is not None:
            arrival: Any = max(operator.index(arrival_ns), last)
        else:
            stamps = chunk["timestamp"]
            first = int(stamps[0]) + self._latencies[v]
            if k == 1 or stamps[k - 1] == stamps[0]:
                arrival = max(first, last)
            else:
                arrival = stamps + self._latencies[v]
                if first < last:
                    arrival[0] = last
                np.maximum.accumulate(arrival, out=arrival)
        self._last_arrival[v] = int(arrival if isinstance(arrival, int) else arrival[-1])
        self._queues[v].append((chunk, arrival))
        self.pending += k

    def on_levels(self, venue: int, prices: Any, qtys: Any, timestamp_ns: int,
                  arrival_ns: int | None = None) -> None:
        """Queue the book venue ``venue`` starts from, stamped ``timestamp_ns``: its levels
        ``(2, L)`` (side 0 bids, 1 asks, venue ticks; ``Books.top_levels(L)`` of its book,
        levels of qty 0 skipped), before any of its events (a venue whose book was built
        before the participant started listening). Seen like events (:meth:`on_events`).
        """
        v = self._venue(venue)
        if self._last_message[v] != -1:
            raise ValueError(f"venue {v}: on_levels gives a venue's starting book, before "
                             "its first events")
        prices = np.asarray(prices)
        qtys = np.asarray(qtys)
        if (prices.ndim != 2 or prices.shape[0] != 2 or qtys.shape != prices.shape
                or not np.issubdtype(prices.dtype, np.integer)
                or not np.issubdtype(qtys.dtype, np.integer)):
            raise ValueError(f"prices and qtys must be int arrays of one shape (2, L), got "
                             f"{prices.shape} and {qtys.shape}")
        side, _ = np.nonzero(qtys > 0)
        if np.any(prices[qtys > 0] < 1):
            raise ValueError("a level with lots must have a price >= 1 tick")
        # one message per level: an accepted limit order that rests whole
        events = np.zeros(side.shape[0], dtype=EVENT_DTYPE)
        events["timestamp"] = operator.index(timestamp_ns)
        events["order_id"] = np.arange(1, side.shape[0] + 1)
        events["price"] = prices[qtys > 0]
        events["qty"] = events["leaves_qty"] = qtys[qtys > 0]
        events["owner"] = events["maker_owner"] = -1
        events["message_index"] = np.arange(side.shape[0])
        events["kind"] = ACCEPTED
        events["side"] = np.where(side == 0, BUY, SELL)
        self.on_events(v, events, arrival_ns)

    def advance(self, now_ns: int) -> int:
        """Apply every queued event seen by ``now_ns``; returns how many were applied."""
        now = operator.index(now_ns)
        if now < self.time_ns:
            raise ValueError(f"advance: now_ns {now} is before the view's time {self.time_ns}")
        self.time_ns = now
        if not self.pending:
            return 0
        pieces: list[np.ndarray] = []
        touched: list[int] = []
        for v, queue in enumerate(self._queues):
            took = False
            while queue:
                chunk, arrival = queue[0]
                if isinstance(arrival, int):
                    if arrival > now:
                        break
                elif arrival[-1] > now:
                    cut = int(np.searchsorted(arrival, now, side="right"))
                    if cut:
                        pieces.append(chunk[:cut])
                        queue[0] = (chunk[cut:], arrival[cut:])
                        took = True
                    break
                pieces.append(chunk)
                queue.popleft()
                took = True
            if took:
                touched.append(v)
        if not pieces:
            return 0
        events = pieces[0] if len(pieces) == 1 else _copied(*pieces)
        self.engine.process_events(events)
        self.pending -= events.shape[0]
        self._refresh(touched)
        return events.shape[0]

    # ---- queries ------------------------------------------------------------------------

    def nbbo(self) -> tuple[int, int, int, int, int, int]:
        """``(bid, bid_qty, bid_venue, ask, ask_qty, ask_venue)`` on the common grid.

        ``bid_qty`` is every venue's lots at the best bid; ``bid_venue`` the venue with the
        most of them (the lowest index on a tie). An empty side: price 0, qty 0, venue -1.
        The venues' NBBO may be locked or crossed (``bid >= ask``): nothing links them but
        their traders.
        """
        return self._nbbo

    def depth(self, side: int, n: int | None = None, fee_adjusted: bool = False) -> np.ndarray:
        """The consolidated depth of one side, best first: ``DEPTH_DTYPE`` rows.

        Parameters
        ----------
        side : int
            ``BUY`` (+1): the bids; ``SELL`` (-1): the asks.
        n : int, optional
            Rows at most (default: ``depth``); one row per venue level.
        fee_adjusted : bool
            Order by the taker's price net of the venue's taker fee (``adjusted``) instead
            of the raw price. Ties go to the lower venue index.
        """
        s = _side_index(side)
        rows = self.depth_rows if n is None else _positive(n, "n")
        counts = self._level_n[:, s].astype(np.int64)
        level = np.arange(rows)
        venues, levels = np.nonzero(level[None, :] < np.minimum(counts, rows)[:, None])
        at = counts[venues] - 1 - levels              # the best is stored last
        prices = self._level_price[venues, s, at] * self.factor[venues]
        if fee_adjusted:
            adjusted = prices * self._fee_scale[s, venues]
        else:
            adjusted = prices.astype(np.float64)
        # venue-major input and a stable sort: ties keep the lower venue first
        order = np.argsort(-adjusted if s == 0 else adjusted, kind="stable")[:rows]
        out = np.empty(order.shape[0], dtype=DEPTH_DTYPE)
        out["price"] = prices[order]
        out["qty"] = self._level_qty[venues[order], s, at[order]]
        out["venue"] = venues[order]
        out["adjusted"] = adjusted[order]
        return out

    def venue_levels(self, venue: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Venue ``venue``'s own top ``n`` levels as seen: ``(prices, qtys)``, int64
        ``(2, n)``, side 0 bids and 1 asks, best first, common ticks, 0 where missing."""
        v = self._venue(venue)
        prices, qtys = self.engine.top_levels(v, self.depth_rows if n is None
                                              else _positive(n, "n"))
        prices *= self._factors[v]
        return prices, qtys

    def observation_size(self) -> int:
        """Length of :meth:`observation`'s vector: ``2 + 4 * n_venues``."""
        return 2 + 4 * self.n_venues

    def observation(self, n: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """The consolidated book as a float32 vector (written into ``out`` when given).

        ======================  =========================================================
        column                  value
        ======================  =========================================================
        0                       NBBO spread, ``ask - bid``, common ticks (negative:
                                crossed; 0 when a side is empty)
        1 + 4v                  venue ``v``'s best bid minus the NBBO mid, common ticks
        2 + 4v                  venue ``v``'s best ask minus the NBBO mid
        3 + 4v                  venue ``v``'s best bid size, lots
        4 + 4v                  venue ``v``'s best ask size, lots
        1 + 4V                  consolidated imbalance of the top ``n`` rows of each
                                side's depth, ``(bid lots - ask lots) / (bid + ask)``
        ======================  =========================================================

        An offset is 0 where the venue's side is empty or the NBBO has no mid; sizes are
        0 on an empty side.
        """
        size = self.observation_size()
        if out is None:
            out = np.zeros(size, dtype=np.float32)
        elif (not isinstance(out, np.ndarray) or out.dtype != np.float32
              or out.shape != (size,) or not out.flags.c_contiguous):
            raise ValueError(f"out must be a contiguous float32 array of shape ({size},), "
                             f"got {getattr(out, 'dtype', type(out).__name__)} "
                             f"{getattr(out, 'shape', '')}")
        bid, _, bid_venue, ask, _, ask_venue = self._nbbo
        has_mid = bid_venue >= 0 and ask_venue >= 0
        mid = (bid + ask) / 2 if has_mid else 0.0
        out[0] = ask - bid if has_mid else 0.0
        for v in range(self.n_venues):
            b, a = self._bid[v], self._ask[v]
            out[1 + 4 * v] = b - mid if has_mid and b else 0.0
            out[2 + 4 * v] = a - mid if has_mid and a else 0.0
            out[3 + 4 * v] = self._bid_qty[v]
            out[4 + 4 * v] = self._ask_qty[v]
        bids = int(self.depth(BUY, n)["qty"].sum())
        asks = int(self.depth(SELL, n)["qty"].sum())
        out[size - 1] = (bids - asks) / (bids + asks) if bids + asks else 0.0
        return out

    # ---- internals ----------------------------------------------------------------------

    def _venue(self, venue: Any) -> int:
        try:
            v = operator.index(venue)
        except TypeError:
            raise TypeError(f"venue must be an int, got {type(venue).__name__}") from None
        if not 0 <= v < self.n_venues:
            raise ValueError(f"venue must be in [0, {self.n_venues}), got {v}")
        return v

    def _refresh(self, touched: list[int]) -> None:
        """Re-read the touched venues' touch, then combine the NBBO (O(V))."""
        counts, prices, qtys = self._level_n, self._level_price, self._level_qty
        for v in touched:
            f = self._factors[v]
            nb, na = counts.item(v, 0), counts.item(v, 1)
            self._bid[v] = prices.item(v, 0, nb - 1) * f if nb else 0
            self._bid_qty[v] = qtys.item(v, 0, nb - 1) if nb else 0
            self._ask[v] = prices.item(v, 1, na - 1) * f if na else 0
            self._ask_qty[v] = qtys.item(v, 1, na - 1) if na else 0
        bid = bid_qty = ask = ask_qty = 0
        bid_venue = ask_venue = -1
        bid_most = ask_most = 0
        for v in range(self.n_venues):
            p, q = self._bid[v], self._bid_qty[v]
            if p:
                if p > bid:
                    bid, bid_qty, bid_venue, bid_most = p, q, v, q
                elif p == bid:
                    bid_qty += q
                    if q > bid_most:
                        bid_venue, bid_most = v, q
            p, q = self._ask[v], self._ask_qty[v]
            if p:
                if ask == 0 or p < ask:
                    ask, ask_qty, ask_venue, ask_most = p, q, v, q
                elif p == ask:
                    ask_qty += q
                    if q > ask_most:
                        ask_venue, ask_most = v, q
        self._nbbo = (bid, bid_qty, bid_venue, ask, ask_qty, ask_venue)


def _copied(*arrays: np.ndarray) -> np.ndarray:
    """A writable copy of ``arrays`` joined: through bytes, because numpy copies a
    structured array field by field (25 times slower on 2,000 events)."""
    data = arrays[0].tobytes() if len(arrays) == 1 else b"".join(a.tobytes() for a in arrays)
    return np.frombuffer(bytearray(data), dtype=EVENT_DTYPE)


def _vector(values: Any, n: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be {n} ints (one per venue), got {values!r}")
    return array.astype(np.int64)


def _positive(value: Any, name: str) -> int:
    number = operator.index(value)
    if number < 1:
        raise ValueError(f"{name} must be >= 1, got {number}")
    return number


def _side_index(side: Any) -> int:
    if side == BUY:
        return 0
    if side == SELL:
        return 1
    raise ValueError(f"side must be BUY (+1, the bids) or SELL (-1, the asks), got {side!r}")


__all__ = ["DEPTH_DTYPE", "ConsolidatedBook"]
