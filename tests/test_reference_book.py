"""Hand-computed scenarios for the pure-Python reference book (so it can serve as an oracle).

Each expected event is written as ``(kind, order_id, price, qty, leaves_qty, maker_order_id,
maker_leaves_qty, reason)``; the other fields are checked where a scenario is about them.
"""

from __future__ import annotations

import numpy as np
import pytest
from _vocab import EMPTY_ASK, EMPTY_BID, MAX_PRICE, MAX_QTY, MESSAGE_DTYPE, Reason
from reference_book import (
    ACCEPTED,
    BUY,
    CANCEL,
    CANCEL_BOTH,
    CANCEL_MAKER,
    CANCEL_TAKER,
    CANCELLED,
    FILL,
    FOK,
    IOC,
    LIMIT,
    MARKET,
    POST_ONLY,
    REDUCED,
    REJECTED,
    SELL,
    STOP,
    TRIGGERED,
    ReferenceBooks,
    ReferenceOrderBook,
    fee,
)

R = Reason


def summary(events: np.ndarray) -> list[tuple[int, ...]]:
    return [
        (
            int(e["kind"]),
            int(e["order_id"]),
            int(e["price"]),
            int(e["qty"]),
            int(e["leaves_qty"]),
            int(e["maker_order_id"]),
            int(e["maker_leaves_qty"]),
            int(e["reason"]),
        )
        for e in events
    ]


def acc(order_id, price, qty):
    return (ACCEPTED, order_id, price, qty, qty, 0, 0, 0)


def fill(order_id, price, qty, leaves, maker, maker_leaves):
    return (FILL, order_id, price, qty, leaves, maker, maker_leaves, 0)


def cxl(order_id, price, qty, reason):
    return (CANCELLED, order_id, price, qty, 0, 0, 0, int(reason))


def rej(order_id, price, qty, reason):
    return (REJECTED, order_id, price, qty, 0, 0, 0, int(reason))


def trig(order_id, price, qty):
    return (TRIGGERED, order_id, price, qty, qty, 0, 0, 0)


def put(msgs: np.ndarray, i: int, **fields: int) -> None:
    for name, value in fields.items():
        msgs[name][i] = value


def queue_ids(book: ReferenceOrderBook, side: int, price: int) -> list[tuple[int, int]]:
    return [(int(r["order_id"]), int(r["qty"])) for r in book.queue(side, price)]


def test_fee_truncates_toward_zero():
    assert fee(999, 1000) == 0
    assert fee(-999, 1000) == 0
    assert fee(999, -1000) == 0
    assert fee(1999, -1000) == -1
    assert fee(1999, 1000) == 1
    assert fee(10**12, 250) == 250_000_000


def test_price_time_priority():
    book = ReferenceOrderBook()
    book.limit(SELL, 101, 5, order_id=1)
    book.limit(SELL, 100, 3, order_id=2)
    book.limit(SELL, 100, 4, order_id=3)
    book.limit(BUY, 101, 10, order_id=10, timestamp=7)
    assert summary(book.events) == [
        acc(10, 101, 10),
        fill(10, 100, 3, 7, 2, 0),
        fill(10, 100, 4, 3, 3, 0),
        fill(10, 101, 3, 0, 1, 2),
    ]
    assert all(book.events["timestamp"] == 7)
    assert all(book.events[1:]["side"] == BUY)
    assert book.best_ask() == 101 and book.best_bid() == EMPTY_BID
    assert book.last_price() == 101 and book.volume() == 10
    assert queue_ids(book, SELL, 101) == [(1, 2)]
    book.check_integrity()


def test_partial_fill_rests_remainder_at_the_tail():
    book = ReferenceOrderBook()
    book.limit(SELL, 100, 4, order_id=2)
    book.limit(BUY, 100, 10, order_id=3, timestamp=5)
    assert summary(book.events) == [acc(3, 100, 10), fill(3, 100, 4, 6, 2, 0)]
    book.limit(BUY, 100, 2, order_id=4, timestamp=6)
    bids, asks = book.depth()
    assert asks.shape == (0, 3)
    assert bids.tolist() == [[100, 8, 2]]
    assert queue_ids(book, BUY, 100) == [(3, 6), (4, 2)]
    assert book.queue(BUY, 100)["timestamp"].tolist() == [5, 6]
    assert book.order(3) == dict(
        order_id=3, price=100, qty=6, side=BUY, owner=-1, op=LIMIT, tif=0, state=1, timestamp=5
    )


def test_fok_unfillable_changes_nothing_and_fillable_fills():
    book = ReferenceOrderBook()
    book.limit(SELL, 100, 3, order_id=1)
    book.limit(SELL, 101, 3, order_id=2)
    book.limit(BUY, 100, 5, order_id=3, tif=FOK)
    assert summary(book.events) == [acc(3, 100, 5), cxl(3, 100, 5, R.FOK_UNFILLABLE)]
    assert book.depth()[1].tolist() == [[100, 3, 1], [101, 3, 1]]
    book.limit(BUY, 101, 6, order_id=4, tif=FOK)
    assert summary(book.events) == [
        acc(4, 101, 6),
        fill(4, 100, 3, 3, 1, 0),
        fill(4, 101, 3, 0, 2, 0),
    ]
    assert book.best_ask() == EMPTY_ASK


def test_ioc_and_market_remainders():
    book = ReferenceOrderBook()
    book.market(BUY, 5, order_id=1)
    assert summary(book.events) == [acc(1, 0, 5), cxl(1, 0, 5, R.IOC_REMAINDER)]
    book.limit(SELL, 100, 2, order_id=2)
    book.limit(BUY, 100, 5, order_id=3, tif=IOC)
    assert summary(book.events) == [
        acc(3, 100, 5),
        fill(3, 100, 2, 3, 2, 0),
        cxl(3, 100, 3, R.IOC_REMAINDER),
    ]
    # MARKET treats every tif other than FOK as IOC
    book.limit(SELL, 100, 2, order_id=4)
    book.market(BUY, 5, order_id=5, tif=0)
    assert summary(book.events) == [
        acc(5, 0, 5),
        fill(5, 100, 2, 3, 4, 0),
        cxl(5, 0, 3, R.IOC_REMAINDER),
    ]
    book.limit(SELL, 100, 2, order_id=6)
    book.market(BUY, 5, order_id=7, tif=FOK)
    assert summary(book.events) == [acc(7, 0, 5), cxl(7, 0, 5, R.FOK_UNFILLABLE)]
    book.market(BUY, 5, order_id=8, tif=POST_ONLY)
    assert summary(book.events) == [rej(8, 0, 5, R.BAD_TIF)]


def test_post_only():
    book = ReferenceOrderBook()
    book.limit(SELL, 100, 3, order_id=1)
    book.limit(BUY, 100, 1, order_id=2, tif=POST_ONLY)
    assert summary(book.events) == [rej(2, 100, 1, R.POST_ONLY_WOULD_CROSS)]
    book.limit(BUY, 99, 1, order_id=2, tif=POST_ONLY)
    assert summary(book.events) == [acc(2, 99, 1)]
    assert book.best_bid() == 99


def _stp_book(mode: int) -> ReferenceOrderBook:
    book = ReferenceOrderBook(n_owners=2, self_trade_prevention=mode)
    book.limit(SELL, 100, 5, order_id=1, owner=0)
    book.limit(SELL, 100, 5, order_id=2, owner=1)
    return book


def test_self_trade_none():
    book = _stp_book(0)
    book.limit(BUY, 100, 8, order_id=3, owner=0)
    assert summary(book.events) == [
        acc(3, 100, 8),
        fill(3, 100, 5, 3, 1, 0),
        fill(3, 100, 3, 0, 2, 2),
    ]
    assert book.accounts["position"].tolist() == [8 - 5, -3]


def test_self_trade_cancel_taker():
    book = _stp_book(CANCEL_TAKER)
    book.limit(BUY, 100, 8, order_id=3, owner=0)
    assert summary(book.events) == [acc(3, 100, 8), cxl(3, 100, 8, R.SELF_TRADE)]
    assert queue_ids(book, SELL, 100) == [(1, 5), (2, 5)]
    assert book.best_bid() == EMPTY_BID


def test_self_trade_cancel_maker():
    book = _stp_book(CANCEL_MAKER)
    book.limit(BUY, 100, 8, order_id=3, owner=0)
    assert summary(book.events) == [
        acc(3, 100, 8),
        cxl(1, 100, 5, R.SELF_TRADE),
        fill(3, 100, 5, 3, 2, 0),
    ]
    assert book.events[1]["owner"] == 0 and book.events[1]["side"] == SELL
    assert book.best_bid() == 100 and book.best_ask() == EMPTY_ASK


def test_self_trade_cancel_both():
    book = _stp_book(CANCEL_BOTH)
    book.limit(BUY, 100, 8, order_id=3, owner=0)
    assert summary(book.events) == [
        acc(3, 100, 8),
        cxl(1, 100, 5, R.SELF_TRADE),
        cxl(3, 100, 8, R.SELF_TRADE),
    ]
    assert queue_ids(book, SELL, 100) == [(2, 5)]


def test_self_trade_fok_walk():
    book = _stp_book(CANCEL_MAKER)  # own order skipped: 5 lots fillable
    book.limit(BUY, 100, 6, order_id=3, owner=0, tif=FOK)
    assert summary(book.events) == [acc(3, 100, 6), cxl(3, 100, 6, R.FOK_UNFILLABLE)]
    book.limit(BUY, 100, 5, order_id=3, owner=0, tif=FOK)
    assert summary(book.events) == [
        acc(3, 100, 5),
        cxl(1, 100, 5, R.SELF_TRADE),
        fill(3, 100, 5, 0, 2, 0),
    ]
    book = _stp_book(CANCEL_TAKER)  # the walk stops at the own order: nothing fillable
    book.limit(BUY, 100, 1, order_id=3, owner=0, tif=FOK)
    assert summary(book.events) == [acc(3, 100, 1), cxl(3, 100, 1, R.FOK_UNFILLABLE)]
    book.limit(BUY, 100, 1, order_id=3, owner=1, tif=FOK)  # owner 1 hits own order 2 last
    assert summary(book.events) == [acc(3, 100, 1), fill(3, 100, 1, 0, 1, 4)]


def _traded_at_100(book: ReferenceOrderBook) -> None:
    book.limit(SELL, 100, 1, order_id=90)
    book.limit(BUY, 100, 1, order_id=91)
    assert book.last_price() == 100


def test_stop_cascade_in_order():
    book = ReferenceOrderBook()
    _traded_at_100(book)
    book.limit(BUY, 99, 1, order_id=1)
    book.limit(BUY, 98, 1, order_id=2)
    book.limit(BUY, 97, 5, order_id=3)
    book.stop(SELL, 99, 1, order_id=21)
    book.stop(SELL, 98, 1, order_id=22)
    book.stop_limit(SELL, 97, 97, 10, order_id=23)
    assert summary(book.events) == [acc(23, 97, 10)]
    book.market(SELL, 1, order_id=30, timestamp=3)
    assert summary(book.events) == [
        acc(30, 0, 1),
        fill(30, 99, 1, 0, 1, 0),
        trig(21, 99, 1),
        fill(21, 98, 1, 0, 2, 0),
        trig(22, 98, 1),
        fill(22, 97, 1, 0, 3, 4),
        trig(23, 97, 10),
        fill(23, 97, 4, 6, 3, 0),
    ]
    assert all(book.events["timestamp"] == 3)
    assert book.best_ask() == 97 and book.best_bid() == EMPTY_BID
    assert book.order(23)["timestamp"] == 3


def test_stop_depth_first():
    book = ReferenceOrderBook()
    _traded_at_100(book)
    book.limit(BUY, 99, 1, order_id=1)
    book.limit(BUY, 97, 1, order_id=2)
    book.limit(BUY, 96, 5, order_id=3)
    book.stop(SELL, 99, 2, order_id=21)
    book.stop(SELL, 99, 1, order_id=22)
    book.stop(SELL, 97, 1, order_id=23)
    book.market(SELL, 1, order_id=30)
    assert summary(book.events) == [
        acc(30, 0, 1),
        fill(30, 99, 1, 0, 1, 0),
        trig(21, 99, 2),
        fill(21, 97, 1, 1, 2, 0),
        fill(21, 96, 1, 0, 3, 4),
        trig(23, 96, 1),
        fill(23, 96, 1, 0, 3, 3),
        trig(22, 99, 1),
        fill(22, 96, 1, 0, 3, 2),
    ]


def test_stop_triggers_at_once_and_not_before_a_trade():
    book = ReferenceOrderBook()
    book.stop(SELL, 100, 1, order_id=1)  # no trade yet: it waits
    assert summary(book.events) == [acc(1, 0, 1)]
    book.limit(SELL, 100, 1, order_id=90)
    book.limit(BUY, 100, 1, order_id=91)
    assert summary(book.events) == [
        acc(91, 100, 1),
        fill(91, 100, 1, 0, 90, 0),
        trig(1, 100, 1),
        cxl(1, 0, 1, R.IOC_REMAINDER),
    ]
    book.stop(BUY, 100, 2, order_id=2, tif=FOK)
    assert summary(book.events) == [acc(2, 0, 2), trig(2, 100, 2), cxl(2, 0, 2, R.FOK_UNFILLABLE)]
    book.stop_limit(BUY, 101, 99, 2, order_id=3)
    assert summary(book.events) == [acc(3, 99, 2)]
    assert book.order(3) == dict(
        order_id=3, price=99, qty=2, side=BUY, owner=-1, op=7, tif=0, state=2, stop_price=101
    )
    assert book.cancel(3)
    assert summary(book.events) == [cxl(3, 99, 2, R.CANCEL_REQUESTED)]


def test_replace_loses_priority():
    book = ReferenceOrderBook()
    book.limit(BUY, 100, 5, order_id=1)
    book.limit(BUY, 100, 5, order_id=2)
    assert book.replace(1, 100, 4) == 1
    assert summary(book.events) == [cxl(1, 100, 5, R.REPLACED), acc(1, 100, 4)]
    assert queue_ids(book, BUY, 100) == [(2, 5), (1, 4)]
    assert book.replace(2, 100, 5, new_order_id=7) == 7
    assert queue_ids(book, BUY, 100) == [(1, 4), (7, 5)]
    book.limit(SELL, 102, 3, order_id=3)
    book.replace(1, 102, 4, new_order_id=8)  # trades at once
    assert summary(book.events) == [
        cxl(1, 100, 4, R.REPLACED),
        acc(8, 102, 4),
        fill(8, 102, 3, 1, 3, 0),
    ]
    book.limit(SELL, 103, 1, order_id=4)
    book.replace(8, 103, 1, tif=POST_ONLY)  # rejected after the old order was cancelled
    assert summary(book.events) == [
        cxl(8, 102, 1, R.REPLACED),
        rej(8, 103, 1, R.POST_ONLY_WOULD_CROSS),
    ]
    assert book.events[1]["side"] == BUY
    assert book.order(8) is None
    book.stop(BUY, 200, 1, order_id=5)
    book.replace(5, 100, 1)
    assert summary(book.events) == [rej(5, 100, 1, R.NOT_RESTING)]
    book.replace(7, 100, 1, new_order_id=5)
    assert summary(book.events) == [rej(7, 100, 1, R.DUPLICATE_ORDER_ID)]


def test_reduce_keeps_priority():
    book = ReferenceOrderBook()
    book.limit(BUY, 100, 5, order_id=1)
    book.limit(BUY, 100, 5, order_id=2)
    assert book.reduce(1, 2)
    assert summary(book.events) == [(REDUCED, 1, 100, 2, 3, 0, 0, 0)]
    assert queue_ids(book, BUY, 100) == [(1, 3), (2, 5)]
    assert book.reduce(1, 3)
    assert summary(book.events) == [cxl(1, 100, 3, R.CANCEL_REQUESTED)]
    assert not book.reduce(1, 1)
    assert summary(book.events) == [rej(1, 0, 1, R.UNKNOWN_ORDER)]
    assert not book.reduce(2, 0)
    assert summary(book.events) == [rej(2, 0, 0, R.BAD_QTY)]


def test_execute():
    book = ReferenceOrderBook(n_owners=1, maker_fee_ppm=-1000)
    book.limit(SELL, 100, 5, order_id=1, owner=0)
    assert book.execute(1, 3, timestamp=9)
    e = book.events
    assert summary(e) == [fill(0, 100, 3, 0, 1, 2)]
    assert (int(e[0]["owner"]), int(e[0]["side"]), int(e[0]["maker_owner"])) == (-1, BUY, 0)
    assert book.last_price() == 100 and book.volume() == 3
    assert book.accounts.tolist() == [(-3, 300, 3, 0)]  # fee(300, -1000) truncates to 0
    assert not book.execute(1, 3)
    assert summary(book.events) == [rej(1, 0, 3, R.BAD_QTY)]
    book.stop(BUY, 200, 1, order_id=2)
    assert not book.execute(2, 1)
    assert summary(book.events) == [rej(2, 0, 1, R.NOT_RESTING)]
    assert book.execute(1, 2)
    assert book.order(1) is None


def test_accounts_and_fees():
    book = ReferenceOrderBook(n_owners=2, maker_fee_ppm=-100, taker_fee_ppm=300)
    book.limit(SELL, 1001, 7, order_id=1, owner=0)
    book.limit(BUY, 1001, 7, order_id=2, owner=1)
    maker_fee = fee(7007, -100)  # -0.7007 -> 0
    taker_fee = fee(7007, 300)  # 2.1021 -> 2
    assert (maker_fee, taker_fee) == (0, 2)
    assert book.accounts.tolist() == [
        (-7, 7007 - maker_fee, 7, maker_fee),
        (7, -7007 - taker_fee, 7, taker_fee),
    ]


def test_capacity_and_duplicates():
    book = ReferenceOrderBook(max_orders=2)
    book.limit(BUY, 100, 1, order_id=1)
    book.stop(BUY, 200, 1, order_id=2)
    book.limit(BUY, 100, 1, order_id=3)
    assert summary(book.events) == [rej(3, 100, 1, R.CAPACITY)]
    book.limit(BUY, 100, 1, order_id=1)  # duplicate is checked before capacity
    assert summary(book.events) == [rej(1, 100, 1, R.DUPLICATE_ORDER_ID)]
    book.limit(BUY, 100, 1, order_id=3, tif=IOC)  # IOC needs no slot
    assert summary(book.events) == [acc(3, 100, 1), cxl(3, 100, 1, R.IOC_REMAINDER)]
    book.replace(1, 101, 2)  # REPLACE needs no slot
    assert summary(book.events) == [cxl(1, 100, 1, R.REPLACED), acc(1, 101, 2)]


def test_validation_order():
    books = ReferenceBooks(2, n_owners=1)
    msgs = np.zeros(12, dtype=MESSAGE_DTYPE)
    msgs["op"] = LIMIT
    msgs["side"] = BUY
    msgs["qty"] = 1
    msgs["price"] = 100
    msgs["order_id"] = np.arange(1, 13)
    put(msgs, 0, book=2, op=99)
    put(msgs, 1, op=0, owner=5)
    put(msgs, 2, owner=-2, order_id=0)
    put(msgs, 3, order_id=-1, side=0)
    put(msgs, 4, side=2, tif=9)
    put(msgs, 5, tif=4, qty=0)
    put(msgs, 6, qty=MAX_QTY + 1, price=0)
    put(msgs, 7, price=MAX_PRICE + 1)
    put(msgs, 8, op=STOP, stop_price=0)
    put(msgs, 9, op=CANCEL, order_id=99)
    put(msgs, 10, op=MARKET, tif=9)  # MARKET treats an unknown tif as IOC
    put(msgs, 11, qty=MAX_QTY, price=MAX_PRICE)
    events = books.process_all(msgs)
    assert [int(r) for r in events["reason"][:10]] == [
        R.BAD_BOOK,
        R.BAD_OP,
        R.BAD_OWNER,
        R.BAD_ORDER_ID,
        R.BAD_SIDE,
        R.BAD_TIF,
        R.BAD_QTY,
        R.BAD_PRICE,
        R.BAD_PRICE,
        R.UNKNOWN_ORDER,
    ]
    assert int(events[0]["book"]) == 2 and int(events[1]["owner"]) == 5
    assert events["message_index"].tolist() == list(range(10)) + [10, 10, 11]
    assert summary(events[10:]) == [
        acc(11, 0, 1),
        cxl(11, 0, 1, R.IOC_REMAINDER),
        acc(12, MAX_PRICE, MAX_QTY),
    ]


def test_books_are_independent():
    books = ReferenceBooks(2)
    msgs = np.zeros(3, dtype=MESSAGE_DTYPE)
    msgs["owner"] = -1
    msgs["op"] = LIMIT
    msgs["qty"] = 1
    put(msgs, 0, book=0, order_id=1, side=SELL, price=100)
    put(msgs, 1, book=1, order_id=1, side=BUY, price=100)  # same id, other book
    put(msgs, 2, book=1, order_id=2, side=SELL, price=100)
    events = books.process_all(msgs)
    assert [int(k) for k in events["kind"]] == [ACCEPTED, ACCEPTED, ACCEPTED, FILL]
    assert (books.best_ask(0), books.best_bid(1), books.last_price(0)) == (100, EMPTY_BID, 0)
    prices, qtys, counts = books.top_levels(2)
    assert prices.tolist() == [[[0, 0], [100, 0]], [[0, 0], [0, 0]]]
    assert counts.dtype == np.int32 and qtys[0, 1, 0] == 1
    assert books.live_orders() == 1 and books.live_orders(1) == 0
    books.check_integrity()


def test_auto_ids_and_submit():
    book = ReferenceOrderBook()
    assert book.limit(BUY, 100, 1) == 1 << 48
    assert book.stop(BUY, 200, 1) == (1 << 48) + 1
    msg = np.zeros(1, dtype=MESSAGE_DTYPE)[0]
    msg["op"], msg["side"], msg["price"], msg["qty"], msg["book"] = LIMIT, SELL, 100, 2, 5
    msg["owner"] = -1
    assert book.submit(msg) == (1 << 48) + 2
    assert summary(book.events) == [
        acc((1 << 48) + 2, 100, 2),
        fill((1 << 48) + 2, 100, 1, 1, 1 << 48, 0),
    ]
    assert int(book.fills()["qty"][0]) == 1
    assert not book.cancel(12345)
    assert [int(k) for k in book.events["kind"]] == [REJECTED]


def test_rejects_malformed_arrays():
    books = ReferenceBooks()
    with pytest.raises(TypeError):
        books.process_all(np.zeros(3, dtype=np.int64))
