"""Matching-core throughput on the fixed workloads of ``rltrader.tools.workloads``.

==========================  ==========================================================
benchmark                   what is timed
==========================  ==========================================================
test_w1_batched             W1 (limit + cancel), 131,072 messages, one book,
                            one ``Books.process`` per 4,096 messages
test_w1_python_per_message  W1, 32,768 messages through ``OrderBook.limit`` /
                            ``OrderBook.cancel``, one Python call each
test_w2_batched             W2 (crossing inserts), 131,072 messages, one book
test_w3_batched             W3 (LOBSTER AAPL, 89,712 messages), one book
test_w3_512_books           W3 truncated to 2,048 messages x 512 books, interleaved
                            (1,048,576 messages), one ``Books`` of 512 books
==========================  ==========================================================

Every round starts from empty books built in ``setup`` (not timed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from rltrader import OrderBook  # noqa: E402
from rltrader.tools.workloads import SEED, limit_cancel, published  # noqa: E402

N_PER_CALL = 1 << 15


def _published(name: str) -> tuple[np.ndarray, int]:
    try:
        return published(name)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.mark.benchmark(group="W1 limit+cancel")
def test_w1_batched(run_batched):
    msgs, n_books = _published("W1")
    run_batched(msgs, n_books=n_books, rounds=20, workload="W1")


@pytest.mark.benchmark(group="W1 limit+cancel")
def test_w1_python_per_message(benchmark, record_messages):
    msgs = limit_cancel(N_PER_CALL, seed=SEED)
    columns = [msgs[f].tolist() for f in ("op", "side", "price", "qty", "order_id")]
    rows = list(zip(*columns, strict=True))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (OrderBook(capacity=1 << 12), rows), {}

    def target(book: Any, stream: list[tuple[int, int, int, int, int]]) -> None:
        limit = book.limit
        cancel = book.cancel
        for op, side, price, qty, order_id in stream:
            if op == 1:
                limit(side, price, qty, order_id)
            else:
                cancel(order_id)

    benchmark.pedantic(target, setup=setup, rounds=10, iterations=1, warmup_rounds=1)
    record_messages(benchmark, msgs, books=1, workload="W1", api="OrderBook.limit/cancel")


@pytest.mark.benchmark(group="W2 crossing inserts")
def test_w2_batched(run_batched):
    msgs, n_books = _published("W2")
    run_batched(msgs, n_books=n_books, rounds=20, workload="W2")


@pytest.mark.benchmark(group="W3 LOBSTER AAPL")
def test_w3_batched(run_batched):
    msgs, n_books = _published("W3")
    run_batched(msgs, n_books=n_books, rounds=20, workload="W3")


@pytest.mark.benchmark(group="W3 LOBSTER AAPL")
def test_w3_512_books(run_batched):
    msgs, n_books = _published("W3x512")
    run_batched(msgs, n_books=n_books, rounds=10, workload="W3x512", per_book=2048)
