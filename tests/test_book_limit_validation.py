"""A LIMIT's validation at the edges of every field: the reject reason is the first check
that fails, in the documented order (book, owner, order id, side, tif, qty, price,
duplicate id, capacity), and a rejected limit changes nothing.

The core checks a limit's fields in one branch-free pass first (``limit_in_range``:
unsigned wrap-around compares) and walks the checks in order only when one fails, so the
values that matter are the ends of each range and the int8/int32/int64 extremes that wrap
(``test_bad_input`` names one case per reason; ``test_properties`` keeps to small
domains, where MAX_QTY and the extremes are left out).
"""

from __future__ import annotations

import numpy as np
from _scenario import assert_same_state, msg, snapshot
from _vocab import MAX_PRICE, MAX_QTY, MESSAGE_DTYPE
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrader import BUY, GTC, LIMIT, POST_ONLY, SELL, Books, EventKind
from rltrader import Reason as R

I32 = np.iinfo(np.int32)
I64 = np.iinfo(np.int64)
N_BOOKS = 2
N_OWNERS = 2
#: the reasons validation gives; past it a limit may still end REJECTED for crossing as
#: post-only or for the book's notional limit
VALIDATION = {R.BAD_BOOK, R.BAD_OWNER, R.BAD_ORDER_ID, R.BAD_SIDE, R.BAD_TIF, R.BAD_QTY,
              R.BAD_PRICE, R.DUPLICATE_ORDER_ID, R.CAPACITY}
LIVE = {(0, 1), (1, 2)}     # (book, order id) of the orders resting in ``_books``


def _books(full: bool) -> Books:
    """Book 0: bid 1 at 100 (owner 0); book 1: ask 2 at 110 (owner 1). ``full``: the arena
    holds just these two and may not grow; else it has free slots (a limit that needs a
    slot from a full arena that may grow grows it first, which changes its arrays)."""
    books = Books(N_BOOKS, n_owners=N_OWNERS, window=64, capacity=2 if full else 8,
                  max_orders=2 if full else 8)
    events = books.process_all(np.array([msg(LIMIT, 1, BUY, 100, 5, owner=0),
                                         msg(LIMIT, 2, SELL, 110, 3, owner=1, book=1)],
                                        dtype=MESSAGE_DTYPE))
    assert EventKind.REJECTED not in events["kind"]
    return books


def expected_reason(book: int, owner: int, order_id: int, side: int, tif: int, qty: int,
                    price: int, full: bool) -> int:
    """docs/semantics.md's checks for a LIMIT, in their order."""
    if not 0 <= book < N_BOOKS:
        return R.BAD_BOOK
    if not -1 <= owner < N_OWNERS:
        return R.BAD_OWNER
    if order_id <= 0:
        return R.BAD_ORDER_ID
    if side not in (BUY, SELL):
        return R.BAD_SIDE
    if not GTC <= tif <= POST_ONLY:
        return R.BAD_TIF
    if not 1 <= qty <= MAX_QTY:
        return R.BAD_QTY
    if not 1 <= price <= MAX_PRICE:
        return R.BAD_PRICE
    if (book, order_id) in LIVE:
        return R.DUPLICATE_ORDER_ID
    if full and tif in (GTC, POST_ONLY):
        return R.CAPACITY
    return R.NO_REASON


def _edges(*values: int) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted(set(values)))


books_ = st.one_of(st.integers(0, N_BOOKS - 1),
                   _edges(I32.min, I32.min + 1, -2, -1, N_BOOKS, N_BOOKS + 1, I32.max))
owners = st.one_of(st.integers(-1, N_OWNERS - 1),
                   _edges(I32.min, -3, -2, N_OWNERS, N_OWNERS + 1, I32.max - 1, I32.max))
order_ids = st.one_of(st.integers(1, 4), _edges(I64.min, I64.min + 1, -1, 0, I64.max))
sides = st.one_of(st.sampled_from([BUY, SELL]), st.integers(-128, 127))
tifs = st.one_of(st.integers(GTC, POST_ONLY), st.integers(-128, 127))
qtys = st.one_of(st.integers(1, 6),
                 _edges(I64.min, I64.min + 1, -1, 0, 1, MAX_QTY - 1, MAX_QTY, MAX_QTY + 1,
                        2 * MAX_QTY + 1, 2 * MAX_QTY + 2, I64.max - 1, I64.max))
prices = st.one_of(st.integers(95, 115),
                   _edges(I64.min, I64.min + 1, -1, 0, 1, MAX_PRICE - 1, MAX_PRICE,
                          MAX_PRICE + 1, 2 * MAX_PRICE + 1, 2 * MAX_PRICE + 2, I64.max - 1,
                          I64.max))


@settings(max_examples=600, deadline=None)
@given(book=books_, owner=owners, order_id=order_ids, side=sides, tif=tifs, qty=qtys,
       price=prices, full=st.booleans())
def test_limit_reject_reason_is_the_first_failing_check(book: int, owner: int, order_id: int,
                                                        side: int, tif: int, qty: int,
                                                        price: int, full: bool) -> None:
    books = _books(full)
    before = snapshot(books)
    m = np.array([msg(LIMIT, order_id, side, price, qty, owner=owner, tif=tif, book=book,
                      timestamp=7)], dtype=MESSAGE_DTYPE)
    events = books.process_all(m)
    reason = expected_reason(book, owner, order_id, side, tif, qty, price, full)
    if reason != R.NO_REASON:
        assert len(events) == 1
        e = events[0]
        assert (int(e["kind"]), int(e["reason"])) == (EventKind.REJECTED, reason)
        assert (int(e["book"]), int(e["order_id"]), int(e["side"]), int(e["owner"]),
                int(e["price"]), int(e["qty"]), int(e["leaves_qty"]),
                int(e["timestamp"])) == (book, order_id, side, owner, price, qty, 0, 7)
        assert_same_state(before, books)
    else:
        assert len(events) >= 1
        assert not (events[0]["kind"] == EventKind.REJECTED
                    and int(events[0]["reason"]) in VALIDATION), events[0]
    books.check_integrity()
