"""Binary order entry over a WebSocket (``/orders``): many orders per frame, one sequencer
batch per frame, for remote agents and load.

Session. The client's first message is text: ``{"apiKey": KEY, "timestamp": MS,
"signature": HEX}`` with ``signature = HMAC-SHA256(secret, KEY + str(MS))`` and ``MS``
within 5 s of the server's clock. The server answers ``{"result": "ok", "account": NAME}``;
anything else is answered ``{"error": ...}`` and the connection closed (code 1008).

Frames. After that, each binary message is a batch of :data:`ORDER_IN` records
(little-endian, 40 bytes each, at most :data:`MAX_ORDERS` per frame):

============  ====  =========================================================
field         type  meaning
============  ====  =========================================================
``tag``       u64   the client's, echoed in the ack
``op``        u8    1 limit order, 2 market order, 3 cancel
``side``      i8    +1 buy, -1 sell
``tif``       u8    0 GTC, 1 IOC, 2 FOK, 3 post-only (``LIMIT_MAKER``)
``symbol``    u16   the symbol's index in ``exchangeInfo`` (0, 1, ...)
``qty``       i64   lots
``price``     i64   ticks (limit orders)
``order_id``  u64   the order to cancel (op 3)
============  ====  =========================================================

The frame's orders enter the sequencer together (one batch, one core call) in record
order, with exactly the checks and effects of the REST ``POST``/``DELETE /api/v3/order``
(they are the same requests, journaled alike). The answer is one binary message of
:data:`ORDER_ACK` records (40 bytes each), one per record in order: ``tag``, the exchange's
``order_id``, ``executed`` lots, ``quote`` (cash units: ticks x lots), ``code`` (0, or the
Binance error code that refused it), and ``status`` (:data:`STATUS_CODES`). A frame that is
not a whole number of records, or holds more than :data:`MAX_ORDERS`, is answered with a
text error and the connection stays open.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from rltrader.exchange.engine import Exchange, Order, Request
from rltrader.exchange.symbols import ApiError

ORDER_IN = np.dtype([("tag", "<u8"), ("op", "u1"), ("side", "i1"), ("tif", "u1"),
                     ("pad", "u1"), ("symbol", "<u2"), ("pad2", "<u2"), ("qty", "<i8"),
                     ("price", "<i8"), ("order_id", "<u8")])
ORDER_ACK = np.dtype([("tag", "<u8"), ("order_id", "<u8"), ("executed", "<i8"),
                      ("quote", "<i8"), ("code", "<i2"), ("status", "u1"), ("pad", "u1"),
                      ("pad2", "<u4")])
STATUS_CODES = {"NEW": 1, "PARTIALLY_FILLED": 2, "FILLED": 3, "CANCELED": 4, "EXPIRED": 5,
                "EXPIRED_IN_MATCH": 5, "REJECTED": 6}
MAX_ORDERS = 4096
_TIF = {0: ("LIMIT", "GTC"), 1: ("LIMIT", "IOC"), 2: ("LIMIT", "FOK"), 3: ("LIMIT_MAKER", "")}


def _requests(ex: Exchange, account: Any, records: np.ndarray) -> list[Request | ApiError]:
    """Each record as the REST request it stands for (or the error that refuses it)."""
    specs = sorted(ex.symbols.values(), key=lambda s: s.book)
    out: list[Request | ApiError] = []
    for r in records.tolist():
        _tag, op, side, tif, _, symbol, _, qty, price, order_id = r
        if symbol >= len(specs):
            out.append(ApiError(-1121, "Invalid symbol."))
            continue
        spec = specs[symbol]
        if op == 3:
            out.append(Request("cancel", account, {"symbol": spec.symbol,
                                                   "orderId": str(order_id)}))
            continue
        if op not in (1, 2) or side not in (1, -1) or tif not in _TIF or qty <= 0:
            out.append(ApiError(-1100, "Illegal values in an order record."))
            continue
        params = {"symbol": spec.symbol, "side": "BUY" if side > 0 else "SELL",
                  "quantity": spec.qty_str(qty), "newOrderRespType": "RESULT"}
        if op == 2:
            params["type"] = "MARKET"
        else:
            kind, tif_name = _TIF[tif]
            params["type"] = kind
            if tif_name:
                params["timeInForce"] = tif_name
            if price <= 0:
                out.append(ApiError(-1013, "Filter failure: PRICE_FILTER"))
                continue
            params["price"] = spec.price_str(price)
        out.append(Request("new", account, params))
    return out


async def _handshake(ex: Exchange, ws: WebSocket) -> Any:
    try:
        hello = json.loads(await ws.receive_text())
        key, stamp, signature = hello["apiKey"], int(hello["timestamp"]), hello["signature"]
    except (KeyError, TypeError, ValueError):
        await ws.send_text(json.dumps({"error": "first message: {apiKey, timestamp, "
                                                "signature}"}))
        await ws.close(1008)
        return None
    account = ex.by_key.get(key) if isinstance(key, str) else None
    if (account is None or not isinstance(signature, str)
            or abs(time.time_ns() // 1_000_000 - stamp) > 5000
            or not account.signed_by(f"{key}{stamp}", signature)):
        await ws.send_text(json.dumps({"error": "authentication failed"}))
        await ws.close(1008)
        return None
    await ws.send_text(json.dumps({"result": "ok", "account": account.name}))
    return account


async def _answer(ex: Exchange, account: Any, frame: bytes) -> bytes | str:
    if len(frame) % ORDER_IN.itemsize or len(frame) // ORDER_IN.itemsize > MAX_ORDERS:
        return json.dumps({"error": f"a frame is up to {MAX_ORDERS} records of "
                                    f"{ORDER_IN.itemsize} bytes"})
    records = np.frombuffer(frame, dtype=ORDER_IN)
    items = _requests(ex, account, records)
    results = iter(await ex.submit_all([item for item in items
                                        if isinstance(item, Request)]))
    acks = np.zeros(records.shape[0], dtype=ORDER_ACK)
    acks["tag"] = records["tag"]
    for k, item in enumerate(items):
        result = item if isinstance(item, ApiError) else next(results)
        if isinstance(result, ApiError):
            acks["code"][k] = result.code
        elif isinstance(result, Order):
            acks["order_id"][k] = result.order_id
            acks["executed"][k] = result.executed
            acks["quote"][k] = result.quote
            acks["status"][k] = STATUS_CODES[result.status]
        else:                                   # a bug, not the client's: say so, go on
            acks["code"][k] = -1000
    return acks.tobytes()


def route(ex: Exchange) -> WebSocketRoute:
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        account = await _handshake(ex, ws)
        if account is None:
            return
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                frame = message.get("bytes")
                if frame is None:
                    await ws.send_text(json.dumps({"error": "send binary order frames"}))
                    continue
                answer = await _answer(ex, account, frame)
                if isinstance(answer, str):
                    await ws.send_text(answer)
                else:
                    await ws.send_bytes(answer)
        except WebSocketDisconnect:
            return

    return WebSocketRoute("/orders", endpoint)
