"""``Books.process(..., known=)``: a caller's guess of an order's arena slot never changes
what the core does, right or wrong; on return it holds where each new order came to
rest."""

from __future__ import annotations

import numpy as np
from _scenario import messages, msg
from test_multi_book import N_BOOKS, _make

from rltrader import BUY, CANCEL, EVENT_DTYPE, LIMIT, MARKET, REDUCE, REPLACE, SELL, STOP
from rltrader._book import Limits, OrderState

NO_SLOT = int(Limits.NO_SLOT)


def _stream(n: int, seed: int) -> np.ndarray:
    """Limit and market orders in ``N_BOOKS`` books (the same ids in every book), and
    cancels, reduces and replaces of recent ids, mostly still resting."""
    rng = np.random.default_rng(seed)
    out = []
    next_id = [1] * N_BOOKS
    for i in range(n):
        b = int(rng.integers(0, N_BOOKS))
        side = BUY if rng.random() < 0.5 else SELL
        price = 1000 + int(rng.integers(-6, 7))
        qty = int(rng.integers(1, 6))
        recent = int(rng.integers(max(1, next_id[b] - 12), next_id[b] + 1))
        r = rng.random()
        if r < 0.5:
            out.append(msg(LIMIT, next_id[b], side, price, qty, book=b, timestamp=i))
            next_id[b] += 1
        elif r < 0.58:
            out.append(msg(MARKET, next_id[b], side, qty=qty, book=b, timestamp=i))
            next_id[b] += 1
        elif r < 0.85:
            out.append(msg(CANCEL, recent, book=b, timestamp=i))
        elif r < 0.92:
            out.append(msg(REDUCE, recent, qty=1, book=b, timestamp=i))
        else:
            out.append(msg(REPLACE, recent, price=price, qty=qty, book=b, timestamp=i))
    return messages(*out)


def _rested_slot(orders: np.ndarray, m) -> int:
    """Where the new order of limit or replace ``m`` rests now (NO_SLOT: nowhere)."""
    if m["op"] not in (LIMIT, REPLACE):
        return NO_SLOT
    new_id = m["new_order_id"] if m["op"] == REPLACE and m["new_order_id"] else m["order_id"]
    rests = np.flatnonzero((orders["state"] == OrderState.RESTING)
                           & (orders["order_id"] == new_id) & (orders["book"] == m["book"]))
    return int(rests[0]) if len(rests) else NO_SLOT


def _guess(books, m, rng: np.random.Generator, freed: dict) -> int:
    """A slot for message ``m``: right, the same id's slot in another book, a freed slot
    that held this very order, a random slot, out of range or NO_SLOT."""
    orders = books.order_array
    live = orders["state"] != OrderState.FREE
    same_id = np.flatnonzero(live & (orders["order_id"] == m["order_id"]))
    right = [int(s) for s in same_id if orders["book"][s] == m["book"]]
    other = [int(s) for s in same_id if orders["book"][s] != m["book"]]
    stale = freed.get((int(m["book"]), int(m["order_id"])), [])
    stale = [s for s in stale if not live[s]]
    choices = [NO_SLOT, len(orders) + 3, int(rng.integers(0, len(orders)))]
    choices += right * 3 + other * 3 + stale * 3
    return int(choices[int(rng.integers(0, len(choices)))])


def test_known_slots_change_nothing_and_return_where_new_orders_rest() -> None:
    stream = _stream(1500, seed=11)
    plain, guided = _make(), _make()
    rng = np.random.default_rng(5)
    freed: dict = {}
    used = {"right": 0, "stale": 0}
    for i in range(len(stream)):
        one = stream[i:i + 1]
        m = one[0]
        known = np.array([_guess(guided, m, rng, freed)], dtype=np.int32)
        if m["op"] not in (LIMIT, MARKET, STOP) and 0 <= known[0] < len(guided.order_array):
            o = guided.order_array[known[0]]
            if o["order_id"] == m["order_id"] and o["book"] == m["book"]:
                used["right" if o["state"] != OrderState.FREE else "stale"] += 1
        before = guided.order_array.copy()
        ea, eb = np.zeros(64, EVENT_DTYPE), np.zeros(64, EVENT_DTYPE)
        assert plain.process(one, ea) == guided.process(one, eb, known=known)
        np.testing.assert_array_equal(ea, eb)
        after = guided.order_array
        assert known[0] == _rested_slot(after, m)
        gone = np.flatnonzero((before["state"][: len(after)] != OrderState.FREE)
                              & (after["state"][: len(before)] == OrderState.FREE))
        for s in gone:
            freed.setdefault((int(before["book"][s]), int(before["order_id"][s])), []).append(
                int(s))
    for name in ("order_array", "level_array", "book_array", "account_array"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(guided, name))
    assert used["right"] > 50 and used["stale"] > 5     # the guesses covered both cases


def test_known_must_match_the_messages() -> None:
    books = _make()
    msgs = _stream(4, seed=1)
    events = np.zeros(64, EVENT_DTYPE)
    frozen = np.zeros(4, np.int32)
    frozen.flags.writeable = False
    for bad in (np.zeros(3, np.int32), np.zeros(4, np.int64), [0, 0, 0, 0], frozen):
        try:
            books.process(msgs, events, known=bad)
        except ValueError as exc:
            assert "known must be" in str(exc)
        else:
            raise AssertionError(f"known={bad!r} was accepted")
