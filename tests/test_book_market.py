"""MARKET orders: sweep the opposite side, never rest; FOK is all-or-nothing."""

from __future__ import annotations

import pytest
from _scenario import accepted, assert_depth, assert_events, cancelled, fill, messages, msg

from rltrader import BUY, EMPTY_ASK, EMPTY_BID, FOK, GTC, IOC, MARKET, SELL, OrderBook, Reason


def _asks() -> OrderBook:
    ob = OrderBook()
    ob.limit(SELL, 101, 3, order_id=1)
    ob.limit(SELL, 101, 2, order_id=2)
    ob.limit(SELL, 103, 4, order_id=3)
    ob.limit(BUY, 99, 6, order_id=4)
    return ob


def test_market_buy_sweeps_levels_best_first() -> None:
    ob = _asks()
    ob.market(BUY, 7, order_id=10)
    assert_events(ob.events, [
        accepted(10, BUY, 0, 7),
        fill(10, BUY, maker=1, price=101, qty=3, leaves=4, maker_leaves=0),
        fill(10, BUY, maker=2, price=101, qty=2, leaves=2, maker_leaves=0),
        fill(10, BUY, maker=3, price=103, qty=2, leaves=0, maker_leaves=2),
    ])
    assert_depth(ob, bids=[(99, 6, 1)], asks=[(103, 2, 1)])
    assert ob.last_price() == 103 and ob.volume() == 7


def test_market_sell_sweeps_bids() -> None:
    ob = OrderBook()
    ob.limit(BUY, 99, 2, order_id=1)
    ob.limit(BUY, 98, 5, order_id=2)
    ob.market(SELL, 4, order_id=10)
    assert_events(ob.events, [
        accepted(10, SELL, 0, 4),
        fill(10, SELL, maker=1, price=99, qty=2, leaves=2, maker_leaves=0),
        fill(10, SELL, maker=2, price=98, qty=2, leaves=0, maker_leaves=3),
    ])
    assert_depth(ob, bids=[(98, 3, 1)], asks=[])


def test_market_larger_than_the_book_cancels_its_remainder() -> None:
    ob = _asks()
    ob.market(BUY, 20, order_id=10)
    assert_events(ob.events, [
        accepted(10, BUY, 0, 20),
        fill(10, BUY, maker=1, price=101, qty=3, leaves=17, maker_leaves=0),
        fill(10, BUY, maker=2, price=101, qty=2, leaves=15, maker_leaves=0),
        fill(10, BUY, maker=3, price=103, qty=4, leaves=11, maker_leaves=0),
        cancelled(10, BUY, 0, 11, Reason.IOC_REMAINDER),
    ])
    assert ob.best_ask() == EMPTY_ASK
    assert ob.order(10) is None
    assert_depth(ob, bids=[(99, 6, 1)], asks=[])


@pytest.mark.parametrize("side", [BUY, SELL])
def test_empty_opposite_side_gives_accepted_then_cancelled(side: int) -> None:
    ob = OrderBook()
    ob.limit(side, 100, 5, order_id=1)      # same side only
    ob.market(side, 3, order_id=2, timestamp=9)
    assert_events(ob.events, [
        accepted(2, side, 0, 3, timestamp=9),
        cancelled(2, side, 0, 3, Reason.IOC_REMAINDER, timestamp=9),
    ])
    assert ob.last_price() == 0 and ob.volume() == 0
    bids = [(100, 5, 1)] if side == BUY else []
    asks = [(100, 5, 1)] if side == SELL else []
    assert_depth(ob, bids=bids, asks=asks)


def test_market_on_an_empty_book() -> None:
    ob = OrderBook()
    ob.market(SELL, 1, order_id=1)
    assert_events(ob.events, [
        accepted(1, SELL, 0, 1),
        cancelled(1, SELL, 0, 1, Reason.IOC_REMAINDER),
    ])
    assert (ob.best_bid(), ob.best_ask()) == (EMPTY_BID, EMPTY_ASK)
    assert_depth(ob, bids=[], asks=[])


def test_market_fok_fills_completely_when_the_book_holds_enough() -> None:
    ob = _asks()
    ob.market(BUY, 9, order_id=10, tif=FOK)      # exactly the whole ask side
    assert_events(ob.events, [
        accepted(10, BUY, 0, 9),
        fill(10, BUY, maker=1, price=101, qty=3, leaves=6, maker_leaves=0),
        fill(10, BUY, maker=2, price=101, qty=2, leaves=4, maker_leaves=0),
        fill(10, BUY, maker=3, price=103, qty=4, leaves=0, maker_leaves=0),
    ])
    assert_depth(ob, bids=[(99, 6, 1)], asks=[])


def test_market_fok_unfillable_leaves_the_book_untouched() -> None:
    ob = _asks()
    ob.market(BUY, 10, order_id=10, tif=FOK)
    assert_events(ob.events, [
        accepted(10, BUY, 0, 10),
        cancelled(10, BUY, 0, 10, Reason.FOK_UNFILLABLE),
    ])
    assert_depth(ob, bids=[(99, 6, 1)], asks=[(101, 5, 2), (103, 4, 1)])
    assert ob.last_price() == 0 and ob.volume() == 0


@pytest.mark.parametrize("tif", [GTC, IOC])
def test_market_with_any_tif_but_fok_is_ioc(tif: int) -> None:
    ob = _asks()
    ob.market(BUY, 12, order_id=10, tif=tif)
    assert [int(k) for k in ob.events["kind"]] == [1, 3, 3, 3, 4]
    assert_events(ob.events[-1:], [cancelled(10, BUY, 0, 3, Reason.IOC_REMAINDER)])
    assert_depth(ob, bids=[(99, 6, 1)], asks=[])


@pytest.mark.parametrize("tif", [7, -1, 127])
def test_market_with_a_tif_outside_the_enum_is_ioc(tif: int) -> None:
    # the BAD_TIF range check is for LIMIT and STOP_LIMIT only (a message record carries
    # any int8 tif; OrderBook.market itself refuses one outside TimeInForce)
    ob = _asks()
    ob.submit(messages(msg(MARKET, 10, BUY, qty=6, tif=tif))[0])
    assert_events(ob.events, [
        accepted(10, BUY, 0, 6),
        fill(10, BUY, maker=1, price=101, qty=3, leaves=3, maker_leaves=0),
        fill(10, BUY, maker=2, price=101, qty=2, leaves=1, maker_leaves=0),
        fill(10, BUY, maker=3, price=103, qty=1, leaves=0, maker_leaves=3),
    ])
    ob.submit(messages(msg(MARKET, 11, SELL, qty=8, tif=tif))[0])
    assert_events(ob.events, [
        accepted(11, SELL, 0, 8),
        fill(11, SELL, maker=4, price=99, qty=6, leaves=2, maker_leaves=0),
        cancelled(11, SELL, 0, 2, Reason.IOC_REMAINDER),
    ])
    assert_depth(ob, bids=[], asks=[(103, 3, 1)])
