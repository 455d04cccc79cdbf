"""The exchange server's REST API, driven by unmodified ccxt against ``rltrader serve``
(issue 17): every supported call, every error class, two accounts trading with each other
and with the background market, and the security rules (signatures, stale timestamps,
another account's orders, oversized and malformed requests, rate limits)."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

import pytest

ccxt = pytest.importorskip("ccxt")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from _exchange import ACCOUNTS, SYMBOL, ccxt_client, running_server, signed  # noqa: E402

MARKET = "XYZ/USDT"
QUIET = """symbols = ["XYZ"]
tick_size = 0.01
"""


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """The ``resilient`` market at 5x speed: background traders keep it moving."""
    with running_server(tmp_path_factory.mktemp("busy"), "--speed", "5") as url:
        yield url


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    """A market with no background traders and fees (taker 500 ppm, maker -100 ppm):
    only the accounts trade, so every figure is known."""
    tmp = tmp_path_factory.mktemp("quiet")
    (tmp / "quiet.toml").write_text(QUIET)
    with running_server(tmp, "--config", str(tmp / "quiet.toml"), "--taker-fee-ppm", "500",
                        "--maker-fee-ppm", "-100") as url:
        yield url


def test_public_market_data(busy) -> None:
    client = ccxt_client(busy)
    markets = client.load_markets()
    assert list(markets) == [MARKET]
    market = markets[MARKET]
    assert (market["base"], market["quote"], market["spot"]) == ("XYZ", "USDT", True)
    assert market["precision"]["price"] == 0.01 and market["precision"]["amount"] == 1
    assert abs(client.fetch_time() - time.time() * 1000) < 5000
    time.sleep(1.0)                                   # some background trading
    book = client.fetch_order_book(MARKET, 20)
    bids, asks = [p for p, _ in book["bids"]], [p for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0] and book["nonce"] > 0
    trades = client.fetch_trades(MARKET, limit=50)
    assert trades and all(t["symbol"] == MARKET and t["amount"] > 0 for t in trades)
    ids = [int(t["id"]) for t in trades]
    assert ids == sorted(ids)
    raw = httpx.get(f"{busy}/api/v3/trades", params={"symbol": SYMBOL, "limit": 5}).json()
    assert len(raw) == 5
    assert {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker"} <= set(raw[0])
    ticker = client.fetch_ticker(MARKET)
    assert ticker["bid"] < ticker["ask"] and ticker["last"] > 0 and ticker["baseVolume"] > 0
    bars = client.fetch_ohlcv(MARKET, "1m", limit=5)
    assert bars and all(lo <= o <= hi and lo <= c <= hi for _, o, hi, lo, c, _ in bars)


def test_two_accounts_trade_with_each_other_with_exact_fees(quiet) -> None:
    """Alice rests a sell, Bob takes part of it: the prices, quantities, commissions
    (maker rebate, taker fee), balances and locks are exact."""
    alice, bob = ccxt_client(quiet, "alice"), ccxt_client(quiet, "bob")
    alice.load_markets()
    bob.load_markets()
    sell = alice.create_order(MARKET, "limit", "sell", 5, 100.00)
    assert sell["status"] == "open" and sell["filled"] == 0
    assert alice.fetch_balance()["XYZ"] == {"free": 995.0, "used": 5.0, "total": 1000.0}
    buy = bob.create_order(MARKET, "limit", "buy", 3, 100.00)
    assert buy["status"] == "closed" and buy["filled"] == 3 and buy["average"] == 100.0
    assert buy["fee"] == {"currency": "USDT", "cost": 0.15}   # 300 x 500 ppm
    mine = alice.fetch_order(sell["id"], MARKET)
    assert mine["status"] == "open" and mine["filled"] == 3 and mine["remaining"] == 2
    (maker,) = alice.fetch_my_trades(MARKET)
    (taker,) = bob.fetch_my_trades(MARKET)
    assert maker["id"] == taker["id"] and maker["takerOrMaker"] == "maker"
    assert maker["fee"]["cost"] == -0.03 and taker["fee"]["cost"] == 0.15
    a, b = alice.fetch_balance(), bob.fetch_balance()
    assert a["USDT"]["total"] == 100_000 + 300 + 0.03
    assert a["XYZ"] == {"free": 995.0, "used": 2.0, "total": 997.0}
    assert b["USDT"]["total"] == 100_000 - 300 - 0.15 and b["XYZ"]["total"] == 1003
    # a market buy takes the rest (the only ask), then finds nothing and expires
    rest = bob.create_order(MARKET, "market", "buy", 4)
    assert rest["filled"] == 2 and rest["status"] == "expired"
    assert alice.fetch_order(sell["id"], MARKET)["status"] == "closed"
    assert alice.fetch_open_orders(MARKET) == []
    assert bob.fetch_balance()["USDT"]["used"] == 0      # nothing stays locked


def test_orders_of_every_kind(quiet) -> None:
    alice, bob = ccxt_client(quiet, "alice"), ccxt_client(quiet, "bob")
    for c in (alice, bob):
        c.load_markets()
    bid = alice.create_order(MARKET, "limit", "buy", 4, 90.00)
    assert alice.fetch_open_orders(MARKET)[0]["id"] == bid["id"]
    with pytest.raises(ccxt.OrderImmediatelyFillable):          # post-only that crosses
        bob.create_order(MARKET, "limit", "sell", 1, 90.00, {"postOnly": True})
    maker = bob.create_order(MARKET, "limit", "sell", 1, 95.00, {"postOnly": True})
    assert maker["status"] == "open" and maker["type"] == "limit"
    fok = bob.create_order(MARKET, "limit", "sell", 10, 90.00, {"timeInForce": "FOK"})
    assert fok["status"] == "expired" and fok["filled"] == 0    # 4 there, 10 asked
    ioc = bob.create_order(MARKET, "limit", "sell", 10, 90.00, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired" and ioc["filled"] == 4
    market = bob.create_order(MARKET, "market", "sell", 1)
    assert market["status"] == "expired" and market["filled"] == 0   # no bids left
    ack = alice.create_order(MARKET, "limit", "buy", 1, 80.00, {"newOrderRespType": "ACK"})
    assert ack["id"] and alice.fetch_order(ack["id"], MARKET)["status"] == "open"
    cancelled = alice.cancel_order(ack["id"], MARKET)
    assert cancelled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):                      # twice
        alice.cancel_order(ack["id"], MARKET)
    by_client = alice.create_order(MARKET, "limit", "buy", 1, 80.00,
                                   {"newClientOrderId": "my-order-1"})
    assert by_client["clientOrderId"] == "my-order-1"
    assert alice.fetch_order(None, MARKET, {"origClientOrderId": "my-order-1"})["id"] == \
        by_client["id"]
    alice.cancel_all_orders(MARKET)
    assert alice.fetch_open_orders(MARKET) == []
    bob.cancel_order(maker["id"], MARKET)
    assert [o["id"] for o in alice.fetch_orders(MARKET)][-1] == by_client["id"]


def test_every_error_class(quiet) -> None:
    alice, carol = ccxt_client(quiet, "alice"), ccxt_client(quiet, "carol")
    alice.load_markets()
    carol.load_markets()
    with pytest.raises(ccxt.InsufficientFunds):
        carol.create_order(MARKET, "limit", "buy", 1, 50.01)     # 50.01 + fee > 50
    carol.create_order(MARKET, "limit", "buy", 1, 49.97)         # 49.97 + 0.025 fits
    with pytest.raises(ccxt.InsufficientFunds):                  # the rest is locked
        carol.create_order(MARKET, "limit", "buy", 1, 0.01)
    with pytest.raises(ccxt.InsufficientFunds):
        carol.create_order(MARKET, "limit", "sell", 1, 100)      # no XYZ
    with pytest.raises(ccxt.OrderNotFound):
        alice.fetch_order("424242", MARKET)
    with pytest.raises(ccxt.AuthenticationError):
        _wrong_secret(quiet).fetch_balance()
    with pytest.raises(ccxt.BadSymbol):
        alice.publicGetDepth({"symbol": "NOPEUSDT"})
    with pytest.raises(ccxt.BadRequest):
        alice.privatePostOrder({"symbol": SYMBOL, "side": "BUY", "type": "LIMIT",
                                "quantity": "1", "price": "1"})         # no timeInForce
    with pytest.raises(ccxt.InvalidOrder):                        # off the tick grid
        alice.privatePostOrder({"symbol": SYMBOL, "side": "BUY", "type": "LIMIT",
                                "timeInForce": "GTC", "quantity": "1", "price": "1.001"})
    with pytest.raises(ccxt.BadRequest):
        alice.privatePostOrder({"symbol": SYMBOL, "side": "UP", "type": "LIMIT",
                                "timeInForce": "GTC", "quantity": "1", "price": "1"})
    with pytest.raises(ccxt.InvalidNonce):                        # stale timestamp
        alice.privateGetAccount({"timestamp": int(time.time() * 1000) - 60_000})


def _wrong_secret(url: str):  # type: ignore[no-untyped-def]
    client = ccxt_client(url, "alice")
    client.secret = "not-alices-secret"
    return client


def test_security_rules(quiet) -> None:
    """Signatures, keys and timestamps are checked; an account never sees or touches
    another's order; oversized, malformed and duplicate-field requests are 4xx."""
    order = signed(quiet, "POST", "/api/v3/order", "alice", {
        "symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "2", "price": "10.00"}).json()
    oid = order["orderId"]
    for path, method in (("/api/v3/order", "GET"), ("/api/v3/order", "DELETE")):
        r = signed(quiet, method, path, "bob", {"symbol": SYMBOL, "orderId": oid})
        assert r.status_code == 400 and r.json()["code"] == -2013
    assert all(o["orderId"] != oid for o in signed(
        quiet, "GET", "/api/v3/openOrders", "bob", {"symbol": SYMBOL}).json())
    mine = signed(quiet, "GET", "/api/v3/order", "alice", {"symbol": SYMBOL, "orderId": oid})
    assert mine.json()["status"] == "NEW"
    cases = {
        "bad signature": (signed(quiet, "GET", "/api/v3/account", "alice",
                                 secret="wrong-secret"), 400, -1022),
        "unknown key": (signed(quiet, "GET", "/api/v3/account", "alice", key="nobody"),
                        401, -2015),
        "no key": (httpx.get(f"{quiet}/api/v3/account?timestamp=1&signature=00"), 401,
                   -2014),
        "stale": (signed(quiet, "GET", "/api/v3/account", "alice",
                         timestamp=int(time.time() * 1000) - 10_000), 400, -1021),
        "future": (signed(quiet, "GET", "/api/v3/account", "alice",
                          timestamp=int(time.time() * 1000) + 10_000), 400, -1021),
        "oversized": (httpx.post(f"{quiet}/api/v3/order", content=b"a=" + b"x" * 70_000,
                                 headers={"X-MBX-APIKEY": "alice-key"}), 413, -1100),
        "long query": (httpx.get(f"{quiet}/api/v3/depth?symbol={'X' * 9000}"), 414, -1100),
        "duplicate field": (httpx.get(f"{quiet}/api/v3/depth?symbol={SYMBOL}&symbol=A"),
                            400, -1101),
        "malformed form": (httpx.get(f"{quiet}/api/v3/depth?symbol"), 400, -1100),
        "binary body": (httpx.post(f"{quiet}/api/v3/order", content=bytes(range(256)),
                                   headers={"X-MBX-APIKEY": "alice-key"}), 400, -1100),
        "unknown path": (httpx.get(f"{quiet}/api/v3/nothing"), 404, -1000),
        "bad limit": (httpx.get(f"{quiet}/api/v3/depth?symbol={SYMBOL}&limit=0"), 400,
                      -1100),
    }
    for name, (response, status, code) in cases.items():
        assert (response.status_code, response.json()["code"]) == (status, code), name
    signed(quiet, "DELETE", "/api/v3/order", "alice", {"symbol": SYMBOL, "orderId": oid})


def test_random_requests_never_crash_the_server(quiet) -> None:
    """Three hundred random requests (paths, methods, fields, values, signed or not):
    each is answered with a JSON error or a result, never a 5xx; the server lives on."""
    rng = random.Random(7)
    paths = ["/api/v3/order", "/api/v3/depth", "/api/v3/openOrders", "/api/v3/account",
             "/api/v3/klines", "/api/v3/trades", "/api/v3/myTrades", "/api/v3/ticker/24hr",
             "/api/v3/allOrders", "/api/v3/exchangeInfo"]
    fields = ["symbol", "side", "type", "timeInForce", "quantity", "price", "orderId",
              "limit", "interval", "origClientOrderId", "newOrderRespType", "startTime"]
    values = ["", "0", "-1", "1e3", "NaN", "inf", "BUY", "LIMIT", "GTC", SYMBOL, "XYZUSDT ",
              "1" * 30, "0.0000001", "99999999999999999999", "%00", "\u00e9", "1.5", "1m"]
    for _ in range(300):
        params = {rng.choice(fields): rng.choice(values) for _ in range(rng.randint(0, 6))}
        method = rng.choice(["GET", "POST", "DELETE", "PUT"])
        path = rng.choice(paths)
        if rng.random() < 0.5:
            r = signed(quiet, method if method != "PUT" else "GET", path, "alice", params)
        else:
            r = httpx.request(method, f"{quiet}{path}", params=params, timeout=10)
        assert r.status_code < 500, (method, path, params, r.text)
        body = r.json()
        assert isinstance(body, (dict, list))
        if r.status_code >= 400:
            assert set(body) == {"code", "msg"} and body["msg"]
    signed(quiet, "DELETE", "/api/v3/openOrders", "alice", {"symbol": SYMBOL})
    assert httpx.get(f"{quiet}/api/v3/ping").status_code == 200


def _one_state(c: Any) -> tuple[list[Any], Any, list[Any]]:
    """The account's trades, balance and open orders as of one state of the exchange:
    the background keeps trading against resting orders between calls, and a fill is the
    only change an idle account sees, so a reading whose trade list is the same before
    and after is kept (tests/test_exchange_journal.py, ``_quiet_view``)."""
    for _ in range(100):
        trades = c.fetch_my_trades(MARKET, limit=1000)
        balance, open_orders = c.fetch_balance(), c.fetch_open_orders(MARKET)
        if c.fetch_my_trades(MARKET, limit=1000) == trades:
            return trades, balance, open_orders
    raise AssertionError("no reading of one state in 100 tries")


def test_balances_add_up_after_trading_with_the_background(busy) -> None:
    """Both accounts trade for a while against the moving market: every balance is its
    start plus its fills (quantities, quote, commissions), nothing free is negative and
    what is locked is exactly what the open orders hold."""
    rng = random.Random(3)
    clients = {name: ccxt_client(busy, name) for name in ("alice", "bob")}
    for c in clients.values():
        c.load_markets()
    for _ in range(40):
        name = rng.choice(list(clients))
        c = clients[name]
        book = c.fetch_order_book(MARKET, 5)
        side = rng.choice(["buy", "sell"])
        touch = book["bids"][0][0] if side == "buy" else book["asks"][0][0]
        try:
            if rng.random() < 0.3:
                c.create_order(MARKET, "market", side, rng.randint(1, 5))
            else:
                offset = rng.choice([-2, -1, 0, 1]) * 0.01 * (1 if side == "buy" else -1)
                c.create_order(MARKET, "limit", side, rng.randint(1, 8), touch + offset)
        except ccxt.InsufficientFunds:
            pass
        if rng.random() < 0.2:
            for o in c.fetch_open_orders(MARKET)[:2]:
                try:
                    c.cancel_order(o["id"], MARKET)
                except ccxt.OrderNotFound:      # filled meanwhile
                    pass
    time.sleep(0.5)
    for name, c in clients.items():
        start = {a: Decimal(v) for a, v in ACCOUNTS[name][2].items()}
        trades, balance, open_orders = _one_state(c)
        base = sum(Decimal(t["info"]["qty"]) * (1 if t["side"] == "buy" else -1)
                   for t in trades)
        quote = sum(-Decimal(t["info"]["quoteQty"]) * (1 if t["side"] == "buy" else -1)
                    - Decimal(t["info"]["commission"]) for t in trades)
        assert Decimal(str(balance["XYZ"]["total"])) == start["XYZ"] + base, name
        assert Decimal(str(balance["USDT"]["total"])).quantize(Decimal("0.01")) == \
            start["USDT"] + quote, name
        assert balance["XYZ"]["free"] >= 0 and balance["USDT"]["free"] >= 0
        sells = sum(o["remaining"] for o in open_orders if o["side"] == "sell")
        assert balance["XYZ"]["used"] == sells
        c.cancel_all_orders(MARKET) if open_orders else None


def test_rate_limits_answer_429(tmp_path) -> None:
    with running_server(tmp_path, "--orders-per-10s", "3", "--weight-per-minute",
                        "60") as url:
        alice = ccxt_client(url, "alice")
        alice.load_markets()
        for _ in range(3):
            alice.create_order(MARKET, "limit", "buy", 1, 1.00)
        with pytest.raises(ccxt.DDoSProtection, match="-1015"):   # ccxt's class for 429
            alice.create_order(MARKET, "limit", "buy", 1, 1.00)
        codes = [httpx.get(f"{url}/api/v3/depth", params={"symbol": SYMBOL}).status_code
                 for _ in range(15)]                              # weight 5 each
        assert codes.count(429) >= 3 and codes[0] == 200
