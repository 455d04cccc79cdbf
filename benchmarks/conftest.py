"""Shared set-up of the pytest-benchmark suite.

Run with ``pytest benchmarks/`` (``--benchmark-json=PATH`` to keep the numbers). Each
benchmark rebuilds its books in ``setup`` so that every round replays the same stream on
the same empty state, and reports the median time per message as
``extra_info["ns_per_message"]``. Nothing here imports ``rltrader`` at import time, so the
suite collects (and skips) when the compiled core is not built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

#: Messages per ``Books.process`` call in the batched benchmarks.
BATCH = 4096


def peak_live(msgs: np.ndarray, n_books: int, batch: int = BATCH) -> tuple[int, int]:
    """``(all books, one book)`` peak live orders of a stream, sampled every batch."""
    from rltrader import Books, empty_events
    from rltrader.tools.workloads import events_needed, replay

    books = Books(n_books)
    events = empty_events(events_needed(msgs, batch))
    peak_all = peak_one = 0
    for start in range(0, msgs.shape[0], batch):
        replay(books, msgs[start:start + batch], events, batch)
        peak_all = max(peak_all, books.live_orders())
        per_book = books.book_array["n_resting"].sum(axis=1)
        peak_one = max(peak_one, int(per_book.max()))
    return peak_all, peak_one


def _pow2(n: int) -> int:
    return 1 << max(10, int(n - 1).bit_length())


def record(benchmark: Any, msgs: np.ndarray, **info: Any) -> None:
    """Put the workload and the median ns per message into ``extra_info``."""
    from rltrader.tools.workloads import op_mix

    if benchmark.stats is None:  # --benchmark-disable: the body ran once, untimed
        return
    median_s = benchmark.stats.stats.median
    benchmark.extra_info.update(info)
    benchmark.extra_info["messages"] = int(msgs.shape[0])
    benchmark.extra_info["mix"] = op_mix(msgs)["shares"]
    benchmark.extra_info["ns_per_message"] = round(median_s * 1e9 / msgs.shape[0], 2)
    benchmark.extra_info["messages_per_second"] = round(msgs.shape[0] / median_s)


@pytest.fixture
def record_messages() -> Callable[..., None]:
    """:func:`record` as a fixture, for benchmarks that call ``benchmark.pedantic`` themselves."""
    return record


@pytest.fixture
def run_batched(benchmark: Any) -> Callable[..., None]:
    """Time ``replay`` of a stream on fresh books: one ``Books.process`` per ``batch``.

    The arena is sized to the stream's peak (so no growth is timed) and the events buffer
    is allocated once, outside the timed region.
    """
    from rltrader import Books, empty_events
    from rltrader.tools.workloads import events_needed, replay

    def run(msgs: np.ndarray, *, n_books: int = 1, batch: int = BATCH, window: int = 4096,
            rounds: int = 10, **info: Any) -> None:
        live_all, live_one = peak_live(msgs, n_books, batch)
        capacity = _pow2(live_all + live_all // 4)
        events = empty_events(events_needed(msgs, batch, live_one))
        written: list[int] = []

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (Books(n_books, window=window, capacity=capacity), msgs, events, batch), {}

        def target(books: Any, m: np.ndarray, ev: np.ndarray, b: int) -> None:
            written.append(replay(books, m, ev, b))

        benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)
        record(benchmark, msgs, books=n_books, batch=batch, window=window,
               events_per_message=round(written[-1] / msgs.shape[0], 3), **info)

    return run
