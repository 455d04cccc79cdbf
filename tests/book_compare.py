"""Comparison helpers shared by the differential and property tests.

Every helper raises ``AssertionError`` with enough context to debug a mismatch: the message
index, the message itself and both event lists.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from _vocab import EVENT_DTYPE, MESSAGE_DTYPE, EventKind, Op, Reason, TimeInForce
from reference_book import ReferenceBooks

EVENT_FIELDS = EVENT_DTYPE.names
MESSAGE_FIELDS = MESSAGE_DTYPE.names


def _name(enum, value: int) -> str:
    try:
        name = enum(value).name
    except ValueError:
        name = None
    return str(value) if name is None else name


def format_message(message: np.void) -> str:
    fields = {name: int(message[name]) for name in MESSAGE_FIELDS}
    fields["op"] = _name(Op, fields["op"])
    fields["tif"] = _name(TimeInForce, fields["tif"])
    return "{" + ", ".join(f"{k}={v}" for k, v in fields.items()) + "}"


def format_events(events: np.ndarray) -> str:
    if len(events) == 0:
        return "    (none)"
    lines = []
    for e in events:
        fields = {name: int(e[name]) for name in EVENT_FIELDS}
        kind = _name(EventKind, fields.pop("kind"))
        reason = _name(Reason, fields.pop("reason"))
        lines.append(
            f"    {kind:<9} {reason:<22} " + " ".join(f"{k}={v}" for k, v in fields.items())
        )
    return "\n".join(lines)


def event_rows(events: np.ndarray) -> list[tuple[int, ...]]:
    """Events as tuples of Python ints, field by field (padding bytes never compared)."""
    return [tuple(int(x) for x in row) for row in events.tolist()]


def assert_same_events(core: np.ndarray, reference: np.ndarray, where: str) -> None:
    if event_rows(core) == event_rows(reference):
        return
    raise AssertionError(
        f"events differ {where}\ncore:\n{format_events(core)}\n"
        f"reference:\n{format_events(reference)}"
    )


def assert_same_state(core, ref: ReferenceBooks, where: str, depth: int = 8) -> None:
    """Top of book, depth, counters and accounts of every book agree."""
    for b in range(ref.n_books):
        got = (
            core.best_bid(b),
            core.best_ask(b),
            core.last_price(b),
            core.volume(b),
            core.trade_count(b),
            core.live_orders(b),
        )
        want = (
            ref.best_bid(b),
            ref.best_ask(b),
            ref.last_price(b),
            ref.volume(b),
            ref.trade_count(b),
            ref.live_orders(b),
        )
        if got != want:
            raise AssertionError(
                f"book {b} state differs {where}: (best_bid, best_ask, last_price, volume, "
                f"trade_count, live_orders) core {got} reference {want}"
            )
    for name, x, y in zip(
        ("prices", "qtys", "counts"), core.top_levels(depth), ref.top_levels(depth), strict=True
    ):
        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
            raise AssertionError(
                f"top_levels({depth}) {name} differ {where}\ncore:\n{x}\nreference:\n{y}"
            )
    core_accounts, ref_accounts = core.accounts, ref.accounts
    if core_accounts.shape != ref_accounts.shape or any(
        not np.array_equal(core_accounts[f], ref_accounts[f]) for f in ref_accounts.dtype.names
    ):
        raise AssertionError(
            f"accounts differ {where}\ncore:\n{core_accounts}\nreference:\n{ref_accounts}"
        )


def assert_same_orders(core, ref: ReferenceBooks, where: str, depth: int = 16) -> None:
    """Every live order and the FIFO queue of every top level agree (the L3 view)."""
    for b in range(ref.n_books):
        for order_id in ref.live_order_ids(b):
            got, want = core.order(b, order_id), ref.order(b, order_id)
            if got != want:
                raise AssertionError(
                    f"order {order_id} of book {b} differs {where}: core {got} reference {want}"
                )
    prices, _, _ = ref.top_levels(depth)
    for b in range(ref.n_books):
        for s, side in enumerate((1, -1)):
            for price in prices[b, s]:
                if price == 0:
                    break
                got = core.level_queue(b, side, int(price))
                want = ref.level_queue(b, side, int(price))
                if event_rows(got) != event_rows(want):
                    raise AssertionError(
                        f"queue of book {b} side {side} price {price} differs {where}\n"
                        f"core: {got}\nreference: {want}"
                    )


def check_order_conservation(events: Iterable[np.ndarray], core) -> None:
    """Per order: accepted qty = filled + reduced + cancelled + still open (DESIGN.md).

    Replays the event stream, tracking every order's open lots from its ``ACCEPTED``; each
    event's ``leaves_qty`` / ``maker_leaves_qty`` must match, a ``CANCELLED`` must take
    exactly the open lots, and what stays open at the end must be the live orders of the
    book (same ids, same leaves).
    """
    open_lots: dict[tuple[int, int], int] = {}

    def take(key: tuple[int, int], qty: int, leaves: int, e) -> None:
        if key not in open_lots:
            raise AssertionError(f"event for an order that is not open: {format_events(e)}")
        open_lots[key] -= qty
        if open_lots[key] != leaves or leaves < 0:
            raise AssertionError(f"leaves {open_lots[key]} expected in {format_events(e)}")
        if leaves == 0:
            del open_lots[key]

    for batch in events:
        for i in range(len(batch)):
            e = batch[i : i + 1]
            row = batch[i]
            kind, b = int(row["kind"]), int(row["book"])
            key = (b, int(row["order_id"]))
            qty, leaves = int(row["qty"]), int(row["leaves_qty"])
            if kind == EventKind.ACCEPTED:
                if key in open_lots or qty != leaves or qty <= 0:
                    raise AssertionError(f"bad ACCEPTED {format_events(e)}")
                open_lots[key] = qty
            elif kind == EventKind.FILL:
                if key[1] != 0:
                    take(key, qty, leaves, e)
                take((b, int(row["maker_order_id"])), qty, int(row["maker_leaves_qty"]), e)
            elif kind == EventKind.REDUCED:
                take(key, qty, leaves, e)
            elif kind == EventKind.CANCELLED:
                if leaves != 0 or open_lots.get(key) != qty:
                    raise AssertionError(
                        f"CANCELLED of {qty} lots, open {open_lots.get(key)}: {format_events(e)}"
                    )
                del open_lots[key]
            elif kind == EventKind.TRIGGERED:
                if open_lots.get(key) != qty:
                    raise AssertionError(f"TRIGGERED size != open lots: {format_events(e)}")
            elif kind == EventKind.REJECTED and int(row["reason"]) == Reason.POST_ONLY_WOULD_CROSS:
                # a triggered post-only stop-limit ends here; a new order was never open
                if key in open_lots:
                    if open_lots[key] != qty:
                        raise AssertionError(f"rejected size != open lots: {format_events(e)}")
                    del open_lots[key]
    for (b, order_id), lots in open_lots.items():
        live = core.order(b, order_id)
        if live is None or live["qty"] != lots:
            raise AssertionError(
                f"order {order_id} of book {b}: {lots} lots open by the events, the book has {live}"
            )
    total_live = sum(core.live_orders(b) for b in range(core.n_books))
    if total_live != len(open_lots):
        raise AssertionError(f"{total_live} live orders, the events leave {len(open_lots)} open")


def check_accounts_balance(core) -> None:
    """With every order owned: positions sum to 0 and cash to minus the fees, per book."""
    accounts = core.accounts
    for b in range(accounts.shape[0]):
        a = accounts[b]
        position, cash, fees = (
            int(a["position"].sum()),
            int(a["cash"].sum()),
            int(a["fees"].sum()),
        )
        if position != 0 or cash != -fees:
            raise AssertionError(
                f"book {b}: positions sum to {position}, cash to {cash}, fees to {fees}"
            )
        if int(a["volume"].sum()) != 2 * core.volume(b):
            raise AssertionError(f"book {b}: account volumes {a['volume']} vs {core.volume(b)}")
