"""The sequencer's own rules, in process: a failed journal write stops it without leaving
a client waiting or acknowledging what was not journaled."""

from __future__ import annotations

import asyncio

import pytest

from rltrader import preset
from rltrader.exchange.accounts import parse_accounts
from rltrader.exchange.engine import Exchange, Request
from rltrader.exchange.server import specs_of
from rltrader.exchange.symbols import ApiError


class FullDisk:
    def append(self, batch: dict) -> None:
        if batch["requests"]:
            raise OSError(28, "No space left on device")


def test_a_failed_journal_write_answers_every_waiting_request_and_stops() -> None:
    config = preset("resilient").replace(copies=1)
    accounts = parse_accounts({"accounts": [{"name": "a", "api_key": "a-key",
                                             "secret": "a-secret", "balances": {
                                                 "USDT": "1000"}}]},
                              specs_of(config, "USDT", "1"))
    ex = Exchange(config, accounts, journal=FullDisk())
    order = {"symbol": "XYZUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "price": "1.00", "quantity": "1"}

    async def main() -> tuple:
        task = asyncio.create_task(ex.run())
        one = asyncio.create_task(ex.submit(Request("new", accounts[0], dict(order))))
        many = asyncio.create_task(ex.submit_all([Request("new", accounts[0], dict(order))]))
        results = await asyncio.gather(one, many, return_exceptions=True)
        with pytest.raises(OSError, match="No space"):
            await asyncio.wait_for(task, timeout=5)
        return results

    single, grouped = asyncio.run(main())
    assert isinstance(single, ApiError) and (single.code, single.status) == (-1000, 503)
    assert isinstance(grouped[0], ApiError) and grouped[0].status == 503


def test_a_binary_frame_does_exactly_what_the_same_rest_requests_do() -> None:
    """Differential: random limit (every time in force), market and cancel records of two
    accounts, as frames into one exchange and as the equivalent REST requests into a
    twin (same seed, same batches): every order, fill, balance, lock, trade and level
    agree, and each ack is what the REST answer said."""
    import base64
    import random

    import numpy as np

    from rltrader.exchange.engine import ORDER_IN, STATUS_CODES, FrameResult, Order

    config = preset("resilient").replace(copies=1)

    def build() -> Exchange:
        accounts = parse_accounts({"accounts": [
            {"name": n, "api_key": f"{n}-key", "secret": f"{n}-secret",
             "balances": {"USDT": "20000", "XYZ": "150"}} for n in ("a", "b")]},
            specs_of(config, "USDT", "1"))
        return Exchange(config, accounts, seed=5, taker_fee_ppm=700, maker_fee_ppm=-50)

    fast, slow = build(), build()
    spec = fast.symbols["XYZUSDT"]
    rng = random.Random(11)
    tifs = ["GTC", "IOC", "FOK"]
    for i in range(300):
        frames, requests = [], []
        for k in range(2):
            rows = np.zeros(rng.randint(0, 6), dtype=ORDER_IN)
            rest = []
            bids, asks = fast.depth(spec, 1)
            for row in rows:
                side = rng.choice([1, -1])
                touch = (bids if side > 0 else asks)[0][0]
                roll = rng.random()
                if roll < 0.15 and fast.open_orders[fast.accounts[k].owner]:
                    oid = rng.choice(sorted(fast.open_orders[fast.accounts[k].owner]))
                    row["op"], row["order_id"] = 3, oid
                    rest.append(("cancel", {"symbol": "XYZUSDT", "orderId": str(oid)}))
                    continue
                row["side"], row["qty"] = side, rng.randint(1, 12)
                params = {"symbol": "XYZUSDT", "side": "BUY" if side > 0 else "SELL",
                          "quantity": str(int(row["qty"]))}
                if roll < 0.3:
                    row["op"] = 2
                    params["type"] = "MARKET"
                else:
                    row["op"], row["tif"] = 1, rng.randint(0, 3)
                    row["price"] = touch + side * rng.randint(-2, 2)
                    params["price"] = spec.price_str(int(row["price"]))
                    if row["tif"] == 3:
                        params["type"] = "LIMIT_MAKER"
                    else:
                        params["type"] = "LIMIT"
                        params["timeInForce"] = tifs[row["tif"]]
                rest.append(("new", params))
            frames.append(Request("frame", fast.accounts[k],
                                  {"records": base64.b64encode(rows.tobytes()).decode()}))
            requests += [Request(kind, slow.accounts[k], params) for kind, params in rest]
        ts = 10**15 + i * 10**8
        fast.run_batch(frames, step=True, ts=ts)
        slow.run_batch(requests, step=True, ts=ts)
        answers = iter(requests)
        for frame in frames:
            result = frame.result
            assert isinstance(result, FrameResult)
            for ack in result.acks.tolist():
                answer = next(answers).result
                if isinstance(answer, ApiError):
                    assert ack[4] == answer.code
                else:
                    assert isinstance(answer, Order) and ack[4] == 0
                    assert (ack[1], ack[2], ack[3], ack[5]) == (
                        answer.order_id, answer.executed, answer.quote,
                        STATUS_CODES[answer.status])
    assert len(fast.orders) == len(slow.orders) > 300
    for oid, order in fast.orders.items():
        twin = slow.orders[oid]
        assert (order.status, order.executed, order.quote, order.lock, order.type,
                order.tif, order.price, order.qty) == (
            twin.status, twin.executed, twin.quote, twin.lock, twin.type, twin.tif,
            twin.price, twin.qty)
        assert [(f.trade_id, f.price, f.qty, f.commission) for f in order.fills] == \
            [(f.trade_id, f.price, f.qty, f.commission) for f in twin.fills]
    for a, b in zip(fast.accounts, slow.accounts, strict=True):
        for asset in ("USDT", "XYZ"):
            assert (fast.total(a, asset), fast.free(a, asset)) == (
                slow.total(b, asset), slow.free(b, asset))
            assert fast.free(a, asset) >= 0
    assert fast.depth(spec, 50) == slow.depth(spec, 50)
    assert [vars(t) for t in fast.trades["XYZUSDT"]] == [vars(t) for t in slow.trades["XYZUSDT"]]


def test_frames_are_journaled_and_recovered(tmp_path) -> None:
    """A binary frame is journaled as it came and replays to the same state."""
    import base64

    import numpy as np

    from rltrader.exchange.engine import ORDER_IN
    from rltrader.exchange.journal import open_journal, recover

    config = preset("resilient").replace(copies=1)

    def accounts():  # type: ignore[no-untyped-def]
        return parse_accounts({"accounts": [{"name": "a", "api_key": "a-key",
                                             "secret": "a-secret", "balances": {
                                                 "USDT": "5000", "XYZ": "50"}}]},
                              specs_of(config, "USDT", "1"))

    ex = Exchange(config, accounts(), seed=2)
    journal = open_journal(ex, tmp_path / "j")
    spec = ex.symbols["XYZUSDT"]
    for i in range(60):
        bids, asks = ex.depth(spec, 1)
        rows = np.zeros(4, dtype=ORDER_IN)
        rows["op"] = [1, 1, 2, 3]
        rows["side"] = [1, -1, 1 if i % 2 else -1, 0]
        rows["qty"] = [3, 2, 1, 0]
        rows["price"] = [bids[0][0], asks[0][0] - (i % 3), 0, 0]
        rows["order_id"][3] = max(ex.open_orders[ex.accounts[0].owner], default=1)
        ex.run_batch([Request("frame", ex.accounts[0], {
            "records": base64.b64encode(rows.tobytes()).decode()})], step=True,
            ts=10**15 + i * 10**8)
    journal.close()
    again = recover(tmp_path / "j", accounts())
    assert len(again.orders) == len(ex.orders) > 60
    for oid, order in ex.orders.items():
        twin = again.orders[oid]
        assert (order.status, order.executed, order.quote, order.lock) == (
            twin.status, twin.executed, twin.quote, twin.lock)
    for asset in ("USDT", "XYZ"):
        assert ex.total(ex.accounts[0], asset) == again.total(again.accounts[0], asset)
    assert ex.depth(spec, 50) == again.depth(spec, 50)
    again.journal.close()
