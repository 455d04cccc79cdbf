"""Level-2 feeds (price -> total size) as messages for the core's order-by-order book.

An L2 feed says "the level at price p on side s now holds q"; the core holds orders. Each
non-empty level is therefore held as **one synthetic resting order** whose id is derived
from the side and price (:func:`level_order_id`), and setting a level to ``q`` from ``old``
becomes:

==================  =====================================================================
change              message
==================  =====================================================================
``q == old``        none
``q == 0``          ``CANCEL`` of the level's order
``old == 0``        ``LIMIT`` GTC for ``q`` (a new level)
``q < old``         ``REDUCE`` by ``old - q`` (the order keeps its queue position)
``q > old``         ``REPLACE`` at the same price for ``q``: cancel + re-add, at the back
==================  =====================================================================

Every message is exact for the level's price and size. The queue consequence of the last
row: when other orders share the level (an agent's order placed in a simulation), an
increase moves the *whole* displayed size behind them, i.e. it grants the agent the
priority of the older lots. An L2 feed does not say which lots are old, so any choice is a
model; this one is the simplest exact one and keeps one synthetic order per level (so a
reduction never has to pick which synthetic order shrinks).

Within one feed event (one exchange message), all decreases and deletions are emitted
before increases and new levels: the book before the event is not crossed, removing size
keeps it so, and adding size one level at a time can only cross if the event's final book
is crossed. A crossed final book would make the core trade; :func:`check_replay` raises
when that happens (no such event occurs in the samples). Repeated prices within one event
keep the last size ("the latest update covers the previous one").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rltrader.constants import BUY, CANCEL, FILL, LIMIT, REDUCE, REJECTED, REPLACE, SELL
from rltrader.messages import empty_messages

#: Synthetic level orders have ids at or above this, so that other orders (an agent's) can
#: use any id below it.
LEVEL_ID_BASE = 1 << 52


def level_order_id(side: int, price: int) -> int:
    """Id of the synthetic order that holds the level at ``price`` ticks on ``side``."""
    return LEVEL_ID_BASE + 2 * price + (side < 0)


@dataclass
class LevelBook:
    """The feed's levels (ticks -> lots per side) and the messages that rebuilt them.

    ``tag`` is stored with each message (an update id or a row number) so that a problem
    found later can be traced back to the feed.
    """

    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    columns: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)
    unchanged: int = 0

    def _side(self, side: int) -> dict[int, int]:
        return self.bids if side > 0 else self.asks

    def update(self, changes: list[tuple[int, int, int]], timestamp: int, tag: int) -> None:
        """Apply one event: ``(side, price ticks, lots)`` per level, ``lots == 0`` deletes."""
        latest = {(side, price): lots for side, price, lots in changes}
        rising = []
        for (side, price), lots in latest.items():
            if lots > self._side(side).get(price, 0):
                rising.append((side, price, lots))
            else:
                self._set(side, price, lots, timestamp, tag)
        for side, price, lots in rising:
            self._set(side, price, lots, timestamp, tag)

    def reset(self, changes: list[tuple[int, int, int]], timestamp: int, tag: int) -> None:
        """Make the book exactly ``changes`` (a full snapshot): absent levels are deleted."""
        listed = {(side, price) for side, price, _ in changes}
        gone = [(side, price, 0) for side, levels in ((int(BUY), self.bids), (int(SELL), self.asks))
                for price in levels if (side, price) not in listed]
        self.update(gone + changes, timestamp, tag)

    def _set(self, side: int, price: int, lots: int, timestamp: int, tag: int) -> None:
        levels = self._side(side)
        old = levels.get(price, 0)
        if lots == old:
            self.unchanged += 1
            return
        if lots == 0:
            op, qty = CANCEL, old
            del levels[price]
        else:
            op, qty = (LIMIT if old == 0 else REDUCE if lots < old else REPLACE), lots
            if op == REDUCE:
                qty = old - lots
            levels[price] = lots
        self.columns.append((timestamp, op, level_order_id(side, price), side, price, qty, tag))

    def best(self) -> tuple[int, int, int, int]:
        """``(bid price, bid lots, ask price, ask lots)``, zeros for an empty side (O(levels))."""
        bid = max(self.bids, default=0)
        ask = min(self.asks, default=0)
        return bid, self.bids.get(bid, 0), ask, self.asks.get(ask, 0)

    def to_array(self, book: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(messages, tags)``: the messages so far as MESSAGE_DTYPE, and their tags."""
        table = np.array(self.columns, dtype=np.int64).reshape(-1, 7)
        msgs = empty_messages(table.shape[0])
        for j, name in enumerate(("timestamp", "op", "order_id", "side", "price", "qty")):
            msgs[name] = table[:, j]
        msgs["book"] = book
        return msgs, np.ascontiguousarray(table[:, 6])


def check_replay(events: np.ndarray, tags: np.ndarray, what: str = "update") -> None:
    """Raise when replaying L2 messages made the core reject a message or trade.

    Either means the feed did something an L2 book cannot (a crossed book, a level the
    reader lost track of); ``ValueError`` names the first such message's tag.
    """
    bad = np.flatnonzero((events["kind"] == REJECTED) | (events["kind"] == FILL))
    if bad.size:
        event = events[bad[0]]
        kind = "rejected" if event["kind"] == REJECTED else "traded (the book crossed)"
        raise ValueError(f"{what} {tags[event['message_index']]}: the core {kind}: "
                         f"{event}")


def top_of_book_at(messages: np.ndarray, tags: np.ndarray, at: np.ndarray,
                   **book_kwargs: int) -> np.ndarray:
    """Best ``(bid price, bid lots, ask price, ask lots)`` after the messages tagged ``<= t``
    for each ``t`` of ``at`` (ascending), replaying ``messages`` (tags ascending) on a fresh
    one-book ``Books``; shape ``(len(at), 4)``, zeros for an empty side. Raises like
    :func:`check_replay` if the replay rejects or trades.
    """
    from rltrader import Books

    books = Books(1, **book_kwargs)
    prices = np.zeros((1, 2, 1), dtype=np.int64)
    qtys = np.zeros((1, 2, 1), dtype=np.int64)
    counts = np.zeros((1, 2, 1), dtype=np.int32)
    out = np.zeros((at.shape[0], 4), dtype=np.int64)
    done = 0
    for k, end in enumerate(np.searchsorted(tags, at, side="right")):
        if end > done:
            events = books.process_all(messages[done:end])
            check_replay(events, tags[done:end])
            done = end
        books.top_levels(1, prices, qtys, counts)
        out[k] = prices[0, 0, 0], qtys[0, 0, 0], prices[0, 1, 0], qtys[0, 1, 0]
    return out
