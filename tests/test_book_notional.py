"""Accounts stay exact: fees with an exact wide product; takers that could push a book's
gross notional past MAX_NOTIONAL are refused with NOTIONAL_LIMIT (docs/semantics.md)."""

from __future__ import annotations

import numpy as np
import pytest
from _scenario import accepted, assert_events, cancelled, fill, messages, msg, rejected, triggered
from reference_book import ReferenceBooks

from rltrader import (
    BUY,
    EXECUTE,
    LIMIT,
    MARKET,
    MAX_PRICE,
    MAX_QTY,
    SELL,
    STOP,
    Books,
    Limits,
    OrderBook,
    Reason,
)

MAX_NOTIONAL = int(Limits.MAX_NOTIONAL)


def test_fee_of_a_large_fill_is_exact() -> None:
    # 10**6 x 10**11 = 10**17 ticks x lots; at 100 ppm the product 10**19 overflows int64
    # and once came out negative (a rebate)
    ob = OrderBook(n_owners=2, maker_fee_ppm=100, taker_fee_ppm=100)
    ob.limit(SELL, 10**6, 10**11, order_id=1, owner=0)
    ob.limit(BUY, 10**6, 10**11, order_id=2, owner=1)
    notional, fee = 10**17, 10**13
    maker, taker = ob.accounts[0], ob.accounts[1]
    assert int(taker["fees"]) == int(maker["fees"]) == fee
    assert int(taker["cash"]) == -notional - fee
    assert int(maker["cash"]) == notional - fee
    assert int(taker["position"]) == 10**11 and int(maker["position"]) == -(10**11)
    ob.check_integrity()


@pytest.mark.parametrize("rate", [-1_000_000, -999_999, -7, 7, 999_999, 1_000_000])
def test_fee_truncates_toward_zero_at_every_size(rate: int) -> None:
    for price, qty in [(MAX_PRICE, 2**21), (3, 333_333), (10**6 + 1, 10**9 + 7)]:
        ob = OrderBook(n_owners=2, taker_fee_ppm=rate)
        ob.limit(SELL, price, qty, order_id=1, owner=0)
        ob.limit(BUY, price, qty, order_id=2, owner=1)
        scaled = price * qty * rate
        want = scaled // 10**6 if scaled >= 0 else -((-scaled) // 10**6)
        assert int(ob.accounts[1]["fees"]) == want
        ob.check_integrity()


def test_a_fill_of_max_price_times_max_qty_is_refused() -> None:
    # MAX_PRICE x MAX_QTY (both within the documented limits) once wrapped cash, and
    # check_integrity passed; now the taker is refused before it trades
    ob = OrderBook(n_owners=2)
    ob.limit(SELL, MAX_PRICE, MAX_QTY, order_id=1, owner=0)     # resting: no trade
    assert ob.events[0]["kind"] == 1
    ob.market(BUY, MAX_QTY, order_id=2, owner=1)
    assert_events(ob.events, [rejected(2, BUY, 0, MAX_QTY, Reason.NOTIONAL_LIMIT, owner=1)])
    ob.limit(BUY, MAX_PRICE, MAX_QTY, order_id=3, owner=1)
    assert_events(ob.events, [rejected(3, BUY, MAX_PRICE, MAX_QTY, Reason.NOTIONAL_LIMIT,
                                       owner=1)])
    assert not ob.execute(1, MAX_QTY)
    assert int(ob.events[0]["reason"]) == Reason.NOTIONAL_LIMIT
    assert int(ob.accounts["cash"].sum()) == 0 and ob.volume() == 0
    ob.check_integrity()


def test_the_limit_is_exact_at_the_boundary() -> None:
    # fills totalling exactly MAX_NOTIONAL are allowed, one tick x lot more is not:
    # MAX_NOTIONAL = MAX_PRICE * 2**22 + (2**22 - 1)
    big, rest = divmod(MAX_NOTIONAL, MAX_PRICE)
    assert (big, rest) == (2**22, 2**22 - 1)
    books = Books(n_owners=2)
    events = books.process_all(messages(msg(LIMIT, 1, SELL, MAX_PRICE, big, owner=0),
                                        msg(LIMIT, 2, BUY, MAX_PRICE, big, owner=1)))
    assert int(events[-1]["kind"]) == 3
    assert int(books.book_array["notional"][0]) == MAX_NOTIONAL - rest
    events = books.process_all(messages(msg(LIMIT, 3, SELL, rest, 2, owner=0),
                                        msg(LIMIT, 4, BUY, rest, 2, owner=1)))
    assert int(events[-1]["reason"]) == Reason.NOTIONAL_LIMIT   # one lot too many
    events = books.process_all(messages(msg(LIMIT, 5, BUY, rest, 1, owner=1)))
    assert int(events[-1]["kind"]) == 3
    assert int(books.book_array["notional"][0]) == MAX_NOTIONAL
    assert int(books.accounts["cash"][0, 1]) == -MAX_NOTIONAL
    events = books.process_all(messages(msg(MARKET, 6, SELL, qty=1)))
    assert int(events[0]["kind"]) == 1          # no bids left: nothing to trade, accepted
    books.check_integrity()


def test_a_buy_is_judged_by_the_highest_ask_it_could_reach() -> None:
    # a market buy's limit is MAX_PRICE; when only cheap asks rest, its worst price is the
    # highest ask, so a huge quantity is still accepted
    books = Books(window=64)
    books.process_all(messages(msg(LIMIT, 1, SELL, 100, 5), msg(LIMIT, 2, SELL, 10**9, 5)))
    qty = 10**9                  # x MAX_PRICE is past the limit, x the highest ask is not
    assert qty * MAX_PRICE > MAX_NOTIONAL >= qty * 10**9
    events = books.process_all(messages(msg(MARKET, 3, BUY, qty=qty)))
    assert [int(k) for k in events["kind"]] == [1, 3, 3, 4]
    events = books.process_all(messages(msg(LIMIT, 4, SELL, 10**10, 5),
                                        msg(MARKET, 5, BUY, qty=qty)))
    assert int(events[-1]["reason"]) == Reason.NOTIONAL_LIMIT
    books.check_integrity()


def test_a_triggered_stop_over_the_limit_is_cancelled() -> None:
    ob = OrderBook(n_owners=2)
    ob.limit(SELL, MAX_PRICE, MAX_QTY, order_id=1, owner=0)
    ob.limit(SELL, 100, 1, order_id=2, owner=0)
    ob.stop(BUY, 100, MAX_QTY, order_id=3, owner=1)
    ob.limit(BUY, 100, 1, order_id=4, owner=1)
    assert_events(ob.events, [
        accepted(4, BUY, 100, 1, owner=1),
        fill(4, BUY, maker=2, price=100, qty=1, leaves=0, maker_leaves=0, owner=1,
             maker_owner=0),
        triggered(3, BUY, 100, MAX_QTY, owner=1),
        cancelled(3, BUY, 0, MAX_QTY, Reason.NOTIONAL_LIMIT, owner=1),
    ])
    ob.check_integrity()


def test_fee_rates_beyond_100_percent_are_refused() -> None:
    with pytest.raises(ValueError, match="taker_fee_ppm"):
        Books(taker_fee_ppm=1_000_001)
    with pytest.raises(ValueError, match="maker_fee_ppm"):
        OrderBook(maker_fee_ppm=-1_000_001)
    books = Books()
    with pytest.raises(ValueError, match="maker_fee_ppm"):
        books.set_fees(2**62, 0)
    books.set_fees(-1_000_000, 1_000_000)


def test_integrity_catches_a_wrapped_account() -> None:
    ob = OrderBook(n_owners=2, taker_fee_ppm=10)
    ob.limit(SELL, 100, 5, order_id=1, owner=0)
    ob.limit(BUY, 100, 5, order_id=2, owner=1)
    ob.check_integrity()
    cash = ob.books.account_array["cash"]
    cash[0, 1] = np.int64(-(2**63) + 100)       # what a true cash of 2**63 + 100 wraps to
    with pytest.raises(AssertionError, match="cash"):
        ob.check_integrity()


def test_unowned_flow_is_in_the_identity() -> None:
    books = Books(n_owners=1, maker_fee_ppm=-3, taker_fee_ppm=11)
    books.process_all(messages(msg(LIMIT, 1, SELL, 100, 5), msg(LIMIT, 2, BUY, 101, 3, owner=0),
                               msg(EXECUTE, 1, qty=2), msg(LIMIT, 3, BUY, 99, 4, owner=0),
                               msg(MARKET, 4, SELL, qty=4)))
    books.check_integrity()
    assert int(books.book_array["outside_position"][0]) == -int(books.accounts["position"][0, 0])


def test_the_reference_book_agrees() -> None:
    stream = messages(
        msg(LIMIT, 1, SELL, MAX_PRICE, MAX_QTY, owner=0),
        msg(MARKET, 2, BUY, qty=MAX_QTY, owner=1),
        msg(LIMIT, 3, SELL, 10**6, 10**11, owner=0),
        msg(LIMIT, 4, BUY, 10**6, 10**11, owner=1),
        msg(EXECUTE, 1, qty=MAX_QTY),
        msg(STOP, 5, BUY, qty=MAX_QTY, stop_price=10**6, owner=1),
        msg(LIMIT, 6, SELL, 10**6, 1, owner=0),
        msg(LIMIT, 7, BUY, 10**6, 1, owner=1),
    )
    core = Books(n_owners=2, maker_fee_ppm=-250, taker_fee_ppm=100)
    ref = ReferenceBooks(n_owners=2, maker_fee_ppm=-250, taker_fee_ppm=100)
    got, want = core.process_all(stream), ref.process_all(stream)
    assert got.tolist() == want.tolist()
    assert core.accounts.tolist() == ref.accounts.tolist()
    assert Reason.NOTIONAL_LIMIT in got["reason"]
    core.check_integrity()
