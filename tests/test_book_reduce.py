"""REDUCE removes lots from an order in place: it keeps its queue position."""

from __future__ import annotations

import pytest
from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    assert_same_state,
    cancelled,
    fill,
    queue_ids,
    reduced,
    rejected,
    snapshot,
    triggered,
)

from rltrader import BUY, SELL, OrderBook, Reason


def _bids() -> OrderBook:
    ob = OrderBook(n_owners=2)
    ob.limit(BUY, 100, 5, order_id=1, owner=1)
    ob.limit(BUY, 100, 5, order_id=2, owner=0)
    return ob


def test_reduce_keeps_queue_position() -> None:
    ob = _bids()
    assert ob.reduce(1, 2, timestamp=8)
    assert_events(ob.events, [reduced(1, BUY, 100, 2, 3, owner=1, timestamp=8)])
    assert queue_ids(ob, BUY, 100) == [1, 2]
    assert_depth(ob, bids=[(100, 8, 2)], asks=[])
    info = ob.order(1)
    assert info is not None and info["qty"] == 3 and info["timestamp"] == 0
    ob.limit(SELL, 100, 4, order_id=3)
    assert_events(ob.events, [
        accepted(3, SELL, 100, 4),
        fill(3, SELL, maker=1, price=100, qty=3, leaves=1, maker_leaves=0, maker_owner=1),
        fill(3, SELL, maker=2, price=100, qty=1, leaves=0, maker_leaves=4, maker_owner=0),
    ])
    assert_depth(ob, bids=[(100, 4, 1)], asks=[])


def test_reduce_a_partly_filled_order() -> None:
    ob = _bids()
    ob.limit(SELL, 100, 1, order_id=3)      # order 1 now has 4 left
    ob.reduce(1, 3)
    assert_events(ob.events, [reduced(1, BUY, 100, 3, 1, owner=1)])
    assert_depth(ob, bids=[(100, 6, 2)], asks=[])


@pytest.mark.parametrize("qty", [5, 6, 1_000])
def test_reduce_by_leaves_or_more_is_a_cancel(qty: int) -> None:
    ob = _bids()
    ob.reduce(1, qty)
    assert_events(ob.events, [cancelled(1, BUY, 100, 5, Reason.CANCEL_REQUESTED, owner=1)])
    assert ob.order(1) is None
    assert queue_ids(ob, BUY, 100) == [2]
    assert_depth(ob, bids=[(100, 5, 1)], asks=[])


@pytest.mark.parametrize("qty", [0, -3])
def test_reduce_by_nothing_is_rejected(qty: int) -> None:
    ob = _bids()
    before = snapshot(ob.books)
    assert not ob.reduce(1, qty)
    assert_events(ob.events, [rejected(1, 0, 0, qty, Reason.BAD_QTY)])
    assert_same_state(before, ob.books)


def test_reduce_unknown_order_is_rejected() -> None:
    ob = _bids()
    assert not ob.reduce(9, 1)
    assert_events(ob.events, [rejected(9, 0, 0, 1, Reason.UNKNOWN_ORDER)])
    assert_depth(ob, bids=[(100, 10, 2)], asks=[])


def test_reduce_a_pending_stop_shrinks_what_triggers() -> None:
    ob = OrderBook()
    ob.stop(BUY, 101, 5, order_id=1)
    ob.reduce(1, 2)
    assert_events(ob.events, [reduced(1, BUY, 0, 2, 3)])
    info = ob.order(1)
    assert info is not None and info["qty"] == 3 and info["stop_price"] == 101
    ob.limit(SELL, 101, 10, order_id=2)
    ob.limit(BUY, 101, 1, order_id=3)       # trades at 101: the stop triggers
    assert_events(ob.events, [
        accepted(3, BUY, 101, 1),
        fill(3, BUY, maker=2, price=101, qty=1, leaves=0, maker_leaves=9),
        triggered(1, BUY, 101, 3),
        fill(1, BUY, maker=2, price=101, qty=3, leaves=0, maker_leaves=6),
    ])
    assert_depth(ob, bids=[], asks=[(101, 6, 1)])


def test_reduce_a_pending_stop_by_its_size_cancels_it() -> None:
    ob = OrderBook()
    ob.stop_limit(SELL, 90, 89, 4, order_id=1)
    ob.reduce(1, 4)
    assert_events(ob.events, [cancelled(1, SELL, 89, 4, Reason.CANCEL_REQUESTED)])
    assert ob.books.live_orders() == 0
    ob.check_integrity()
