"""``rltrader analytics``'s live modes: a source of market events feeding a
:class:`~rltrader.analytics.publish.Hub`, served by uvicorn (docs/analytics.md).

``--connect http://HOST:PORT``
    A served exchange (``rltrader serve``, or anything speaking Binance spot's public API):
    its symbols from ``/api/v3/exchangeInfo``, its books from the ``<sym>@depth@100ms`` diffs
    on a REST ``/api/v3/depth`` snapshot (Binance's "how to manage a local order book", as
    ccxt.pro does: diffs ending at or before the snapshot's ``lastUpdateId`` dropped, the
    first one must span it, then each ``U`` is the previous ``u`` + 1, or the book is
    synced again) and its trades from ``<sym>@trade``, as ``MD_DTYPE`` records.
``--simulate PRESET``
    A simulated market in this process: each step the populations decide
    (``Flow.decide``) and the core runs their messages; the step's events go to the hub.
    ``--speed`` steps per step of wall time. Times are the market's, on today's date.
``--replay FORMAT PATH...``
    A recorded day (``lobster``, ``itch``, ``binance``, ``tardis``, ``coinbase``) replayed
    through the core at ``--speed`` times real time. LOBSTER and ITCH times (since
    midnight) are put on the date in the file's name (``AAPL_2012-06-21_...``) when it has
    one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.analytics.engine import MD_CLEAR, MD_DTYPE, MD_LEVEL, MD_TRADE
from rltrader.analytics.publish import Hub, agent_rows
from rltrader.core.messages import empty_events
from rltrader.exchange.symbols import SymbolSpec

log = logging.getLogger("rltrader.analytics")

#: How far behind the wall clock a remote feed's bars and samples close (its messages
#: arrive a little after their time).
REMOTE_LAG_NS = 250_000_000
#: Seconds between a replay's or a connection's steps.
STEP_S = 0.1
#: Reconnections to a served exchange before the server gives up.
RECONNECTS = 5
REPLAY_FORMATS = ("lobster", "itch", "binance", "tardis", "coinbase")
NS_PER_DAY = 86_400_000_000_000

Source = Callable[[], Awaitable[None]]


def symbol_info(spec: SymbolSpec) -> dict:
    """A symbol as Binance's ``exchangeInfo`` lists it (what ccxt reads from it)."""
    price_digits, qty_digits = spec.precision(spec.tick_size), spec.precision(spec.lot_size)
    return {
        "symbol": spec.symbol, "status": "TRADING", "baseAsset": spec.base,
        "baseAssetPrecision": qty_digits, "quoteAsset": spec.quote,
        "quotePrecision": price_digits, "quoteAssetPrecision": price_digits,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "icebergAllowed": False,
        "ocoAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": spec.price_str(1),
             "maxPrice": spec.price_str(2**40), "tickSize": spec.price_str(1)},
            {"filterType": "LOT_SIZE", "minQty": spec.qty_str(1),
             "maxQty": spec.qty_str(2**40), "stepSize": spec.qty_str(1)}],
        "permissions": [], "permissionSets": [["SPOT"]]}


def exchange_info(specs: Sequence[SymbolSpec]) -> Callable[[], dict]:
    info = {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [],
            "symbols": [symbol_info(s) for s in specs]}
    return lambda: info


def _decimal(text: object) -> Decimal:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0:
        raise ValueError(f"not a positive decimal: {str(text)[:40]!r}")
    return value


def specs_from_info(info: Any) -> list[SymbolSpec]:
    """The symbols of an ``exchangeInfo`` answer (book ``k`` is the ``k``-th)."""
    if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
        raise ValueError("exchangeInfo has no symbols list")
    specs = []
    for k, s in enumerate(info["symbols"]):
        filters = {f.get("filterType"): f for f in s.get("filters", []) if isinstance(f, dict)}
        try:
            tick = _decimal(filters["PRICE_FILTER"]["tickSize"]).normalize()
            lot = _decimal(filters["LOT_SIZE"]["stepSize"]).normalize()
            specs.append(SymbolSpec(str(s["symbol"]), str(s["baseAsset"]),
                                    str(s["quoteAsset"]), tick, lot, k))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"exchangeInfo symbol {k}: {exc!r}") from None
    if not specs:
        raise ValueError("exchangeInfo lists no symbol")
    return specs


# ---- --connect: a served exchange's public streams ----------------------------------------------


class Remote:
    """A served exchange's books and trades, as records for ``hub`` (``connect`` builds
    it).

    ``url`` is the exchange's base (``http://127.0.0.1:8080``); ``info`` its
    ``exchangeInfo``."""

    def __init__(self, url: str, info: dict, specs: list[SymbolSpec]) -> None:
        self.url = url.rstrip("/")
        self.info = info
        self.specs = specs
        self.hub: Hub | None = None
        self.last_u: dict[int, int | None] = {}
        self.pending: dict[int, list[dict]] = {}
        self.by_symbol = {s.symbol: s for s in specs}
        self.resyncs = 0

    def exchange_info(self) -> dict:
        return self.info

    def clock(self) -> int:
        return time.time_ns() - REMOTE_LAG_NS

    @staticmethod
    def _lots(spec: SymbolSpec, price: object, qty: object) -> tuple[int, int]:
        p, q = Decimal(str(price)) / spec.tick_size, Decimal(str(qty)) / spec.lot_size
        if p != p.to_integral_value() or q != q.to_integral_value() or p <= 0 or q < 0:
            raise ValueError(f"level {price!r} x {qty!r} is off the grid")
        return int(p), int(q)

    def _levels(self, spec: SymbolSpec, bids: list, asks: list, ts: int) -> np.ndarray:
        rows = [(side, *self._lots(spec, p, q)) for side, levels in ((1, bids), (-1, asks))
                for p, q in levels]
        out = np.zeros(len(rows), dtype=MD_DTYPE)
        if rows:
            arr = np.array(rows, dtype=np.int64)
            out["side"], out["price"], out["qty"] = arr[:, 0], arr[:, 1], arr[:, 2]
        out["timestamp"], out["book"], out["kind"] = ts, spec.book, MD_LEVEL
        return out

    async def _snapshot(self, client: Any, spec: SymbolSpec) -> None:
        """Sync one book: its REST snapshot replaces the book, then the diffs that
        arrived meanwhile and follow it apply."""
        assert self.hub is not None
        r = await client.get(f"{self.url}/api/v3/depth",
                             params={"symbol": spec.symbol, "limit": 1000})
        r.raise_for_status()
        snap = r.json()
        clear = np.zeros(1, dtype=MD_DTYPE)
        clear["book"], clear["kind"], clear["timestamp"] = spec.book, MD_CLEAR, self.clock()
        levels = self._levels(spec, snap["bids"], snap["asks"], self.clock())
        self.hub.feed_records(np.concatenate([clear, levels]))
        self.last_u[spec.book] = int(snap["lastUpdateId"])
        first = True
        for diff in self.pending.pop(spec.book, []):
            if diff["u"] <= self.last_u[spec.book]:
                continue
            if first and diff["U"] > self.last_u[spec.book] + 1:
                break                               # the snapshot is older than the diffs
            first = False
            self._diff(spec, diff)

    def _diff(self, spec: SymbolSpec, diff: dict) -> bool:
        """Apply one depthUpdate in sequence; False (and the book to sync again) on a gap."""
        assert self.hub is not None
        last = self.last_u.get(spec.book)
        if last is None:
            self.pending.setdefault(spec.book, []).append(diff)
            return True
        if diff["u"] <= last:
            return True
        if diff["U"] > last + 1:
            log.warning("%s: diffs %d..%d skip past %d: syncing again", spec.symbol,
                        diff["U"], diff["u"], last)
            self.last_u[spec.book] = None
            self.pending[spec.book] = [diff]
            self.resyncs += 1
            return False
        self.hub.feed_records(self._levels(spec, diff["b"], diff["a"],
                                           int(diff["E"]) * 1_000_000))
        self.last_u[spec.book] = int(diff["u"])
        return True

    def _trade(self, spec: SymbolSpec, trade: dict) -> None:
        assert self.hub is not None
        price, qty = self._lots(spec, trade["p"], trade["q"])
        rec = np.zeros(1, dtype=MD_DTYPE)
        rec["timestamp"], rec["price"], rec["qty"] = int(trade["T"]) * 1_000_000, price, qty
        rec["book"], rec["kind"], rec["side"] = spec.book, MD_TRADE, -1 if trade["m"] else 1
        self.hub.feed_records(rec)

    async def run(self) -> None:
        """Follow the exchange; when the connection drops, connect again (a short session
        counts as a failure: after :data:`RECONNECTS` in a row the error is raised)."""
        import httpx
        import websockets

        failures = 0
        while True:
            began = time.monotonic()
            try:
                await self._session()
                error: BaseException = ConnectionError("the exchange closed the stream")
            except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError,
                    websockets.WebSocketException) as exc:
                error = exc
            failures = 1 if time.monotonic() - began > 30 else failures + 1
            if failures > RECONNECTS:
                raise ConnectionError(f"{self.url}: {error!r}")
            log.warning("%s: %r; connecting again in %d s", self.url, error, failures)
            await asyncio.sleep(failures)

    async def _session(self) -> None:
        import httpx
        import websockets

        lowers = [s.symbol.lower() for s in self.specs]
        streams = "/".join(f"{s}@depth@100ms/{s}@trade" for s in lowers)
        ws_url = "ws" + self.url.removeprefix("http") + f"/stream?streams={streams}"
        self.last_u = dict.fromkeys((s.book for s in self.specs), None)
        self.pending = {}
        async with httpx.AsyncClient(timeout=10) as client, \
                websockets.connect(ws_url, max_size=1 << 24, open_timeout=10) as ws:
            syncs: dict[int, asyncio.Task] = {}
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    data = message.get("data", {}) if isinstance(message, dict) else {}
                    spec = self.by_symbol.get(data.get("s", ""))
                    if spec is None:
                        continue
                    if data.get("e") == "trade":
                        self._trade(spec, data)
                    elif data.get("e") == "depthUpdate":
                        self._diff(spec, data)
                        task = syncs.get(spec.book)
                        if self.last_u[spec.book] is None and (task is None or task.done()):
                            if task is not None and task.exception() is not None:
                                raise task.exception()  # type: ignore[misc]
                            syncs[spec.book] = asyncio.create_task(
                                self._snapshot(client, spec))
            finally:
                for task in syncs.values():
                    task.cancel()


def connect(url: str, **hub_args: Any) -> tuple[Hub, Source]:
    """A hub over the exchange served at ``url`` (its symbols read now)."""
    import httpx

    if not re.fullmatch(r"https?://[^/\s?#]+/?", url):
        raise ValueError(f"--connect takes http://HOST:PORT, got {url!r}")
    try:
        r = httpx.get(f"{url.rstrip('/')}/api/v3/exchangeInfo", timeout=10)
        r.raise_for_status()
        info = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ValueError(f"--connect {url}: no exchangeInfo ({exc})") from None
    specs = specs_from_info(info)
    remote = Remote(url, info, specs)
    hub = Hub(specs, clock=remote.clock, exchange_info=remote.exchange_info, **hub_args)
    remote.hub = hub
    return hub, remote.run


# ---- --simulate: a market in this process -------------------------------------------------------


def _midnight_ns() -> int:
    today = dt.datetime.now(dt.UTC).date()
    return int(dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC).timestamp()
               ) * 1_000_000_000


def _process(books: Any, msgs: np.ndarray, buffer: list[np.ndarray]) -> np.ndarray:
    """Run ``msgs`` through the core; its events (the buffer grows as needed)."""
    out, done = [], 0
    while done < msgs.shape[0]:
        try:
            consumed, written = books.process(msgs[done:], buffer[0])
        except ValueError as exc:
            if "cannot hold" not in str(exc):
                raise
            buffer[0] = empty_events(2 * buffer[0].shape[0])
            continue
        out.append(buffer[0][:written].copy())
        done += consumed
    return np.concatenate(out) if out else empty_events(0)


def simulate(preset_name: str, *, speed: float = 1.0, seed: int = 0, config_path: str | None = None,
             quote: str = "USDT", **hub_args: Any) -> tuple[Hub, Source]:
    """A hub over a simulated market (a preset or a TOML config) stepped in this process."""
    from rltrader.sim.config import load_config, preset
    from rltrader.sim.market import Market

    config = (load_config(config_path) if config_path else preset(preset_name)).replace(copies=1)
    market = Market(config, seed=seed)
    tick = Decimal(str(config.tick_size))
    specs = [SymbolSpec(f"{name}{quote}", name, quote, tick, Decimal(1), book)
             for book, name in enumerate(config.symbols)]
    day = _midnight_ns()
    groups = [(name, "background", lo, hi) for name, (lo, hi) in market.owners.items()
              if hi > lo]
    hub = Hub(specs, clock=lambda: day + market.time_ns, exchange_info=exchange_info(specs),
              **hub_args)
    hub.agents = lambda: agent_rows(market.books.accounts, groups, hub.mids(), specs)
    hub.seed(market.books)
    step_s = config.dt_ns / 1e9 / speed

    async def run() -> None:
        loop = asyncio.get_running_loop()
        buffer = [empty_events(1 << 14)]
        start, n = loop.time(), 0
        while True:
            n += 1
            msgs = market.flow.decide()
            msgs["timestamp"] += day
            hub.feed_events(_process(market.books, msgs, buffer))
            delay = start + n * step_s - loop.time()
            if delay < -50 * step_s:                     # far behind: do not catch up
                start, n = loop.time(), 0
            await asyncio.sleep(max(0.0, delay))

    return hub, run


# ---- --replay: a recorded day ------------------------------------------------------------------


def _day_of(paths: Sequence[str]) -> int:
    """Midnight (UTC, ns) of the date in the first file's name, or 0."""
    match = re.search(r"(\d{4})-(\d{2})-(\d{2})", Path(paths[0]).name) if paths else None
    if match is None:
        return 0
    try:
        day = dt.datetime(*map(int, match.groups()), tzinfo=dt.UTC)
    except ValueError:
        return 0
    return int(day.timestamp()) * 1_000_000_000


_QUOTES = ("USDT", "USDC", "BUSD", "USD", "EUR", "BTC")


def _spec_of(symbol: str, tick: str, lot: str) -> SymbolSpec:
    """A recording's symbol as the server shows it (``BTC-USD`` is ``BTCUSD``; a stock's
    quote is USD)."""
    name = symbol.replace("-", "").replace("/", "").upper() or "BOOK"
    base, quote = name, "USD"
    for q in _QUOTES:
        if name.endswith(q) and name != q:
            base, quote = name[: -len(q)], q
            break
    return SymbolSpec(name, base, quote, Decimal(tick), Decimal(lot), 0)


def replay(fmt: str, paths: Sequence[str], *, speed: float = 1.0, symbol: str | None = None,
           **hub_args: Any) -> tuple[Hub, Source]:
    """A hub over a recording replayed through the core at ``speed`` times its own time:
    the offline mode's reader (:func:`rltrader.analytics.offline.load_source`: its book
    messages, and the trades that bypass the book fed as trade records in their place),
    so that live and offline features are the same."""
    from rltrader import Books
    from rltrader.analytics.offline import load_source

    if fmt not in REPLAY_FORMATS:
        raise ValueError(f"--replay formats: {', '.join(REPLAY_FORMATS)} (got {fmt!r})")
    options: dict[str, Any] = {}
    if symbol is not None:
        options = {"book": symbol} if fmt == "itch" else {"symbol": symbol}
    if fmt == "coinbase":
        if len(paths) < 2:
            raise ValueError("--replay coinbase SNAPSHOT FEED...")
        options["snapshot"], paths = paths[0], paths[1:]
    src = load_source(list(paths), fmt, **options)
    messages, trades = src.messages, src.trades.copy()
    if not messages.shape[0]:
        raise ValueError(f"--replay {fmt}: no book messages in {', '.join(paths)}")
    stamps = np.maximum.accumulate(messages["timestamp"])
    at = np.searchsorted(stamps, trades["timestamp"], side="right")   # after these messages
    spec = _spec_of(src.symbol, src.tick_size, src.lot_size)
    day = _day_of(paths) if int(stamps[-1]) < NS_PER_DAY else 0
    trades["timestamp"] += day
    books = Books(1, capacity=1 << 16, **({"window": src.window} if src.window else {}))
    now = [int(stamps[0])]
    hub = Hub([spec], clock=lambda: day + now[0], exchange_info=exchange_info([spec]),
              **hub_args)
    step_ns = int(STEP_S * 1e9 * speed)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        buffer = [empty_events(1 << 14)]
        pos = taken = n = 0
        start = loop.time()
        while pos < messages.shape[0] or taken < trades.shape[0]:
            n += 1
            now[0] += step_ns
            end = int(np.searchsorted(stamps, now[0], side="right"))
            last = int(np.searchsorted(at, end, side="right"))
            while pos < end or taken < last:
                stop = min(end, int(at[taken])) if taken < last else end
                if stop > pos:
                    events = _process(books, messages[pos:stop], buffer)
                    events["timestamp"] += day
                    hub.feed_events(events)
                    pos = stop
                group = int(np.searchsorted(at, pos, side="right"))
                if taken < min(group, last):
                    hub.feed_records(trades[taken:min(group, last)])
                    taken = min(group, last)
            await asyncio.sleep(max(0.0, start + n * STEP_S - loop.time()))
        log.info("the replay ended; serving what it made")

    return hub, run


def exchange_hub(exchange: Any, *, intervals: Sequence[str] = ("1s", "1m"),
                  sample: str = "1s", zmq: str | None = None) -> Any:
    """``--analytics``: a :class:`~rltrader.analytics.publish.Hub` over ``exchange``'s
    books, fed by every batch's events (an exchange listener), with ``exchangeInfo`` from
    the gateway and an ``agents`` stream: each account and each background population,
    position, PnL marked to mid and share of volume."""
    from rltrader.exchange.binance import BinanceGateway

    gateway = BinanceGateway(exchange)
    specs = list(exchange.symbols.values())
    groups = [(a.name, "accounts", a.owner, a.owner + 1) for a in exchange.accounts]
    if exchange.market is not None:
        groups += [(name, "background", lo, hi)
                   for name, (lo, hi) in exchange.market.owners.items() if hi > lo]
    hub = Hub(specs, intervals=intervals, sample=sample, clock=exchange.clock,
              exchange_info=lambda: gateway.exchange_info({}), zmq=zmq)
    hub.agents = lambda: agent_rows(exchange.books.accounts, groups, hub.mids(), specs)
    hub.venue_groups = {venues[0].book: [v.book for v in venues]
                        for venues in exchange.sor.values()}
    hub.seed(exchange.books)
    exchange.listeners.append(hub.on_batch)
    return hub


def serve(hub: Hub, source: Source | None, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve ``hub`` (its source as the app's lifespan task) until interrupted."""
    import uvicorn

    from rltrader.analytics.publish import app

    hub.open_zmq()                  # a bad --zmq fails here, before uvicorn starts
    uvicorn.run(app(hub, source=source), host=host, port=port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=3, ws_per_message_deflate=False)
