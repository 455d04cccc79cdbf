"""A Binance-spot-compatible REST gateway (``/api/v3``) over an :class:`Exchange`.

Unmodified clients work: ``ccxt.binance`` with its ``urls['api']['public']`` and
``['private']`` pointed at ``http://HOST:PORT/api/v3`` (docs/exchange.md). The gateway
parses and authenticates; the sequencer decides. Errors are Binance's: HTTP 4xx with
``{"code", "msg"}`` (so ccxt raises InvalidOrder, OrderNotFound, InsufficientFunds,
AuthenticationError, BadRequest, RateLimitExceeded ...); no request makes it answer 500.

Signed endpoints (``X-MBX-APIKEY`` and an HMAC-SHA256 ``signature`` of the query string
plus the body) check ``timestamp`` against ``recvWindow`` (default 5,000 ms, at most
60,000; 1,000 ms ahead of the server at most), and count requests per key: more than
``orders_per_10s`` new orders in ten seconds, or ``weight_per_minute`` request weight in a
minute, is HTTP 429 (``-1015``, ``-1003``) until the window passes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from rltrader.core.constants import BUY, SELL
from rltrader.exchange.accounts import Account
from rltrader.exchange.engine import Exchange, Order, Request
from rltrader.exchange.symbols import ApiError, SymbolSpec

log = logging.getLogger("rltrader.exchange")

MAX_BODY = 1 << 16          # bytes of a request body
MAX_QUERY = 1 << 13         # bytes of a query string
MAX_PARAMS = 32
#: Levels REST depth serves: the depth stream's (streams.DEPTH_LEVELS), so that a snapshot
#: plus the diffs is the whole book a client can see.
DEPTH_LEVELS = 1000
_SIGNATURE = re.compile(r"(^|&)signature=([^&]*)")
_KLINE_MS = {"1m": 60_000}


def _uint(text: str) -> bool:
    """A plain unsigned integer of at most 18 ASCII digits (``str.isdigit`` also takes
    '²' and other digits ``int`` refuses)."""
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


def _address(request: HttpRequest) -> str:
    return "addr:" + (request.client.host if request.client else "")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def _error(exc: ApiError) -> Response:
    return _json({"code": exc.code, "msg": exc.msg}, exc.status)


class RateLimiter:
    """Sliding windows per key: request weight per minute and new orders per 10 s (a
    deque of (time, amount) and its running sum per key: O(1) per request, amortised)."""

    def __init__(self, weight_per_minute: int, orders_per_10s: int,
                 clock: Callable[[], float] = time.monotonic,
                 binary_orders_per_10s: int = 5_000_000) -> None:
        self.weight_per_minute, self.orders_per_10s = weight_per_minute, orders_per_10s
        self.binary_orders_per_10s = binary_orders_per_10s
        self.clock = clock
        self._weights: dict[str, list] = {}
        self._orders: dict[str, list] = {}
        self._binary: dict[str, list] = {}

    def _take(self, windows: dict[str, list], key: str, span: float, cap: int,
              amount: int) -> bool:
        now = self.clock()
        window = windows.get(key)
        if window is None:
            window = windows[key] = [deque(), 0]
        entries = window[0]
        while entries and entries[0][0] <= now - span:
            window[1] -= entries.popleft()[1]
        if window[1] + amount > cap:
            return False
        entries.append((now, amount))
        window[1] += amount
        return True

    def request(self, key: str, weight: int) -> None:
        if not self._take(self._weights, key, 60.0, self.weight_per_minute, weight):
            raise ApiError(-1003, f"Too many requests; current limit is "
                           f"{self.weight_per_minute} request weight per 1 MINUTE.", 429)

    def binary(self, key: str, n: int) -> None:
        """A binary frame of ``n`` records (their own window: the REST order limit would
        stop the fast path at 10 orders a second)."""
        if not self._take(self._binary, key, 10.0, self.binary_orders_per_10s, n):
            raise ApiError(-1015, f"Too many new orders; current limit is "
                           f"{self.binary_orders_per_10s} binary records per TEN_SECONDS.",
                           429)

    def order(self, key: str) -> None:
        if not self._take(self._orders, key, 10.0, self.orders_per_10s, 1):
            raise ApiError(-1015, f"Too many new orders; current limit is "
                           f"{self.orders_per_10s} orders per TEN_SECONDS.", 429)


class BinanceGateway:
    """The routes of :func:`app` and the rendering of the exchange's state."""

    def __init__(self, exchange: Exchange, *, weight_per_minute: int = 6000,
                 orders_per_10s: int = 100, binary_orders_per_10s: int = 5_000_000) -> None:
        self.ex = exchange
        self.limits = RateLimiter(weight_per_minute, orders_per_10s,
                                  binary_orders_per_10s=binary_orders_per_10s)

    # ---- request plumbing ---------------------------------------------------------------

    async def _params(self, request: HttpRequest) -> tuple[dict[str, str], str]:
        """The request's parameters (query and form body) and the signed payload."""
        query = request.scope.get("query_string", b"").decode("latin-1")
        if len(query) > MAX_QUERY:
            raise ApiError(-1100, f"Query string longer than {MAX_QUERY} bytes.", 414)
        declared = request.headers.get("content-length", "0")
        if not _uint(declared) or int(declared) > MAX_BODY:
            raise ApiError(-1100, f"Request body larger than {MAX_BODY} bytes.", 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise ApiError(-1100, f"Request body larger than {MAX_BODY} bytes.", 413)
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise ApiError(-1100, "Illegal characters found in the request body.") from None
        payload = query + text if query and text else query or text   # what is signed
        try:                                        # each part parsed on its own
            pairs = [pair for part in (query, text) if part for pair in parse_qsl(
                part, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_PARAMS)]
        except ValueError:
            raise ApiError(-1100, "Malformed parameters (form encoding expected, at most "
                           f"{MAX_PARAMS}).") from None
        if len(pairs) > MAX_PARAMS:
            raise ApiError(-1100, f"Malformed parameters (at most {MAX_PARAMS}).")
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                raise ApiError(-1101, "Duplicate values for a parameter detected.")
            if not key.isascii() or not value.isprintable():
                raise ApiError(-1100, f"Illegal characters found in parameter '{key[:32]}'.")
            params[key] = value
        return params, payload

    def _authenticate(self, request: HttpRequest, params: dict[str, str],
                      payload: str) -> Account:
        key = request.headers.get("x-mbx-apikey")
        if not key:
            raise ApiError(-2014, "API-key format invalid.", 401)
        account = self.ex.by_key.get(key)
        if account is None:
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signature = params.pop("signature", None)
        if not signature:
            raise ApiError(-1102, "Mandatory parameter 'signature' was not sent, was "
                           "empty/null, or malformed.")
        signed = _SIGNATURE.sub("", payload).lstrip("&")
        if not account.signed_by(signed, signature):
            raise ApiError(-1022, "Signature for this request is not valid.")
        stamp = params.pop("timestamp", "")
        if not _uint(stamp) or len(stamp) > 15:
            raise ApiError(-1102, "Mandatory parameter 'timestamp' was not sent, was "
                           "empty/null, or malformed.")
        window = params.pop("recvWindow", "5000")
        if not _uint(window) or len(window) > 6 or not 0 < int(window) <= 60_000:
            raise ApiError(-1131, "recvWindow must be less than 60000")
        now = time.time_ns() // 1_000_000
        if int(stamp) > now + 1000:
            raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the "
                           "server's time.")
        if now - int(stamp) > int(window):
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return account

    def route(self, handler: Callable[..., Awaitable[Any]], *, signed: bool = False,
              weight: int = 1) -> Callable[[HttpRequest], Awaitable[Response]]:
        async def endpoint(request: HttpRequest) -> Response:
            try:
                params, payload = await self._params(request)
                if signed:
                    account = self._authenticate(request, params, payload)
                    self.limits.request(account.api_key, weight)
                    return _json(await handler(params, account, request.method))
                self.limits.request(_address(request), weight)
                return _json(await handler(params))
            except ApiError as exc:
                if signed and exc.code in (-1022, -2014, -2015):    # failed authentication
                    try:                            # costs the address: no free guessing
                        self.limits.request(_address(request), 10)
                    except ApiError as limited:
                        return _error(limited)
                return _error(exc)
            except Exception:                       # a bug: logged, never a 500 to probe
                log.exception("request %s %s failed", request.method, request.url.path)
                return _error(ApiError(-1000, "An unknown error occurred while processing "
                                       "the request."))
        return endpoint

    # ---- public -------------------------------------------------------------------------

    async def ping(self, p: dict[str, str]) -> dict:
        return {}

    async def server_time(self, p: dict[str, str]) -> dict:
        return {"serverTime": time.time_ns() // 1_000_000}

    async def exchange_info(self, p: dict[str, str]) -> dict:
        # a venue group's symbols share base and quote: clients that key markets by
        # "BASE/QUOTE" (ccxt) keep the last one listed, so the first venue comes last
        symbols = sorted(self.ex.symbols.values(), key=lambda s: s.symbol in self.ex.sor)
        if "symbol" in p:
            symbols = [self.ex.symbol(p)]
        return {
            "timezone": "UTC", "serverTime": time.time_ns() // 1_000_000,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.limits.weight_per_minute},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": self.limits.orders_per_10s}],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(s) for s in symbols],
            "sors": [{"baseAsset": venues[0].base, "symbols": [v.symbol for v in venues]}
                     for venues in self.ex.sor.values()]}

    def _symbol_info(self, s: SymbolSpec) -> dict:
        price_digits, qty_digits = s.precision(s.tick_size), s.precision(s.lot_size)
        return {
            "symbol": s.symbol, "status": "TRADING", "baseAsset": s.base,
            "baseAssetPrecision": qty_digits, "quoteAsset": s.quote,
            "quotePrecision": price_digits, "quoteAssetPrecision": price_digits,
            "baseCommissionPrecision": qty_digits, "quoteCommissionPrecision": price_digits,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": False, "allowTrailingStop": False,
            "cancelReplaceAllowed": False, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": s.price_str(1),
                 "maxPrice": s.price_str(2**40), "tickSize": s.price_str(1)},
                {"filterType": "LOT_SIZE", "minQty": s.qty_str(1),
                 "maxQty": s.qty_str(2**40), "stepSize": s.qty_str(1)},
                {"filterType": "NOTIONAL", "minNotional": format(s.min_notional, "f"),
                 "applyMinToMarket": False, "maxNotional": "9000000000000",
                 "applyMaxToMarket": False, "avgPriceMins": 0}],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"]}

    def _limit(self, p: dict[str, str], default: int, high: int) -> int:
        text = p.get("limit", str(default))
        if not _uint(text) or len(text) > 6 or not 1 <= int(text) <= high:
            raise ApiError(-1100, f"Illegal characters found in parameter 'limit'; legal "
                           f"range is 1 to {high}.")
        return int(text)

    async def depth(self, p: dict[str, str]) -> dict:
        spec = self.ex.symbol(p)
        bids, asks = self.ex.depth(spec, self._limit(p, 100, DEPTH_LEVELS))
        return {"lastUpdateId": self.ex.update_id,
                "bids": [[spec.price_str(a), spec.qty_str(b)] for a, b in bids],
                "asks": [[spec.price_str(a), spec.qty_str(b)] for a, b in asks]}

    async def trades(self, p: dict[str, str]) -> list:
        spec = self.ex.symbol(p)
        kept = list(self.ex.trades[spec.symbol])[-self._limit(p, 500, 1000):]
        return [{"id": t.trade_id, "price": spec.price_str(t.price), "qty": spec.qty_str(t.qty),
                 "quoteQty": spec.quote_str(t.price * t.qty), "time": t.time_ms,
                 "isBuyerMaker": t.buyer_maker, "isBestMatch": True} for t in kept]

    async def agg_trades(self, p: dict[str, str]) -> list:
        spec = self.ex.symbol(p)
        kept = list(self.ex.trades[spec.symbol])
        if _uint(p.get("fromId", "")):
            kept = [t for t in kept if t.trade_id >= int(p["fromId"])]
        for name, keep in (("startTime", lambda t, x: t.time_ms >= x),
                           ("endTime", lambda t, x: t.time_ms <= x)):
            if _uint(p.get(name, "")):
                kept = [t for t in kept if keep(t, int(p[name]))]
        kept = kept[-self._limit(p, 500, 1000):]
        return [{"a": t.trade_id, "p": spec.price_str(t.price), "q": spec.qty_str(t.qty),
                 "f": t.trade_id, "l": t.trade_id, "T": t.time_ms, "m": t.buyer_maker,
                 "M": True} for t in kept]

    async def klines(self, p: dict[str, str]) -> list:
        spec = self.ex.symbol(p)
        if p.get("interval") not in _KLINE_MS:
            raise ApiError(-1120, "Invalid interval (this exchange serves 1m).")
        bars = sorted(self.ex.bars[spec.symbol].items())
        if _uint(p.get("startTime", "")):
            bars = [b for b in bars if b[0] >= int(p["startTime"]) // 60_000 * 60_000]
        if _uint(p.get("endTime", "")):
            bars = [b for b in bars if b[0] <= int(p["endTime"])]
        limit = self._limit(p, 500, 1000)
        bars = bars[:limit] if "startTime" in p else bars[-limit:]
        return [[t, spec.price_str(o), spec.price_str(h), spec.price_str(lo),
                 spec.price_str(c), spec.qty_str(v), t + 59_999, spec.quote_str(q), n, "0",
                 "0", "0"] for t, (o, h, lo, c, v, q, n) in bars]

    async def ticker_24hr(self, p: dict[str, str]) -> dict | list:
        if "symbol" not in p:
            return [self._ticker(s) for s in self.ex.symbols.values()]
        return self._ticker(self.ex.symbol(p))

    def _ticker(self, spec: SymbolSpec) -> dict:
        now = time.time_ns() // 1_000_000
        bars = [b for t, b in sorted(self.ex.bars[spec.symbol].items())
                if t >= now - 86_400_000]
        bids, asks = self.ex.depth(spec, 1)
        last = bars[-1][3] if bars else 0
        first = bars[0][0] if bars else 0
        volume, quote = sum(b[4] for b in bars), sum(b[5] for b in bars)
        return {
            "symbol": spec.symbol, "priceChange": spec.price_str(last - first)
            if last >= first else "-" + spec.price_str(first - last),
            "priceChangePercent": f"{(last - first) / first * 100:.3f}" if first else "0",
            "weightedAvgPrice": spec.price_str(quote // volume) if volume else "0",
            "prevClosePrice": spec.price_str(first), "lastPrice": spec.price_str(last),
            "lastQty": "0", "bidPrice": spec.price_str(bids[0][0]) if bids else "0",
            "bidQty": spec.qty_str(bids[0][1]) if bids else "0",
            "askPrice": spec.price_str(asks[0][0]) if asks else "0",
            "askQty": spec.qty_str(asks[0][1]) if asks else "0",
            "openPrice": spec.price_str(first),
            "highPrice": spec.price_str(max(b[1] for b in bars)) if bars else "0",
            "lowPrice": spec.price_str(min(b[2] for b in bars)) if bars else "0",
            "volume": spec.qty_str(volume), "quoteVolume": spec.quote_str(quote),
            "openTime": now - 86_400_000, "closeTime": now, "firstId": -1, "lastId": -1,
            "count": sum(b[6] for b in bars)}

    # ---- private ------------------------------------------------------------------------

    def _order_view(self, o: Order, full: bool = False) -> dict:
        s = o.spec
        out = {"symbol": s.symbol, "orderId": o.order_id, "orderListId": -1,
               "clientOrderId": o.client_id, "price": s.price_str(o.price),
               "origQty": s.qty_str(o.qty), "executedQty": s.qty_str(o.executed),
               "cummulativeQuoteQty": s.quote_str(o.quote), "status": o.status,
               "timeInForce": o.tif, "type": o.type, "side": "BUY" if o.side > 0 else "SELL",
               "stopPrice": "0", "icebergQty": "0", "time": o.time_ms,
               "updateTime": o.update_ms, "isWorking": o.is_open,
               "workingTime": o.time_ms, "origQuoteOrderQty": "0",
               "selfTradePreventionMode": "NONE"}
        if full:
            out["fills"] = [{"price": s.price_str(f.price), "qty": s.qty_str(f.qty),
                             "commission": self._signed_quote(s, f.commission),
                             "commissionAsset": s.quote, "tradeId": f.trade_id}
                            for f in o.fills]
        return out

    @staticmethod
    def _signed_quote(s: SymbolSpec, units: int) -> str:
        return s.quote_str(units) if units >= 0 else "-" + s.quote_str(-units)

    async def order(self, p: dict[str, str], account: Account, method: str) -> dict:
        if method == "GET":
            return self._order_view(self.ex.find_order(account, p))
        if method == "DELETE":
            order = await self.ex.submit(Request("cancel", account, p))
            view = self._order_view(order)
            view["origClientOrderId"] = view["clientOrderId"]
            view["transactTime"] = order.update_ms
            return view
        self.limits.order(account.api_key)
        kind = p.get("newOrderRespType", "FULL").upper()
        order = await self.ex.submit(Request("new", account, p))
        head = {"symbol": order.spec.symbol, "orderId": order.order_id, "orderListId": -1,
                "clientOrderId": order.client_id, "transactTime": order.time_ms}
        if kind == "ACK":
            return head
        view = self._order_view(order, full=kind == "FULL")
        for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
            view.pop(key)
        return {**view, **head}

    async def sor_order(self, p: dict[str, str], account: Account, method: str) -> dict:
        """``POST /api/v3/sor/order``: Binance's smart-order-routing order, across the
        venues of ``symbol`` (the exchange's ``venues``). The exchange's router splits it
        into one child order per venue (IOC at the worst price it takes there; a GTC
        limit's remainder rests on the venue paying the best maker fee); the children
        run in one batch. The answer is Binance's (``workingFloor: "SOR"``, ``usedSor``,
        fills with ``matchType`` and ``allocId``) plus ``venues``: each child order."""
        spec = self.ex.symbol(p)
        venues = self.ex.sor.get(spec.symbol)
        if venues is None or self.ex.router is None:
            raise ApiError(-1013, f"Smart order routing is not available for {spec.symbol}.")
        side = {"BUY": BUY, "SELL": SELL}.get(p.get("side", "").upper())
        if side is None:
            raise ApiError(-1102 if "side" not in p else -1117, "Invalid side.")
        kind = p.get("type", "").upper()
        if kind not in ("LIMIT", "MARKET"):
            raise ApiError(-1102 if "type" not in p else -1116, "Invalid orderType.")
        if "quantity" not in p:
            raise ApiError(-1102, "Mandatory parameter 'quantity' was not sent, was "
                           "empty/null, or malformed.")
        qty = spec.lots(p["quantity"])
        limit, tif = None, "IOC"
        if kind == "LIMIT":
            if "price" not in p or "timeInForce" not in p:
                raise ApiError(-1102, "Mandatory parameters 'price' and 'timeInForce' are "
                               "needed for a LIMIT order.")
            limit, tif = spec.ticks(p["price"]), p["timeInForce"].upper()
            if tif not in ("GTC", "IOC"):
                raise ApiError(-1115, "Invalid timeInForce.")
        self.limits.order(account.api_key)
        children = self.ex.router(venues, side, qty, limit, tif)
        text = "BUY" if side == BUY else "SELL"
        requests = [Request("new", account, {
            "symbol": child_spec.symbol, "side": text, "type": "LIMIT",
            "timeInForce": child_tif, "quantity": child_spec.qty_str(lots),
            "price": child_spec.price_str(price), "newOrderRespType": "FULL"})
            for child_spec, lots, price, child_tif in children]
        results = await self.ex.submit_all(requests) if requests else []
        orders = [r for r in results if isinstance(r, Order)]
        if not orders:
            if results and isinstance(results[0], ApiError):
                raise results[0]
            raise ApiError(-2010, "Order would immediately match and take: no liquidity "
                           "within the price on any venue.")
        executed = sum(o.executed for o in orders)
        quote = sum(o.quote for o in orders)
        resting = any(o.is_open for o in orders)
        status = ("FILLED" if executed == qty else "PARTIALLY_FILLED" if executed
                  else "NEW" if resting else "EXPIRED")
        fills = [{"matchType": "ONE_PARTY_TRADE_REPORT", "price": o.spec.price_str(f.price),
                  "qty": o.spec.qty_str(f.qty),
                  "commission": self._signed_quote(o.spec, f.commission),
                  "commissionAsset": o.spec.quote, "tradeId": -1, "allocId": f.trade_id,
                  "venue": o.spec.symbol}
                 for o in orders for f in o.fills]
        first = orders[0]
        return {"symbol": spec.symbol, "orderId": first.order_id, "orderListId": -1,
                "clientOrderId": first.client_id, "transactTime": first.time_ms,
                "price": spec.price_str(limit) if limit is not None else "0",
                "origQty": spec.qty_str(qty), "executedQty": spec.qty_str(executed),
                "cummulativeQuoteQty": spec.quote_str(quote), "status": status,
                "timeInForce": tif, "type": kind, "side": text, "workingTime": first.time_ms,
                "fills": fills, "workingFloor": "SOR", "selfTradePreventionMode": "NONE",
                "usedSor": True,
                "venues": [self._order_view(o) for o in orders],
                "errors": [{"code": r.code, "msg": r.msg} for r in results
                           if isinstance(r, ApiError)]}

    async def open_orders(self, p: dict[str, str], account: Account, method: str) -> list:
        spec = self.ex.symbol(p) if "symbol" in p else None
        mine = [o for o in self.ex.open_orders[account.owner].values()
                if spec is None or o.spec is spec]
        if method == "DELETE":
            if spec is None:
                raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was "
                               "empty/null, or malformed.")
            out = []
            for o in mine:                 # an order that finished meanwhile is skipped
                try:
                    done = await self.ex.submit(Request("cancel", account, {
                        "symbol": spec.symbol, "orderId": str(o.order_id)}))
                except ApiError as exc:
                    if exc.code != -2011:
                        raise
                    continue
                out.append(self._order_view(done))
            return out
        return [self._order_view(o) for o in sorted(mine, key=lambda o: o.order_id)]

    async def all_orders(self, p: dict[str, str], account: Account, method: str) -> list:
        spec = self.ex.symbol(p)
        ids = sorted([*self.ex.closed[account.owner], *self.ex.open_orders[account.owner]])
        mine = [o for o in (self.ex.orders.get(i) for i in ids)
                if o is not None and o.spec is spec]
        return [self._order_view(o) for o in mine[-self._limit(p, 500, 1000):]]

    async def account(self, p: dict[str, str], account: Account, method: str) -> dict:
        balances = []
        for asset in self.ex.assets():
            unit_spec = next(s for s in self.ex.symbols.values()
                             if asset in (s.base, s.quote))
            show = unit_spec.qty_str if asset == unit_spec.base else unit_spec.quote_str
            locked = self.ex.locked[account.owner].get(asset, 0)
            balances.append({"asset": asset, "free": show(self.ex.free(account, asset)),
                             "locked": show(locked)})
        return {"makerCommission": self.ex.maker_fee_ppm // 100,
                "takerCommission": self.ex.taker_fee_ppm // 100, "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": f"{self.ex.maker_fee_ppm / 1e6:.8f}",
                                    "taker": f"{self.ex.taker_fee_ppm / 1e6:.8f}",
                                    "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": time.time_ns() // 1_000_000, "accountType": "SPOT",
                "balances": balances, "permissions": ["SPOT"], "uid": account.owner}

    async def my_trades(self, p: dict[str, str], account: Account, method: str) -> list:
        spec = self.ex.symbol(p)
        rows = [(o, f, t) for o, f, t in self.ex.my_trades[account.owner] if o.spec is spec]
        rows = rows[-self._limit(p, 500, 1000):]
        return [{"symbol": spec.symbol, "id": f.trade_id, "orderId": o.order_id,
                 "orderListId": -1, "price": spec.price_str(f.price),
                 "qty": spec.qty_str(f.qty), "quoteQty": spec.quote_str(f.price * f.qty),
                 "commission": self._signed_quote(spec, f.commission),
                 "commissionAsset": spec.quote, "time": t, "isBuyer": o.side > 0,
                 "isMaker": f.maker, "isBestMatch": True} for o, f, t in rows]


async def _not_found(request: HttpRequest, exc: Exception) -> Response:
    return _json({"code": -1000, "msg": f"No such endpoint: {request.method} "
                  f"{request.url.path[:100]}"}, 404)


async def _not_allowed(request: HttpRequest, exc: Exception) -> Response:
    return _json({"code": -1000, "msg": f"Method {request.method} not allowed here."}, 405)


def _stop_if_failed(task: Any) -> None:
    """The sequencer died (a journal write failed, a bug): log it and stop the server
    (SIGTERM to ourselves: uvicorn shuts down), rather than serve a market that no longer
    moves. A supervisor restarts it; the journal brings back what was acknowledged."""
    import os
    import signal

    if task.cancelled() or task.exception() is None:
        return
    log.error("the sequencer stopped: %r; shutting the server down", task.exception())
    os.kill(os.getpid(), signal.SIGTERM)


def app(exchange: Exchange, *, on_shutdown: Sequence[Callable[[], None]] = (),
        **limits: int) -> Starlette:
    """The gateway's ASGI app; the exchange's sequencer runs as its lifespan task, and
    ``on_shutdown`` (closing the journal, the ITCH sinks) runs when it stops: uvicorn
    re-raises a SIGTERM or SIGINT once it has shut down, so code after ``uvicorn.run``
    would not run."""
    import asyncio
    import contextlib

    from rltrader.exchange import order_entry
    from rltrader.exchange.streams import StreamHub

    gw = BinanceGateway(exchange, **limits)
    hub = StreamHub(exchange)
    r = gw.route
    routes = [
        Route("/api/v3/ping", r(gw.ping)),
        Route("/api/v3/time", r(gw.server_time)),
        Route("/api/v3/exchangeInfo", r(gw.exchange_info, weight=20)),
        Route("/api/v3/depth", r(gw.depth, weight=5)),
        Route("/api/v3/trades", r(gw.trades, weight=25)),
        Route("/api/v3/aggTrades", r(gw.agg_trades, weight=4)),
        Route("/api/v3/klines", r(gw.klines, weight=2)),
        Route("/api/v3/ticker/24hr", r(gw.ticker_24hr, weight=2)),
        Route("/api/v3/order", r(gw.order, signed=True), methods=["GET", "POST", "DELETE"]),
        Route("/api/v3/sor/order", r(gw.sor_order, signed=True), methods=["POST"]),
        Route("/api/v3/openOrders", r(gw.open_orders, signed=True, weight=6),
              methods=["GET", "DELETE"]),
        Route("/api/v3/allOrders", r(gw.all_orders, signed=True, weight=20)),
        Route("/api/v3/account", r(gw.account, signed=True, weight=20)),
        Route("/api/v3/myTrades", r(gw.my_trades, signed=True, weight=20)),
        *hub.routes,        # WebSocketRoute /ws, /ws/{streams}, /stream (streams.py)
        order_entry.route(exchange, gw.limits),     # WebSocketRoute /orders: binary
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(exchange.run())
        task.add_done_callback(_stop_if_failed)
        hub.start()
        try:
            yield
        finally:
            try:
                await hub.stop()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task                  # a dead sequencer was logged already
            finally:
                for close in on_shutdown:
                    close()

    application = Starlette(routes=routes, lifespan=lifespan,
                            exception_handlers={404: _not_found, 405: _not_allowed})
    application.state.gateway = gw
    application.state.streams = hub
    return application
