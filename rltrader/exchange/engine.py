"""The sequencer: the one owner of the served market's books.

Every input (an account's new order or cancel from a gateway, the background populations'
decisions on the clock) enters one sequence. A *batch* is what the loop finds waiting when
it wakes: the background's decisions if a step of the clock is due, then the requests in
their arrival order. Requests are checked against their account (owner, funds, filters) in
that order; the accepted ones and the background's messages go to the core in one
``Books.process`` call; its events update the orders, balances and public trades; the
batch is appended to the journal (when there is one) and only then are the requests
answered. Gateways never touch the books: they call :meth:`Exchange.submit` and read the
state between batches.

Balances. An account's total of an asset is its starting balance plus what the core's
account says it gained (base: its position in lots; quote: its cash in tick x lot units,
fees included). Open orders lock what they may spend: a buy ``price x leaves`` plus the
largest fee on it, a sell its leaves. An order whose lock exceeds the free balance is
refused (``-2010``), so free balances never go below zero.

A market buy is sent as an IOC limit at the price that would fill it on the book as the
sequencer sees it (the last level its quantity reaches), so that it never pays more than
what it locked; what the book cannot fill expires, as on Binance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import pickle
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from rltrader.core.constants import (
    ACCEPTED,
    AGENT_ID_BASE,
    BUY,
    CANCEL,
    CANCELLED,
    FILL,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    MAX_PRICE,
    MAX_QTY,
    POST_ONLY,
    REJECTED,
    SELL,
    Reason,
)
from rltrader.core.messages import empty_events, empty_messages
from rltrader.exchange.accounts import Account
from rltrader.exchange.symbols import ApiError, SymbolSpec
from rltrader.sim.config import MarketConfig
from rltrader.sim.market import Market

log = logging.getLogger("rltrader.exchange")

ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET")
TIME_IN_FORCE = {"GTC": GTC, "IOC": IOC, "FOK": FOK}
RESPONSE_TYPES = ("ACK", "RESULT", "FULL")
#: Public trades kept per symbol (``/trades``, ``/aggTrades`` serve at most 1,000).
TRADES_KEPT = 1000
#: One-minute bars kept per symbol (a day and a bit).
BARS_KEPT = 1500
#: Finished orders an account keeps (GET order, allOrders); older ones are forgotten.
CLOSED_KEPT = 20_000


#: A binary order record (``/orders``, :mod:`rltrader.exchange.order_entry`): op 1 limit,
#: 2 market, 3 cancel; side +1/-1; tif 0 GTC, 1 IOC, 2 FOK, 3 post-only; symbol index.
ORDER_IN = np.dtype([("tag", "<u8"), ("op", "u1"), ("side", "i1"), ("tif", "u1"),
                     ("pad", "u1"), ("symbol", "<u2"), ("pad2", "<u2"), ("qty", "<i8"),
                     ("price", "<i8"), ("order_id", "<u8")])
#: Its acknowledgement: the order's id, lots executed, quote (ticks x lots), Binance error
#: code (0: none) and status (:data:`STATUS_CODES`).
ORDER_ACK = np.dtype([("tag", "<u8"), ("order_id", "<u8"), ("executed", "<i8"),
                      ("quote", "<i8"), ("code", "<i2"), ("status", "u1"), ("pad", "u1"),
                      ("pad2", "<u4")])
STATUS_CODES = {"NEW": 1, "PARTIALLY_FILLED": 2, "FILLED": 3, "CANCELED": 4, "EXPIRED": 5,
                "EXPIRED_IN_MATCH": 5, "REJECTED": 6}
_FRAME_TIF = (("LIMIT", "GTC", GTC), ("LIMIT", "IOC", IOC), ("LIMIT", "FOK", FOK),
              ("LIMIT_MAKER", "GTC", POST_ONLY))


def fee_of(notional: int, ppm: int) -> int:
    """The core's fee: ``notional x ppm / 10**6`` truncated toward zero."""
    product = notional * ppm
    return product // 1_000_000 if product >= 0 else -((-product) // 1_000_000)


@dataclass
class Fill:
    trade_id: int
    price: int
    qty: int
    commission: int     # quote units (negative: a rebate)
    maker: bool


@dataclass(slots=True)
class Order:
    """An account's order as the exchange reports it (prices in ticks, sizes in lots)."""

    order_id: int
    client_id: str
    account: Account
    spec: SymbolSpec
    side: int
    type: str
    tif: str
    price: int
    qty: int
    time_ms: int
    status: str = "NEW"
    executed: int = 0
    quote: int = 0              # cumulative quote (cash units)
    update_ms: int = 0
    lock: int = 0               # what it locks now: quote units (buy) or lots (sell)
    limit: int = 0              # the price the core got (a market buy's protection)
    fills: list[Fill] = field(default_factory=list)

    @property
    def core_id(self) -> int:
        return AGENT_ID_BASE + self.order_id

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def leaves(self) -> int:
        return self.qty - self.executed


@dataclass
class Trade:
    """A public trade (background or accounts)."""

    trade_id: int
    price: int
    qty: int
    time_ms: int
    buyer_maker: bool


@dataclass
class FrameResult:
    """What a ``"frame"`` request (binary records) came to: an ack per record, and the
    order each one placed or cancelled (None where it was refused)."""

    acks: np.ndarray
    orders: list
    cancels: list       # True where the record is a cancel


@dataclass
class Request:
    """One sequenced input from a gateway: ``kind`` ``"new"`` or ``"cancel"``."""

    kind: str
    account: Account
    params: dict[str, str]
    future: asyncio.Future | None = None
    result: Any = None


def _refuse(target: Any, error: ApiError) -> None:
    """A request (or a frame's record) the core refused gets ``error``."""
    if isinstance(target, Request):
        target.result = error
    else:
        frame, k = target
        frame.acks["code"][k] = error.code


class Exchange:
    """A served market: ``config``'s books and background populations, and accounts that
    trade on them over gateways.

    Parameters
    ----------
    config : MarketConfig
        The market; every symbol is one book (``copies`` must be 1).
    accounts : list of Account
        Traders; account ``k`` is owner ``n_traders + k`` of every book.
    seed : int
        The background's seed (with the journal, the whole market is reproducible).
    quote, lot_size : str, Decimal
        The quote asset of every symbol (names are ``SYMBOL + quote``) and the base
        asset's lot.
    maker_fee_ppm, taker_fee_ppm : int
        The books' fee schedule, per million of notional.
    speed : float
        Background steps per ``dt_ns`` of wall time (2.0: twice real time).
    journal : object, optional
        ``append(batch: dict)`` called with every batch before its requests are answered.
    replay : HybridReplay, optional
        Serve recorded flow instead of ``config``'s populations (``config`` then only
        names the one symbol and its tick): each background step replays
        ``replay_step_ns`` of the record with the accounts' orders merged in by time, the
        accounts being the replay's agents ``0 ..`` (it needs ``n_agents >=
        len(accounts)``; its own fees apply). When the record ends the book stays as it
        is and only the accounts trade.
    venues : sequence of (name, maker_fee_ppm, taker_fee_ppm)
        Serve the config's one symbol on several venues: one book each, with its own fees
        and background traders, one latent value (the symbols' fundamentals perfectly
        correlated). Venue 0's symbol is ``SYMBOL + quote``, the others'
        ``SYMBOL + quote + "." + NAME``; all share the base and quote assets, so an
        account's balances span the venues. :attr:`router` routes ``sor/order`` requests
        across them (set by :func:`rltrader.routing.exchange_sor.attach`).
    """

    def __init__(self, config: MarketConfig, accounts: list[Account], *, seed: int = 0,
                 quote: str = "USDT", lot_size: Decimal | str = "1", maker_fee_ppm: int = 0,
                 taker_fee_ppm: int = 0, speed: float = 1.0, journal: Any = None,
                 clock: Callable[[], int] = time.time_ns, replay: Any = None,
                 replay_step_ns: int = 100_000_000,
                 venues: Sequence[tuple[str, int, int]] = ()) -> None:
        if config.copies != 1:
            raise ValueError("a served market is one copy of each symbol (copies = 1)")
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        venues = [(str(n).upper(), int(m), int(t)) for n, m, t in venues]
        if venues:
            config = _venue_config(config, [n for n, _, _ in venues], replay)
        self.config = config.replace(extra_owners=len(accounts))
        self.replay, self.replay_step_ns = replay, replay_step_ns
        if replay is None:
            self.market: Market | None = Market(self.config, seed=seed)
            self.first_owner = self.market.n_traders
            self.books.set_fees(maker_fee_ppm, taker_fee_ppm)
            step_ns = self.config.dt_ns
        else:
            if len(config.symbols) != 1 or replay.n_agents < len(accounts):
                raise ValueError("a replay is one symbol, with an agent per account")
            self.market, self.first_owner = None, 0
            maker_fee_ppm, taker_fee_ppm = replay.fees    # the replay's books charge them
            step_ns = replay_step_ns
        self.maker_fee_ppm, self.taker_fee_ppm = maker_fee_ppm, taker_fee_ppm
        tick, lot = Decimal(str(config.tick_size)), Decimal(lot_size)
        #: (maker, taker) fee ppm of each book
        self.book_fees = [(maker_fee_ppm, taker_fee_ppm)] * self.config.n_books
        #: venue names (empty: one venue) and each SOR symbol's books, venue order
        self.venues = [n for n, _, _ in venues]
        self.sor: dict[str, list[SymbolSpec]] = {}
        self.router: Callable[..., Any] | None = None
        if venues:
            base = config.symbols[0].split(".")[0]
            specs = [SymbolSpec(f"{base}{quote}" + (f".{n}" if j else ""), base, quote, tick,
                                lot, j) for j, (n, _, _) in enumerate(venues)]
            self.symbols = {spec.symbol: spec for spec in specs}
            self.sor[specs[0].symbol] = specs
            for j, (_, maker, taker) in enumerate(venues):
                self.books.set_fees(maker, taker, book=j)
                self.book_fees[j] = (maker, taker)
        else:
            self.symbols = {f"{name}{quote}": SymbolSpec(f"{name}{quote}", name, quote, tick,
                                                         lot, book)
                            for book, name in enumerate(config.symbols)}
        self.accounts = accounts
        for k, account in enumerate(accounts):
            account.owner = self.first_owner + k
        self.by_key = {a.api_key: a for a in accounts}
        self.speed = speed
        self.journal = journal
        self.clock = clock
        self.orders: dict[int, Order] = {}
        self.open_orders: dict[int, dict[int, Order]] = {a.owner: {} for a in accounts}
        self.client_ids: dict[tuple[int, str], Order] = {}
        self.locked: dict[int, dict[str, int]] = {a.owner: {} for a in accounts}
        #: each account's finished orders, oldest first (at most CLOSED_KEPT)
        self.closed: dict[int, deque] = {a.owner: deque() for a in accounts}
        self._closed_set: set[int] = set()
        self.trades = {s: deque(maxlen=TRADES_KEPT) for s in self.symbols}
        self.my_trades: dict[int, deque] = {a.owner: deque(maxlen=10_000) for a in accounts}
        self.bars: dict[str, dict[int, list]] = {s: {} for s in self.symbols}
        self.next_order_id = 1
        self.next_trade_id = 1
        self.update_id = 1
        self.batches = 0
        self.steps = 0
        self.last_ns = 0
        self.listeners: list[Callable[[Exchange, dict[str, list[Trade]]], None]] = []
        self.last_batch = (empty_messages(0), empty_events(0))
        self._pending: list[Request] = []
        self._groups: list[asyncio.Future] = []   # submit_all's, answered with the batch
        self._wake: asyncio.Event | None = None
        self._events = empty_events(1 << 14)
        self._step_ns = max(1, int(step_ns / speed))

    @property
    def books(self) -> Any:
        """The core (the replay's, which a replay rebuilds when it restarts)."""
        return self.market.books if self.market is not None else self.replay.books

    # ---- the clock and the loop -------------------------------------------------------

    async def submit(self, request: Request) -> Any:
        """Queue ``request`` for the next batch; its result once the batch is journaled
        (or the ``ApiError`` that refuses it)."""
        loop = asyncio.get_running_loop()
        request.future = loop.create_future()
        self._pending.append(request)
        if self._wake is not None:
            self._wake.set()
        return await request.future

    async def submit_all(self, requests: list[Request]) -> list[Any]:
        """Queue ``requests`` together (they land in one batch, in order); each one's
        result or ``ApiError``, once the batch is journaled. One future for all of them:
        no per-request task (the binary order-entry path)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._pending.extend(requests)
        self._groups.append(done)
        if self._wake is not None:
            self._wake.set()
        await done
        return [r.result for r in requests]

    async def run(self) -> None:
        """Sequence forever: a batch when requests wait or a background step is due."""
        self._wake = asyncio.Event()
        next_step = self.clock()
        while True:
            now = self.clock()
            due = now >= next_step
            if due:
                next_step += self._step_ns
                if next_step < now - 50 * self._step_ns:     # far behind: do not replay
                    next_step = now                          # the backlog step by step
            if due or self._pending:
                requests, self._pending = self._pending, []
                try:
                    self.run_batch(requests, step=due, ts=now)
                except BaseException:
                    self._fail(requests + self._pending)
                    raise
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(),
                                       timeout=max(0.0, (next_step - self.clock()) / 1e9))
            except TimeoutError:
                pass

    def _fail(self, requests: list[Request]) -> None:
        """The sequencer stops (a journal write failed, say): nothing of the batch was
        acknowledged; every waiting request is told so instead of waiting forever."""
        stopped = ApiError(-1000, "The exchange stopped: this request was not executed.",
                           503)
        for req in requests:
            if req.future is not None and not req.future.done():
                req.future.set_exception(stopped)
        groups, self._groups = self._groups, []
        for req in requests:
            req.result = stopped
        for group in groups:
            if not group.done():
                group.set_result(None)

    # ---- one batch ----------------------------------------------------------------------

    def run_batch(self, requests: list[Request], *, step: bool, ts: int) -> None:
        """One batch (see the module docstring); answers the requests' futures."""
        ts = max(ts, self.last_ns)
        self.last_ns = ts
        parts: list[np.ndarray] = []
        if step and self.market is not None:
            background = self.market.flow.decide()
            background["timestamp"] = ts
            parts.append(background)
        self.steps += step
        msgs = empty_messages(len(requests))
        n = start = 0
        for req in requests:                      # the requests' messages, in order
            try:
                message = self._check(req, ts)
            except ApiError as exc:
                req.result = exc
                continue
            except Exception:                     # a bug: this request fails, the market
                log.exception("request %s of %s failed", req.kind, req.account.name)
                req.result = ApiError(-1000, "An unknown error occurred while processing "
                                      "the request.")
                continue
            if type(message) is np.ndarray:         # a frame's messages
                if n > start:
                    parts.append(msgs[start:n])
                    start = n
                parts.append(message)
            elif message is not None:
                msgs[n] = message
                n += 1
        if n > start or not parts:
            parts.append(msgs[start:n])
        batch = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if self.replay is None:
            events = self._process(batch)
        else:
            events = self._replay_step(batch, step)
        #: the last batch's messages and events (market-data publishers read them)
        self.last_batch = (batch, events)
        public = self._apply(events, requests, ts)
        self.update_id += 1
        self.batches += 1
        if self.journal is not None:
            self.journal.append({"ts": ts, "step": step,
                                 "requests": [(r.kind, r.account.name, r.params)
                                              for r in requests]})
        for req in requests:
            if req.future is not None and not req.future.done():
                if isinstance(req.result, ApiError):
                    req.future.set_exception(req.result)
                else:
                    req.future.set_result(req.result)
        groups, self._groups = self._groups, []
        for group in groups:
            if not group.done():
                group.set_result(None)
        for listener in self.listeners:
            listener(self, public)

    def _replay_step(self, msgs: np.ndarray, step: bool) -> np.ndarray:
        """The accounts' messages merged into the record: a step replays the next
        ``replay_step_ns`` of it (nothing once it has ended); their time is the record's
        (the replay's clock)."""
        r = self.replay
        msgs["timestamp"] = r.timestamp
        until = r.timestamp + self.replay_step_ns if step and not r.done else r.timestamp
        return r.step(until_ts=until, agent_messages=msgs)

    def _process(self, batch: np.ndarray) -> np.ndarray:
        out = []
        done = 0
        while done < batch.shape[0]:
            try:
                consumed, written = self.books.process(batch[done:], self._events)
            except ValueError as exc:
                if "cannot hold" not in str(exc):
                    raise
                self._events = empty_events(2 * self._events.shape[0])
                continue
            ev = self._events[:written].copy()
            ev["message_index"] += done
            out.append(ev)
            done += consumed
        return np.concatenate(out) if out else empty_events(0)

    # ---- checks: a request becomes a core message or an error ----------------------------

    def _check(self, req: Request, ts: int) -> np.void | None:
        if req.kind == "new":
            return self._new_order(req, ts)
        if req.kind == "cancel":
            return self._cancel(req, ts)
        if req.kind == "frame":
            return self._frame(req, ts)
        raise ApiError(-1000, f"unknown request {req.kind!r}")

    def _frame(self, req: Request, ts: int) -> np.ndarray:
        """Binary records (``params["records"]``: base64 of :data:`ORDER_IN`) checked as
        REST would check them, in order: a limit order or a cancel without building its
        request; a market order through :meth:`_new_order`. Sets ``req.result`` to a
        :class:`FrameResult`; returns the core messages."""
        import base64

        raw = base64.b64decode(req.params["records"])
        if len(raw) % ORDER_IN.itemsize:
            raise ApiError(-1100, f"a frame is whole records of {ORDER_IN.itemsize} bytes")
        records = np.frombuffer(raw, dtype=ORDER_IN)
        n = records.shape[0]
        acks = np.zeros(n, dtype=ORDER_ACK)
        acks["tag"] = records["tag"]
        codes = [0] * n
        placed: list[Order | None] = [None] * n
        account = req.account
        specs = self._specs
        free: dict[str, int] = {}
        ppm = max(0, *(fee for fees in self.book_fees for fee in fees))
        cols: list[tuple[int, int, int, int, int, int, int]] = []
        time_ms = ts // 1_000_000
        for k, (_, op, side, tif, _, symbol, _, qty, price, order_id) in enumerate(
                records.tolist()):
            if symbol >= len(specs):
                codes[k] = -1121
                continue
            spec = specs[symbol]
            if op == 3:
                order = self.orders.get(order_id)
                if order is None or order.account is not account or order.spec is not spec:
                    codes[k] = -2013
                elif not order.is_open:
                    codes[k] = -2011
                else:
                    placed[k] = order
                    cols.append((CANCEL, order.core_id, 0, 0, 0, GTC, spec.book))
                continue
            if (op not in (1, 2) or side not in (1, -1) or tif > 3 or not 0 < qty <= MAX_QTY):
                codes[k] = -1100
                continue
            if op == 2:                               # market: REST's path (the sweep)
                sub = Request("new", account, {"symbol": spec.symbol, "type": "MARKET",
                                               "side": "BUY" if side > 0 else "SELL",
                                               "quantity": spec.qty_str(qty)})
                try:
                    m = self._new_order(sub, ts)
                except ApiError as exc:
                    codes[k] = exc.code
                    continue
                finally:
                    free.clear()            # it locked funds: read the balances again
                placed[k] = sub.result
                if m is not None:
                    cols.append((int(m["op"]), int(m["order_id"]), int(m["side"]),
                                 int(m["price"]), int(m["qty"]), int(m["tif"]), spec.book))
                continue
            if not 0 < price <= MAX_PRICE:
                codes[k] = -1013
                continue
            asset = spec.quote if side > 0 else spec.base
            if asset not in free:
                free[asset] = self.free(account, asset)
            if side > 0:
                notional = price * qty
                need = notional + -((-notional * ppm) // 1_000_000)
            else:
                need = qty
            if need > free[asset]:
                codes[k] = -2010
                continue
            free[asset] -= need
            kind, tif_name, core_tif = _FRAME_TIF[tif]
            oid = self.next_order_id
            self.next_order_id += 1
            order = Order(oid, f"rlt-{oid}", account, spec, side, kind, tif_name, price, qty,
                          time_ms, update_ms=time_ms, lock=need, limit=price)
            self._add_lock(account, asset, need)
            self.orders[oid] = order
            self.client_ids[(account.owner, order.client_id)] = order
            self.open_orders[account.owner][oid] = order
            placed[k] = order
            cols.append((LIMIT, order.core_id, side, price, qty, core_tif, spec.book))
        acks["code"] = codes
        req.result = FrameResult(acks, placed, (records["op"] == 3).tolist())
        msgs = empty_messages(len(cols))
        if cols:
            table = np.array(cols, dtype=np.int64)
            for j, name in enumerate(("op", "order_id", "side", "price", "qty", "tif", "book")):
                msgs[name] = table[:, j]
            msgs["timestamp"] = ts
            msgs["owner"] = account.owner
        return msgs

    @property
    def _specs(self) -> list[SymbolSpec]:
        """The symbols in book order (a frame's ``symbol`` indexes them)."""
        return sorted(self.symbols.values(), key=lambda s: s.book)

    def symbol(self, params: dict[str, str]) -> SymbolSpec:
        name = params.get("symbol")
        if not name:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null,"
                           " or malformed.")
        spec = self.symbols.get(name.upper())
        if spec is None:
            raise ApiError(-1121, "Invalid symbol.")
        return spec

    def _new_order(self, req: Request, ts: int) -> np.void | None:
        p, account = req.params, req.account
        spec = self.symbol(p)
        side = {"BUY": BUY, "SELL": SELL}.get(p.get("side", "").upper())
        if side is None:
            raise ApiError(-1102 if "side" not in p else -1117, "Invalid side.")
        kind = p.get("type", "").upper()
        if kind not in ORDER_TYPES:
            raise ApiError(-1102 if "type" not in p else -1116, "Invalid orderType.")
        if p.get("newOrderRespType", "FULL").upper() not in RESPONSE_TYPES:
            raise ApiError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        if "quoteOrderQty" in p:
            raise ApiError(-1106, "Parameter 'quoteOrderQty' sent when not required: give "
                           "quantity (this exchange does not take quote-sized orders).")
        if "quantity" not in p:
            raise ApiError(-1102, "Mandatory parameter 'quantity' was not sent, was "
                           "empty/null, or malformed.")
        qty = spec.lots(p["quantity"])
        tif_name = "GTC"
        if kind == "LIMIT":
            if "timeInForce" not in p:
                raise ApiError(-1102, "Mandatory parameter 'timeInForce' was not sent, was "
                               "empty/null, or malformed.")
            tif_name = p["timeInForce"].upper()
            if tif_name not in TIME_IN_FORCE:
                raise ApiError(-1115, "Invalid timeInForce.")
        elif "timeInForce" in p and kind == "MARKET":
            raise ApiError(-1106, "Parameter 'timeInForce' sent when not required.")
        if kind == "MARKET":
            if "price" in p:
                raise ApiError(-1106, "Parameter 'price' sent when not required.")
            price = 0
        else:
            if "price" not in p:
                raise ApiError(-1102, "Mandatory parameter 'price' was not sent, was "
                               "empty/null, or malformed.")
            price = spec.ticks(p["price"])
            if spec.min_notional and price * qty * spec.cash_unit < spec.min_notional:
                raise ApiError(-1013, "Filter failure: NOTIONAL")
        client_id = p.get("newClientOrderId") or f"rlt-{self.next_order_id}"
        if (len(client_id) > 36 or not all(c.isalnum() or c in "-_." for c in client_id)):
            raise ApiError(-1100, "Illegal characters found in parameter 'newClientOrderId';"
                           " legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        if (account.owner, client_id) in self.client_ids and self.client_ids[
                (account.owner, client_id)].is_open:
            raise ApiError(-2010, "Duplicate order sent.")
        limit = price
        if kind == "MARKET" and side == BUY:
            limit = self._sweep_price(spec, qty)
        order = Order(self.next_order_id, client_id, account, spec, side, kind, tif_name,
                      price, qty, ts // 1_000_000, update_ms=ts // 1_000_000, limit=limit)
        need = self._lock_of(order, qty)
        asset = spec.quote if side == BUY else spec.base
        if need > self.free(account, asset):
            raise ApiError(-2010, "Account has insufficient balance for requested action.")
        self.next_order_id += 1
        req.result = order
        self.orders[order.order_id] = order
        self.client_ids[(account.owner, client_id)] = order
        if kind == "MARKET" and side == BUY and limit == 0:
            # no asks to price it against: it expires unsent (a buy never reaches the core
            # without a price bound that its lock covers)
            order.status = "EXPIRED"
            self._retire(order)
            return None
        order.lock = need
        self._add_lock(account, asset, need)
        self.open_orders[account.owner][order.order_id] = order
        m = empty_messages(1)[0]
        m["timestamp"] = ts
        m["order_id"] = order.core_id
        m["book"] = spec.book
        m["owner"] = account.owner
        m["side"] = side
        m["qty"] = qty
        if kind == "MARKET" and side == SELL:
            m["op"], m["tif"] = MARKET, IOC
        elif kind == "MARKET":
            m["op"], m["tif"], m["price"] = LIMIT, IOC, limit
        else:
            m["op"], m["price"] = LIMIT, price
            m["tif"] = POST_ONLY if kind == "LIMIT_MAKER" else TIME_IN_FORCE[tif_name]
        return m

    def _cancel(self, req: Request, ts: int) -> np.void:
        order = self.find_order(req.account, req.params)
        if not order.is_open:
            raise ApiError(-2011, "Unknown order sent.")
        req.result = order
        m = empty_messages(1)[0]
        m["timestamp"] = ts
        m["op"] = CANCEL
        m["order_id"] = order.core_id
        m["book"] = order.spec.book
        m["owner"] = req.account.owner
        return m

    def find_order(self, account: Account, params: dict[str, str]) -> Order:
        """The account's order named by ``orderId`` or ``origClientOrderId`` on
        ``symbol`` (``-2013`` when there is none: another account's order is none)."""
        spec = self.symbol(params)
        order: Order | None = None
        if params.get("orderId"):
            text = params["orderId"]
            if not (text.isascii() and text.isdigit()) or len(text) > 18:
                raise ApiError(-1100, "Illegal characters found in parameter 'orderId'.")
            order = self.orders.get(int(text))
        elif params.get("origClientOrderId"):
            order = self.client_ids.get((account.owner, params["origClientOrderId"]))
        else:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                           "both were empty/null!")
        if order is None or order.account is not account or order.spec is not spec:
            raise ApiError(-2013, "Order does not exist.")
        return order

    def _sweep_price(self, spec: SymbolSpec, qty: int) -> int:
        """The ask price at which ``qty`` lots would fill on the book now (the deepest
        level shown if they would not); 0 when there are no asks."""
        levels = 64
        while True:
            prices, qtys, _ = self.books.top_levels(levels)
            asks, sizes = prices[spec.book, 1], qtys[spec.book, 1]
            live = sizes > 0
            if not live.any():
                return 0
            reach = np.cumsum(sizes[live])
            k = int(np.searchsorted(reach, qty))
            if k < reach.size:
                return int(asks[live][k])
            if live.all() and levels < 4096:
                levels *= 4
                continue
            return int(asks[live][-1])

    def _lock_of(self, order: Order, leaves: int) -> int:
        if order.side == SELL:
            return leaves
        notional = order.limit * leaves
        ppm = max(0, *self.book_fees[order.spec.book])
        return notional + -((-notional * ppm) // 1_000_000)      # the fee rounded up

    # ---- balances -------------------------------------------------------------------------

    def total(self, account: Account, asset: str) -> int:
        """Starting balance plus what the core's accounts say the account gained."""
        out = account.balances.get(asset, 0)
        accounts = self.books.accounts
        for spec in self.symbols.values():
            if spec.base == asset:
                out += int(accounts[spec.book, account.owner]["position"])
            if spec.quote == asset:
                out += int(accounts[spec.book, account.owner]["cash"])
        return out

    def free(self, account: Account, asset: str) -> int:
        return self.total(account, asset) - self.locked[account.owner].get(asset, 0)

    def assets(self) -> list[str]:
        seen: dict[str, None] = {}
        for spec in self.symbols.values():
            seen[spec.base] = None
            seen[spec.quote] = None
        return list(seen)

    def _add_lock(self, account: Account, asset: str, amount: int) -> None:
        locks = self.locked[account.owner]
        locks[asset] = locks.get(asset, 0) + amount

    # ---- events ---------------------------------------------------------------------------

    def _apply(self, events: np.ndarray, requests: list[Request],
               ts: int) -> dict[str, list[Trade]]:
        """Orders, locks, fills and public trades from the batch's events; requests whose
        order the core refused get their error (found by order id: a cancel's refusal is
        ``UNKNOWN_ORDER``, a new order's is anything else)."""
        time_ms = ts // 1_000_000
        public: dict[str, list[Trade]] = {s: [] for s in self.symbols}
        by_book = {spec.book: spec for spec in self.symbols.values()}
        lo = self.first_owner
        news: dict[int, Any] = {}           # core id -> its Request, or (frame, record)
        cancels: dict[int, Any] = {}
        frames: list[FrameResult] = []
        for req in requests:
            if isinstance(req.result, Order):
                (news if req.kind == "new" else cancels)[req.result.core_id] = req
            elif isinstance(req.result, FrameResult):
                frames.append(req.result)
                for k, (order, cancel) in enumerate(zip(req.result.orders,
                                                        req.result.cancels, strict=True)):
                    if order is not None:
                        (cancels if cancel else news)[order.core_id] = (req.result, k)
        touched: dict[int, Order] = {}
        if events.size:                     # an ACCEPTED changes nothing placement did
            events = events[events["kind"] != ACCEPTED]
        for ev in events.tolist():
            (_, order_id, maker_id, price, qty, _leaves, _mleaves, book, owner, maker_owner,
             index, kind, reason, side) = ev
            if kind == FILL:
                spec = by_book[book]
                trade = Trade(self.next_trade_id, price, qty, time_ms, buyer_maker=side == SELL)
                self.next_trade_id += 1
                self.trades[spec.symbol].append(trade)
                public[spec.symbol].append(trade)
                self._bar(spec.symbol, trade)
                for oid, own, maker in ((order_id, owner, False), (maker_id, maker_owner, True)):
                    if own >= lo and oid >= AGENT_ID_BASE:
                        order = self.orders[oid - AGENT_ID_BASE]
                        ppm = self.book_fees[book][0 if maker else 1]
                        fill = Fill(trade.trade_id, price, qty, fee_of(price * qty, ppm), maker)
                        order.fills.append(fill)
                        order.executed += qty
                        order.quote += price * qty
                        order.status = "FILLED" if order.leaves == 0 else "PARTIALLY_FILLED"
                        order.update_ms = time_ms
                        self.my_trades[own].append((order, fill, time_ms))
                        touched[order.order_id] = order
                continue
            if owner < lo or order_id < AGENT_ID_BASE:
                continue                                   # the background's own events
            order = self.orders.get(order_id - AGENT_ID_BASE)
            if order is None:
                continue
            if kind == CANCELLED:
                order.status = ("CANCELED" if reason == Reason.CANCEL_REQUESTED
                                else "EXPIRED_IN_MATCH" if reason == Reason.SELF_TRADE
                                else "EXPIRED")
                order.update_ms = time_ms
                touched[order.order_id] = order
            elif kind == REJECTED:
                if reason == Reason.UNKNOWN_ORDER and order_id in cancels:
                    _refuse(cancels[order_id], ApiError(-2011, "Unknown order sent."))
                    continue
                if order_id not in news:    # a late refusal of a finished order's
                    continue                # cancel (a replay's halt): nothing to change
                order.status = "REJECTED"
                touched[order.order_id] = order
                if order_id in news:
                    _refuse(news[order_id], ApiError(
                        -2010, "Order would immediately match and take."
                        if reason == Reason.POST_ONLY_WOULD_CROSS else
                        f"Order rejected: {Reason(reason).name}."))
        for order in touched.values():
            self._relock(order)
        for frame in frames:                # the acks say what became of each record
            acks = frame.acks
            ok = [k for k, (order, code) in enumerate(zip(frame.orders, acks["code"].tolist(),
                                                          strict=True))
                  if order is not None and code == 0]
            if ok:
                orders = [frame.orders[k] for k in ok]
                acks["order_id"][ok] = [o.order_id for o in orders]
                acks["executed"][ok] = [o.executed for o in orders]
                acks["quote"][ok] = [o.quote for o in orders]
                acks["status"][ok] = [STATUS_CODES[o.status] for o in orders]
        return public

    def _relock(self, order: Order) -> None:
        """The order's lock follows its leaves; gone when it is done."""
        asset = order.spec.quote if order.side == BUY else order.spec.base
        lock = self._lock_of(order, order.leaves) if order.is_open else 0
        self._add_lock(order.account, asset, lock - order.lock)
        order.lock = lock
        if not order.is_open:
            self._retire(order)

    def _retire(self, order: Order) -> None:
        """A finished order leaves the open orders; an account keeps its last
        :data:`CLOSED_KEPT` finished orders (older ones are forgotten: ``-2013`` after, as
        Binance archives them), so that the history does not grow without bound."""
        owner = order.account.owner
        if self.open_orders[owner].pop(order.order_id, None) is None and \
                order.order_id in self._closed_set:
            return
        closed = self.closed[owner]
        closed.append(order.order_id)
        self._closed_set.add(order.order_id)
        while len(closed) > CLOSED_KEPT:
            old = self.orders.pop(closed.popleft(), None)
            if old is not None:
                self._closed_set.discard(old.order_id)
                key = (owner, old.client_id)
                if self.client_ids.get(key) is old:
                    del self.client_ids[key]

    def _bar(self, symbol: str, trade: Trade) -> None:
        minute = trade.time_ms // 60_000 * 60_000
        bars = self.bars[symbol]
        bar = bars.get(minute)
        if bar is None:
            bars[minute] = [trade.price, trade.price, trade.price, trade.price, trade.qty,
                            trade.price * trade.qty, 1]
            if len(bars) > BARS_KEPT:
                del bars[min(bars)]
            return
        bar[1] = max(bar[1], trade.price)
        bar[2] = min(bar[2], trade.price)
        bar[3] = trade.price
        bar[4] += trade.qty
        bar[5] += trade.price * trade.qty
        bar[6] += 1

    # ---- reads for the gateways ------------------------------------------------------------

    def depth(self, spec: SymbolSpec, limit: int) -> tuple[list, list]:
        """``limit`` levels per side as ``[[price ticks, lots], ...]`` (bids, asks)."""
        prices, qtys, _ = self.books.top_levels(limit)
        sides = [[[int(p), int(q)] for p, q in zip(prices[spec.book, k].tolist(),
                                                   qtys[spec.book, k].tolist(), strict=True)
                  if q > 0] for k in (0, 1)]
        return sides[0], sides[1]

    # ---- snapshots (rltrader.exchange.journal) --------------------------------------------

    #: Attributes that are not state a snapshot keeps: what the exchange is built from
    #: (the same at recovery), the market (kept apart), the journal, and what lives only
    #: between batches. Every other attribute is saved and restored.
    NOT_SNAPSHOTTED = frozenset((
        "config", "replay", "replay_step_ns", "market", "first_owner", "maker_fee_ppm",
        "taker_fee_ppm", "symbols", "accounts", "by_key", "speed", "journal", "clock",
        "listeners", "_pending", "_groups", "_wake", "_events", "_step_ns", "book_fees",
        "venues", "sor", "router"))

    def _snapshot_fields(self) -> list[str]:
        return sorted(k for k in vars(self) if k not in self.NOT_SNAPSHOTTED)

    def snapshot_state(self) -> bytes:
        """The state a recovery needs to go on from here, pickled: the market (its Books
        and Flow: every array and counter of the core and the background) and every
        attribute of the sequencer not in :attr:`NOT_SNAPSHOTTED` (orders, open orders,
        client ids, locks, trades, bars, counters, ids, clock ...). Accounts and symbols
        are named, not copied (no secrets in it): :meth:`restore_state` binds them to
        this exchange's. Between batches only."""
        if self.market is None:
            raise ValueError("snapshots are of a simulated market (not of a replay)")
        fields = {name: getattr(self, name) for name in self._snapshot_fields()}
        state = {"version": 1, "market": self.market, "fields": fields}
        buf = io.BytesIO()
        _SnapshotPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
        return buf.getvalue()

    def restore_state(self, data: bytes) -> None:
        """Become the exchange :meth:`snapshot_state` saved (built with the same config,
        seed, accounts, fees; before anything reads its books). All or nothing: a
        snapshot that does not load or check (``ValueError``, or the unpickler's error)
        leaves this exchange as it was."""
        if self.market is None:
            raise ValueError("snapshots are of a simulated market (not of a replay)")
        state = _SnapshotUnpickler(io.BytesIO(data), self).load()
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError("not an exchange snapshot of version 1")
        market = state["market"]
        if not isinstance(market, Market) or market.config != self.config \
                or market.seed != self.market.seed:
            raise ValueError("the snapshot is of another market")
        fields = state["fields"]
        if set(fields) != set(self._snapshot_fields()):
            raise ValueError(f"the snapshot holds the fields {sorted(fields)}, this exchange "
                             f"has {self._snapshot_fields()}")
        owners = {a.owner for a in self.accounts}
        if set(fields["open_orders"]) != owners or set(fields["locked"]) != owners \
                or set(fields["my_trades"]) != owners or set(fields["trades"]) != set(
                    self.symbols):
            raise ValueError("the snapshot is of other accounts or symbols")
        market.books.check_integrity()
        market.config = self.config
        self.market = market
        for name, value in fields.items():
            setattr(self, name, value)


def _venue_config(config: MarketConfig, names: list[str], replay: Any) -> MarketConfig:
    """One symbol on several venues: a book per venue, one latent value."""
    if replay is not None:
        raise ValueError("venues serve a simulated market (not a replay)")
    if len(config.symbols) != 1:
        raise ValueError("venues serve one symbol: give a one-symbol market")
    if len(set(names)) != len(names) or not all(
            n.isascii() and n.isalnum() and len(n) <= 12 for n in names):
        raise ValueError(f"venue names: distinct, ASCII letters and digits, got {names}")
    symbol = config.symbols[0]
    return config.replace(symbols=tuple(f"{symbol}.{n}" for n in names),
                          fundamental=dataclasses.replace(config.fundamental,
                                                          correlation=1.0))


class _SnapshotPickler(pickle.Pickler):
    """Names accounts and symbols instead of pickling them (:meth:`Exchange.snapshot_state`)."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Account):
            return ("account", obj.name)
        if isinstance(obj, SymbolSpec):
            return ("symbol", obj.symbol)
        return None


class _SnapshotUnpickler(pickle.Unpickler):
    """Binds the names back to ``exchange``'s accounts and symbols."""

    def __init__(self, file: Any, exchange: Exchange) -> None:
        super().__init__(file)
        self._accounts = {a.name: a for a in exchange.accounts}
        self._symbols = exchange.symbols

    def persistent_load(self, pid: Any) -> Any:
        kind, name = pid
        found = (self._accounts if kind == "account" else
                 self._symbols if kind == "symbol" else {}).get(name)
        if found is None:
            raise ValueError(f"the snapshot names an unknown {kind} {name!r}")
        return found
