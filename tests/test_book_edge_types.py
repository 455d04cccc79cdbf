"""OrderBook's methods never wrap or truncate: side and tif must be in their enums,
numbers must be integers (a float price is a TypeError, not a silent 100)."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader import BUY, FOK, GTC, POST_ONLY, SELL, Books, OrderBook


@pytest.mark.parametrize("side", [257, -255, 0, 2, 129])
def test_a_side_outside_buy_sell_is_refused(side: int) -> None:
    # 257 once rested as a BUY (the int8 field wrapped it to 1)
    ob = OrderBook()
    for call in (lambda: ob.limit(side, 100, 1), lambda: ob.market(side, 1),
                 lambda: ob.stop(side, 100, 1), lambda: ob.stop_limit(side, 100, 100, 1)):
        with pytest.raises(ValueError, match="side"):
            call()
    assert ob.books.live_orders() == 0 and len(ob.events) == 0


@pytest.mark.parametrize("tif", [259, 4, -1, 256 + FOK])
def test_a_tif_outside_time_in_force_is_refused(tif: int) -> None:
    # 259 once became POST_ONLY
    ob = OrderBook()
    with pytest.raises(ValueError, match="tif"):
        ob.limit(BUY, 100, 1, tif=tif)
    ob.limit(SELL, 101, 1, order_id=1)
    with pytest.raises(ValueError, match="tif"):
        ob.replace(1, 102, 1, tif=tif)
    assert ob.order(1) is not None and ob.order(1)["tif"] == GTC


@pytest.mark.parametrize("price", [100.9, 100.0, np.float64(100.0), "100"])
def test_a_non_integer_price_is_a_type_error(price: object) -> None:
    ob = OrderBook()
    with pytest.raises(TypeError, match="price must be an integer"):
        ob.limit(BUY, price, 1)
    with pytest.raises(TypeError, match="qty must be an integer"):
        ob.limit(BUY, 100, 1.0)
    assert ob.books.live_orders() == 0


def test_numpy_integers_are_accepted() -> None:
    ob = OrderBook()
    oid = ob.limit(np.int8(BUY), np.int32(100), np.int64(3), tif=np.int8(POST_ONLY))
    assert ob.order(oid)["price"] == 100 and ob.order(oid)["tif"] == POST_ONLY
    assert not ob.cancel(np.uint32(7))              # a numpy unsigned id converts too
    assert ob.reduce(oid, np.int16(1))
    assert ob.order(oid)["qty"] == 2


def test_values_that_do_not_fit_their_field_are_refused() -> None:
    ob = OrderBook(n_owners=1)
    with pytest.raises(ValueError, match="owner"):
        ob.limit(BUY, 100, 1, owner=2**32)          # would wrap to owner 0
    with pytest.raises((ValueError, OverflowError)):
        ob.limit(BUY, 2**64 + 100, 1)               # would wrap to 100
    with pytest.raises(ValueError, match="price"):
        ob.limit(BUY, np.uint64(2**64 - 1), 1)      # would wrap to -1
    assert ob.books.live_orders() == 0


def test_a_negative_order_id_is_rejected_not_raised() -> None:
    # _send returned the id through an ``except -1`` function: an id of -1 was taken for an
    # error with no exception set (SystemError) instead of a BAD_ORDER_ID reject
    from rltrader import REJECTED, Reason

    ob = OrderBook()
    for call in (lambda: ob.cancel(-1), lambda: ob.reduce(-1, 3), lambda: ob.execute(-1, 1),
                 lambda: ob.limit(BUY, 100, 5, order_id=-1)):
        call()
        assert ob.events["kind"][0] == REJECTED
        assert ob.events["reason"][0] == Reason.BAD_ORDER_ID
    assert ob.books.live_orders() == 0


@pytest.mark.parametrize("call", [
    lambda: Books(2.9), lambda: Books(1, n_owners=1.99), lambda: Books(1, window=128.0),
    lambda: Books(1, capacity=10.5), lambda: Books(1, maker_fee_ppm=1.9),
    lambda: Books(np.float64(3.0)), lambda: OrderBook(window=128.9),
    lambda: OrderBook(maker_fee_ppm=2.7),
    lambda: Books(2).set_fees(2.99, 3), lambda: Books(2).set_self_trade_prevention(1.7),
    lambda: Books(2).best_bid(1.5), lambda: Books(2).live_orders(1.5),
    lambda: Books(2).top_levels(2.5), lambda: Books(2).level_queue(0.5, 1, 100),
    lambda: Books(2).set_fees(1, 1, book=0.5), lambda: OrderBook().depth(2.5),
])
def test_books_arguments_refuse_floats(call) -> None:
    # each once truncated silently (2.9 books became 2, a fee of 1.9 ppm became 1)
    with pytest.raises(TypeError):
        call()


def test_bools_are_not_prices() -> None:
    ob = OrderBook()
    with pytest.raises(TypeError, match="bool"):
        ob.limit(BUY, True, 1)
    with pytest.raises(TypeError, match="bool"):
        ob.limit(True, 100, 1)
    assert ob.books.live_orders() == 0
