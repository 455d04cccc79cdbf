"""``rltrader serve --replay``: real NASDAQ flow (the LOBSTER AAPL samples) served to ccxt
clients, whose orders trade in the recorded queues (issue 17, item 1)."""

from __future__ import annotations

import time

import numpy as np
import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("uvicorn")

from _exchange import ccxt_client, running_server  # noqa: E402

from rltrader.data import lobster  # noqa: E402
from rltrader.data.samples import (  # noqa: E402
    AAPL_HOUR,
    AAPL_PAIR_MESSAGE,
    AAPL_PAIR_ORDERBOOK,
    sample_path,
)

AAPL = {"alice": ("alice-key", "alice-secret", {"USD": "1000000", "AAPL": "1000"}),
        "bob": ("bob-key", "bob-secret", {"USD": "1000000"})}


def test_the_served_book_is_the_records_book(tmp_path) -> None:
    """The exact pair (999 rows, 49 s of record) at 100x: once the record has run out,
    REST depth is the LOBSTER orderbook file's last row, level by level."""
    message, orderbook = sample_path(AAPL_PAIR_MESSAGE), sample_path(AAPL_PAIR_ORDERBOOK)
    last = lobster.read_orderbook(orderbook)
    with running_server(tmp_path, "--replay", "lobster", str(message), str(orderbook),
                        "--quote", "USD", "--speed", "100", accounts=AAPL) as url:
        client = ccxt_client(url)
        assert list(client.load_markets()) == ["AAPL/USD"]
        deadline = time.monotonic() + 20
        while True:
            book = client.fetch_order_book("AAPL/USD", 10)
            bids = [[int(round(p * 10_000)), q] for p, q in book["bids"]]
            asks = [[int(round(p * 10_000)), q] for p, q in book["asks"]]
            want_bids = [[int(p), int(q)] for p, q in zip(last.bid_price[-1], last.bid_qty[-1],
                                                          strict=True) if q > 0]
            want_asks = [[int(p), int(q)] for p, q in zip(last.ask_price[-1], last.ask_qty[-1],
                                                          strict=True) if q > 0]
            if (bids, asks) == (want_bids, want_asks) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (bids, asks) == (want_bids, want_asks)


def test_ccxt_orders_trade_in_the_recorded_queues(tmp_path) -> None:
    with running_server(tmp_path, "--replay", "lobster", str(sample_path(AAPL_HOUR)),
                        "--quote", "USD", "--speed", "20", accounts=AAPL) as url:
        alice, bob = ccxt_client(url, "alice"), ccxt_client(url, "bob")
        alice.load_markets()
        bob.load_markets()
        time.sleep(0.5)                               # a few seconds of the record
        book = bob.fetch_order_book("AAPL/USD", 20)
        best_ask = book["asks"][0][0]
        buy = bob.create_order("AAPL/USD", "market", "buy", 300)
        assert buy["filled"] > 0 and buy["average"] >= best_ask - 0.5
        sell = alice.create_order("AAPL/USD", "limit", "sell", 5, round(best_ask + 5, 2))
        assert sell["status"] == "open"
        time.sleep(0.5)
        trades = bob.fetch_my_trades("AAPL/USD")
        assert sum(t["amount"] for t in trades) == buy["filled"]
        balance = bob.fetch_balance()
        assert balance["AAPL"]["total"] == buy["filled"]
        assert balance["USD"]["total"] == pytest.approx(1_000_000 - buy["cost"], abs=0.01)
        public = bob.fetch_trades("AAPL/USD", limit=1000)
        assert len(public) > len(trades)              # the record trades too
        alice.cancel_order(sell["id"], "AAPL/USD")


def test_a_binance_capture_served_to_ccxt(tmp_path) -> None:
    """``--replay binance``: the capture's own grids and symbol (BTCUSDT, ticks of 0.01,
    lots of 0.000001 BTC); once the record has run out REST depth is the reader's book,
    and a ccxt market buy takes its asks."""
    from _data import crypto_file

    from rltrader import Books
    from rltrader.data import binance
    from rltrader.data._levels import levels_after

    path = crypto_file("binance", "hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz")
    feed = binance.read_feed([path])
    _, want_qtys = levels_after(Books(1, window=1 << 18), feed.messages,
                                np.array([feed.messages.shape[0]]), 5)
    want_prices, _ = levels_after(Books(1, window=1 << 18), feed.messages,
                                  np.array([feed.messages.shape[0]]), 5)
    accounts = {"alice": ("alice-key", "alice-secret", {"USDT": "100000", "BTC": "1"})}
    with running_server(tmp_path, "--replay", "binance", str(path), "--speed", "200",
                        accounts=accounts) as url:
        client = ccxt_client(url, "alice")
        market = client.load_markets()["BTC/USDT"]
        assert (feed.tick_size.step, feed.lot_size.step) == ("0.01", "0.000001")
        assert market["precision"]["price"] == 0.01 and market["precision"]["amount"] == 1e-06
        deadline = time.monotonic() + 30
        while True:
            book = client.fetch_order_book("BTC/USDT", 5)
            got = [[round(p * 100) for p, _ in book[side]] for side in ("bids", "asks")]
            want = [[int(p) for p in want_prices[0][k] if p] for k in (0, 1)]
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert got == want
        sizes = [[round(q * 1_000_000) for _, q in book[side]] for side in ("bids", "asks")]
        assert sizes == [[int(q) for q in want_qtys[0][k] if q] for k in (0, 1)]
        buy = client.create_order("BTC/USDT", "market", "buy", 0.001)
        assert buy["filled"] == 0.001 and buy["average"] >= book["asks"][0][0]
        assert client.fetch_balance()["BTC"]["total"] == pytest.approx(1.001)
