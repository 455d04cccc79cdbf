"""The exchange serving one symbol on several venues (``rltrader serve --venues``):
balances span the venues, each venue charges its own fees, Binance's smart-order-routing
endpoint (``POST /api/v3/sor/order``, ccxt's ``private_post_sor_order``) splits an order
the way the greedy router does on the books it sees, and ``sym@nbbo`` streams the
consolidated touch."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests._exchange import ccxt_client, running_server, running_servers, signed

pytest.importorskip("ccxt")

VENUES = "LIT:-20:30,DARK:0:10"
FEES = {"XYZUSDT": 30, "XYZUSDT.DARK": 10}      # taker ppm per venue symbol


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("venues")
    # --speed 0.0001: one background step per 1,000 s, so the books stand still between
    # the test's requests
    with running_server(tmp, "--venues", VENUES, "--speed", "0.0001") as url:
        yield url


def depth(url: str, symbol: str) -> dict:
    return httpx.get(f"{url}/api/v3/depth", params={"symbol": symbol, "limit": 50}).json()


def greedy_split(url: str, qty: int) -> dict[str, int]:
    """Lots a buy of ``qty`` takes per venue, cheapest first net of the taker fee."""
    levels = []
    for symbol, fee in FEES.items():
        for price, size in depth(url, symbol)["asks"]:
            p, q = Decimal(price), int(Decimal(size))
            levels.append((p * (1 + Decimal(fee) / 1_000_000), symbol, q))
    levels.sort(key=lambda level: level[0])
    split: dict[str, int] = {}
    for _, symbol, q in levels:
        take = min(q, qty)
        if take:
            split[symbol] = split.get(symbol, 0) + take
            qty -= take
    assert qty == 0
    return split


def core_fee(price: str, qty: str, ppm: int) -> Decimal:
    """The core's fee in USDT: notional in cash units (0.01 x 1 lot) x ppm, truncated."""
    units = int(Decimal(price) * 100) * int(Decimal(qty)) * ppm // 1_000_000
    return Decimal(units) / 100


def xyz(url: str, name: str = "alice") -> Decimal:
    balances = signed(url, "GET", "/api/v3/account", name).json()["balances"]
    return next(Decimal(b["free"]) + Decimal(b["locked"]) for b in balances
                if b["asset"] == "XYZ")


def test_exchange_info_lists_the_venues_and_ccxt_loads_them(server: str) -> None:
    info = httpx.get(f"{server}/api/v3/exchangeInfo").json()
    assert [s["symbol"] for s in info["symbols"]] == ["XYZUSDT.DARK", "XYZUSDT"]
    assert info["sors"] == [{"baseAsset": "XYZ", "symbols": ["XYZUSDT", "XYZUSDT.DARK"]}]
    client = ccxt_client(server, "alice")
    client.load_markets()
    assert client.market("XYZ/USDT")["id"] == "XYZUSDT"     # unified calls: the first venue
    assert set(client.markets_by_id) == {"XYZUSDT", "XYZUSDT.DARK"}


def test_balances_span_the_venues_and_each_venue_charges_its_fee(server: str) -> None:
    before = xyz(server, "bob")
    answer = signed(server, "POST", "/api/v3/order", "bob", {
        "symbol": "XYZUSDT.DARK", "side": "BUY", "type": "MARKET", "quantity": "3",
        "newOrderRespType": "FULL"}).json()
    assert answer["executedQty"] == "3", answer
    for fill in answer["fills"]:
        assert Decimal(fill["commission"]) == core_fee(fill["price"], fill["qty"], 10)
    assert xyz(server, "bob") == before + 3


def test_sor_market_order_splits_like_the_greedy_router(server: str) -> None:
    asks = {s: depth(server, s)["asks"] for s in FEES}
    touch = sum(int(Decimal(q)) for _, q in asks["XYZUSDT.DARK"][:1])
    qty = 20 * (touch + int(Decimal(asks["XYZUSDT"][0][1]))) + 2   # deep in both books
    want = greedy_split(server, qty)
    assert len(want) == 2                                   # both venues are needed
    client = ccxt_client(server, "alice")
    before = xyz(server)
    answer = client.private_post_sor_order({"symbol": "XYZUSDT", "side": "BUY",
                                            "type": "MARKET", "quantity": str(qty)})
    assert answer["workingFloor"] == "SOR" and answer["usedSor"] is True
    assert answer["status"] == "FILLED" and answer["executedQty"] == str(qty)
    got: dict[str, int] = {}
    for fill in answer["fills"]:
        got[fill["venue"]] = got.get(fill["venue"], 0) + int(Decimal(fill["qty"]))
        assert Decimal(fill["commission"]) == core_fee(fill["price"], fill["qty"],
                                                       FEES[fill["venue"]])
        assert fill["matchType"] == "ONE_PARTY_TRADE_REPORT"
    assert got == want
    assert xyz(server) == before + qty


def test_sor_limit_gtc_rests_its_remainder_on_the_best_maker_venue(server: str) -> None:
    bids = {s: depth(server, s)["bids"] for s in FEES}
    price = str(min(Decimal(b[0][0]) for b in bids.values()) - Decimal("0.05"))
    answer = signed(server, "POST", "/api/v3/sor/order", "alice", {
        "symbol": "XYZUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "4", "price": price}).json()
    assert answer["status"] == "NEW" and answer["executedQty"] == "0", answer
    resting = signed(server, "GET", "/api/v3/openOrders", "alice",
                     {"symbol": "XYZUSDT"}).json()
    assert [(o["price"], o["origQty"]) for o in resting] == [(price, "4")]   # LIT: rebate
    signed(server, "DELETE", "/api/v3/openOrders", "alice", {"symbol": "XYZUSDT"})


def test_sor_misuse_is_refused(server: str) -> None:
    cases = [({"symbol": "XYZUSDT.DARK", "side": "BUY", "type": "MARKET", "quantity": "1"},
              -1013),
             ({"symbol": "XYZUSDT", "side": "BUY", "type": "STOP", "quantity": "1"}, -1116),
             ({"symbol": "XYZUSDT", "side": "BUY", "type": "MARKET"}, -1102),
             ({"symbol": "XYZUSDT", "side": "UP", "type": "MARKET", "quantity": "1"}, -1117),
             ({"symbol": "XYZUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1",
               "price": "1"}, -1102)]
    for params, code in cases:
        answer = signed(server, "POST", "/api/v3/sor/order", "alice", params)
        assert answer.status_code == 400 and answer.json()["code"] == code, (params, answer.text)


def test_nbbo_stream_is_the_best_of_the_venues(server: str) -> None:
    import websockets

    async def first() -> dict:
        async with websockets.connect(server.replace("http", "ws") + "/ws") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["xyzusdt@nbbo"],
                                      "id": 1}))
            assert json.loads(await ws.recv()) == {"result": None, "id": 1}
            # the book changes once the next order lands: send one, then read the stream
            signed(server, "POST", "/api/v3/order", "bob", {
                "symbol": "XYZUSDT.DARK", "side": "BUY", "type": "MARKET", "quantity": "1"})
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    event = asyncio.run(first())
    tops = {s: depth(server, s) for s in FEES}
    bid = max(Decimal(d["bids"][0][0]) for d in tops.values())
    ask = min(Decimal(d["asks"][0][0]) for d in tops.values())
    assert event["e"] == "nbbo" and Decimal(event["b"]) == bid and Decimal(event["a"]) == ask
    assert {v["s"] for v in event["venues"]} == set(FEES)
    assert event["bv"] in FEES and event["av"] in FEES


def test_plain_serve_has_no_sor(tmp_path: Path) -> None:
    with running_server(tmp_path) as url:
        answer = signed(url, "POST", "/api/v3/sor/order", "alice", {
            "symbol": "XYZUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})
        assert answer.status_code == 400 and answer.json()["code"] == -1013
        nbbo = httpx.get(f"{url}/api/v3/exchangeInfo").json()["sors"]
        assert nbbo == []


def test_the_analytics_server_publishes_the_consolidated_touch(tmp_path: Path) -> None:
    import websockets

    with running_servers(tmp_path, "--venues", VENUES, "--speed", "0.0001") as (url, http):
        analytics = http.replace("http://", "ws://") + "/ws"

        async def first() -> dict:
            async with websockets.connect(analytics) as ws:
                await ws.send(json.dumps({"method": "SUBSCRIBE",
                                          "params": ["xyzusdt@nbbo"], "id": 7}))
                assert json.loads(await ws.recv()) == {"result": None, "id": 7}
                signed(url, "POST", "/api/v3/order", "bob", {
                    "symbol": "XYZUSDT", "side": "SELL", "type": "MARKET", "quantity": "2"})
                return json.loads(await asyncio.wait_for(ws.recv(), 10))

        event = asyncio.run(first())
        tops = {s: depth(url, s) for s in FEES}
        assert Decimal(event["b"]) == max(Decimal(d["bids"][0][0]) for d in tops.values())
        assert Decimal(event["a"]) == min(Decimal(d["asks"][0][0]) for d in tops.values())
        assert [v["s"] for v in event["venues"]] == ["XYZUSDT", "XYZUSDT.DARK"]
