"""Attacks and misuse an adversarial review of the exchange found (each test failed on the
code before its fix): spending more than one has, stopping the sequencer with one request,
unbounded memory, Binance's mixed query + body form, malformed accounts files, free
signature guessing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import httpx
import numpy as np
import pytest

from rltrader import MarketConfig
from rltrader.exchange import engine as engine_module
from rltrader.exchange.accounts import parse_accounts
from rltrader.exchange.binance import RateLimiter
from rltrader.exchange.engine import ORDER_IN, Exchange, FrameResult, Request
from rltrader.exchange.server import build, specs_of
from rltrader.exchange.symbols import ApiError

QUIET = MarketConfig(symbols=("XYZ",), tick_size=0.01)


def exchange(config: MarketConfig, balances: dict[str, dict[str, str]],
             taker_fee_ppm: int = 0) -> Exchange:
    accounts = parse_accounts({"accounts": [
        {"name": n, "api_key": f"{n}-key", "secret": f"{n}-secret", "balances": b}
        for n, b in balances.items()]}, specs_of(config, "USDT", "1"))
    return Exchange(config, accounts, taker_fee_ppm=taker_fee_ppm)


def frame(ex: Exchange, account: int, *rows: tuple) -> FrameResult:
    """One frame of ``(op, side, qty, price[, tif])`` records, run as one batch."""
    records = np.zeros(len(rows), dtype=ORDER_IN)
    for k, row in enumerate(rows):
        for name, value in zip(("op", "side", "qty", "price", "tif"), row, strict=False):
            records[name][k] = value
    req = Request("frame", ex.accounts[account],
                  {"records": base64.b64encode(records.tobytes()).decode()})
    ex.run_batch([req], step=False, ts=time.time_ns())
    return req.result


def test_a_frame_cannot_spend_what_its_market_order_locked() -> None:
    ex = exchange(QUIET, {"maker": {"XYZ": "100"}, "carol": {"USDT": "50"}})
    frame(ex, 0, (1, -1, 100, 50))                  # asks at 0.50
    result = frame(ex, 1, (1, 1, 60, 50),           # 30.00 locked
                   (2, 1, 10, 0),                   # a market buy locks 5.00
                   (1, 1, 40, 50))                  # 20.00 more: only 15 left
    assert result.acks["code"].tolist() == [0, 0, -2010]
    carol = ex.accounts[1]
    assert ex.free(carol, "USDT") >= 0


def test_a_market_buy_on_an_empty_book_expires_unsent() -> None:
    """With no asks to price it, a market buy never reaches the core unbounded: asks that
    arrive earlier in the same batch (the buyer's own, another account's) do not fill it
    for free."""
    ex = exchange(QUIET, {"dave": {"XYZ": "1000"}, "carol": {"USDT": "50"}},
                  taker_fee_ppm=10_000)
    result = frame(ex, 0, (1, -1, 1000, 100_000), (2, 1, 1000, 0))
    assert result.acks["status"][1] == 5 and result.acks["executed"][1] == 0   # EXPIRED
    sell = Request("new", ex.accounts[0], {"symbol": "XYZUSDT", "side": "SELL",
                                           "type": "LIMIT", "timeInForce": "GTC",
                                           "price": "1000.00", "quantity": "10"})
    buy = Request("new", ex.accounts[1], {"symbol": "XYZUSDT", "side": "BUY",
                                          "type": "MARKET", "quantity": "10"})
    ex2 = exchange(QUIET, {"dave": {"XYZ": "1000"}, "carol": {"USDT": "50"}},
                   taker_fee_ppm=10_000)
    sell.account, buy.account = ex2.accounts
    ex2.run_batch([sell, buy], step=False, ts=time.time_ns())
    assert buy.result.status == "EXPIRED" and buy.result.executed == 0
    for ex_ in (ex, ex2):
        for account in ex_.accounts:
            assert ex_.free(account, "USDT") >= 0 and ex_.total(account, "USDT") >= 0


def test_one_request_cannot_stop_the_sequencer() -> None:
    """``orderId=²`` passed ``str.isdigit`` and then failed ``int`` inside the sequencer,
    which stopped the server; now it is a -1100, and any bug in one request's check fails
    that request only."""
    ex = exchange(QUIET, {"a": {"USDT": "10"}})
    bad = Request("cancel", ex.accounts[0], {"symbol": "XYZUSDT", "orderId": "\u00b2"})
    ex.run_batch([bad], step=False, ts=time.time_ns())
    assert isinstance(bad.result, ApiError) and bad.result.code == -1100

    def broken(req: Request, ts: int) -> None:
        raise KeyError("a bug")

    ex._check = broken                              # type: ignore[method-assign]
    req = Request("new", ex.accounts[0], {})
    ex.run_batch([req], step=True, ts=time.time_ns())
    assert isinstance(req.result, ApiError) and req.result.code == -1000


def test_finished_orders_are_forgotten_beyond_a_bound(monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "CLOSED_KEPT", 10)
    ex = exchange(QUIET, {"carol": {"USDT": "50"}})
    for _ in range(5):                              # 40 IOC buys that expire at once
        frame(ex, 0, *[(1, 1, 1, 1, 1)] * 8)       # tif 1: IOC
    # IOC limit buys at 0.01 find no asks and expire: only the last 10 are kept
    carol = ex.accounts[0].owner
    assert len(ex.orders) == 10 == len(ex.closed[carol])
    assert max(ex.orders) == 40 and not ex.open_orders[carol]
    assert len(ex.client_ids) == 10
    limiter = RateLimiter(6000, 100, binary_orders_per_10s=30)
    limiter.binary("k", 20)
    with pytest.raises(ApiError, match="binary records"):
        limiter.binary("k", 20)


def test_streams_disconnect_a_client_that_never_reads_its_answers() -> None:
    from rltrader.exchange.streams import QUEUE_LIMIT, Connection

    connection = Connection(None, False)  # type: ignore[arg-type]
    for k in range(QUEUE_LIMIT + 1):
        connection.reply({"result": None, "id": k})
    assert connection.overflowed and connection.closed and not connection.queue


def test_accounts_files_and_arguments_are_checked() -> None:
    specs = specs_of(QUIET, "USDT", "1")
    for balances in (5, [["USDT", "1"]], "x"):
        with pytest.raises(ValueError, match="balances must be a table"):
            parse_accounts({"accounts": [{"name": "a", "api_key": "k", "secret": "s" * 8,
                                          "balances": balances}]}, specs)
    with pytest.raises(ValueError, match="lot-size"):
        specs_of(QUIET, "USDT", "1e400000")
    with pytest.raises(ValueError, match="quote"):
        build("resilient", quote="\u00c4B")


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory):
    from _exchange import running_server

    tmp = tmp_path_factory.mktemp("misuse")
    (tmp / "quiet.toml").write_text('symbols = ["XYZ"]\ntick_size = 0.01\n')
    with running_server(tmp, "--config", str(tmp / "quiet.toml"), "--weight-per-minute",
                        "400") as url:
        yield url


def test_binances_mixed_query_and_body_form(quiet_server) -> None:
    """Binance's documented example: some parameters in the query, the rest and the
    signature in the body; the signature covers query + body, each part is parsed alone."""
    query = "symbol=XYZUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
    body = f"quantity=1&price=0.01&recvWindow=5000&timestamp={int(time.time() * 1000)}"
    sig = hmac.new(b"alice-secret", (query + body).encode(), hashlib.sha256).hexdigest()
    r = httpx.post(f"{quiet_server}/api/v3/order?{query}", content=f"{body}&signature={sig}",
                   headers={"X-MBX-APIKEY": "alice-key",
                            "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["timeInForce"] == "GTC", r.text


def test_failed_signatures_cost_the_address(quiet_server) -> None:
    from _exchange import signed

    codes = [signed(quiet_server, "GET", "/api/v3/account", "alice",
                    secret="not-alices-secret").status_code for _ in range(60)]
    assert codes[0] == 400 and codes[-1] == 429
