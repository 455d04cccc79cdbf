"""End-to-end latency of live analytics: from a fill in the exchange's sequencer to the
published update, received by each of N WebSocket subscribers (and one ZeroMQ SUB) on
loopback.

The server is ``rltrader serve resilient --speed S --analytics --zmq ...`` in a subprocess:
the hub runs in the exchange's process as a listener of its batches. Every payload the hub
derives from a batch carries ``"ns"``, the batch's timestamp (the sequencer's clock when
the batch began, before the core matched it). N ``websockets`` clients in this process
each subscribe to ``xyzusdt@kline_1s`` and ``xyzusdt@trade``; a kline update with
``"x": false`` is pushed because a fill changed the bar in progress. The latency of a
message is its receipt (``time.time_ns()`` here, the same machine's clock) minus ``ns``:
the core's matching, the exchange's bookkeeping, the features, the JSON, the fan-out to N
queues, loopback TCP and the client's decoding (N clients share this one Python process,
so the last of them reads a message up to N decodes later). Each repeat is a fresh
server; medians over repeats last.

    python benchmarks/analytics_latency.py --subscribers 100 --seconds 5 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

import httpx
import websockets
import zmq
import zmq.asyncio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(speed: float) -> tuple[subprocess.Popen, str, str]:
    port, analytics, zport = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rltrader.tools.cli", "serve", "resilient",
                             "--port", str(port), "--speed", str(speed), "--analytics",
                             "--analytics-port", str(analytics), "--zmq",
                             f"tcp://127.0.0.1:{zport}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{analytics}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://{host}/api/v3/ping", timeout=1).status_code == 200:
                return proc, host, f"tcp://127.0.0.1:{zport}"
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.1)


def _fill_driven(m: dict) -> str | None:
    """``"kline"`` or ``"trade"`` for a message a fill produced, else None."""
    if m.get("e") == "trade":
        return "trade"
    if m.get("e") == "kline" and not m["k"]["x"]:
        return "kline"
    return None


async def subscriber(host: str, start: asyncio.Event, stop: asyncio.Event,
                     delays: dict[str, list[float]]) -> None:
    async with websockets.connect(f"ws://{host}/ws", max_queue=None) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [
            "xyzusdt@kline_1s", "xyzusdt@trade"], "id": 1}))
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time_ns()
            m = json.loads(text)
            kind = _fill_driven(m) if isinstance(m, dict) else None
            if kind and start.is_set() and not stop.is_set():
                delays[kind].append((now - m["ns"]) / 1e6)


async def zmq_subscriber(endpoint: str, start: asyncio.Event, stop: asyncio.Event,
                         delays: list[float]) -> None:
    sock = zmq.asyncio.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.setsockopt(zmq.SUBSCRIBE, b"xyzusdt@kline_1s")
    try:
        while not stop.is_set():
            if not await sock.poll(500):
                continue
            _, raw = await sock.recv_multipart()
            now = time.time_ns()
            m = json.loads(raw)
            if _fill_driven(m) and start.is_set() and not stop.is_set():
                delays.append((now - m["ns"]) / 1e6)
    finally:
        sock.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def one_run(host: str, endpoint: str, n: int, seconds: float) -> dict[str, tuple]:
    start, stop = asyncio.Event(), asyncio.Event()
    delays: dict[str, list[float]] = {"kline": [], "trade": []}
    zmq_delays: list[float] = []
    tasks = [asyncio.create_task(subscriber(host, start, stop, delays)) for _ in range(n)]
    tasks.append(asyncio.create_task(zmq_subscriber(endpoint, start, stop, zmq_delays)))
    await asyncio.sleep(1.5)                # connected and subscribed, queues warm
    start.set()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    out = {f"ws {k}": (len(v), _pct(v, 0.5), _pct(v, 0.99)) for k, v in delays.items()}
    out["zmq kline"] = (len(zmq_delays), _pct(zmq_delays, 0.5), _pct(zmq_delays, 0.99))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed", type=float, default=5.0, help="server --speed (default 5)")
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, websockets {websockets.__version__}, "
          f"pyzmq {zmq.__version__}")
    print(f"{args.subscribers} WebSocket subscribers (xyzusdt@kline_1s + @trade) and 1 "
          f"ZeroMQ SUB, server --speed {args.speed}, {args.seconds:g} s x {args.repeats}")
    print("fill (batch ns) -> received, ms")
    print(f"{'run':>6} {'stream':<10} {'messages':>9} {'p50':>8} {'p99':>8}")
    rows: dict[str, list[tuple]] = {}
    for k in range(args.repeats):
        proc, host, endpoint = start_server(args.speed)
        try:
            result = asyncio.run(one_run(host, endpoint, args.subscribers, args.seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        for name, (count, p50, p99) in result.items():
            rows.setdefault(name, []).append((count, p50, p99))
            print(f"{k + 1:>6} {name:<10} {count:>9} {p50:>8.2f} {p99:>8.2f}")
    for name, runs in rows.items():
        med = [statistics.median(r[i] for r in runs) for i in range(3)]
        print(f"{'median':>6} {name:<10} {med[0]:>9.0f} {med[1]:>8.2f} {med[2]:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
