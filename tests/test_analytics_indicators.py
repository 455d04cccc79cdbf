"""BarIndicators equals TA-Lib's batch functions over each whole series.

Several books and intervals are interleaved in close order, each series longer than the
ring (1024 bars); every indicator column must equal ``talib.SMA(close)`` … of its series
to rel 1e-9, with NaN in exactly the batch function's warm-up rows.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

talib = pytest.importorskip("talib")

from rltrader.analytics.engine import BAR_DTYPE  # noqa: E402
from rltrader.analytics.indicators import BarIndicators  # noqa: E402

SERIES = [(0, 1_000_000_000), (0, 60_000_000_000), (1, 1_000_000_000), (3, 5_000_000)]


def random_walk_bars(rng: np.random.Generator, book: int, interval_ns: int, n: int,
                     start: int) -> np.ndarray:
    """``n`` closed bars of a tick random walk; about 10% empty (o=h=l=c=previous close)."""
    bars = np.zeros(n, dtype=BAR_DTYPE)
    close = start + np.cumsum(rng.integers(-6, 7, n))
    empty = rng.random(n) < 0.1
    empty[0] = False
    for i in np.flatnonzero(empty):
        close[i] = close[i - 1]
    opens = np.concatenate([[start], close[:-1]])
    high = np.maximum(opens, close) + rng.integers(0, 5, n) * ~empty
    low = np.minimum(opens, close) - rng.integers(0, 5, n) * ~empty
    bars["book"], bars["interval_ns"], bars["closed"] = book, interval_ns, 1
    bars["t_open"] = np.arange(n) * interval_ns
    bars["open"], bars["high"], bars["low"], bars["close"] = opens, high, low, close
    return bars


def interleaved(seed: int = 7, n: int = 2600) -> np.ndarray:
    """The series' bars merged in a random order that keeps each series' own order."""
    rng = np.random.default_rng(seed)
    parts = [random_walk_bars(rng, b, iv, n - 300 * k, 10_000 + 5_000 * k)
             for k, (b, iv) in enumerate(SERIES)]
    labels = rng.permutation(np.repeat(np.arange(len(parts)), [p.size for p in parts]))
    out = np.empty(labels.size, dtype=BAR_DTYPE)
    for k, part in enumerate(parts):
        out[labels == k] = part
    return out


def batch(series: np.ndarray) -> dict[str, np.ndarray]:
    high, low, close = (series[f].astype(np.float64) for f in ("high", "low", "close"))
    macd = talib.MACD(close, 12, 26, 9)
    bands = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    return {"sma": talib.SMA(close, 20), "ema": talib.EMA(close, 20),
            "rsi": talib.RSI(close, 14), "macd": macd[0], "macd_signal": macd[1],
            "macd_hist": macd[2], "bb_upper": bands[0], "bb_middle": bands[1],
            "bb_lower": bands[2], "atr": talib.ATR(high, low, close, 14)}


def check_against_batch(bars: np.ndarray, atol_per_tick: float = 0.0,
                        longer_than: int = 1024) -> None:
    for book, interval_ns in SERIES:
        series = bars[(bars["book"] == book) & (bars["interval_ns"] == interval_ns)]
        assert series.size > longer_than
        atol = atol_per_tick * np.abs(series["close"]).max()
        for name, want in batch(series).items():
            got = series[name]
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=atol, err_msg=name)


def test_interleaved_series_equal_talib_batch() -> None:
    bars = interleaved()
    indicators = BarIndicators()
    for chunk in np.array_split(np.arange(bars.size), 37):   # uneven batches of rows
        view = bars[chunk]
        indicators.update(view)
        bars[chunk] = view
    check_against_batch(bars)
    assert indicators.bars_seen(*SERIES[0]) == 2600


def test_one_bar_at_a_time_fills_a_view_in_place() -> None:
    bars = interleaved(seed=3, n=1200)
    indicators = BarIndicators(capacity=64)
    for i in range(bars.size):
        indicators.update(bars[i:i + 1])       # a view: written through to bars
    check_against_batch(bars, longer_than=64)


def test_pickled_midway_reopens_on_the_ring_to_float_precision() -> None:
    """Handles are rebuilt from the last 1024 bars: their seeds' weight is ~1e-33."""
    bars = interleaved(seed=11)
    half = bars.size // 2
    indicators = BarIndicators()
    first = bars[:half]
    indicators.update(first)
    restored = pickle.loads(pickle.dumps(indicators))
    rest = bars[half:]
    restored.update(rest)
    # MACD's histogram crosses zero: compare it to the price scale (a few ulps of it)
    check_against_batch(bars, atol_per_tick=1e-12)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        BarIndicators(capacity=10)
    with pytest.raises(ValueError, match="BAR_DTYPE"):
        BarIndicators().update(np.zeros(3))
    BarIndicators().update(np.zeros(0, dtype=BAR_DTYPE))
