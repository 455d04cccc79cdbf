"""CANCEL removes a resting order or a pending stop and reports its leaves."""

from __future__ import annotations

from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    cancelled,
    fill,
    queue_ids,
    rejected,
)

from rltrader import BUY, EMPTY_ASK, SELL, OrderBook, Reason


def test_cancel_a_resting_order_reports_its_leaves() -> None:
    ob = OrderBook(n_owners=3)
    ob.limit(BUY, 100, 5, order_id=1, owner=2)
    assert ob.cancel(1, timestamp=42)
    assert_events(ob.events, [
        cancelled(1, BUY, 100, 5, Reason.CANCEL_REQUESTED, owner=2, timestamp=42),
    ])
    assert ob.order(1) is None
    assert ob.books.live_orders() == 0
    assert_depth(ob, bids=[], asks=[])


def test_cancel_in_the_middle_of_a_queue_keeps_the_others_in_order() -> None:
    ob = OrderBook()
    for oid in (1, 2, 3):
        ob.limit(SELL, 101, oid, order_id=oid)
    ob.cancel(2)
    assert_events(ob.events, [cancelled(2, SELL, 101, 2, Reason.CANCEL_REQUESTED)])
    assert queue_ids(ob, SELL, 101) == [1, 3]
    assert_depth(ob, bids=[], asks=[(101, 4, 2)])
    ob.market(BUY, 4, order_id=9)
    assert [int(m) for m in ob.fills()["maker_order_id"]] == [1, 3]


def test_cancel_the_only_order_at_the_touch_moves_the_touch() -> None:
    ob = OrderBook()
    ob.limit(SELL, 101, 1, order_id=1)
    ob.limit(SELL, 104, 1, order_id=2)
    ob.cancel(1)
    assert ob.best_ask() == 104
    ob.cancel(2)
    assert ob.best_ask() == EMPTY_ASK
    assert_depth(ob, bids=[], asks=[])


def test_cancel_a_partly_filled_order_cancels_what_is_left() -> None:
    ob = OrderBook()
    ob.limit(SELL, 101, 10, order_id=1)
    ob.limit(BUY, 101, 4, order_id=2)
    ob.cancel(1)
    assert_events(ob.events, [cancelled(1, SELL, 101, 6, Reason.CANCEL_REQUESTED)])
    assert_depth(ob, bids=[], asks=[])


def test_cancel_pending_stops() -> None:
    ob = OrderBook()
    ob.stop(BUY, 105, 3, order_id=1)
    ob.stop_limit(SELL, 95, 94, 2, order_id=2)
    assert ob.books.live_orders() == 2
    ob.cancel(1)
    assert_events(ob.events, [cancelled(1, BUY, 0, 3, Reason.CANCEL_REQUESTED)])
    ob.cancel(2)
    assert_events(ob.events, [cancelled(2, SELL, 94, 2, Reason.CANCEL_REQUESTED)])
    assert ob.books.live_orders() == 0
    ob.check_integrity()
    # a cancelled stop never triggers
    ob.limit(SELL, 110, 1, order_id=3)
    ob.limit(BUY, 110, 1, order_id=4)
    assert_events(ob.events, [
        accepted(4, BUY, 110, 1),
        fill(4, BUY, maker=3, price=110, qty=1, leaves=0, maker_leaves=0),
    ])


def test_cancel_unknown_or_finished_order_is_rejected() -> None:
    ob = OrderBook()
    assert not ob.cancel(7, timestamp=3)
    assert_events(ob.events, [rejected(7, 0, 0, 0, Reason.UNKNOWN_ORDER, timestamp=3)])
    ob.limit(SELL, 101, 1, order_id=1)
    ob.limit(BUY, 101, 1, order_id=2)       # fills order 1
    assert not ob.cancel(1)
    assert_events(ob.events, [rejected(1, 0, 0, 0, Reason.UNKNOWN_ORDER)])
    ob.limit(SELL, 101, 1, order_id=3)
    assert ob.cancel(3)
    assert not ob.cancel(3)                 # cancelled twice
    assert_events(ob.events, [rejected(3, 0, 0, 0, Reason.UNKNOWN_ORDER)])
    assert_depth(ob, bids=[], asks=[])


def test_a_cancelled_id_may_be_used_again() -> None:
    ob = OrderBook()
    ob.limit(BUY, 100, 1, order_id=1)
    ob.cancel(1)
    ob.limit(SELL, 100, 2, order_id=1)
    assert_events(ob.events, [accepted(1, SELL, 100, 2)])
    assert_depth(ob, bids=[], asks=[(100, 2, 1)])
