#!/usr/bin/env python3
"""Stdio adapter: tracebook-conformance (protocol ``tracebook.conformance`` v1) -> rltrader.

Run as ``python tests/conformance/tracebook_adapter.py [options]`` and hand that command to
``tracebook-conformance ... --candidate-cmd``. The harness writes one JSON object per line
on stdin (``hello``, then ``event`` / ``snapshot`` messages, then ``finish``); this process
answers one line per message on stdout (``ready``, ``observation``, ``snapshot``,
``complete``, or a final ``error``). stdout carries protocol frames only; diagnostics go to
stderr.

Everything here is *mapping*, never matching: each protocol event becomes exactly one call
on an ``rltrader.OrderBook`` (one book per protocol symbol), and the observation is built
from that call's events (``OrderBook.events``) and from the core's own L3 view
(``OrderBook.depth`` + ``OrderBook.queue``). The adapter keeps no shadow copy of orders.

Conventions mapped here (see docs/semantics.md for the core side):

* Numbers. Protocol prices/quantities are JSON numbers (the harness sends Python floats).
  Prices snap to the configured tick grid with the protocol's rule
  ``ticks = round(price / tick_size)`` (IEEE doubles, round-half-even, exactly as the
  reference oracle snaps). Quantities are converted *exactly* (shortest decimal repr ->
  rational) to integer lots of ``--lot-size`` (default 2**-24, i.e. every dyadic quantity
  with at most 24 binary places, up to 65536 units); a quantity that is not a whole number
  of lots, or a price/quantity beyond ``MAX_PRICE``/``MAX_QTY``, is an ``ADAPTER_ERROR``
  (never silently rounded). Output decimals are canonical: prices ``ticks * tick_size``,
  quantities ``lots * lot_size`` quantized to ``quantity_decimal_places`` (half-even),
  normalized, no exponent.
* Ids and owners. Protocol (source) order ids are used as rltrader order ids as they are
  (a ``replace`` keeps the id: ``new_order_id = 0``). Protocol owners (any integer) map to
  dense rltrader owner indexes in first-seen order; ``-1`` stays ``NO_OWNER``.
* Order types. ``LIMIT`` -> LIMIT/GTC, ``IOC`` -> LIMIT/IOC, ``FOK`` -> LIMIT/FOK,
  ``MARKET`` -> MARKET (IOC).
* Self-trade policy. ``NONE`` -> NONE, ``CANCEL_RESTING`` -> CANCEL_MAKER,
  ``CANCEL_INCOMING`` -> CANCEL_TAKER. ``pro_rata`` matching is not supported (rltrader is
  FIFO only): the adapter answers ``ready`` and then fails the first event with an
  ``ADAPTER_ERROR`` naming the unsupported setting.
* Outcomes. An event is ``applied`` unless the core's first event is ``REJECTED``.
  Reasons: ``UNKNOWN_ORDER`` -> ``ORDER_NOT_ACTIVE``; ``DUPLICATE_ORDER_ID`` ->
  ``DUPLICATE_ORDER_ID``; any other validation reject -> ``INVALID_ORDER`` (new, reduce) or
  ``INVALID_REPLACEMENT`` (replace). The protocol checks a duplicate id before the order's
  numbers, so a rejected new order whose id is live in the book reports
  ``DUPLICATE_ORDER_ID`` whatever the core's first failing check was.
* Books. A protocol book exists from its symbol's first ``new`` or ``clear`` event (even if
  that event is rejected); ``cancel``/``reduce``/``replace`` on an unknown symbol are
  ``ORDER_NOT_ACTIVE`` and create nothing. ``clear`` replaces the symbol's OrderBook with a
  fresh one (rltrader has no clear operation). Snapshots list books sorted by symbol, bids
  best (highest) price first and asks lowest first, each level in FIFO order.

Protocol rule the core does not share (bridged here, reported in the conformance notes):

* ``reduce`` by more than the order's open quantity is *rejected* by the protocol
  (``INVALID_ORDER``, book unchanged) while rltrader treats ``REDUCE qty >= leaves`` as a
  cancel. The adapter reads the order's leaves from the core (``OrderBook.order``) and does
  not forward an over-reduction; ``qty == leaves`` is forwarded (a cancel in both).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    # Test this checkout (an in-place build), not whatever rltrader is installed elsewhere.
    sys.path.insert(0, str(_REPO_ROOT))

import rltrader  # noqa: E402
from rltrader import (  # noqa: E402
    BUY,
    FILL,
    FOK,
    GTC,
    IOC,
    MAX_PRICE,
    MAX_QTY,
    NO_OWNER,
    REJECTED,
    SELL,
    OrderBook,
    Reason,
    SelfTradePrevention,
)

PROTOCOL_NAME = "tracebook.conformance"
PROTOCOL_VERSION = 1
DEFAULT_LOT_SIZE = Fraction(1, 1 << 24)
DEFAULT_MAX_OWNERS = 4096
_APPLIED = {"status": "applied", "reason": None, "message": None}

_STP = {
    "NONE": SelfTradePrevention.NONE,
    "CANCEL_RESTING": SelfTradePrevention.CANCEL_MAKER,
    "CANCEL_INCOMING": SelfTradePrevention.CANCEL_TAKER,
}
# tracebook's SelfTradePolicy numbering, for a config that sends the integer value
_STP_BY_NUMBER = {0: "NONE", 1: "CANCEL_RESTING", 2: "CANCEL_INCOMING"}
_SIDES = {"BUY": BUY, "SELL": SELL, "1": BUY, "-1": SELL}
_LIMIT_TIF = {"LIMIT": GTC, "IOC": IOC, "FOK": FOK}
_VALIDATION_REJECTS = frozenset(
    int(r)
    for r in (
        Reason.BAD_ORDER_ID,
        Reason.BAD_SIDE,
        Reason.BAD_TIF,
        Reason.BAD_QTY,
        Reason.BAD_PRICE,
    )
)


class ProtocolError(Exception):
    """The peer broke the protocol (answered with code PROTOCOL_ERROR)."""


class AdapterError(Exception):
    """The adapter cannot represent or map something faithfully (code ADAPTER_ERROR)."""


# ---------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------


def _exact(value: Any, name: str) -> Fraction:
    """A JSON number as an exact rational (floats through their shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProtocolError(f"{name} must be a number, got {value!r}")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except ArithmeticError as exc:
        raise ProtocolError(f"{name} is not a number: {value!r}") from exc
    if not number.is_finite():
        raise ProtocolError(f"{name} must be finite: {value!r}")
    return Fraction(number)


def _canonical(value: Fraction | Decimal, places: int | None = None) -> str:
    """tracebook's canonical decimal: optional half-even quantize, normalized, no exponent."""
    if isinstance(value, Fraction):
        with localcontext() as ctx:
            ctx.prec = 80
            number = Decimal(value.numerator) / Decimal(value.denominator)
    else:
        number = value
    if places is not None:
        with localcontext() as ctx:
            ctx.prec = max(28, len(number.as_tuple().digits) + places + 2)
            number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


class Numerics:
    """Protocol decimals <-> rltrader int ticks / lots."""

    def __init__(self, tick_size: str, quantity_places: int, lot_size: Fraction) -> None:
        self.tick_text = tick_size
        self.tick_float = float(tick_size)
        self.tick = Decimal(tick_size)
        if not self.tick.is_finite() or self.tick <= 0 or not self.tick_float > 0:
            raise AdapterError(f"tick_size must be positive, got {tick_size!r}")
        self.quantity_places = quantity_places
        self.lot = lot_size
        self._price_text: dict[int, str] = {}
        self._qty_text: dict[int, str] = {}

    def ticks(self, price: Any) -> int:
        """Snap a protocol price onto the tick grid (the reference oracle's rule)."""
        _exact(price, "price")  # validates the JSON value
        ticks = round(float(price) / self.tick_float)
        if ticks > MAX_PRICE:
            raise AdapterError(f"price {price!r} is {ticks} ticks, beyond MAX_PRICE")
        return ticks  # <= 0 is forwarded: the core rejects it (BAD_PRICE)

    def lots(self, quantity: Any) -> int:
        """A protocol quantity as a whole number of lots (exact, or AdapterError)."""
        exact = _exact(quantity, "quantity")
        if exact <= 0:
            return 0  # invalid in both contracts; the core rejects it (BAD_QTY)
        lots = exact / self.lot
        if lots.denominator != 1:
            raise AdapterError(
                f"quantity {quantity!r} is not a whole number of lots of {self.lot} "
                "(choose another --lot-size)"
            )
        if lots.numerator > MAX_QTY:
            raise AdapterError(f"quantity {quantity!r} is {lots} lots, beyond MAX_QTY")
        return lots.numerator

    def price_text(self, ticks: int) -> str:
        text = self._price_text.get(ticks)
        if text is None:
            text = _canonical(Decimal(ticks) * self.tick)
            self._price_text[ticks] = text
        return text

    def qty_text(self, lots: int) -> str:
        text = self._qty_text.get(lots)
        if text is None:
            text = _canonical(lots * self.lot, self.quantity_places)
            self._qty_text[lots] = text
        return text


def parse_lot_size(text: str) -> Fraction:
    """``--lot-size``: a decimal (``0.000001``), a fraction (``1/1024``) or ``2^-k``."""
    text = text.strip()
    try:
        if text.startswith("2^"):
            lot = Fraction(2) ** int(text[2:])
        else:
            lot = Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise argparse.ArgumentTypeError(f"bad lot size {text!r}") from exc
    if lot <= 0:
        raise argparse.ArgumentTypeError("lot size must be positive")
    return lot


# ---------------------------------------------------------------------------------------
# the engine side
# ---------------------------------------------------------------------------------------


class _Book:
    __slots__ = ("core", "bids", "asks")

    def __init__(self, core: OrderBook) -> None:
        self.core = core
        self.bids: list[dict] = []
        self.asks: list[dict] = []


class RltraderEngine:
    """One protocol session: books per symbol, numeric and owner mapping."""

    def __init__(
        self,
        config: dict,
        lot_size: Fraction = DEFAULT_LOT_SIZE,
        max_owners: int = DEFAULT_MAX_OWNERS,
        check_integrity: bool = False,
    ) -> None:
        if not isinstance(config, dict):
            raise ProtocolError("hello config must be an object")
        algorithm = str(config.get("matching_algorithm", "fifo")).strip().lower()
        if algorithm != "fifo":
            raise AdapterError(
                f"matching_algorithm {algorithm!r} is not supported: rltrader matches FIFO only"
            )
        policy = config.get("self_trade_policy", "NONE")
        if isinstance(policy, int) and not isinstance(policy, bool):
            policy = _STP_BY_NUMBER.get(policy, policy)
        policy = str(policy).strip().upper()
        if policy not in _STP:
            raise AdapterError(f"self_trade_policy {policy!r} is not supported")
        places = config.get("quantity_decimal_places", 12)
        if isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= 18:
            raise ProtocolError("quantity_decimal_places must be an integer in [0, 18]")
        self.stp = int(_STP[policy])
        self.num = Numerics(str(config.get("tick_size", "0.01")), places, lot_size)
        self.max_owners = max_owners
        self.check_integrity = check_integrity
        self.owner_index: dict[int, int] = {}
        self.owner_of: list[int] = []
        self.books: dict[str, _Book] = {}

    # -- helpers -------------------------------------------------------------------------

    def _new_core(self) -> OrderBook:
        return OrderBook(n_owners=self.max_owners, self_trade_prevention=self.stp)

    def _owner(self, owner: Any) -> int:
        if owner is None:
            return NO_OWNER
        if isinstance(owner, bool) or not isinstance(owner, int):
            raise ProtocolError(f"owner must be an integer, got {owner!r}")
        if owner == -1:
            return NO_OWNER
        index = self.owner_index.get(owner)
        if index is None:
            if len(self.owner_of) >= self.max_owners:
                raise AdapterError(f"more than {self.max_owners} owners (raise --max-owners)")
            index = len(self.owner_of)
            self.owner_index[owner] = index
            self.owner_of.append(owner)
        return index

    def _source_owner(self, index: int) -> int:
        return -1 if index == NO_OWNER else self.owner_of[index]

    @staticmethod
    def _order_id(event: dict) -> int:
        order_id = event.get("order_id")
        if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id <= 0:
            raise ProtocolError(f"order_id must be a positive integer, got {order_id!r}")
        if order_id >= 1 << 63:
            raise AdapterError(f"order_id {order_id} does not fit rltrader's int64 ids")
        return order_id

    @staticmethod
    def _timestamp(event: dict, index: int) -> int:
        ts = event.get("timestamp_ns")
        if ts is None:
            return index
        if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < 1 << 63:
            raise ProtocolError(f"timestamp_ns must be a non-negative int64, got {ts!r}")
        return ts

    @staticmethod
    def _symbol(event: dict) -> str:
        symbol = event.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            raise ProtocolError(f"symbol must be a non-empty string, got {symbol!r}")
        return symbol.strip()

    def _trades(self, symbol: str, events) -> list[dict]:
        trades = []
        for ev in events[events["kind"] == FILL]:
            taker, maker = int(ev["order_id"]), int(ev["maker_order_id"])
            buy, sell = (taker, maker) if ev["side"] == BUY else (maker, taker)
            trades.append(
                {
                    "symbol": symbol,
                    "buy_order_id": buy,
                    "sell_order_id": sell,
                    "price": self.num.price_text(int(ev["price"])),
                    "quantity": self.num.qty_text(int(ev["qty"])),
                }
            )
        return trades

    @staticmethod
    def _rejected(reason: str, message: str) -> dict:
        return {"status": "rejected", "reason": reason, "message": message}

    def _core_reject(self, book: _Book, events, op: str, order_id: int) -> dict | None:
        """Map the core's REJECTED (first event) onto the protocol's reason codes."""
        first = events[0]
        if first["kind"] != REJECTED:
            return None
        reason = int(first["reason"])
        name = Reason(reason).name
        message = f"rltrader rejected {op}: {name}"
        if reason == Reason.UNKNOWN_ORDER:
            return self._rejected("ORDER_NOT_ACTIVE", message)
        if op == "new" and (
            reason == Reason.DUPLICATE_ORDER_ID or book.core.order(order_id) is not None
        ):
            return self._rejected("DUPLICATE_ORDER_ID", message)
        if reason in _VALIDATION_REJECTS:
            code = "INVALID_REPLACEMENT" if op == "replace" else "INVALID_ORDER"
            return self._rejected(code, message)
        raise AdapterError(f"no protocol reason for rltrader's {name} on {op}")

    def _refresh(self, book: _Book) -> None:
        """Re-read one book's full L3 state from the core, in matching priority."""
        core = book.core
        if self.check_integrity:
            core.check_integrity()
        live = core.books.live_orders(0)
        if live == 0:
            book.bids, book.asks = [], []
            return
        num = self.num
        owner_of = self._source_owner
        sides = []
        for side, levels in zip((BUY, SELL), core.depth(live), strict=True):
            orders = []
            for price in levels[:, 0].tolist():
                price_text = num.price_text(price)
                for order_id, qty, _ts, owner in core.queue(side, price).tolist():
                    orders.append(
                        {
                            "order_id": order_id,
                            "price": price_text,
                            "remaining_quantity": num.qty_text(qty),
                            "owner": owner_of(owner),
                            "order_type": "LIMIT",
                        }
                    )
            sides.append(orders)
        book.bids, book.asks = sides

    # -- protocol surface ----------------------------------------------------------------

    def apply(self, event: dict, index: int) -> dict:
        """Apply one protocol event; return its observation payload (without ``type``)."""
        if not isinstance(event, dict):
            raise ProtocolError("event must be an object")
        op = str(event.get("op", "")).strip().lower()
        if op == "submit":
            op = "new"
        symbol = self._symbol(event)
        ts = self._timestamp(event, index)
        book = self.books.get(symbol)
        trades: list[dict] = []
        outcome: dict

        if op not in ("new", "clear", "cancel", "reduce", "replace"):
            raise ProtocolError(f"unsupported op {op!r}")
        if op == "clear":
            book = self.books[symbol] = _Book(self._new_core())
            outcome = _APPLIED
        elif book is None and op != "new":
            self._order_id(event)
            outcome = self._rejected("ORDER_NOT_ACTIVE", f"no book for symbol {symbol!r}")
        else:
            if book is None:
                book = self.books[symbol] = _Book(self._new_core())
            if op == "new":
                outcome, trades = self._new(book, symbol, event, ts)
            elif op == "cancel":
                order_id = self._order_id(event)
                book.core.cancel(order_id, timestamp=ts)
                outcome = self._core_reject(book, book.core.events, op, order_id) or _APPLIED
            elif op == "reduce":
                outcome = self._reduce(book, event, ts)
            else:
                outcome, trades = self._replace(book, symbol, event, ts)

        if book is not None:
            self._refresh(book)
        return {
            "index": index,
            "outcome": outcome,
            "trades": trades,
            "state_hash": self.state_hash(),
            "resting_order_count": sum(len(b.bids) + len(b.asks) for b in self.books.values()),
        }

    def _new(self, book: _Book, symbol: str, event: dict, ts: int):
        order_id = self._order_id(event)
        side_name = str(event.get("side", "")).strip().upper()
        if side_name not in _SIDES:
            raise ProtocolError(f"side must be BUY or SELL, got {event.get('side')!r}")
        side = _SIDES[side_name]
        order_type = str(event.get("order_type") or "LIMIT").strip().upper()
        owner = self._owner(event.get("owner", -1))
        qty = self.num.lots(event.get("quantity"))
        core = book.core
        if order_type == "MARKET":
            core.market(side, qty, order_id=order_id, owner=owner, tif=IOC, timestamp=ts)
        elif order_type in _LIMIT_TIF:
            price = self.num.ticks(event.get("price"))
            core.limit(
                side,
                price,
                qty,
                order_id=order_id,
                owner=owner,
                tif=_LIMIT_TIF[order_type],
                timestamp=ts,
            )
        else:
            raise ProtocolError(f"unsupported order_type {order_type!r}")
        events = core.events
        outcome = self._core_reject(book, events, "new", order_id)
        if outcome is not None:
            return outcome, []
        return _APPLIED, self._trades(symbol, events)

    def _reduce(self, book: _Book, event: dict, ts: int) -> dict:
        order_id = self._order_id(event)
        qty = self.num.lots(event.get("quantity"))
        core = book.core
        live = core.order(order_id)
        if live is not None and qty > live["qty"]:
            # Protocol rule: a reduction may not exceed the open quantity (rltrader would
            # treat it as a cancel). Rejected here; nothing is sent to the core.
            return self._rejected(
                "INVALID_ORDER",
                f"reduction of {qty} lots exceeds the {live['qty']} open lots",
            )
        core.reduce(order_id, qty, timestamp=ts)
        return self._core_reject(book, core.events, "reduce", order_id) or _APPLIED

    def _replace(self, book: _Book, symbol: str, event: dict, ts: int):
        order_id = self._order_id(event)
        core = book.core
        live = core.order(order_id)
        if event.get("price") is not None:
            price = self.num.ticks(event["price"])
        else:
            price = live["price"] if live is not None else 0
        if event.get("quantity") is not None:
            qty = self.num.lots(event["quantity"])
        else:
            qty = live["qty"] if live is not None else 0
        core.replace(order_id, price, qty, new_order_id=0, tif=GTC, timestamp=ts)
        events = core.events
        outcome = self._core_reject(book, events, "replace", order_id)
        if outcome is not None:
            return outcome, []
        return _APPLIED, self._trades(symbol, events)

    def state(self) -> dict:
        return {
            "books": [
                {"symbol": symbol, "bids": self.books[symbol].bids, "asks": self.books[symbol].asks}
                for symbol in sorted(self.books)
            ]
        }

    def state_hash(self) -> str:
        payload = json.dumps(
            self.state(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")
        return hashlib.sha256(payload).hexdigest()


# ---------------------------------------------------------------------------------------
# stdio loop
# ---------------------------------------------------------------------------------------


def _write(stream, payload: dict) -> None:
    stream.write(json.dumps(payload, separators=(",", ":"), allow_nan=False) + "\n")
    stream.flush()


def serve(args: argparse.Namespace, source=None, sink=None) -> int:
    source = source or sys.stdin
    sink = sink or sys.stdout
    last_index = 0
    try:
        first = source.readline()
        if not first:
            raise ProtocolError("expected a hello message")
        hello = json.loads(first)
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            raise ProtocolError("first message must be hello")
        if hello.get("protocol") != PROTOCOL_NAME:
            raise ProtocolError(f"protocol must be {PROTOCOL_NAME!r}")
        if hello.get("protocol_version") != PROTOCOL_VERSION:
            raise ProtocolError(f"protocol_version must be {PROTOCOL_VERSION}")
        unsupported: AdapterError | None = None
        try:
            engine = RltraderEngine(
                hello.get("config", {}),
                lot_size=args.lot_size,
                max_owners=args.max_owners,
                check_integrity=args.check_integrity,
            )
        except AdapterError as exc:
            # Answer ready and fail at the first event instead, so that a suite run
            # reports this case as unsupported and goes on with the next one.
            unsupported = exc
        _write(
            sink,
            {
                "type": "ready",
                "protocol": PROTOCOL_NAME,
                "protocol_version": PROTOCOL_VERSION,
                "engine": {
                    "name": "rltrader",
                    "version": rltrader.__version__,
                    "language": "Cython",
                },
            },
        )
        for line in source:
            if not line.strip():
                continue
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ProtocolError("protocol message must be an object")
            kind = message.get("type")
            if unsupported is not None and kind in ("event", "snapshot"):
                raise unsupported
            if kind == "event":
                index = message.get("index")
                if isinstance(index, bool) or not isinstance(index, int) or index != last_index + 1:
                    raise ProtocolError(
                        f"event index must be {last_index + 1} (contiguous from 1), got {index!r}"
                    )
                observation = engine.apply(message.get("event", {}), index)
                last_index = index
                _write(sink, {"type": "observation", **observation})
            elif kind == "snapshot":
                if message.get("index") != last_index:
                    raise ProtocolError("snapshot index does not match the last event")
                _write(sink, {"type": "snapshot", "index": last_index, "state": engine.state()})
            elif kind == "finish":
                if message.get("event_count") != last_index:
                    raise ProtocolError("finish event_count does not match the last event")
                _write(sink, {"type": "complete", "event_count": last_index})
                return 0
            else:
                raise ProtocolError(f"unsupported protocol message type: {kind!r}")
        raise ProtocolError("input ended before finish")
    except (ProtocolError, json.JSONDecodeError) as exc:
        code, message = "PROTOCOL_ERROR", str(exc)
    except Exception as exc:  # AdapterError, or a core failure (check_integrity, ...)
        code, message = "ADAPTER_ERROR", f"{type(exc).__name__}: {exc}"
    print(f"tracebook_adapter: {code}: {message} (after event {last_index})", file=sys.stderr)
    try:
        _write(sink, {"type": "error", "code": code, "message": message})
    except BrokenPipeError:
        pass
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--lot-size",
        type=parse_lot_size,
        default=DEFAULT_LOT_SIZE,
        help="quantity of one rltrader lot: decimal, fraction or 2^-k (default 2^-24)",
    )
    parser.add_argument(
        "--max-owners",
        type=int,
        default=DEFAULT_MAX_OWNERS,
        help=f"distinct protocol owners per session (default {DEFAULT_MAX_OWNERS})",
    )
    parser.add_argument(
        "--check-integrity",
        action="store_true",
        help="run OrderBook.check_integrity() after every event (slower)",
    )
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    # The harness gives a candidate 0.5 s to exit after ``complete`` and then terminates it,
    # a protocol failure; the interpreter's teardown (numpy, the core's arenas) can take
    # longer on a loaded machine, so the process ends here, its streams flushed.
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
