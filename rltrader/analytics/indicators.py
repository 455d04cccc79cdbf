"""Technical indicators of closed bars, by TA-Lib's streaming API.

:class:`BarIndicators` fills the indicator columns of ``BAR_DTYPE`` rows
(docs/analytics.md) as bars close, per ``(book, interval_ns)`` series:

===========================================  ==========================================
columns                                      TA-Lib (defaults), inputs
===========================================  ==========================================
``sma``                                      ``SMA(close, 20)``
``ema``                                      ``EMA(close, 20)``
``rsi``                                      ``RSI(close, 14)``
``macd``, ``macd_signal``, ``macd_hist``     ``MACD(close, 12, 26, 9)``
``bb_upper``, ``bb_middle``, ``bb_lower``    ``BBANDS(close, 20, 2, 2, SMA)``
``atr``                                      ``ATR(high, low, close, 14)``
===========================================  ==========================================

Prices are ticks (int64) and enter TA-Lib as float64 (exact below 2**53). A value is NaN
in the same warm-up rows as the batch function's over the series (``talib.SMA(close)`` …).

How. ``ta-lib`` >= 0.8's ``talib.stream`` opens a *handle* on a history and carries it
forward one bar at a time (O(1): about 0.2 µs a handle, 3 µs a bar for all six with this
module's Python around them); every value it produces is bit-identical to the batch
function's at the same bar. A series keeps a ring of its last ``capacity`` bars' high, low
and close. A handle is opened on the ring as soon as it holds the indicator's warm-up
(``lookback + 1`` bars: 34 for MACD, the longest), when the ring still holds the whole
series, so from then on the values *equal* the batch function's.

The ring matters again when handles are rebuilt from it: they cannot be pickled, so a
pickled (or copied) ``BarIndicators`` keeps its rings and reopens its handles on them.
For a series longer than the ring, the reopened handles start from the ring's first bar
rather than the series' first, which is still exact to float precision:

- SMA and Bollinger bands look at the last 20 closes only; the ring holds them.
- EMA, MACD (EMA 12, 26 and 9), RSI and ATR (Wilder's smoothing) are exponential
  filters ``s_t = (1 - alpha) s_{t-1} + alpha x_t``. Unrolled, the value after ``n`` bars
  is a weighted sum of those bars plus the seed (the mean of the first ``period`` bars of
  the history) with weight ``(1 - alpha)^n``; a different seed changes the value by that
  weight times the seeds' difference. The slowest filter here is MACD's slow EMA
  (``alpha = 2/27``; after its signal line's warm-up ``n`` >= 1024 - 34):
  ``(25/27)^990 ≈ 1e-33``, and Wilder's ``(13/14)^1009 ≈ 1e-33``. Both are far below
  float64's 1e-16, so the values agree with the whole series' to rounding (a few ulps of
  the price: the filters forget rounding errors the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import talib
from talib import abstract
from talib import stream as ta_stream

#: The indicator columns of ``BAR_DTYPE``, in the order :class:`BarIndicators` fills them.
INDICATOR_FIELDS = ("sma", "ema", "rsi", "macd", "macd_signal", "macd_hist",
                    "bb_upper", "bb_middle", "bb_lower", "atr")

# (TA-Lib function, inputs "c" close or "hlc", parameters, first column in INDICATOR_FIELDS,
# number of outputs)
_SPECS: tuple[tuple[str, str, dict[str, Any], int, int], ...] = (
    ("SMA", "c", {"timeperiod": 20}, 0, 1),
    ("EMA", "c", {"timeperiod": 20}, 1, 1),
    ("RSI", "c", {"timeperiod": 14}, 2, 1),
    ("MACD", "c", {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}, 3, 3),
    ("BBANDS", "c", {"timeperiod": 20, "nbdevup": 2.0, "nbdevdn": 2.0, "matype": 0}, 6, 3),
    ("ATR", "hlc", {"timeperiod": 14}, 9, 1),
)


def _lookback(name: str, params: dict[str, Any]) -> int:
    function = abstract.Function(name)  # type: ignore[attr-defined]  # not in its .pyi
    function.parameters = params
    return int(function.lookback)


#: Bars before each indicator's first value (TA-Lib's lookback), in ``_SPECS`` order.
_LOOKBACKS = tuple(_lookback(name, params) for name, _, params, _, _ in _SPECS)
_OPENERS: tuple[Callable[..., Any], ...] = tuple(getattr(ta_stream, name)
                                                 for name, *_ in _SPECS)
MIN_CAPACITY = 64
_NAN = float("nan")


class _Series:
    """One (book, interval) series: the ring of its last bars and its stream handles."""

    __slots__ = ("high", "low", "close", "n", "handles")

    def __init__(self, capacity: int) -> None:
        self.high = np.empty(capacity)
        self.low = np.empty(capacity)
        self.close = np.empty(capacity)
        self.n = 0                                 # bars seen since the series started
        self.handles: list[Any] = [None] * len(_SPECS)

    def window(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ring's bars, oldest first (copies)."""
        capacity = self.close.shape[0]
        kept, end = min(self.n, capacity), self.n % capacity
        order = np.arange(end - kept, end) % capacity
        return self.high[order], self.low[order], self.close[order]

    def open_handles(self) -> list[int]:
        """Open every handle whose warm-up the ring holds and that is not open yet; the
        indices of those opened."""
        kept = min(self.n, self.close.shape[0])
        window = None
        opened = []
        for j, ((_, inputs, params, _, _), lookback) in enumerate(zip(_SPECS, _LOOKBACKS,
                                                                        strict=True)):
            if self.handles[j] is not None or kept <= lookback:
                continue
            if window is None:
                window = self.window()
            args = window if inputs == "hlc" else window[2:]
            try:
                self.handles[j] = _OPENERS[j](*args, **params)
            except talib.InsufficientHistory:   # a seeding that wants more: next bar
                continue
            opened.append(j)
        return opened

    def push(self, high: float, low: float, close: float) -> list[float]:
        """Add a closed bar; its 10 indicator values (:data:`INDICATOR_FIELDS` order, NaN
        where a handle is still warming up)."""
        slot = self.n % self.close.shape[0]
        self.high[slot], self.low[slot], self.close[slot] = high, low, close
        self.n += 1
        handles = self.handles
        if None not in handles:             # warmed up: the _SPECS order, unrolled
            sma, ema, rsi, macd, bands, atr = handles
            m, b = macd.update(close), bands.update(close)
            return [sma.update(close), ema.update(close), rsi.update(close), m[0], m[1],
                    m[2], b[0], b[1], b[2], atr.update(high, low, close)]
        fresh = self.open_handles()
        out = [_NAN] * len(INDICATOR_FIELDS)
        for j, (_, inputs, _, column, width) in enumerate(_SPECS):
            handle = handles[j]
            if handle is None:
                continue
            if j in fresh:                  # opened on a history ending with this bar
                value = handle.value
            elif inputs == "c":
                value = handle.update(close)
            else:
                value = handle.update(high, low, close)
            out[column:column + width] = value if width > 1 else (value,)
        return out


class BarIndicators:
    """TA-Lib indicators of closed bars, per ``(book, interval_ns)`` (module docstring).

    Parameters
    ----------
    capacity : int
        Bars kept per series (a ring of high, low and close) to open and, after a pickle
        or copy, reopen its TA-Lib handles; at least ``MIN_CAPACITY`` (64). 1024 makes
        reopened handles exact to float precision (module docstring).

    Examples
    --------
    >>> ind = BarIndicators()
    >>> ind.update(closed_bars)          # BAR_DTYPE rows in close order, filled in place
    """

    def __init__(self, capacity: int = 1024) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) \
                or capacity < MIN_CAPACITY:
            raise ValueError(f"capacity must be an int >= {MIN_CAPACITY} (the longest "
                             f"warm-up, MACD's, is {max(_LOOKBACKS) + 1} bars), "
                             f"got {capacity!r}")
        self.capacity = int(capacity)
        self._series: dict[tuple[int, int], _Series] = {}
        self._dtype: np.dtype | None = None

    def update(self, bars: np.ndarray) -> None:
        """Fill the indicator columns of closed ``bars`` in place.

        Parameters
        ----------
        bars : ndarray of BAR_DTYPE, 1-D
            Closed bars of any books and intervals, in close order (each series' bars in
            time order, each bar given once). Their ``high``, ``low`` and ``close`` (ticks)
            advance their series; :data:`INDICATOR_FIELDS` are overwritten.
        """
        if not isinstance(bars, np.ndarray) or bars.ndim != 1:
            raise ValueError(f"bars must be a 1-D BAR_DTYPE array, got {bars!r:.80}")
        if bars.dtype is not self._dtype:       # checked once per dtype
            names = bars.dtype.names or ()
            missing = [f for f in ("book", "interval_ns", "high", "low", "close",
                                   *INDICATOR_FIELDS) if f not in names]
            if missing:
                raise ValueError(f"bars must be a 1-D BAR_DTYPE array (missing fields "
                                 f"{missing})")
            self._dtype = bars.dtype
        if bars.shape[0] == 0:
            return
        if not bars.flags.writeable:
            raise ValueError("bars must be writeable (the indicator columns are filled "
                             "in place)")
        rows: list[list[float]] = []
        keys = zip(bars["book"].tolist(), bars["interval_ns"].tolist(), strict=True)
        prices = zip(bars["high"].astype(np.float64).tolist(),
                     bars["low"].astype(np.float64).tolist(),
                     bars["close"].astype(np.float64).tolist(), strict=True)
        series_of = self._series
        for key, (high, low, close) in zip(keys, prices, strict=True):
            series = series_of.get(key)
            if series is None:
                series = series_of[key] = _Series(self.capacity)
            rows.append(series.push(high, low, close))
        out = np.array(rows, dtype=np.float64)
        for j, name in enumerate(INDICATOR_FIELDS):
            bars[name] = out[:, j]

    def bars_seen(self, book: int, interval_ns: int) -> int:
        """Closed bars of the series given to :meth:`update` so far (0 if none)."""
        series = self._series.get((int(book), int(interval_ns)))
        return 0 if series is None else series.n

    def reset(self) -> None:
        """Forget every series."""
        self._series.clear()

    # TA-Lib handles cannot be pickled: keep the rings and reopen the handles on them.
    def __getstate__(self) -> dict[str, Any]:
        rings = {key: (s.n, *s.window()) for key, s in self._series.items()}
        return {"capacity": self.capacity, "rings": rings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.capacity = state["capacity"]
        self._series = {}
        self._dtype = None
        for key, (n, high, low, close) in state["rings"].items():
            series = self._series[key] = _Series(self.capacity)
            kept = high.shape[0]
            # lay the kept bars out where push would have put them
            slots = np.arange(n - kept, n) % self.capacity
            series.high[slots], series.low[slots], series.close[slots] = high, low, close
            series.n = n
            series.open_handles()
