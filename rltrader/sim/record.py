"""What a simulated market day leaves behind, as plain numpy arrays.

:class:`Recording` holds

- ``samples``: the top of every book on a clock (every ``sample_every`` steps):
  ``t_ns`` (ns after midnight, shape ``(n,)``) and, shape ``(n, n_books)``, ``bid`` and
  ``ask`` (ticks, 0 when that side is empty), ``bid_qty``/``ask_qty`` (lots at the best
  level), ``last_price`` (ticks, 0 before the first trade) and ``volume`` (lots traded
  since the open);
- ``messages`` / ``events``: every message (``MESSAGE_DTYPE``) and event (``EVENT_DTYPE``) in
  processing order when the market was built with ``record.messages``; an event's
  ``message_index`` is the row of its message;
- ``parents``: one ``PARENT_DTYPE`` record per (book, parent order).

Derived series for analytics (:meth:`Recording.mid`, :meth:`Recording.spread`,
:meth:`Recording.depth`, :meth:`Recording.trades`) are float64 in ticks; multiply by
``tick_size`` for dollars. :meth:`Recording.save_npz` / :func:`load_npz` round-trip all of
it; :meth:`Recording.to_lobster` writes one book as LOBSTER message + orderbook files and
:meth:`Recording.market_data` hands one book to :mod:`rltrader.analysis.facts`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.core.constants import (
    EMPTY_ASK,
    EMPTY_BID,
    FILL,
    NS_PER_S,
)
from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE
from rltrader.data.lobster_writer import write_lobster
from rltrader.sim.market_data import MarketData, ParentOrders, Quotes, Trades

#: One parent order of an execution agent in one book.
PARENT_DTYPE = np.dtype(
    [
        ("book", np.int32),
        ("parent", np.int32),       # index in MarketConfig.parents
        ("side", np.int8),          # +1 buy, -1 sell
        ("qty", np.int64),          # parent size, lots
        ("executed", np.int64),     # lots filled
        ("arrival_mid", np.float64),  # mid at the start, ticks (nan: not started)
        ("end_mid", np.float64),    # mid at the end, ticks (nan: not ended)
        ("vwap", np.float64),       # fill VWAP incl. fees, ticks (nan: nothing filled)
        ("start_ns", np.int64),     # ns after midnight
        ("end_ns", np.int64),
    ]
)

SAMPLE_FIELDS = ("bid", "ask", "bid_qty", "ask_qty", "last_price", "volume")


#: Horizon of the returns behind a session's volatility, seconds: minutes keep the bid-ask
#: bounce, which dominates second-scale returns, out of the estimate.
VOLATILITY_HORIZON_S = 300.0


def session_volatility(mid: np.ndarray, step: int) -> np.ndarray:
    """Realised volatility of the session per book: ``sqrt(sum r^2)`` over non-overlapping
    log returns of ``step`` samples (a fraction; returns touching a NaN mid are skipped).

    ``mid`` is ``(samples, books)`` in ticks. A horizon of minutes keeps the bid-ask bounce,
    which dominates second-scale returns, out of the estimate.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.diff(np.log(mid[::step]), axis=0)
    return np.sqrt(np.nansum(r**2, axis=0))



def copy_records(records: np.ndarray) -> np.ndarray:
    """A copy of a structured array whose padding bytes are zero.

    ``ndarray.copy()`` of a dtype with padding (``MESSAGE_DTYPE``, ``EVENT_DTYPE``) copies
    field by field into fresh, uninitialised memory, so the padding of the copy is whatever
    was there: two equal recordings would not be equal bytes, nor their saved files. The
    fields go into zeroed memory instead (once per recording, not per step).
    """
    if records.dtype.names is None:
        return records.copy()
    out = np.zeros(records.shape, dtype=records.dtype)
    for name in records.dtype.names:
        out[name] = records[name]
    return out


def _write_npz(path: str | Path, arrays: dict[str, Any]) -> None:
    """``np.savez_compressed`` with a fixed entry time, so that the same arrays always give
    the same file bytes (numpy stamps each entry with the time of writing)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(value), allow_pickle=False)


@dataclass
class Samples:
    """Top of book of every book on a clock; see the module docstring for units."""

    t_ns: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    last_price: np.ndarray
    volume: np.ndarray


class Sampler:
    """Preallocated storage for ``capacity`` samples of ``n_books`` books."""

    def __init__(self, n_books: int, capacity: int) -> None:
        self.n = 0
        self.t_ns = np.zeros(capacity, dtype=np.int64)
        self.data = {name: np.zeros((capacity, n_books), dtype=np.int64)
                     for name in SAMPLE_FIELDS}
        self._prices = np.zeros((n_books, 2, 1), dtype=np.int64)
        self._qtys = np.zeros((n_books, 2, 1), dtype=np.int64)
        self._counts = np.zeros((n_books, 2, 1), dtype=np.int32)

    def sample(self, books, t_ns: int) -> None:
        """Append the current top of book (once per ``t_ns``)."""
        if self.n and self.t_ns[self.n - 1] == t_ns:
            return
        if self.n == self.t_ns.shape[0]:
            raise IndexError(f"the sampler holds {self.n} samples and is full")
        books.top_levels(1, self._prices, self._qtys, self._counts)
        i = self.n
        self.t_ns[i] = t_ns
        self.data["bid"][i] = self._prices[:, 0, 0]
        self.data["ask"][i] = self._prices[:, 1, 0]
        self.data["bid_qty"][i] = self._qtys[:, 0, 0]
        self.data["ask_qty"][i] = self._qtys[:, 1, 0]
        self.data["last_price"][i] = books.book_array["last_price"]
        self.data["volume"][i] = books.book_array["volume"]
        self.n += 1

    def samples(self) -> Samples:
        n = self.n
        return Samples(self.t_ns[:n].copy(), **{k: v[:n].copy() for k, v in self.data.items()})


@dataclass
class Recording:
    """A market day's record (see the module docstring)."""

    tick_size: float
    symbols: tuple[str, ...]
    copies: int
    samples: Samples | None
    messages: np.ndarray
    events: np.ndarray
    parents: np.ndarray

    def _need_samples(self) -> Samples:
        if self.samples is None:
            raise ValueError("no samples: build the market with record.sample_every > 0")
        return self.samples

    def mid(self) -> np.ndarray:
        """Mid price in ticks, float64 ``(samples, books)``; nan when a side is empty."""
        s = self._need_samples()
        both = (s.bid > 0) & (s.ask > 0)
        return np.where(both, 0.5 * (s.bid + s.ask), np.nan)

    def spread(self) -> np.ndarray:
        """Best ask minus best bid in ticks, float64 ``(samples, books)``; nan when a side
        is empty."""
        s = self._need_samples()
        return np.where((s.bid > 0) & (s.ask > 0), (s.ask - s.bid).astype(np.float64), np.nan)

    def depth(self) -> np.ndarray:
        """Lots at the best bid plus the best ask, float64 ``(samples, books)``."""
        s = self._need_samples()
        return (s.bid_qty + s.ask_qty).astype(np.float64)

    def trades(self, book: int) -> dict[str, np.ndarray]:
        """Fills of ``book`` in order: ``t_ns``, ``price`` (ticks), ``qty`` (lots) and
        ``sign`` (+1 when the taker bought, -1 when it sold)."""
        fills = self.events[(self.events["kind"] == FILL) & (self.events["book"] == book)]
        return {"t_ns": fills["timestamp"].copy(), "price": fills["price"].copy(),
                "qty": fills["qty"].copy(), "sign": fills["side"].astype(np.int8)}

    def save_npz(self, path: str | Path) -> None:
        """Write everything to one compressed ``.npz`` (``.npz`` is appended to a path
        without it). Equal recordings give byte-identical files."""
        arrays = {"tick_size": np.float64(self.tick_size), "symbols": np.array(self.symbols),
                  "copies": np.int64(self.copies), "messages": copy_records(self.messages),
                  "events": copy_records(self.events), "parents": copy_records(self.parents)}
        if self.samples is not None:
            arrays["t_ns"] = self.samples.t_ns
            arrays.update({name: getattr(self.samples, name) for name in SAMPLE_FIELDS})
        _write_npz(path, arrays)

    def to_lobster(self, book: int, message_path: str | Path, orderbook_path: str | Path,
                   levels: int = 10) -> int:
        """Write ``book``'s visible order flow as a LOBSTER message file and orderbook file
        (:func:`rltrader.data.lobster_writer.write_lobster`); returns the number of rows.
        Needs the event log (``record.messages``)."""
        if self.events.size == 0:
            raise ValueError("no event log: build the market with record.messages = true")
        units = self.tick_size * 10_000          # LOBSTER prices are $ x 10000
        if units < 1 or abs(units - round(units)) > 1e-9:
            raise ValueError(f"a tick of ${self.tick_size:g} is not a whole number of "
                             "LOBSTER price units ($0.0001)")
        return write_lobster(message_path, orderbook_path, self.events, book=book,
                             levels=levels, tick_size=round(units))

    def market_data(self, book: int, parent_books: range | None = None) -> MarketData:
        """``book``'s record as :class:`rltrader.analysis.facts.MarketData` for the stylized facts:
        the sampled quotes, one trade per aggressive message (its fills merged, at their
        VWAP, signed by the taker's side) and the parent orders of ``parent_books`` (default:
        ``book`` alone), each normalised by its own book's session volume and volatility."""
        s = self._need_samples()
        quotes = Quotes(s.t_ns, np.where(s.bid[:, book] > 0, s.bid[:, book], EMPTY_BID),
                        np.where(s.ask[:, book] > 0, s.ask[:, book], EMPTY_ASK),
                        s.bid_qty[:, book], s.ask_qty[:, book])
        trades = None
        fills = self.events[(self.events["kind"] == FILL) & (self.events["book"] == book)]
        if fills.size:
            starts = np.flatnonzero(np.r_[True, np.diff(fills["message_index"]) != 0])
            qty = np.add.reduceat(fills["qty"], starts)
            notional = np.add.reduceat(fills["price"] * fills["qty"], starts)
            trades = Trades(fills["timestamp"][starts], np.rint(notional / qty).astype(np.int64),
                            qty, fills["side"][starts])
        books = range(book, book + 1) if parent_books is None else parent_books
        return MarketData(quotes, trades, self._parent_orders(books),
                          name=f"{self.symbols[book // self.copies]} copy {book % self.copies}",
                          tick_size=self.tick_size)

    def _parent_orders(self, books: range) -> ParentOrders | None:
        done = self.parents[np.isin(self.parents["book"], books) & (self.parents["executed"] > 0)
                            & np.isfinite(self.parents["arrival_mid"])
                            & np.isfinite(self.parents["end_mid"])]
        if done.size == 0:
            return None
        s = self._need_samples()
        every = int(s.t_ns[1] - s.t_ns[0]) if s.t_ns.size > 1 else NS_PER_S
        session_vol = session_volatility(self.mid(), max(1, int(VOLATILITY_HORIZON_S * NS_PER_S
                                                                // every)))
        session_volume = s.volume[-1].astype(np.float64)
        b = done["book"]
        return ParentOrders(done["side"], done["executed"], done["start_ns"], done["end_ns"],
                            done["arrival_mid"], done["end_mid"], done["vwap"],
                            session_volume[b], session_vol[b])


def load_npz(path: str | Path) -> Recording:
    """Read a :meth:`Recording.save_npz` file."""
    with np.load(path) as f:
        samples = None
        if "t_ns" in f:
            samples = Samples(f["t_ns"], **{name: f[name] for name in SAMPLE_FIELDS})
        messages, events = f["messages"], f["events"]
        if messages.dtype != MESSAGE_DTYPE or events.dtype != EVENT_DTYPE:
            raise ValueError(f"{path}: messages/events do not have rltrader's dtypes")
        return Recording(tick_size=float(f["tick_size"]), symbols=tuple(f["symbols"].tolist()),
                         copies=int(f["copies"]), samples=samples, messages=messages,
                         events=events, parents=f["parents"])
