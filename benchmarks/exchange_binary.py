"""Binary order entry (``/orders``) into ``rltrader serve``: orders/s and frame round-trip
time by frame size, on loopback.

One client connection sends frames of N limit buys far below the market (they rest), waits
for the acks, then a frame cancelling them, and so on for ``--seconds``; new orders and
cancels both count. The server runs the ``resilient`` market in real time in a subprocess.

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
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _exchange import running_server  # noqa: E402

from rltrader.exchange.order_entry import ORDER_ACK, ORDER_IN  # noqa: E402


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="10,100,1000,4096")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(
            Path(tmp), "--orders-per-10s", "100000000") as url:
        print("orders/frame  orders/s  frame round trip p50 ms")
        for n in (int(x) for x in args.frames.split(",")):
            rate, trips = asyncio.run(run(url, n, args.seconds))
            print(f"{n:12d}  {rate:8.0f}  {statistics.median(trips) * 1e3:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
