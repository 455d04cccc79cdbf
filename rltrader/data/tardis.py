"""tardis.dev CSV order-book files as the core's message array.

Two of tardis.dev's normalised CSV data types (plain or gzip):

``incremental_book_L2``
    ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``, one row
    per level change: ``amount`` is the level's new total size (0 deletes it), ``side`` is
    ``bid`` or ``ask``, times are µs since the Unix epoch. Rows with ``is_snapshot=true``
    belong to a full book snapshot: a run of them *replaces* the book (levels it does not
    list are deleted), as tardis.dev documents for reconnections. Consecutive rows with the
    same ``timestamp`` and ``local_timestamp`` form one event (one exchange message).

``book_snapshot_N`` and ``quotes``
    One full top-N book per row (``asks[0].price, asks[0].amount, bids[0].price, ...``; a
    quotes row is a top-1 book ``ask_amount, ask_price, bid_price, bid_amount``); each row
    replaces the book. Empty cells are missing levels.

Either way the book is an L2 book in the core (one synthetic order per level, see
:mod:`rltrader.data._levels`); timestamps are the exchange's ``timestamp`` in ns. Prices and
amounts convert exactly to ticks and lots of ``tick_size``/``lot_size`` (decimal strings,
inferred from the file when not given). Errors name the file's line.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np

from rltrader.core.constants import BUY, MAX_PRICE, MAX_QTY, SELL
from rltrader.data._decimal import DecimalGrid, infer_step
from rltrader.data._io import PathLike, as_paths, read_text
from rltrader.data._levels import LevelBook

INCREMENTAL_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot",
                       "side", "price", "amount")
_SIDES = {"bid": int(BUY), "ask": int(SELL)}
_FLAGS = {"true": True, "false": False}
_SNAPSHOT_LEVEL = re.compile(r"(asks|bids)\[(\d+)\]\.price")


@dataclass(frozen=True)
class TardisFeed:
    """Messages for one book rebuilt from a tardis.dev CSV file.

    Attributes
    ----------
    messages : ndarray of MESSAGE_DTYPE
    line : ndarray of int64
        For each message, the file line (1-based, the header is line 1) of the first row
        of the event that caused it.
    rows, events, resets : int
        Data rows read (of the chosen symbol), events applied, and full-book replacements
        (snapshot runs or snapshot rows).
    unchanged : int
        Level entries that repeated the size the book already had (no message).
    exchange, symbol : str
    tick_size, lot_size : DecimalGrid
    """

    messages: np.ndarray
    line: np.ndarray
    rows: int
    events: int
    resets: int
    unchanged: int
    exchange: str
    symbol: str
    tick_size: DecimalGrid
    lot_size: DecimalGrid


@dataclass
class _Table:
    """The header and the ``(line, cells)`` rows of one symbol, from one or more files."""

    header: list[str]
    name: str
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    symbol: str | None = None
    exchange: str = ""

    def column(self, name: str) -> int:
        if name not in self.header:
            raise ValueError(f"{self.name}: no column {name!r} (header {self.header})")
        return self.header.index(name)


def _read_table(paths: Sequence[PathLike], symbol: str | None) -> _Table:
    table: _Table | None = None
    for path in paths:
        name = os.fspath(path)
        reader = csv.reader(io.StringIO(read_text(path)))
        header = next(reader, [])
        if table is None:
            table = _Table(header, name, symbol=symbol)
        if header != table.header or "symbol" not in header or "timestamp" not in header:
            raise ValueError(f"{name}: header {header} is not a tardis.dev CSV header "
                             f"like {table.header}")
        at, exchange_at = table.column("symbol"), table.column("exchange")
        for line, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise ValueError(f"{name}: line {line}: {len(cells)} columns, expected "
                                 f"{len(header)}")
            if table.symbol is None:
                table.symbol, table.exchange = cells[at], cells[exchange_at]
            if cells[at] != table.symbol:
                if symbol is None:
                    raise ValueError(f"{name}: line {line}: a second symbol {cells[at]!r} "
                                     f"after {table.symbol!r}: pass symbol to choose one")
                continue
            table.exchange = cells[exchange_at]
            table.rows.append((line, cells))
    if table is None:
        raise ValueError("no input file")
    return table


def _snapshot_columns(table: _Table) -> list[tuple[int, int, int]]:
    """``(side, price column, amount column)`` of every level of a snapshot/quotes row."""
    header = table.header
    if "ask_price" in header:  # quotes
        return [(int(SELL), table.column("ask_price"), table.column("ask_amount")),
                (int(BUY), table.column("bid_price"), table.column("bid_amount"))]
    levels = []
    for at, name in enumerate(header):
        match = _SNAPSHOT_LEVEL.fullmatch(name)
        if match:
            side = int(SELL) if match.group(1) == "asks" else int(BUY)
            levels.append((side, at, table.column(f"{match.group(1)}[{match.group(2)}].amount")))
    if not levels:
        raise ValueError(f"{table.name}: neither incremental_book_L2, book_snapshot nor "
                         f"quotes columns (header {header})")
    return levels


def _steps(table: _Table, price_columns: Iterable[int], size_columns: Iterable[int],
           tick_size: str | None, lot_size: str | None) -> tuple[DecimalGrid, DecimalGrid]:
    def cells(columns: Iterable[int]) -> Iterable[str]:
        wanted = list(columns)
        return (cells[c] for _, cells in table.rows for c in wanted if cells[c])

    try:
        return (DecimalGrid(tick_size or infer_step(cells(price_columns)), "price", MAX_PRICE),
                DecimalGrid(lot_size or infer_step(cells(size_columns)), "amount", MAX_QTY))
    except ValueError as exc:
        raise ValueError(f"{table.name}: {exc} (in a price or amount column)") from None


def _row_error(table: _Table, line: int, exc: Exception) -> ValueError:
    return ValueError(f"{table.name}: line {line}: {exc}")


def _apply_incremental(table: _Table, levels: LevelBook, prices: DecimalGrid,
                       sizes: DecimalGrid) -> tuple[int, int]:
    """Apply incremental_book_L2 rows; returns ``(events, resets)``."""
    snap, ts, local, side_at, price_at, amount_at = (
        table.column(c) for c in ("is_snapshot", "timestamp", "local_timestamp", "side",
                                  "price", "amount"))

    def event_key(row: tuple[int, list[str]]) -> tuple[str, ...]:
        cells = row[1]
        return (cells[snap],) if cells[snap] == "true" else (cells[snap], cells[ts], cells[local])

    events = resets = 0
    for key, group in groupby(table.rows, key=event_key):
        run = list(group)
        changes = []
        for line, cells in run:
            try:
                if cells[snap] not in _FLAGS:
                    raise ValueError(f"is_snapshot is {cells[snap]!r}, not true/false")
                if cells[side_at] not in _SIDES:
                    raise ValueError(f"side is {cells[side_at]!r}, not bid/ask")
                changes.append((_SIDES[cells[side_at]], prices.units(cells[price_at]),
                                sizes.units(cells[amount_at])))
            except ValueError as exc:
                raise _row_error(table, line, exc) from None
        line, first = run[0]
        try:
            timestamp = int(first[ts]) * 1000
        except ValueError as exc:
            raise _row_error(table, line, exc) from None
        if key[0] == "true":
            levels.reset(changes, timestamp, line)
            resets += 1
        else:
            levels.update(changes, timestamp, line)
        events += 1
    return events, resets


def _apply_snapshots(table: _Table, columns: list[tuple[int, int, int]], levels: LevelBook,
                     prices: DecimalGrid, sizes: DecimalGrid) -> None:
    """Apply book_snapshot_N / quotes rows: each replaces the book."""
    ts = table.column("timestamp")
    for line, cells in table.rows:
        try:
            changes = [(side, prices.units(cells[p]), sizes.units(cells[a]))
                       for side, p, a in columns if cells[p]]
            levels.reset(changes, int(cells[ts]) * 1000, line)
        except ValueError as exc:
            raise _row_error(table, line, exc) from None


def read_feed(
    paths: PathLike | Sequence[PathLike],
    *,
    tick_size: str | None = None,
    lot_size: str | None = None,
    symbol: str | None = None,
    book: int = 0,
) -> TardisFeed:
    """Read tardis.dev ``incremental_book_L2``, ``book_snapshot_N`` or ``quotes`` CSV files.

    Parameters
    ----------
    paths : path-like or sequence of them
        Files of one data type, in time order (plain or gzip).
    tick_size, lot_size : str, optional
        Price and amount steps as decimal strings; inferred from the data when None.
    symbol : str, optional
        Keep only this symbol's rows; when None, a second symbol raises.
    book : int
        Value of the messages' ``book`` field.

    Raises
    ------
    ValueError
        Naming the file and line: wrong column count, a bad flag/side/number, a value off
        the tick/lot grid, a second symbol.
    """
    table = _read_table(as_paths(paths), symbol)
    levels = LevelBook()
    if "is_snapshot" in table.header:
        price_at, amount_at = table.column("price"), table.column("amount")
        prices, sizes = _steps(table, [price_at], [amount_at], tick_size, lot_size)
        events, resets = _apply_incremental(table, levels, prices, sizes)
    else:
        columns = _snapshot_columns(table)
        prices, sizes = _steps(table, [p for _, p, _ in columns], [a for _, _, a in columns],
                               tick_size, lot_size)
        _apply_snapshots(table, columns, levels, prices, sizes)
        events = resets = len(table.rows)
    messages, line = levels.to_array(book)
    return TardisFeed(messages=messages, line=line, rows=len(table.rows), events=events,
                      resets=resets, unchanged=levels.unchanged, exchange=table.exchange,
                      symbol=table.symbol or "", tick_size=prices, lot_size=sizes)
