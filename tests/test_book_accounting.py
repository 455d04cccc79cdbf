"""Per (book, owner) accounts: position, cash, volume and fees (rebates truncate toward 0)."""

from __future__ import annotations

import numpy as np
from _scenario import messages, msg

from rltrader import BUY, LIMIT, MARKET, NO_OWNER, SELL, Books, OrderBook


def _account(ob: OrderBook, owner: int) -> tuple[int, int, int, int]:
    a = ob.accounts[owner]
    return int(a["position"]), int(a["cash"]), int(a["volume"]), int(a["fees"])


def _assert_balanced(accounts: np.ndarray) -> None:
    assert int(accounts["position"].sum()) == 0
    assert int(accounts["cash"].sum()) == -int(accounts["fees"].sum())


def test_maker_rebate_and_taker_fee_truncate_toward_zero() -> None:
    ob = OrderBook(n_owners=3, maker_fee_ppm=-200, taker_fee_ppm=300)
    ob.limit(SELL, 10_001, 10, order_id=1, owner=0)
    ob.limit(BUY, 10_001, 7, order_id=2, owner=1)
    # notional 70_007: taker fee 21.0021 -> 21; maker fee -14.0014 -> -14 (not -15)
    assert _account(ob, 1) == (7, -70_007 - 21, 7, 21)
    assert _account(ob, 0) == (-7, 70_007 + 14, 7, -14)
    assert _account(ob, 2) == (0, 0, 0, 0)
    _assert_balanced(ob.accounts)

    ob.limit(BUY, 9_999, 5, order_id=3, owner=2)
    ob.market(SELL, 3, order_id=4, owner=0)
    # notional 29_997: taker fee 8.9991 -> 8; maker fee -5.9994 -> -5
    assert _account(ob, 0) == (-10, 70_021 + 29_997 - 8, 10, -14 + 8)
    assert _account(ob, 2) == (3, -29_997 + 5, 3, -5)
    assert _account(ob, 1) == (7, -70_028, 7, 21)
    _assert_balanced(ob.accounts)


def test_fees_on_a_sweep_are_charged_per_fill() -> None:
    ob = OrderBook(n_owners=2, taker_fee_ppm=100_000)   # 10 %
    ob.limit(SELL, 15, 1, order_id=1, owner=0)
    ob.limit(SELL, 17, 1, order_id=2, owner=0)
    ob.limit(BUY, 17, 2, order_id=3, owner=1)
    # per fill: trunc(1.5) + trunc(1.7) = 2, not trunc(3.2) = 3
    assert _account(ob, 1) == (2, -32 - 2, 2, 2)
    assert _account(ob, 0) == (-2, 32, 2, 0)
    _assert_balanced(ob.accounts)


def test_trading_with_yourself_nets_to_fees() -> None:
    ob = OrderBook(n_owners=1, maker_fee_ppm=1_000, taker_fee_ppm=2_000)
    ob.limit(BUY, 5_000, 4, order_id=1, owner=0)
    ob.limit(SELL, 5_000, 4, order_id=2, owner=0)
    # notional 20_000: maker fee 20, taker fee 40
    assert _account(ob, 0) == (0, -60, 8, 60)


def test_orders_without_owner_have_no_account() -> None:
    ob = OrderBook(n_owners=1, maker_fee_ppm=-100, taker_fee_ppm=100)
    ob.limit(SELL, 1_000_000, 3, order_id=1, owner=NO_OWNER)
    ob.limit(BUY, 1_000_000, 3, order_id=2, owner=0)
    assert _account(ob, 0) == (3, -3_000_000 - 300, 3, 300)
    ob.limit(BUY, 1_000_000, 2, order_id=3, owner=NO_OWNER)
    ob.limit(SELL, 1_000_000, 2, order_id=4, owner=NO_OWNER)
    assert _account(ob, 0) == (3, -3_000_300, 3, 300)


def test_execute_charges_the_maker_only() -> None:
    ob = OrderBook(n_owners=1, maker_fee_ppm=-250, taker_fee_ppm=1_000)
    ob.limit(BUY, 4_001, 10, order_id=1, owner=0)
    ob.execute(1, 6)
    # notional 24_006: rebate -6.0015 -> -6
    assert _account(ob, 0) == (6, -24_006 + 6, 6, -6)


def test_accounts_are_per_book_and_fees_settable_per_book() -> None:
    books = Books(2, n_owners=2)
    books.set_fees(0, 500_000, book=1)          # 50 % taker fee in book 1 only
    stream = []
    for b in (0, 1):
        stream += [msg(LIMIT, 1, SELL, 11, 1, owner=0, book=b),
                   msg(MARKET, 2, BUY, qty=1, owner=1, book=b)]
    books.process_all(messages(*stream))
    acc = books.accounts
    assert acc.shape == (2, 2)
    assert [tuple(int(v) for v in acc[0, o]) for o in (0, 1)] == [(-1, 11, 1, 0),
                                                                  (1, -11, 1, 0)]
    # trunc(5.5) = 5
    assert [tuple(int(v) for v in acc[1, o]) for o in (0, 1)] == [(-1, 11, 1, 0),
                                                                  (1, -16, 1, 5)]
    for b in (0, 1):
        _assert_balanced(acc[b])


def test_balanced_after_a_mixed_stream() -> None:
    books = Books(n_owners=3, maker_fee_ppm=-37, taker_fee_ppm=53)
    rng = np.random.default_rng(7)
    stream = []
    for i in range(1, 400):
        op = LIMIT if i % 5 else MARKET
        side = BUY if rng.random() < 0.5 else SELL
        stream.append(msg(op, i, side, int(rng.integers(990, 1010)) if op == LIMIT else 0,
                          int(rng.integers(1, 20)), owner=int(rng.integers(0, 3))))
    books.process_all(messages(*stream))
    assert books.volume() > 0
    _assert_balanced(books.accounts[0])
    assert int(books.accounts[0]["volume"].sum()) == 2 * books.volume()
    books.check_integrity()
