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
