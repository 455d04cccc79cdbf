"""Unmodified ccxt.pro ``watch_ohlcv`` receives bars from the analytics server, in both of
its forms, each a real process on loopback: ``rltrader serve --analytics`` (the hub in the
exchange's process, fed by its batches) and ``rltrader analytics --connect`` (a separate
process following that exchange's public streams). The bars agree with the server's REST
klines, and the two servers' closed bars agree with each other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("talib")
pytest.importorskip("websockets")
httpx = pytest.importorskip("httpx")
pytest.importorskip("ccxt.pro")

from _analytics import pro_client, run, running_analytics  # noqa: E402
from _exchange import running_servers  # noqa: E402

SYMBOL = "XYZUSDT"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """``rltrader serve --analytics`` (5x real time): the exchange's and the analytics'
    URLs."""
    tmp = tmp_path_factory.mktemp("ccxt")
    with running_servers(tmp, "--speed", "5") as (url, analytics):
        deadline = time.monotonic() + 10                # the same process: up already
        while httpx.get(f"{analytics}/api/v3/ping").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield url, analytics, tmp


def _watch(url: str, timeframe: str, n_bars: int) -> list[list]:
    """Successive results of ``watch_ohlcv`` (each: the bars ccxt holds) until they have
    shown ``n_bars`` distinct bars."""
    async def main() -> list[list]:
        ex = pro_client(url)
        try:
            out: list[list] = []
            seen: set[int] = set()
            while len(seen) < n_bars:
                out.append([list(c) for c in await ex.watch_ohlcv("XYZ/USDT", timeframe)])
                seen.update(c[0] for c in out[-1])
            return out
        finally:
            await ex.close()

    return run(main())


def _check(url: str, got: list[list], ms: int) -> None:
    rest = {k[0]: k for k in httpx.get(f"{url}/api/v3/klines", params={
        "symbol": SYMBOL, "interval": "1s" if ms == 1000 else "1m", "limit": 1000}).json()}
    times = set()
    for bars in got:
        for t, o, h, lo, c, v in bars:
            assert t % ms == 0 and lo <= min(o, c) <= max(o, c) <= h and v >= 0
            times.add(t)
    t, o, h, lo, c, v = got[0][-1]
    k = rest[t]                        # the same bar over REST, read later: it only grew
    assert float(k[1]) == o and float(k[2]) >= h and float(k[3]) <= lo
    assert float(k[5]) >= v


def test_watch_ohlcv_from_serve_analytics(served: tuple[str, str, Path]) -> None:
    _, analytics, _ = served
    _check(analytics, _watch(analytics, "1s", 3), 1000)


def test_watch_ohlcv_1m_from_serve_analytics(served: tuple[str, str, Path]) -> None:
    _, analytics, _ = served
    t, o, h, lo, c, v = _watch(analytics, "1m", 1)[-1][-1]
    assert t % 60_000 == 0 and lo <= min(o, c) <= max(o, c) <= h


def test_watch_ohlcv_from_standalone_connect(served: tuple[str, str, Path]) -> None:
    exchange, analytics, tmp = served
    with running_analytics(tmp, "--connect", exchange) as url:
        got = _watch(url, "1s", 5)
        _check(url, got, 1000)
        mine = {k[0]: k for k in httpx.get(f"{url}/api/v3/klines", params={
            "symbol": SYMBOL, "interval": "1s", "limit": 1000}).json()}
    theirs = {k[0]: k for k in httpx.get(f"{analytics}/api/v3/klines", params={
        "symbol": SYMBOL, "interval": "1s", "limit": 1000}).json()}
    # the connected server saw the same trades: its closed bars, but its first (joined
    # late) and last (still open), are the in-process server's
    common = sorted(set(mine) & set(theirs))[1:-1]
    assert len(common) >= 2
    for t in common:
        assert mine[t][1:9] == theirs[t][1:9], t
