"""The benchmark streams are what their docstrings say (run with ``pytest benchmarks``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from rltrader import FILL, REJECTED, Books, empty_events  # noqa: E402
from rltrader.tools.workloads import (  # noqa: E402
    crossing_inserts,
    events_needed,
    interleave,
    limit_cancel,
    lobster_aapl,
    op_mix,
    replay,
)


def test_seeded_streams_are_bit_identical():
    assert limit_cancel(5000, n_books=3, seed=7).tobytes() == limit_cancel(
        5000, n_books=3, seed=7).tobytes()
    assert crossing_inserts(5000, seed=7).tobytes() == crossing_inserts(5000, seed=7).tobytes()
    assert limit_cancel(5000, seed=7).tobytes() != limit_cancel(5000, seed=8).tobytes()


@pytest.mark.parametrize("n_books", [1, 4])
def test_w1_half_limits_half_cancels_never_rejected_never_trades(n_books):
    msgs = limit_cancel(40_000, n_books=n_books, seed=1)
    shares = op_mix(msgs)["shares"]
    assert set(shares) == {"LIMIT GTC", "CANCEL"}
    # about half, less the ~500 resting orders per book built up at the start
    assert 0.45 < shares["CANCEL"] < 0.5
    books = Books(n_books)
    events = books.process_all(msgs)
    assert not np.any(events["kind"] == REJECTED)
    assert not np.any(events["kind"] == FILL)
    counts = op_mix(msgs)["counts"]
    assert books.live_orders() == counts["LIMIT GTC"] - counts["CANCEL"]
    assert np.all(np.abs(books.book_array["n_resting"].sum(axis=1) - 500) < 150)


def test_w2_about_half_cross_and_the_book_stays_bounded():
    msgs = crossing_inserts(60_000, seed=1)
    assert np.all(msgs["side"][::2] == 1) and np.all(msgs["side"][1::2] == -1)
    books = Books(1)
    events = books.process_all(msgs)
    fills = events[events["kind"] == FILL]
    crossed = np.unique(fills["message_index"]).size / msgs.shape[0]
    assert 0.45 < crossed < 0.55
    assert books.live_orders() < 3_000
    assert np.ptp(msgs["price"]) <= 2 * 8 + 1


def test_w3_mix():
    try:
        msgs = lobster_aapl()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert op_mix(msgs)["counts"] == {"LIMIT GTC": 44256, "CANCEL": 40932, "REDUCE": 469,
                                       "EXECUTE": 4055}


def test_interleave_round_robin():
    src = limit_cancel(100, seed=2)
    out = interleave(src, 8, per_book=10)
    assert out.shape[0] == 80
    assert out["book"][:8].tolist() == list(range(8))
    for b in range(8):
        mine = out[out["book"] == b]
        np.testing.assert_array_equal(mine["order_id"], src["order_id"][:10])
    assert interleave(src, 8, max_messages=50).shape[0] == 48
    assert interleave(src, 8, per_book=3, max_messages=50).shape[0] == 24


def test_replay_handles_a_small_event_buffer():
    msgs = crossing_inserts(5000, seed=3)
    whole = Books(1).process_all(msgs)
    # smaller than one batch's events: process returns early and replay resumes
    events = empty_events(2500)
    assert events.shape[0] < events_needed(msgs, 4096)
    assert replay(Books(1), msgs, events, batch=4096) == whole.shape[0]
