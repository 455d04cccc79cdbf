"""Binary order entry (``/orders``) into ``rltrader serve``: orders/s and frame round-trip
time by frame size, on loopback.

One client connection sends frames of N limit buys far below the market (they rest), waits
for the acks, then a frame cancelling them, and so on for ``--seconds``; new orders and
cancels both count. The server runs the ``resilient`` market in real time in a subprocess;
its CPU time per order (``/proc``) gives the rate one server core sustains, apart from the
client that shares this machine.

    python benchmarks/exchange_binary.py --frames 10,100,1000,4096 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _exchange import free_port, write_accounts  # noqa: E402
from exchange_rest import server_cpu_s  # noqa: E402

from rltrader.exchange.order_entry import ORDER_ACK, ORDER_IN  # noqa: E402


def wait_for(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v3/ping", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


async def run(url: str, n: int, seconds: float) -> tuple[float, list[float]]:
    async with websockets.connect(url.replace("http", "ws") + "/orders",
                                  max_size=1 << 24) as ws:
        ms = int(time.time() * 1000)
        signature = hmac.new(b"alice-secret", f"alice-key{ms}".encode(),
                             hashlib.sha256).hexdigest()
        await ws.send(json.dumps({"apiKey": "alice-key", "timestamp": ms,
                                  "signature": signature}))
        await ws.recv()
        new = np.zeros(n, dtype=ORDER_IN)
        new["tag"], new["op"], new["side"], new["qty"], new["price"] = np.arange(n), 1, 1, 1, 1
        cancel = np.zeros(n, dtype=ORDER_IN)
        cancel["op"] = 3
        trips, orders = [], 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            await ws.send(new.tobytes())
            acks = np.frombuffer(await ws.recv(), dtype=ORDER_ACK)
            trips.append(time.perf_counter() - t)
            if np.any(acks["code"]):
                raise RuntimeError(f"refused: {acks[acks['code'] != 0][:3]}")
            cancel["order_id"] = acks["order_id"]
            await ws.send(cancel.tobytes())
            await ws.recv()
            orders += 2 * n
        return orders / (time.perf_counter() - start), trips


def sequencer_only(n: int, rounds: int = 21) -> float:
    """Orders/s of the sequencer alone, in process: frames of ``n`` resting buys, then
    their cancels (``Exchange.run_batch``; median of ``rounds``)."""
    import base64

    from rltrader import preset
    from rltrader.exchange.accounts import parse_accounts
    from rltrader.exchange.engine import Exchange, Request
    from rltrader.exchange.server import specs_of

    config = preset("resilient").replace(copies=1)
    account = parse_accounts({"accounts": [{"name": "a", "api_key": "a-key",
                                            "secret": "a-secret-x",
                                            "balances": {"USDT": "100000000"}}]},
                             specs_of(config, "USDT", "1"))[0]
    ex = Exchange(config, [account], seed=1)
    new = np.zeros(n, dtype=ORDER_IN)
    new["op"], new["side"], new["qty"], new["price"] = 1, 1, 1, 100
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        placed = Request("frame", account, {"records": base64.b64encode(new).decode()})
        ex.run_batch([placed], step=False, ts=10**15 + i)
        cancel = np.zeros(n, dtype=ORDER_IN)
        cancel["op"], cancel["order_id"] = 3, placed.result.acks["order_id"]
        ex.run_batch([Request("frame", account, {"records": base64.b64encode(
            cancel).decode()})], step=False, ts=10**15 + i)
        times.append(time.perf_counter() - start)
    return 2 * n / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="10,100,1000,4096")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print(f"sequencer alone, frames of 2,000 orders then their cancels: "
          f"{sequencer_only(2000):,.0f} orders/s")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        accounts = write_accounts(Path(tmp) / "accounts.toml")
        proc = subprocess.Popen([sys.executable, "-m", "rltrader.tools.cli", "serve",
                                 "resilient", "--port", str(port), "--accounts", str(accounts),
                                 "--orders-per-10s", "100000000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url)
            print("orders/frame  orders/s  frame round trip p50 ms  server CPU us/order  "
                  "orders/s per server core")
            for n in (int(x) for x in args.frames.split(",")):
                cpu0 = server_cpu_s(proc.pid)
                start = time.perf_counter()
                rate, trips = asyncio.run(run(url, n, args.seconds))
                orders = rate * (time.perf_counter() - start)
                cpu = server_cpu_s(proc.pid) - cpu0
                print(f"{n:12d}  {rate:8.0f}  {statistics.median(trips) * 1e3:23.2f}  "
                      f"{cpu / orders * 1e6:19.2f}  {orders / cpu:24.0f}")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
