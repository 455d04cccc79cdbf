"""Fee tiers: an owner's maker/taker fees in every book instead of the book's
(``Books.set_owner_fees``); accounting stays exact (integrity checks it)."""

from __future__ import annotations

import pytest

from rltrader import BUY, IOC, LIMIT, MARKET, SELL, Books
from rltrader.core.messages import empty_events, empty_messages

PRICE, QTY = 10_000, 1_000
NOTIONAL = PRICE * QTY


def trade(books: Books, maker: int, taker: int, first_id: int) -> None:
    """``maker`` rests QTY lots at PRICE, ``taker`` takes them with a market order."""
    m = empty_messages(2)
    for i, (op, side, owner) in enumerate(((LIMIT, SELL, maker), (MARKET, BUY, taker))):
        m[i]["op"], m[i]["side"], m[i]["owner"] = op, side, owner
        m[i]["order_id"], m[i]["price"], m[i]["qty"] = first_id + i, PRICE, QTY
    m[1]["tif"] = IOC
    books.process(m, empty_events(16))


def test_an_owner_s_tier_replaces_the_book_s_fees() -> None:
    books = Books(1, n_owners=4, maker_fee_ppm=-20, taker_fee_ppm=100)
    books.set_owner_fees(2, maker_fee_ppm=0, taker_fee_ppm=30)
    trade(books, maker=0, taker=1, first_id=1)      # the book's fees
    trade(books, maker=3, taker=2, first_id=3)      # owner 2 pays its tier as taker
    fees = books.account_array["fees"][0]
    assert fees.tolist() == [NOTIONAL * -20 // 10**6, NOTIONAL * 100 // 10**6,
                             NOTIONAL * 30 // 10**6, NOTIONAL * -20 // 10**6]
    books.set_owner_fees([0, 3], maker_fee_ppm=5)   # several owners at once
    trade(books, maker=3, taker=1, first_id=5)
    assert books.account_array["fees"][0, 3] == NOTIONAL * (-20 + 5) // 10**6
    books.set_owner_fees(2)                         # back to the book's
    assert (books.owner_fee_array[2] == books.owner_fee_array[1]).all()
    books.check_integrity()


@pytest.mark.parametrize(("args", "error"), [
    ((9, 0, 0), ValueError), ((-1, 0, 0), ValueError), ((0, 10**7, 0), ValueError),
    ((0, 2.5, 0), TypeError), ((0, 0, "1"), TypeError)])
def test_bad_tiers_are_refused_and_change_nothing(args, error) -> None:
    books = Books(1, n_owners=4)
    with pytest.raises(error):
        books.set_owner_fees(*args)
    assert (books.owner_fee_array == books.owner_fee_array[0, 0]).all()
    with pytest.raises(ValueError):
        books.owner_fee_array[0, 0] = 0             # read-only: set_owner_fees checks values


def test_fees_are_charged_whichever_way_they_were_set() -> None:
    """A core without any fee skips the fee look-ups in its fills (``Core.fees``): each way
    of setting one (a book's fees, an owner's tier, a saved state) must turn them back on,
    and setting them all back to 0 must charge none."""
    books = Books(2, n_owners=4)
    trade(books, maker=0, taker=1, first_id=1)
    assert not books.account_array["fees"].any()
    books.set_fees(-20, 100, book=1)                # another book's fee
    trade(books, maker=0, taker=1, first_id=3)
    assert not books.account_array["fees"][0].any()
    books.set_owner_fees(1, taker_fee_ppm=30)       # a tier, in every book
    trade(books, maker=0, taker=1, first_id=5)
    assert books.account_array["fees"][0].tolist() == [0, NOTIONAL * 30 // 10**6, 0, 0]
    books.set_owner_fees(1)
    books.set_fees(0, 0)
    trade(books, maker=0, taker=1, first_id=7)
    assert books.account_array["fees"][0].tolist() == [0, NOTIONAL * 30 // 10**6, 0, 0]
    books.set_fees(0, 50, book=0)
    restored = Books.from_state(books.state())      # the flag comes from the arrays
    trade(restored, maker=2, taker=3, first_id=9)
    assert restored.account_array["fees"][0, 3] == NOTIONAL * 50 // 10**6
    books.check_integrity()
    restored.check_integrity()
