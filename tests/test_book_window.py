"""The dense window is only a fast path: far orders rest in overflow, the window re-centres
when the touch leaves it, and no result depends on the window size."""

from __future__ import annotations

import numpy as np
from _scenario import (
    accepted,
    as_dicts,
    assert_depth,
    assert_events,
    cancelled,
    fill,
    messages,
    msg,
    queue_ids,
    reduced,
)

from rltrader import (
    BUY,
    CANCEL,
    EMPTY_BID,
    IOC,
    LIMIT,
    MARKET,
    REDUCE,
    REPLACE,
    SELL,
    Books,
    OrderBook,
    Reason,
)

SMALL, WIDE = 64, 4096


def _base(ob: OrderBook) -> int:
    return int(ob.books.book_array["base"][0])


def _far_book(window: int) -> OrderBook:
    ob = OrderBook(window=window)
    ob.limit(BUY, 1000, 1, order_id=1)      # an empty book centres on its first order
    ob.limit(SELL, 5000, 1, order_id=2)
    ob.limit(SELL, 3000, 2, order_id=3)
    ob.limit(SELL, 3000, 3, order_id=4)
    ob.limit(SELL, 1040, 1, order_id=5)
    ob.limit(SELL, 1020, 1, order_id=6)
    ob.limit(BUY, 10, 1, order_id=7)
    return ob


def test_far_orders_rest_outside_the_window() -> None:
    ob = _far_book(SMALL)
    assert _base(ob) == 1000 - SMALL // 2
    assert_depth(ob, bids=[(1000, 1, 1), (10, 1, 1)],
                 asks=[(1020, 1, 1), (1040, 1, 1), (3000, 5, 2), (5000, 1, 1)])
    assert queue_ids(ob, SELL, 3000) == [3, 4]
    assert queue_ids(ob, BUY, 10) == [7]
    assert (ob.best_bid(), ob.best_ask()) == (1000, 1020)


def test_far_orders_match_in_price_time_order() -> None:
    for window in (SMALL, WIDE):
        ob = _far_book(window)
        ob.market(BUY, 9, order_id=8)
        assert_events(ob.events, [
            accepted(8, BUY, 0, 9),
            fill(8, BUY, maker=6, price=1020, qty=1, leaves=8, maker_leaves=0),
            fill(8, BUY, maker=5, price=1040, qty=1, leaves=7, maker_leaves=0),
            fill(8, BUY, maker=3, price=3000, qty=2, leaves=5, maker_leaves=0),
            fill(8, BUY, maker=4, price=3000, qty=3, leaves=2, maker_leaves=0),
            fill(8, BUY, maker=2, price=5000, qty=1, leaves=1, maker_leaves=0),
            cancelled(8, BUY, 0, 1, Reason.IOC_REMAINDER),
        ])
        assert_depth(ob, bids=[(1000, 1, 1), (10, 1, 1)], asks=[])
        ob.limit(SELL, 5, 3, order_id=9, tif=IOC)
        assert_events(ob.events, [
            accepted(9, SELL, 5, 3),
            fill(9, SELL, maker=1, price=1000, qty=1, leaves=2, maker_leaves=0),
            fill(9, SELL, maker=7, price=10, qty=1, leaves=1, maker_leaves=0),
            cancelled(9, SELL, 5, 1, Reason.IOC_REMAINDER),
        ])
        assert_depth(ob, bids=[], asks=[])
        assert ob.best_bid() == EMPTY_BID


def test_cancel_and_reduce_in_the_overflow() -> None:
    ob = _far_book(SMALL)
    ob.reduce(3, 1)
    assert_events(ob.events, [reduced(3, SELL, 3000, 1, 1)])
    ob.cancel(5)
    assert_events(ob.events, [cancelled(5, SELL, 1040, 1, Reason.CANCEL_REQUESTED)])
    assert queue_ids(ob, SELL, 3000) == [3, 4]
    assert_depth(ob, bids=[(1000, 1, 1), (10, 1, 1)],
                 asks=[(1020, 1, 1), (3000, 4, 2), (5000, 1, 1)])
    ob.cancel(2)
    assert_depth(ob, bids=[(1000, 1, 1), (10, 1, 1)], asks=[(1020, 1, 1), (3000, 4, 2)])


def test_window_recentres_when_the_bid_falls_away() -> None:
    ob = OrderBook(window=SMALL)
    ob.limit(BUY, 1000, 1, order_id=1)
    ob.limit(BUY, 500, 2, order_id=2)
    ob.limit(BUY, 499, 1, order_id=3)
    assert _base(ob) == 968
    ob.market(SELL, 1, order_id=4)
    assert_events(ob.events, [
        accepted(4, SELL, 0, 1),
        fill(4, SELL, maker=1, price=1000, qty=1, leaves=0, maker_leaves=0),
    ])
    assert _base(ob) == 500 - SMALL // 2
    assert_depth(ob, bids=[(500, 2, 1), (499, 1, 1)], asks=[])
    ob.limit(SELL, 499, 3, order_id=5)
    assert_events(ob.events, [
        accepted(5, SELL, 499, 3),
        fill(5, SELL, maker=2, price=500, qty=2, leaves=1, maker_leaves=0),
        fill(5, SELL, maker=3, price=499, qty=1, leaves=0, maker_leaves=0),
    ])
    assert_depth(ob, bids=[], asks=[])


def test_window_recentres_when_a_new_best_lands_far_away() -> None:
    ob = OrderBook(window=SMALL)
    ob.limit(SELL, 1001, 1, order_id=1)
    ob.limit(SELL, 2000, 1, order_id=2)
    ob.limit(BUY, 1000, 1, order_id=3)
    assert _base(ob) == 1001 - SMALL // 2
    ob.limit(BUY, 1999, 2, order_id=4)      # takes 1001, rests at 1999 under 2000
    assert_events(ob.events, [
        accepted(4, BUY, 1999, 2),
        fill(4, BUY, maker=1, price=1001, qty=1, leaves=1, maker_leaves=0),
    ])
    assert _base(ob) == 1999 - SMALL // 2   # centred on the new touch
    assert_depth(ob, bids=[(1999, 1, 1), (1000, 1, 1)], asks=[(2000, 1, 1)])
    assert queue_ids(ob, BUY, 1000) == [3]
    ob.market(SELL, 2, order_id=5)
    assert [int(m) for m in ob.fills()["maker_order_id"]] == [4, 3]


def test_queue_order_survives_recentring_both_ways() -> None:
    ob = OrderBook(window=SMALL)
    for oid in (1, 2, 3):
        ob.limit(BUY, 1000, oid, order_id=oid)
    ob.limit(BUY, 3000, 1, order_id=4)      # new touch far above: 1000 goes to overflow
    assert _base(ob) == 3000 - SMALL // 2
    ob.limit(BUY, 1000, 5, order_id=5)      # joins the overflow level at its back
    assert queue_ids(ob, BUY, 1000) == [1, 2, 3, 5]
    ob.cancel(4)                            # touch back at 1000: dense again
    assert _base(ob) == 1000 - SMALL // 2
    assert queue_ids(ob, BUY, 1000) == [1, 2, 3, 5]
    assert_depth(ob, bids=[(1000, 11, 4)], asks=[])
    ob.market(SELL, 11, order_id=6)
    assert [int(m) for m in ob.fills()["maker_order_id"]] == [1, 2, 3, 5]
    assert_depth(ob, bids=[], asks=[])


def _drifting_stream(seed: int, n: int) -> np.ndarray:
    """Orders around a mid that wanders thousands of ticks, with cancels and replaces."""
    rng = np.random.default_rng(seed)
    mid = 50_000
    stream = []
    for i in range(1, n + 1):
        mid += int(rng.integers(-60, 61))
        r = rng.random()
        side = BUY if rng.random() < 0.5 else SELL
        qty = int(rng.integers(1, 10))
        if r < 0.55:
            price = mid - side * int(rng.integers(-3, 120))
            stream.append(msg(LIMIT, i, side, price, qty, timestamp=i))
        elif r < 0.65:
            stream.append(msg(MARKET, i, side, qty=qty, timestamp=i))
        elif r < 0.85:
            stream.append(msg(CANCEL, int(rng.integers(1, i + 1)), timestamp=i))
        elif r < 0.93:
            stream.append(msg(REDUCE, int(rng.integers(1, i + 1)), qty=qty, timestamp=i))
        else:
            stream.append(msg(REPLACE, int(rng.integers(1, i + 1)), price=mid, qty=qty,
                              new_order_id=n + i, timestamp=i))
    return messages(*stream)


def test_results_do_not_depend_on_the_window() -> None:
    stream = _drifting_stream(seed=11, n=4000)
    small, wide = Books(window=SMALL), Books(window=WIDE)
    bases = set()
    for start in range(0, len(stream), 250):
        chunk = stream[start:start + 250]
        ev_small, ev_wide = small.process_all(chunk), wide.process_all(chunk)
        assert as_dicts(ev_small) == as_dicts(ev_wide)
        for a, b in zip(small.top_levels(25), wide.top_levels(25), strict=True):
            np.testing.assert_array_equal(a, b)
        assert (small.best_bid(), small.best_ask()) == (wide.best_bid(), wide.best_ask())
        bases.add(int(small.book_array["base"][0]))
        small.check_integrity()
        wide.check_integrity()
    assert small.volume() == wide.volume() > 0
    assert small.live_orders() == wide.live_orders()
    assert len(bases) > 5       # the small window re-centred as the mid wandered


def test_a_declined_recentre_is_taken_when_a_message_narrows_the_spread() -> None:
    """A spread of half a window or more leaves a touch outside the window (the re-centre
    is declined); an in-window limit or a cancel that moves the touch must re-centre at
    once. The kernels call the re-centre only when a message says its touch moved, so a
    limit or cancel that forgot to say so would leave the book unsettled (the checks)."""
    ob = OrderBook(window=SMALL)
    ob.limit(BUY, 1000, 1, order_id=1)              # the book centres on it: base 968
    ob.limit(SELL, 1040, 1, order_id=2)             # outside [968, 1032); spread 40 >= 32
    assert _base(ob) == 1000 - SMALL // 2
    ob.books.check_integrity()
    ob.limit(BUY, 990, 1, order_id=3)               # in the window, not a new best: as is
    assert _base(ob) == 1000 - SMALL // 2
    ob.limit(BUY, 1020, 1, order_id=4)              # a new best in the window: spread 20
    assert _base(ob) == 1020 + 10 - SMALL // 2      # centred on the mid, 1030
    ob.books.check_integrity()
    ob.limit(SELL, 1200, 1, order_id=5)             # in overflow, behind the best ask
    ob.cancel(2)                                    # the ask touch leaves: 1200, spread 180
    assert _base(ob) == 1030 - SMALL // 2           # declined: spread over half a window
    ob.books.check_integrity()
    ob.limit(BUY, 900, 1, order_id=6)               # in overflow, behind the best bid
    ob.cancel(5)                                    # no asks; the bid 1020 is in the window
    assert _base(ob) == 1030 - SMALL // 2
    ob.cancel(4)                                    # best bid 1000, in [998, 1062): as is
    assert _base(ob) == 1030 - SMALL // 2
    ob.cancel(1)                                    # best bid 990, outside: centre on it
    assert _base(ob) == 990 - SMALL // 2
    ob.cancel(3)                                    # best bid 900, outside again
    assert _base(ob) == 900 - SMALL // 2
    ob.books.check_integrity()
    assert_depth(ob, bids=[(900, 1, 1)], asks=[])
