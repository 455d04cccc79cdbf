"""Any venue's order events or level updates, from CSV or Parquet, as the core's messages.

A :class:`ColumnMapping` says which column holds what and how it is encoded; it is a frozen
dataclass, written by hand or loaded from a small TOML file (``docs/generic.md``)::

    kind = "l3"                 # "l3": order events by id; "l2": level updates
    tick_size = "0.01"          # price step, in the file's price units
    lot_size = "1"              # size step, in the file's size units
    time_unit = "ms"            # s, ms, us, ns, iso, or a strptime format ("%H:%M:%S.%f")

    [columns]
    timestamp = "timestamp"
    order_id = "id"             # L3 only
    event = "action"            # L3 only
    side = "direction"
    price = "price"
    size = "volume"

    [sides]
    buy = "bid"                 # a value or a list of values; numbers work too (1 / -1)
    sell = "ask"

    [events]                    # L3 only
    created = "created"
    changed = "changed"
    deleted = "deleted"
    traded = []                 # this feed has none
    ignored = []                # rows without a book effect (counted, not replayed)

**L3** rows become messages for one book, the way :mod:`rltrader.data.lobster` and
:mod:`rltrader.data.coinbase` make them (``owner = NO_OWNER``, ``tif = GTC``, one message
per row at most, tagged with the row):

=========  ===========================================================================
event      message
=========  ===========================================================================
created    ``LIMIT`` for ``size`` at ``price`` (the order starts resting)
changed    ``size`` is the order's new size: smaller at the same price is a ``REDUCE``
           by the difference (keeps queue priority); a new price or a larger size is a
           ``REPLACE`` (back of the queue, docs/semantics.md); size 0 is a ``CANCEL``
deleted    ``CANCEL`` (the row's size is not used)
traded     ``EXECUTE`` of ``size`` lots against the resting order (a trade at its price;
           it leaves the book at zero), as LOBSTER's type 4 and Coinbase's ``match``
=========  ===========================================================================

An order is known once a ``created`` row with its id comes earlier in the file. Rows of the
other events about an unknown id (an order placed before the file starts) cannot be
replayed: they are dropped by default and listed in :attr:`GenericFeed.unknown_rows`
(``unknown="error"`` raises instead), as the LOBSTER reader does.

Venues differ on whether an incoming order that trades at once is logged. LOBSTER and
Coinbase log only what rests; Bitstamp's ``live_orders`` logs the incoming order with its
full size, then its fills as changes of both orders. Replayed literally, such an order would
trade in the core a second time. So an order whose ``created`` (or ``changed``) state would
cross the known book is **held**: its later rows only update the held state, and it is sent
as a ``LIMIT`` once the opposite side no longer crosses it (at the back of its level, at
that row's time), or never, when it is deleted or traded away first.
:attr:`GenericFeed.held_orders` counts them, :attr:`GenericFeed.still_held` those the file
never uncrosses. A file that logs only resting orders never holds one.

**L2** rows set the total size of a level (size 0 deletes it); consecutive rows with the
same timestamp are one exchange event. Each level is one synthetic order
(:mod:`rltrader.data._levels`, as the Binance and tardis readers do), and within an event
decreases go before increases so that a book that is not crossed never crosses on the way.

Prices and sizes are converted exactly: text (or a Parquet number, through its shortest
decimal form) divided by ``tick_size`` / ``lot_size`` with integer arithmetic; a value that
is not a whole number of ticks or lots raises, it is never rounded. Timestamps become ns.
Every bad row raises :class:`~rltrader.data._io.FormatError` naming the file and the line
(CSV, 1-based, the header is line 1) or row (Parquet, 0-based) and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.core.constants import MAX_PRICE, MAX_QTY
from rltrader.core.messages import empty_messages
from rltrader.data._cells import (
    COLUMNS,
    TIME_UNITS,
    Table,
    cell_text,
    decimal_text,
    decode_side,
    decode_timestamps,
    read_table,
    side_codes,
    time_parser,
    to_units,
)
from rltrader.data._decimal import DecimalGrid
from rltrader.data._io import PathLike, read_text
from rltrader.data._l3_orders import EVENTS, L3Orders
from rltrader.data._levels import LEVEL_ID_BASE, LevelBook

KINDS = ("l3", "l2")
FILE_FORMATS = ("csv", "parquet")
ORDER_IDS = ("integer", "string")

_TOP = ("kind", "format", "tick_size", "lot_size", "time_unit", "order_ids", "delimiter",
        "header")


def _codes(name: str, value: Any) -> tuple[str, ...]:
    """A code or a list of codes as strings (numbers and booleans by their text)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if not isinstance(item, (str, int, float)):
            raise ValueError(f"{name}: {item!r} is not a string or a number")
        out.append(cell_text(item))
    return tuple(out)


def _step(name: str, value: Any) -> str:
    """A tick or lot size (a decimal string, an int or a float) as a plain decimal string."""
    text = decimal_text(value)
    if text is None or not text.strip("0."):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return text


@dataclass(frozen=True)
class ColumnMapping:
    """How a venue's CSV or Parquet file says what happened (module docstring).

    Parameters
    ----------
    kind : {"l3", "l2"}
        Order events by id, or level updates (size = the level's new total, 0 deletes).
    timestamp, side, price, size : str or int
        Column names, or 0-based positions (required when ``header`` is False).
    order_id, event : str or int, optional
        L3 only (required there): the order id and the event type columns.
    time_unit : str
        ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` (numbers, decimals allowed down to 1 ns),
        ``"iso"`` (ISO 8601 text; UTC unless it carries an offset) or a ``strptime`` format
        containing ``%`` (UTC unless ``%z``; ``%f`` gives µs).
    buy, sell : tuple of str
        The side column's values for each side (numbers compare by their text: ``1``).
    created, changed, deleted, traded, ignored : tuple of str
        L3: the event column's values for each event; ``ignored`` rows are counted and
        skipped (trades reported elsewhere, heartbeats ...). Any other value is an error.
    tick_size, lot_size : str
        Price and size steps in the file's units (``"0.01"``; ints and floats are taken by
        their decimal text). Prices and sizes must be whole multiples.
    order_ids : {"integer", "string"}
        ``"integer"``: ids are integers in ``[1, 2**52)`` and kept; ``"string"``: any text
        (UUIDs), numbered 1, 2, 3 ... by first appearance.
    file_format : {"csv", "parquet"}, optional
        None: from the file name (``.parquet`` / ``.pq``, else CSV, gzip allowed).
    delimiter : str
        CSV field separator (one character).
    header : bool
        Whether the CSV's first line names the columns.
    """

    kind: str
    timestamp: str | int
    side: str | int
    price: str | int
    size: str | int
    order_id: str | int | None = None
    event: str | int | None = None
    time_unit: str = "ns"
    buy: tuple[str, ...] = ("buy",)
    sell: tuple[str, ...] = ("sell",)
    created: tuple[str, ...] = ("created",)
    changed: tuple[str, ...] = ("changed",)
    deleted: tuple[str, ...] = ("deleted",)
    traded: tuple[str, ...] = ("traded",)
    ignored: tuple[str, ...] = ()
    tick_size: str = "1"
    lot_size: str = "1"
    order_ids: str = "integer"
    file_format: str | None = None
    delimiter: str = ","
    header: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.file_format not in (None, *FILE_FORMATS):
            raise ValueError(f"format must be one of {FILE_FORMATS}, got {self.file_format!r}")
        if self.order_ids not in ORDER_IDS:
            raise ValueError(f"order_ids must be one of {ORDER_IDS}, got {self.order_ids!r}")
        if not isinstance(self.header, bool):
            raise ValueError(f"header must be true or false, got {self.header!r}")
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        if not isinstance(self.time_unit, str) or (
                self.time_unit not in (*TIME_UNITS, "iso") and "%" not in self.time_unit):
            raise ValueError(f"time_unit must be one of {(*TIME_UNITS, 'iso')} or a strptime "
                             f"format with %, got {self.time_unit!r}")
        set_(self, "tick_size", _step("tick_size", self.tick_size))
        set_(self, "lot_size", _step("lot_size", self.lot_size))
        for name in ("buy", "sell", *EVENTS):
            set_(self, name, _codes(name, getattr(self, name)))
        for name in COLUMNS:
            column = getattr(self, name)
            if column is None:
                if name in ("order_id", "event") and self.kind == "l2":
                    continue
                raise ValueError(f"columns.{name} is required for kind {self.kind!r}")
            if isinstance(column, bool) or not isinstance(column, (str, int)) or (
                    isinstance(column, int) and column < 0):
                raise ValueError(f"columns.{name} must be a name or a position >= 0, "
                                 f"got {column!r}")
            if not self.header and not isinstance(column, int):
                raise ValueError(f"columns.{name}: without a header, columns are positions "
                                 f"(0, 1, ...), got {column!r}")
        self._check_codes(("buy", "sell"))
        if self.kind == "l3":
            self._check_codes(EVENTS)

    def _check_codes(self, names: Iterable[str]) -> None:
        seen: dict[str, str] = {}
        for name in names:
            for code in getattr(self, name):
                if code in seen:
                    raise ValueError(f"value {code!r} means both {seen[code]} and {name}")
                seen[code] = name
        if "buy" in seen.values() and not all(getattr(self, n) for n in ("buy", "sell")):
            raise ValueError("sides: buy and sell each need a value")

    # ---- dict / TOML ------------------------------------------------------------------

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ColumnMapping:
        """From the TOML layout (top-level keys, ``[columns]``, ``[sides]``, ``[events]``)."""
        if not isinstance(doc, dict):
            raise ValueError("a mapping is a table of keys")
        sections = {"columns": COLUMNS, "sides": ("buy", "sell"), "events": EVENTS}
        args: dict[str, Any] = {}
        for key, value in doc.items():
            if key in sections:
                if not isinstance(value, dict):
                    raise ValueError(f"[{key}] must be a table")
                for sub, item in value.items():
                    if sub not in sections[key]:
                        raise ValueError(f"unknown key {key}.{sub} (one of "
                                         f"{', '.join(sections[key])})")
                    args[sub] = item
            elif key in _TOP:
                args["file_format" if key == "format" else key] = value
            else:
                raise ValueError(f"unknown key {key!r} (one of {', '.join(_TOP)}, "
                                 "[columns], [sides], [events])")
        missing = [c for c in ("kind", "timestamp", "side", "price", "size") if c not in args]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (kind at the top, the others "
                             "under [columns])")
        return cls(**args)

    def to_dict(self) -> dict[str, Any]:
        """The TOML layout of :meth:`from_dict` (defaults included, ``None`` left out)."""
        doc: dict[str, Any] = {}
        for key in _TOP:
            value = getattr(self, "file_format" if key == "format" else key)
            if value is not None:
                doc[key] = value
        doc["columns"] = {c: getattr(self, c) for c in COLUMNS if getattr(self, c) is not None}
        doc["sides"] = {s: list(getattr(self, s)) for s in ("buy", "sell")}
        if self.kind == "l3":
            doc["events"] = {e: list(getattr(self, e)) for e in EVENTS}
        return doc

    def to_toml(self) -> str:
        """The mapping as TOML text (:meth:`from_toml` reads it back equal)."""
        doc = self.to_dict()
        lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
        for section in ("columns", "sides", "events"):
            if section in doc:
                lines += ["", f"[{section}]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in doc[section].items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, path: PathLike) -> ColumnMapping:
        """Read a mapping file; ``ValueError`` names the file and the problem."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        name = os.fspath(path)
        try:
            return cls.from_dict(tomllib.loads(read_text(path)))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


# ---- the file as columns of cells ------------------------------------------------------


# ---- the feed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GenericFeed:
    """Messages for one book from a mapped file, with where each came from.

    Attributes
    ----------
    messages : ndarray of MESSAGE_DTYPE
    row : ndarray of int64
        For each message, the line (CSV) or row (Parquet) that caused it (ascending).
    rows : int
        Data rows read.
    event_counts : dict[str, int]
        L3: rows per event (``created`` ... ``ignored``); L2: ``{"levels": rows}``.
    unknown_rows : ndarray of int64
        L3: lines/rows about an order never created in the file (dropped).
    held_orders, still_held : int
        L3: orders held while they crossed the known book, and those still held at the end
        (never sent).
    unchanged : int
        Rows that left the book as it was (L3: a change to the same size and price; L2: a
        level set to the size it had).
    order_ids : dict[str, int] or None
        ``order_ids = "string"``: each text id's int64 id.
    mapping : ColumnMapping
    tick_size, lot_size : DecimalGrid
    path : str
    """

    messages: np.ndarray
    row: np.ndarray
    rows: int
    event_counts: dict[str, int]
    unknown_rows: np.ndarray
    held_orders: int
    still_held: int
    unchanged: int
    order_ids: dict[str, int] | None
    mapping: ColumnMapping
    tick_size: DecimalGrid
    lot_size: DecimalGrid
    path: str


def load(path: PathLike, mapping: ColumnMapping | PathLike, *, unknown: str = "drop",
         book: int = 0) -> GenericFeed:
    """Read ``path`` with ``mapping`` (a :class:`ColumnMapping` or its TOML file).

    Parameters
    ----------
    path : path-like
        CSV (plain or gzip) or Parquet.
    mapping : ColumnMapping or path-like
    unknown : {"drop", "error"}
        L3 rows about an order never created in the file: drop them (listed in
        :attr:`GenericFeed.unknown_rows`) or raise.
    book : int
        Value of the messages' ``book`` field.

    Raises
    ------
    FormatError
        A bad row, naming the file, its line (CSV) or row (Parquet) and the problem.
    ValueError
        A bad mapping (naming its file) or a file that does not fit it.
    ImportError
        A Parquet file without pyarrow installed.
    """
    if unknown not in ("drop", "error"):
        raise ValueError(f"unknown must be 'drop' or 'error', got {unknown!r}")
    if not isinstance(mapping, ColumnMapping):
        mapping = ColumnMapping.from_toml(mapping)
    table = read_table(path, mapping)
    prices = DecimalGrid(mapping.tick_size, "price", MAX_PRICE)
    sizes = DecimalGrid(mapping.lot_size, "size", MAX_QTY)
    if mapping.kind == "l3":
        builder = L3Orders(table, mapping, prices, sizes, unknown)
        builder.run()
        columns, result = builder.columns, builder.result()
    else:
        columns, result = _l2(table, mapping, prices, sizes)
    table_ = np.array(columns, dtype=np.int64).reshape(-1, 7)
    msgs = empty_messages(table_.shape[0])
    for j, name in enumerate(("timestamp", "op", "order_id", "side", "price", "qty")):
        msgs[name] = table_[:, j]
    msgs["book"] = book
    return GenericFeed(messages=msgs, row=np.ascontiguousarray(table_[:, 6]),
                       rows=len(table.where), mapping=mapping, tick_size=prices,
                       lot_size=sizes, path=table.path, **result)


def read(path: PathLike, mapping: ColumnMapping | PathLike, **kwargs: Any) -> np.ndarray:
    """The messages of :func:`load` (``MESSAGE_DTYPE``, one book): ready for
    ``Books.process``, :class:`~rltrader.data.hybrid.HybridReplay` and the env."""
    return load(path, mapping, **kwargs).messages


def _l2(table: Table, mapping: ColumnMapping, prices: DecimalGrid, sizes: DecimalGrid
        ) -> tuple[list[tuple[int, ...]], dict[str, Any]]:
    """Level updates: consecutive rows with one timestamp are one event."""
    stamps, codes = decode_timestamps(table, mapping), side_codes(mapping)
    levels = LevelBook()
    n = len(stamps)
    start = 0
    price_cells, size_cells = table.cells["price"], table.cells["size"]
    while start < n:
        end = start + 1
        while end < n and stamps[end] == stamps[start]:
            end += 1
        changes = []
        for i in range(start, end):
            try:
                changes.append((decode_side(table, i, codes), to_units(prices, price_cells[i]),
                                to_units(sizes, size_cells[i])))
            except ValueError as exc:
                raise table.error(i, str(exc)) from None
            if changes[-1][1] == 0:
                raise table.error(i, "price 0 (the core's prices start at one tick)")
        levels.update(changes, stamps[start], table.where[start])
        start = end
    return levels.columns, dict(
        event_counts={"levels": n}, unknown_rows=np.zeros(0, dtype=np.int64), held_orders=0,
        still_held=0, unchanged=levels.unchanged, order_ids=None)


__all__ = ["EVENTS", "LEVEL_ID_BASE", "TIME_UNITS", "ColumnMapping", "GenericFeed", "load",
           "read", "read_table", "time_parser"]
