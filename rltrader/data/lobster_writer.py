"""Export a simulated market as a LOBSTER message file and orderbook file.

The core's event stream of one book becomes LOBSTER rows the way LOBSTER derives them from
NASDAQ ITCH (every row moves one visible level by its size):

==========================================  ===============================================
core event                                  LOBSTER row
==========================================  ===============================================
``FILL``                                    type 4, the *maker's* id, side and price
``REDUCED``                                 type 2 (partial cancel)
``CANCELLED`` of a resting order            type 3 (reasons ``CANCEL_REQUESTED``,
                                            ``REPLACED``, and ``SELF_TRADE`` of a maker)
``ACCEPTED`` of an order that rests         type 1 with the size that rests, placed after
                                            the message's other rows (ITCH adds only what
                                            rests of a marketable order)
``CANCELLED`` of a taker, ``REJECTED``      none: nothing changed on the book
==========================================  ===============================================

Row ``i`` of the orderbook file is the top ``levels`` levels after message row ``i``,
computed from the rows themselves; after the last row of each core message it equals
``Books.top_levels`` (the round-trip tests check both files). Stop orders are not supported
(LOBSTER has none, and a pending stop's events do not say where it would rest): a
``TRIGGERED`` event raises ``ValueError``. The events must start from an empty book and come
from one ``process``/``process_all`` call sequence with non-decreasing ``message_index``
(as :meth:`rltrader.Books.process_all` returns them).
"""

from __future__ import annotations

import bisect
import os

import numpy as np

from rltrader.core.constants import (
    ACCEPTED,
    CANCELLED,
    FILL,
    REDUCED,
    TRIGGERED,
    Reason,
)
from rltrader.data.lobster import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, RAW_DTYPE, LobsterDepth

_RESTING_CANCEL = (Reason.CANCEL_REQUESTED, Reason.REPLACED, Reason.SELF_TRADE)


def _last_of_taker(events: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """For each ACCEPTED event index, the index of the last event of the same order id in
    the same message (the ACCEPTED itself when nothing follows)."""
    msg, ids = events["message_index"], events["order_id"]
    taker = np.flatnonzero(np.isin(events["kind"], (ACCEPTED, FILL, CANCELLED)))
    order = taker[np.lexsort((taker, ids[taker], msg[taker]))]
    group_end = np.ones(order.size, dtype=bool)
    group_end[:-1] = (msg[order][1:] != msg[order][:-1]) | (ids[order][1:] != ids[order][:-1])
    ends = np.flatnonzero(group_end)
    last = np.empty(events.shape[0], dtype=np.int64)
    last[order] = order[ends[np.searchsorted(ends, np.arange(order.size))]]
    return last[accepted]


def lobster_rows(events: np.ndarray, *, book: int = 0, tick_size: int = 100) -> np.ndarray:
    """The LOBSTER message rows (``RAW_DTYPE``) of one book's events, in order.

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE
        Events of ``Books.process_all`` (other books' events are ignored).
    book : int
        The book to export.
    tick_size : int
        Tick in LOBSTER price units ($0.0001): LOBSTER price = ticks x ``tick_size``.
    """
    ev = events[events["book"] == book]
    if np.any(ev["kind"] == TRIGGERED):
        raise ValueError("events hold TRIGGERED stops: stop orders cannot be exported to "
                         "LOBSTER")
    if np.any(np.diff(ev["message_index"]) < 0):
        raise ValueError("message_index decreases: pass the events of one process_all call")
    kind, reason = ev["kind"], ev["reason"]
    fill = kind == FILL
    reduced = kind == REDUCED
    cancel = (kind == CANCELLED) & np.isin(reason, _RESTING_CANCEL)
    # a self-trade cancel of the incoming order itself is not a resting order's cancel
    accepted = np.flatnonzero(kind == ACCEPTED)
    taker_of_msg = np.full(int(ev["message_index"].max(initial=-1)) + 1, -1, dtype=np.int64)
    taker_of_msg[ev["message_index"][accepted]] = ev["order_id"][accepted]
    cancel &= ~((reason == Reason.SELF_TRADE)
                & (ev["order_id"] == taker_of_msg[ev["message_index"]]))
    last = _last_of_taker(ev, accepted)
    rests = (kind[last] != CANCELLED) & (ev["leaves_qty"][last] > 0)
    adds, at = accepted[rests], last[rests]
    # an add goes after the last event of its message (its fills, self-trade cancels)
    end = np.searchsorted(ev["message_index"], ev["message_index"][adds], side="right") - 1
    base = np.flatnonzero(fill | reduced | cancel)
    b = ev[base]
    is_fill = b["kind"] == FILL
    columns = {
        "timestamp": (b["timestamp"], ev["timestamp"][adds]),
        "type": (np.select([is_fill, b["kind"] == REDUCED], [4, 2], 3), np.ones(adds.size)),
        "order_id": (np.where(is_fill, b["maker_order_id"], b["order_id"]),
                     ev["order_id"][adds]),
        "size": (b["qty"], ev["leaves_qty"][at]),
        "price": (b["price"] * tick_size, ev["price"][adds] * tick_size),
        "direction": (np.where(is_fill, -b["side"], b["side"]), ev["side"][adds]),
    }
    order = np.argsort(np.concatenate([2 * base, 2 * end + 1]), kind="stable")
    rows = np.zeros(order.size, dtype=RAW_DTYPE)
    for name, (first, second) in columns.items():
        rows[name] = np.concatenate([first, second])[order]
    return rows


def orderbook_rows(rows: np.ndarray, levels: int = 10) -> LobsterDepth:
    """The top ``levels`` levels after each message row, starting from an empty book.

    Raises ``ValueError`` naming the row when a row removes more than its level holds (the
    rows do not start from an empty book).
    """
    out = {name: np.zeros((rows.shape[0], levels), dtype=np.int64)
           for name in ("ask_price", "ask_qty", "bid_price", "bid_qty")}
    out["ask_price"][:] = EMPTY_ASK_PRICE
    out["bid_price"][:] = EMPTY_BID_PRICE
    qty: tuple[dict[int, int], dict[int, int]] = ({}, {})   # bids, asks: price -> lots
    keys: tuple[list[int], list[int]] = ([], [])            # sorted, best first: -bid, ask
    sign = (-1, 1)
    change = np.where(rows["type"] == 1, rows["size"], -rows["size"]).tolist()
    for i, (side, price, delta) in enumerate(zip(rows["direction"].tolist(),
                                                 rows["price"].tolist(), change, strict=True)):
        si = 0 if side == 1 else 1
        level = qty[si].get(price, 0) + delta
        if level < 0:
            raise ValueError(f"row {i} removes {-delta} lots at {price} on side {side}, "
                             f"which holds {level - delta}: not from an empty book")
        if level == 0:
            del qty[si][price]
            keys[si].pop(bisect.bisect_left(keys[si], sign[si] * price))
        else:
            if price not in qty[si]:
                bisect.insort(keys[si], sign[si] * price)
            qty[si][price] = level
        for sj, name in ((0, "bid"), (1, "ask")):
            top = [sign[sj] * k for k in keys[sj][:levels]]
            out[f"{name}_price"][i, :len(top)] = top
            out[f"{name}_qty"][i, :len(top)] = [qty[sj][p] for p in top]
    return LobsterDepth(**out)


def _format_time(timestamp: np.ndarray) -> list[str]:
    seconds, ns = np.divmod(timestamp, 1_000_000_000)
    return [f"{s}.{n:09d}" for s, n in zip(seconds.tolist(), ns.tolist(), strict=True)]


def orderbook_table(depth: LobsterDepth) -> np.ndarray:
    """Visible levels as LOBSTER orderbook-file rows (rows, 4L): ``ask_price_1, ask_size_1,
    bid_price_1, bid_size_1, ask_price_2, ...``."""
    return np.stack([depth.ask_price, depth.ask_qty, depth.bid_price, depth.bid_qty],
                    axis=2).reshape(len(depth), 4 * depth.levels)


def write_lobster(message_path: str | os.PathLike[str], orderbook_path: str | os.PathLike[str],
                  events: np.ndarray, *, book: int = 0, levels: int = 10,
                  tick_size: int = 100) -> int:
    """Write one book's events as a LOBSTER message file and orderbook file.

    Times are written as seconds with 9 decimals (timestamps are ns), prices as
    ticks x ``tick_size``, empty levels with LOBSTER's fillers. Returns the number of rows.
    """
    rows = lobster_rows(events, book=book, tick_size=tick_size)
    depth = orderbook_rows(rows, levels)
    with open(message_path, "w") as f:
        for t, r in zip(_format_time(rows["timestamp"]), rows.tolist(), strict=True):
            f.write(f"{t},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}\n")
    np.savetxt(orderbook_path, orderbook_table(depth), fmt="%d", delimiter=",")
    return int(rows.shape[0])


__all__ = ["lobster_rows", "orderbook_rows", "orderbook_table", "write_lobster"]
