"""STOP and STOP_LIMIT: wait off the book, trigger on the last trade, cascade depth first."""

from __future__ import annotations

import pytest
from _scenario import (
    accepted,
    assert_depth,
    assert_events,
    cancelled,
    fill,
    messages,
    msg,
    reduced,
    rejected,
    triggered,
)

from rltrader import (
    BUY,
    FOK,
    IOC,
    LIMIT,
    POST_ONLY,
    SELL,
    STOP,
    Books,
    OrderBook,
    Reason,
)


def _asks() -> OrderBook:
    ob = OrderBook()
    ob.limit(SELL, 100, 1, order_id=1)
    ob.limit(SELL, 101, 5, order_id=2)
    ob.limit(SELL, 103, 5, order_id=3)
    return ob


def _bids() -> OrderBook:
    ob = OrderBook()
    ob.limit(BUY, 100, 1, order_id=1)
    ob.limit(BUY, 99, 5, order_id=2)
    ob.limit(BUY, 97, 5, order_id=3)
    return ob


def test_pending_stop_waits_off_the_book() -> None:
    ob = _asks()
    ob.stop(BUY, 100, 2, order_id=10, timestamp=4)
    assert_events(ob.events, [accepted(10, BUY, 0, 2, timestamp=4)])
    ob.stop_limit(SELL, 90, 89, 3, order_id=11)
    assert_events(ob.events, [accepted(11, SELL, 89, 3)])
    assert ob.order(10) == dict(order_id=10, price=0, qty=2, side=BUY, owner=-1, op=STOP,
                                tif=IOC, state=2, stop_price=100)
    assert ob.books.live_orders() == 5
    assert_depth(ob, bids=[], asks=[(100, 1, 1), (101, 5, 1), (103, 5, 1)])


def test_buy_stop_triggers_when_the_last_trade_reaches_its_price() -> None:
    ob = _asks()
    ob.stop(BUY, 100, 2, order_id=10)
    ob.limit(BUY, 100, 1, order_id=4, timestamp=7)      # trades at 100 == stop price
    assert_events(ob.events, [
        accepted(4, BUY, 100, 1, timestamp=7),
        fill(4, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0, timestamp=7),
        triggered(10, BUY, 100, 2, timestamp=7),
        fill(10, BUY, maker=2, price=101, qty=2, leaves=0, maker_leaves=3, timestamp=7),
    ])
    assert ob.order(10) is None
    assert_depth(ob, bids=[], asks=[(101, 3, 1), (103, 5, 1)])
    assert ob.last_price() == 101


def test_buy_stop_above_the_last_trade_keeps_waiting() -> None:
    ob = _asks()
    ob.stop(BUY, 101, 2, order_id=10)
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events, [
        accepted(4, BUY, 100, 1),
        fill(4, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0),
    ])
    assert ob.order(10) is not None


def test_sell_stop_triggers_when_the_last_trade_falls_to_its_price() -> None:
    ob = _bids()
    ob.stop(SELL, 99, 2, order_id=10)        # 100 > 99: waits
    ob.stop(SELL, 100, 3, order_id=11)       # triggers at 100
    ob.limit(SELL, 100, 1, order_id=4)
    assert_events(ob.events, [
        accepted(4, SELL, 100, 1),
        fill(4, SELL, maker=1, price=100, qty=1, leaves=0, maker_leaves=0),
        triggered(11, SELL, 100, 3),
        fill(11, SELL, maker=2, price=99, qty=3, leaves=0, maker_leaves=2),
        # 11 traded at 99: now 10 triggers too
        triggered(10, SELL, 99, 2),
        fill(10, SELL, maker=2, price=99, qty=2, leaves=0, maker_leaves=0),
    ])
    assert_depth(ob, bids=[(97, 5, 1)], asks=[])


def test_stops_trigger_in_submission_order_not_price_order() -> None:
    ob = _asks()
    ob.stop(BUY, 99, 1, order_id=10)
    ob.stop(BUY, 100, 1, order_id=11)
    ob.stop(BUY, 95, 1, order_id=12)
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events, [
        accepted(4, BUY, 100, 1),
        fill(4, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0),
        triggered(10, BUY, 100, 1),
        fill(10, BUY, maker=2, price=101, qty=1, leaves=0, maker_leaves=4),
        triggered(11, BUY, 100, 1),
        fill(11, BUY, maker=2, price=101, qty=1, leaves=0, maker_leaves=3),
        triggered(12, BUY, 100, 1),
        fill(12, BUY, maker=2, price=101, qty=1, leaves=0, maker_leaves=2),
    ])
    assert ob.books.live_orders() == 2


def test_cascade_is_depth_first() -> None:
    ob = OrderBook()
    ob.limit(SELL, 100, 1, order_id=1)
    ob.limit(SELL, 102, 1, order_id=2)
    ob.limit(SELL, 105, 10, order_id=3)
    ob.stop(BUY, 100, 1, order_id=10)        # A: trades at 102 ...
    ob.stop(BUY, 100, 1, order_id=11)        # B: collected with A
    ob.stop(BUY, 102, 1, order_id=12)        # C: ... which triggers C, run before B
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events, [
        accepted(4, BUY, 100, 1),
        fill(4, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0),
        triggered(10, BUY, 100, 1),
        fill(10, BUY, maker=2, price=102, qty=1, leaves=0, maker_leaves=0),
        triggered(12, BUY, 102, 1),
        fill(12, BUY, maker=3, price=105, qty=1, leaves=0, maker_leaves=9),
        # B was collected when the last trade was 100: that is its trigger price
        triggered(11, BUY, 100, 1),
        fill(11, BUY, maker=3, price=105, qty=1, leaves=0, maker_leaves=8),
    ])
    assert_depth(ob, bids=[], asks=[(105, 8, 1)])
    assert ob.books.live_orders() == 1


def test_stop_whose_condition_already_holds_triggers_on_acceptance() -> None:
    ob = _asks()
    ob.limit(BUY, 100, 1, order_id=4)        # last trade 100
    ob.stop(BUY, 99, 2, order_id=10, timestamp=3)
    assert_events(ob.events, [
        accepted(10, BUY, 0, 2, timestamp=3),
        triggered(10, BUY, 100, 2, timestamp=3),
        fill(10, BUY, maker=2, price=101, qty=2, leaves=0, maker_leaves=3, timestamp=3),
    ])
    ob.stop(SELL, 101, 1, order_id=11)       # last 101 <= 101: triggers, no bids
    assert_events(ob.events, [
        accepted(11, SELL, 0, 1),
        triggered(11, SELL, 101, 1),
        cancelled(11, SELL, 0, 1, Reason.IOC_REMAINDER),
    ])
    assert_depth(ob, bids=[], asks=[(101, 3, 1), (103, 5, 1)])


def test_no_stop_triggers_before_the_first_trade() -> None:
    ob = OrderBook()
    ob.stop(SELL, 50, 1, order_id=1)         # last price is 0 but nothing traded yet
    assert_events(ob.events, [accepted(1, SELL, 0, 1)])
    ob.limit(BUY, 60, 1, order_id=2)         # no trade either
    assert_events(ob.events, [accepted(2, BUY, 60, 1)])
    assert ob.order(1) is not None


def test_stop_limit_rests_after_trigger_without_a_second_accepted() -> None:
    ob = _asks()
    ob.stop_limit(BUY, 100, 101, 8, order_id=10)
    ob.limit(BUY, 100, 1, order_id=4, timestamp=12)
    assert_events(ob.events, [
        accepted(4, BUY, 100, 1, timestamp=12),
        fill(4, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0, timestamp=12),
        triggered(10, BUY, 100, 8, timestamp=12),
        fill(10, BUY, maker=2, price=101, qty=5, leaves=3, maker_leaves=0, timestamp=12),
    ])
    assert ob.order(10) == dict(order_id=10, price=101, qty=3, side=BUY, owner=-1, op=LIMIT,
                                tif=0, state=1, timestamp=12)
    assert_depth(ob, bids=[(101, 3, 1)], asks=[(103, 5, 1)])


def test_stop_limit_with_ioc_cancels_its_remainder() -> None:
    ob = _asks()
    ob.stop_limit(BUY, 100, 101, 8, order_id=10, tif=IOC)
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events[2:], [
        triggered(10, BUY, 100, 8),
        fill(10, BUY, maker=2, price=101, qty=5, leaves=3, maker_leaves=0),
        cancelled(10, BUY, 101, 3, Reason.IOC_REMAINDER),
    ])
    assert_depth(ob, bids=[], asks=[(103, 5, 1)])


def test_triggered_post_only_stop_limit_is_rejected_if_it_would_cross() -> None:
    ob = _asks()
    ob.stop_limit(BUY, 100, 101, 2, order_id=10, tif=POST_ONLY)    # 101 is an ask: crosses
    ob.stop_limit(BUY, 100, 100, 2, order_id=11, tif=POST_ONLY)    # 100 is free after the trade
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events[2:], [
        triggered(10, BUY, 100, 2),
        rejected(10, BUY, 101, 2, Reason.POST_ONLY_WOULD_CROSS),
        triggered(11, BUY, 100, 2),
    ])
    assert ob.order(10) is None
    assert_depth(ob, bids=[(100, 2, 1)], asks=[(101, 5, 1), (103, 5, 1)])


def test_stop_market_fok_that_cannot_fill_is_cancelled() -> None:
    ob = _asks()
    ob.stop(BUY, 100, 11, order_id=10, tif=FOK)     # 10 lots left after the trigger
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events[2:], [
        triggered(10, BUY, 100, 11),
        cancelled(10, BUY, 0, 11, Reason.FOK_UNFILLABLE),
    ])
    assert_depth(ob, bids=[], asks=[(101, 5, 1), (103, 5, 1)])


def test_cancelled_and_reduced_stops() -> None:
    ob = _asks()
    ob.stop(BUY, 100, 2, order_id=10)
    ob.stop(BUY, 100, 4, order_id=11)
    ob.stop(BUY, 100, 1, order_id=12)
    ob.cancel(10)
    assert_events(ob.events, [cancelled(10, BUY, 0, 2, Reason.CANCEL_REQUESTED)])
    ob.reduce(11, 3)
    assert_events(ob.events, [reduced(11, BUY, 0, 3, 1)])
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events[2:], [
        triggered(11, BUY, 100, 1),
        fill(11, BUY, maker=2, price=101, qty=1, leaves=0, maker_leaves=4),
        triggered(12, BUY, 100, 1),
        fill(12, BUY, maker=2, price=101, qty=1, leaves=0, maker_leaves=3),
    ])
    assert ob.books.live_orders() == 2
    ob.check_integrity()


def test_triggered_events_carry_the_causing_message_index_and_time() -> None:
    books = Books()
    events = books.process_all(messages(
        msg(LIMIT, 1, SELL, 100, 1, timestamp=1),
        msg(LIMIT, 2, SELL, 101, 1, timestamp=2),
        msg(STOP, 3, BUY, qty=1, stop_price=100, timestamp=3),
        msg(LIMIT, 4, BUY, 100, 1, timestamp=4),
    ))
    assert_events(events, [
        accepted(1, SELL, 100, 1, timestamp=1, index=0),
        accepted(2, SELL, 101, 1, timestamp=2, index=1),
        accepted(3, BUY, 0, 1, timestamp=3, index=2),
        accepted(4, BUY, 100, 1, timestamp=4, index=3),
        fill(4, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0, timestamp=4,
             index=3),
        triggered(3, BUY, 100, 1, timestamp=4, index=3),
        fill(3, BUY, maker=2, price=101, qty=1, leaves=0, maker_leaves=0, timestamp=4,
             index=3),
    ])
    books.check_integrity()


@pytest.mark.parametrize("tif", [9, -1])
def test_stop_with_a_tif_outside_the_enum_is_ioc(tif: int) -> None:
    # the BAD_TIF range check is for LIMIT and STOP_LIMIT only (in a record; OrderBook.stop
    # itself refuses a tif outside TimeInForce)
    ob = _asks()
    ob.submit(messages(msg(STOP, 10, BUY, qty=12, stop_price=100, tif=tif))[0])
    assert_events(ob.events, [accepted(10, BUY, 0, 12)])
    info = ob.order(10)
    assert info is not None and info["tif"] == IOC
    ob.limit(BUY, 100, 1, order_id=4)
    assert_events(ob.events[2:], [
        triggered(10, BUY, 100, 12),
        fill(10, BUY, maker=2, price=101, qty=5, leaves=7, maker_leaves=0),
        fill(10, BUY, maker=3, price=103, qty=5, leaves=2, maker_leaves=0),
        cancelled(10, BUY, 0, 2, Reason.IOC_REMAINDER),
    ])
    assert_depth(ob, bids=[], asks=[])
