"""EXECUTE trades a given resting order (by id, wherever it sits) against outside flow."""

from __future__ import annotations

import pytest
from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    assert_same_state,
    fill,
    queue_ids,
    rejected,
    snapshot,
    triggered,
)

from rltrader import BUY, SELL, OrderBook, Reason


def _bids() -> OrderBook:
    ob = OrderBook(n_owners=4)
    ob.limit(BUY, 100, 5, order_id=1, owner=1)
    ob.limit(BUY, 100, 5, order_id=2, owner=2)
    ob.limit(BUY, 100, 5, order_id=3, owner=3)
    ob.limit(BUY, 99, 5, order_id=4, owner=1)
    return ob


def test_execute_fills_the_named_order_not_the_head() -> None:
    ob = _bids()
    assert ob.execute(2, 3, timestamp=11)
    assert_events(ob.events, [
        fill(0, SELL, maker=2, price=100, qty=3, leaves=0, maker_leaves=2, owner=-1,
             maker_owner=2, timestamp=11),
    ])
    assert queue_ids(ob, BUY, 100) == [1, 2, 3]
    assert_depth(ob, bids=[(100, 12, 3), (99, 5, 1)], asks=[])
    assert (ob.last_price(), ob.volume(), ob.books.trade_count()) == (100, 3, 1)


def test_execute_of_all_leaves_removes_the_order() -> None:
    ob = _bids()
    ob.execute(4, 5)
    assert_events(ob.events, [
        fill(0, SELL, maker=4, price=99, qty=5, leaves=0, maker_leaves=0, maker_owner=1),
    ])
    assert ob.order(4) is None
    assert_depth(ob, bids=[(100, 15, 3)], asks=[])
    assert ob.last_price() == 99


def test_execute_an_ask_reports_a_buy() -> None:
    ob = OrderBook()
    ob.limit(SELL, 103, 2, order_id=1)
    ob.execute(1, 1)
    assert_events(ob.events, [fill(0, BUY, maker=1, price=103, qty=1, leaves=0,
                                   maker_leaves=1)])
    assert_depth(ob, bids=[], asks=[(103, 1, 1)])


@pytest.mark.parametrize("qty", [0, -1, 6, 1 << 40])
def test_execute_outside_one_to_leaves_is_rejected(qty: int) -> None:
    ob = _bids()
    before = snapshot(ob.books)
    assert not ob.execute(1, qty)
    assert_events(ob.events, [rejected(1, 0, 0, qty, Reason.BAD_QTY)])
    assert_same_state(before, ob.books)


def test_execute_unknown_order_or_pending_stop_is_rejected() -> None:
    ob = _bids()
    assert not ob.execute(9, 1)
    assert_events(ob.events, [rejected(9, 0, 0, 1, Reason.UNKNOWN_ORDER)])
    ob.stop(SELL, 90, 2, order_id=9)
    before = snapshot(ob.books)
    assert not ob.execute(9, 1)
    assert_events(ob.events, [rejected(9, 0, 0, 1, Reason.NOT_RESTING)])
    assert_same_state(before, ob.books)


def test_execute_is_a_trade_that_triggers_stops() -> None:
    ob = _bids()
    ob.stop(SELL, 100, 4, order_id=10, owner=0)     # triggers on a trade at <= 100
    ob.execute(3, 1)
    assert_events(ob.events, [
        fill(0, SELL, maker=3, price=100, qty=1, leaves=0, maker_leaves=4, maker_owner=3),
        triggered(10, SELL, 100, 4, owner=0),
        fill(10, SELL, maker=1, price=100, qty=4, leaves=0, maker_leaves=1, owner=0,
             maker_owner=1),
    ])
    assert_depth(ob, bids=[(100, 10, 3), (99, 5, 1)], asks=[])


def test_execute_emits_no_accepted_and_leaves_no_order() -> None:
    ob = _bids()
    live = ob.books.live_orders()
    ob.execute(1, 5)
    assert [int(k) for k in ob.events["kind"]] == [3]
    assert ob.books.live_orders() == live - 1
    ob.limit(SELL, 100, 1, order_id=20)
    assert_events(ob.events, [
        accepted(20, SELL, 100, 1),
        fill(20, SELL, maker=2, price=100, qty=1, leaves=0, maker_leaves=4, maker_owner=2),
    ])
