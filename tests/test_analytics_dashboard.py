"""The live dashboard in a real browser: Debian's headless Chromium, driven by Playwright,
loads the page of a real ``rltrader analytics --simulate thin`` on loopback, and the charts'
data sources must hold what a separate WebSocket client of the same server receives.

- candles: every bar the page shows as closed since the client subscribed has the client's
  open, high, low, close and volume for that bar (and the page saw bars close live);
- depth: the levels the depth chart draws are those of a ``depth`` message the client got
  (the same message, by its source time), so the best bid and ask match;
- the trade tape's newest row is a trade the client got;
- indicators, samples and the agents' panel (the simulated populations) hold rows;
- paused, the charts stand still (the screenshot is taken then); resumed, they go on.

The page's screenshot is kept in pytest's folder and copied to ``$RLTRADER_ARTIFACTS``
when that is set. The browser test skips (saying why) only without ``/usr/bin/chromium``
or Playwright; Playwright's own browser download is never used. Without a browser, the
page and every script it loads are still checked to be served, BokehJS from the installed
``bokeh`` (no CDN).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from _analytics import running_analytics
from starlette.applications import Starlette

from rltrader.analytics.dashboard import bokeh_js_dir, dashboard_routes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SYMBOL = "XYZUSDT"
STREAMS = [f"{SYMBOL.lower()}@kline_1s", f"{SYMBOL.lower()}@depth", f"{SYMBOL.lower()}@trade"]



def browser_api():  # type: ignore[no-untyped-def]
    """Playwright's sync API, or the test skips saying what is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (Debian's chromium package; .ci/run installs it)")
    return pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install playwright)")


async def _get_all(paths: list[str]) -> dict[str, httpx.Response]:
    """``paths`` from the dashboard's routes alone, in this process."""
    transport = httpx.ASGITransport(app=Starlette(routes=dashboard_routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        return {path: await client.get(path) for path in paths}


def test_dashboard_serves_its_page_and_bokehjs_locally() -> None:
    page = asyncio.run(_get_all(["/"]))["/"]
    assert page.status_code == 200
    files = [*re.findall(r'<script src="([^"]+)"', page.text),
             *re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)]
    assert len(files) >= 5 and all(f.startswith("/dashboard/") for f in files), files
    got = asyncio.run(_get_all(["/dashboard", *files]))
    assert got["/dashboard"].text == page.text
    assert all(got[f].status_code == 200 for f in files), files
    assert got["/dashboard/bokeh/bokeh.min.js"].content == \
        (bokeh_js_dir() / "bokeh.min.js").read_bytes()
    layout = re.search(r'<script type="application/json" id="rltrader-layout">(.*?)</script>',
                       page.text, re.S)
    assert layout is not None
    item = json.loads(layout.group(1))           # bokeh.embed.json_item's output
    assert item["target_id"] == "rltrader-root" and item["doc"]["roots"]
    names = set(re.findall(r'"name":"([a-z_]+)"', layout.group(1)))
    assert {"candles", "indicators", "samples", "depth_bids", "depth_asks", "trades",
            "agents", "agent_pnl", "agents_panel", "tape"} <= names


class StreamRecorder(threading.Thread):
    """A plain WebSocket client of the server, subscribed to the page's kline, depth and
    trade streams, keeping what it receives until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = "ws" + url.removeprefix("http") + "/ws"
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        self.closed_bars: dict[int, tuple[float, ...]] = {}
        self.depth: dict[int, tuple[list, list]] = {}
        self.trades: set[tuple[int, float, float]] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(self.url, open_timeout=10) as ws:
                ws.send(json.dumps({"method": "SUBSCRIBE", "params": STREAMS, "id": 1}))
                while not self.stopping.is_set():
                    try:
                        message = json.loads(ws.recv(timeout=0.2))
                    except TimeoutError:
                        continue
                    self.keep(message)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            self.error = exc
            self.subscribed.set()

    def keep(self, m: dict) -> None:
        if m.get("id") == 1:
            assert m == {"result": None, "id": 1}, m
            self.subscribed.set()
        elif m.get("e") == "kline" and m["k"]["x"]:
            k = m["k"]
            self.closed_bars[k["t"]] = tuple(float(k[f]) for f in "ohlcv")
        elif m.get("e") == "depth":
            self.depth[m["ns"]] = ([[float(p), float(q)] for p, q in m["b"]],
                                   [[float(p), float(q)] for p, q in m["a"]])
        elif m.get("e") == "trade":
            self.trades.add((m["T"], float(m["p"]), float(m["q"])))


# What the page holds, read in one go (the page's script cannot run in between): its
# counters and the named ColumnDataSources of the Bokeh document.
READ_PAGE = """() => {
  const doc = Bokeh.documents[0];
  const columns = (name, fields) => Object.fromEntries(fields.map(
      (f) => [f, Array.from(doc.get_model_by_name(name).data[f])]));
  const state = Object.assign({}, window.rltraderDashboard);
  return {
    state: state,
    candles: columns("candles", ["t", "open", "high", "low", "close", "volume"]),
    bids: columns("depth_bids", ["price", "qty"]),
    asks: columns("depth_asks", ["price", "qty"]),
    trades: columns("trades", ["price", "qty"]),
    indicators: columns("indicators", ["t", "sma", "ema", "bb_upper"]),
    samples: columns("samples", ["t", "mid", "spread", "imbalance_5"]),
    agents: columns("agents", ["name", "position", "pnl", "volume_share"]),
    agentsShown: doc.get_model_by_name("agents_panel").visible,
  };
}"""

LIVE = """() => {
  const d = window.rltraderDashboard;
  return d && d.ready && d.closedCandles >= 20 && d.depthLevels > 0 && d.trades > 0
      && d.samples > 0 && d.indicators > 0 && d.agents > 0;
}"""


def save_screenshot(page, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    artifacts = os.environ.get("RLTRADER_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "dashboard.png")
    return shot


def test_dashboard_charts_show_the_stream(tmp_path: Path) -> None:
    sync_api = browser_api()
    with running_analytics(tmp_path, "--simulate", "thin", "--speed", "20") as url:
        recorder = StreamRecorder(url)
        recorder.start()
        assert recorder.subscribed.wait(10) and recorder.error is None, recorder.error
        errors: list[str] = []
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{url}/?symbol={SYMBOL}&interval=1s")
                page.wait_for_function(LIVE, timeout=20_000, polling=100)
                page.click("#pause")     # still charts: what is read is what is shown
                seen = page.evaluate(READ_PAGE)
                time.sleep(0.5)          # the client gets what the page had, and more
                recorder.stopping.set()
                recorder.join(5)
                shot = save_screenshot(page, tmp_path)
                page.click("#pause")     # resume: the symbol loads again and goes on
                page.wait_for_function(f"() => !window.rltraderDashboard.paused && "
                                       f"window.rltraderDashboard.closedCandles > 0 && "
                                       f"window.rltraderDashboard.lastClosed.t > "
                                       f"{seen['state']['lastClosed']['t']}", timeout=10_000)
            finally:
                browser.close()
    assert recorder.error is None, recorder.error
    state = seen["state"]
    assert not errors and state["error"] is None, (errors, state["error"])
    assert state["connected"] and state["paused"]
    assert state["symbol"] == SYMBOL and state["interval"] == "1s"

    # Candles: the bars closed before the page's last closed one are final in both.
    candles = seen["candles"]
    rows = {t: tuple(candles[f][i] for f in ("open", "high", "low", "close", "volume"))
            for i, t in enumerate(candles["t"])}
    last = state["lastClosed"]
    both = [t for t in sorted(recorder.closed_bars) if t in rows and t <= last["t"]]
    assert len(both) >= 3, (len(recorder.closed_bars), len(rows), last)
    for t in both:
        assert rows[t] == recorder.closed_bars[t], (t, rows[t], recorder.closed_bars[t])
    assert recorder.closed_bars[last["t"]][3] == last["close"] == rows[last["t"]][3]
    assert candles["t"] == sorted(candles["t"]) and len(set(candles["t"])) == len(candles["t"])

    # Depth: the chart draws the levels of one depth message the client got too.
    assert state["depthTime"] in recorder.depth, state["depthTime"]
    bids, asks = recorder.depth[state["depthTime"]]
    for side, levels in (("bids", bids), ("asks", asks)):
        drawn = seen[side]
        assert [[p, q] for p, q in zip(drawn["price"], drawn["qty"], strict=True)] == levels
    assert state["bestBid"] == bids[0][0] < state["bestAsk"] == asks[0][0]
    assert state["depthLevels"] == len(bids) + len(asks) > 0

    # The tape's newest row is a trade of the stream.
    trade = state["lastTrade"]
    assert (trade["time"], trade["price"], trade["qty"]) in recorder.trades
    assert (seen["trades"]["price"][0], seen["trades"]["qty"][0]) == (trade["price"],
                                                                        trade["qty"])

    # Indicators (SMA out of its warm-up), samples and the populations' panel hold rows.
    assert any(x is not None and x == x for x in seen["indicators"]["sma"])
    assert len(seen["samples"]["t"]) > 0 and seen["agentsShown"]
    assert seen["agents"]["name"] and abs(sum(seen["agents"]["volume_share"]) - 1) < 1e-9

    assert shot.stat().st_size > 20_000
