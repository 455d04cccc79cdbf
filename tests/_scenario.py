"""Helpers for the hand-computed scenario tests of the compiled core (``test_book_*.py``).

Expected events are written as full records: every field of ``EVENT_DTYPE`` is compared,
with the defaults that ``docs/semantics.md`` gives for fields a kind does not use
(``maker_order_id = 0``, ``maker_leaves_qty = 0``, ``maker_owner = -1``, ``reason =
NO_REASON``). ``timestamp``, ``book`` and ``message_index`` default to 0, which is what
``OrderBook`` produces for a call without a timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rltrader import (
    EVENT_DTYPE,
    MESSAGE_DTYPE,
    NO_OWNER,
    Books,
    EventKind,
    OrderBook,
    Reason,
)

FIELDS: tuple[str, ...] = EVENT_DTYPE.names  # type: ignore[assignment]

Event = dict[str, int]


def event(kind: int, order_id: int, side: int, *, price: int = 0, qty: int = 0,
          leaves: int = 0, reason: int = Reason.NO_REASON, maker: int = 0,
          maker_leaves: int = 0, owner: int = NO_OWNER, maker_owner: int = NO_OWNER,
          book: int = 0, timestamp: int = 0, index: int = 0) -> Event:
    """One expected event with every field of EVENT_DTYPE."""
    return dict(timestamp=timestamp, order_id=order_id, maker_order_id=maker, price=price,
                qty=qty, leaves_qty=leaves, maker_leaves_qty=maker_leaves, book=book,
                owner=owner, maker_owner=maker_owner, message_index=index, kind=int(kind),
                reason=int(reason), side=side)


def accepted(order_id: int, side: int, price: int, qty: int, **kw: Any) -> Event:
    return event(EventKind.ACCEPTED, order_id, side, price=price, qty=qty, leaves=qty, **kw)


def fill(order_id: int, side: int, maker: int, price: int, qty: int, leaves: int,
         maker_leaves: int, **kw: Any) -> Event:
    return event(EventKind.FILL, order_id, side, maker=maker, price=price, qty=qty,
                 leaves=leaves, maker_leaves=maker_leaves, **kw)


def cancelled(order_id: int, side: int, price: int, qty: int, reason: int,
              **kw: Any) -> Event:
    return event(EventKind.CANCELLED, order_id, side, price=price, qty=qty, reason=reason,
                 **kw)


def rejected(order_id: int, side: int, price: int, qty: int, reason: int,
             **kw: Any) -> Event:
    return event(EventKind.REJECTED, order_id, side, price=price, qty=qty, reason=reason,
                 **kw)


def triggered(order_id: int, side: int, price: int, qty: int, **kw: Any) -> Event:
    return event(EventKind.TRIGGERED, order_id, side, price=price, qty=qty, leaves=qty, **kw)


def reduced(order_id: int, side: int, price: int, qty: int, leaves: int,
            **kw: Any) -> Event:
    return event(EventKind.REDUCED, order_id, side, price=price, qty=qty, leaves=leaves, **kw)


def as_dicts(events: np.ndarray) -> list[Event]:
    return [{name: int(e[name]) for name in FIELDS} for e in events]


def _describe(e: Event) -> str:
    kind = EventKind(e["kind"]).name if e["kind"] in EventKind._value2member_map_ else e["kind"]
    reason = Reason(e["reason"]).name if e["reason"] in Reason._value2member_map_ else e["reason"]
    rest = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("kind", "reason"))
    return f"{kind}({reason}; {rest})"


def assert_events(actual: np.ndarray, expected: Sequence[Event]) -> None:
    """Every event, every field, in order."""
    got = as_dicts(actual)
    if got != list(expected):
        lines = ["events differ:"]
        for i in range(max(len(got), len(expected))):
            g = _describe(got[i]) if i < len(got) else "-"
            w = _describe(expected[i]) if i < len(expected) else "-"
            mark = "  " if i < len(got) and i < len(expected) and got[i] == expected[i] else "!!"
            lines.append(f"{mark} #{i} got      {g}")
            if mark == "!!":
                lines.append(f"   #{i} expected {w}")
        raise AssertionError("\n".join(lines))


Levels = list[tuple[int, int, int]]


def depth(ob: OrderBook, levels: int = 20) -> tuple[Levels, Levels]:
    """``(bids, asks)`` as lists of (price, qty, count), best first."""
    bids, asks = ob.depth(levels)
    return ([(int(p), int(q), int(n)) for p, q, n in bids],
            [(int(p), int(q), int(n)) for p, q, n in asks])


def book_depth(books: Books, book: int, levels: int = 20) -> tuple[Levels, Levels]:
    """``(bids, asks)`` of one book of ``books`` as lists of (price, qty, count)."""
    prices, qtys, counts = books.top_levels(levels)
    out: list[Levels] = []
    for side in range(2):
        k = int(np.count_nonzero(counts[book, side]))
        out.append([(int(prices[book, side, i]), int(qtys[book, side, i]),
                     int(counts[book, side, i])) for i in range(k)])
    return out[0], out[1]


def assert_depth(ob: OrderBook, bids: Iterable[tuple[int, int, int]],
                 asks: Iterable[tuple[int, int, int]]) -> None:
    """Resting depth, best first, and a consistent core."""
    assert depth(ob) == (list(bids), list(asks))
    ob.check_integrity()


def queue_ids(ob: OrderBook, side: int, price: int) -> list[int]:
    return [int(i) for i in ob.queue(side, price)["order_id"]]


def msg(op: int, order_id: int, side: int = 0, price: int = 0, qty: int = 0, *,
        stop_price: int = 0, new_order_id: int = 0, owner: int = NO_OWNER, tif: int = 0,
        book: int = 0, timestamp: int = 0) -> tuple[int, ...]:
    """One message as a tuple in MESSAGE_DTYPE field order."""
    return (timestamp, order_id, new_order_id, price, stop_price, qty, book, owner, op, side,
            tif)


def messages(*records: tuple[int, ...]) -> np.ndarray:
    return np.array(list(records), dtype=MESSAGE_DTYPE)


def snapshot(books: Books) -> dict[str, bytes]:
    """The raw bytes of every state array of the core, for byte-for-byte comparisons.

    ``tobytes`` keeps the padding bytes of aligned records as they are; ``ndarray.copy`` of a
    structured array need not.
    """
    return {name: getattr(books, name).tobytes() for name in STATE_ARRAYS}


STATE_ARRAYS = ("book_array", "level_array", "bitmap_array", "summary_array", "order_array",
                "hash_array", "account_array")


def assert_same_state(before: dict[str, bytes], books: Books) -> None:
    changed = [name for name in STATE_ARRAYS if getattr(books, name).tobytes() != before[name]]
    assert not changed, f"state arrays changed: {changed}"
