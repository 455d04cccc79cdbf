"""Several books in one batch: independent books, message_index, process vs process_all."""

from __future__ import annotations

import numpy as np
import pytest
from _scenario import (
    accepted,
    as_dicts,
    assert_events,
    book_depth,
    cancelled,
    fill,
    messages,
    msg,
    rejected,
    triggered,
)

from rltrader import (
    BUY,
    CANCEL,
    EVENT_DTYPE,
    LIMIT,
    MARKET,
    REDUCE,
    REPLACE,
    SELL,
    STOP,
    Books,
    Reason,
)

N_BOOKS = 3


def _stream(n: int, seed: int) -> np.ndarray:
    """Interleaved flow for N_BOOKS books that reuses the same order ids in every book."""
    rng = np.random.default_rng(seed)
    out = []
    next_id = [1] * N_BOOKS
    for i in range(n):
        b = int(rng.integers(0, N_BOOKS))
        oid = next_id[b]
        side = BUY if rng.random() < 0.5 else SELL
        qty = int(rng.integers(1, 8))
        owner = int(rng.integers(-1, 2))
        r = rng.random()
        if r < 0.55:
            out.append(msg(LIMIT, oid, side, 1000 + b * 7 + int(rng.integers(-8, 9)), qty,
                           owner=owner, tif=int(rng.integers(0, 4)), book=b, timestamp=i))
        elif r < 0.65:
            out.append(msg(MARKET, oid, side, qty=qty, owner=owner, book=b, timestamp=i))
        elif r < 0.72:
            out.append(msg(STOP, oid, side, qty=qty, stop_price=1000 + b * 7, owner=owner,
                           book=b, timestamp=i))
        elif r < 0.88:
            out.append(msg(CANCEL, int(rng.integers(1, oid + 1)), book=b, timestamp=i))
        elif r < 0.94:
            out.append(msg(REDUCE, int(rng.integers(1, oid + 1)), qty=qty, book=b,
                           timestamp=i))
        else:
            out.append(msg(REPLACE, int(rng.integers(1, oid + 1)), price=1000 + b * 7,
                           qty=qty, book=b, timestamp=i))
        next_id[b] += 1
    return messages(*out)


def _make(window: int = 4096) -> Books:
    return Books(N_BOOKS, window=window, n_owners=2, self_trade_prevention=2,
                 maker_fee_ppm=-5, taker_fee_ppm=9)


# 3 books x 32,768 levels x 24 bytes outgrow the core's PREFETCH_BYTES (1 MiB): the batch
# kernel then loads books, levels, buckets and orders messages ahead (prefetch_ahead),
# while each book alone stays below it: the two paths must agree
@pytest.mark.parametrize("window", [4096, 32768])
def test_books_in_one_batch_are_independent(window: int) -> None:
    stream = _stream(1500, seed=5)
    together = _make(window)
    events = together.process_all(stream)
    for b in range(N_BOOKS):
        mine = np.nonzero(stream["book"] == b)[0]
        alone = Books(1, window=window, n_owners=2, self_trade_prevention=2,
                      maker_fee_ppm=-5, taker_fee_ppm=9)
        sub = stream[mine].copy()
        sub["book"] = 0
        expected = as_dicts(alone.process_all(sub))
        for e in expected:                  # back to the batch's book and indices
            e["book"] = b
            e["message_index"] = int(mine[e["message_index"]])
        assert as_dicts(events[events["book"] == b]) == expected
        assert book_depth(together, b) == book_depth(alone, 0)
        assert together.accounts[b].tolist() == alone.accounts[0].tolist()
        assert (together.last_price(b), together.volume(b), together.live_orders(b)) == (
            alone.last_price(0), alone.volume(0), alone.live_orders(0))
    together.check_integrity()


def test_message_index_and_book_of_every_event() -> None:
    books = Books(2)
    events = books.process_all(messages(
        msg(LIMIT, 1, SELL, 100, 1, book=1),
        msg(LIMIT, 1, SELL, 100, 1, book=0),
        msg(STOP, 2, BUY, qty=1, stop_price=100, book=0),
        msg(LIMIT, 3, BUY, 100, 1, book=5),
        msg(LIMIT, 3, BUY, 100, 1, book=1),         # trades in book 1: book 0's stop waits
        msg(LIMIT, 3, BUY, 100, 1, book=0),         # trades in book 0: its stop triggers
    ))
    assert_events(events, [
        accepted(1, SELL, 100, 1, book=1, index=0),
        accepted(1, SELL, 100, 1, book=0, index=1),
        accepted(2, BUY, 0, 1, book=0, index=2),
        rejected(3, BUY, 100, 1, Reason.BAD_BOOK, book=5, index=3),
        accepted(3, BUY, 100, 1, book=1, index=4),
        fill(3, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0, book=1, index=4),
        accepted(3, BUY, 100, 1, book=0, index=5),
        fill(3, BUY, maker=1, price=100, qty=1, leaves=0, maker_leaves=0, book=0, index=5),
        triggered(2, BUY, 100, 1, book=0, index=5),
        cancelled(2, BUY, 0, 1, Reason.IOC_REMAINDER, book=0, index=5),
    ])


def test_process_and_process_all_agree() -> None:
    stream = _stream(1200, seed=8)
    a, b = _make(), _make()
    all_events = a.process_all(stream)
    buffer = np.zeros(len(all_events) + 10_000, dtype=EVENT_DTYPE)
    consumed, written = b.process(stream, buffer)
    assert (consumed, written) == (len(stream), len(all_events))
    assert as_dicts(buffer[:written]) == as_dicts(all_events)
    for bk in range(N_BOOKS):
        assert book_depth(a, bk) == book_depth(b, bk)
    assert a.accounts.tolist() == b.accounts.tolist()


def test_process_all_in_chunks_numbers_messages_per_call() -> None:
    stream = _stream(600, seed=9)
    whole = as_dicts(_make().process_all(stream))
    books, got = _make(), []
    for start in range(0, len(stream), 97):
        for e in as_dicts(books.process_all(stream[start:start + 97])):
            assert e["message_index"] < 97
            e["message_index"] += start
            got.append(e)
    assert got == whole
