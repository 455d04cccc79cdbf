"""A slow, obviously correct pure-Python order book: the oracle of the differential tests.

It implements ``docs/semantics.md`` literally, with plain containers and no cleverness:

- per book and side, a dict ``price -> list of orders`` (each list in FIFO order, oldest
  first; an empty list is deleted at once, so the dict's keys are the non-empty levels);
- per book, a dict ``order_id -> order`` of the live orders (resting or pending stops) and a
  list of the pending stops in submission order.

Best prices are recomputed with ``max``/``min`` over the level dicts on every use. Numbers
are Python ints, so nothing here can overflow; an event value that does not fit its int64
field makes ``numpy`` raise when the events are packed into an array.

``ReferenceBooks`` mirrors ``rltrader.Books`` (batched, many books) and
``ReferenceOrderBook`` mirrors ``rltrader.OrderBook`` (one book, one call per operation).
The dense price window, arena capacity and hash of the core have no counterpart here; only
``max_orders`` matters (the ``CAPACITY`` reject).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from _vocab import (
    ACCOUNT_DTYPE,
    BUY,
    EMPTY_ASK,
    EMPTY_BID,
    EVENT_DTYPE,
    MAX_PRICE,
    MAX_QTY,
    MESSAGE_DTYPE,
    NO_OWNER,
    QUEUE_DTYPE,
    SELL,
    EventKind,
    Op,
    Reason,
    SelfTradePrevention,
    TimeInForce,
)

ACCEPTED = int(EventKind.ACCEPTED)
REJECTED = int(EventKind.REJECTED)
FILL = int(EventKind.FILL)
CANCELLED = int(EventKind.CANCELLED)
TRIGGERED = int(EventKind.TRIGGERED)
REDUCED = int(EventKind.REDUCED)

LIMIT = int(Op.LIMIT)
MARKET = int(Op.MARKET)
CANCEL = int(Op.CANCEL)
REDUCE = int(Op.REDUCE)
REPLACE = int(Op.REPLACE)
STOP = int(Op.STOP)
STOP_LIMIT = int(Op.STOP_LIMIT)
EXECUTE = int(Op.EXECUTE)
NEW_ORDER_OPS = (LIMIT, MARKET, STOP, STOP_LIMIT)
ALL_OPS = tuple(int(op) for op in Op)

GTC = int(TimeInForce.GTC)
IOC = int(TimeInForce.IOC)
FOK = int(TimeInForce.FOK)
POST_ONLY = int(TimeInForce.POST_ONLY)
ALL_TIFS = tuple(int(tif) for tif in TimeInForce)

STP_NONE = int(SelfTradePrevention.NONE)
CANCEL_TAKER = int(SelfTradePrevention.CANCEL_TAKER)
CANCEL_MAKER = int(SelfTradePrevention.CANCEL_MAKER)
CANCEL_BOTH = int(SelfTradePrevention.CANCEL_BOTH)

# order states, as reported by ``order()`` (same values as the core's OrderState)
RESTING = 1
STOP_PENDING = 2

# the exactness limits (docs/semantics.md, Accounting); values as in rltrader/_book.pxd
NOT_OWNER = int(Reason.NOT_OWNER)
NOTIONAL_LIMIT = int(Reason.NOTIONAL_LIMIT)
MAX_NOTIONAL = 2**62 - 1
MAX_FEE_PPM = 1_000_000


def check_fee(rate_ppm: int, name: str) -> int:
    """``rate_ppm`` as an int, or ValueError beyond ``MAX_FEE_PPM`` in magnitude."""
    if not -MAX_FEE_PPM <= rate_ppm <= MAX_FEE_PPM:
        raise ValueError(f"{name} must be in [-{MAX_FEE_PPM}, {MAX_FEE_PPM}], got {rate_ppm}")
    return int(rate_ppm)


def fee(notional: int, rate_ppm: int) -> int:
    """``trunc(notional * rate_ppm / 1_000_000)``, rounding toward zero (not down)."""
    scaled = notional * rate_ppm
    if scaled >= 0:
        return scaled // 1_000_000
    return -((-scaled) // 1_000_000)


@dataclass
class Order:
    """One order. ``price`` is None for a market order (a triggered stop-market too)."""

    order_id: int
    side: int
    owner: int
    qty: int  # leaves
    price: int | None  # limit price; 0 for a pending stop-market; None for market
    op: int  # LIMIT, MARKET, STOP or STOP_LIMIT
    tif: int
    stop_price: int = 0  # pending stops only
    timestamp: int = 0  # resting orders: when they joined their level
    trigger_price: int = 0  # collected stops: the last trade price that triggered them

    @property
    def shown_price(self) -> int:
        """The price events carry: the limit price, 0 for market and stop-market orders."""
        return 0 if self.price is None else self.price


class Book:
    """One book's state in plain containers."""

    def __init__(self, n_owners: int, stp: int, maker_fee_ppm: int, taker_fee_ppm: int):
        self.levels: dict[int, dict[int, list[Order]]] = {BUY: {}, SELL: {}}
        self.stops: list[Order] = []  # pending stops, submission order
        self.live: dict[int, Order] = {}  # resting orders and pending stops by id
        self.last_price = 0
        self.volume = 0
        self.notional = 0  # gross traded notional: sum of price * qty over fills
        self.trade_count = 0
        self.stp = stp
        self.maker_fee_ppm = maker_fee_ppm
        self.taker_fee_ppm = taker_fee_ppm
        # per owner: [position, cash, volume, fees]
        self.accounts = [[0, 0, 0, 0] for _ in range(n_owners)]

    def best(self, side: int) -> int | None:
        """Best price of resting side ``side`` (highest bid / lowest ask), None if empty."""
        prices = self.levels[side]
        if not prices:
            return None
        return max(prices) if side == BUY else min(prices)

    def sorted_prices(self, side: int) -> list[int]:
        """Non-empty level prices of ``side``, best first."""
        return sorted(self.levels[side], reverse=(side == BUY))

    def rest(self, order: Order) -> None:
        self.levels[order.side].setdefault(order.price, []).append(order)
        self.live[order.order_id] = order

    def remove(self, order: Order) -> None:
        """Take a live order (resting or pending) out of the book."""
        del self.live[order.order_id]
        if order.op in (STOP, STOP_LIMIT):
            self.stops.remove(order)
            return
        queue = self.levels[order.side][order.price]
        queue.remove(order)
        if not queue:
            del self.levels[order.side][order.price]


def _crosses(taker: Order, maker_price: int) -> bool:
    """Whether ``taker`` may trade with a resting order at ``maker_price``."""
    if taker.price is None:
        return True
    if taker.side == BUY:
        return taker.price >= maker_price
    return taker.price <= maker_price


def _valid_price(price: int) -> bool:
    return 1 <= price <= MAX_PRICE


def _valid_qty(qty: int) -> bool:
    return 1 <= qty <= MAX_QTY


class ReferenceBooks:
    """``n_books`` independent books with the API of ``rltrader.Books`` (where it applies).

    Parameters
    ----------
    n_books : int
        Number of books.
    n_owners : int
        Accounts per book; message owners must be in ``[0, n_owners)`` or ``NO_OWNER``.
    self_trade_prevention : int
        Initial ``SelfTradePrevention`` mode of every book.
    maker_fee_ppm, taker_fee_ppm : int
        Initial fees of every book, per million of notional (negative: rebate).
    max_orders : int or None
        Limit on live orders (resting plus pending stops) over all books; None: no limit.
    """

    def __init__(
        self,
        n_books: int = 1,
        *,
        n_owners: int = 0,
        self_trade_prevention: int = 0,
        maker_fee_ppm: int = 0,
        taker_fee_ppm: int = 0,
        max_orders: int | None = None,
    ) -> None:
        if n_books < 1:
            raise ValueError(f"n_books must be >= 1, got {n_books}")
        if n_owners < 0:
            raise ValueError(f"n_owners must be >= 0, got {n_owners}")
        SelfTradePrevention(self_trade_prevention)
        check_fee(maker_fee_ppm, "maker_fee_ppm")
        check_fee(taker_fee_ppm, "taker_fee_ppm")
        self.n_books = n_books
        self.n_owners = n_owners
        self.max_orders = max_orders
        self.books = [
            Book(n_owners, int(self_trade_prevention), maker_fee_ppm, taker_fee_ppm)
            for _ in range(n_books)
        ]
        # context of the message being processed
        self._events: list[tuple] = []
        self._timestamp = 0
        self._message_index = 0

    # ---- configuration -----------------------------------------------------------------

    def _which(self, book: int | None) -> list[Book]:
        if book is None:
            return self.books
        return [self.books[self._check_book(book)]]

    def set_self_trade_prevention(self, mode: int, book: int | None = None) -> None:
        SelfTradePrevention(mode)
        for bk in self._which(book):
            bk.stp = int(mode)

    def set_fees(self, maker_fee_ppm: int, taker_fee_ppm: int, book: int | None = None) -> None:
        check_fee(maker_fee_ppm, "maker_fee_ppm")
        check_fee(taker_fee_ppm, "taker_fee_ppm")
        for bk in self._which(book):
            bk.maker_fee_ppm = int(maker_fee_ppm)
            bk.taker_fee_ppm = int(taker_fee_ppm)

    # ---- queries -----------------------------------------------------------------------

    def _check_book(self, book: int) -> int:
        if not 0 <= book < self.n_books:
            raise IndexError(f"book {book} out of range [0, {self.n_books})")
        return int(book)

    def best_bid(self, book: int = 0) -> int:
        best = self.books[self._check_book(book)].best(BUY)
        return EMPTY_BID if best is None else best

    def best_ask(self, book: int = 0) -> int:
        best = self.books[self._check_book(book)].best(SELL)
        return EMPTY_ASK if best is None else best

    def last_price(self, book: int = 0) -> int:
        return self.books[self._check_book(book)].last_price

    def volume(self, book: int = 0) -> int:
        return self.books[self._check_book(book)].volume

    def trade_count(self, book: int = 0) -> int:
        return self.books[self._check_book(book)].trade_count

    def live_orders(self, book: int | None = None) -> int:
        return sum(len(bk.live) for bk in self._which(book))

    def top_levels(self, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prices, qtys, counts)`` of shape ``(n_books, 2, depth)``: 0 bids, 1 asks."""
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        prices = np.zeros((self.n_books, 2, depth), dtype=np.int64)
        qtys = np.zeros((self.n_books, 2, depth), dtype=np.int64)
        counts = np.zeros((self.n_books, 2, depth), dtype=np.int32)
        for b, bk in enumerate(self.books):
            for s, side in enumerate((BUY, SELL)):
                for k, price in enumerate(bk.sorted_prices(side)[:depth]):
                    queue = bk.levels[side][price]
                    prices[b, s, k] = price
                    qtys[b, s, k] = sum(o.qty for o in queue)
                    counts[b, s, k] = len(queue)
        return prices, qtys, counts

    def level_queue(self, book: int, side: int, price: int) -> np.ndarray:
        """The FIFO queue of one level as QUEUE_DTYPE records, oldest first."""
        bk = self.books[self._check_book(book)]
        if side not in (BUY, SELL):
            raise ValueError(f"side must be BUY (1) or SELL (-1), got {side}")
        queue = bk.levels[side].get(price, [])
        return np.array(
            [(o.order_id, o.qty, o.timestamp, o.owner) for o in queue], dtype=QUEUE_DTYPE
        )

    def order(self, book: int, order_id: int) -> dict[str, int] | None:
        """A live order as a dict (``stop_price`` for pending stops), or None."""
        o = self.books[self._check_book(book)].live.get(order_id)
        if o is None:
            return None
        pending = o.op in (STOP, STOP_LIMIT)
        info = dict(
            order_id=o.order_id,
            price=o.shown_price,
            qty=o.qty,
            side=o.side,
            owner=o.owner,
            op=o.op,
            tif=o.tif,
            state=STOP_PENDING if pending else RESTING,
        )
        if pending:
            info["stop_price"] = o.stop_price
        else:
            info["timestamp"] = o.timestamp
        return info

    def live_order_ids(self, book: int) -> list[int]:
        """Ids of the live orders of one book (resting and pending), in no set order."""
        return list(self.books[self._check_book(book)].live)

    @property
    def accounts(self) -> np.ndarray:
        """Per (book, owner) accounts, shape ``(n_books, n_owners)`` of ACCOUNT_DTYPE."""
        out = np.zeros((self.n_books, self.n_owners), dtype=ACCOUNT_DTYPE)
        for b, bk in enumerate(self.books):
            for owner, (position, cash, volume, fees) in enumerate(bk.accounts):
                out[b, owner] = (position, cash, volume, fees)
        return out

    def check_integrity(self) -> None:
        """Assert the invariants of the plain containers (they hold by construction)."""
        for b, bk in enumerate(self.books):
            bid, ask = bk.best(BUY), bk.best(SELL)
            if bid is not None and ask is not None and bid >= ask:
                raise AssertionError(f"integrity: book {b} crossed: bid {bid} >= ask {ask}")
            seen: dict[int, Order] = {}
            for side in (BUY, SELL):
                for price, queue in bk.levels[side].items():
                    if not queue:
                        raise AssertionError(f"integrity: book {b} empty level {price}")
                    for o in queue:
                        if o.side != side or o.price != price or o.qty <= 0 or o.op != LIMIT:
                            raise AssertionError(f"integrity: book {b} bad order {o}")
                        seen[o.order_id] = o
            for o in bk.stops:
                if o.qty <= 0 or o.op not in (STOP, STOP_LIMIT):
                    raise AssertionError(f"integrity: book {b} bad stop {o}")
                seen[o.order_id] = o
            if seen != bk.live:
                raise AssertionError(f"integrity: book {b} live index disagrees with the book")

    # ---- processing ----------------------------------------------------------------------

    def process_all(self, messages: np.ndarray) -> np.ndarray:
        """Process every message; return their events (``message_index`` = array index)."""
        if not isinstance(messages, np.ndarray) or messages.dtype != MESSAGE_DTYPE:
            raise TypeError("messages must be a numpy array of MESSAGE_DTYPE")
        if messages.ndim != 1:
            raise ValueError(f"messages must be one-dimensional, got shape {messages.shape}")
        self._events = []
        for i, m in enumerate(messages.tolist()):
            # tolist() gives plain tuples of Python ints, in MESSAGE_DTYPE field order
            self._message_index = i
            self._handle(dict(zip(MESSAGE_DTYPE.names, m, strict=True)))
        events = np.array(self._events, dtype=EVENT_DTYPE)
        self._events = []
        return events

    def _emit(
        self,
        kind: int,
        reason: int,
        book: int,
        *,
        order_id: int,
        side: int,
        owner: int,
        price: int,
        qty: int,
        leaves_qty: int,
        maker_order_id: int = 0,
        maker_leaves_qty: int = 0,
        maker_owner: int = NO_OWNER,
    ) -> None:
        self._events.append(
            (
                self._timestamp,
                order_id,
                maker_order_id,
                price,
                qty,
                leaves_qty,
                maker_leaves_qty,
                book,
                owner,
                maker_owner,
                self._message_index,
                kind,
                reason,
                side,
            )
        )

    def _emit_order(
        self, kind: int, reason: int, book: int, o: Order, price: int, qty: int, leaves: int
    ) -> None:
        self._emit(
            kind,
            reason,
            book,
            order_id=o.order_id,
            side=o.side,
            owner=o.owner,
            price=price,
            qty=qty,
            leaves_qty=leaves,
        )

    def _validate(self, m: dict) -> int:
        """The reject reason of a message (docs/semantics.md), NO_REASON when valid."""
        b, op, owner, order_id = m["book"], m["op"], m["owner"], m["order_id"]
        if not 0 <= b < self.n_books:
            return Reason.BAD_BOOK
        if op not in ALL_OPS:
            return Reason.BAD_OP
        if not NO_OWNER <= owner < self.n_owners:
            return Reason.BAD_OWNER
        if order_id <= 0:
            return Reason.BAD_ORDER_ID
        bk = self.books[b]
        tif, qty = m["tif"], m["qty"]
        if op in NEW_ORDER_OPS:
            if m["side"] not in (BUY, SELL):
                return Reason.BAD_SIDE
            if op in (LIMIT, STOP_LIMIT) and tif not in ALL_TIFS:
                return Reason.BAD_TIF
            if op in (MARKET, STOP) and tif == POST_ONLY:
                return Reason.BAD_TIF
            if not _valid_qty(qty):
                return Reason.BAD_QTY
            if op in (LIMIT, STOP_LIMIT) and not _valid_price(m["price"]):
                return Reason.BAD_PRICE
            if op in (STOP, STOP_LIMIT) and not _valid_price(m["stop_price"]):
                return Reason.BAD_PRICE
            if order_id in bk.live:
                return Reason.DUPLICATE_ORDER_ID
            may_wait = (op == LIMIT and tif in (GTC, POST_ONLY)) or op in (STOP, STOP_LIMIT)
            if may_wait and self.max_orders is not None:
                if self.live_orders() >= self.max_orders:
                    return Reason.CAPACITY
            return Reason.NO_REASON
        o = bk.live.get(order_id)
        if o is None:
            return Reason.UNKNOWN_ORDER
        if owner != NO_OWNER and owner != o.owner:
            return NOT_OWNER
        pending = o.op in (STOP, STOP_LIMIT)
        if op == CANCEL:
            return Reason.NO_REASON
        if op == REDUCE:
            return Reason.BAD_QTY if qty <= 0 else Reason.NO_REASON
        if op == EXECUTE:
            if pending:
                return Reason.NOT_RESTING
            if not 1 <= qty <= o.qty:
                return Reason.BAD_QTY
            if qty * o.price > MAX_NOTIONAL - bk.notional:
                return NOTIONAL_LIMIT
            return Reason.NO_REASON
        # REPLACE
        if pending:
            return Reason.NOT_RESTING
        if not _valid_qty(qty):
            return Reason.BAD_QTY
        if not _valid_price(m["price"]):
            return Reason.BAD_PRICE
        new_id = m["new_order_id"]
        if new_id < 0:
            return Reason.BAD_ORDER_ID
        if new_id not in (0, order_id) and new_id in bk.live:
            return Reason.DUPLICATE_ORDER_ID
        if tif not in ALL_TIFS:
            return Reason.BAD_TIF
        return Reason.NO_REASON

    def _handle(self, m: dict) -> None:
        self._timestamp = m["timestamp"]
        reason = int(self._validate(m))
        if reason != Reason.NO_REASON:
            self._emit(
                REJECTED,
                reason,
                m["book"],
                order_id=m["order_id"],
                side=m["side"],
                owner=m["owner"],
                price=m["price"],
                qty=m["qty"],
                leaves_qty=0,
            )
            return
        b, op = m["book"], m["op"]
        bk = self.books[b]
        trades_before = bk.trade_count
        if op == LIMIT:
            taker = Order(
                m["order_id"], m["side"], m["owner"], m["qty"], m["price"], LIMIT, m["tif"]
            )
            self._run_taker(bk, b, taker, announce=True)
        elif op == MARKET:
            tif = FOK if m["tif"] == FOK else IOC
            taker = Order(m["order_id"], m["side"], m["owner"], m["qty"], None, MARKET, tif)
            self._run_taker(bk, b, taker, announce=True)
        elif op in (STOP, STOP_LIMIT):
            if op == STOP:
                price, tif = 0, (FOK if m["tif"] == FOK else IOC)
            else:
                price, tif = m["price"], m["tif"]
            stop = Order(
                m["order_id"],
                m["side"],
                m["owner"],
                m["qty"],
                price,
                op,
                tif,
                stop_price=m["stop_price"],
            )
            bk.stops.append(stop)
            bk.live[stop.order_id] = stop
            self._emit_order(ACCEPTED, Reason.NO_REASON, b, stop, price, stop.qty, stop.qty)
            if bk.trade_count > 0:
                self._run_stops(bk, b)
        elif op == CANCEL:
            self._cancel(bk, b, bk.live[m["order_id"]], Reason.CANCEL_REQUESTED)
        elif op == REDUCE:
            o = bk.live[m["order_id"]]
            if m["qty"] >= o.qty:
                self._cancel(bk, b, o, Reason.CANCEL_REQUESTED)
            else:
                o.qty -= m["qty"]
                self._emit_order(REDUCED, Reason.NO_REASON, b, o, o.shown_price, m["qty"], o.qty)
        elif op == EXECUTE:
            maker = bk.live[m["order_id"]]
            outside = Order(0, -maker.side, NO_OWNER, m["qty"], None, MARKET, IOC)
            self._fill(bk, b, outside, maker)
        else:  # REPLACE
            old = bk.live[m["order_id"]]
            new_id = m["new_order_id"] if m["new_order_id"] != 0 else m["order_id"]
            taker = Order(new_id, old.side, old.owner, m["qty"], m["price"], LIMIT, m["tif"])
            self._cancel(bk, b, old, Reason.REPLACED)
            self._run_taker(bk, b, taker, announce=True)
        if bk.trade_count != trades_before:
            self._run_stops(bk, b)

    def _cancel(self, bk: Book, b: int, o: Order, reason: int) -> None:
        self._emit_order(CANCELLED, reason, b, o, o.shown_price, o.qty, 0)
        bk.remove(o)

    def _run_taker(self, bk: Book, b: int, t: Order, *, announce: bool) -> None:
        """A new (or triggered) order: post-only check, ACCEPTED, FOK check, match, rest."""
        opposite = bk.best(-t.side)
        if t.tif == POST_ONLY and opposite is not None and _crosses(t, opposite):
            self._emit_order(REJECTED, Reason.POST_ONLY_WOULD_CROSS, b, t, t.shown_price, t.qty, 0)
            return
        if self._exceeds_notional(bk, t):
            kind = REJECTED if announce else CANCELLED
            self._emit_order(kind, NOTIONAL_LIMIT, b, t, t.shown_price, t.qty, 0)
            return
        if announce:
            self._emit_order(ACCEPTED, Reason.NO_REASON, b, t, t.shown_price, t.qty, t.qty)
        if t.tif == FOK and self._fillable(bk, t) < t.qty:
            self._emit_order(CANCELLED, Reason.FOK_UNFILLABLE, b, t, t.shown_price, t.qty, 0)
            return
        self._match(bk, b, t)
        if t.qty == 0:
            return
        if t.tif in (IOC, FOK):
            self._emit_order(CANCELLED, Reason.IOC_REMAINDER, b, t, t.shown_price, t.qty, 0)
            return
        t.timestamp = self._timestamp
        bk.rest(t)

    def _exceeds_notional(self, bk: Book, t: Order) -> bool:
        """Whether taker ``t`` could push the book's gross notional past MAX_NOTIONAL: it
        trades at most ``t.qty`` lots, a sell at the best bid or lower, a buy at its limit
        or the highest ask, whichever is lower; one that does not cross trades nothing."""
        opposite = bk.best(-t.side)
        if opposite is None or not _crosses(t, opposite):
            return False
        if t.side == SELL:
            worst = opposite
        else:
            worst = max(bk.levels[SELL])
            if t.price is not None:
                worst = min(worst, t.price)
        return t.qty * worst > MAX_NOTIONAL - bk.notional

    def _is_self_trade(self, bk: Book, taker: Order, maker: Order) -> bool:
        return bk.stp != STP_NONE and taker.owner >= 0 and maker.owner == taker.owner

    def _fillable(self, bk: Book, t: Order) -> int:
        """Lots a FOK taker could trade, in price-time order, self-trade prevention included."""
        total = 0
        for price in bk.sorted_prices(-t.side):
            if not _crosses(t, price):
                break
            for maker in bk.levels[-t.side][price]:
                if self._is_self_trade(bk, t, maker):
                    if bk.stp == CANCEL_MAKER:
                        continue
                    return total  # CANCEL_TAKER / CANCEL_BOTH: the taker would stop here
                total += maker.qty
        return total

    def _match(self, bk: Book, b: int, t: Order) -> None:
        while t.qty > 0:
            best = bk.best(-t.side)
            if best is None or not _crosses(t, best):
                return
            maker = bk.levels[-t.side][best][0]
            if not self._is_self_trade(bk, t, maker):
                self._fill(bk, b, t, maker)
                continue
            if bk.stp in (CANCEL_MAKER, CANCEL_BOTH):
                self._cancel(bk, b, maker, Reason.SELF_TRADE)
            if bk.stp in (CANCEL_TAKER, CANCEL_BOTH):
                self._emit_order(CANCELLED, Reason.SELF_TRADE, b, t, t.shown_price, t.qty, 0)
                t.qty = 0

    def _account(self, bk: Book, owner: int, side: int, price: int, q: int, rate: int) -> None:
        if owner < 0:
            return
        account = bk.accounts[owner]
        charge = fee(price * q, rate)
        account[0] += side * q
        account[1] -= side * price * q + charge
        account[2] += q
        account[3] += charge

    def _fill(self, bk: Book, b: int, t: Order, maker: Order) -> None:
        """Trade taker ``t`` against ``maker`` at the maker's price."""
        q = min(t.qty, maker.qty)
        price = maker.price
        t.qty -= q
        maker.qty -= q
        self._account(bk, t.owner, t.side, price, q, bk.taker_fee_ppm)
        self._account(bk, maker.owner, maker.side, price, q, bk.maker_fee_ppm)
        bk.last_price = price
        bk.volume += q
        bk.notional += price * q
        bk.trade_count += 1
        self._emit(
            FILL,
            Reason.NO_REASON,
            b,
            order_id=t.order_id,
            side=t.side,
            owner=t.owner,
            price=price,
            qty=q,
            leaves_qty=t.qty,
            maker_order_id=maker.order_id,
            maker_leaves_qty=maker.qty,
            maker_owner=maker.owner,
        )
        if maker.qty == 0:
            bk.remove(maker)

    def _collect(self, bk: Book) -> list[Order]:
        """Take every pending stop whose condition holds off the stop list, in order."""
        last = bk.last_price
        hit = [
            s
            for s in bk.stops
            if (s.side == BUY and last >= s.stop_price) or (s.side == SELL and last <= s.stop_price)
        ]
        for s in hit:
            s.trigger_price = last
            bk.remove(s)
        return hit

    def _run_stops(self, bk: Book, b: int) -> None:
        """Trigger stops depth first until the last trade price triggers no more."""
        queue = self._collect(bk)
        while queue:
            stop = queue.pop(0)
            self._emit_order(
                TRIGGERED, Reason.NO_REASON, b, stop, stop.trigger_price, stop.qty, stop.qty
            )
            if stop.op == STOP:
                taker = Order(
                    stop.order_id, stop.side, stop.owner, stop.qty, None, MARKET, stop.tif
                )
            else:
                taker = Order(
                    stop.order_id, stop.side, stop.owner, stop.qty, stop.price, LIMIT, stop.tif
                )
            trades_before = bk.trade_count
            self._run_taker(bk, b, taker, announce=False)
            if bk.trade_count != trades_before:
                queue = self._collect(bk) + queue


class ReferenceOrderBook:
    """One reference book with the per-call API of ``rltrader.OrderBook``.

    Order ids of 0 are assigned from a counter starting at ``2**48``. ``window`` and
    ``capacity`` are accepted for signature compatibility and ignored.
    """

    def __init__(
        self,
        *,
        window: int = 4096,
        capacity: int = 1024,
        max_orders: int = 1 << 30,
        n_owners: int = 0,
        self_trade_prevention: int = 0,
        maker_fee_ppm: int = 0,
        taker_fee_ppm: int = 0,
    ) -> None:
        del window, capacity
        self.books = ReferenceBooks(
            1,
            n_owners=n_owners,
            self_trade_prevention=self_trade_prevention,
            maker_fee_ppm=maker_fee_ppm,
            taker_fee_ppm=taker_fee_ppm,
            max_orders=max_orders,
        )
        self._events = np.zeros(0, dtype=EVENT_DTYPE)
        self._next_id = 1 << 48

    def _send(
        self,
        op: int,
        side: int,
        price: int,
        stop_price: int,
        qty: int,
        order_id: int,
        new_order_id: int,
        owner: int,
        tif: int,
        timestamp: int,
    ) -> int:
        if order_id == 0 and op in NEW_ORDER_OPS:
            order_id = self._next_id
            self._next_id += 1
        msg = np.zeros(1, dtype=MESSAGE_DTYPE)
        msg[0] = (
            timestamp,
            order_id,
            new_order_id,
            price,
            stop_price,
            qty,
            0,
            owner,
            op,
            side,
            tif,
        )
        self._events = self.books.process_all(msg)
        return order_id

    def _accepted_call(self) -> bool:
        return not (len(self._events) and self._events[0]["kind"] == REJECTED)

    def limit(
        self,
        side: int,
        price: int,
        qty: int,
        order_id: int = 0,
        owner: int = NO_OWNER,
        tif: int = GTC,
        timestamp: int = 0,
    ) -> int:
        return self._send(LIMIT, side, price, 0, qty, order_id, 0, owner, tif, timestamp)

    def market(
        self,
        side: int,
        qty: int,
        order_id: int = 0,
        owner: int = NO_OWNER,
        tif: int = IOC,
        timestamp: int = 0,
    ) -> int:
        return self._send(MARKET, side, 0, 0, qty, order_id, 0, owner, tif, timestamp)

    def stop(
        self,
        side: int,
        stop_price: int,
        qty: int,
        order_id: int = 0,
        owner: int = NO_OWNER,
        tif: int = IOC,
        timestamp: int = 0,
    ) -> int:
        return self._send(STOP, side, 0, stop_price, qty, order_id, 0, owner, tif, timestamp)

    def stop_limit(
        self,
        side: int,
        stop_price: int,
        price: int,
        qty: int,
        order_id: int = 0,
        owner: int = NO_OWNER,
        tif: int = GTC,
        timestamp: int = 0,
    ) -> int:
        return self._send(
            STOP_LIMIT, side, price, stop_price, qty, order_id, 0, owner, tif, timestamp
        )

    def cancel(self, order_id: int, timestamp: int = 0, owner: int = NO_OWNER) -> bool:
        self._send(CANCEL, 0, 0, 0, 0, order_id, 0, owner, 0, timestamp)
        return self._accepted_call()

    def reduce(self, order_id: int, qty: int, timestamp: int = 0, owner: int = NO_OWNER) -> bool:
        self._send(REDUCE, 0, 0, 0, qty, order_id, 0, owner, 0, timestamp)
        return self._accepted_call()

    def replace(
        self,
        order_id: int,
        price: int,
        qty: int,
        new_order_id: int = 0,
        tif: int = GTC,
        timestamp: int = 0,
        owner: int = NO_OWNER,
    ) -> int:
        self._send(REPLACE, 0, price, 0, qty, order_id, new_order_id, owner, tif, timestamp)
        return new_order_id if new_order_id != 0 else order_id

    def execute(self, order_id: int, qty: int, timestamp: int = 0) -> bool:
        self._send(EXECUTE, 0, 0, 0, qty, order_id, 0, NO_OWNER, 0, timestamp)
        return self._accepted_call()

    def submit(self, message: np.void | np.ndarray) -> int:
        """Process one MESSAGE_DTYPE record (its ``book`` is ignored); returns its id."""
        return self._send(
            int(message["op"]),
            int(message["side"]),
            int(message["price"]),
            int(message["stop_price"]),
            int(message["qty"]),
            int(message["order_id"]),
            int(message["new_order_id"]),
            int(message["owner"]),
            int(message["tif"]),
            int(message["timestamp"]),
        )

    @property
    def events(self) -> np.ndarray:
        """The events of the last call."""
        return self._events

    def fills(self) -> np.ndarray:
        return self._events[self._events["kind"] == FILL]

    def best_bid(self) -> int:
        return self.books.best_bid(0)

    def best_ask(self) -> int:
        return self.books.best_ask(0)

    def last_price(self) -> int:
        return self.books.last_price(0)

    def volume(self) -> int:
        return self.books.volume(0)

    def depth(self, levels: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(bids, asks)``: int64 arrays of shape (k, 3), columns price, qty, count."""
        prices, qtys, counts = self.books.top_levels(levels)
        out = []
        for s in range(2):
            k = int(np.count_nonzero(counts[0, s]))
            out.append(
                np.stack(
                    [prices[0, s, :k], qtys[0, s, :k], counts[0, s, :k].astype(np.int64)], axis=1
                )
            )
        return out[0], out[1]

    def queue(self, side: int, price: int) -> np.ndarray:
        return self.books.level_queue(0, side, price)

    def order(self, order_id: int) -> dict[str, int] | None:
        return self.books.order(0, order_id)

    @property
    def accounts(self) -> np.ndarray:
        return self.books.accounts[0]

    def check_integrity(self) -> None:
        self.books.check_integrity()
