"""Live publication of analytics: one :class:`Hub` per process, fed by a source (the
exchange's batches, a simulated market, a replay, a served exchange's streams), publishing
what its :class:`~rltrader.analytics.engine.FeatureEngine` computes over WebSocket, ZeroMQ
and REST (docs/analytics.md, "Live").

WebSocket (``/ws``, ``/ws/<stream>/...``, ``/stream?streams=...``) speaks the exchange's
Binance protocol exactly as :mod:`rltrader.exchange.streams` does: ``SUBSCRIBE`` /
``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY combined``, the same error codes
(3 not JSON, 2 invalid request or unknown stream, 1 wrong value type, 0 unknown property),
the same per-connection send queue capped at ``QUEUE_LIMIT`` messages (a client that does
not read is closed with 1008; nobody else waits for it). Streams (``sym`` lower case):

``sym@kline_<i>``      Binance kline payloads: when a fill changes the bar in progress, and
                       once more with ``"x": true`` when it closes (every ``--intervals``)
``sym@indicators_<i>`` each closed bar with its indicators (price units, JSON numbers)
``sym@analytics``      one per sample tick: the microstructure features
``sym@depth``          the top :data:`DEPTH_LEVELS` levels per side, at most every 100 ms
``sym@trade``          every trade, Binance's trade payload
``agents``             every second: position, PnL marked to mid, share of volume per
                       account or population (when the source has any)

Every payload that a source's update produced carries ``"ns"``: that update's source time
in nanoseconds (the exchange's batch timestamp), besides Binance's millisecond fields.
NaN is sent as ``null``. ZeroMQ (``--zmq``): a PUB socket publishing every stream as
multipart ``[stream name, JSON]`` (subscribe to a name, or a prefix such as ``xyzusdt@``).

REST: ``/api/v3/klines`` (Binance's rows, from the engine's history and the bar in
progress), ``/api/v3/exchangeInfo`` (the source's, so that ccxt loads its markets),
``/api/v3/ping``, ``/api/v3/time``, ``/analytics/history?symbol=&stream=&limit=`` (the
stream's payloads, oldest first) and ``/analytics/symbols``. Errors are Binance's
``{"code", "msg"}`` with HTTP 4xx; nothing answers 500.

The hub runs on its source's event loop: a source calls :meth:`Hub.feed_events` or
:meth:`Hub.feed_records` between batches, and the hub's timer closes bars and samples on
the source's clock (:meth:`Hub.tick`), sends depth and agents. It reuses the exchange's
wire vocabulary (:class:`~rltrader.exchange.symbols.SymbolSpec`'s exact decimals, the
streams' :class:`~rltrader.exchange.streams.Connection`); it never touches a sequencer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from rltrader.analytics.engine import (
    BAR_DTYPE,
    MD_CLEAR,
    MD_DTYPE,
    MD_LEVEL,
    MD_TRADE,
    FeatureEngine,
    interval_name,
    parse_interval,
)
from rltrader.core.constants import FILL
from rltrader.exchange.streams import (
    MAX_MESSAGE,
    MAX_PARAMS,
    MAX_STREAMS,
    Connection,
    run_connection,
)
from rltrader.exchange.symbols import ApiError, SymbolSpec

log = logging.getLogger("rltrader.analytics")

#: Levels per side of the ``depth`` stream.
DEPTH_LEVELS = 20
#: Seconds between the timer's runs (bars and samples closed on the clock, depth).
TICK_S = 0.1
#: Timer runs between two ``agents`` messages.
AGENTS_EVERY = 10
#: Rows ``/analytics/history`` serves at most.
HISTORY_LIMIT = 10_000
def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def _num(x: float) -> float | None:
    """A JSON number, or null for NaN and infinities."""
    return x if math.isfinite(x) else None


# ---- payloads: the contract's JSON, built from the engine's records -----------------------

#: BAR_DTYPE fields in price units (ticks), quantities (lots) and the rest (as is).
_BAR_PRICES = ("open", "high", "low", "close", "vwap", "session_vwap", "sma", "ema",
               "bb_upper", "bb_middle", "bb_lower", "atr", "macd", "macd_signal", "macd_hist")
_BAR_QTYS = ("volume", "buy_volume")
_SAMPLE_PRICES = ("mid", "spread", "microprice")
_SAMPLE_QTYS = ("bid_qty", "ask_qty", "buy_volume", "sell_volume", "ofi")
_SAMPLE_SKIP = ("book", "t", "bid", "ask", "has_mid", "depth_bid", "depth_ask", "embedding",
                *_SAMPLE_PRICES, *_SAMPLE_QTYS)


class Units:
    """One symbol's conversions from ticks and lots to JSON numbers (floats rounded to the
    grid's digits, so that 0.01 x 12345 is 123.45) and Binance's decimal strings."""

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.tick, self.lot = float(spec.tick_size), float(spec.lot_size)
        self.price_digits = spec.precision(spec.tick_size)
        self.qty_digits = spec.precision(spec.lot_size)
        self.cash = float(spec.cash_unit)

    def price(self, ticks: float) -> float | None:
        return _num(round(ticks * self.tick, self.price_digits + 4))

    def qty(self, lots: float) -> float | None:
        return _num(round(lots * self.lot, self.qty_digits + 4))


def kline_payload(u: Units, bar: np.void, name: str, now_ms: int, ns: int) -> dict:
    """Binance's kline event for a BAR_DTYPE record (``name``: its interval, ``1m``)."""
    s = u.spec
    t = int(bar["t_open"]) // 1_000_000
    return {"e": "kline", "E": now_ms, "s": s.symbol, "ns": ns, "k": {
        "t": t, "T": t + int(bar["interval_ns"]) // 1_000_000 - 1, "s": s.symbol, "i": name,
        "f": -1, "L": -1, "o": s.price_str(int(bar["open"])),
        "c": s.price_str(int(bar["close"])), "h": s.price_str(int(bar["high"])),
        "l": s.price_str(int(bar["low"])), "v": s.qty_str(int(bar["volume"])),
        "n": int(bar["n_trades"]), "x": bool(bar["closed"]),
        "q": s.quote_str(round(float(bar["quote_volume"]))),
        "V": s.qty_str(int(bar["buy_volume"])), "Q": "0", "B": "0"}}


def kline_row(u: Units, bar: np.void) -> list:
    """A BAR_DTYPE record as a row of Binance's REST ``/api/v3/klines``."""
    s = u.spec
    t = int(bar["t_open"]) // 1_000_000
    return [t, s.price_str(int(bar["open"])), s.price_str(int(bar["high"])),
            s.price_str(int(bar["low"])), s.price_str(int(bar["close"])),
            s.qty_str(int(bar["volume"])), t + int(bar["interval_ns"]) // 1_000_000 - 1,
            s.quote_str(round(float(bar["quote_volume"]))), int(bar["n_trades"]),
            s.qty_str(int(bar["buy_volume"])), "0", "0"]


def indicators_payload(u: Units, bar: np.void, name: str, now_ms: int, ns: int) -> dict:
    """A closed bar with its indicators: prices (and ATR, MACD) in price units, volumes in
    base units, quote volume in quote units, RSI as is."""
    t = int(bar["t_open"]) // 1_000_000
    out: dict[str, Any] = {"e": "indicators", "E": now_ms, "s": u.spec.symbol, "ns": ns,
                           "i": name, "t": t,
                           "T": t + int(bar["interval_ns"]) // 1_000_000 - 1}
    for field in _BAR_PRICES:
        out[field] = u.price(float(bar[field]))
    for field in _BAR_QTYS:
        out[field] = u.qty(int(bar[field]))
    out["quote_volume"] = _num(round(float(bar["quote_volume"]) * u.cash, u.price_digits + 4))
    out["n_trades"] = int(bar["n_trades"])
    out["rsi"] = _num(float(bar["rsi"]))
    return out


def sample_payload(u: Units, row: np.void, now_ms: int) -> dict:
    """One sample (SAMPLE_DTYPE) as the ``analytics`` stream sends it: prices in price
    units, quantities in base units, Kyle's lambda in price per base unit, null for NaN
    and for a missing side."""
    t = int(row["t"])
    out: dict[str, Any] = {"e": "analytics", "E": now_ms, "s": u.spec.symbol, "ns": t,
                           "t": t // 1_000_000}
    bid_qty, ask_qty = int(row["bid_qty"]), int(row["ask_qty"])
    out["bid"] = u.price(int(row["bid"])) if bid_qty else None
    out["ask"] = u.price(int(row["ask"])) if ask_qty else None
    out["has_mid"] = bool(row["has_mid"])
    for field in _SAMPLE_PRICES:
        out[field] = u.price(float(row[field]))
    for field in _SAMPLE_QTYS:
        out[field] = u.qty(float(row[field]))
    out["depth_bid"] = [u.qty(q) for q in row["depth_bid"].tolist()]
    out["depth_ask"] = [u.qty(q) for q in row["depth_ask"].tolist()]
    out["embedding"] = [_num(x) for x in row["embedding"].tolist()]
    for field in row.dtype.names:
        if field not in _SAMPLE_SKIP:
            value = row[field].item()
            out[field] = _num(value) if isinstance(value, float) else value
    if out.get("kyle_lambda") is not None:
        out["kyle_lambda"] = _num(out["kyle_lambda"] * u.tick / u.lot)
    return out


def nbbo_payload(units: Any, first: int, touches: list[tuple[int, int, int, int, int]],
                 ns: int) -> dict:
    """The consolidated touch of a venue group: best bid and ask over the venues, their
    lots at that price, the venue holding the most there, and every venue's touch
    (``touches``: book, bid, bid lots, ask, ask lots)."""
    spec = units[first].spec
    bids = [(p, q, b) for b, p, q, _, _ in touches if q]
    asks = [(p, q, b) for b, _, _, p, q in touches if q]
    out: dict[str, Any] = {"e": "nbbo", "E": time.time_ns() // 1_000_000, "ns": ns,
                           "s": spec.symbol}
    for key, rows, best in (("b", bids, max), ("a", asks, min)):
        price = best((p for p, _, _ in rows), default=0)
        at = [r for r in rows if r[0] == price]
        out[key] = spec.price_str(price)
        out[key.upper()] = spec.qty_str(sum(q for _, q, _ in at))
        out[key + "v"] = units[max(at, key=lambda r: r[1])[2]].spec.symbol if at else None
    out["venues"] = [{"s": units[b].spec.symbol, "b": spec.price_str(bp),
                      "B": spec.qty_str(bq), "a": spec.price_str(ap), "A": spec.qty_str(aq)}
                     for b, bp, bq, ap, aq in touches]
    return out


def trade_payload(u: Units, t_ns: int, price: int, qty: int, side: int, now_ms: int,
                  trade_id: int) -> dict:
    """Binance's trade event; ``side`` is the aggressor's (+1 buy)."""
    s = u.spec
    return {"e": "trade", "E": now_ms, "s": s.symbol, "ns": t_ns, "t": trade_id,
            "p": s.price_str(price), "q": s.qty_str(qty), "T": t_ns // 1_000_000,
            "m": side < 0, "M": True}


def depth_payload(u: Units, prices: np.ndarray, qtys: np.ndarray, now_ms: int,
                  ns: int) -> dict:
    """The top levels, ``[[price, qty], ...]`` per side as Binance's decimal strings."""
    s = u.spec
    sides = [[[s.price_str(p), s.qty_str(q)] for p, q in zip(prices[k].tolist(),
                                                              qtys[k].tolist(), strict=True)
              if q > 0] for k in (0, 1)]
    return {"e": "depth", "E": now_ms, "s": s.symbol, "ns": ns, "b": sides[0],
            "a": sides[1]}


def agent_rows(accounts: np.ndarray, groups: Sequence[tuple[str, str, int, int]],
               mids: dict[int, float], specs: Sequence[SymbolSpec]) -> list[dict]:
    """Per (group, symbol) row of the ``agents`` stream from a core's ``accounts`` array
    (``(n_books, n_owners)`` ACCOUNT_DTYPE): ``groups`` are ``(name, group, first owner,
    stop owner)``. ``position`` in base units, ``pnl`` in quote units (cash, fees
    included, plus the position marked to the mid; 0 without a mid), ``volume_share``:
    the lots the row's owners traded over all owners' traded lots on that book (the
    shares of every participant sum to 1)."""
    rows = []
    for spec in specs:
        book = accounts[spec.book]
        total = int(book["volume"].sum())
        mid = mids.get(spec.book, math.nan)
        u = Units(spec)
        for name, group, lo, hi in groups:
            part = book[lo:hi]
            position = int(part["position"].sum())
            cash = int(part["cash"].sum())
            volume = int(part["volume"].sum())
            pnl = cash + position * mid if math.isfinite(mid) else float(cash)
            rows.append({"name": name, "group": group, "symbol": spec.symbol,
                         "position": u.qty(position),
                         "pnl": _num(round(pnl * u.cash, u.price_digits + 4)),
                         "volume_share": volume / total if total else 0.0})
    return rows


# ---- the hub -------------------------------------------------------------------------------


def _embedding() -> Any:
    """The shipped book embedding, or None where it is not installed."""
    try:
        from rltrader.analytics.embedding import BookEmbedding

        return BookEmbedding.default()
    except (ImportError, OSError):
        log.warning("no book embedding: the samples' embedding stays NaN")
        return None


class _Error(Exception):
    """A WebSocket request's error: Binance's stream ``code`` and ``msg``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


class Hub:
    """Features of ``symbols``' books, computed by one FeatureEngine and published.

    Parameters
    ----------
    symbols : sequence of SymbolSpec
        What the source trades; ``spec.book`` is the book index in its events or records.
    intervals : sequence of str
        Bar intervals (``"1s"``, ``"1m"``, ...): one ``kline_<i>`` and ``indicators_<i>``
        stream each.
    sample : str
        The sample clock (``analytics`` stream).
    clock : callable
        The source's time in ns (bars and samples close on it).
    exchange_info : callable, optional
        ``() -> dict`` (or an awaitable of one): ``/api/v3/exchangeInfo``'s answer.
    agents : callable, optional
        ``() -> list[dict]``: the ``agents`` stream's rows.
    zmq : str, optional
        A ZeroMQ endpoint (``tcp://127.0.0.1:5556``) to bind a PUB socket on.
    engine : FeatureEngine, optional
        Built from the arguments above when not given.
    """

    def __init__(self, symbols: Sequence[SymbolSpec], *, intervals: Sequence[str] = ("1s", "1m"),
                 sample: str = "1s", window: int = 60,
                 clock: Callable[[], int] = time.time_ns,
                 exchange_info: Callable[[], Any] | None = None,
                 agents: Callable[[], list[dict]] | None = None, zmq: str | None = None,
                 engine: FeatureEngine | None = None) -> None:
        if not symbols:
            raise ValueError("a hub needs at least one symbol")
        if not intervals or len(set(intervals)) != len(intervals):
            raise ValueError(f"intervals must be distinct and at least one, got {intervals}")
        self.specs = list(symbols)
        self.units = {s.book: Units(s) for s in self.specs}
        self.by_lower = {s.symbol.lower(): s for s in self.specs}
        ns = [parse_interval(i) for i in intervals]
        self.intervals = {interval_name(v): v for v in ns}
        if len(self.intervals) != len(ns):
            raise ValueError(f"intervals repeat: {', '.join(intervals)}")
        self.sample_ns = parse_interval(sample)
        self.engine = engine if engine is not None else FeatureEngine(
            n_books=max(s.book for s in self.specs) + 1, intervals=ns,
            sample=self.sample_ns, window=window, indicators=True, embedding=_embedding())
        self.clock = clock
        self.exchange_info = exchange_info
        self.agents = agents
        #: venues of one symbol (the first venue's book -> every venue's book): <sym>@nbbo
        self.venue_groups: dict[int, list[int]] = {}
        self._nbbo_sent: dict[int, tuple] = {}
        self.kinds = ("analytics", "depth", "trade", *(f"kline_{i}" for i in self.intervals),
                      *(f"indicators_{i}" for i in self.intervals))
        self.subs: dict[str, dict[Connection, None]] = {}
        self.connections: set[Connection] = set()
        self._t = 0                                  # the latest time given to the engine
        self._open_sent: dict[tuple[int, int], tuple] = {}
        self._depth_sent: dict[int, tuple] = {}
        self._dirty: set[int] = set()
        self._trade_ids = dict.fromkeys(self.units, 0)
        self._task: asyncio.Task | None = None
        self._zmq_socket: Any = None
        self._zmq_endpoint = zmq
        self._bar = np.zeros(1, dtype=BAR_DTYPE)
        self.published = 0

    # ---- lifecycle ------------------------------------------------------------------------

    def open_zmq(self) -> None:
        """Bind the PUB socket (a bad or busy endpoint: ValueError naming it)."""
        if self._zmq_endpoint is None or self._zmq_socket is not None:
            return
        import zmq

        sock = zmq.Context.instance().socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        try:
            sock.bind(self._zmq_endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            raise ValueError(f"--zmq {self._zmq_endpoint}: {exc}") from None
        self._zmq_socket = sock

    async def start(self) -> None:
        """Bind ZeroMQ and start the timer (on the source's loop)."""
        self.open_zmq()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._zmq_socket is not None:
            self._zmq_socket.close(0)
            self._zmq_socket = None

    # ---- input: a source's updates, between its batches ----------------------------------

    def seed(self, books: Any, levels: int = 1000) -> None:
        """Start from a core's books as they stand (``Books.top_levels``): the engine
        follows them from events after this."""
        prices, qtys, _ = books.top_levels(levels)
        now = self.clock()
        parts = []
        for spec in self.specs:
            b = spec.book
            clear = np.zeros(1, dtype=MD_DTYPE)
            clear["kind"], clear["book"] = MD_CLEAR, b
            parts.append(clear)
            for k, side in ((0, 1), (1, -1)):
                keep = qtys[b, k] > 0
                rec = np.zeros(int(keep.sum()), dtype=MD_DTYPE)
                rec["price"], rec["qty"] = prices[b, k][keep], qtys[b, k][keep]
                rec["book"], rec["kind"], rec["side"] = b, MD_LEVEL, side
                parts.append(rec)
        records = np.concatenate(parts)
        records["timestamp"] = now
        self.feed_records(records)

    def feed_events(self, events: np.ndarray) -> None:
        """A batch of core events (EVENT_DTYPE)."""
        if not len(events):
            return
        events = self._in_order(events)
        update = self.engine.process_events(events)
        fills = events[events["kind"] == FILL]
        self._after(update, fills["book"], fills["timestamp"], fills["price"], fills["qty"],
                    fills["side"], np.unique(events["book"]).tolist(),
                    int(events["timestamp"][-1]))

    def on_batch(self, exchange: Any, public: Any) -> None:
        """An :class:`~rltrader.exchange.engine.Exchange` listener: the batch's events
        (``exchange.last_batch``). A failure is logged; it never stops the sequencer."""
        try:
            self.feed_events(exchange.last_batch[1])
        except Exception:
            log.exception("analytics listener failed")

    def feed_records(self, records: np.ndarray) -> None:
        """Market-data records (MD_DTYPE)."""
        if not len(records):
            return
        records = self._in_order(records)
        update = self.engine.process_records(records)
        trades = records[records["kind"] == MD_TRADE]
        self._after(update, trades["book"], trades["timestamp"], trades["price"],
                    trades["qty"], trades["side"], np.unique(records["book"]).tolist(),
                    int(records["timestamp"][-1]))

    def _in_order(self, rows: np.ndarray) -> np.ndarray:
        """Time never goes back for the engine: a row stamped before what it has seen (a
        late message of a remote feed, a clock that the timer passed) counts now."""
        ts = rows["timestamp"]
        if ts[0] >= self._t and (len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all())):
            self._t = int(ts[-1])
            return rows
        rows = rows.copy()
        rows["timestamp"] = np.maximum.accumulate(np.maximum(rows["timestamp"], self._t))
        self._t = int(rows["timestamp"][-1])
        return rows

    def tick(self, now: int | None = None) -> None:
        """The clock reached ``now`` (the source's clock by default): close what ended."""
        now = self.clock() if now is None else now
        if now <= self._t:
            return
        self._t = now
        self._after(self.engine.flush(now), *([np.zeros(0, np.int64)] * 5), [], now)

    # ---- output ---------------------------------------------------------------------------

    def wants(self, name: str) -> bool:
        return name in self.subs or self._zmq_socket is not None

    def publish(self, name: str, data: dict) -> None:
        """Send one payload to the stream's subscribers (never waits) and to ZeroMQ."""
        raw = _dumps(data)
        self.published += 1
        holders = self.subs.get(name)
        if holders:
            wrapped = f'{{"stream":"{name}","data":{raw}}}'
            for conn in list(holders):
                conn.offer(raw, wrapped)
        if self._zmq_socket is not None:
            import zmq

            with contextlib.suppress(zmq.Again):
                self._zmq_socket.send_multipart([name.encode(), raw.encode()], zmq.NOBLOCK)

    def _after(self, update: Any, books: np.ndarray, ts: np.ndarray, prices: np.ndarray,
               qtys: np.ndarray, sides: np.ndarray, touched: list[int], ns: int) -> None:
        """Publish what one update produced: trades, closed bars, samples, then the bars in
        progress that the trades changed."""
        now_ms = time.time_ns() // 1_000_000
        names = {b: u.spec.symbol.lower() for b, u in self.units.items()}
        for b, t, p, q, side in zip(books.tolist(), ts.tolist(), prices.tolist(),
                                    qtys.tolist(), sides.tolist(), strict=True):
            if b not in self.units:
                continue
            self._trade_ids[b] += 1
            name = f"{names[b]}@trade"
            if self.wants(name):
                self.publish(name, trade_payload(self.units[b], t, p, q, side, now_ms,
                                                 self._trade_ids[b]))
        interval_names = {ns_: i for i, ns_ in self.intervals.items()}
        for bar in update.bars:
            b = int(bar["book"])
            if b not in self.units:
                continue
            i = interval_names.get(int(bar["interval_ns"]))
            if i is None:
                continue
            self._open_sent.pop((b, int(bar["interval_ns"])), None)
            name = f"{names[b]}@kline_{i}"
            if self.wants(name):
                self.publish(name, kline_payload(self.units[b], bar, i, now_ms, ns))
            name = f"{names[b]}@indicators_{i}"
            if self.wants(name):
                self.publish(name, indicators_payload(self.units[b], bar, i, now_ms, ns))
        for row in update.samples:
            b = int(row["book"])
            if b in self.units:
                self._dirty.add(b)
                name = f"{names[b]}@analytics"
                if self.wants(name):
                    self.publish(name, sample_payload(self.units[b], row, now_ms))
        for b in set(books.tolist()):
            if b in self.units:
                self._push_open_bars(b, names[b], now_ms, ns)
        self._dirty.update(b for b in touched if b in self.units)

    def _push_open_bars(self, book: int, lower: str, now_ms: int, ns: int) -> None:
        for i, interval_ns in self.intervals.items():
            name = f"{lower}@kline_{i}"
            if not self.wants(name):
                continue
            bar = self.engine.open_bar(book, interval_ns)
            if bar is None:
                continue
            key = (int(bar["t_open"]), int(bar["close"]), int(bar["volume"]),
                   int(bar["high"]), int(bar["low"]))
            if self._open_sent.get((book, interval_ns)) != key:
                self._open_sent[(book, interval_ns)] = key
                self.publish(name, kline_payload(self.units[book], bar, i, now_ms, ns))

    def _depth(self) -> None:
        now_ms = time.time_ns() // 1_000_000
        for b in sorted(self._dirty):
            u = self.units[b]
            name = f"{u.spec.symbol.lower()}@depth"
            if not self.wants(name):
                continue
            prices, qtys = self.engine.top_levels(b, DEPTH_LEVELS)
            key = (prices.tobytes(), qtys.tobytes())
            if self._depth_sent.get(b) != key:
                self._depth_sent[b] = key
                self.publish(name, depth_payload(u, prices, qtys, now_ms, self._t))
        self._dirty.clear()

    def _nbbo(self) -> None:
        """``<sym>@nbbo`` of each venue group whose books changed: the consolidated touch
        (the venue holding the most lots at each best price) and every venue's touch."""
        for first, books in self.venue_groups.items():
            if not self._dirty & set(books):
                continue
            u = self.units[first]
            name = f"{u.spec.symbol.lower()}@nbbo"
            if not self.wants(name):
                continue
            touches = []
            for b in books:
                prices, qtys = self.engine.top_levels(b, 1)
                touches.append((b, int(prices[0, 0]), int(qtys[0, 0]), int(prices[1, 0]),
                                int(qtys[1, 0])))
            if self._nbbo_sent.get(first) == tuple(touches):
                continue
            self._nbbo_sent[first] = tuple(touches)
            self.publish(name, nbbo_payload(self.units, first, touches, self._t))

    def mids(self) -> dict[int, float]:
        """Each book's mid in ticks (NaN without both sides), from the engine's book."""
        out = {}
        for b in self.units:
            prices, qtys = self.engine.top_levels(b, 1)
            ok = qtys[0, 0] > 0 and qtys[1, 0] > 0 and prices[1, 0] > prices[0, 0]
            out[b] = (prices[0, 0] + prices[1, 0]) / 2 if ok else math.nan
        return out

    def _agents(self) -> None:
        if self.agents is None or not self.wants("agents"):
            return
        rows = self.agents()
        if rows:
            self.publish("agents", {"e": "agents", "E": time.time_ns() // 1_000_000,
                                    "ns": self._t, "rows": rows})

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n * TICK_S - loop.time()))
            try:
                self.tick()
                self._nbbo()
                self._depth()
                if n % AGENTS_EVERY == 0:
                    self._agents()
            except Exception:              # a publishing bug never stops the source
                log.exception("analytics timer failed")

    # ---- WebSocket ------------------------------------------------------------------------

    @property
    def routes(self) -> list[BaseRoute]:
        return [WebSocketRoute("/ws", self.endpoint),
                WebSocketRoute("/ws/{streams:path}", self.endpoint),
                WebSocketRoute("/stream", self.endpoint)]

    def check(self, name: object) -> str:
        """``name`` if it is a stream of this hub; else _Error saying why."""
        if not isinstance(name, str):
            raise _Error(2, "Invalid request: stream names must be strings")
        if name == "agents":
            return name
        symbol, _, kind = name.partition("@")
        if len(name) > 64 or not kind:
            raise _Error(2, f"Invalid request: unknown stream {name[:64]!r}")
        if symbol not in self.by_lower:
            raise _Error(2, f"Invalid request: unknown symbol {symbol[:32]!r} in stream "
                         f"{name[:64]!r}")
        if kind == "nbbo" and self.by_lower[symbol].book in self.venue_groups:
            return name
        if kind not in self.kinds:
            raise _Error(2, f"Invalid request: unknown stream {name[:64]!r} (streams: "
                         f"{', '.join(self.kinds)}, agents)")
        return name

    def subscribe(self, conn: Connection, names: list[str]) -> None:
        for name in names:
            conn.streams[name] = None
            self.subs.setdefault(name, {})[conn] = None

    def unsubscribe(self, conn: Connection, names: list[str]) -> None:
        for name in names:
            conn.streams.pop(name, None)
            holders = self.subs.get(name)
            if holders is not None:
                holders.pop(conn, None)
                if not holders:
                    del self.subs[name]

    async def endpoint(self, ws: WebSocket) -> None:
        path = ws.scope.get("path", "")
        combined = path.startswith("/stream")
        text = ws.query_params.get("streams", "") if combined else \
            ws.path_params.get("streams", "")
        names = [s for s in text.split("/") if s and not s.isdigit()][:MAX_STREAMS]
        await ws.accept()
        conn = Connection(ws, combined)
        self.connections.add(conn)
        for name in names:
            try:
                self.subscribe(conn, [self.check(name)])
            except _Error as exc:
                conn.reply({"error": {"code": exc.code, "msg": exc.msg}, "id": None})
        await run_connection(conn, self._receive(conn), self._closed)

    def _closed(self, conn: Connection) -> None:
        self.unsubscribe(conn, list(conn.streams))
        self.connections.discard(conn)

    async def _receive(self, conn: Connection) -> None:
        while True:
            message = await conn.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                try:
                    text = (message.get("bytes") or b"").decode("utf-8")
                except UnicodeDecodeError:
                    text = "\x00"
            self.handle(conn, text)

    def handle(self, conn: Connection, text: str) -> None:
        """Answer one client message: ``{"result": ..., "id"}`` or ``{"error": ...}``; the
        connection stays open either way."""
        rid = None
        try:
            if len(text) > MAX_MESSAGE:
                raise _Error(2, f"Invalid request: message longer than {MAX_MESSAGE} bytes")
            try:
                req = json.loads(text)
            except (ValueError, RecursionError):
                req = None
            if not isinstance(req, dict):
                raise _Error(3, "Invalid JSON: expected a JSON object")
            rid = req.get("id")
            if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool)
                                    and 0 <= rid < 2**64)
                    or (isinstance(rid, str) and len(rid) <= 64)):
                rid = None
                raise _Error(2, "Invalid request: request ID must be an unsigned integer or "
                             "a string of at most 64 characters")
            if set(req) - {"method", "params", "id"}:
                raise _Error(0, "Unknown property")
            conn.reply({"result": self._request(conn, req.get("method"),
                                                req.get("params", [])), "id": rid})
        except _Error as exc:
            conn.reply({"error": {"code": exc.code, "msg": exc.msg}, "id": rid})

    def _request(self, conn: Connection, method: object, params: object) -> Any:
        if not isinstance(params, list):
            raise _Error(1, "Invalid value type: expected an array of strings")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if len(params) > MAX_PARAMS:
                raise _Error(2, "Invalid request: too many parameters")
            names = [self.check(name) for name in params]
            if method == "UNSUBSCRIBE":
                self.unsubscribe(conn, names)
                return None
            if len(conn.streams.keys() | set(names)) > MAX_STREAMS:
                raise _Error(2, f"Invalid request: at most {MAX_STREAMS} streams a "
                             "connection")
            self.subscribe(conn, names)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            return list(conn.streams)
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not params or params[0] != "combined":
                raise _Error(2, "Invalid request: unknown property (only 'combined')")
            if method == "GET_PROPERTY":
                return conn.combined
            if len(params) != 2 or not isinstance(params[1], bool):
                raise _Error(1, "Invalid value type: expected Boolean")
            conn.combined = params[1]
            return None
        raise _Error(2, f"Invalid request: unknown method {str(method)[:32]!r}, expected one "
                     "of SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, "
                     "GET_PROPERTY")

    # ---- REST -----------------------------------------------------------------------------

    def spec_of(self, p: dict[str, str]) -> SymbolSpec:
        name = p.get("symbol")
        if not name:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                           "or malformed.")
        spec = self.by_lower.get(name.lower()) if name.isupper() else None
        if spec is None:
            raise ApiError(-1121, "Invalid symbol.")
        return spec

    @staticmethod
    def limit_of(p: dict[str, str], default: int, high: int) -> int:
        text = p.get("limit", str(default))
        if not (text.isascii() and text.isdigit() and len(text) <= 6
                and 1 <= int(text) <= high):
            raise ApiError(-1100, f"Illegal characters found in parameter 'limit'; legal "
                           f"range is 1 to {high}.")
        return int(text)

    @staticmethod
    def _time_of(p: dict[str, str], name: str) -> int | None:
        text = p.get(name)
        if text is None:
            return None
        if not (text.isascii() and text.isdigit() and len(text) <= 18):
            raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal "
                           "range is '^[0-9]{1,18}$'.")
        return int(text)

    def _bars(self, spec: SymbolSpec, interval: str) -> np.ndarray:
        """Closed bars kept, and the bar in progress."""
        ns = self.intervals[interval]
        bars = self.engine.history(spec.book, ns)
        bar = self.engine.open_bar(spec.book, ns)
        if bar is not None and (not len(bars) or bar["t_open"] > bars["t_open"][-1]):
            self._bar[0] = bar
            bars = np.concatenate([bars, self._bar])
        return bars

    async def klines(self, p: dict[str, str]) -> list:
        spec = self.spec_of(p)
        interval = p.get("interval")
        if interval not in self.intervals:
            raise ApiError(-1120, f"Invalid interval (this server serves "
                           f"{', '.join(self.intervals)}).")
        start, end = self._time_of(p, "startTime"), self._time_of(p, "endTime")
        limit = self.limit_of(p, 500, 1000)
        bars = self._bars(spec, interval)
        t = bars["t_open"] // 1_000_000
        keep = np.ones(len(bars), dtype=bool)
        if start is not None:
            keep &= t + self.intervals[interval] // 1_000_000 > start
        if end is not None:
            keep &= t <= end
        bars = bars[keep]
        bars = bars[:limit] if start is not None else bars[-limit:]
        u = self.units[spec.book]
        return [kline_row(u, bar) for bar in bars]

    async def history(self, p: dict[str, str]) -> list:
        """``stream``: ``analytics`` (samples), ``kline_<i>`` or ``indicators_<i>``."""
        spec = self.spec_of(p)
        stream = p.get("stream", "analytics")
        limit = self.limit_of(p, 500, HISTORY_LIMIT)
        u = self.units[spec.book]
        now_ms = time.time_ns() // 1_000_000
        if stream == "analytics":
            rows = self.engine.sample_history(spec.book)[-limit:]
            return [sample_payload(u, row, now_ms) for row in rows]
        kind, _, interval = stream.partition("_")
        if kind in ("kline", "indicators") and interval in self.intervals:
            if kind == "kline":
                bars = self._bars(spec, interval)[-limit:]
                return [kline_payload(u, bar, interval, now_ms, int(bar["t_open"]))
                        for bar in bars]
            bars = self.engine.history(spec.book, self.intervals[interval])[-limit:]
            return [indicators_payload(u, bar, interval, now_ms, int(bar["t_open"]))
                    for bar in bars]
        names = ["analytics", *(f"{k}_{i}" for k in ("kline", "indicators")
                                for i in self.intervals)]
        raise ApiError(-1100, f"Illegal value for parameter 'stream': {stream[:40]!r} "
                       f"(one of {', '.join(names)}).")

    async def symbols(self, p: dict[str, str]) -> list:
        return [{"symbol": s.symbol, "book": s.book, "baseAsset": s.base,
                 "quoteAsset": s.quote, "tickSize": s.price_str(1), "stepSize": s.qty_str(1),
                 "intervals": list(self.intervals), "streams": [
                     f"{s.symbol.lower()}@{k}" for k in self.kinds]} for s in self.specs]

    async def info(self, p: dict[str, str]) -> dict:
        if self.exchange_info is None:
            raise ApiError(-1000, "This source has no exchange information.", 404)
        out = self.exchange_info()
        if inspect.isawaitable(out):
            out = await out
        return {**out, "serverTime": time.time_ns() // 1_000_000}

    async def ping(self, p: dict[str, str]) -> dict:
        return {}

    async def server_time(self, p: dict[str, str]) -> dict:
        return {"serverTime": time.time_ns() // 1_000_000}


# ---- the ASGI app ------------------------------------------------------------------------------

MAX_QUERY = 1 << 12


def _json(data: Any, status: int = 200) -> Response:
    return Response(_dumps(data), status_code=status, media_type="application/json")


def _route(handler: Callable[[dict[str, str]], Awaitable[Any]]
           ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            query = request.url.query
            if len(query) > MAX_QUERY:
                raise ApiError(-1100, f"Query string longer than {MAX_QUERY} bytes.")
            params: dict[str, str] = {}
            for key, value in request.query_params.multi_items():
                if key in params:
                    raise ApiError(-1101, f"Duplicate parameter '{key[:32]}'.")
                params[key] = value
            return _json(await handler(params))
        except ApiError as exc:
            return _json({"code": exc.code, "msg": exc.msg}, exc.status)
        except Exception:                          # a bug: logged, never a 500 to probe
            log.exception("request %s failed", request.url.path)
            return _json({"code": -1000, "msg": "An unknown error occurred while processing "
                          "the request."}, 400)
    return endpoint


async def _not_found(request: Request, exc: Exception) -> Response:
    return _json({"code": -1000, "msg": f"No such endpoint: {request.method} "
                  f"{request.url.path[:100]}"}, 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _json({"code": -1000, "msg": f"Method {request.method} not allowed here."}, 405)


def dashboard_routes() -> list[BaseRoute]:
    """The dashboard's page and files (rltrader.analytics.dashboard), when installed."""
    try:
        from rltrader.analytics.dashboard import dashboard_routes as routes
    except ImportError:
        log.warning("no dashboard: rltrader.analytics.dashboard or bokeh is missing")
        return []
    return routes()


def app(hub: Hub, *, source: Callable[[], Awaitable[None]] | None = None,
        dashboard: bool = True,
        on_shutdown: Sequence[Callable[[], None]] = ()) -> Starlette:
    """The analytics server's ASGI app over ``hub``. ``source``: a coroutine function run
    as the app's lifespan task (a simulated market, a replay, a connection to a served
    exchange); its failure stops the server. ``on_shutdown`` runs when it stops."""
    routes: list[BaseRoute] = [
        Route("/api/v3/ping", _route(hub.ping)),
        Route("/api/v3/time", _route(hub.server_time)),
        Route("/api/v3/exchangeInfo", _route(hub.info)),
        Route("/api/v3/klines", _route(hub.klines)),
        Route("/analytics/history", _route(hub.history)),
        Route("/analytics/symbols", _route(hub.symbols)),
        *hub.routes,
        *(dashboard_routes() if dashboard else []),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):  # type: ignore[no-untyped-def]
        await hub.start()
        task = None
        if source is not None:
            task = asyncio.get_running_loop().create_task(source())
            task.add_done_callback(_stop_if_failed)
        try:
            yield
        finally:
            try:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await hub.stop()
            finally:
                for close in on_shutdown:
                    close()

    application = Starlette(routes=routes, lifespan=lifespan,
                            exception_handlers={404: _not_found, 405: _not_allowed})
    application.state.hub = hub
    return application


def _stop_if_failed(task: asyncio.Task) -> None:
    """The source died (the upstream exchange went away, a bug): log it and stop the
    server (SIGTERM to ourselves), rather than serve features that no longer move."""
    import os
    import signal

    if task.cancelled() or task.exception() is None:
        return
    log.error("the analytics source stopped: %r; shutting the server down", task.exception())
    os.kill(os.getpid(), signal.SIGTERM)
