"""Coinbase Exchange (formerly GDAX) level-3 data as the core's message array.

A level-3 book is rebuilt from two inputs:

- the REST snapshot ``GET /products/<id>/book?level=3``: ``{"sequence": S, "bids": [[price,
  size, order_id], ...], "asks": [...]}``, best price first and, within a price, in queue
  order;
- the websocket ``full`` channel, one JSON object per message (JSON lines, optionally
  prefixed by a receive time in ns, or one JSON array), each with a ``sequence``.

Messages with ``sequence <= S`` are already in the snapshot and are skipped (counted in
:attr:`CoinbaseFeed.stale`); after that every sequence must be exactly the previous one plus
one, else ``ValueError`` names the file, the line and both sequence numbers.

How messages become core messages (one book, ``owner = NO_OWNER``, ``tif = GTC``):

==========  ===========================================================================
type        message
==========  ===========================================================================
snapshot    one ``LIMIT`` per order, bids then asks, in the snapshot's order (so each
            level's queue is the snapshot's queue)
received    none: the order is not on the book yet (a taker trades through ``match``
            messages against the makers; what rests arrives as ``open``)
open        ``LIMIT`` at ``price`` for ``remaining_size``: the remainder of a limit order
            starts resting at the back of its level
match       ``EXECUTE`` of ``size`` against ``maker_order_id`` (a trade at the maker's
            price; the maker leaves the book when it reaches zero)
done        ``CANCEL`` when the order still rests (its ``remaining_size`` must equal what
            the book holds); none when it is not on the book (a taker, a market order, an
            order that was never opened, a maker already filled by matches)
change      on a resting order: a smaller ``new_size`` at the same price is a ``REDUCE``
            (keeps queue priority); a larger size or a ``new_price`` is a ``REPLACE`` (back
            of the queue). None when the order does not rest or only its funds changed
activate    none (a stop order was triggered; it arrives later as received/open)
==========  ===========================================================================

Coinbase documents ``change`` as the result of self-trade prevention, which "can only
decrease" an order; reducing an order's size in place keeps its time priority there, as it
does in the core (``REDUCE``). Increases and price changes are not documented for this
channel; they are mapped to ``REPLACE`` (loses priority), the conservative reading.
Message types without a book effect that the channel may add (``heartbeat``,
``subscriptions``, ...) are counted in :attr:`CoinbaseFeed.type_counts` and otherwise ignored.

Order ids are UUID strings. The reader numbers them 1, 2, 3 ... in order of first
appearance on the book (snapshot orders first) with a Python ``dict``
(:attr:`CoinbaseFeed.order_ids`, UUID -> int64 id). That dict lives at the edge, while
reading; the core only ever sees the int64 ids.

Prices and sizes are decimal strings, converted exactly to ticks of ``tick_size`` and lots of
``lot_size`` (see :class:`rltrader.data._decimal.DecimalGrid`): a value off the grid raises.
Timestamps are the messages' ``time`` (ISO 8601, UTC) as ns since the Unix epoch; snapshot
orders carry the first message's time.
"""

from __future__ import annotations

import calendar
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn

import numpy as np

from rltrader.core.constants import (
    BUY,
    CANCEL,
    EXECUTE,
    LIMIT,
    MAX_PRICE,
    MAX_QTY,
    REDUCE,
    REPLACE,
    SELL,
)
from rltrader.core.messages import empty_messages
from rltrader.data._decimal import DecimalGrid
from rltrader.data._io import PathLike, as_paths, iter_records, read_json

#: BTC-USD's grid: prices in cents, sizes in satoshis (1e-8 BTC).
DEFAULT_TICK_SIZE = "0.01"
DEFAULT_LOT_SIZE = "0.00000001"

_SIDE = {"buy": int(BUY), "sell": int(SELL)}
_LIMIT = int(LIMIT)
_NO_BOOK_EFFECT = ("received", "activate")
_UNSEQUENCED = ("subscriptions", "heartbeat", "error")


@dataclass(frozen=True)
class L3Snapshot:
    """A REST level-3 snapshot: ``(price, size, order_id)`` strings per side, best first."""

    sequence: int
    bids: list[tuple[str, str, str]]
    asks: list[tuple[str, str, str]]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)


def read_snapshot(path: PathLike) -> L3Snapshot:
    """Read a level-3 snapshot file (plain or gzip JSON)."""
    doc = read_json(path)
    try:
        return L3Snapshot(
            sequence=int(doc["sequence"]),
            bids=[(str(p), str(q), str(i)) for p, q, i in doc["bids"]],
            asks=[(str(p), str(q), str(i)) for p, q, i in doc["asks"]],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a level-3 snapshot ({exc!r})") from None


@lru_cache(maxsize=4096)
def _epoch_seconds(text: str) -> int:
    """Whole seconds since the Unix epoch of an ISO 8601 UTC time without fraction/zone."""
    return calendar.timegm(datetime.fromisoformat(text).timetuple())


def parse_time(text: str) -> int:
    """``"2018-07-13T20:47:11.025000Z"`` as ns since the Unix epoch (exact, no float)."""
    head, _, frac = text.removesuffix("Z").partition(".")
    if frac and not frac.isdigit():
        raise ValueError(f"bad time {text!r}")
    return _epoch_seconds(head) * 1_000_000_000 + int(frac[:9].ljust(9, "0"))


@dataclass(frozen=True)
class CoinbaseFeed:
    """Messages for one book rebuilt from a level-3 snapshot and the ``full`` channel.

    Attributes
    ----------
    messages : ndarray of MESSAGE_DTYPE
        Snapshot orders first (``len(snapshot)`` of them), then the feed's book messages.
    sequence : ndarray of int64
        For each message, the feed sequence that caused it (the snapshot's for its orders).
    order_ids : dict[str, int]
        UUID -> int64 order id of every order that rested on the book.
    snapshot_sequence, last_sequence : int
        The snapshot's sequence and the last feed sequence applied.
    stale : int
        Feed messages with ``sequence <= snapshot_sequence``, skipped.
    type_counts : dict[str, int]
        Applied feed messages per ``type``.
    tick_size, lot_size : DecimalGrid
        The grids the prices and sizes were converted with.
    """

    messages: np.ndarray
    sequence: np.ndarray
    order_ids: dict[str, int]
    snapshot_sequence: int
    last_sequence: int
    stale: int
    type_counts: dict[str, int]
    tick_size: DecimalGrid
    lot_size: DecimalGrid

    @property
    def feed_messages(self) -> int:
        """Feed messages applied (all types)."""
        return sum(self.type_counts.values())


@dataclass
class _Builder:
    """Turns snapshot orders and feed messages into message columns, tracking resting orders."""

    prices: DecimalGrid
    sizes: DecimalGrid
    product_id: str | None
    strict_product: bool
    ids: dict[str, int] = field(default_factory=dict)
    resting: dict[str, list[int]] = field(default_factory=dict)  # uuid -> [id, side, price, lots]
    columns: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)

    def keeps(self, msg: dict[str, Any]) -> bool:
        """Whether ``msg`` belongs to the book's product (fixing it on first sight)."""
        product = msg.get("product_id")
        if product is None or product == self.product_id:
            return True
        if self.product_id is None:
            self.product_id = product
            return True
        if self.strict_product:
            raise ValueError(f"a second product {product!r} after {self.product_id!r}: "
                             "pass product_id to choose one")
        return False

    def _emit(self, op: int, order_id: int, side: int, price: int, qty: int, ts: int,
              seq: int) -> None:
        self.columns.append((ts, op, order_id, side, price, qty, seq))

    def rest(self, uuid: str, side: int, price: int, lots: int, ts: int, seq: int) -> None:
        if uuid in self.resting:
            raise ValueError(f"order {uuid} is already on the book")
        order_id = self.ids[uuid] = len(self.ids) + 1
        self.resting[uuid] = [order_id, side, price, lots]
        self._emit(LIMIT, order_id, side, price, lots, ts, seq)

    def snapshot(self, snap: L3Snapshot, ts: int) -> None:
        """Rest every snapshot order, bids then asks, in the snapshot's order."""
        for side, name, orders in ((int(BUY), "bids", snap.bids), (int(SELL), "asks", snap.asks)):
            try:
                prices = self.prices.units_list([price for price, _, _ in orders])
                sizes = self.sizes.units_list([size for _, size, _ in orders])
            except ValueError:
                self._locate_bad_value(name, orders)
            for (_, _, uuid), price, lots in zip(orders, prices, sizes, strict=True):
                if uuid in self.resting:
                    raise ValueError(f"snapshot {name}: order {uuid} is listed twice")
                order_id = self.ids[uuid] = len(self.ids) + 1
                self.resting[uuid] = [order_id, side, price, lots]
                self.columns.append((ts, _LIMIT, order_id, side, price, lots, snap.sequence))

    def _locate_bad_value(self, name: str, orders: list[tuple[str, str, str]]) -> NoReturn:
        """Raise the conversion error of the first bad snapshot entry, naming it."""
        for i, (price, size, _) in enumerate(orders):
            try:
                self.prices.units(price)
                self.sizes.units(size)
            except ValueError as exc:
                raise ValueError(f"snapshot {name}[{i}]: {exc}") from None
        raise ValueError(f"snapshot {name}: a price or size does not convert")

    def apply(self, msg: dict[str, Any], ts: int, seq: int) -> None:
        kind = msg["type"]
        self.types[kind] += 1
        if kind == "open":
            self.rest(msg["order_id"], _SIDE[msg["side"]], self.prices.units(msg["price"]),
                      self.sizes.units(msg["remaining_size"]), ts, seq)
        elif kind == "match":
            self._match(msg, ts, seq)
        elif kind == "done":
            self._done(msg, ts, seq)
        elif kind == "change":
            self._change(msg, ts, seq)
        elif kind not in _NO_BOOK_EFFECT and ("order_id" in msg or "maker_order_id" in msg):
            raise ValueError(f"unsupported order message type {kind!r}")

    def _match(self, msg: dict[str, Any], ts: int, seq: int) -> None:
        uuid = msg["maker_order_id"]
        maker = self.resting.get(uuid)
        if maker is None:
            raise ValueError(f"match against maker {uuid}, which is not on the book")
        order_id, side, price, lots = maker
        qty, at = self.sizes.units(msg["size"]), self.prices.units(msg["price"])
        if at != price or qty > lots:
            raise ValueError(f"match of {msg['size']} at {msg['price']} does not fit maker "
                             f"{uuid} ({lots} lots at {price} ticks)")
        self._emit(EXECUTE, order_id, side, price, qty, ts, seq)
        maker[3] = lots - qty
        if maker[3] == 0:
            del self.resting[uuid]

    def _done(self, msg: dict[str, Any], ts: int, seq: int) -> None:
        uuid = msg["order_id"]
        order = self.resting.pop(uuid, None)
        if order is None:
            return
        order_id, side, price, lots = order
        remaining = self.sizes.units(msg["remaining_size"])
        if remaining != lots:
            raise ValueError(f"done for {uuid} with remaining_size {msg['remaining_size']}, "
                             f"but the book holds {lots} lots")
        self._emit(CANCEL, order_id, side, price, lots, ts, seq)

    def _change(self, msg: dict[str, Any], ts: int, seq: int) -> None:
        order = self.resting.get(msg["order_id"])
        if order is None or "new_size" not in msg:
            return
        order_id, side, price, lots = order
        old, new = self.sizes.units(msg["old_size"]), self.sizes.units(msg["new_size"])
        if old != lots:
            raise ValueError(f"change of {msg['order_id']} from old_size {msg['old_size']}, "
                             f"but the book holds {lots} lots")
        new_price = self.prices.units(msg.get("new_price", msg.get("price")) or "0") or price
        if new == 0:
            raise ValueError(f"change of {msg['order_id']} to size 0 (expected a done)")
        if new_price == price and new < old:
            self._emit(REDUCE, order_id, side, price, old - new, ts, seq)
        elif new_price != price or new > old:
            self._emit(REPLACE, order_id, side, new_price, new, ts, seq)
        order[2], order[3] = new_price, new

    def to_array(self) -> tuple[np.ndarray, np.ndarray]:
        table = np.array(self.columns, dtype=np.int64).reshape(-1, 7)
        msgs = empty_messages(table.shape[0])
        for j, name in enumerate(("timestamp", "op", "order_id", "side", "price", "qty")):
            msgs[name] = table[:, j]
        return msgs, np.ascontiguousarray(table[:, 6])


def read_feed(
    snapshot: PathLike | L3Snapshot,
    paths: PathLike | Sequence[PathLike],
    *,
    tick_size: str = DEFAULT_TICK_SIZE,
    lot_size: str = DEFAULT_LOT_SIZE,
    product_id: str | None = None,
    book: int = 0,
) -> CoinbaseFeed:
    """Read a level-3 snapshot and the ``full`` channel messages that follow it.

    Parameters
    ----------
    snapshot : path-like or L3Snapshot
        The REST level-3 snapshot the messages start from.
    paths : path-like or sequence of them
        Feed files in stream order (JSON lines or a JSON array; plain or gzip).
    tick_size, lot_size : str
        Price and size steps as decimal strings (BTC-USD: ``"0.01"``, ``"0.00000001"``).
    product_id : str, optional
        Keep only this product's messages (others are skipped). When None, the first
        product seen is kept and a second one raises: sequences are per product.
    book : int
        Value of the messages' ``book`` field.

    Returns
    -------
    CoinbaseFeed

    Raises
    ------
    ValueError
        Naming the file and line (or array element) and the sequence: bad JSON, a missing
        field, a sequence gap or reordering, a value off the tick/lot grid, a match or done
        inconsistent with the book.
    """
    snap = snapshot if isinstance(snapshot, L3Snapshot) else read_snapshot(snapshot)
    builder = _Builder(DecimalGrid(tick_size, "price", MAX_PRICE),
                       DecimalGrid(lot_size, "size", MAX_QTY), product_id,
                       strict_product=product_id is None)
    try:
        builder.snapshot(snap, 0)
    except ValueError as exc:
        if isinstance(snapshot, L3Snapshot):
            raise
        raise ValueError(f"{os.fspath(snapshot)}: {exc}") from None
    n_seeds = len(builder.columns)
    last, stale = snap.sequence, 0
    for path in as_paths(paths):
        for record in iter_records(path):
            last, stale = _apply_record(builder, record.obj, record.where, last, stale,
                                        snap.sequence)
    msgs, sequence = builder.to_array()
    msgs["book"] = book
    if msgs.shape[0] > n_seeds:
        msgs["timestamp"][:n_seeds] = msgs["timestamp"][n_seeds]
    return CoinbaseFeed(
        messages=msgs, sequence=sequence, order_ids=builder.ids,
        snapshot_sequence=snap.sequence, last_sequence=last, stale=stale,
        type_counts=dict(builder.types), tick_size=builder.prices, lot_size=builder.sizes,
    )


def _apply_record(builder: _Builder, msg: Any, where: str, last: int, stale: int,
                  snapshot_sequence: int) -> tuple[int, int]:
    """Apply one feed message; returns the new ``(last sequence, stale count)``."""
    seq = None
    try:
        if msg["type"] in _UNSEQUENCED and "sequence" not in msg:
            builder.types[msg["type"]] += 1
            return last, stale
        if not builder.keeps(msg):
            return last, stale
        seq = int(msg["sequence"])
        if seq <= snapshot_sequence:
            return last, stale + 1
        if seq != last + 1:
            what = "gap" if seq > last + 1 else "out of order"
            raise ValueError(f"sequence {what}: expected {last + 1} after {last}, got {seq}")
        builder.apply(msg, parse_time(msg["time"]), seq)
        return seq, stale
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        at = f" (sequence {seq})" if seq is not None else ""
        raise ValueError(f"{where}{at}: {detail}") from None


def compare_snapshot(books: Any, feed: CoinbaseFeed, snapshot: L3Snapshot, book: int = 0,
                     limit: int = 10) -> list[str]:
    """Differences between ``books``'s book ``book`` and a level-3 ``snapshot``.

    Every snapshot order must rest in the core with the id ``feed.order_ids`` gives its UUID,
    at its price, with its size, and each level's queue (``Books.level_queue``) must list
    exactly the snapshot's orders in the snapshot's order; the core must hold no other
    order (``Books.live_orders``). Returns up to ``limit`` descriptions; empty means equal.
    """
    problems: list[str] = []
    prices, sizes = feed.tick_size, feed.lot_size
    for side, orders in ((int(BUY), snapshot.bids), (int(SELL), snapshot.asks)):
        levels: dict[int, list[tuple[int, int]]] = {}
        for price_text, size, uuid in orders:
            order = (feed.order_ids.get(uuid, -1), sizes.units(size))
            levels.setdefault(prices.units(price_text), []).append(order)
        for price, want in levels.items():
            queue = books.level_queue(book, side, price)
            got = list(zip(queue["order_id"].tolist(), queue["qty"].tolist(), strict=True))
            if got != want:
                problems.append(f"side {side:+d} price {prices.text(price)}: queue "
                                f"(id, lots) {got[:4]}... != snapshot {want[:4]}...")
                if len(problems) == limit:
                    return problems
    live = books.live_orders(book)
    if live != len(snapshot) and len(problems) < limit:
        problems.append(f"{live} live orders, snapshot has {len(snapshot)}")
    return problems
