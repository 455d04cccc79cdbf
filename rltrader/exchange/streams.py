"""Binance-spot-compatible WebSocket market streams (``/ws``, ``/stream``) over an
:class:`Exchange`.

Unmodified ``ccxt.pro.binance`` works with ``urls['api']['ws']['spot']`` pointed at
``ws://HOST:PORT/ws`` (it connects to ``/ws/<n>``, ``n`` a connection number, and sends
``SUBSCRIBE``); see docs/exchange.md, "WebSocket streams".

Paths. ``/ws`` and ``/ws/<stream>[/<stream>...]`` send raw payloads; ``/stream`` and
``/stream?streams=<stream>/<stream>...`` wrap each one as ``{"stream": name, "data":
payload}`` (``SET_PROPERTY ["combined", bool]`` switches either). A path segment that is a
number (ccxt.pro's connection number) is not a stream and is ignored.

Streams (``sym`` is the lower-case symbol, e.g. ``xyzusdt``):

``sym@depth@100ms``, ``sym@depth``
    Diffs of the top :data:`DEPTH_LEVELS` levels every 100 ms / 1,000 ms, Binance's
    ``depthUpdate`` with ``U`` = the previous event's ``u`` + 1 and ``u`` = the exchange's
    ``update_id`` (REST ``/api/v3/depth``'s ``lastUpdateId``) when it was taken: a REST
    snapshot plus the events after it, applied per Binance's "how to manage a local order
    book", is the book. An event lists every level that changed in *any* batch of its range
    (the book is compared after every batch, not only at the ends), with its quantity at
    ``u`` ("0": gone, or below the top levels); no event is sent for a range without change.
``sym@trade``, ``sym@aggTrade``
    Every public trade as it is made (an aggTrade is one trade).
``sym@kline_1m``
    The current one-minute bar every second when it changed; the bar of a minute that has
    ended once more with ``"x": true``.
``sym@bookTicker``
    The best bid and ask after every batch that changed them (``u`` = ``update_id``).
``sym@nbbo``
    On an exchange serving venues, for the first venue's symbol: the consolidated best bid
    and ask across the venues with the venue holding each (the most lots at that price),
    and every venue's touch, after every batch that changed any of them.

Fan-out never waits for a client: the hub runs on the sequencer's event loop, encodes each
event once and appends it to every subscriber's bounded queue (:data:`QUEUE_LIMIT`
messages); one task per connection drains its queue into the socket. A client whose queue
overflows (it does not read fast enough) is disconnected with close code 1008; the others
and the sequencer do not notice.

Requests are Binance's: ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params": [...], "id":
N}`` answered ``{"result": null, "id": N}``; ``LIST_SUBSCRIPTIONS``; ``SET_PROPERTY`` /
``GET_PROPERTY`` ``combined``. A bad request is answered ``{"error": {"code", "msg"}, "id"}``
(code 3: not JSON; 2: an invalid request, unknown stream or symbol, too many streams or a
message over :data:`MAX_MESSAGE` bytes; 1: a value of the wrong type; 0: an unknown
property) and the connection stays open. A connection holds at most :data:`MAX_STREAMS`
streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from rltrader.exchange.engine import Exchange, Trade
from rltrader.exchange.symbols import SymbolSpec

log = logging.getLogger("rltrader.exchange")

#: Levels per side that the depth streams follow (ccxt.pro's snapshot is 1,000).
DEPTH_LEVELS = 1000
#: Messages waiting for one client before it is disconnected as too slow.
QUEUE_LIMIT = 4096
#: Streams one connection may hold (Binance: 1,024; ccxt.pro uses up to 200 a connection).
MAX_STREAMS = 200
#: Bytes of one client message.
MAX_MESSAGE = 1 << 16
#: Params of one SUBSCRIBE / UNSUBSCRIBE.
MAX_PARAMS = 200
SLOW_CLOSE = 1008
DEPTH_RATES = {"depth@100ms": 100, "depth": 1000}
KLINE_PERIOD_MS = 1000


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Connection:
    """One client: its streams, its bounded send queue and the task that drains it."""

    def __init__(self, ws: WebSocket, combined: bool) -> None:
        self.ws = ws
        self.combined = combined
        self.streams: dict[str, None] = {}
        self.queue: deque[str] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def offer(self, raw: str, wrapped: str) -> None:
        """Queue one event (never waits); an overflow marks the client for disconnection."""
        self._push(wrapped if self.combined else raw)

    def reply(self, data: dict) -> None:
        """Queue an answer to a request: counted against the cap like events, so a client
        that sends requests without reading the answers is disconnected too."""
        self._push(_dumps(data))

    def _push(self, text: str) -> None:
        if self.closed:
            return
        if len(self.queue) >= QUEUE_LIMIT:
            self.overflowed = self.closed = True
            self.queue.clear()
        else:
            self.queue.append(text)
        self.ready.set()

    async def drain(self) -> None:
        """Send queued messages until the connection ends or overflows."""
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.overflowed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(
                        SLOW_CLOSE, "send queue overflow: client too slow"), 5.0)
                return
            while self.queue and not self.overflowed:
                await self.ws.send_text(self.queue.popleft())


async def run_connection(conn: Connection, receive: Any,
                         closed: Callable[[Connection], None]) -> None:
    """Run a connection's send queue and its receive loop (the coroutine ``receive``)
    until either ends, then ``closed(conn)`` and both tasks cancelled and awaited."""
    loop = asyncio.get_running_loop()
    sender = loop.create_task(conn.drain())
    receiver = loop.create_task(receive)
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        conn.closed = True
        closed(conn)
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(BaseException):
                await task


class _DepthFeed:
    """One symbol's diff stream at one rate: the levels touched since the last event."""

    def __init__(self, last_u: int) -> None:
        self.last_u = last_u
        self.touched: tuple[set[int], set[int]] = (set(), set())


class StreamHub:
    """The streams of one exchange: subscriptions, the per-batch listener and the timer."""

    def __init__(self, exchange: Exchange) -> None:
        self.ex = exchange
        self.subs: dict[str, dict[Connection, None]] = {}
        self.by_lower = {name.lower(): spec for name, spec in exchange.symbols.items()}
        # depth tracking: the top levels after the last batch, per book, while any depth
        # or bookTicker stream is subscribed
        self._levels: dict[int, tuple[dict[int, int], dict[int, int]]] | None = None
        self._raw: tuple[np.ndarray, np.ndarray] | None = None
        self._levels_u = 0
        self._feeds: dict[tuple[str, str], _DepthFeed] = {}
        self._tops: dict[str, tuple] = {}
        self._klines: dict[str, tuple[int, tuple, bool]] = {}
        self._minute_ids: dict[str, dict[int, list[int]]] = {s: {} for s in exchange.symbols}
        self._task: asyncio.Task | None = None
        self.connections: set[Connection] = set()

    # ---- lifecycle (the app's lifespan) ---------------------------------------------------

    def start(self) -> None:
        self.ex.listeners.append(self.on_batch)
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.on_batch in self.ex.listeners:
            self.ex.listeners.remove(self.on_batch)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute("/ws", self.endpoint),
                WebSocketRoute("/ws/{streams:path}", self.endpoint),
                WebSocketRoute("/stream", self.endpoint)]

    # ---- stream names ----------------------------------------------------------------------

    def parse(self, name: object) -> tuple[SymbolSpec, str] | str:
        """``(spec, kind)`` of a stream name, or why it is not one."""
        if not isinstance(name, str):
            return "Invalid request: stream names must be strings"
        if len(name) > 64 or "@" not in name:
            return f"Invalid request: unknown stream {name[:64]!r}"
        symbol, kind = name.split("@", 1)
        spec = self.by_lower.get(symbol)
        if spec is None or symbol != symbol.lower():
            return f"Invalid request: unknown symbol {symbol[:32]!r} in stream {name[:64]!r}"
        if kind not in ("depth", "depth@100ms", "trade", "aggTrade", "kline_1m",
                        "bookTicker", "nbbo"):
            return f"Invalid request: unknown stream {name[:64]!r}"
        if kind == "nbbo" and spec.symbol not in self.ex.sor:
            return (f"Invalid request: {name[:64]!r}: nbbo is for a symbol served on "
                    "several venues")
        return spec, kind

    def subscribe(self, conn: Connection, names: list[str]) -> None:
        for name in names:
            if name in conn.streams:
                continue
            spec, kind = self.parse(name)  # type: ignore[misc]
            if kind in DEPTH_RATES or kind in ("bookTicker", "nbbo"):
                self._track()
            if kind in DEPTH_RATES and (spec.symbol, kind) not in self._feeds:
                self._feeds[(spec.symbol, kind)] = _DepthFeed(self._levels_u)
            conn.streams[name] = None
            self.subs.setdefault(name, {})[conn] = None

    def unsubscribe(self, conn: Connection, names: list[str]) -> None:
        for name in names:
            if name not in conn.streams:
                continue
            del conn.streams[name]
            holders = self.subs.get(name, {})
            holders.pop(conn, None)
            if not holders:
                self.subs.pop(name, None)
                parsed = self.parse(name)
                if isinstance(parsed, tuple):
                    self._feeds.pop((parsed[0].symbol, parsed[1]), None)
                    self._tops.pop(name, None)
                    self._klines.pop(name, None)
        if not any(k in DEPTH_RATES or k in ("bookTicker", "nbbo") for k in
                   (n.split("@", 1)[1] for n in self.subs)):
            self._levels, self._raw = None, None

    def publish(self, name: str, data: dict) -> None:
        holders = self.subs.get(name)
        if not holders:
            return
        raw = _dumps(data)
        wrapped = f'{{"stream":"{name}","data":{raw}}}'
        for conn in list(holders):
            conn.offer(raw, wrapped)

    # ---- the book after every batch -------------------------------------------------------

    def _track(self) -> None:
        """Start following the top levels (a snapshot now, between batches)."""
        if self._levels is None:
            self._levels = {}
            self._raw = None
            self._snapshot()

    def _snapshot(self) -> set[int]:
        """Refresh the top levels; the books whose levels changed since the last call."""
        prices, qtys, _ = self.ex.books.top_levels(DEPTH_LEVELS)
        prices, qtys = np.array(prices, copy=True), np.array(qtys, copy=True)
        changed: set[int] = set()
        old = self._raw
        self._raw = (prices, qtys)
        self._levels_u = self.ex.update_id
        assert self._levels is not None
        for spec in self.ex.symbols.values():
            b = spec.book
            if (old is not None and b in self._levels and np.array_equal(old[0][b], prices[b])
                    and np.array_equal(old[1][b], qtys[b])):
                continue
            self._levels[b] = tuple(  # type: ignore[assignment]
                {p: q for p, q in zip(prices[b, k].tolist(), qtys[b, k].tolist(),
                                      strict=True) if q > 0} for k in (0, 1))
            changed.add(b)
        return changed

    def on_batch(self, exchange: Exchange, public: dict[str, list[Trade]]) -> None:
        """The exchange's listener: runs after every batch, on the sequencer's loop."""
        try:
            self._on_batch(public)
        except Exception:                      # never let a stream bug stop the sequencer
            log.exception("stream listener failed")

    def _on_batch(self, public: dict[str, list[Trade]]) -> None:
        now = _now_ms()
        for symbol, trades in public.items():
            if not trades:
                continue
            ids = self._minute_ids[symbol]
            for t in trades:
                minute = t.time_ms // 60_000 * 60_000
                span = ids.get(minute)
                if span is None:
                    ids[minute] = [t.trade_id, t.trade_id]
                    for old in [m for m in ids if m < minute - 120_000]:
                        del ids[old]
                else:
                    span[1] = t.trade_id
            lower = symbol.lower()
            spec = self.ex.symbols[symbol]
            for kind in ("trade", "aggTrade"):
                name = f"{lower}@{kind}"
                if name in self.subs:
                    for t in trades:
                        self.publish(name, self._trade(spec, t, kind, now))
        if self._levels is None:
            return
        old = {b: self._levels.get(b) for b in range(len(self.ex.symbols))}
        changed = self._snapshot()
        for spec in self.ex.symbols.values():
            if spec.book not in changed:
                continue
            before, after = old.get(spec.book), self._levels[spec.book]
            feeds = [f for (s, _), f in self._feeds.items() if s == spec.symbol]
            if feeds and before is not None:
                for side in (0, 1):
                    b, a = before[side], after[side]
                    touched = {p for p in b.keys() | a.keys() if b.get(p) != a.get(p)}
                    if touched:
                        for f in feeds:
                            f.touched[side].update(touched)
            name = f"{spec.symbol.lower()}@bookTicker"
            if name in self.subs:
                top = tuple(max(after[0].items(), default=(0, 0))) + tuple(
                    min(after[1].items(), default=(0, 0)))
                if self._tops.get(name) != top:
                    self._tops[name] = top
                    self.publish(name, {
                        "u": self._levels_u, "s": spec.symbol,
                        "b": spec.price_str(top[0]), "B": spec.qty_str(top[1]),
                        "a": spec.price_str(top[2]), "A": spec.qty_str(top[3])})
        if self.ex.sor:
            self._nbbo(changed)

    def _nbbo(self, changed: set[int]) -> None:
        """``sym@nbbo`` of every venue group one of whose books changed."""
        assert self._levels is not None
        for symbol, venues in self.ex.sor.items():
            name = f"{symbol.lower()}@nbbo"
            if name not in self.subs or not changed & {v.book for v in venues}:
                continue
            touches = []
            for v in venues:
                bids, asks = self._levels[v.book]
                bid = max(bids.items(), default=(0, 0))
                ask = min(asks.items(), default=(0, 0))
                touches.append((v, bid, ask))
            best_bid = max((b[0] for _, b, _ in touches if b[1]), default=0)
            best_ask = min((a[0] for _, _, a in touches if a[1]), default=0)
            bid_qty = sum(b[1] for _, b, _ in touches if b[1] and b[0] == best_bid)
            ask_qty = sum(a[1] for _, _, a in touches if a[1] and a[0] == best_ask)
            bid_venue = max((t for t in touches if t[1][1] and t[1][0] == best_bid),
                            key=lambda t: t[1][1], default=None)
            ask_venue = max((t for t in touches if t[2][1] and t[2][0] == best_ask),
                            key=lambda t: t[2][1], default=None)
            spec = venues[0]
            state = (best_bid, bid_qty, best_ask, ask_qty, tuple(
                (b, a) for _, b, a in touches))
            if self._tops.get(name) == state:
                continue
            self._tops[name] = state
            self.publish(name, {
                "e": "nbbo", "E": _now_ms(), "u": self._levels_u, "s": symbol,
                "b": spec.price_str(best_bid), "B": spec.qty_str(bid_qty),
                "bv": bid_venue[0].symbol if bid_venue else None,
                "a": spec.price_str(best_ask), "A": spec.qty_str(ask_qty),
                "av": ask_venue[0].symbol if ask_venue else None,
                "venues": [{"s": v.symbol, "b": v.price_str(b[0]), "B": v.qty_str(b[1]),
                            "a": v.price_str(a[0]), "A": v.qty_str(a[1])}
                           for v, b, a in touches]})

    @staticmethod
    def _trade(spec: SymbolSpec, t: Trade, kind: str, now: int) -> dict:
        if kind == "trade":
            return {"e": "trade", "E": now, "s": spec.symbol, "t": t.trade_id,
                    "p": spec.price_str(t.price), "q": spec.qty_str(t.qty), "T": t.time_ms,
                    "m": t.buyer_maker, "M": True}
        return {"e": "aggTrade", "E": now, "s": spec.symbol, "a": t.trade_id,
                "p": spec.price_str(t.price), "q": spec.qty_str(t.qty), "f": t.trade_id,
                "l": t.trade_id, "T": t.time_ms, "m": t.buyer_maker, "M": True}

    # ---- the timer: depth diffs and klines --------------------------------------------------

    async def run(self) -> None:
        tick = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * 0.1 - loop.time()))
            try:
                self.emit_depth(100)
                if tick % 10 == 0:
                    self.emit_depth(1000)
                    self.emit_klines()
            except Exception:
                log.exception("stream timer failed")

    def emit_depth(self, rate: int) -> None:
        if self._levels is None:
            return
        now = _now_ms()
        for (symbol, kind), feed in self._feeds.items():
            if DEPTH_RATES[kind] != rate or not (feed.touched[0] or feed.touched[1]):
                continue
            spec = self.ex.symbols[symbol]
            levels = self._levels[spec.book]
            sides = [[[spec.price_str(p), spec.qty_str(levels[k].get(p, 0))]
                      for p in sorted(feed.touched[k], reverse=k == 0)] for k in (0, 1)]
            data = {"e": "depthUpdate", "E": now, "s": symbol, "U": feed.last_u + 1,
                    "u": self._levels_u, "b": sides[0], "a": sides[1]}
            feed.last_u = self._levels_u
            feed.touched[0].clear()
            feed.touched[1].clear()
            self.publish(f"{symbol.lower()}@{kind}", data)

    def emit_klines(self) -> None:
        now = _now_ms()
        for name in [n for n in self.subs if n.endswith("@kline_1m")]:
            spec = self.ex.symbols[name.split("@")[0].upper()]
            bars = self.ex.bars[spec.symbol]
            if not bars:
                continue
            minute = max(bars)
            sent = self._klines.get(name)
            if sent is not None and sent[0] != minute and not sent[2] and sent[0] in bars:
                self.publish(name, self._kline(spec, sent[0], bars[sent[0]], True, now))
            state = (minute, tuple(bars[minute]), now >= minute + 60_000)
            if state != sent:
                self._klines[name] = state
                self.publish(name, self._kline(spec, minute, bars[minute], state[2], now))

    def _kline(self, spec: SymbolSpec, t: int, bar: list, closed: bool, now: int) -> dict:
        o, h, lo, c, v, q, n = bar
        first, last = self._minute_ids[spec.symbol].get(t, [-1, -1])
        return {"e": "kline", "E": now, "s": spec.symbol, "k": {
            "t": t, "T": t + 59_999, "s": spec.symbol, "i": "1m", "f": first, "L": last,
            "o": spec.price_str(o), "c": spec.price_str(c), "h": spec.price_str(h),
            "l": spec.price_str(lo), "v": spec.qty_str(v), "n": n, "x": closed,
            "q": spec.quote_str(q), "V": "0", "Q": "0", "B": "0"}}

    # ---- connections ----------------------------------------------------------------------

    async def endpoint(self, ws: WebSocket) -> None:
        path = ws.scope.get("path", "")
        combined = path.startswith("/stream")
        if combined:
            names = [s for s in ws.query_params.get("streams", "").split("/") if s]
        else:
            names = [s for s in ws.path_params.get("streams", "").split("/") if s]
        await ws.accept()
        conn = Connection(ws, combined)
        self.connections.add(conn)
        await run_connection(conn, self._receive(conn, names), self._closed)

    def _closed(self, conn: Connection) -> None:
        self.unsubscribe(conn, list(conn.streams))
        self.connections.discard(conn)

    async def _receive(self, conn: Connection, names: list[str]) -> None:
        initial = [n for n in names if not n.isdigit()][:MAX_STREAMS]
        good = [n for n in initial if isinstance(self.parse(n), tuple)]
        for n in initial:
            if n not in good:
                conn.reply({"error": {"code": 2, "msg": self.parse(n)}, "id": None})
        self.subscribe(conn, good)
        while True:
            message = await conn.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = "\x00"
            self.handle(conn, text)

    def handle(self, conn: Connection, text: str) -> None:
        """Answer one client message (on the loop, between batches)."""
        if len(text) > MAX_MESSAGE:
            conn.reply({"error": {"code": 2, "msg": f"Invalid request: message longer than "
                                  f"{MAX_MESSAGE} bytes"}, "id": None})
            return
        try:
            req = json.loads(text)
        except (ValueError, RecursionError):
            conn.reply({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"},
                        "id": None})
            return
        if not isinstance(req, dict):
            conn.reply({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"},
                        "id": None})
            return
        rid = req.get("id")
        if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool)
                                and 0 <= rid < 2**64)
                or (isinstance(rid, str) and len(rid) <= 64)):
            conn.reply({"error": {"code": 2, "msg": "Invalid request: request ID must be an "
                                  "unsigned integer or a string of at most 64 characters"},
                        "id": None})
            return
        unknown = set(req) - {"method", "params", "id"}
        if unknown:
            conn.reply({"error": {"code": 0, "msg": "Unknown property"}, "id": rid})
            return
        method, params = req.get("method"), req.get("params", [])
        if not isinstance(params, list):
            conn.reply({"error": {"code": 1, "msg": "Invalid value type: expected an array "
                                  "of strings"}, "id": rid})
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if len(params) > MAX_PARAMS:
                conn.reply({"error": {"code": 2, "msg": "Invalid request: too many "
                                      "parameters"}, "id": rid})
                return
            for name in params:
                parsed = self.parse(name)
                if isinstance(parsed, str):
                    conn.reply({"error": {"code": 2, "msg": parsed}, "id": rid})
                    return
            if method == "UNSUBSCRIBE":
                self.unsubscribe(conn, params)
            else:
                new = {n for n in params if n not in conn.streams}
                if len(conn.streams) + len(new) > MAX_STREAMS:
                    conn.reply({"error": {"code": 2, "msg": f"Invalid request: at most "
                                          f"{MAX_STREAMS} streams a connection"}, "id": rid})
                    return
                self.subscribe(conn, params)
            conn.reply({"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.reply({"result": list(conn.streams), "id": rid})
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not params or params[0] != "combined":
                conn.reply({"error": {"code": 2, "msg": "Invalid request: unknown property "
                                      "(only 'combined')"}, "id": rid})
            elif method == "GET_PROPERTY":
                conn.reply({"result": conn.combined, "id": rid})
            elif len(params) != 2 or not isinstance(params[1], bool):
                conn.reply({"error": {"code": 1, "msg": "Invalid value type: expected "
                                      "Boolean"}, "id": rid})
            else:
                conn.combined = params[1]
                conn.reply({"result": None, "id": rid})
        else:
            conn.reply({"error": {"code": 2, "msg": f"Invalid request: unknown method "
                                  f"{str(method)[:32]!r}, expected one of SUBSCRIBE, "
                                  "UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, "
                                  "GET_PROPERTY"}, "id": rid})
