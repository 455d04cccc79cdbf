"""One streaming analytics engine for every source: bars, indicators and microstructure
features as the events arrive.

:class:`FeatureEngine` wraps the compiled kernel (``rltrader._analytics``): it owns the
output buffers, grows them when a call fills one, fills the indicator columns of closed
bars (TA-Lib, :mod:`rltrader.analytics.indicators`) and the book embedding of samples
(:mod:`rltrader.analytics.embedding`), and keeps recent history for the publishers.

Feed it the core's events (``process_events``: ``Books.process`` output of any source, a
simulated market's event log, the exchange's batches) or level-2 records
(``process_records``: ``MD_DTYPE``, from depth-diff feeds); on a live clock call
``flush(now_ns)`` to close bars and samples that ended with nothing new.

Conventions (docs/analytics.md has the table of every field):

- buckets are half-open ``[start, start + interval)``; a bar or sample closes when a record
  at or after its end arrives, or ``flush`` passes its end;
- a bar with no trade (after the book's first trade) repeats the previous close with volume
  0, as Binance's klines do; no bar before a book's first trade;
- a sample at ``t`` describes the bucket ``[t - sample, t)`` (its trades, its order-flow
  imbalance) and the book at ``t`` (after every record stamped before ``t``);
- prices are in ticks, quantities in lots, times in the source's ns.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

from rltrader._analytics import FeatureKernel, MdKind
from rltrader.core.messages import EVENT_DTYPE

MD_LEVEL = MdKind.MD_LEVEL
MD_DELTA = MdKind.MD_DELTA
MD_TRADE = MdKind.MD_TRADE
MD_CLEAR = MdKind.MD_CLEAR

DEPTH = 10          # levels per side in a sample's depth profile
EMBED = 4           # book-embedding components

#: A level-2 record: a level's new size (``MD_LEVEL``), a size change (``MD_DELTA``), a
#: trade (``MD_TRADE``, side = the aggressor's) or a cleared side (``MD_CLEAR``, side 0:
#: both). Side +1 is the bid (a buyer), -1 the ask.
MD_DTYPE = np.dtype([("timestamp", np.int64), ("price", np.int64), ("qty", np.int64),
                     ("book", np.int32), ("kind", np.int8), ("side", np.int8)], align=True)

_INDICATORS = ("sma", "ema", "rsi", "macd", "macd_signal", "macd_hist", "bb_upper",
               "bb_middle", "bb_lower", "atr")

#: A bar of one book and interval (units in the module docstring).
BAR_DTYPE = np.dtype(
    [("interval_ns", np.int64), ("t_open", np.int64), ("open", np.int64), ("high", np.int64),
     ("low", np.int64), ("close", np.int64), ("volume", np.int64), ("n_trades", np.int64),
     ("buy_volume", np.int64), ("quote_volume", np.float64), ("vwap", np.float64),
     ("session_vwap", np.float64)]
    + [(name, np.float64) for name in _INDICATORS]
    + [("book", np.int32), ("closed", np.int8)], align=True)

#: One book at one tick of the sample clock.
SAMPLE_DTYPE = np.dtype(
    [("t", np.int64), ("bid", np.int64), ("ask", np.int64), ("bid_qty", np.int64),
     ("ask_qty", np.int64), ("n_trades", np.int64), ("buy_volume", np.int64),
     ("sell_volume", np.int64), ("n_updates", np.int64), ("depth_bid", np.int64, (DEPTH,)),
     ("depth_ask", np.int64, (DEPTH,)), ("mid", np.float64), ("spread", np.float64),
     ("microprice", np.float64), ("imbalance_1", np.float64), ("imbalance_5", np.float64),
     ("imbalance_10", np.float64), ("ofi", np.float64), ("trade_sign_imbalance", np.float64),
     ("returns", np.float64), ("realized_vol", np.float64), ("kyle_lambda", np.float64),
     ("embedding", np.float64, (EMBED,)), ("book", np.int32), ("has_mid", np.int8)],
    align=True)

_sizes = FeatureKernel.record_sizes()
if (MD_DTYPE.itemsize, EVENT_DTYPE.itemsize, BAR_DTYPE.itemsize,
        SAMPLE_DTYPE.itemsize) != _sizes:
    raise ImportError(f"rltrader._analytics's records {_sizes} do not match the dtypes: "
                      "rebuild the extension")

_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_STATUS = {3: "book out of range", 4: "unknown kind", 5: "side must be +1 or -1 (MD_CLEAR: "
           "0 too)", 6: "quantity out of range (MD_LEVEL >= 0, MD_TRADE > 0)",
           7: "negative timestamp"}


def parse_interval(value: str | int) -> int:
    """``"100ms"``, ``"1s"``, ``"1m"``, ``"5m"``, ``"1h"``, ``"1d"`` or an int, as ns."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"an interval must be > 0 ns, got {value}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        for unit in sorted(_UNITS, key=len, reverse=True):
            number = text[:-len(unit)]
            if text.endswith(unit) and number.isascii() and number.isdigit() and int(number):
                return int(number) * _UNITS[unit]
    raise ValueError(f"an interval is a positive count of ns or a text like '100ms', '1s', "
                     f"'1m', '1h', got {value!r}")


def interval_name(ns: int) -> str:
    """The shortest name of ``ns`` (``60_000_000_000`` -> ``"1m"``), Binance's style."""
    for unit in ("d", "h", "m", "s", "ms", "us"):
        if ns % _UNITS[unit] == 0:
            return f"{ns // _UNITS[unit]}{unit}"
    return f"{ns}ns"


class Update(NamedTuple):
    """What one call closed: bars (``BAR_DTYPE``) and samples (``SAMPLE_DTYPE``), in
    time order."""

    bars: np.ndarray
    samples: np.ndarray


class FeatureEngine:
    """Bars, indicators and microstructure features of ``n_books`` books, streaming.

    Parameters
    ----------
    n_books : int
        Books (the ``book`` field of events and records).
    intervals : sequence of str or int
        Bar intervals (``"1s"``, ``"1m"``, ns ...), at most 8.
    sample : str or int
        The sample clock's step.
    window : int
        Samples behind ``realized_vol`` and ``kyle_lambda``.
    indicators : bool
        Fill the closed bars' indicator columns (needs ``ta-lib``).
    embedding : BookEmbedding, "default" or None
        Fill the samples' ``embedding`` (the shipped PCA model with ``"default"``).
    history : int
        Closed bars (per book and interval) and samples (per book) kept for
        :meth:`history` and :meth:`sample_history`.
    capacity : int
        Levels kept per side and book (features read the top 10).
    """

    def __init__(self, n_books: int = 1, intervals: Any = ("1s", "1m"), sample: Any = "1s",
                 *, window: int = 60, indicators: bool = True, embedding: Any = "default",
                 history: int = 10_000, capacity: int = 8192) -> None:
        self.intervals = tuple(parse_interval(v) for v in intervals)
        if len(set(self.intervals)) != len(self.intervals):
            raise ValueError(f"intervals repeat: {intervals}")
        self.sample_ns = parse_interval(sample)
        self.n_books = int(n_books)
        self.kernel = FeatureKernel(self.n_books, self.intervals, self.sample_ns, window,
                                    capacity)
        self._bars = np.zeros(1024, dtype=BAR_DTYPE)
        self._samples = np.zeros(max(1024, 4 * self.n_books), dtype=SAMPLE_DTYPE)
        self._open = np.zeros(1, dtype=BAR_DTYPE)
        self.indicators = None
        if indicators:
            from rltrader.analytics.indicators import BarIndicators
            self.indicators = BarIndicators()
        if isinstance(embedding, str) and embedding == "default":
            from rltrader.analytics.embedding import BookEmbedding
            embedding = BookEmbedding.default()
        self.embedding = embedding
        self._bar_history = {(b, iv): deque(maxlen=history) for b in range(self.n_books)
                             for iv in self.intervals}
        self._sample_history = [deque(maxlen=history) for _ in range(self.n_books)]
        self.events = 0         # events and records taken so far

    # ---- input ------------------------------------------------------------------------

    def process_events(self, events: np.ndarray) -> Update:
        """Take the core's events (``EVENT_DTYPE``, in the order the core wrote them)."""
        events = self._checked(events, EVENT_DTYPE, "events")
        return self._run(self.kernel.process_events, events)

    def process_records(self, records: np.ndarray) -> Update:
        """Take level-2 records (``MD_DTYPE``)."""
        records = self._checked(records, MD_DTYPE, "records")
        return self._run(self.kernel.process_records, records)

    def snapshot(self, t_ns: int, prices: np.ndarray, qtys: np.ndarray) -> Update:
        """Every book's top levels are now ``prices``/``qtys`` (``Books.top_levels``'s
        int64 ``(n_books, 2, L)`` layout), at ``t_ns``: one update per book (its order-flow
        imbalance against the previous one). For sources that show the book between
        batches but not their events (the batched env's step); deeper levels are
        forgotten."""
        prices = np.ascontiguousarray(prices, dtype=np.int64)
        qtys = np.ascontiguousarray(qtys, dtype=np.int64)
        if prices.shape != qtys.shape or prices.ndim != 3 or prices.shape[:2] != (
                self.n_books, 2):
            raise ValueError(f"prices and qtys must both be ({self.n_books}, 2, L), got "
                             f"{prices.shape} and {qtys.shape}")
        bars: list[np.ndarray] = []
        samples: list[np.ndarray] = []
        while True:
            status, nb, ns = self.kernel.snapshot(int(t_ns), prices, qtys, self._bars,
                                                  self._samples)
            self._take(bars, samples, nb, ns)
            if status == 0:
                break
            if status > 2:
                raise ValueError(f"snapshot at {t_ns}: {_STATUS[status]}")
            self._grow(status)
        self.events += self.n_books
        return self._finish(bars, samples)

    def flush(self, now_ns: int) -> Update:
        """The clock is at ``now_ns`` and nothing stamped before it is still to come: close
        the bars and samples that ended."""
        bars: list[np.ndarray] = []
        samples: list[np.ndarray] = []
        while True:
            status, nb, ns = self.kernel.flush(int(now_ns), self._bars, self._samples)
            self._take(bars, samples, nb, ns)
            if status == 0:
                break
            self._grow(status)
        return self._finish(bars, samples)

    # ---- state ------------------------------------------------------------------------

    def open_bar(self, book: int, interval: Any) -> np.void | None:
        """The bar in progress (``closed`` 0), or None before the book's first trade."""
        k = self.intervals.index(parse_interval(interval))
        if not self.kernel.open_bar(self._check_book(book), k, self._open):
            return None
        return self._open[0].copy()

    def top_levels(self, book: int, n: int = DEPTH) -> tuple[np.ndarray, np.ndarray]:
        """``(prices, qtys)``, int64 ``(2, n)``: side 0 bids, 1 asks, best first, 0 where
        missing."""
        return self.kernel.top_levels(self._check_book(book), int(n))

    def last_trade(self, book: int) -> tuple[int, int, int, int] | None:
        """``(t_ns, price, qty, sign)`` of the book's last trade, or None."""
        return self.kernel.last_trade(self._check_book(book))

    def history(self, book: int, interval: Any) -> np.ndarray:
        """The closed bars kept of ``book`` at ``interval``, oldest first."""
        rows = self._bar_history[(self._check_book(book), parse_interval(interval))]
        return np.array(rows, dtype=BAR_DTYPE) if rows else np.zeros(0, dtype=BAR_DTYPE)

    def sample_history(self, book: int) -> np.ndarray:
        """The samples kept of ``book``, oldest first."""
        rows = self._sample_history[self._check_book(book)]
        return np.array(rows, dtype=SAMPLE_DTYPE) if rows else np.zeros(0, dtype=SAMPLE_DTYPE)

    @property
    def counters(self) -> dict[str, int]:
        """``dropped_levels`` (past ``capacity``), ``inconsistent`` (more removed than a
        level held), ``unsupported`` (stop triggers), ``clock_jumps`` (gaps of over a
        million buckets skipped)."""
        return self.kernel.counters

    # ---- internals --------------------------------------------------------------------

    def _check_book(self, book: int) -> int:
        if not 0 <= int(book) < self.n_books:
            raise ValueError(f"book must be in [0, {self.n_books}), got {book}")
        return int(book)

    @staticmethod
    def _checked(array: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
            got = getattr(array, "dtype", type(array).__name__)
            raise TypeError(f"{name} must be a 1-D array of {dtype}, got {got}")
        return np.ascontiguousarray(array)

    def _grow(self, status: int) -> None:
        if status == 1:
            self._bars = np.zeros(2 * self._bars.shape[0], dtype=BAR_DTYPE)
        elif status == 2:
            self._samples = np.zeros(2 * self._samples.shape[0], dtype=SAMPLE_DTYPE)

    def _run(self, run: Any, array: np.ndarray) -> Update:
        bars: list[np.ndarray] = []
        samples: list[np.ndarray] = []
        start = 0
        while True:
            status, start, nb, ns = run(array, start, self._bars, self._samples)
            self._take(bars, samples, nb, ns)
            if status == 0:
                break
            if status > 2:
                rest = self._finish(bars, samples)   # what came before stays taken
                self.events += start
                raise ValueError(f"record {start}: {_STATUS[status]} "
                                 f"({array[start]!r}); the {start} before it were taken, "
                                 f"{rest.bars.size} bars and {rest.samples.size} samples "
                                 "closed on the way are in the history")
            self._grow(status)
        self.events += array.shape[0]
        return self._finish(bars, samples)

    def _take(self, bars: list[np.ndarray], samples: list[np.ndarray], nb: int,
              ns: int) -> None:
        """Copy out what a kernel call closed (the buffers are reused by the next)."""
        if nb:
            bars.append(self._bars[:nb].copy())
        if ns:
            samples.append(self._samples[:ns].copy())

    def _finish(self, bars: list[np.ndarray], samples: list[np.ndarray]) -> Update:
        if not bars and not samples:            # most calls of a live source close nothing
            return Update(_NO_BARS, _NO_SAMPLES)
        out_bars = _joined(bars, _NO_BARS)
        out_samples = _joined(samples, _NO_SAMPLES)
        if out_bars.size:
            if self.indicators is not None:
                self.indicators.update(out_bars)
            for row in out_bars:
                self._bar_history[(int(row["book"]), int(row["interval_ns"]))].append(row)
        if out_samples.size:
            if self.embedding is not None:
                out_samples["embedding"] = self.embedding.transform(
                    out_samples["depth_bid"], out_samples["depth_ask"])
            history = self._sample_history
            for row in out_samples:
                history[int(row["book"])].append(row)
        return Update(out_bars, out_samples)


_NO_BARS = np.zeros(0, dtype=BAR_DTYPE)
_NO_BARS.flags.writeable = False
_NO_SAMPLES = np.zeros(0, dtype=SAMPLE_DTYPE)
_NO_SAMPLES.flags.writeable = False


def _joined(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    if not parts:
        return empty
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


__all__ = ["BAR_DTYPE", "DEPTH", "EMBED", "MD_CLEAR", "MD_DELTA", "MD_DTYPE", "MD_LEVEL",
           "MD_TRADE", "SAMPLE_DTYPE", "FeatureEngine", "Update", "interval_name",
           "parse_interval"]
