"""IOC limits cancel their remainder; FOK limits fill completely or not at all."""

from __future__ import annotations

import pytest
from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    assert_same_state,
    cancelled,
    fill,
    snapshot,
)

from rltrader import BUY, FOK, IOC, SELL, OrderBook, Reason


def _asks() -> OrderBook:
    ob = OrderBook()
    ob.limit(SELL, 101, 3, order_id=1)
    ob.limit(SELL, 102, 2, order_id=2)
    ob.limit(SELL, 103, 5, order_id=3)
    return ob


def test_ioc_fills_what_crosses_and_cancels_the_rest() -> None:
    ob = _asks()
    ob.limit(BUY, 102, 8, order_id=10, tif=IOC)
    assert_events(ob.events, [
        accepted(10, BUY, 102, 8),
        fill(10, BUY, maker=1, price=101, qty=3, leaves=5, maker_leaves=0),
        fill(10, BUY, maker=2, price=102, qty=2, leaves=3, maker_leaves=0),
        cancelled(10, BUY, 102, 3, Reason.IOC_REMAINDER),
    ])
    assert ob.order(10) is None
    assert_depth(ob, bids=[], asks=[(103, 5, 1)])


def test_ioc_filled_completely_has_no_cancel() -> None:
    ob = _asks()
    ob.limit(BUY, 101, 2, order_id=10, tif=IOC)
    assert_events(ob.events, [
        accepted(10, BUY, 101, 2),
        fill(10, BUY, maker=1, price=101, qty=2, leaves=0, maker_leaves=1),
    ])
    assert_depth(ob, bids=[], asks=[(101, 1, 1), (102, 2, 1), (103, 5, 1)])


def test_ioc_that_does_not_cross_is_cancelled_whole() -> None:
    ob = _asks()
    ob.limit(BUY, 100, 4, order_id=10, tif=IOC)
    assert_events(ob.events, [
        accepted(10, BUY, 100, 4),
        cancelled(10, BUY, 100, 4, Reason.IOC_REMAINDER),
    ])
    assert_depth(ob, bids=[], asks=[(101, 3, 1), (102, 2, 1), (103, 5, 1)])


def test_fok_exactly_fillable_fills() -> None:
    ob = _asks()
    ob.limit(BUY, 102, 5, order_id=10, tif=FOK)      # 3 + 2 lots at or below 102
    assert_events(ob.events, [
        accepted(10, BUY, 102, 5),
        fill(10, BUY, maker=1, price=101, qty=3, leaves=2, maker_leaves=0),
        fill(10, BUY, maker=2, price=102, qty=2, leaves=0, maker_leaves=0),
    ])
    assert_depth(ob, bids=[], asks=[(103, 5, 1)])


def test_fok_one_lot_short_is_cancelled_and_changes_nothing() -> None:
    ob = _asks()
    before = snapshot(ob.books)
    ob.limit(BUY, 102, 6, order_id=10, tif=FOK)
    assert_events(ob.events, [
        accepted(10, BUY, 102, 6),
        cancelled(10, BUY, 102, 6, Reason.FOK_UNFILLABLE),
    ])
    assert_same_state(before, ob.books)
    assert_depth(ob, bids=[], asks=[(101, 3, 1), (102, 2, 1), (103, 5, 1)])
    assert ob.last_price() == 0 and ob.order(10) is None


def test_fok_counts_only_levels_within_its_limit() -> None:
    ob = _asks()          # 10 lots in all, only 3 at or below 101
    ob.limit(BUY, 101, 4, order_id=10, tif=FOK)
    assert_events(ob.events, [
        accepted(10, BUY, 101, 4),
        cancelled(10, BUY, 101, 4, Reason.FOK_UNFILLABLE),
    ])
    assert_depth(ob, bids=[], asks=[(101, 3, 1), (102, 2, 1), (103, 5, 1)])


def test_fok_sell_across_levels() -> None:
    ob = OrderBook()
    ob.limit(BUY, 100, 1, order_id=1)
    ob.limit(BUY, 100, 1, order_id=2)
    ob.limit(BUY, 99, 3, order_id=3)
    ob.limit(SELL, 99, 6, order_id=10, tif=FOK)
    assert_events(ob.events, [
        accepted(10, SELL, 99, 6),
        cancelled(10, SELL, 99, 6, Reason.FOK_UNFILLABLE),
    ])
    ob.limit(SELL, 99, 4, order_id=11, tif=FOK)
    assert_events(ob.events, [
        accepted(11, SELL, 99, 4),
        fill(11, SELL, maker=1, price=100, qty=1, leaves=3, maker_leaves=0),
        fill(11, SELL, maker=2, price=100, qty=1, leaves=2, maker_leaves=0),
        fill(11, SELL, maker=3, price=99, qty=2, leaves=0, maker_leaves=1),
    ])
    assert_depth(ob, bids=[(99, 1, 1)], asks=[])


@pytest.mark.parametrize("tif", [IOC, FOK])
def test_ioc_and_fok_on_an_empty_side(tif: int) -> None:
    ob = OrderBook()
    ob.limit(SELL, 100, 1, order_id=10, tif=tif)
    reason = Reason.IOC_REMAINDER if tif == IOC else Reason.FOK_UNFILLABLE
    assert_events(ob.events, [
        accepted(10, SELL, 100, 1),
        cancelled(10, SELL, 100, 1, reason),
    ])
    assert_depth(ob, bids=[], asks=[])
