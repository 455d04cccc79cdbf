"""The cells of a mapped CSV or Parquet file, and their exact conversions
(:mod:`rltrader.data.generic`): text or Parquet values to codes, ns timestamps, ticks and
lots; every problem is a :class:`~rltrader.data._io.FormatError` naming the file and the
line (CSV) or row (Parquet)."""

from __future__ import annotations

import calendar
import csv
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rltrader.core.constants import BUY, SELL
from rltrader.data._decimal import DecimalGrid
from rltrader.data._io import FormatError, PathLike, read_text

if TYPE_CHECKING:
    from rltrader.data.generic import ColumnMapping

TIME_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
COLUMNS = ("timestamp", "order_id", "event", "side", "price", "size")

_PLAIN = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_ISO = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?"
                  r"(Z|[+-]\d\d:?\d\d)?")


def cell_text(cell: Any) -> str:
    """A cell as the text its code is compared by (``1``, ``"b"``, ``True``)."""
    if isinstance(cell, str):
        return cell.strip()
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def decimal_text(value: Any) -> str | None:
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


@dataclass
class Table:
    """The mapped columns' cells, and each row's place in the file for errors."""

    path: str
    unit: str                 # "line" (CSV) or "row" (Parquet)
    where: list[int]          # per row: its line (1-based) or row (0-based)
    cells: dict[str, list[Any]]
    time_is_ns: bool = False  # a Parquet timestamp column, already ns since the epoch

    def error(self, i: int, problem: str) -> FormatError:
        return FormatError(self.path, self.where[i], problem, unit=self.unit)


def _wanted(mapping: ColumnMapping) -> dict[str, str | int]:
    return {c: getattr(mapping, c) for c in COLUMNS if getattr(mapping, c) is not None}


def _read_csv(path: PathLike, mapping: ColumnMapping) -> Table:
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
    return Table(name, "line", where, cells)


def _read_parquet(path: PathLike, mapping: ColumnMapping) -> Table:
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
    return Table(name, "row", list(range(table.num_rows)), cells, time_is_ns)


def read_table(path: PathLike, mapping: ColumnMapping) -> Table:
    """The mapped columns of ``path`` (CSV, plain or gzip, or Parquet)."""
    fmt = mapping.file_format
    if fmt is None:
        suffix = os.fspath(path).lower()
        fmt = "parquet" if suffix.endswith((".parquet", ".pq")) else "csv"
    return _read_parquet(path, mapping) if fmt == "parquet" else _read_csv(path, mapping)


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
            text = decimal_text(cell)
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


def to_units(grid: DecimalGrid, cell: Any) -> int:
    """A price or size cell in ticks or lots of ``grid`` (exact)."""
    text = decimal_text(cell)
    if text is None:
        raise ValueError(f"{grid.what} {cell!r} is not a non-negative number")
    return grid.units(text)


def side_codes(mapping: ColumnMapping) -> dict[str, int]:
    return {**dict.fromkeys(mapping.buy, int(BUY)), **dict.fromkeys(mapping.sell, int(SELL))}


def decode_side(table: Table, i: int, codes: dict[str, int]) -> int:
    cell = table.cells["side"][i]
    side = codes.get(cell_text(cell))
    if side is None:
        buy = [c for c, s in codes.items() if s > 0]
        sell = [c for c, s in codes.items() if s < 0]
        raise table.error(i, f"side {cell!r} is neither buy {buy} nor sell {sell}")
    return side


def decode_timestamps(table: Table, mapping: ColumnMapping) -> list[int]:
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
