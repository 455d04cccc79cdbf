"""Exact LOBSTER rebuild: message file + orderbook file -> messages whose book equals every row.

LOBSTER's level-``L`` files only show what happens inside the top ``L`` price levels. Three
kinds of liquidity are therefore invisible to a message-only replay:

- orders resting before the file starts (their ids never appear in a type-1 row);
- orders added, reduced or deleted while their level sat deeper than ``L``;
- at the first row, everything (the book before it is not in the files).

Both files together still pin the visible book down exactly, because row ``i`` of the
orderbook file is the top ``L`` levels after message row ``i``. :func:`exact_messages` walks
the rows once and keeps a model of the book (orders by id, FIFO per level) in step with the
messages it emits. For row ``i``:

1. **Reveal.** The *visible range* of a side is every price at least as good as its ``L``-th
   level (the whole side when fewer than ``L`` levels show). When row ``i``'s range reaches
   deeper than row ``i-1``'s, levels came up from beyond the visible depth. Inside the newly
   visible band the book before message ``i`` is known (row ``i`` with message ``i``
   undone), and the model is made equal to it: a shortfall becomes a synthetic *aggregate*
   order (one new resting ``LIMIT`` for the hidden lots), a surplus (orders the file never
   showed being cancelled out of view) is removed, from the level's aggregates first (oldest
   first), then from its file orders, newest first. Row 0 reveals everything: its aggregates
   are the snapshot seeds.
2. **Message.** Type 1 adds the order. Types 2-4 take ``size`` lots from the order; when the
   model holds fewer (an order older than the file, or one trimmed in step 1) the rest is
   *redirected* to the level's other orders in the same removal order, so the level always
   moves by exactly ``size`` (LOBSTER's own consistency rule). Types 5-7 change nothing
   visible and emit nothing (type 7 rows mark halts: price -1 halt, 0 quoting resumes,
   1 trading resumes).
3. **Check.** The message's level is compared with row ``i``; a difference (a file that
   breaks LOBSTER's rule) is corrected like step 1 and counted in ``post_check_fixes``.

Every synthetic message carries row ``i``'s timestamp and sits before row ``i``'s message.
Aggregate ids extend the reader's snapshot scheme with a generation per level:
``SNAPSHOT_ID_BASE + (generation << 42) + 2 * price + (side == SELL)`` (generation 0 is the
reader's id). A replay of the result reproduces all ``L`` levels of every row by
construction; the tests check it through the core, and check that synthetic orders appear
only where the previous row could not see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rltrader.core.messages import empty_messages
from rltrader.data.lobster import (
    RAW_DTYPE,
    SNAPSHOT_ID_BASE,
    LobsterDepth,
    LobsterMessages,
    _to_ticks,
)

_LIMIT, _CANCEL, _REDUCE, _EXECUTE = 1, 3, 4, 8  # rltrader Op values (checked in tests)

#: Why a message of an :class:`ExactFeed` is there.
FROM_FILE, REVEAL, REDIRECT, POST_CHECK = 0, 1, 2, 3

_GENERATION_SHIFT = 42  # 2 * price + 1 < 2**42 for every price <= MAX_PRICE
_NOT_VISIBLE = np.iinfo(np.int64).max  # visible-range bound of "nothing visible yet"
_ALL_VISIBLE = np.iinfo(np.int64).min  # bound of a side showing fewer than L levels


def aggregate_id(side: int, price: int, generation: int = 0) -> int:
    """Id of the ``generation``-th synthetic aggregate order at ``(side, price ticks)``."""
    return SNAPSHOT_ID_BASE + (generation << _GENERATION_SHIFT) + 2 * price + (side < 0)


@dataclass(frozen=True)
class ExactFeed:
    """Messages that rebuild every orderbook row exactly, and where each came from.

    Attributes
    ----------
    feed : LobsterMessages
        ``feed.messages`` in replay order; ``feed.source_row[k]`` is the row whose step
        emitted message ``k`` (synthetic messages precede the row's own message, so
        :func:`rltrader.data.lobster.replay_depth` compares them row by row).
        ``redirected_row`` lists rows of types 2-4 applied (partly) to other orders of the
        level; ``unknown_row`` is empty (nothing is dropped).
    reason : ndarray of int8
        Per message: ``FROM_FILE``, ``REVEAL``, ``REDIRECT`` or ``POST_CHECK``.
    """

    feed: LobsterMessages
    reason: np.ndarray

    @property
    def messages(self) -> np.ndarray:
        return self.feed.messages

    @property
    def synthetic(self) -> np.ndarray:
        """Mask of messages not taken one-to-one from a file row."""
        return self.reason != FROM_FILE

    def stats(self) -> dict[str, int]:
        """Counts of synthetic work: aggregate orders added and lots they carry, removals
        (cancels and reductions of orders shown deeper than they were), redirected rows."""
        m = self.feed.messages
        add = (self.reason != FROM_FILE) & (m["op"] == _LIMIT)
        remove = (self.reason != FROM_FILE) & (m["op"] != _LIMIT)
        return {
            "synthetic_orders": int(add.sum()),
            "synthetic_lots": int(m["qty"][add].sum()),
            "seed_orders": int((add & (self.feed.source_row == 0)).sum()),
            "removal_messages": int((remove & (self.reason == REVEAL)).sum()),
            "redirect_messages": int((self.reason == REDIRECT).sum()),
            "redirected_rows": int(self.feed.redirected_row.size),
            "post_check_fixes": int((self.reason == POST_CHECK).sum()),
        }


class _Model:
    """Orders by id and a FIFO of ids per level, mirroring what the emitted messages do."""

    def __init__(self, book: int) -> None:
        self.book = book
        self.orders: dict[int, list[int]] = {}                  # id -> [side, price, leaves]
        self.queue: dict[tuple[int, int], dict[int, None]] = {}  # (side, price) -> ids, FIFO
        self.total: dict[tuple[int, int], int] = {}             # (side, price) -> lots
        self.generation: dict[tuple[int, int], int] = {}
        self.out: list[tuple[int, int, int, int, int, int, int, int]] = []
        self.row = 0
        self.timestamp = 0

    def emit(self, op: int, side: int, price: int, qty: int, order_id: int, reason: int
             ) -> None:
        self.out.append((self.timestamp, op, side, price, qty, order_id, self.row, reason))

    def add(self, order_id: int, side: int, price: int, qty: int, reason: int) -> None:
        if order_id in self.orders:
            raise ValueError(f"row {self.row}: order id {order_id} added while live")
        key = (side, price)
        self.orders[order_id] = [side, price, qty]
        self.queue.setdefault(key, {})[order_id] = None
        self.total[key] = self.total.get(key, 0) + qty
        self.emit(_LIMIT, side, price, qty, order_id, reason)

    def add_aggregate(self, side: int, price: int, qty: int, reason: int) -> None:
        key = (side, price)
        gen = self.generation.get(key, 0)
        self.generation[key] = gen + 1
        self.add(aggregate_id(side, price, gen), side, price, qty, reason)

    def take(self, order_id: int, qty: int, execute: bool, reason: int) -> None:
        """Remove ``qty`` (<= leaves) lots of one order: EXECUTE, REDUCE or CANCEL."""
        side, price, leaves = self.orders[order_id]
        key = (side, price)
        self.total[key] -= qty
        if qty == leaves:
            del self.orders[order_id]
            del self.queue[key][order_id]
        else:
            self.orders[order_id][2] = leaves - qty
        op = _EXECUTE if execute else (_CANCEL if qty == leaves else _REDUCE)
        self.emit(op, side, price, qty, order_id, reason)

    def take_level(self, side: int, price: int, qty: int, execute: bool, reason: int) -> None:
        """Take ``qty`` lots from a level: aggregates oldest first, then file orders newest
        first (the caller ensures the level holds them)."""
        ids = list(self.queue.get((side, price), ()))
        order = [i for i in ids if i >= SNAPSHOT_ID_BASE] + [
            i for i in reversed(ids) if i < SNAPSHOT_ID_BASE]
        for order_id in order:
            if qty == 0:
                break
            q = min(qty, self.orders[order_id][2])
            self.take(order_id, q, execute, reason)
            qty -= q

    def set_level(self, side: int, price: int, target: int, reason: int) -> None:
        have = self.total.get((side, price), 0)
        if target > have:
            self.add_aggregate(side, price, target - have, reason)
        elif target < have:
            self.take_level(side, price, have - target, False, reason)

    def prices(self, side: int) -> list[int]:
        return [p for (s, p), q in self.total.items() if s == side and q > 0]


def _visible_bound(prices: np.ndarray, qtys: np.ndarray) -> np.ndarray:
    """Per row and side (bid 0, ask 1): the key ``side * price`` of the deepest visible level,
    or ``_ALL_VISIBLE`` when fewer than ``levels`` show. Better prices have larger keys."""
    sign = np.array([1, -1], dtype=np.int64)[None, :]
    full = qtys[:, :, -1] > 0
    return np.where(full, sign * prices[:, :, -1], _ALL_VISIBLE)


def exact_messages(raw: np.ndarray, depth: LobsterDepth, *, tick_size: int = 100,
                   book: int = 0) -> ExactFeed:
    """Messages whose replay on an empty book reproduces every row of ``depth``.

    Parameters
    ----------
    raw : ndarray of RAW_DTYPE
        Message rows (:func:`rltrader.data.lobster.read_raw`).
    depth : LobsterDepth
        The matching orderbook rows (same count: row ``i`` is the book after ``raw[i]``).
    tick_size : int
        Tick in LOBSTER price units ($0.0001); prices must be multiples.
    book : int
        Value of the messages' ``book`` field.

    Returns
    -------
    ExactFeed
        See the module docstring for the method.
    """
    if raw.dtype != RAW_DTYPE:
        raise TypeError(f"raw must have RAW_DTYPE, got {raw.dtype}")
    if len(depth) != raw.shape[0]:
        raise ValueError(f"{raw.shape[0]} message rows but {len(depth)} orderbook rows")
    if raw.shape[0] and raw["order_id"].max() >= SNAPSHOT_ID_BASE:
        raise ValueError(f"order ids must stay below {SNAPSHOT_ID_BASE} (aggregate ids)")
    prices, qtys = depth.in_ticks(tick_size)
    bound = _visible_bound(prices, qtys)
    previous = np.vstack([np.full((1, 2), _NOT_VISIBLE, dtype=np.int64), bound[:-1]])
    reveal = bound < previous  # (rows, 2): the visible range reaches deeper than before
    book_rows = np.flatnonzero(raw["type"] <= 4)
    tick_price = np.zeros(raw.shape[0], dtype=np.int64)
    tick_price[book_rows] = _to_ticks(raw["price"][book_rows], tick_size, "price", book_rows)

    model = _Model(book)
    redirected: list[int] = []
    kinds = raw["type"].tolist()
    for i in range(raw.shape[0]):
        model.row, model.timestamp = i, int(raw["timestamp"][i])
        kind = kinds[i]
        side, price = int(raw["direction"][i]), int(tick_price[i])
        size, order_id = int(raw["size"][i]), int(raw["order_id"][i])
        if kind <= 4 and side not in (1, -1):
            raise ValueError(f"row {i}: direction {side} is not 1 or -1")
        for si, sign in ((0, 1), (1, -1)):
            if not reveal[i, si]:
                continue
            shown = zip(prices[i, si].tolist(), qtys[i, si].tolist(), strict=True)
            row = {p: q for p, q in shown if q}
            if kind <= 4 and side == sign:  # undo the message: the book just before it
                row[price] = row.get(price, 0) - (size if kind == 1 else -size)
            lo, hi = bound[i, si], previous[i, si]
            band = {p for p in (*row, *model.prices(sign)) if lo <= sign * p < hi}
            for p in sorted(band, key=lambda p: -sign * p):
                model.set_level(sign, p, row.get(p, 0), REVEAL)
        if kind == 1:
            model.add(order_id, side, price, size, FROM_FILE)
        elif kind <= 4:
            _reference(model, order_id, side, price, size, kind, redirected)
        else:
            continue
        si = 0 if side == 1 else 1
        if side * price >= bound[i, si]:
            hit = np.flatnonzero(prices[i, si] == price)
            target = int(qtys[i, si, hit[0]]) if hit.size else 0
            model.set_level(side, price, target, POST_CHECK)
    return _finish(model, raw, redirected)


def _reference(model: _Model, order_id: int, side: int, price: int, size: int, kind: int,
               redirected: list[int]) -> None:
    """Types 2-4: take ``size`` lots from the order, the rest from its level."""
    execute = kind == 4
    own = model.orders.get(order_id)
    if own is not None and (own[0], own[1]) != (side, price):
        raise ValueError(f"row {model.row}: order {order_id} rests at side {own[0]} price "
                         f"{own[1]}, the row says side {side} price {price}")
    leaves = own[2] if own is not None else 0
    mine = min(size, leaves)
    rest = size - mine
    if rest:
        redirected.append(model.row)
        have = model.total.get((side, price), 0) - leaves
        if have < rest:  # the level holds less than the row takes: hidden lots, shown now
            model.add_aggregate(side, price, rest - have, REDIRECT)
    if mine:
        model.take(order_id, mine, execute, FROM_FILE)
    if rest:
        model.take_level(side, price, rest, execute, REDIRECT)


def _finish(model: _Model, raw: np.ndarray, redirected: list[int]) -> ExactFeed:
    cols = np.array(model.out, dtype=np.int64).reshape(-1, 8)
    msgs = empty_messages(cols.shape[0])
    msgs["book"] = model.book
    for k, name in enumerate(("timestamp", "op", "side", "price", "qty", "order_id")):
        msgs[name] = cols[:, k]
    kind = raw["type"]
    feed = LobsterMessages(
        messages=msgs,
        source_row=cols[:, 6].copy(),
        raw=raw,
        off_book_row=np.flatnonzero(kind >= 5),
        unknown_row=np.zeros(0, dtype=np.int64),
        redirected_row=np.array(sorted(set(redirected)), dtype=np.int64),
    )
    return ExactFeed(feed=feed, reason=cols[:, 7].astype(np.int8))


__all__ = ["FROM_FILE", "POST_CHECK", "REDIRECT", "REVEAL", "ExactFeed", "aggregate_id",
           "exact_messages"]
