"""Binance depth-diff streams (spot and USD-M/coin-M futures) as the core's message array.

Input: websocket captures, one JSON object per line, optionally prefixed by the receive
time in ns (``<ns> <json>``, hftbacktest's raw format), either combined-stream wrappers
(``{"stream": ..., "data": {...}}``) or bare events. The reader uses:

- the REST depth snapshot ``{"lastUpdateId": L, "bids": [[price, qty], ...], "asks": ...}``
  (in the capture, or a separate file);
- ``depthUpdate`` diffs (``U`` first and ``u`` last update id, ``pu`` previous ``u`` on
  futures; ``b``/``a`` absolute level sizes, 0 deletes);
- ``trade`` events and ``bookTicker`` events (kept as arrays, see below).

Sequencing follows Binance's "how to manage a local order book correctly" for the market
the diffs come from (futures when they carry ``pu``): diffs are taken in stream order,
whether they arrived before or after the snapshot (they are buffered); diffs wholly older
than the snapshot are dropped and counted (:attr:`BinanceFeed.stale`; spot ``u <= L``,
futures ``u < L``); the first applied diff must straddle the snapshot (spot ``U <= L + 1 <=
u``, futures ``U <= L <= u``); each later one must follow on (spot ``U == previous u + 1``,
futures ``pu == previous u``). Anything else raises ``ValueError`` naming the line and the
update ids.

The book is an L2 book in the core: one synthetic order per level, set with
``CANCEL``/``LIMIT``/``REDUCE``/``REPLACE`` as described in :mod:`rltrader.data._levels`.
Timestamps are the events' ``E`` (exchange event time, ms) in ns; the snapshot's levels carry
the first applied diff's time. Trades are *not* applied to the book (the diffs already
contain their effect); they are returned in :attr:`BinanceFeed.trades`.
``bookTicker`` events are returned in :attr:`BinanceFeed.tickers` for checking the rebuilt
top of book (:func:`compare_tickers`).

Prices and sizes convert exactly to ticks and lots of ``tick_size``/``lot_size`` (decimal
strings); when not given, each is the coarsest grid every price (size) of the input lies on
(:func:`rltrader.data._decimal.infer_step`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from rltrader.core.constants import BUY, MAX_PRICE, MAX_QTY, SELL
from rltrader.data._decimal import DecimalGrid, infer_step
from rltrader.data._io import PathLike, Record, as_paths, iter_records, read_json
from rltrader.data._levels import LevelBook, depth_after

_first, _second = itemgetter(0), itemgetter(1)

#: One ``trade`` event: time, Binance trade id, price (ticks), size (lots), aggressor side.
TRADE_DTYPE = np.dtype([("timestamp", np.int64), ("trade_id", np.int64), ("price", np.int64),
                        ("qty", np.int64), ("side", np.int8)])

#: One ``bookTicker`` event: book update id and best bid/ask (ticks, lots).
TICKER_DTYPE = np.dtype([("update_id", np.int64), ("bid_price", np.int64),
                         ("bid_qty", np.int64), ("ask_price", np.int64),
                         ("ask_qty", np.int64)])


@dataclass(frozen=True)
class BinanceFeed:
    """Messages for one book rebuilt from a depth snapshot and its diff stream.

    Attributes
    ----------
    messages : ndarray of MESSAGE_DTYPE
        The snapshot's levels first, then the diffs' level changes, in stream order.
    update_id : ndarray of int64
        For each message, the ``u`` of its diff (``lastUpdateId`` for the snapshot's).
    snapshot_update_id, last_update_id : int
        The snapshot's ``lastUpdateId`` and the last applied diff's ``u``.
    futures : bool
        Whether the diffs carry ``pu`` (futures sequencing rules).
    diffs, stale : int
        Diffs applied, and diffs dropped as older than the snapshot.
    diff_update_ids : ndarray of int64
        ``u`` of every applied diff (the update ids at which the rebuilt book is defined).
    unchanged : int
        Level entries that repeated the size the book already had (no message).
    trades : ndarray of TRADE_DTYPE
    tickers : ndarray of TICKER_DTYPE
    tick_size, lot_size : DecimalGrid
    symbol : str or None
    """

    messages: np.ndarray
    update_id: np.ndarray
    snapshot_update_id: int
    last_update_id: int
    futures: bool
    diffs: int
    stale: int
    diff_update_ids: np.ndarray
    unchanged: int
    trades: np.ndarray
    tickers: np.ndarray
    tick_size: DecimalGrid
    lot_size: DecimalGrid
    symbol: str | None


@dataclass
class _Capture:
    """The events of a capture, split by kind, still as JSON (strings for numbers)."""

    snapshot: Record | None = None
    diffs: list[Record] = field(default_factory=list)
    trades: list[Record] = field(default_factory=list)
    tickers: list[Record] = field(default_factory=list)
    symbol: str | None = None
    paths: list[PathLike] = field(default_factory=list)  # read, for errors of them all

    def add(self, record: Record, symbol: str | None) -> None:
        obj = record.obj
        data = obj.get("data", obj) if isinstance(obj, dict) else None
        if not isinstance(data, dict):
            raise ValueError(f"{record.where}: not a JSON object")
        if "lastUpdateId" in data:
            if self.snapshot is not None:
                raise ValueError(f"{record.where}: a second depth snapshot "
                                 f"(the first is at {self.snapshot.where})")
            self.snapshot = Record(data, record.where, record.local_ns)
            return
        if "result" in data and "id" in data:  # a subscription reply
            return
        kind = data.get("e")
        if kind is None and "u" in data and "b" in data and "a" in data:
            kind = "bookTicker"  # spot book tickers have no event type
        if kind not in ("depthUpdate", "trade", "bookTicker"):
            raise ValueError(f"{record.where}: unsupported event {str(data)[:80]}")
        product = data.get("s")
        if product is not None and product != (symbol or self.symbol):
            if symbol is not None:
                return
            if self.symbol is not None:
                raise ValueError(f"{record.where}: a second symbol {product!r} after "
                                 f"{self.symbol!r}: pass symbol to choose one")
            self.symbol = product
        target = {"depthUpdate": self.diffs, "trade": self.trades, "bookTicker": self.tickers}
        target[kind].append(Record(data, record.where, record.local_ns))

    def values(self, column: int) -> set[str]:
        """Every distinct price (``column`` 0) or size (1) string of the capture."""
        assert self.snapshot is not None
        pick = _first if column == 0 else _second
        seen: set[str] = set()
        for levels in (self.snapshot.obj["bids"], self.snapshot.obj["asks"]):
            seen.update(map(pick, levels))
        for r in self.diffs:
            seen.update(map(pick, r.obj["b"]))
            seen.update(map(pick, r.obj["a"]))
        seen.update(r.obj["pq"[column]] for r in self.trades)
        seen.update(r.obj[key] for r in self.tickers for key in ("ba", "BA")[column])
        return seen


def _names(paths: Sequence[PathLike]) -> str:
    """The files of an error that no one line of them explains, for its message."""
    return ", ".join(os.fspath(p) for p in paths) or "the input"


def _read_capture(paths: Sequence[PathLike], snapshot: PathLike | None,
                  symbol: str | None) -> _Capture:
    capture = _Capture(paths=[*([snapshot] if snapshot is not None else []), *paths])
    if snapshot is not None:
        capture.add(Record(read_json(snapshot), str(snapshot), None), symbol)
    for path in paths:
        for record in iter_records(path):
            try:
                capture.add(record, symbol)
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{record.where}: malformed event ({exc!r})") from None
    if capture.snapshot is None:
        raise ValueError(f"{_names(paths)}: no depth snapshot (lastUpdateId) in the input: "
                         "pass snapshot=")
    if symbol is not None:
        capture.symbol = symbol
    return capture


def _levels(pairs: Any, side: int, prices: DecimalGrid, sizes: DecimalGrid
            ) -> list[tuple[int, int, int]]:
    """``[[price, qty], ...]`` strings as ``(side, ticks, lots)``."""
    return list(zip(repeat(side), prices.units_list(map(_first, pairs)),
                    sizes.units_list(map(_second, pairs)), strict=False))


class _Sequencer:
    """Binance's update-id rules: which diffs apply, and that they follow on."""

    def __init__(self, last_update_id: int, futures: bool) -> None:
        self.snapshot_id = last_update_id
        self.futures = futures
        self.previous: int | None = None
        self.stale = 0

    def accept(self, first: int, last: int, previous: int | None) -> bool:
        """Whether to apply the diff ``[first, last]``; raises on a gap."""
        snap = self.snapshot_id
        if self.previous is None:
            if last < snap or (last == snap and not self.futures):
                self.stale += 1
                return False
            target = snap if self.futures else snap + 1
            if not first <= target <= last:
                raise ValueError(f"first diff after the snapshot does not straddle it: "
                                 f"U={first} u={last}, lastUpdateId={snap}")
        elif self.futures and previous != self.previous:
            raise ValueError(f"update id gap: pu={previous} but the previous diff ended at "
                             f"u={self.previous} (this diff U={first} u={last})")
        elif not self.futures and first != self.previous + 1:
            raise ValueError(f"update id gap: U={first} but the previous diff ended at "
                             f"u={self.previous} (expected U={self.previous + 1})")
        self.previous = last
        return True


def read_feed(
    paths: PathLike | Sequence[PathLike],
    *,
    snapshot: PathLike | None = None,
    tick_size: str | None = None,
    lot_size: str | None = None,
    symbol: str | None = None,
    book: int = 0,
) -> BinanceFeed:
    """Read a Binance depth snapshot, its diff stream, trades and book tickers.

    Parameters
    ----------
    paths : path-like or sequence of them
        Capture files in stream order (JSON lines, optional ``<ns> `` prefix; plain or gzip).
    snapshot : path-like, optional
        A REST depth snapshot file, when the captures do not contain one.
    tick_size, lot_size : str, optional
        Price and size steps as decimal strings; inferred from the data when None.
    symbol : str, optional
        Keep only this symbol's events; when None, a second symbol raises.
    book : int
        Value of the messages' ``book`` field.

    Raises
    ------
    ValueError
        Naming the file and line: bad JSON, a missing field, an update-id gap, a value off
        the tick/lot grid, no snapshot or two of them.
    """
    capture = _read_capture(as_paths(paths), snapshot, symbol)
    snap = capture.snapshot
    assert snap is not None
    try:
        prices = DecimalGrid(tick_size or infer_step(capture.values(0)), "price", MAX_PRICE)
        sizes = DecimalGrid(lot_size or infer_step(capture.values(1)), "size", MAX_QTY)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{_names(capture.paths)}: malformed price or size ({exc})"
                         ) from None
    futures = any("pu" in r.obj for r in capture.diffs)
    sequencer = _Sequencer(int(snap.obj["lastUpdateId"]), futures)
    levels = LevelBook()
    try:
        seeds = (_levels(snap.obj["bids"], int(BUY), prices, sizes)
                 + _levels(snap.obj["asks"], int(SELL), prices, sizes))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{snap.where}: bad snapshot ({exc})") from None
    applied: list[int] = []
    for record in capture.diffs:
        diff = record.obj
        try:
            first, last = int(diff["U"]), int(diff["u"])
            if not sequencer.accept(first, last, diff.get("pu")):
                continue
            if not applied:
                levels.update(seeds, int(diff["E"]) * 1_000_000, sequencer.snapshot_id)
            changes = (_levels(diff["b"], int(BUY), prices, sizes)
                       + _levels(diff["a"], int(SELL), prices, sizes))
            levels.update(changes, int(diff["E"]) * 1_000_000, last)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{record.where}: {detail}") from None
        applied.append(last)
    if not applied:
        levels.update(seeds, 0, sequencer.snapshot_id)
    messages, update_id = levels.to_array(book)
    return BinanceFeed(
        messages=messages, update_id=update_id, snapshot_update_id=sequencer.snapshot_id,
        last_update_id=applied[-1] if applied else sequencer.snapshot_id, futures=futures,
        diffs=len(applied), stale=sequencer.stale,
        diff_update_ids=np.array(applied, dtype=np.int64), unchanged=levels.unchanged,
        trades=_trades(capture.trades, prices, sizes),
        tickers=_tickers(capture.tickers, prices, sizes),
        tick_size=prices, lot_size=sizes, symbol=capture.symbol,
    )


def _table(records: list[Record], dtype: np.dtype, row: Any) -> np.ndarray:
    rows = []
    for record in records:
        try:
            rows.append(row(record.obj))
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{record.where}: {detail}") from None
    try:
        return np.array(rows, dtype=dtype) if rows else np.zeros(0, dtype=dtype)
    except OverflowError:
        raise ValueError(f"{records[0].where.split(': ')[0]}: a time or id does not fit "
                         "int64") from None


def _trades(records: list[Record], prices: DecimalGrid, sizes: DecimalGrid) -> np.ndarray:
    # "m": the buyer is the maker, so the seller is the aggressor.
    return _table(records, TRADE_DTYPE, lambda t: (
        int(t["T"]) * 1_000_000, int(t["t"]), prices.units(t["p"]), sizes.units(t["q"]),
        int(SELL) if t["m"] else int(BUY)))


def _tickers(records: list[Record], prices: DecimalGrid, sizes: DecimalGrid) -> np.ndarray:
    return _table(records, TICKER_DTYPE, lambda t: (
        int(t["u"]), prices.units(t["b"]), sizes.units(t["B"]), prices.units(t["a"]),
        sizes.units(t["A"])))


@dataclass(frozen=True)
class TickerCheck:
    """Result of :func:`compare_tickers`: how many ``bookTicker`` events could be checked
    (their update id is one at which the rebuilt book is defined) and those that differ."""

    checked: int
    mismatched: np.ndarray  # TICKER_DTYPE rows whose best bid/ask differ from the book's
    rebuilt: np.ndarray  # TICKER_DTYPE: the rebuilt book at each mismatched update id


def compare_tickers(feed: BinanceFeed, window: int = 4096) -> TickerCheck:
    """Replay ``feed`` and compare the best bid/ask with every checkable ``bookTicker``.

    The rebuilt book is defined at the snapshot's ``lastUpdateId`` and at each applied
    diff's ``u``; a ticker with one of those update ids must show exactly the rebuilt best
    bid and ask (price and size). Tickers between those ids are not checkable. ``window``
    is the replay book's dense price window in ticks (speed only, never the result).
    """
    defined = np.union1d(feed.diff_update_ids, [feed.snapshot_update_id])
    tickers = np.sort(feed.tickers[np.isin(feed.tickers["update_id"], defined)],
                      order="update_id")
    prices, qtys = depth_after(feed.messages, feed.update_id, tickers["update_id"], 1,
                               window=window)
    rebuilt = np.zeros(tickers.shape[0], dtype=TICKER_DTYPE)
    rebuilt["update_id"] = tickers["update_id"]
    rebuilt["bid_price"], rebuilt["ask_price"] = prices[:, 0, 0], prices[:, 1, 0]
    rebuilt["bid_qty"], rebuilt["ask_qty"] = qtys[:, 0, 0], qtys[:, 1, 0]
    differ = rebuilt != tickers
    return TickerCheck(checked=int(tickers.shape[0]), mismatched=tickers[differ],
                       rebuilt=rebuilt[differ])
