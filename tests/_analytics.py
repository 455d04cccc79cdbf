"""Helpers for the analytics-server tests: a real ``rltrader analytics`` on a free loopback
port, and ccxt.pro / raw WebSocket clients pointed at it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _exchange import free_port, stop, wait_ping


@contextmanager
def running_analytics(tmp: Path, *args: str, timeout: float = 30.0) -> Iterator[str]:
    """``rltrader analytics ARGS --port P``; yields ``http://127.0.0.1:P`` once it answers;
    stopped (SIGTERM, then killed) at the end."""
    port = free_port()
    log_path = tmp / f"analytics-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "rltrader.tools.cli", "analytics", *args,
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ping(url, proc, log_path, timeout)
        yield url
    finally:
        stop(proc)
        log.close()


def pro_client(url: str) -> Any:
    """An unmodified ``ccxt.pro.binance`` whose REST and WebSocket are ``url``'s."""
    import ccxt.pro

    host = url.removeprefix("http://")
    ex = ccxt.pro.binance({"enableRateLimit": False, "options": {
        "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
        "fetchMargins": False}})
    ex.urls["api"]["ws"]["spot"] = f"ws://{host}/ws"
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = f"{url}/api/v3"
    return ex


def run(coro: Any, timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def answer(ws: Any, rid: Any) -> dict:
    """The next message whose ``id`` is ``rid`` (stream payloads in between skipped)."""
    while True:
        m = json.loads(await ws.recv())
        if isinstance(m, dict) and "id" in m and m["id"] == rid:
            return m


async def first(ws: Any, event: str, where: Any = lambda d: True) -> dict:
    """The next payload of kind ``event`` for which ``where`` holds."""
    while True:
        m = json.loads(await ws.recv())
        data = m.get("data", m) if isinstance(m, dict) else m
        if isinstance(data, dict) and data.get("e") == event and where(data):
            return data
