"""The WebSocket market streams (rltrader.exchange.streams) against a real ``rltrader
serve`` on a loopback port: unmodified ccxt.pro (order book synced against the REST
snapshot, trades, 1m klines) and a raw ``websockets`` client (requests, errors, combined
streams, Binance's local-book procedure, a 100-subscriber fan-out)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
websockets = pytest.importorskip("websockets")
httpx = pytest.importorskip("httpx")
ccxt_pro = pytest.importorskip("ccxt.pro")

SYMBOL = "XYZUSDT"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``rltrader serve resilient --speed 5`` on a free loopback port: its ``host:port``
    (request weight unlimited in practice: the tests poll REST depth from one address
    as fast as it answers, to land on the stream's update ids)."""
    from _exchange import running_server

    with running_server(tmp_path_factory.mktemp("ws"), "--speed", "5",
                        "--weight-per-minute", "10000000") as url:
        yield url.removeprefix("http://")


def _pro(host: str):  # type: ignore[no-untyped-def]
    """An unmodified ``ccxt.pro.binance`` pointed at the server."""
    ex = ccxt_pro.binance({"enableRateLimit": False, "options": {
        "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
        "fetchMargins": False}})
    ex.urls["api"]["ws"]["spot"] = f"ws://{host}/ws"
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = f"http://{host}/api/v3"
    return ex


def _run(coro, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _poll_depth(host: str, out: dict, stop: asyncio.Event) -> None:
    """REST depth snapshots as fast as they come: lastUpdateId -> (bids, asks)."""
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            r = await client.get(f"http://{host}/api/v3/depth",
                                 params={"symbol": SYMBOL, "limit": 1000})
            assert r.status_code == 200, r.text
            d = r.json()
            out[d["lastUpdateId"]] = (
                [[float(p), float(q)] for p, q in d["bids"]],
                [[float(p), float(q)] for p, q in d["asks"]])


# ---- ccxt.pro ---------------------------------------------------------------------------------


def test_ccxt_pro_order_book_matches_rest_at_equal_update_id(server: str) -> None:
    """ccxt.pro's synced book, whenever its nonce equals a REST snapshot's lastUpdateId,
    is that snapshot (both sides, every level): the book states at one update id are one."""
    async def main() -> tuple[dict, dict]:
        ex = _pro(server)
        seen: dict[int, tuple] = {}
        rest: dict[int, tuple] = {}
        stop = asyncio.Event()
        poller = asyncio.create_task(_poll_depth(server, rest, stop))
        try:
            end = time.monotonic() + 3.0
            while time.monotonic() < end:
                ob = await ex.watch_order_book("XYZ/USDT")
                seen[ob["nonce"]] = ([list(x) for x in ob["bids"]],
                                     [list(x) for x in ob["asks"]])
        finally:
            stop.set()
            await poller
            await ex.close()
        return seen, rest

    seen, rest = _run(main())
    assert len(seen) >= 5
    common = sorted(set(seen) & set(rest))
    assert common, "no REST snapshot landed on an update id the ccxt.pro book had"
    for n in common:
        assert seen[n] == rest[n], f"book differs at update id {n}"
    assert any(len(seen[n][0]) >= 10 and len(seen[n][1]) >= 10 for n in common)


def test_ccxt_pro_trades_are_rest_trades(server: str) -> None:
    async def main() -> list:
        ex = _pro(server)
        got: list = []
        try:
            end = time.monotonic() + 3.0
            while time.monotonic() < end or not got:
                got.extend(await ex.watch_trades("XYZ/USDT"))
        finally:
            await ex.close()
        return got

    got = _run(main())
    ids = [int(t["id"]) for t in got]
    assert ids == sorted(set(ids)), "trade ids must increase"
    rest = {t["id"]: t for t in httpx.get(
        f"http://{server}/api/v3/trades", params={"symbol": SYMBOL, "limit": 1000}).json()}
    for t in got:
        r = rest[int(t["id"])]
        assert (t["price"], t["amount"], t["timestamp"]) == (
            float(r["price"]), float(r["qty"]), r["time"])
        assert t["side"] == ("sell" if r["isBuyerMaker"] else "buy")
        assert t["symbol"] == "XYZ/USDT"


def test_ccxt_pro_ohlcv_agrees_with_rest_klines(server: str) -> None:
    async def main() -> list:
        ex = _pro(server)
        try:
            return [list(c) for c in await ex.watch_ohlcv("XYZ/USDT", "1m")]
        finally:
            await ex.close()

    bars = _run(main())
    t, o, h, lo, c, v = bars[-1]
    assert t % 60_000 == 0
    rest = {k[0]: k for k in httpx.get(f"http://{server}/api/v3/klines", params={
        "symbol": SYMBOL, "interval": "1m", "limit": 10}).json()}
    k = rest[t]                        # the same minute, read later: it can only have grown
    assert float(k[1]) == o
    assert float(k[2]) >= h and float(k[3]) <= lo and float(k[5]) >= v
    assert lo <= min(o, c) <= max(o, c) <= h


# ---- raw websockets ---------------------------------------------------------------------------


async def _answer(ws, rid):  # type: ignore[no-untyped-def]
    """The next message with ``id`` == ``rid`` (stream data in between skipped)."""
    while True:
        m = json.loads(await ws.recv())
        if isinstance(m, dict) and "id" in m and m["id"] == rid:
            return m


def test_raw_requests_and_errors_keep_the_connection(server: str) -> None:
    async def main() -> None:
        async with websockets.connect(f"ws://{server}/ws") as ws:
            async def ask(req: object) -> dict:
                await ws.send(req if isinstance(req, str) else json.dumps(req))
                return json.loads(await ws.recv())     # nothing is subscribed in between

            assert await ask({"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {
                "result": [], "id": 1}
            bad = await ask("{not json")
            assert bad["error"]["code"] == 3 and bad["id"] is None
            bad = await ask({"method": "SUBSCRIBE", "params": ["xyzusdt@nope"], "id": 2})
            assert bad["error"]["code"] == 2 and bad["id"] == 2
            bad = await ask({"method": "SUBSCRIBE", "params": ["abcusdt@trade"], "id": 3})
            assert bad["error"]["code"] == 2 and "symbol" in bad["error"]["msg"]
            bad = await ask({"method": "SUBSCRIBE", "params": ["XYZUSDT@trade"], "id": 4})
            assert bad["error"]["code"] == 2
            bad = await ask({"method": "FROB", "params": [], "id": 5})
            assert bad["error"]["code"] == 2 and bad["id"] == 5
            bad = await ask({"method": "SUBSCRIBE", "params": "xyzusdt@trade", "id": 6})
            assert bad["error"]["code"] == 1
            bad = await ask({"method": "LIST_SUBSCRIPTIONS", "id": 7, "x": 1})
            assert bad["error"]["code"] == 0
            bad = await ask({"method": "LIST_SUBSCRIPTIONS", "id": -1})
            assert bad["error"]["code"] == 2
            bad = await ask(json.dumps({"method": "SUBSCRIBE", "params": [
                f"xyzusdt@x{k}" for k in range(10_000)], "id": 8}))
            assert bad["error"]["code"] == 2 and "longer" in bad["error"]["msg"]
            bad = await ask({"method": "SUBSCRIBE", "params": ["xyzusdt@trade"] * 201,
                             "id": 9})
            assert bad["error"]["code"] == 2
            bad = await ask("[" * 60_000)
            assert "error" in bad
            assert await ask({"method": "LIST_SUBSCRIPTIONS", "id": 10}) == {
                "result": [], "id": 10}
            assert await ask({"method": "GET_PROPERTY", "params": ["combined"],
                              "id": 11}) == {"result": False, "id": 11}

            streams = ["xyzusdt@trade", "xyzusdt@depth@100ms", "xyzusdt@kline_1m",
                       "xyzusdt@bookTicker", "xyzusdt@depth", "xyzusdt@aggTrade"]
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 12}))
            assert await _answer(ws, 12) == {"result": None, "id": 12}
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 13}))
            assert (await _answer(ws, 13))["result"] == streams
            kinds: set[str] = set()
            while not {"trade", "depthUpdate", "aggTrade", "bookTicker"} <= kinds:
                m = json.loads(await ws.recv())
                kinds.add(m.get("e", "bookTicker" if "u" in m and "b" in m else "?"))
            await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": streams[1:],
                                      "id": 14}))
            assert await _answer(ws, 14) == {"result": None, "id": 14}
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 15}))
            assert (await _answer(ws, 15))["result"] == ["xyzusdt@trade"]
            await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["xyzusdt@trade"],
                                      "id": 16}))
            await _answer(ws, 16)
        assert httpx.get(f"http://{server}/api/v3/ping").status_code == 200

    _run(main())


def test_raw_combined_stream_and_path_streams(server: str) -> None:
    async def main() -> None:
        url = f"ws://{server}/stream?streams=xyzusdt@trade/xyzusdt@depth@100ms"
        async with websockets.connect(url) as ws:
            names = set()
            while names != {"xyzusdt@trade", "xyzusdt@depth@100ms"}:
                m = json.loads(await ws.recv())
                assert set(m) == {"stream", "data"}
                assert m["data"]["s"] == SYMBOL
                names.add(m["stream"])
        async with websockets.connect(f"ws://{server}/ws/xyzusdt@trade") as ws:
            m = json.loads(await ws.recv())
            assert m["e"] == "trade" and m["s"] == SYMBOL
            await ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True],
                                      "id": 1}))
            await _answer(ws, 1)
            while "stream" not in (m := json.loads(await ws.recv())):
                pass
            assert m["stream"] == "xyzusdt@trade" and m["data"]["e"] == "trade"

    _run(main())


def test_raw_diffs_on_a_rest_snapshot_rebuild_the_rest_book(server: str) -> None:
    """Binance's procedure (buffer the stream, REST snapshot, drop u <= lastUpdateId, first
    event U <= id + 1 <= u, then U = previous u + 1), checked against REST snapshots taken
    at the same update id."""
    async def main() -> tuple[dict, dict, int]:
        rest: dict[int, tuple] = {}
        books: dict[int, tuple] = {}
        async with websockets.connect(f"ws://{server}/ws") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE",
                                      "params": ["xyzusdt@depth@100ms"], "id": 1}))
            assert await _answer(ws, 1) == {"result": None, "id": 1}
            async with httpx.AsyncClient() as client:
                snap = (await client.get(f"http://{server}/api/v3/depth", params={
                    "symbol": SYMBOL, "limit": 1000})).json()
            last = snap["lastUpdateId"]
            side = [{float(p): float(q) for p, q in snap[k]} for k in ("bids", "asks")]
            stop = asyncio.Event()
            poller = asyncio.create_task(_poll_depth(server, rest, stop))
            applied, prev = 0, None
            end = time.monotonic() + 3.0
            try:
                while time.monotonic() < end:
                    ev = json.loads(await ws.recv())
                    assert ev["e"] == "depthUpdate" and ev["s"] == SYMBOL
                    if prev is not None:
                        assert ev["U"] == prev + 1
                    prev = ev["u"]
                    if ev["u"] <= last:
                        continue
                    if applied == 0:
                        assert ev["U"] <= last + 1 <= ev["u"]
                    for k, key in ((0, "b"), (1, "a")):
                        for p, q in ev[key]:
                            if float(q) == 0:
                                side[k].pop(float(p), None)
                            else:
                                side[k][float(p)] = float(q)
                    applied += 1
                    books[ev["u"]] = (
                        [[p, q] for p, q in sorted(side[0].items(), reverse=True)],
                        [[p, q] for p, q in sorted(side[1].items())])
            finally:
                stop.set()
                await poller
        return books, rest, applied

    books, rest, applied = _run(main())
    assert applied >= 5
    common = sorted(set(books) & set(rest))
    assert common
    for n in common:
        assert books[n] == rest[n], f"book differs at update id {n}"


def test_raw_fan_out_to_100_depth_subscribers(server: str) -> None:
    async def one() -> list[dict]:
        async with websockets.connect(f"ws://{server}/ws") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE",
                                      "params": ["xyzusdt@depth@100ms"], "id": 1}))
            assert await _answer(ws, 1) == {"result": None, "id": 1}
            out: list[dict] = []
            while len(out) < 3:
                out.append(json.loads(await ws.recv()))
            return out

    async def main() -> list[list[dict]]:
        return await asyncio.gather(*(one() for _ in range(100)))

    got = _run(main())
    assert len(got) == 100
    for events in got:
        assert all(e["e"] == "depthUpdate" for e in events)
        assert events[1]["U"] == events[0]["u"] + 1 and events[2]["U"] == events[1]["u"] + 1
    assert httpx.get(f"http://{server}/api/v3/ping").status_code == 200


def test_slow_client_overflow_disconnects_only_it() -> None:
    """A client that does not read: its queue fills, it is closed with 1008; the hub's
    publishing never waits on it."""
    from rltrader.exchange import streams

    class FakeSocket:
        def __init__(self) -> None:
            self.sent: list[str] = []
            self.closed: tuple | None = None

        async def send_text(self, text: str) -> None:
            self.sent.append(text)

        async def close(self, code: int, reason: str = "") -> None:
            self.closed = (code, reason)

    async def main() -> None:
        slow, fast = FakeSocket(), FakeSocket()
        a, b = streams.Connection(slow, False), streams.Connection(fast, False)  # type: ignore[arg-type]
        drain = asyncio.create_task(b.drain())
        for k in range(streams.QUEUE_LIMIT + 1):
            a.offer(f"{k}", "")
            b.offer(f"{k}", "")
            if k % 100 == 0:
                await asyncio.sleep(0)
        assert a.overflowed and a.closed and not b.overflowed
        await asyncio.wait_for(a.drain(), 5)
        assert slow.closed is not None and slow.closed[0] == 1008 and not slow.sent
        while b.queue:
            await asyncio.sleep(0)
        drain.cancel()
        assert fast.sent[-1] == str(streams.QUEUE_LIMIT)

    _run(main())
