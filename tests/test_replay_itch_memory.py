"""Bug 9: ``replay itch`` on a file naming thousands of stocks allocates by what is used.

The core's ``Books`` keeps a dense price window per book (24 bytes a level); with the
default 4,096 levels a crafted file of 4,000 stocks with two orders each cost ~425 MB. The
window now comes from the prices the books use, within a memory budget.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from rltrader._book import LEVEL_DTYPE, Books
from rltrader.core.messages import empty_messages
from rltrader.data import itch
from rltrader.tools.cli import main

N_STOCKS = 4000


def _many_stocks(path: Path, n: int, gap: int = 1) -> np.ndarray:
    """An ITCH file with ``n`` stocks, one bid and one ask each, ``gap`` ticks apart."""
    msgs = empty_messages(2 * n)
    msgs["book"] = np.repeat(np.arange(n), 2)
    msgs["op"] = 1  # LIMIT
    msgs["side"] = np.tile([1, -1], n)
    msgs["price"] = np.tile([1000, 1000 + gap], n)
    msgs["qty"] = 100
    msgs["order_id"] = np.arange(1, 2 * n + 1)
    msgs["timestamp"] = 34_200 * 10**9 + np.arange(2 * n)
    itch.write_itch(path, msgs, [f"S{i:05d}" for i in range(n)])
    return msgs


def test_level_bytes_match_the_core() -> None:
    assert itch._LEVEL_BYTES == LEVEL_DTYPE.itemsize


def test_fit_window_follows_the_prices_and_the_budget() -> None:
    assert itch.fit_window(0, 1) == 64
    assert itch.fit_window(100, 1) == 256           # 2 x 100 + 64, a multiple of 64
    assert itch.fit_window(10**6, 1) == itch.MAX_WINDOW
    many = itch.fit_window(10**6, 65_535)
    assert many % 64 == 0 and 65_535 * many * itch._LEVEL_BYTES <= max(
        itch.LEVEL_BUDGET, 65_535 * 64 * itch._LEVEL_BYTES)


def test_price_spans_per_book() -> None:
    spans = itch.PriceSpans()
    msgs = empty_messages(4)
    msgs["book"] = [0, 0, 2, 2]
    msgs["price"] = [10, 40, 7, 0]  # price 0 (a cancel) does not count
    spans.add(msgs)
    assert spans.widest == 30
    assert list(spans.low[[0, 2]]) == [10, 7] and list(spans.high[[0, 2]]) == [40, 7]


def _replay_peak(path: Path) -> int:
    """Peak traced bytes (numpy arrays included) of ``rltrader replay itch path``."""
    tracemalloc.start()
    try:
        assert main(["replay", "itch", str(path)]) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_replay_of_thousands_of_stocks_stays_small(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    few, many = tmp_path / "few.itch50", tmp_path / "many.itch50"
    _many_stocks(few, 10)
    _many_stocks(many, N_STOCKS)
    base = _replay_peak(few)  # read buffers, events buffer: the same for any file
    peak = _replay_peak(many)
    assert f"on {N_STOCKS:,} books" in capsys.readouterr().out
    # a few KB per stock used; the full window alone was 4096 x 24 bytes = 96 KiB per book
    per_stock = (peak - base) / (N_STOCKS - 10)
    assert per_stock < 4096, f"{per_stock:.0f} bytes per stock"


def test_rebuild_books_default_window_keeps_to_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "many.itch50"
    _many_stocks(path, N_STOCKS, gap=5000)  # wide books: the budget, not the prices, limits
    books, stats = itch.rebuild_books(itch.ItchReader(path), n_books=N_STOCKS)
    assert books.n_books == N_STOCKS and stats.messages == 2 * N_STOCKS
    assert books.level_array.nbytes <= itch.LEVEL_BUDGET
    # a narrow window only moves far prices to the overflow lists: the book is the same
    prices, qtys, _ = books.top_levels(1)
    assert (qtys[:, :, 0] == 100).all()
    assert (prices[:, 0, 0] == 1000).all() and (prices[:, 1, 0] == 6000).all()


def test_a_narrow_window_rebuilds_the_same_book(tmp_path: Path) -> None:
    path = tmp_path / "few.itch50"
    msgs = _many_stocks(path, 3, gap=3000)
    wide = Books(3)
    wide.process_all(msgs)
    narrow, _ = itch.rebuild_books(itch.ItchReader(path), n_books=3, window=64)
    for got, want in zip(narrow.top_levels(2), wide.top_levels(2), strict=True):
        assert np.array_equal(got, want)
