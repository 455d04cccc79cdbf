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

import calendar
import csv
import heapq
import io
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import numpy as np

from rltrader.core.constants import (
    BUY,
    CANCEL,
    EXECUTE,
    LEVEL_ID_BASE,
    LIMIT,
    MAX_PRICE,
    MAX_QTY,
    REDUCE,
    REPLACE,
    SELL,
)
from rltrader.core.messages import empty_messages
from rltrader.data._decimal import DecimalGrid
from rltrader.data._io import FormatError, PathLike, read_text
from rltrader.data._levels import LevelBook

KINDS = ("l3", "l2")
FILE_FORMATS = ("csv", "parquet")
TIME_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
EVENTS = ("created", "changed", "deleted", "traded", "ignored")
ORDER_IDS = ("integer", "string")

_COLUMNS = ("timestamp", "order_id", "event", "side", "price", "size")
_TOP = ("kind", "format", "tick_size", "lot_size", "time_unit", "order_ids", "delimiter",
        "header")
_PLAIN = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_ISO = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?"
                  r"(Z|[+-]\d\d:?\d\d)?")


def _codes(name: str, value: Any) -> tuple[str, ...]:
    """A code or a list of codes as strings (numbers and booleans by their text)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if not isinstance(item, (str, int, float)):
            raise ValueError(f"{name}: {item!r} is not a string or a number")
        out.append(_cell_text(item))
    return tuple(out)


def _cell_text(cell: Any) -> str:
    """A cell as the text its code is compared by (``1``, ``"b"``, ``True``)."""
    if isinstance(cell, str):
        return cell.strip()
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def _step(name: str, value: Any) -> str:
    """A tick or lot size (a decimal string, an int or a float) as a plain decimal string."""
    text = _decimal_text(value)
    if text is None or not text.strip("0."):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return text


def _decimal_text(value: Any) -> str | None:
    """``value`` as a plain non-negative decimal string (floats by their shortest form,
    ``1e-05`` as ``0.00001``); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if _PLAIN.fullmatch(text):
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0 or abs(number.as_tuple().exponent) > 40:
        return None  # no grid in use is that fine or coarse; do not spell out 1e400
    return format(number, "f")


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
        for name in _COLUMNS:
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
        sections = {"columns": _COLUMNS, "sides": ("buy", "sell"), "events": EVENTS}
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
        doc["columns"] = {c: getattr(self, c) for c in _COLUMNS if getattr(self, c) is not None}
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


@dataclass
class _Table:
    """The mapped columns' cells, and each row's place in the file for errors."""

    path: str
    unit: str                 # "line" (CSV) or "row" (Parquet)
    where: list[int]          # per row: its line (1-based) or row (0-based)
    cells: dict[str, list[Any]]
    time_is_ns: bool = False  # a Parquet timestamp column, already ns since the epoch

    def error(self, i: int, problem: str) -> FormatError:
        return FormatError(self.path, self.where[i], problem, unit=self.unit)


def _wanted(mapping: ColumnMapping) -> dict[str, str | int]:
    return {c: getattr(mapping, c) for c in _COLUMNS if getattr(mapping, c) is not None}


def _read_csv(path: PathLike, mapping: ColumnMapping) -> _Table:
    name = os.fspath(path)
    reader = csv.reader(io.StringIO(read_text(path)), delimiter=mapping.delimiter)
    wanted = _wanted(mapping)
    header = next(reader, None) if mapping.header else None
    index: dict[str, int] = {}
    for what, column in wanted.items():
        if isinstance(column, int):
            index[what] = column
        elif header is None or column not in header:
            raise FormatError(name, 1, f"no column {column!r} for {what} (header {header})",
                              unit="line")
        else:
            index[what] = header.index(column)
    width = max(index.values()) + 1
    cells: dict[str, list[Any]] = {what: [] for what in wanted}
    where: list[int] = []
    pairs = list(index.items())
    for row in reader:
        if not row:
            continue  # a blank line holds no row
        if len(row) < width or (header is not None and len(row) != len(header)):
            expected = len(header) if header is not None else f"at least {width}"
            raise FormatError(name, reader.line_num, f"{len(row)} columns, expected "
                              f"{expected}", unit="line")
        where.append(reader.line_num)
        for what, k in pairs:
            cells[what].append(row[k])
    return _Table(name, "line", where, cells)


def _read_parquet(path: PathLike, mapping: ColumnMapping) -> _Table:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading Parquet needs pyarrow: pip install 'rltrader[parquet]'"
                          ) from None
    name = os.fspath(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{name}: not a Parquet file ({exc})") from None
    wanted = _wanted(mapping)
    columns: dict[str, str] = {}
    for what, column in wanted.items():
        if isinstance(column, int):
            if column >= len(schema.names):
                raise ValueError(f"{name}: no column {column} for {what} (columns "
                                 f"{schema.names})")
            column = schema.names[column]
        if column not in schema.names:
            raise ValueError(f"{name}: no column {column!r} for {what} (columns {schema.names})")
        columns[what] = column
    table = pq.read_table(path, columns=sorted(set(columns.values())))
    cells: dict[str, list[Any]] = {}
    time_is_ns = False
    for what, column in columns.items():
        array = table.column(column)
        if what == "timestamp" and pa.types.is_timestamp(array.type):
            array = array.cast(pa.timestamp("ns")).cast(pa.int64())
            time_is_ns = True
        cells[what] = array.to_pylist()
    return _Table(name, "row", list(range(table.num_rows)), cells, time_is_ns)


def read_table(path: PathLike, mapping: ColumnMapping) -> _Table:
    """The mapped columns of ``path`` (CSV, plain or gzip, or Parquet)."""
    fmt = mapping.file_format
    if fmt is None:
        suffix = os.fspath(path).lower()
        fmt = "parquet" if suffix.endswith((".parquet", ".pq")) else "csv"
    return _read_parquet(path, mapping) if fmt == "parquet" else _read_csv(path, mapping)


# ---- cell conversions ------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _epoch_seconds(day: str, clock: str) -> int:
    return calendar.timegm(datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S").timetuple())


def time_parser(unit: str) -> Callable[[Any], int]:
    """A function from a timestamp cell to int ns since the epoch (or since whatever the
    file counts from), exact; ``ValueError`` for a cell it cannot read."""
    if unit in TIME_UNITS:
        scale = TIME_UNITS[unit]
        digits = len(str(scale)) - 1

        def number(cell: Any) -> int:
            if isinstance(cell, int) and not isinstance(cell, bool) and cell >= 0:
                return cell * scale
            text = _decimal_text(cell)
            if text is None:
                raise ValueError(f"timestamp {cell!r} is not a non-negative number of {unit}")
            whole, _, frac = text.partition(".")
            if frac[digits:].strip("0"):
                raise ValueError(f"timestamp {text} {unit} is finer than 1 ns")
            return int(whole or "0") * scale + int(frac[:digits].ljust(digits, "0") or "0")

        return number
    if unit == "iso":
        def iso(cell: Any) -> int:
            match = _ISO.fullmatch(cell.strip()) if isinstance(cell, str) else None
            if match is None:
                raise ValueError(f"timestamp {cell!r} is not ISO 8601 "
                                 "(2024-01-02T03:04:05.123456789Z)")
            day, clock, frac, zone = match.groups()
            frac = frac or ""
            if frac[9:].strip("0"):
                raise ValueError(f"timestamp {cell!r} is finer than 1 ns")
            seconds = _epoch_seconds(day, clock)
            if zone and zone != "Z":
                sign = 1 if zone[0] == "+" else -1
                zone = zone[1:].replace(":", "")
                seconds -= sign * (int(zone[:2]) * 3600 + int(zone[2:]) * 60)
            return seconds * 10**9 + int(frac[:9].ljust(9, "0"))

        return iso

    def formatted(cell: Any) -> int:
        moment = datetime.strptime(cell.strip() if isinstance(cell, str) else cell, unit)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return calendar.timegm(moment.utctimetuple()) * 10**9 + moment.microsecond * 1000

    def strptime(cell: Any) -> int:
        try:
            return formatted(cell)
        except (TypeError, ValueError):
            raise ValueError(f"timestamp {cell!r} does not match {unit!r}") from None

    return strptime


def _units(grid: DecimalGrid, cell: Any) -> int:
    """A price or size cell in ticks or lots of ``grid`` (exact)."""
    text = _decimal_text(cell)
    if text is None:
        raise ValueError(f"{grid.what} {cell!r} is not a non-negative number")
    return grid.units(text)


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


def _side_codes(mapping: ColumnMapping) -> dict[str, int]:
    return {**dict.fromkeys(mapping.buy, int(BUY)), **dict.fromkeys(mapping.sell, int(SELL))}


def _side(table: _Table, i: int, codes: dict[str, int]) -> int:
    cell = table.cells["side"][i]
    side = codes.get(_cell_text(cell))
    if side is None:
        buy = [c for c, s in codes.items() if s > 0]
        sell = [c for c, s in codes.items() if s < 0]
        raise table.error(i, f"side {cell!r} is neither buy {buy} nor sell {sell}")
    return side


def _timestamps(table: _Table, mapping: ColumnMapping) -> list[int]:
    parse = (lambda cell: int(cell)) if table.time_is_ns else time_parser(mapping.time_unit)
    out = []
    last = None
    for i, cell in enumerate(table.cells["timestamp"]):
        try:
            ts = parse(cell)
        except (TypeError, ValueError) as exc:
            raise table.error(i, str(exc)) from None
        if ts >= 1 << 63:
            raise table.error(i, f"timestamp {cell!r} is beyond int64 ns")
        if last is not None and ts < last:
            raise table.error(i, f"timestamp {cell!r} is before the previous row's: rows must "
                                 "be in time order")
        out.append(ts)
        last = ts
    return out


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
        builder = _L3(table, mapping, prices, sizes, unknown)
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


def _l2(table: _Table, mapping: ColumnMapping, prices: DecimalGrid, sizes: DecimalGrid
        ) -> tuple[list[tuple[int, ...]], dict[str, Any]]:
    """Level updates: consecutive rows with one timestamp are one event."""
    stamps, codes = _timestamps(table, mapping), _side_codes(mapping)
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
                changes.append((_side(table, i, codes), _units(prices, price_cells[i]),
                                _units(sizes, size_cells[i])))
            except ValueError as exc:
                raise table.error(i, str(exc)) from None
            if changes[-1][1] == 0:
                raise table.error(i, "price 0 (the core's prices start at one tick)")
        levels.update(changes, stamps[start], table.where[start])
        start = end
    return levels.columns, dict(
        event_counts={"levels": n}, unknown_rows=np.zeros(0, dtype=np.int64), held_orders=0,
        still_held=0, unchanged=levels.unchanged, order_ids=None)


@dataclass
class _Order:
    order_id: int
    side: int
    price: int
    lots: int
    held: bool = False


@dataclass
class _L3:
    """Turns L3 rows into message columns, tracking the known orders and the book they
    make (to hold orders that would cross it; module docstring)."""

    table: _Table
    mapping: ColumnMapping
    prices: DecimalGrid
    sizes: DecimalGrid
    unknown: str
    columns: list[tuple[int, ...]] = field(default_factory=list)
    orders: dict[Any, _Order] = field(default_factory=dict)
    held: dict[Any, _Order] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))
    unknown_rows: list[int] = field(default_factory=list)
    held_orders: int = 0
    unchanged: int = 0

    def __post_init__(self) -> None:
        # resting (not held) orders per price, and heaps of the prices for the best of each
        # side (lazy: a price leaves its heap when found empty at the top)
        self.level_count: dict[int, dict[int, int]] = {int(BUY): {}, int(SELL): {}}
        self.heap: dict[int, list[int]] = {int(BUY): [], int(SELL): []}
        code = {c: e for e in EVENTS for c in getattr(self.mapping, e)}
        self.event_of = code

    # -- the known book ---------------------------------------------------------------

    def _best(self, side: int) -> int | None:
        heap, count = self.heap[side], self.level_count[side]
        while heap and not count.get(side * heap[0] * -1, 0):
            heapq.heappop(heap)
        return -side * heap[0] if heap else None

    def _crosses(self, side: int, price: int) -> bool:
        best = self._best(-side)
        return best is not None and side * (price - best) >= 0

    def _rest(self, order: _Order) -> None:
        count = self.level_count[order.side]
        if not count.get(order.price):
            count[order.price] = 0
            heapq.heappush(self.heap[order.side], -order.side * order.price)
        count[order.price] += 1

    def _unrest(self, order: _Order) -> None:
        self.level_count[order.side][order.price] -= 1

    # -- rows -------------------------------------------------------------------------

    def _emit(self, op: int, order: _Order, qty: int, ts: int, where: int) -> None:
        self.columns.append((ts, op, order.order_id, order.side, order.price, qty, where))

    def _id(self, i: int, cell: Any, create: bool) -> tuple[Any, int]:
        """``(key, int id)`` of an id cell; the int is 0 for a string id not seen yet
        unless ``create``."""
        if self.mapping.order_ids == "integer":
            text = _cell_text(cell)
            if not text.isdigit() or not 0 < int(text) < LEVEL_ID_BASE:
                raise self.table.error(i, f"order id {cell!r} is not an integer in [1, 2**52) "
                                          "(order_ids = \"string\" numbers any text ids)")
            return int(text), int(text)
        key = _cell_text(cell)
        if not key:
            raise self.table.error(i, "empty order id")
        if create and key not in self.ids:
            self.ids[key] = len(self.ids) + 1
        return key, self.ids.get(key, 0)

    def run(self) -> None:
        table = self.table
        stamps, codes = _timestamps(table, self.mapping), _side_codes(self.mapping)
        cells = table.cells
        for i, ts in enumerate(stamps):
            raw_event = cells["event"][i]
            event = self.event_of.get(_cell_text(raw_event))
            if event is None:
                raise table.error(i, f"event {raw_event!r} is none of the mapping's events")
            self.counts[event] += 1
            if event == "ignored":
                continue
            side = _side(table, i, codes)
            try:
                self._row(i, event, ts, side)
            except ValueError as exc:
                if isinstance(exc, FormatError):
                    raise
                raise table.error(i, str(exc)) from None

    def _row(self, i: int, event: str, ts: int, side: int) -> None:
        cells, where = self.table.cells, self.table.where[i]
        key, order_id = self._id(i, cells["order_id"][i], create=event == "created")
        if event == "created":
            if key in self.orders:
                raise ValueError(f"order {key} is created again while live")
            order = _Order(order_id, side, self._price(i), _units(self.sizes, cells["size"][i]))
            if order.lots == 0:
                raise ValueError("a created order of size 0")
            self.orders[key] = order
            self._place(key, order, ts, where)
            return
        order = self.orders.get(key)
        if order is None:
            if self.unknown == "error":
                raise ValueError(f"{event} of order {key}, which no earlier row created")
            self.unknown_rows.append(where)
            return
        if side != order.side:
            raise ValueError(f"side {cells['side'][i]!r}, but order {key} was created on the "
                             f"other side")
        if event == "deleted":
            self._remove(key, order)
            if not order.held:
                self._emit(int(CANCEL), order, order.lots, ts, where)
        elif event == "traded":
            qty = _units(self.sizes, cells["size"][i])
            if qty == 0 or qty > order.lots:
                raise ValueError(f"traded {qty} lots of order {key}, which holds {order.lots}")
            if not order.held:
                self._emit(int(EXECUTE), order, qty, ts, where)
            order.lots -= qty
            if order.lots == 0:
                self._remove(key, order)
        else:
            self._change(key, order, self._price(i), _units(self.sizes, cells["size"][i]), ts,
                         where)
        if self.held:
            self._release(ts, where)

    def _price(self, i: int) -> int:
        price = _units(self.prices, self.table.cells["price"][i])
        if price == 0:
            raise ValueError("price 0 (the core's prices start at one tick)")
        return price

    def _place(self, key: Any, order: _Order, ts: int, where: int) -> None:
        """Rest ``order`` (a ``LIMIT``), or hold it while it would cross the known book."""
        if self._crosses(order.side, order.price):
            order.held = True
            self.held[key] = order
            self.held_orders += 1
        else:
            self._rest(order)
            self._emit(int(LIMIT), order, order.lots, ts, where)

    def _remove(self, key: Any, order: _Order) -> None:
        del self.orders[key]
        if order.held:
            del self.held[key]
        else:
            self._unrest(order)

    def _change(self, key: Any, order: _Order, price: int, lots: int, ts: int, where: int
                ) -> None:
        if lots == 0:
            self._remove(key, order)
            if not order.held:
                self._emit(int(CANCEL), order, order.lots, ts, where)
            return
        if order.held:  # sent with its latest state when released
            order.price, order.lots = price, lots
            return
        if price == order.price and lots == order.lots:
            self.unchanged += 1
            return
        if price == order.price and lots < order.lots:
            self._emit(int(REDUCE), order, order.lots - lots, ts, where)
            order.lots = lots
            return
        self._unrest(order)
        if price != order.price and self._crosses(order.side, price):
            self._emit(int(CANCEL), order, order.lots, ts, where)
            order.price, order.lots, order.held = price, lots, True
            self.held[key] = order
            self.held_orders += 1
            return
        order.price, order.lots = price, lots
        self._rest(order)
        self._emit(int(REPLACE), order, lots, ts, where)

    def _release(self, ts: int, where: int) -> None:
        """Send the held orders that no longer cross, oldest first."""
        for key, order in list(self.held.items()):
            if not self._crosses(order.side, order.price):
                del self.held[key]
                order.held = False
                self._rest(order)
                self._emit(int(LIMIT), order, order.lots, ts, where)

    def result(self) -> dict[str, Any]:
        return dict(event_counts=self.counts,
                    unknown_rows=np.array(self.unknown_rows, dtype=np.int64),
                    held_orders=self.held_orders, still_held=len(self.held),
                    unchanged=self.unchanged,
                    order_ids=self.ids if self.mapping.order_ids == "string" else None)


__all__ = ["ColumnMapping", "GenericFeed", "load", "read", "read_table", "time_parser"]
