"""Helpers for the exchange-server tests: a real ``rltrader serve`` on a free loopback
port, its accounts file, and ccxt clients pointed at it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ACCOUNTS = {
    "alice": ("alice-key", "alice-secret", {"USDT": "100000", "XYZ": "1000"}),
    "bob": ("bob-key", "bob-secret", {"USDT": "100000", "XYZ": "1000"}),
    "carol": ("carol-key", "carol-secret", {"USDT": "50"}),
}
SYMBOL = "XYZUSDT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_accounts(path: Path, accounts: dict | None = None) -> Path:
    lines = []
    for name, (key, secret, balances) in (accounts or ACCOUNTS).items():
        lines += ["[[accounts]]", f'name = "{name}"', f'api_key = "{key}"',
                  f'secret = "{secret}"', "[accounts.balances]"]
        lines += [f'{asset} = "{amount}"' for asset, amount in balances.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@contextmanager
def running_server(tmp: Path, *args: str, timeout: float = 30.0,
                   accounts: dict | None = None) -> Iterator[str]:
    """``rltrader serve resilient --accounts ... ARGS`` on a free port (``accounts``: as
    :data:`ACCOUNTS`, which is the default); yields its base URL (``http://127.0.0.1:PORT``)
    once ``/api/v3/ping`` answers; stopped (SIGTERM, then killed) at the end."""
    with _serving(tmp, args, timeout, accounts, analytics=False) as (url, _):
        yield url


@contextmanager
def running_servers(tmp: Path, *args: str, timeout: float = 30.0,
                    accounts: dict | None = None) -> Iterator[tuple[str, str]]:
    """:func:`running_server` with ``--analytics`` on a free port of its own; yields the
    exchange's and the analytics server's base URLs."""
    with _serving(tmp, args, timeout, accounts, analytics=True) as urls:
        yield urls


@contextmanager
def _serving(tmp: Path, args: tuple[str, ...], timeout: float, accounts: dict | None,
             analytics: bool) -> Iterator[tuple[str, str]]:
    """The servers of :func:`running_server` and :func:`running_servers`. A port taken
    between :func:`free_port` and the server's bind (another process got it first) is
    retried on fresh ports, twice at most."""
    accounts = write_accounts(tmp / "accounts.toml", accounts)
    for attempt in range(3):
        port, analytics_port = free_port(), free_port()
        more = ["--analytics", "--analytics-port", str(analytics_port)] if analytics else []
        log_path = tmp / f"serve-{port}.log"
        log = open(log_path, "w")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rltrader.tools.cli", "serve", "resilient", "--port",
             str(port), "--accounts", str(accounts), *more, *args],
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            if wait_ping(url, proc, log_path, timeout, retry_taken=attempt < 2):
                yield url, f"http://127.0.0.1:{analytics_port}"
                return
        finally:
            stop(proc)
            log.close()


def wait_ping(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 30.0,
              retry_taken: bool = False) -> bool:
    """True once ``url``'s ``/api/v3/ping`` answers; False when the server exited because
    its port was taken and ``retry_taken`` is set; else raises with the server's log
    (``log_path``) when it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answered = httpx.get(f"{url}/api/v3/ping", timeout=1.0).status_code == 200
            if answered and proc.poll() is None:   # ours, not another process's
                return True
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            text = log_path.read_text()
            taken = "address already in use" in text.lower()
            if proc.returncode is not None and retry_taken and taken:
                return False
            raise RuntimeError(f"server did not start: {text}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then killed after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ccxt_client(url: str, name: str | None = None):  # type: ignore[no-untyped-def]
    """A ``ccxt.binance`` pointed at the server, with ``name``'s keys."""
    import ccxt

    config: dict = {"enableRateLimit": False, "options": {
        "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
        "fetchMargins": False}}
    if name is not None:
        config["apiKey"], config["secret"] = ACCOUNTS[name][:2]
    client = ccxt.binance(config)
    client.urls["api"]["public"] = f"{url}/api/v3"
    client.urls["api"]["private"] = f"{url}/api/v3"
    return client


def signed(url: str, method: str, path: str, name: str, params: dict | None = None, *,
           secret: str | None = None, timestamp: int | None = None,
           key: str | None = None) -> httpx.Response:
    """A signed request as Binance documents it (query for GET/DELETE, form body for
    POST), with ``name``'s keys unless ``secret``/``key`` override them."""
    import hashlib
    import hmac
    from urllib.parse import urlencode

    api_key, api_secret = ACCOUNTS[name][:2]
    fields = dict(params or {})
    fields["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
    payload = urlencode(fields)
    sig = hmac.new((secret or api_secret).encode(), payload.encode(), hashlib.sha256)
    payload += "&signature=" + sig.hexdigest()
    headers = {"X-MBX-APIKEY": key if key is not None else api_key}
    if method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return httpx.post(f"{url}{path}", content=payload, headers=headers, timeout=10)
    return httpx.request(method, f"{url}{path}?{payload}", headers=headers, timeout=10)
