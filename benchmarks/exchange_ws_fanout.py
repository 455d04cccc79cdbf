"""WebSocket depth fan-out of ``rltrader serve``: messages/s delivered to N subscribers on
loopback and the delay from each event's time ``E`` (the server's clock when it published
it) to its receipt (this process's clock: the same machine's).

The server runs the ``resilient`` market in a subprocess (``rltrader serve --speed S``);
N ``websockets`` clients in this process each subscribe to ``xyzusdt@depth@100ms`` (and
whatever ``--streams`` adds) on their own connection and count what arrives for
``--seconds`` (the messages that carry ``E``: ``bookTicker`` has none). Each repeat is a
fresh server; the medians over the repeats are printed last, with the server's CPU time
per delivered message (``/proc``).

    python benchmarks/exchange_ws_fanout.py --subscribers 100 --seconds 5 --repeats 3

The delay includes the client's own decoding: with N clients in one Python process, the
client is as much the limit as the server.
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
import tempfile
import time
from pathlib import Path

import httpx
import websockets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(tmp: Path, speed: float) -> tuple[subprocess.Popen, str]:
    accounts = tmp / "accounts.toml"
    accounts.write_text('[[accounts]]\nname = "a"\napi_key = "a-key"\nsecret = "a-secret"\n')
    port = free_port()
    script = Path(sys.executable).parent / "rltrader"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rltrader.tools.cli"]
    proc = subprocess.Popen([*cmd, "serve", "resilient", "--port", str(port), "--accounts",
                             str(accounts), "--speed", str(speed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://{host}/api/v3/ping", timeout=1).status_code == 200:
                return proc, host
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.1)


async def subscriber(host: str, streams: list[str], start: asyncio.Event, stop: asyncio.Event,
                     delays: list[float], counts: list[int]) -> None:
    async with websockets.connect(f"ws://{host}/ws", max_queue=None) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}))
        n = 0                                   # read from the start, count once started
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time_ns() / 1e6
            m = json.loads(text)
            if "E" in m and start.is_set() and not stop.is_set():
                delays.append(now - m["E"])
                n += 1
        counts.append(n)


async def one_run(host: str, n: int, streams: list[str], seconds: float) -> tuple:
    start, stop = asyncio.Event(), asyncio.Event()
    delays: list[float] = []
    counts: list[int] = []
    tasks = [asyncio.create_task(subscriber(host, streams, start, stop, delays, counts))
             for _ in range(n)]
    await asyncio.sleep(1.0)                # connected and subscribed, queues warm
    start.set()
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    stop.set()
    elapsed = time.monotonic() - t0
    await asyncio.gather(*tasks)
    delays.sort()
    p = (lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]) if delays else (
        lambda q: float("nan"))
    return sum(counts) / elapsed, p(0.5), p(0.99), len(counts), min(counts, default=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed", type=float, default=5.0, help="server --speed (default 5)")
    ap.add_argument("--streams", default="", help="more streams per subscriber, comma "
                    "separated (e.g. xyzusdt@trade)")
    args = ap.parse_args(argv)
    streams = ["xyzusdt@depth@100ms", *[s for s in args.streams.split(",") if s]]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, websockets {websockets.__version__}")
    print(f"{args.subscribers} subscribers to {', '.join(streams)}, server --speed "
          f"{args.speed}, {args.seconds:g} s x {args.repeats}")
    print(" run     msgs/s   E->recv p50 ms   p99 ms   server CPU us/msg (all its work)")
    rows = []
    for k in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            proc, host = start_server(Path(tmp), args.speed)
            try:
                cpu0 = server_cpu_s(proc.pid)
                rate, p50, p99, n, least = asyncio.run(
                    one_run(host, args.subscribers, streams, args.seconds))
                cpu = server_cpu_s(proc.pid) - cpu0
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        per_msg = cpu / max(1.0, rate * args.seconds) * 1e6
        rows.append((rate, p50, p99, per_msg))
        print(f"{k + 1:4d}  {rate:9.0f}  {p50:15.2f}  {p99:7.2f}  {per_msg:18.1f}"
              f"   ({n} clients, fewest messages {least})")
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(f"median {med[0]:9.0f}  {med[1]:15.2f}  {med[2]:7.2f}  {med[3]:18.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
