"""One ``Books`` is single-threaded: a call while another thread's call runs raises
RuntimeError (it once raced the running kernel: segfaults, hangs, corrupt books)."""

from __future__ import annotations

import threading
import time

import numpy as np
from _scenario import messages, msg

from rltrader import BUY, CANCEL, EVENT_DTYPE, LIMIT, SELL, Books

BUSY = "in use by another thread"


def _batch(first_id: int, n: int) -> np.ndarray:
    """``n`` resting limits (the arena must grow) then cancels of all of them."""
    adds = [msg(LIMIT, first_id + i, BUY if i % 2 else SELL, 1000 + (i % 50) * (-1 if i % 2
            else 1) + (0 if i % 2 else 1), 1 + i % 5) for i in range(n)]
    cancels = [msg(CANCEL, first_id + i) for i in range(n)]
    return messages(*adds, *cancels)


def test_two_threads_on_one_books_never_crash() -> None:
    books = Books(window=128, capacity=8)
    errors: list[BaseException] = []
    done: list[int] = [0, 0]
    stop = time.monotonic() + 1.5

    def hammer(t: int) -> None:
        events = np.zeros(1 << 17, dtype=EVENT_DTYPE)
        k = 0
        while time.monotonic() < stop:
            k += 1
            try:
                # ids per thread and round: a batch that ran leaves nothing behind
                books.process(_batch((t * 1_000_000 + k) * 10_000, 4096), events)
                books.top_levels(5)
                books.level_queue(0, BUY, 999)
                books._resize_arena(books.capacity + 1)
                done[t] += 1
            except RuntimeError as e:
                errors.append(e)
            except BaseException as e:    # pragma: no cover - what the test guards against
                errors.append(e)
                raise

    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert all(isinstance(e, RuntimeError) and BUSY in str(e) for e in errors), errors
    assert sum(done) > 0
    # every batch that ran did so whole: its cancels removed all its orders
    assert books.live_orders() == 0
    books.check_integrity()


def test_a_call_while_busy_raises_and_changes_nothing() -> None:
    # deterministic: a second thread calls while the first is inside a long nogil batch
    books = Books(window=128, capacity=1 << 16)
    big = _batch(1, 200_000)
    events = np.zeros(len(big) + 16, dtype=EVENT_DTYPE)
    started = threading.Event()
    result: list[object] = []

    def long_call() -> None:
        started.set()
        result.append(books.process(big, events))

    th = threading.Thread(target=long_call)
    th.start()
    started.wait()
    seen = []
    while th.is_alive():
        try:
            books.process(messages(msg(LIMIT, 999_999_999, SELL, 5000, 1)),
                          np.zeros(8, dtype=EVENT_DTYPE))
            seen.append("ran")
        except RuntimeError as e:
            assert BUSY in str(e)
            seen.append("busy")
    th.join()
    assert result == [(len(big), len(big))]
    ran = seen.count("ran")
    assert books.live_orders() == min(ran, 1)     # the extra order, when it ran
    books.check_integrity()
