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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rltrader.core.constants import (
    BUY,
    CANCEL,
    FILL,
    LEVEL_ID_BASE,
    LIMIT,
    REDUCE,
    REJECTED,
    REPLACE,
    SELL,
)
from rltrader.core.messages import empty_events, empty_messages

if TYPE_CHECKING:
    from rltrader._book import Books



_BUY, _SELL = int(BUY), int(SELL)
_LIMIT, _CANCEL, _REDUCE, _REPLACE = int(LIMIT), int(CANCEL), int(REDUCE), int(REPLACE)


def level_order_id(side: Any, price: Any) -> Any:
    """Id of the synthetic order that holds the level at ``price`` ticks on ``side``
    (ints, or numpy arrays element-wise)."""
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

    def update(self, changes: list[tuple[int, int, int]], timestamp: int, tag: int) -> None:
        """Apply one event: ``(side, price ticks, lots)`` per level, ``lots == 0`` deletes."""
        bids, asks = self.bids, self.asks
        falling: list[tuple[int, int, int]] = []
        rising: list[tuple[int, int, int]] = []
        for (side, price), lots in {(s, p): q for s, p, q in changes}.items():
            old = (bids if side > 0 else asks).get(price, 0)
            (rising if lots > old else falling).append((side, price, lots))
        emit = self.columns.append
        for side, price, lots in falling + rising:
            levels = bids if side > 0 else asks
            old = levels.get(price, 0)
            if lots == old:
                self.unchanged += 1
                continue
            if lots == 0:
                op, qty = _CANCEL, old
                del levels[price]
            elif old == 0:
                op, qty = _LIMIT, lots
            elif lots < old:
                op, qty = _REDUCE, old - lots
            else:
                op, qty = _REPLACE, lots
            if lots:
                levels[price] = lots
            emit((timestamp, op, LEVEL_ID_BASE + 2 * price + (side < 0), side, price, qty, tag))

    def reset(self, changes: list[tuple[int, int, int]], timestamp: int, tag: int) -> None:
        """Make the book exactly ``changes`` (a full snapshot): absent levels are deleted."""
        listed = {(side, price) for side, price, _ in changes}
        gone = [(side, price, 0) for side, levels in ((_BUY, self.bids), (_SELL, self.asks))
                for price in levels if (side, price) not in listed]
        self.update(gone + changes, timestamp, tag)

    def to_array(self, book: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(messages, tags)``: the messages so far as MESSAGE_DTYPE, and their tags."""
        try:
            table = np.array(self.columns, dtype=np.int64).reshape(-1, 7)
        except OverflowError:
            raise ValueError("a timestamp or tag does not fit int64") from None
        msgs = empty_messages(table.shape[0])
        for j, name in enumerate(("timestamp", "op", "order_id", "side", "price", "qty")):
            msgs[name] = table[:, j]
        msgs["book"] = book
        return msgs, np.ascontiguousarray(table[:, 6])


def check_replay(events: np.ndarray, tags: np.ndarray, *, allow_trades: bool = False) -> None:
    """Raise when a replay made the core reject a message, or trade (unless allowed).

    Either means the feed did something its book cannot (an L2 book that crossed, a level
    or order the reader lost track of); ``ValueError`` names the first such message's tag
    (``tags[i]`` belongs to message ``i`` of the replayed batch).
    """
    bad = events["kind"] == REJECTED
    if not allow_trades:
        bad |= events["kind"] == FILL
    bad = np.flatnonzero(bad)
    if bad.size:
        event = events[bad[0]]
        kind = "rejected" if event["kind"] == REJECTED else "traded (the book crossed)"
        raise ValueError(f"message tagged {tags[event['message_index']]}: the core {kind}: "
                         f"{event}")


def worst_case_events(books: Books) -> int:
    """At most how many events the next message on any book of ``books`` can emit.

    This is the core's bound for the message that can emit the most (a ``REPLACE``, or a
    taker that triggers stops: every resting order filled or cancelled, six events per
    pending stop, six besides); ``Books.process`` needs that much room before it runs a
    message and raises when a whole buffer is smaller.
    """
    state = books.book_array
    return 6 + int((state["n_resting"].sum(axis=1) + 6 * state["n_stops"]).max())


def process_every(books: Books, messages: np.ndarray, events: np.ndarray,
                  on_events: Callable[[np.ndarray, int], None] | None = None, *,
                  start: int = 0, stop: int | None = None) -> np.ndarray:
    """Process every message of ``messages[start:stop]`` on a one-book ``books``.

    ``events`` (``EVENT_DTYPE``) is reused for every ``Books.process`` call: one call when
    it holds all the batch's events, more when the core returns early. Before each call it
    is replaced by a larger one if it could not hold the next message's worst case
    (:func:`worst_case_events`), so no message is ever left unprocessed. After each call
    ``on_events(written, first)`` receives the events written (a view, overwritten by the
    next call): message ``first + written["message_index"]`` of ``messages`` emitted each.

    Returns the buffer used last (``events`` or its replacement), to be passed again.
    """
    if books.n_books != 1:
        raise ValueError(f"books must hold one book, got {books.n_books}")
    done = start
    stop = messages.shape[0] if stop is None else stop
    while done < stop:
        need = worst_case_events(books)
        if events.shape[0] < need:
            events = empty_events(max(need, 2 * events.shape[0]))
        consumed, written = books.process(messages[done:stop], events)
        if on_events is not None:
            on_events(events[:written], done)
        done += consumed
    return events


def levels_after(books: Books, messages: np.ndarray, ends: np.ndarray, levels: int,
                 check: Callable[[np.ndarray, int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The top ``levels`` of a one-book ``books`` after ``messages[:end]``, for each ``end``
    of ``ends`` (ascending message counts in ``[0, len(messages)]``; repeats allowed).

    ``messages`` (``MESSAGE_DTYPE``, book 0) are processed once, in order, continuing from
    the state ``books`` is in; none is ever skipped (see :func:`process_every`, which also
    says what ``check(events, first)`` receives after each ``Books.process`` call).

    Returns ``(prices, qtys)`` of shape ``(len(ends), 2, levels)`` in the layout of
    ``Books.top_levels``: side 0 bids, 1 asks, best first, prices in ticks, quantities in
    lots, missing levels 0.
    """
    ends = np.asarray(ends, dtype=np.int64)
    if ends.ndim != 1:
        raise ValueError(f"ends must be 1-D, got shape {ends.shape}")
    if ends.size and (ends[0] < 0 or ends[-1] > messages.shape[0] or np.any(np.diff(ends) < 0)):
        raise ValueError(f"ends must ascend within [0, {messages.shape[0]}] (message counts)")
    prices = np.zeros((ends.shape[0], 2, levels), dtype=np.int64)
    qtys = np.zeros((ends.shape[0], 2, levels), dtype=np.int64)
    counts = np.zeros((1, 2, levels), dtype=np.int32)
    # Room for the whole replay's usual events (one or two a message) in one buffer,
    # allocated once: process_all would allocate that much on every call.
    events = empty_events(messages.shape[0] + 1024)
    done = 0
    for k, end in enumerate(ends.tolist()):
        events = process_every(books, messages, events, check, start=done, stop=end)
        done = end
        books.top_levels(levels, prices[k:k + 1], qtys[k:k + 1], counts)
    return prices, qtys


def depth_after(messages: np.ndarray, tags: np.ndarray, at: np.ndarray, levels: int = 1, *,
                allow_trades: bool = False, **book_kwargs: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The top ``levels`` of the book after the messages tagged ``<= t``, for each ``t`` of
    ``at``, replaying ``messages`` (tags ascending, ``at`` ascending) on a fresh one-book
    ``Books``.

    Returns ``(prices, qtys)`` of shape ``(len(at), 2, levels)`` as :func:`levels_after`.
    Raises like :func:`check_replay` if the core rejects a message, or trades unless
    ``allow_trades`` (an L3 feed's ``EXECUTE`` messages trade; an L2 book never should).
    """
    from rltrader import Books

    def check(events: np.ndarray, first: int) -> None:
        check_replay(events, tags[first:], allow_trades=allow_trades)

    ends = np.searchsorted(tags, at, side="right")
    return levels_after(Books(1, **book_kwargs), messages, ends, levels, check)
