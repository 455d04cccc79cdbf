"""LOBSTER message and orderbook files as the core's message array.

LOBSTER (lobsterdata.com) reconstructs NASDAQ's order book by order id. A message file has
one row per event, no header, six columns::

    time (s after midnight, up to ns decimals), type, order_id, size, price ($ x 10000), direction

and the matching orderbook file holds, per message row, the top ``L`` levels *after* that
row as ``ask_price_1, ask_size_1, bid_price_1, bid_size_1, ask_price_2, ...``.

How the row types become messages (one book, ``owner = NO_OWNER``, ``tif = GTC``):

====  =======================  =====================================================
type  LOBSTER                  message
====  =======================  =====================================================
1     new limit order          ``LIMIT`` GTC, ``order_id``, ``side = direction``,
                               ``price = price / tick_size`` ticks, ``qty = size``
2     partial cancel           ``REDUCE`` by ``size`` (keeps queue priority)
3     full delete              ``CANCEL`` (``qty`` carries the deleted size, unused)
4     visible execution        ``EXECUTE`` ``size`` lots against ``order_id``
5     hidden execution         none: it never touched the visible book
6     cross trade (auction)    none
7     trading halt / resume    none
====  =======================  =====================================================

Rows of types 5-7 are listed in :attr:`LobsterMessages.off_book_row`. Sizes are shares
(one lot = one share); timestamps are ns after midnight.

Orders placed before the file starts (before 09:30, or before a truncated file's first row)
are never added, so a delete or execution of one would be rejected by the core with
``UNKNOWN_ORDER``. An order counts as *known* when a type-1 row with its id comes earlier
in the same array. References to unknown ids are dropped by default
(``unknown="drop"``) or kept (``unknown="keep"``, the core rejects them), and either way
listed in :attr:`LobsterMessages.unknown_row`.

To rebuild the visible book exactly, pass the orderbook row that precedes the messages as
``snapshot``: every non-empty level of it becomes one resting *aggregate* order (id
``SNAPSHOT_ID_BASE + 2 * price + (side == SELL)``) that stands for all the older orders at
that level. A reference to an unknown id whose side and price fall on a seeded level is then
redirected to that aggregate: types 2 and 3 become ``REDUCE`` by ``size`` and type 4 an
``EXECUTE`` of ``size``, which moves the level's size exactly as LOBSTER does. Older orders
on levels deeper than the snapshot shows stay unknown (dropped or kept as above), so rows
whose visible levels reach such a level cannot match; :func:`replay_depth` makes the
comparison easy.

Time is parsed as float64 and rounded to ns: a time below 86,400 s has an absolute error
under 0.02 ns after parsing and scaling, so the rounding is exact.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from rltrader.core.messages import empty_messages
from rltrader.data._io import read_bytes as _read_bytes
from rltrader.data._levels import LEVEL_ID_BASE, level_order_id, levels_after

#: One parsed LOBSTER message row (LOBSTER units: prices in $0.0001, sizes in shares).
RAW_DTYPE = np.dtype(
    [
        ("timestamp", np.int64),   # ns after midnight
        ("type", np.int8),         # 1..7, see the module docstring
        ("order_id", np.int64),
        ("size", np.int64),        # shares
        ("price", np.int64),       # $ x 10000
        ("direction", np.int8),    # +1 buy, -1 sell (of the resting order for types 2-5)
    ]
)

#: Ids at or above this are reserved for snapshot aggregate orders: the synthetic level
#: orders of :mod:`rltrader.data._levels` (one per side and price, the same ids).
SNAPSHOT_ID_BASE = LEVEL_ID_BASE

#: LOBSTER's fillers for missing levels in orderbook files.
EMPTY_ASK_PRICE = 9999999999
EMPTY_BID_PRICE = -9999999999

_LIMIT, _CANCEL, _REDUCE, _EXECUTE = 1, 3, 4, 8  # rltrader Op values (checked in tests)
_SECONDS_PER_DAY = 86_400.0
_PARSE_DTYPE = np.dtype(
    [("time", np.float64), ("type", np.int64), ("order_id", np.int64), ("size", np.int64),
     ("price", np.int64), ("direction", np.int64)]
)


def read_raw(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse a LOBSTER message file (plain or gzip) into ``RAW_DTYPE`` rows.

    Parameters
    ----------
    path : path-like
        ``*_message_L.csv`` or ``*_message_L.csv.gz`` (gzip is detected from the content).

    Returns
    -------
    ndarray of RAW_DTYPE, one record per row, in file order.

    Raises
    ------
    ValueError
        Naming the file (and the row): not six numeric columns, a time that is not a finite
        number of seconds in [0, 86400) (NaN would become INT64_MIN ns), an unknown type.
    """
    data = _read_bytes(path)
    if not data.strip():
        return np.zeros(0, dtype=RAW_DTYPE)
    try:
        parsed = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=_PARSE_DTYPE, ndmin=1)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a LOBSTER message file ({exc})") from None
    time = parsed["time"]
    bad = np.flatnonzero(~((time >= 0) & (time < _SECONDS_PER_DAY)))  # NaN fails too
    if bad.size:
        raise ValueError(f"{os.fspath(path)}: row {bad[0]} has time {float(time[bad[0]])}, not "
                         f"seconds after midnight")
    raw = np.empty(parsed.shape[0], dtype=RAW_DTYPE)
    raw["timestamp"] = np.rint(parsed["time"] * 1e9).astype(np.int64)
    for name in ("type", "order_id", "size", "price", "direction"):
        raw[name] = parsed[name]
    bad = np.flatnonzero((parsed["type"] < 1) | (parsed["type"] > 7))
    if bad.size:
        raise ValueError(
            f"{os.fspath(path)}: row {bad[0]} has unknown type {parsed['type'][bad[0]]}")
    return raw


@dataclass(frozen=True)
class LobsterMessages:
    """Messages for one book, with where each came from.

    Attributes
    ----------
    messages : ndarray of MESSAGE_DTYPE
        Snapshot seeds (if any) first, then one message per replayed row, in file order.
    source_row : ndarray of int64
        For each message, its row in ``raw``; ``-1`` for snapshot seeds.
    raw : ndarray of RAW_DTYPE
        The parsed rows the messages were made from.
    off_book_row : ndarray of int64
        Rows of types 5, 6 and 7 (no book message).
    unknown_row : ndarray of int64
        Rows of types 2-4 whose id was never added and not redirected to a snapshot level;
        dropped from ``messages`` under ``unknown="drop"``, kept under ``"keep"``.
    redirected_row : ndarray of int64
        Rows of types 2-4 on unknown ids applied to a snapshot aggregate order.
    """

    messages: np.ndarray
    source_row: np.ndarray
    raw: np.ndarray
    off_book_row: np.ndarray
    unknown_row: np.ndarray
    redirected_row: np.ndarray

    def type_counts(self) -> dict[int, int]:
        """Rows per LOBSTER type (1..7) in ``raw``."""
        counts = np.bincount(self.raw["type"], minlength=8)
        return {t: int(counts[t]) for t in range(1, 8)}


@dataclass(frozen=True)
class LobsterDepth:
    """Visible levels of a LOBSTER orderbook file, in LOBSTER units, shape (rows, levels).

    Missing levels hold LOBSTER's fillers (``EMPTY_ASK_PRICE`` / ``EMPTY_BID_PRICE``, size 0).
    """

    ask_price: np.ndarray
    ask_qty: np.ndarray
    bid_price: np.ndarray
    bid_qty: np.ndarray

    def __len__(self) -> int:
        return self.ask_price.shape[0]

    @property
    def levels(self) -> int:
        return self.ask_price.shape[1]

    def row(self, i: int) -> LobsterDepth:
        """Row ``i`` as a one-row ``LobsterDepth`` (e.g. as a ``snapshot``)."""
        s = slice(i, i + 1) if i != -1 else slice(-1, None)
        return LobsterDepth(self.ask_price[s], self.ask_qty[s], self.bid_price[s],
                            self.bid_qty[s])

    def in_ticks(self, tick_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """``(prices, qtys)`` of shape (rows, 2, levels) laid out as ``Books.top_levels``:
        side index 0 bids, 1 asks, best first, prices in ticks, missing levels 0."""
        rows, levels = self.ask_price.shape
        prices = np.zeros((rows, 2, levels), dtype=np.int64)
        qtys = np.zeros((rows, 2, levels), dtype=np.int64)
        for si, (px, qt) in enumerate(((self.bid_price, self.bid_qty),
                                        (self.ask_price, self.ask_qty))):
            live = qt > 0
            ticks = _to_ticks(px[live], tick_size, "orderbook price")
            prices[:, si][live] = ticks
            qtys[:, si][live] = qt[live]
        return prices, qtys


def read_orderbook(path: str | os.PathLike[str]) -> LobsterDepth:
    """Parse a LOBSTER orderbook file (plain or gzip) into a :class:`LobsterDepth`."""
    data = _read_bytes(path)
    if not data.strip():  # the levels cannot be known
        raise ValueError(f"{os.fspath(path)}: empty orderbook file")
    try:
        table = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a LOBSTER orderbook file ({exc})") from None
    if table.shape[1] % 4 or not table.shape[1]:
        raise ValueError(f"{os.fspath(path)}: {table.shape[1]} columns, not a multiple of 4")
    return LobsterDepth(
        ask_price=np.ascontiguousarray(table[:, 0::4]),
        ask_qty=np.ascontiguousarray(table[:, 1::4]),
        bid_price=np.ascontiguousarray(table[:, 2::4]),
        bid_qty=np.ascontiguousarray(table[:, 3::4]),
    )


def _to_ticks(price: np.ndarray, tick_size: int, what: str, rows: np.ndarray | None = None
              ) -> np.ndarray:
    off = np.flatnonzero(price % tick_size)
    if off.size:
        where = f"row {rows[off[0]]}" if rows is not None else f"entry {off[0]}"
        raise ValueError(
            f"{what} {price[off[0]]} ($0.0001 units) at {where} is not a multiple of "
            f"tick_size={tick_size}; pass a smaller tick_size")
    return price // tick_size


def _snapshot_id(side: np.ndarray, price_ticks: np.ndarray) -> np.ndarray:
    return level_order_id(side, price_ticks)


def _snapshot_messages(snapshot: LobsterDepth, tick_size: int, book: int, timestamp: int
                       ) -> np.ndarray:
    if len(snapshot) != 1:
        raise ValueError(f"snapshot must be one orderbook row, got {len(snapshot)}")
    prices, qtys = snapshot.in_ticks(tick_size)
    side_of = np.array([1, -1], dtype=np.int8)[:, None].repeat(snapshot.levels, axis=1)
    live = qtys[0] > 0
    msgs = empty_messages(int(live.sum()))
    msgs["op"] = _LIMIT
    msgs["side"] = side_of[live]
    msgs["price"] = prices[0][live]
    msgs["qty"] = qtys[0][live]
    msgs["order_id"] = _snapshot_id(side_of[live], prices[0][live])
    msgs["book"] = book
    msgs["timestamp"] = timestamp
    return msgs


def to_messages(
    raw: np.ndarray,
    *,
    tick_size: int = 100,
    book: int = 0,
    unknown: str = "drop",
    snapshot: LobsterDepth | None = None,
) -> LobsterMessages:
    """Turn parsed LOBSTER rows into messages for one book.

    Parameters
    ----------
    raw : ndarray of RAW_DTYPE
        Rows from :func:`read_raw` (a slice is fine: known ids are judged within it).
    tick_size : int
        Tick in LOBSTER price units ($0.0001); the default 100 is one cent. A replayed price
        that is not a multiple raises ``ValueError``.
    book : int
        Value of the messages' ``book`` field.
    unknown : {"drop", "keep"}
        What to do with types 2-4 on ids never added earlier in ``raw`` (and not redirected
        to a snapshot level): leave them out, or keep them (the core rejects them with
        ``UNKNOWN_ORDER``).
    snapshot : LobsterDepth, optional
        The book just before ``raw[0]`` (one orderbook row). Its levels are seeded as
        aggregate orders and unknown references on those levels are applied to them.

    Returns
    -------
    LobsterMessages
    """
    if raw.dtype != RAW_DTYPE:
        raise TypeError(f"raw must have RAW_DTYPE, got {raw.dtype}")
    if unknown not in ("drop", "keep"):
        raise ValueError(f"unknown must be 'drop' or 'keep', got {unknown!r}")
    if tick_size < 1:
        raise ValueError(f"tick_size must be >= 1, got {tick_size}")
    n = raw.shape[0]
    rows = np.arange(n, dtype=np.int64)
    kind = raw["type"]
    ids = raw["order_id"]
    if n and ids.max() >= SNAPSHOT_ID_BASE:
        raise ValueError(f"order ids must stay below {SNAPSHOT_ID_BASE} (snapshot ids)")

    # An id is known at row i when a type-1 row with that id comes before i.
    add_rows = np.flatnonzero(kind == 1)
    order = np.argsort(ids[add_rows], kind="stable")
    add_ids, first = np.unique(ids[add_rows][order], return_index=True)
    first_add_row = add_rows[order][first]
    is_ref = (kind >= 2) & (kind <= 4)
    ref_rows = np.flatnonzero(is_ref)
    pos = np.minimum(np.searchsorted(add_ids, ids[ref_rows]), max(add_ids.size - 1, 0))
    known = np.zeros(ref_rows.size, dtype=bool)
    if add_ids.size:
        known = (add_ids[pos] == ids[ref_rows]) & (first_add_row[pos] < ref_rows)
    unknown_rows = ref_rows[~known]

    seeds = empty_messages(0)
    redirected_rows = np.zeros(0, dtype=np.int64)
    if snapshot is not None:
        seeds = _snapshot_messages(snapshot, tick_size, book, int(raw["timestamp"][0]) if n else 0)
        price = raw["price"][unknown_rows]
        on_tick = price % tick_size == 0
        seed_ids = np.sort(seeds["order_id"])
        want = _snapshot_id(raw["direction"][unknown_rows], price // tick_size)
        at = np.minimum(np.searchsorted(seed_ids, want), max(seed_ids.size - 1, 0))
        hit = on_tick & (seed_ids[at] == want) if seed_ids.size else np.zeros_like(on_tick)
        redirected_rows = unknown_rows[hit]
        unknown_rows = unknown_rows[~hit]

    emit = (kind == 1) | is_ref
    emit[unknown_rows] = unknown == "keep"
    emit[redirected_rows] = True
    emit_rows = rows[emit]

    msgs = empty_messages(emit_rows.size)
    r = raw[emit_rows]
    msgs["timestamp"] = r["timestamp"]
    msgs["order_id"] = r["order_id"]
    msgs["price"] = _to_ticks(r["price"], tick_size, "price", emit_rows)
    msgs["qty"] = r["size"]
    msgs["side"] = r["direction"]
    msgs["book"] = book
    msgs["op"] = np.array([0, _LIMIT, _REDUCE, _CANCEL, _EXECUTE], dtype=np.int8)[r["type"]]
    if redirected_rows.size:
        j = np.searchsorted(emit_rows, redirected_rows)
        msgs["order_id"][j] = _snapshot_id(r["direction"][j], msgs["price"][j])
        msgs["op"][j] = np.where(r["type"][j] == 4, _EXECUTE, _REDUCE)

    return LobsterMessages(
        messages=np.concatenate([seeds, msgs]),
        source_row=np.concatenate([np.full(seeds.size, -1, dtype=np.int64), emit_rows]),
        raw=raw,
        off_book_row=np.flatnonzero(kind >= 5),
        unknown_row=unknown_rows,
        redirected_row=redirected_rows,
    )


def read_messages(
    path: str | os.PathLike[str],
    *,
    tick_size: int = 100,
    book: int = 0,
    unknown: str = "drop",
) -> LobsterMessages:
    """Read a LOBSTER message file into messages for one book (see :func:`to_messages`);
    a ``ValueError`` names the file."""
    raw = read_raw(path)
    try:
        return to_messages(raw, tick_size=tick_size, book=book, unknown=unknown)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: {exc}") from None


def replay_depth(feed: LobsterMessages, levels: int = 10, **book_kwargs: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Replay ``feed`` on a fresh one-book ``Books`` and record the book after every row.

    Returns ``(prices, qtys)`` of shape (len(feed.raw), 2, levels) in the layout of
    ``Books.top_levels`` (and :meth:`LobsterDepth.in_ticks`), so row ``i`` compares with
    orderbook row ``i``. Every message is processed; rejections are not raised.
    """
    from rltrader import Books

    msgs = feed.messages.copy()
    msgs["book"] = 0
    seeds = int(np.count_nonzero(feed.source_row < 0))
    # row i's messages (zero or one) end at ends[i]; a row without one repeats the book
    ends = seeds + np.searchsorted(feed.source_row[seeds:], np.arange(1, feed.raw.shape[0] + 1))
    return levels_after(Books(1, **book_kwargs), msgs, ends, levels)


__all__ = [
    "EMPTY_ASK_PRICE",
    "EMPTY_BID_PRICE",
    "RAW_DTYPE",
    "SNAPSHOT_ID_BASE",
    "LobsterDepth",
    "LobsterMessages",
    "read_messages",
    "read_orderbook",
    "read_raw",
    "replay_depth",
    "to_messages",
]
