"""Seeded random message streams for the differential and property tests.

``random_stream`` writes realistic-looking order flow that exercises every operation, every
time-in-force, stops, replaces, executes, reduces and self-trades, with prices mostly near
the touch but sometimes hundreds of ticks away (so a core run with a small dense window must
re-centre and use its overflow lists), plus a small fraction of invalid values. To keep
most cancels, reduces, replaces and executes aimed at live orders, the generator runs its
own ``ReferenceBooks`` alongside and picks ids from it.

``random_bytes_stream`` views random bytes as messages (optionally "tamed" into small
ranges so that more of them get past validation).
"""

from __future__ import annotations

import numpy as np
from _vocab import MAX_PRICE, MAX_QTY, MESSAGE_DTYPE, NO_OWNER
from reference_book import (
    BUY,
    CANCEL,
    EXECUTE,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    POST_ONLY,
    REDUCE,
    REPLACE,
    SELL,
    STOP,
    STOP_LIMIT,
    ReferenceBooks,
)

#: Relative frequency of each operation in ``random_stream``.
DEFAULT_OP_WEIGHTS = {
    LIMIT: 0.44,
    MARKET: 0.06,
    CANCEL: 0.14,
    REDUCE: 0.06,
    REPLACE: 0.10,
    STOP: 0.05,
    STOP_LIMIT: 0.05,
    EXECUTE: 0.04,
    -1: 0.06,  # boundary values and deliberately invalid messages
}

#: What ``_Generator.spoil`` may do to a message (boundary listed twice: drawn twice as often).
INVALID_KINDS = (
    "qty",
    "price",
    "stop_price",
    "op",
    "side",
    "tif",
    "owner",
    "book",
    "order_id",
    "duplicate",
    "unknown",
    "finished",
    "new_order_id",
    "boundary",
    "boundary",
)


class _Generator:
    def __init__(
        self,
        seed: int,
        n_books: int,
        n_owners: int,
        no_owner_rate: float,
        far_rate: float,
        jump_rate: float,
        start_price: int,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_books = n_books
        self.n_owners = n_owners
        self.no_owner_rate = no_owner_rate
        self.far_rate = far_rate
        self.jump_rate = jump_rate
        self.mid = [start_price] * n_books
        self.sim = ReferenceBooks(n_books, n_owners=n_owners)
        self.next_id = 1
        self.issued: list[int] = []
        self.timestamp = 0

    # ---- small draws --------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def side(self) -> int:
        return BUY if self.chance(0.5) else SELL

    def owner(self) -> int:
        if self.n_owners == 0 or self.chance(self.no_owner_rate):
            return NO_OWNER
        return int(self.rng.integers(self.n_owners))

    def qty(self) -> int:
        if self.chance(0.2):
            return int(self.rng.integers(1, 100))
        return int(self.rng.integers(1, 10))

    def price(self, b: int, side: int) -> int:
        """A limit price: mostly a few ticks around the mid, sometimes far away."""
        if self.chance(self.far_rate):
            offset = int(self.rng.integers(100, 3000)) * (1 if self.chance(0.7) else -1)
        else:
            offset = int(self.rng.geometric(0.2)) - 2  # -1 (crossing) .. a dozen ticks
        return max(1, self.mid[b] - side * offset)

    def tif(self) -> int:
        return int(self.rng.choice([GTC, IOC, FOK, POST_ONLY], p=[0.55, 0.15, 0.12, 0.18]))

    def fresh_id(self, b: int) -> int:
        if self.issued and self.chance(0.05):
            # reuse an id that is not live in this book (finished, or live in another book)
            order_id = self.pick(self.issued)
            if order_id not in self.sim.books[b].live:
                return order_id
        order_id = self.next_id
        self.next_id += 1
        self.issued.append(order_id)
        return order_id

    def live_id(self, b: int, resting_only: bool = False) -> int | None:
        live = self.sim.books[b].live
        if not live:
            return None
        ids = list(live)
        if resting_only and not self.chance(0.05):
            ids = [i for i in ids if live[i].op == LIMIT] or ids
        return self.pick(ids)

    def unknown_id(self, b: int) -> int:
        if self.issued and self.chance(0.7):
            order_id = self.pick(self.issued)  # most likely finished by now
            if order_id not in self.sim.books[b].live:
                return order_id
        return self.next_id + 1_000_000

    def step_mid(self, b: int) -> None:
        mid = self.mid[b] + int(self.rng.integers(-2, 3))
        if self.chance(self.jump_rate):
            mid += int(self.rng.integers(100, 1500)) * (1 if self.chance(0.5) else -1)
        self.mid[b] = min(max(mid, 50), 10_000_000)

    # ---- one message --------------------------------------------------------------------

    def message(self, op: int) -> dict[str, int]:
        b = int(self.rng.integers(self.n_books))
        self.step_mid(b)
        self.timestamp += int(self.rng.integers(0, 1000))
        m = dict(
            timestamp=self.timestamp,
            order_id=0,
            new_order_id=0,
            price=0,
            stop_price=0,
            qty=0,
            book=b,
            owner=NO_OWNER,
            op=op,
            side=0,
            tif=0,
        )
        live = self.sim.books[b].live
        if op in (LIMIT, MARKET, STOP, STOP_LIMIT):
            side = self.side()
            m.update(order_id=self.fresh_id(b), side=side, owner=self.owner(), qty=self.qty())
            if op == LIMIT:
                m.update(price=self.price(b, side), tif=self.tif())
            elif op == MARKET:
                m["tif"] = int(self.rng.choice([IOC, FOK, GTC], p=[0.6, 0.3, 0.1]))
            else:
                last = self.sim.books[b].last_price or self.mid[b]
                stop_price = max(1, last + side * (int(self.rng.integers(-3, 12))))
                m["stop_price"] = stop_price
                if op == STOP:
                    m["tif"] = int(self.rng.choice([IOC, FOK, GTC], p=[0.6, 0.3, 0.1]))
                else:
                    m["price"] = max(1, stop_price + side * int(self.rng.integers(-3, 6)))
                    m["tif"] = self.tif()
        elif op in (CANCEL, REDUCE, REPLACE, EXECUTE):
            order_id = self.live_id(b, resting_only=op in (REPLACE, EXECUTE))
            if order_id is None or self.chance(0.03):
                order_id = self.unknown_id(b)
            m["order_id"] = order_id
            leaves = live[order_id].qty if order_id in live else self.qty()
            if op == REDUCE:
                m["qty"] = int(self.rng.integers(1, leaves + 3))
            elif op == EXECUTE:
                m["qty"] = int(self.rng.integers(1, leaves + 1))
                if self.chance(0.1):
                    m["qty"] = leaves + 1
            elif op == REPLACE:
                side = live[order_id].side if order_id in live else self.side()
                m.update(price=self.price(b, side), qty=self.qty(), tif=self.tif())
                r = self.rng.random()
                if r < 0.45:
                    m["new_order_id"] = self.fresh_id(b)
                elif r < 0.55:
                    m["new_order_id"] = order_id
                elif r < 0.6 and live:
                    m["new_order_id"] = self.pick(list(live))  # a duplicate unless itself
        return m

    def spoil(self, m: dict[str, int]) -> dict[str, int]:
        """Turn a valid message into a boundary case or an invalid one."""
        rng = self.rng
        kind = self.pick(INVALID_KINDS)
        b = m["book"]
        if kind == "qty":
            m["qty"] = self.pick([0, -1, -int(rng.integers(2, 1000)), MAX_QTY + 1])
        elif kind == "price":
            m["price"] = self.pick([0, -1, -int(rng.integers(2, 1000)), MAX_PRICE + 1])
        elif kind == "stop_price":
            m["stop_price"] = self.pick([0, -3, MAX_PRICE + 1])
        elif kind == "op":
            m["op"] = self.pick([0, 9, -1, 127, -128])
        elif kind == "side":
            m["side"] = self.pick([0, 2, -2, 127])
        elif kind == "tif":
            m["tif"] = self.pick([4, -1, 9, POST_ONLY])
        elif kind == "owner":
            m["owner"] = self.pick([self.n_owners, self.n_owners + 7, -2])
        elif kind == "book":
            m["book"] = self.pick([self.n_books, -1, 1 << 30])
        elif kind == "order_id":
            m["order_id"] = self.pick([0, -1, -(1 << 40)])
        elif kind == "duplicate":
            live_id = self.live_id(b)
            if live_id is not None and m["op"] in (LIMIT, MARKET, STOP, STOP_LIMIT):
                m["order_id"] = live_id
        elif kind in ("unknown", "finished"):
            m["order_id"] = self.unknown_id(b)
        elif kind == "new_order_id":
            m["new_order_id"] = self.pick([-1, -(1 << 33)])
        else:
            # valid extremes: a tiny ask at MAX_PRICE, a huge bid at 1-3 ticks, a huge
            # market order (kept where notional x fee cannot overflow int64)
            r = rng.random()
            m["owner"] = self.owner()
            if r < 0.4:
                m.update(
                    op=LIMIT,
                    side=SELL,
                    price=MAX_PRICE,
                    qty=self.qty(),
                    tif=GTC,
                    order_id=self.fresh_id(b),
                )
            elif r < 0.8:
                m.update(
                    op=LIMIT,
                    side=BUY,
                    price=int(rng.integers(1, 4)),
                    qty=MAX_QTY,
                    tif=self.pick([GTC, POST_ONLY]),
                    order_id=self.fresh_id(b),
                )
            else:
                m.update(
                    op=MARKET, side=self.side(), qty=MAX_QTY, tif=IOC, order_id=self.fresh_id(b)
                )
        return m


def random_stream(
    seed: int,
    n: int,
    *,
    n_books: int = 1,
    n_owners: int = 4,
    no_owner_rate: float = 0.1,
    far_rate: float = 0.05,
    jump_rate: float = 0.01,
    execute: bool = True,
    invalid: bool = True,
    start_price: int = 10_000,
    target_depth: int = 60,
    op_weights: dict[int, float] | None = None,
) -> np.ndarray:
    """``n`` random messages of MESSAGE_DTYPE, a pure function of the arguments.

    Parameters
    ----------
    seed : int
        Seed of the ``numpy.random.Generator``.
    n : int
        Number of messages.
    n_books, n_owners : int
        Books and accounts the messages address (owners ``-1`` with ``no_owner_rate``).
    far_rate : float
        Fraction of limit prices placed 100-3000 ticks away from the mid.
    jump_rate : float
        Per-message chance that a book's mid jumps by 100-1500 ticks.
    execute : bool
        Whether to generate ``EXECUTE`` (an outside trade, which has no owner).
    invalid : bool
        Whether to generate boundary and invalid messages.
    target_depth : int
        Live orders per book the flow aims for (removals turn into limits below it).
    op_weights : dict, optional
        Relative frequency per op (key -1: boundary/invalid); defaults to
        ``DEFAULT_OP_WEIGHTS``.
    """
    weights = dict(DEFAULT_OP_WEIGHTS if op_weights is None else op_weights)
    if not execute:
        weights.pop(EXECUTE, None)
    if not invalid:
        weights.pop(-1, None)
    if n_owners == 0:
        no_owner_rate = 1.0
    ops = list(weights)
    p = np.array([weights[op] for op in ops], dtype=float)
    p /= p.sum()
    gen = _Generator(seed, n_books, n_owners, no_owner_rate, far_rate, jump_rate, start_price)
    out = np.zeros(n, dtype=MESSAGE_DTYPE)
    valid_ops = [op for op in ops if op != -1]
    for i in range(n):
        op = ops[int(gen.rng.choice(len(ops), p=p))]
        if op in (CANCEL, REDUCE, MARKET, EXECUTE) and target_depth > 0:
            # keep the books deep: while one is thin, most removals become new limits
            depth = gen.sim.live_orders() / n_books
            if gen.chance(1.0 - depth / target_depth):
                op = LIMIT
        if op == -1:
            m = gen.spoil(gen.message(gen.pick(valid_ops)))
        else:
            m = gen.message(op)
        out[i] = tuple(m[name] for name in MESSAGE_DTYPE.names)
        gen.sim.process_all(out[i : i + 1])
    return out


def random_bytes_stream(
    seed: int, n: int, *, tame: float = 0.0, n_books: int = 1, n_owners: int = 0
) -> np.ndarray:
    """``n`` messages made of random bytes.

    With ``tame > 0``, each field of each message is, with that probability, replaced by a
    small value that is (mostly) valid, so that many messages pass validation and trade
    while the others keep raw random values in some fields.
    """
    rng = np.random.default_rng(seed)
    msgs = np.frombuffer(rng.bytes(n * MESSAGE_DTYPE.itemsize), dtype=MESSAGE_DTYPE).copy()
    if tame <= 0:
        return msgs
    sides = np.array([BUY, SELL], dtype=np.int8)
    sane = {
        "timestamp": lambda k: rng.integers(0, 1 << 40, k),
        "book": lambda k: rng.integers(0, n_books, k),
        "op": lambda k: rng.integers(1, 9, k),
        "owner": lambda k: rng.integers(-1, n_owners, k),
        "side": lambda k: sides[rng.integers(0, 2, k)],
        "tif": lambda k: rng.integers(0, 4, k),
        "price": lambda k: rng.integers(90, 111, k),
        "stop_price": lambda k: rng.integers(90, 111, k),
        "qty": lambda k: rng.integers(1, 11, k),
        "order_id": lambda k: rng.integers(1, 31, k),
        "new_order_id": lambda k: rng.integers(0, 31, k),
    }
    for name, draw in sane.items():
        rows = np.flatnonzero(rng.random(n) < tame)
        msgs[name][rows] = draw(len(rows))
    return msgs
