"""REST order entry into ``rltrader serve``: orders/s and ack latency (p50, p99) with N
concurrent clients on loopback.

Each client is one account with its own HTTP connection (``httpx.AsyncClient``, keep-alive)
that sends signed ``POST /api/v3/order`` requests back to back: LIMIT GTC buys far below
the market (they rest, nothing fills), each followed by its ``DELETE``, so that the book
stays the same size. The server runs the ``resilient`` market in real time in a subprocess
(``rltrader serve``), single process, one core for the event loop. The client runs in this
process on the machine's other core.

    python benchmarks/exchange_rest.py --clients 1,4,16 --seconds 5

The output gives, per client count: orders/s (new + cancel counted as two), the new-order
ack latency p50 and p99 in ms, and the server's CPU time per order (from ``/proc``) with the
rate one server core would sustain at that cost: on a 2-core machine the client takes the
other core and more, so the measured rate is the client's limit as much as the server's.
``--profile`` runs the server under ``cProfile`` and prints its top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _exchange import free_port  # noqa: E402


def accounts_file(path: Path, n: int) -> Path:
    lines = []
    for k in range(n):
        lines += ["[[accounts]]", f'name = "c{k}"', f'api_key = "key-{k}"',
                  f'secret = "secret-{k}-xxxx"', "[accounts.balances]",
                  'USDT = "1000000000"', ""]
    path.write_text("\n".join(lines))
    return path


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sign(secret: str, fields: dict) -> str:
    payload = urlencode(fields)
    return payload + "&signature=" + hmac.new(secret.encode(), payload.encode(),
                                              hashlib.sha256).hexdigest()


async def client(url: str, k: int, stop: float, latencies: list[float]) -> int:
    key, secret = f"key-{k}", f"secret-{k}-xxxx"
    sent = 0
    async with httpx.AsyncClient(base_url=url, headers={"X-MBX-APIKEY": key},
                                 timeout=30) as http:
        while time.perf_counter() < stop:
            fields = {"symbol": "XYZUSDT", "side": "BUY", "type": "LIMIT",
                      "timeInForce": "GTC", "quantity": "1", "price": "1.00",
                      "newOrderRespType": "ACK", "timestamp": int(time.time() * 1000)}
            start = time.perf_counter()
            r = await http.post("/api/v3/order", content=sign(secret, fields), headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            latencies.append(time.perf_counter() - start)
            order = r.json()
            if "orderId" not in order:
                raise RuntimeError(f"order refused: {order}")
            fields = {"symbol": "XYZUSDT", "orderId": order["orderId"],
                      "timestamp": int(time.time() * 1000)}
            await http.delete("/api/v3/order?" + sign(secret, fields))
            sent += 2
    return sent


async def run(url: str, n: int, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    start = time.perf_counter()
    stop = start + seconds
    counts = await asyncio.gather(*(client(url, k, stop, latencies) for k in range(n)))
    return sum(counts) / (time.perf_counter() - start), latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--profile", action="store_true",
                        help="run the server under cProfile and print its top functions")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.clients.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        accounts = accounts_file(Path(tmp) / "accounts.toml", max(counts))
        prof = Path(tmp) / "serve.prof"
        cmd = [sys.executable, "-m", "rltrader.tools.cli", "serve", "resilient", "--port",
               str(port), "--accounts", str(accounts), "--orders-per-10s", "100000000",
               "--weight-per-minute", "100000000"]
        if args.profile:
            cmd[1:1] = ["-m", "cProfile", "-o", str(prof)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/api/v3/ping", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            print("clients  orders/s  ack p50 ms  ack p99 ms  server CPU us/order  "
                  "orders/s per server core")
            for n in counts:
                cpu0 = server_cpu_s(proc.pid)
                rate, lat = asyncio.run(run(url, n, args.seconds))
                cpu = server_cpu_s(proc.pid) - cpu0
                orders = rate * args.seconds
                q = statistics.quantiles(lat, n=100)
                print(f"{n:7d}  {rate:8.0f}  {statistics.median(lat) * 1e3:10.2f}  "
                      f"{q[98] * 1e3:10.2f}  {cpu / orders * 1e6:19.0f}  "
                      f"{orders / cpu:24.0f}")
        finally:
            proc.send_signal(2)             # SIGINT: uvicorn shuts down, cProfile writes
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.profile and prof.exists():
            import pstats

            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
