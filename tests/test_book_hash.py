"""The order-id hash spreads the ids that feeds and the env use: sequential, strided by
powers of two (ids that carry a field in their high bits), the same ids in many books, and
random. Measured on the table itself: how far each entry sits from its home bucket."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader import ACCEPTED, BUY, GTC, LIMIT, Books
from rltrader.core.messages import empty_messages

N = 4096        # live orders; the table has 2 x N buckets (load 0.5)
BOOKS = 64


def _ids(pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """(order ids, books) of N orders."""
    k = np.arange(N, dtype=np.int64)
    if pattern == "sequential":
        return k + 1, np.zeros(N, np.int32)
    if pattern == "stride 2**32":
        return (k + 1) << 32, np.zeros(N, np.int32)
    if pattern == "stride 2**40":
        return (k + 1) << 40, np.zeros(N, np.int32)
    if pattern == "agent << 32 | n, many books":
        # each of BOOKS books holds the same N / BOOKS ids: agent in the high word
        per = N // BOOKS
        return ((k % per // 4 + 1) << 32) | (k % 4 + 1), (k // per).astype(np.int32)
    if pattern == "same ids in many books":
        per = N // BOOKS
        return k % per + 1, (k // per).astype(np.int32)
    rng = np.random.default_rng(0)
    return rng.integers(1, 2**63 - 1, N, dtype=np.int64), np.zeros(N, np.int32)


@pytest.mark.parametrize("pattern", ["sequential", "stride 2**32", "stride 2**40",
                                     "agent << 32 | n, many books",
                                     "same ids in many books", "random"])
def test_ids_spread_over_the_table(pattern: str) -> None:
    ids, book = _ids(pattern)
    books = Books(BOOKS, window=64, capacity=N)
    msgs = empty_messages(N)
    msgs["op"], msgs["side"], msgs["tif"] = LIMIT, BUY, GTC
    msgs["order_id"], msgs["book"] = ids, book
    msgs["price"], msgs["qty"] = 100, 1
    events = books.process_all(msgs)
    assert (events["kind"] == ACCEPTED).all() and events.size == N     # all rest
    books.check_integrity()
    table, orders = books.hash_array, books.order_array
    mask = table.size - 1
    assert table.size == 2 * N
    buckets = np.flatnonzero(table)
    slots = (table[buckets] & 0x7FFFFFFF).astype(np.int64) - 1
    homes = orders["hash"][slots].astype(np.int64) >> (33 - table.size.bit_length())
    distance = (buckets - homes) & mask
    # linear probing at load 0.5 with a random hash: mean distance 0.5, a few tens at most
    assert distance.mean() < 1.0, distance.mean()
    assert distance.max() < 40, distance.max()
    # and the homes cover the table (N random homes in 2 N buckets: 2 N (1 - e**-0.5),
    # about 0.79 N distinct), no pattern piling onto a few buckets
    assert np.unique(homes).size > 0.75 * N, np.unique(homes).size
