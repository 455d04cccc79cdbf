"""The L3 rows of :mod:`rltrader.data.generic` as messages: the known orders, the book they
make, and the incoming orders held while they would cross it (that module's docstring)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rltrader.core.constants import (
    BUY,
    CANCEL,
    EXECUTE,
    LEVEL_ID_BASE,
    LIMIT,
    REDUCE,
    REPLACE,
    SELL,
)
from rltrader.data._cells import (
    Table,
    cell_text,
    decode_side,
    decode_timestamps,
    side_codes,
    to_units,
)
from rltrader.data._decimal import DecimalGrid
from rltrader.data._io import FormatError

if TYPE_CHECKING:
    from rltrader.data.generic import ColumnMapping

EVENTS = ("created", "changed", "deleted", "traded", "ignored")


@dataclass
class _Order:
    order_id: int
    side: int
    price: int
    lots: int
    held: bool = False


@dataclass
class L3Orders:
    """Turns L3 rows into message columns, tracking the known orders and the book they
    make (to hold orders that would cross it; module docstring)."""

    table: Table
    mapping: ColumnMapping
    prices: DecimalGrid
    sizes: DecimalGrid
    unknown: str
    columns: list[tuple[int, ...]] = field(default_factory=list)
    orders: dict[Any, _Order] = field(default_factory=dict)
    held: dict[Any, _Order] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))
    unknown_rows: list[int] = field(default_factory=list)
    held_orders: int = 0
    unchanged: int = 0

    def __post_init__(self) -> None:
        # resting (not held) orders per price, and heaps of the prices for the best of each
        # side (lazy: a price leaves its heap when found empty at the top)
        self.level_count: dict[int, dict[int, int]] = {int(BUY): {}, int(SELL): {}}
        self.heap: dict[int, list[int]] = {int(BUY): [], int(SELL): []}
        code = {c: e for e in EVENTS for c in getattr(self.mapping, e)}
        self.event_of = code

    # -- the known book ---------------------------------------------------------------

    def _best(self, side: int) -> int | None:
        heap, count = self.heap[side], self.level_count[side]
        while heap and not count.get(side * heap[0] * -1, 0):
            heapq.heappop(heap)
        return -side * heap[0] if heap else None

    def _crosses(self, side: int, price: int) -> bool:
        best = self._best(-side)
        return best is not None and side * (price - best) >= 0

    def _rest(self, order: _Order) -> None:
        count = self.level_count[order.side]
        if not count.get(order.price):
            count[order.price] = 0
            heapq.heappush(self.heap[order.side], -order.side * order.price)
        count[order.price] += 1

    def _unrest(self, order: _Order) -> None:
        self.level_count[order.side][order.price] -= 1

    # -- rows -------------------------------------------------------------------------

    def _emit(self, op: int, order: _Order, qty: int, ts: int, where: int) -> None:
        self.columns.append((ts, op, order.order_id, order.side, order.price, qty, where))

    def _id(self, i: int, cell: Any, create: bool) -> tuple[Any, int]:
        """``(key, int id)`` of an id cell; the int is 0 for a string id not seen yet
        unless ``create``."""
        if self.mapping.order_ids == "integer":
            text = cell_text(cell)
            if not text.isdigit() or not 0 < int(text) < LEVEL_ID_BASE:
                raise self.table.error(i, f"order id {cell!r} is not an integer in [1, 2**52) "
                                          "(order_ids = \"string\" numbers any text ids)")
            return int(text), int(text)
        key = cell_text(cell)
        if not key:
            raise self.table.error(i, "empty order id")
        if create and key not in self.ids:
            self.ids[key] = len(self.ids) + 1
        return key, self.ids.get(key, 0)

    def run(self) -> None:
        table = self.table
        stamps, codes = decode_timestamps(table, self.mapping), side_codes(self.mapping)
        cells = table.cells
        for i, ts in enumerate(stamps):
            raw_event = cells["event"][i]
            event = self.event_of.get(cell_text(raw_event))
            if event is None:
                raise table.error(i, f"event {raw_event!r} is none of the mapping's events")
            self.counts[event] += 1
            if event == "ignored":
                continue
            side = decode_side(table, i, codes)
            try:
                self._row(i, event, ts, side)
            except ValueError as exc:
                if isinstance(exc, FormatError):
                    raise
                raise table.error(i, str(exc)) from None

    def _row(self, i: int, event: str, ts: int, side: int) -> None:
        cells, where = self.table.cells, self.table.where[i]
        key, order_id = self._id(i, cells["order_id"][i], create=event == "created")
        if event == "created":
            if key in self.orders:
                raise ValueError(f"order {key} is created again while live")
            order = _Order(order_id, side, self._price(i), to_units(self.sizes, cells["size"][i]))
            if order.lots == 0:
                raise ValueError("a created order of size 0")
            self.orders[key] = order
            self._place(key, order, ts, where)
            return
        order = self.orders.get(key)
        if order is None:
            if self.unknown == "error":
                raise ValueError(f"{event} of order {key}, which no earlier row created")
            self.unknown_rows.append(where)
            return
        if side != order.side:
            raise ValueError(f"side {cells['side'][i]!r}, but order {key} was created on the "
                             f"other side")
        if event == "deleted":
            self._remove(key, order)
            if not order.held:
                self._emit(int(CANCEL), order, order.lots, ts, where)
        elif event == "traded":
            qty = to_units(self.sizes, cells["size"][i])
            if qty == 0 or qty > order.lots:
                raise ValueError(f"traded {qty} lots of order {key}, which holds {order.lots}")
            if not order.held:
                self._emit(int(EXECUTE), order, qty, ts, where)
            order.lots -= qty
            if order.lots == 0:
                self._remove(key, order)
        else:
            self._change(key, order, self._price(i), to_units(self.sizes, cells["size"][i]), ts,
                         where)
        if self.held:
            self._release(ts, where)

    def _price(self, i: int) -> int:
        price = to_units(self.prices, self.table.cells["price"][i])
        if price == 0:
            raise ValueError("price 0 (the core's prices start at one tick)")
        return price

    def _place(self, key: Any, order: _Order, ts: int, where: int) -> None:
        """Rest ``order`` (a ``LIMIT``), or hold it while it would cross the known book."""
        if self._crosses(order.side, order.price):
            order.held = True
            self.held[key] = order
            self.held_orders += 1
        else:
            self._rest(order)
            self._emit(int(LIMIT), order, order.lots, ts, where)

    def _remove(self, key: Any, order: _Order) -> None:
        del self.orders[key]
        if order.held:
            del self.held[key]
        else:
            self._unrest(order)

    def _change(self, key: Any, order: _Order, price: int, lots: int, ts: int, where: int
                ) -> None:
        if lots == 0:
            self._remove(key, order)
            if not order.held:
                self._emit(int(CANCEL), order, order.lots, ts, where)
            return
        if order.held:  # sent with its latest state when released
            order.price, order.lots = price, lots
            return
        if price == order.price and lots == order.lots:
            self.unchanged += 1
            return
        if price == order.price and lots < order.lots:
            self._emit(int(REDUCE), order, order.lots - lots, ts, where)
            order.lots = lots
            return
        self._unrest(order)
        if price != order.price and self._crosses(order.side, price):
            self._emit(int(CANCEL), order, order.lots, ts, where)
            order.price, order.lots, order.held = price, lots, True
            self.held[key] = order
            self.held_orders += 1
            return
        order.price, order.lots = price, lots
        self._rest(order)
        self._emit(int(REPLACE), order, lots, ts, where)

    def _release(self, ts: int, where: int) -> None:
        """Send the held orders that no longer cross, oldest first."""
        for key, order in list(self.held.items()):
            if not self._crosses(order.side, order.price):
                del self.held[key]
                order.held = False
                self._rest(order)
                self._emit(int(LIMIT), order, order.lots, ts, where)

    def result(self) -> dict[str, Any]:
        return dict(event_counts=self.counts,
                    unknown_rows=np.array(self.unknown_rows, dtype=np.int64),
                    held_orders=self.held_orders, still_held=len(self.held),
                    unchanged=self.unchanged,
                    order_ids=self.ids if self.mapping.order_ids == "string" else None)
