"""Live publication of analytics (rltrader.analytics.publish) against a real ``rltrader
analytics --simulate`` on loopback: the Binance WebSocket protocol and its errors, kline,
indicator, analytics, depth, trade and agents payloads, ZeroMQ PUB, REST klines and
history; and the hub in-process on an exchange's batches (its book is the exchange's)."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("talib")
websockets = pytest.importorskip("websockets")
httpx = pytest.importorskip("httpx")
zmq = pytest.importorskip("zmq")

from _analytics import answer, first, run, running_analytics  # noqa: E402
from _exchange import free_port  # noqa: E402

SYMBOL = "XYZUSDT"
LOWER = "xyzusdt"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A simulated market at 5x real time, bars of 1s and 1m, ZeroMQ on: (url, zmq)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with running_analytics(tmp_path_factory.mktemp("analytics"), "--simulate", "resilient",
                           "--speed", "5", "--zmq", endpoint) as url:
        yield url, endpoint


def _ws(url: str, path: str = "/ws") -> str:
    return "ws://" + url.removeprefix("http://") + path


async def _subscribe(ws, *names: str, rid: int = 1) -> None:  # type: ignore[no-untyped-def]
    await ws.send(json.dumps({"method": "SUBSCRIBE", "params": list(names), "id": rid}))
    assert await answer(ws, rid) == {"result": None, "id": rid}


# ---- payloads ------------------------------------------------------------------------------


def test_closed_klines_are_binance_payloads_and_equal_rest_klines(server) -> None:
    url, _ = server

    async def main() -> list[dict]:
        async with websockets.connect(_ws(url)) as ws:
            await _subscribe(ws, f"{LOWER}@kline_1s")
            return [await first(ws, "kline", lambda d: d["k"]["x"]) for _ in range(3)]

    closed = run(main())
    rest = {row[0]: row for row in httpx.get(f"{url}/api/v3/klines", params={
        "symbol": SYMBOL, "interval": "1s", "limit": 1000}).json()}
    for event in closed:
        k = event["k"]
        assert event["s"] == k["s"] == SYMBOL and k["i"] == "1s"
        assert k["T"] == k["t"] + 999 and k["t"] % 1000 == 0
        assert set(k) >= set("tTsifLochlvnxqVQB")
        o, h, lo, c = (Decimal(k[x]) for x in "ohlc")
        assert lo <= min(o, c) <= max(o, c) <= h
        assert 0 <= Decimal(k["V"]) <= Decimal(k["v"])
        row = rest[k["t"]]                           # the same closed bar over REST
        assert row[1:9] == [k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"]]
    assert [e["k"]["t"] for e in closed] == sorted({e["k"]["t"] for e in closed})


def test_analytics_indicators_depth_trade_and_agents_payloads(server) -> None:
    url, _ = server

    async def main() -> dict[str, dict]:
        async with websockets.connect(_ws(url, "/stream?streams=" + "/".join(
                f"{LOWER}@{k}" for k in ("analytics", "indicators_1s", "depth", "trade")))
                ) as ws:
            await _subscribe(ws, "agents")
            got: dict[str, dict] = {}
            while len(got) < 5:
                m = json.loads(await ws.recv())
                if "stream" in m:
                    got.setdefault(m["stream"], m["data"])
            return got

    got = run(main())
    a = got[f"{LOWER}@analytics"]
    assert a["e"] == "analytics" and a["s"] == SYMBOL and a["t"] % 1000 == 0
    assert a["has_mid"] and a["bid"] < a["ask"] and a["mid"] == pytest.approx(
        (a["bid"] + a["ask"]) / 2)
    assert a["bid"] <= a["microprice"] <= a["ask"]
    assert a["spread"] == pytest.approx(a["ask"] - a["bid"])
    assert len(a["depth_bid"]) == len(a["depth_ask"]) == 10 and len(a["embedding"]) == 4
    assert a["depth_bid"][0] == a["bid_qty"] and a["depth_ask"][0] == a["ask_qty"]
    for key in ("imbalance_1", "imbalance_5", "imbalance_10"):
        assert -1 <= a[key] <= 1
    for key in ("ofi", "returns", "realized_vol", "kyle_lambda", "trade_sign_imbalance",
                "n_trades", "n_updates", "buy_volume", "sell_volume"):
        assert key in a
    i = got[f"{LOWER}@indicators_1s"]
    assert i["e"] == "indicators" and i["i"] == "1s" and i["T"] == i["t"] + 999
    for key in ("open", "high", "low", "close", "volume", "vwap", "sma", "ema", "rsi", "macd",
                "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr",
                "session_vwap"):
        assert key in i                              # null in the warm-up, never NaN
    d = got[f"{LOWER}@depth"]
    bids = [(Decimal(p), Decimal(q)) for p, q in d["b"]]
    asks = [(Decimal(p), Decimal(q)) for p, q in d["a"]]
    assert 0 < len(bids) <= 20 and 0 < len(asks) <= 20
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0][0] < asks[0][0] and all(q > 0 for _, q in bids + asks)
    t = got[f"{LOWER}@trade"]
    assert t["e"] == "trade" and isinstance(t["m"], bool) and Decimal(t["q"]) > 0
    assert t["T"] == t["ns"] // 1_000_000
    rows = got["agents"]["rows"]
    assert {r["name"] for r in rows} >= {"noise", "makers"}
    assert all(r["group"] == "background" and r["symbol"] == SYMBOL for r in rows)
    assert sum(r["volume_share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["position"] for r in rows) == 0     # every lot bought was sold
    assert all(math.isfinite(r["pnl"]) for r in rows)


def test_zmq_sub_receives_streams_by_topic(server) -> None:
    url, endpoint = server
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVTIMEO, 10_000)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(endpoint)
    for topic in (f"{LOWER}@kline_1s", f"{LOWER}@analytics"):
        sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
    try:
        seen: dict[str, dict] = {}
        while len(seen) < 2:
            topic, raw = sub.recv_multipart()
            seen[topic.decode()] = json.loads(raw)
    finally:
        sub.close()
    assert seen[f"{LOWER}@kline_1s"]["e"] == "kline"
    assert seen[f"{LOWER}@kline_1s"]["k"]["i"] == "1s"
    assert seen[f"{LOWER}@analytics"]["e"] == "analytics"


# ---- the protocol and its misuse -----------------------------------------------------------


def test_bad_requests_are_answered_and_the_connection_stays(server) -> None:
    url, _ = server

    async def main() -> list[dict]:
        async with websockets.connect(_ws(url), max_size=1 << 22) as ws:
            errors = []
            for text in ("not json", "[1, 2]", '"x"', "{" * 100_000, "\x00\xff",
                         json.dumps({"method": "SUBSCRIBE", "params": ["xyzusdt@nope"],
                                     "id": 1}),
                         json.dumps({"method": "SUBSCRIBE", "params": ["abcusdt@trade"],
                                     "id": 2}),
                         json.dumps({"method": "SUBSCRIBE", "params": [7], "id": 3}),
                         json.dumps({"method": "SUBSCRIBE", "params": "x", "id": 4}),
                         json.dumps({"method": "EXPLODE", "id": 5}),
                         json.dumps({"method": "SUBSCRIBE", "params": [], "id": True}),
                         json.dumps({"method": "SUBSCRIBE", "params": [], "id": 6, "x": 1}),
                         json.dumps({"method": "SUBSCRIBE",
                                     "params": [f"{LOWER}@trade"] * 201, "id": 7}),
                         json.dumps({"method": "SET_PROPERTY", "params": ["combined", 1],
                                     "id": 8}),
                         json.dumps({"method": "SUBSCRIBE", "params": ["a" * 100_000],
                                     "id": 9})):
                await ws.send(text)
                m = json.loads(await ws.recv())
                assert "error" in m, (text[:40], m)
                errors.append(m)
            await ws.send(b"\xff\xfe")                 # binary, not UTF-8
            errors.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10}))
            assert await answer(ws, 10) == {"result": [], "id": 10}
            await _subscribe(ws, f"{LOWER}@trade", rid=11)
            assert (await first(ws, "trade"))["s"] == SYMBOL
            return errors

    errors = run(main())
    codes = [e["error"]["code"] for e in errors]
    assert codes == [3, 3, 3, 2, 3, 2, 2, 2, 1, 2, 2, 0, 2, 1, 2, 3]
    assert "unknown stream 'xyzusdt@nope'" in errors[5]["error"]["msg"]
    assert "unknown symbol 'abcusdt'" in errors[6]["error"]["msg"]
    assert "longer than" in errors[3]["error"]["msg"]
    assert [e["id"] for e in errors[5:10]] == [1, 2, 3, 4, 5]
    assert httpx.get(f"{url}/api/v3/ping").status_code == 200


def test_path_streams_bad_names_and_unsubscribe(server) -> None:
    url, _ = server

    async def main() -> tuple[dict, list]:
        async with websockets.connect(_ws(url, f"/ws/{LOWER}@trade/nope@x/123")) as ws:
            error = json.loads(await ws.recv())
            await first(ws, "trade")
            await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": [f"{LOWER}@trade"],
                                      "id": 1}))
            await answer(ws, 1)
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
            return error, (await answer(ws, 2))["result"]

    error, left = run(main())
    assert error["error"]["code"] == 2 and error["id"] is None
    assert left == []


def test_rest_history_symbols_and_errors(server) -> None:
    url, _ = server
    get = httpx.Client(base_url=url, timeout=10).get
    rows = get("/analytics/history", params={"symbol": SYMBOL, "limit": 5}).json()
    assert 1 <= len(rows) <= 5 and all(r["e"] == "analytics" for r in rows)
    assert [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    bars = get("/analytics/history", params={"symbol": SYMBOL, "stream": "indicators_1s",
                                             "limit": 50}).json()
    assert bars and all(b["i"] == "1s" for b in bars)
    klines = get("/analytics/history", params={"symbol": SYMBOL, "stream": "kline_1s"}).json()
    assert klines and klines[-1]["k"]["t"] >= bars[-1]["t"]
    rest = get("/api/v3/klines", params={"symbol": SYMBOL, "interval": "1s",
                                         "limit": 3}).json()
    assert len(rest) == 3 and all(len(r) == 12 for r in rest)
    start = rest[0][0]
    since = get("/api/v3/klines", params={"symbol": SYMBOL, "interval": "1s",
                                          "startTime": start, "limit": 2}).json()
    assert [r[0] for r in since] == [start, start + 1000]
    (sym,) = get("/analytics/symbols").json()
    assert sym["symbol"] == SYMBOL and sym["intervals"] == ["1s", "1m"]
    assert f"{LOWER}@kline_1m" in sym["streams"]
    info = get("/api/v3/exchangeInfo").json()
    assert [s["symbol"] for s in info["symbols"]] == [SYMBOL]
    for path, params, code in (
            ("/api/v3/klines", {"symbol": "NOPE", "interval": "1s"}, -1121),
            ("/api/v3/klines", {"interval": "1s"}, -1102),
            ("/api/v3/klines", {"symbol": SYMBOL, "interval": "3m"}, -1120),
            ("/api/v3/klines", {"symbol": SYMBOL, "interval": "1s", "limit": "0"}, -1100),
            ("/api/v3/klines", {"symbol": SYMBOL, "interval": "1s", "limit": "²"}, -1100),
            ("/api/v3/klines", {"symbol": SYMBOL, "interval": "1s", "startTime": "-5"},
             -1100),
            ("/analytics/history", {"symbol": SYMBOL, "stream": "kline_7m"}, -1100),
            ("/analytics/history", {"symbol": SYMBOL, "limit": "10001"}, -1100),
            ("/analytics/history", {"symbol": "x" * 5000}, -1100)):
        r = get(path, params=params)
        assert r.status_code == 400 and r.json()["code"] == code, (path, params, r.text)
    r = get("/api/v3/klines?symbol=XYZUSDT&symbol=XYZUSDT&interval=1s")
    assert r.status_code == 400 and r.json()["code"] == -1101
    assert get("/nothing").status_code == 404
    assert httpx.post(f"{url}/api/v3/klines").status_code == 405


# ---- the hub in-process, on an exchange's batches -------------------------------------------


def test_hub_follows_the_exchange_book_and_survives_bad_batches() -> None:
    from rltrader.analytics.server import exchange_hub
    from rltrader.exchange.server import build

    exchange = build("resilient")
    hub = exchange_hub(exchange, intervals=("1s",), sample="1s")
    assert hub.on_batch in exchange.listeners
    sent: list[tuple[str, dict]] = []
    hub.wants = lambda name: True                        # type: ignore[method-assign]
    hub.publish = lambda name, data: sent.append((name, data))  # type: ignore[method-assign]
    t0 = time.time_ns()
    for k in range(200):
        exchange.run_batch([], step=True, ts=t0 + k * 100_000_000)
    prices, qtys, _ = exchange.books.top_levels(20)
    mine = hub.engine.top_levels(0, 20)
    assert np.array_equal(mine[0], prices[0]) and np.array_equal(mine[1], qtys[0])
    names = {name for name, _ in sent}
    assert {f"{LOWER}@trade", f"{LOWER}@kline_1s", f"{LOWER}@indicators_1s",
            f"{LOWER}@analytics"} <= names
    trades = [d for n, d in sent if n.endswith("@trade")]
    assert trades and len(trades) == exchange.next_trade_id - 1     # every fill, once
    exchange.last_batch = (exchange.last_batch[0], np.zeros(3))   # not events: logged only
    hub.on_batch(exchange, {})
    exchange.run_batch([], step=True, ts=t0 + 201 * 100_000_000)   # the market goes on


def test_cli_refuses_bad_options_in_one_line() -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rltrader.tools.cli", *args],
                              capture_output=True, text=True, timeout=60)

    r = cli("analytics")
    assert r.returncode == 2 and "--connect" in r.stderr and "Traceback" not in r.stderr
    r = cli("analytics", "--simulate", "resilient", "--replay", "lobster", "x")
    assert r.returncode == 2 and "one of" in r.stderr
    r = cli("analytics", "--simulate", "resilient", "--zmq", "nope")
    assert r.returncode == 2 and "tcp://HOST:PORT" in r.stderr
    r = cli("analytics", "--simulate", "resilient", "--intervals", "1s,banana")
    assert r.returncode == 2 and "interval" in r.stderr
    r = cli("analytics", "--connect", "ftp://x")
    assert r.returncode == 2 and "http://HOST:PORT" in r.stderr
    r = cli("serve", "--zmq", "tcp://127.0.0.1:5555")
    assert r.returncode == 2 and "--analytics" in r.stderr
    assert all("Traceback" not in x.stderr for x in (r,))


def test_analytics_port_in_use_is_a_clear_error() -> None:
    """``serve --analytics`` binds both ports before serving: one taken is one line and
    exit status 2, not the traceback of the other server's cancellation."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "rltrader.tools.cli", "serve", "resilient",
                            "--port", str(free_port()), "--analytics", "--analytics-port",
                            str(port)], capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert r.returncode == 2 and f"cannot serve on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
    same = str(free_port())                 # the exchange's own port named twice
    r = subprocess.run([sys.executable, "-m", "rltrader.tools.cli", "serve", "resilient",
                        "--port", same, "--analytics", "--analytics-port", same],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"cannot serve on 127.0.0.1:{same}" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_zmq_endpoint_in_use_is_a_clear_error() -> None:
    port = free_port()
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.bind(f"tcp://127.0.0.1:{port}")
    try:
        r = subprocess.run([sys.executable, "-m", "rltrader.tools.cli", "analytics",
                            "--simulate", "resilient", "--port", str(free_port()), "--zmq",
                            f"tcp://127.0.0.1:{port}"], capture_output=True, text=True,
                           timeout=60)
    finally:
        sock.close(0)
    assert r.returncode == 2 and f"--zmq tcp://127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr


def test_slow_subscriber_is_cut_off_alone(server) -> None:
    """A subscriber that never reads is closed (1008) once its queue is full, or held by
    TCP backpressure; another one keeps receiving."""
    url, _ = server

    async def main() -> int:
        slow = await websockets.connect(_ws(url), max_queue=1, close_timeout=0.5)
        await slow.send(json.dumps({"method": "SUBSCRIBE", "params": [
            f"{LOWER}@{k}" for k in ("depth", "analytics", "trade", "kline_1s")], "id": 1}))
        async with websockets.connect(_ws(url)) as fast:
            await _subscribe(fast, f"{LOWER}@kline_1s")
            n = 0
            for _ in range(5):
                await first(fast, "kline")
                n += 1
        await slow.close()
        return n

    assert run(main()) == 5


def test_live_replay_bars_are_the_offline_bars(tmp_path) -> None:
    """``--replay lobster`` serves, bar for bar, what the offline mode writes for the same
    file (one reader, one engine), on the file's date."""
    from rltrader.analytics import offline

    path = "rltrader/data/samples/lobster/AAPL_2012-06-21_34200000_37800000_message_50.csv.gz"
    summary = offline.run([path], format="lobster", out=tmp_path / "off", intervals=("1s",),
                          parquet=False, progress=False)
    import csv

    with open(tmp_path / "off" / "bars_1s.csv") as f:
        off = {int(r["t_open"]): r for r in csv.DictReader(f)}
    day = 1_340_236_800_000                               # 2012-06-21, ms
    with running_analytics(tmp_path, "--replay", "lobster", path, "--speed", "200",
                           "--intervals", "1s") as url:
        deadline = time.monotonic() + 15
        while True:
            live = httpx.get(f"{url}/api/v3/klines", params={
                "symbol": "AAPL", "interval": "1s", "limit": 1000}).json()
            if len(live) > 20 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert summary["bars"]["1s"] > 20 and len(live) > 20
    for row in live[:-1]:                                 # the last is still open
        bar = off[(row[0] - day) * 1_000_000]
        assert [Decimal(x) for x in row[1:6]] == [
            Decimal(bar[k]) / (100 if k != "volume" else 1)
            for k in ("open", "high", "low", "close", "volume")], row
        assert row[8] == int(bar["n_trades"])
