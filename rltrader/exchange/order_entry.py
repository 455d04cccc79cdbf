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

import base64
import json
import time
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from rltrader.exchange.engine import ORDER_ACK, ORDER_IN, STATUS_CODES, Exchange, Request
from rltrader.exchange.symbols import ApiError

__all__ = ["MAX_ORDERS", "ORDER_ACK", "ORDER_IN", "STATUS_CODES", "route"]

MAX_ORDERS = 4096


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


async def _answer(ex: Exchange, account: Any, frame: bytes,
                  limits: Any = None) -> bytes | str:
    if len(frame) % ORDER_IN.itemsize or len(frame) // ORDER_IN.itemsize > MAX_ORDERS:
        return json.dumps({"error": f"a frame is up to {MAX_ORDERS} records of "
                                    f"{ORDER_IN.itemsize} bytes"})
    if limits is not None:
        try:
            limits.binary(account.api_key, len(frame) // ORDER_IN.itemsize)
        except ApiError as exc:
            return json.dumps({"error": exc.msg, "code": exc.code})
    # one request for the frame: checked record by record by the sequencer, in one batch
    # (Exchange._frame), journaled as it came
    request = Request("frame", account, {"records": base64.b64encode(frame).decode()})
    try:
        result = await ex.submit(request)
    except ApiError as exc:
        return json.dumps({"error": exc.msg, "code": exc.code})
    return result.acks.tobytes()


def route(ex: Exchange, limits: Any = None) -> WebSocketRoute:
    """The ``/orders`` endpoint; ``limits`` (the gateway's ``RateLimiter``) caps each
    key's records per 10 s."""
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
                answer = await _answer(ex, account, frame, limits)
                if isinstance(answer, str):
                    await ws.send_text(answer)
                else:
                    await ws.send_bytes(answer)
        except WebSocketDisconnect:
            return

    return WebSocketRoute("/orders", endpoint)
