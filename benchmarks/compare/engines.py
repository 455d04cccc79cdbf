"""Adapters that drive each order book on one single-book ``MESSAGE_DTYPE`` stream.

An adapter has four steps: ``prepare`` turns the stream into the engine's own input once
(not timed), ``fresh`` builds an empty book and whatever the run needs (not timed), ``run``
applies the whole stream (timed), and ``top`` returns ``(best_bid, best_ask)`` in ticks
(``None`` for an empty side) so the engines can be checked against each other.

Only ``numpy`` is needed to import this module; each engine imports its package lazily.
The streams compared here (W1, W3) never cross and every cancel/reduce/execute refers to a
live order, so a book that only applies deltas and a matching engine end in the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# rltrader Op values (rltrader/_book.pxd), repeated so this file imports without rltrader
LIMIT, CANCEL, REDUCE, EXECUTE = 1, 3, 4, 8
ADD, UPDATE, DELETE = 1, 2, 3
TICK = 0.01  # one tick in price units for the engines that take float / decimal prices


def l3_actions(msgs: np.ndarray) -> dict[str, np.ndarray]:
    """Translate a non-crossing single-book stream into L3 add / update / delete actions.

    ``LIMIT`` -> add; ``CANCEL`` -> delete; ``REDUCE`` / ``EXECUTE`` -> update to the new
    size, or delete when nothing is left. ``qty`` of an update is the order's new size.
    """
    if msgs.size and np.unique(msgs["book"]).size != 1:
        raise ValueError("l3_actions takes a single-book stream")
    n = msgs.shape[0]
    action = np.empty(n, dtype=np.int8)
    side = np.empty(n, dtype=np.int8)
    price = np.empty(n, dtype=np.int64)
    qty = np.empty(n, dtype=np.int64)
    live: dict[int, tuple[int, int, int]] = {}  # order_id -> (side, price, leaves)
    ops = msgs["op"].tolist()
    ids = msgs["order_id"].tolist()
    sides = msgs["side"].tolist()
    prices = msgs["price"].tolist()
    qtys = msgs["qty"].tolist()
    tifs = msgs["tif"].tolist()
    for i in range(n):
        op, oid = ops[i], ids[i]
        if op == LIMIT:
            if tifs[i] != 0:
                raise ValueError(f"message {i}: only GTC limits translate to an L3 add")
            live[oid] = (sides[i], prices[i], qtys[i])
            action[i], side[i], price[i], qty[i] = ADD, sides[i], prices[i], qtys[i]
            continue
        s, p, leaves = live[oid]
        if op == CANCEL or (op in (REDUCE, EXECUTE) and qtys[i] >= leaves):
            del live[oid]
            action[i], side[i], price[i], qty[i] = DELETE, s, p, leaves
        elif op in (REDUCE, EXECUTE):
            leaves -= qtys[i]
            live[oid] = (s, p, leaves)
            action[i], side[i], price[i], qty[i] = UPDATE, s, p, leaves
        else:
            raise ValueError(f"message {i}: op {op} has no L3 delta")
    return {"action": action, "side": side, "price": price, "qty": qty,
            "order_id": msgs["order_id"].copy(), "timestamp": msgs["timestamp"].copy()}


@dataclass
class Engine:
    """Base adapter; ``name`` and ``does`` go into the report."""

    name: str = ""
    does: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def available(self) -> str | None:
        """``None`` when usable, else why not."""
        return None

    def version(self) -> str:
        return ""

    def prepare(self, msgs: np.ndarray) -> Any:
        return msgs

    def fresh(self, prepared: Any) -> Any:
        raise NotImplementedError

    def run(self, state: Any) -> None:
        raise NotImplementedError

    def top(self, state: Any) -> tuple[int | None, int | None]:
        raise NotImplementedError

    def close(self, state: Any) -> None:
        pass


def _module_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _can_import(module: str) -> str | None:
    try:
        __import__(module)
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return f"{module} not importable: {exc!r}"
    return None


# ---------------------------------------------------------------------------------------
# rltrader
# ---------------------------------------------------------------------------------------

class RltraderBatched(Engine):
    def __init__(self, batch: int = 4096) -> None:
        super().__init__(
            name=f"rltrader Books.process (batch {batch})",
            does=("validate, full price-time matching, order arena + id hash, dense levels "
                  "with bitmaps; writes >= 1 event record (80 B) per message into a "
                  "caller-owned buffer; one Python call per batch"),
            options={"batch": batch})
        self.batch = batch

    def available(self) -> str | None:
        return _can_import("rltrader._book")

    def version(self) -> str:
        import rltrader

        return rltrader.__version__

    def prepare(self, msgs: np.ndarray) -> Any:
        from rltrader import empty_events
        from rltrader.tools.workloads import events_needed

        return msgs, empty_events(events_needed(msgs, self.batch, max_live=msgs.shape[0]))

    def fresh(self, prepared: Any) -> Any:
        from rltrader import Books

        msgs, events = prepared
        capacity = 1 << max(10, int(np.count_nonzero(msgs["op"] == LIMIT)).bit_length())
        return Books(1, capacity=capacity), msgs, events

    def run(self, state: Any) -> None:
        from rltrader.tools.workloads import replay

        books, msgs, events = state
        replay(books, msgs, events, self.batch)

    def top(self, state: Any) -> tuple[int | None, int | None]:
        from rltrader import EMPTY_ASK, EMPTY_BID

        books = state[0]
        bid, ask = books.best_bid(0), books.best_ask(0)
        return (None if bid == EMPTY_BID else bid), (None if ask == EMPTY_ASK else ask)


class RltraderPerCall(Engine):
    def __init__(self) -> None:
        super().__init__(
            name="rltrader OrderBook per call",
            does=("one Python method call per message (limit/cancel/reduce/execute), each a "
                  "one-message batch through the same matching kernel"))

    def available(self) -> str | None:
        return _can_import("rltrader._book")

    def version(self) -> str:
        return RltraderBatched().version()

    def prepare(self, msgs: np.ndarray) -> Any:
        columns = [msgs[f].tolist() for f in ("op", "side", "price", "qty", "order_id")]
        return list(zip(*columns, strict=True)), int(np.count_nonzero(msgs["op"] == LIMIT))

    def fresh(self, prepared: Any) -> Any:
        from rltrader import OrderBook

        rows, n_limits = prepared
        return OrderBook(capacity=1 << max(10, n_limits.bit_length())), rows

    def run(self, state: Any) -> None:
        book, rows = state
        limit, cancel, reduce, execute = book.limit, book.cancel, book.reduce, book.execute
        for op, side, price, qty, order_id in rows:
            if op == LIMIT:
                limit(side, price, qty, order_id)
            elif op == CANCEL:
                cancel(order_id)
            elif op == EXECUTE:
                execute(order_id, qty)
            else:
                reduce(order_id, qty)

    def top(self, state: Any) -> tuple[int | None, int | None]:
        from rltrader import EMPTY_ASK, EMPTY_BID

        book = state[0]
        bid, ask = book.best_bid(), book.best_ask()
        return (None if bid == EMPTY_BID else bid), (None if ask == EMPTY_ASK else ask)


# ---------------------------------------------------------------------------------------
# NautilusTrader
# ---------------------------------------------------------------------------------------

class _Nautilus(Engine):
    def available(self) -> str | None:
        return _can_import("nautilus_trader.model.book")

    def version(self) -> str:
        return _module_version("nautilus_trader")

    def _deltas(self, msgs: np.ndarray) -> list[Any]:
        from nautilus_trader.model.data import OrderBookDelta
        from nautilus_trader.model.enums import BookAction, OrderSide
        from nautilus_trader.model.identifiers import InstrumentId
        from nautilus_trader.model.objects import FIXED_PRECISION

        self.instrument_id = InstrumentId.from_str("AAPL.XNAS")
        actions = l3_actions(msgs)
        price_scale = 10 ** (FIXED_PRECISION - 2)   # price precision 2: one tick = 0.01
        size_scale = 10 ** FIXED_PRECISION          # size precision 0: one lot = 1
        kind = {ADD: BookAction.ADD, UPDATE: BookAction.UPDATE, DELETE: BookAction.DELETE}
        side = {1: OrderSide.BUY, -1: OrderSide.SELL}
        from_raw = OrderBookDelta.from_raw
        iid = self.instrument_id
        deltas = []
        for i, (a, s, p, q, oid, ts) in enumerate(zip(
                actions["action"].tolist(), actions["side"].tolist(),
                actions["price"].tolist(), actions["qty"].tolist(),
                actions["order_id"].tolist(), actions["timestamp"].tolist(), strict=True)):
            deltas.append(from_raw(iid, kind[a], side[s], p * price_scale, 2,
                                   q * size_scale, 0, oid, 0, i + 1, ts, ts))
        return deltas

    def _book(self) -> Any:
        from nautilus_trader.model.book import OrderBook
        from nautilus_trader.model.enums import BookType

        return OrderBook(self.instrument_id, BookType.L3_MBO)

    def top(self, state: Any) -> tuple[int | None, int | None]:
        book = state[0]
        bid, ask = book.best_bid_price(), book.best_ask_price()
        return (None if bid is None else round(float(bid) / TICK),
                None if ask is None else round(float(ask) / TICK))


class NautilusBatched(_Nautilus):
    def __init__(self, batch: int = 4096) -> None:
        super().__init__(
            name=f"nautilus OrderBook.apply_deltas (batch {batch})",
            does=("L3_MBO book (Rust, through Cython): add / update / delete of one order "
                  "per delta, no matching (a crossing add would leave the book crossed), no "
                  "output records; one Python call per OrderBookDeltas of `batch` deltas"),
            options={"batch": batch})
        self.batch = batch

    def prepare(self, msgs: np.ndarray) -> Any:
        from nautilus_trader.model.data import OrderBookDeltas

        deltas = self._deltas(msgs)
        return [OrderBookDeltas(self.instrument_id, deltas[i:i + self.batch])
                for i in range(0, len(deltas), self.batch)]

    def fresh(self, prepared: Any) -> Any:
        return self._book(), prepared

    def run(self, state: Any) -> None:
        book, batches = state
        apply = book.apply_deltas
        for deltas in batches:
            apply(deltas)


class NautilusPerCall(_Nautilus):
    def __init__(self) -> None:
        super().__init__(
            name="nautilus OrderBook.apply_delta per call",
            does=("as apply_deltas, one Python call per prebuilt OrderBookDelta object "
                  "(object construction not timed)"))

    def prepare(self, msgs: np.ndarray) -> Any:
        return self._deltas(msgs)

    def fresh(self, prepared: Any) -> Any:
        return self._book(), prepared

    def run(self, state: Any) -> None:
        book, deltas = state
        apply = book.apply_delta
        for delta in deltas:
            apply(delta)


# ---------------------------------------------------------------------------------------
# hftbacktest
# ---------------------------------------------------------------------------------------

class Hftbacktest(Engine):
    def __init__(self, depth: str = "hashmap", exchange_side: bool = False) -> None:
        sides = "local + exchange processors" if exchange_side else "local processor only"
        super().__init__(
            name=f"hftbacktest L3 backtest ({depth}, {sides})",
            does=("the Rust backtest loop over an L3 (market-by-order) feed with "
                  "L3FIFOQueueModel: per event, pick the next processor by timestamp and "
                  "apply add / modify / cancel to the "
                  f"{'HashMapMarketDepth' if depth == 'hashmap' else 'ROIVectorMarketDepth'}"
                  f"{' of both the local and the exchange model' if exchange_side else ''}; "
                  "feed orders never match each other; no output records; one Python call"),
            options={"depth": depth, "exchange_side": exchange_side})
        self.depth = depth
        self.exchange_side = exchange_side

    def available(self) -> str | None:
        return _can_import("hftbacktest")

    def version(self) -> str:
        return _module_version("hftbacktest")

    def prepare(self, msgs: np.ndarray) -> Any:
        import hftbacktest as hbt
        from hftbacktest.binding import event_dtype

        actions = l3_actions(msgs)
        flags = hbt.LOCAL_EVENT | (hbt.EXCH_EVENT if self.exchange_side else 0)
        kind = np.array([0, hbt.ADD_ORDER_EVENT, hbt.MODIFY_ORDER_EVENT,
                         hbt.CANCEL_ORDER_EVENT], dtype=np.uint64)[actions["action"]]
        side = np.where(actions["side"] > 0, hbt.BUY_EVENT, hbt.SELL_EVENT).astype(np.uint64)
        events = np.zeros(msgs.shape[0], dtype=event_dtype)
        events["ev"] = np.uint64(flags) | kind | side
        # timestamps must be positive and non-decreasing
        ts = actions["timestamp"] - actions["timestamp"].min() + 1
        events["exch_ts"] = ts
        events["local_ts"] = ts
        events["px"] = actions["price"] * TICK
        events["qty"] = actions["qty"]
        events["order_id"] = actions["order_id"]
        lo, hi = float(actions["price"].min()) * TICK, float(actions["price"].max()) * TICK
        return events, lo - 1.0, hi + 1.0, int(ts.max()) + 1

    def _api(self) -> tuple[Any, ...]:
        import hftbacktest.binding as b
        from hftbacktest._hftbacktest import build_hashmap_backtest, build_roivec_backtest

        if self.depth == "hashmap":
            return (build_hashmap_backtest, b.hashmapbt_elapse, b.hashmapbt_depth,
                    b.hashmapdepth_best_bid_tick, b.hashmapdepth_best_ask_tick,
                    b.hashmapbt_close)
        return (build_roivec_backtest, b.roivecbt_elapse, b.roivecbt_depth,
                b.roivecdepth_best_bid_tick, b.roivecdepth_best_ask_tick, b.roivecbt_close)

    def fresh(self, prepared: Any) -> Any:
        from hftbacktest import BacktestAsset

        events, lo, hi, horizon = prepared
        build = self._api()[0]
        asset = BacktestAsset()
        # BacktestAsset.add_data() in 2.4.x hands the array over twice; register it once
        asset._add_data_ndarray(events.ctypes.data, len(events))
        asset = (asset.linear_asset(1.0).constant_order_latency(0, 0).l3_fifo_queue_model()
                 .no_partial_fill_exchange().tick_size(TICK).lot_size(1.0))
        if self.depth == "roivec":
            asset = asset.roi_lb(lo).roi_ub(hi)
        return build([asset]), horizon, events

    def run(self, state: Any) -> None:
        ptr, horizon, _ = state
        status = self._api()[1](ptr, horizon)
        if status != 1:  # 1: reached the end of the data
            raise RuntimeError(f"hftbacktest elapse returned {status}")

    def top(self, state: Any) -> tuple[int | None, int | None]:
        _, _, depth_of, best_bid, best_ask, _ = self._api()
        depth = depth_of(state[0], 0)
        bid, ask = best_bid(depth), best_ask(depth)
        # empty sides are reported as i64::MIN / i64::MAX
        return (None if abs(bid) > 1 << 62 else bid), (None if abs(ask) > 1 << 62 else ask)

    def close(self, state: Any) -> None:
        self._api()[5](state[0])


def all_engines() -> list[Engine]:
    return [
        RltraderBatched(),
        RltraderPerCall(),
        NautilusBatched(),
        NautilusPerCall(),
        Hftbacktest("hashmap"),
        Hftbacktest("roivec"),
        Hftbacktest("hashmap", exchange_side=True),
    ]
