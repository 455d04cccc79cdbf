"""Binary order entry (``/orders``, issue 17 item 7): a frame of records is one sequencer
batch with the REST path's checks and effects; acks say what happened to each record."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import numpy as np
import pytest

websockets = pytest.importorskip("websockets")
pytest.importorskip("uvicorn")

from _exchange import running_server, signed  # noqa: E402

from rltrader.exchange.order_entry import ORDER_ACK, ORDER_IN, STATUS_CODES  # noqa: E402

QUIET = 'symbols = ["XYZ"]\ntick_size = 0.01\n'


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("orders")
    (tmp / "quiet.toml").write_text(QUIET)
    with running_server(tmp, "--config", str(tmp / "quiet.toml")) as url:
        yield url


def hello(key: str = "alice-key", secret: str = "alice-secret", skew_ms: int = 0) -> str:
    ms = int(time.time() * 1000) + skew_ms
    signature = hmac.new(secret.encode(), f"{key}{ms}".encode(), hashlib.sha256).hexdigest()
    return json.dumps({"apiKey": key, "timestamp": ms, "signature": signature})


def records(*rows: tuple) -> bytes:
    """``(tag, op, side, tif, symbol, qty, price, order_id)`` rows as ORDER_IN bytes."""
    out = np.zeros(len(rows), dtype=ORDER_IN)
    names = ("tag", "op", "side", "tif", "symbol", "qty", "price", "order_id")
    for k, row in enumerate(rows):
        for name, value in zip(names, row, strict=True):
            out[name][k] = value
    return out.tobytes()


async def session(url: str, *frames: bytes | str, greeting: str | None = None) -> list:
    answers = []
    async with websockets.connect(url.replace("http", "ws") + "/orders") as ws:
        await ws.send(greeting or hello())
        answers.append(json.loads(await ws.recv()))
        for frame in frames:
            await ws.send(frame)
            answers.append(await ws.recv())
    return answers


def test_a_frame_is_one_batch_with_the_rest_paths_checks(quiet) -> None:
    frame = records(
        (1, 1, 1, 0, 0, 5, 10_000, 0),         # buy 5 @ 100.00 GTC: rests
        (2, 1, -1, 0, 0, 3, 10_000, 0),        # sell 3 @ 100.00: fills against it (own
        (3, 1, -1, 3, 0, 1, 9_000, 0),         #   order: no self-trade prevention); post-
        (4, 2, 1, 0, 0, 2, 0, 0),              #   only that would cross; market buy: no asks
        (5, 1, 1, 0, 7, 1, 10_000, 0),         # unknown symbol
        (6, 9, 1, 0, 0, 1, 10_000, 0),         # unknown op
        (7, 1, 1, 0, 0, 10**9, 10_000, 0),     # far beyond the balance
        (8, 3, 0, 0, 0, 0, 0, 999_999),        # cancel of an unknown order
    )
    greeting, raw = asyncio.run(session(quiet, frame))
    assert greeting == {"result": "ok", "account": "alice"}
    acks = np.frombuffer(raw, dtype=ORDER_ACK)
    assert acks["tag"].tolist() == list(range(1, 9))
    assert acks["code"].tolist() == [0, 0, -2010, 0, -1121, -1100, -2010, -2013]
    assert acks["status"][:2].tolist() == [STATUS_CODES["PARTIALLY_FILLED"],
                                           STATUS_CODES["FILLED"]]
    assert acks["status"][3] == STATUS_CODES["EXPIRED"] and acks["executed"][3] == 0
    assert acks["executed"][:2].tolist() == [3, 3] and acks["quote"][1] == 30_000
    # what REST shows is what the acks said
    buy = acks["order_id"][0]
    rest = signed(quiet, "GET", "/api/v3/order", "alice", {"symbol": "XYZUSDT",
                                                           "orderId": int(buy)}).json()
    assert rest["status"] == "PARTIALLY_FILLED" and rest["executedQty"] == "3"
    cancel = records((9, 3, 0, 0, 0, 0, 0, int(buy)))
    _, raw = asyncio.run(session(quiet, cancel))
    ack = np.frombuffer(raw, dtype=ORDER_ACK)[0]
    assert (ack["code"], ack["status"], ack["order_id"]) == (0, STATUS_CODES["CANCELED"], buy)


def test_bad_sessions_and_frames(quiet) -> None:
    for greeting in (hello(secret="wrong-secret"), hello(skew_ms=-60_000),
                     hello(key="nobody"), "not json"):
        answers = asyncio.run(session(quiet, greeting=greeting))
        assert "error" in answers[0]
    answers = asyncio.run(session(quiet, b"\x00" * 39, "text", records(
        (1, 1, 1, 0, 0, 1, 100, 0))))
    assert "error" in json.loads(answers[1]) and "error" in json.loads(answers[2])
    ack = np.frombuffer(answers[3], dtype=ORDER_ACK)[0]
    assert ack["code"] == 0 and ack["status"] == STATUS_CODES["NEW"]   # still served
    signed(quiet, "DELETE", "/api/v3/openOrders", "alice", {"symbol": "XYZUSDT"})
