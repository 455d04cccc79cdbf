"""POST_ONLY limits rest like GTC, or are rejected whole if they would take liquidity."""

from __future__ import annotations

import pytest
from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    assert_same_state,
    fill,
    rejected,
    snapshot,
)

from rltrader import BUY, POST_ONLY, SELL, OrderBook, Reason


def _book() -> OrderBook:
    ob = OrderBook(n_owners=2)
    ob.limit(BUY, 99, 4, order_id=1)
    ob.limit(SELL, 101, 4, order_id=2)
    return ob


@pytest.mark.parametrize(("side", "price", "bids", "asks"), [
    (BUY, 100, [(100, 3, 1), (99, 4, 1)], [(101, 4, 1)]),
    (BUY, 99, [(99, 7, 2)], [(101, 4, 1)]),
    (SELL, 100, [(99, 4, 1)], [(100, 3, 1), (101, 4, 1)]),
    (SELL, 101, [(99, 4, 1)], [(101, 7, 2)]),
])
def test_post_only_that_does_not_cross_rests(side: int, price: int, bids: list,
                                             asks: list) -> None:
    ob = _book()
    ob.limit(side, price, 3, order_id=10, owner=1, tif=POST_ONLY)
    assert_events(ob.events, [accepted(10, side, price, 3, owner=1)])
    info = ob.order(10)
    assert info is not None and info["tif"] == POST_ONLY and info["qty"] == 3
    assert_depth(ob, bids=bids, asks=asks)


@pytest.mark.parametrize(("side", "price"), [(BUY, 101), (BUY, 105), (SELL, 99), (SELL, 1)])
def test_post_only_touching_or_crossing_is_rejected_and_changes_nothing(
        side: int, price: int) -> None:
    ob = _book()
    before = snapshot(ob.books)
    ob.limit(side, price, 3, order_id=10, owner=1, tif=POST_ONLY, timestamp=5)
    assert_events(ob.events, [
        rejected(10, side, price, 3, Reason.POST_ONLY_WOULD_CROSS, owner=1, timestamp=5),
    ])
    assert_same_state(before, ob.books)
    assert ob.order(10) is None
    assert_depth(ob, bids=[(99, 4, 1)], asks=[(101, 4, 1)])


def test_post_only_on_an_empty_opposite_side_rests_at_any_price() -> None:
    ob = OrderBook()
    ob.limit(BUY, 1_000, 2, order_id=1, tif=POST_ONLY)
    ob.limit(SELL, 2_000, 2, order_id=2, tif=POST_ONLY)
    assert_events(ob.events, [accepted(2, SELL, 2_000, 2)])
    assert_depth(ob, bids=[(1_000, 2, 1)], asks=[(2_000, 2, 1)])


def test_rested_post_only_order_is_an_ordinary_maker() -> None:
    ob = _book()
    ob.limit(BUY, 100, 3, order_id=10, tif=POST_ONLY)
    ob.limit(SELL, 100, 1, order_id=11)
    assert_events(ob.events, [
        accepted(11, SELL, 100, 1),
        fill(11, SELL, maker=10, price=100, qty=1, leaves=0, maker_leaves=2),
    ])
    assert_depth(ob, bids=[(100, 2, 1), (99, 4, 1)], asks=[(101, 4, 1)])


def test_rejected_post_only_id_can_be_reused() -> None:
    ob = _book()
    ob.limit(BUY, 101, 3, order_id=10, tif=POST_ONLY)
    ob.limit(BUY, 100, 3, order_id=10, tif=POST_ONLY)
    assert_events(ob.events, [accepted(10, BUY, 100, 3)])
    assert_depth(ob, bids=[(100, 3, 1), (99, 4, 1)], asks=[(101, 4, 1)])
