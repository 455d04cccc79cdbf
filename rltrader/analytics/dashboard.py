"""The live dashboard: one HTML page, its Bokeh layout and BokehJS, served by the analytics
process itself (no CDN, no Bokeh server).

The layout (figures, tables and their ``ColumnDataSource`` objects, each with a ``name``)
is built here with Bokeh and embedded in the page as a :func:`bokeh.embed.json_item`;
``static/dashboard.js`` embeds it, opens the same process's WebSocket ``/ws``, subscribes to
one symbol's streams (docs/analytics.md, "Live") and streams their
payloads into the sources by name. BokehJS is served from the installed ``bokeh`` package,
so the page's JavaScript always matches the Python that built the layout.

Routes (:func:`dashboard_routes`): ``GET /`` and ``GET /dashboard`` (the page),
``/dashboard/bokeh/*`` (BokehJS), ``/dashboard/static/*`` (the page's JS and CSS).

The page applies the streams' messages in batches, every 100 ms, and has a pause button
(resuming loads the symbol again). Sources it fills (the browser test reads them by name):

==================  ==============================================================================
``candles``         ``t`` (bar open, ms), ``open high low close volume`` (price / base units),
                    ``color``, ``width`` (ms): one row per bar of the chosen interval
``indicators``      ``t``, ``sma ema bb_upper bb_middle bb_lower vwap``: closed bars
``samples``         ``t``, ``mid microprice spread imbalance_1 imbalance_5 imbalance_10
                    trade_sign_imbalance``: one row per analytics sample
``depth_bids``      ``price qty cum``: the bid side of the last depth message, best first
``depth_asks``      the same for the asks
``depth_*_area``    ``x y``: the staircase under each side's step line (filled)
``trades``          ``time price qty side``: the tape, newest first
``agents``          ``name group position pnl volume_share``: the last ``agents`` rows,
                    ``t`` (the market's time then) and ``color`` (its PnL line's)
``agent_pnl``       ``xs ys name color``: each row name's PnL over time
==================  ==============================================================================
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import bokeh
from bokeh.embed import json_item
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    DataRange1d,
    DataTable,
    DatetimeTickFormatter,
    Div,
    HoverTool,
    LayoutDOM,
    Legend,
    NumberFormatter,
    Range,
    Range1d,
    StringFormatter,
    TableColumn,
)
from bokeh.plotting import figure
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
#: Bars, samples and trades the page keeps (older rows roll over).
MAX_CANDLES = 300
MAX_SAMPLES = 600
MAX_TRADES = 40

UP, DOWN = "#26a69a", "#ef5350"
TIME_HEIGHT = 170
#: Width (ms) of a time axis while its data has one time only.
SPAN = 60_000
TIME_FORMAT = {"seconds": "%H:%M:%S", "minsec": "%H:%M:%S", "minutes": "%H:%M",
               "hourmin": "%H:%M"}


def bokeh_js_dir() -> Path:
    """The installed ``bokeh`` package's BokehJS folder (``bokeh.min.js`` and friends)."""
    return Path(bokeh.__file__).parent / "server" / "static" / "js"


def _source(name: str, *columns: str) -> ColumnDataSource:
    return ColumnDataSource(name=name, data={c: [] for c in columns})


def _time_figure(title: str, tooltips: list[tuple[str, str]], x_range: Range | None = None,
                 height: int = TIME_HEIGHT) -> figure:
    """A chart over market time (ms), with a hover tool showing ``tooltips`` and the time
    of the row under the cursor."""
    fig = figure(title=title, x_axis_type="datetime", height=height,
                 x_range=x_range if x_range is not None else DataRange1d(default_span=SPAN),
                 sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset",
                 active_scroll="xwheel_zoom", toolbar_location="right")
    fig.add_tools(HoverTool(tooltips=[("time", "@t{%H:%M:%S.%3N}"), *tooltips],
                            formatters={"@t": "datetime"}))
    fig.xaxis.formatter = DatetimeTickFormatter(**TIME_FORMAT)
    fig.title.text_font_size = "11pt"
    return fig


def _small_legend(fig: figure) -> None:
    fig.legend.location = "top_left"
    fig.legend.orientation = "horizontal"
    fig.legend.label_text_font_size = "8pt"
    fig.legend.background_fill_alpha = 0.6


def _price(candles: ColumnDataSource, indicators: ColumnDataSource) -> LayoutDOM:
    """Candles (a high-low segment and an open-close body per bar) under SMA, EMA, the
    Bollinger band and the session VWAP; volume below, on the same time range."""
    price = _time_figure("Price", [("open", "@open"), ("high", "@high"), ("low", "@low"),
                                   ("close", "@close"), ("volume", "@volume")], height=420)
    band = price.varea(x="t", y1="bb_lower", y2="bb_upper", source=indicators,
                       fill_color="#7e57c2", fill_alpha=0.08)
    lines = {field: price.line(x="t", y=field, source=indicators, color=color,
                               line_dash=dash, line_width=1.5)
             for field, color, dash in (("bb_upper", "#7e57c2", "dotted"),
                                        ("bb_lower", "#7e57c2", "dotted"),
                                        ("sma", "#ff9800", "solid"),
                                        ("ema", "#1e88e5", "solid"),
                                        ("vwap", "#8d6e63", "dashed"))}
    price.segment(x0="t", y0="low", x1="t", y1="high", source=candles, color="color")
    bodies = price.vbar(x="t", width="width", top="open", bottom="close", source=candles,
                        fill_color="color", line_color="color")
    price.hover.renderers = [bodies]
    price.add_layout(Legend(items=[
        ("SMA 20", [lines["sma"]]), ("EMA 20", [lines["ema"]]),
        ("Bollinger 20/2", [band, lines["bb_upper"], lines["bb_lower"]]),
        ("session VWAP", [lines["vwap"]])], orientation="horizontal", click_policy="hide",
        label_text_font_size="8pt", padding=2, margin=0, border_line_alpha=0), "above")

    volume = _time_figure("Volume", [("volume", "@volume")], x_range=price.x_range,
                          height=140)
    volume.vbar(x="t", width="width", top="volume", bottom=0, source=candles,
                fill_color="color", line_color="color", alpha=0.7)
    return column(price, volume, sizing_mode="stretch_width")


def _book(depth_bids: ColumnDataSource, depth_asks: ColumnDataSource,
          trades: ColumnDataSource) -> LayoutDOM:
    """The depth chart (cumulative quantity by price, each side from its touch outward)
    over the trade tape."""
    depth = figure(title="Depth (cumulative)", height=300, sizing_mode="stretch_width",
                   tools="pan,wheel_zoom,reset", name="depth_figure")
    # Between two levels the depth is the nearer level's cumulative quantity: both sides
    # step "after" from the touch outward. The filled areas are drawn from staircase
    # points that the page computes (varea_step hangs BokehJS 3.9 while its source is
    # empty).
    for levels, color, label in ((depth_bids, UP, "bids"), (depth_asks, DOWN, "asks")):
        area = _source(f"{levels.name}_area", "x", "y")
        depth.varea(x="x", y1=0, y2="y", source=area, fill_color=color, fill_alpha=0.25)
        depth.step(x="price", y="cum", mode="after", source=levels, color=color,
                   line_width=2, legend_label=label)
    depth.legend.location = "top_center"
    depth.legend.orientation = "horizontal"
    depth.add_tools(HoverTool(tooltips=[("price", "@price"), ("qty", "@qty"),
                                        ("cumulative", "@cum")]))
    tape = DataTable(source=trades, name="tape", height=236, sizing_mode="stretch_width",
                     index_position=None, sortable=False, columns=[
                         TableColumn(field="time", title="time", formatter=StringFormatter()),
                         TableColumn(field="price", title="price"),
                         TableColumn(field="qty", title="qty"),
                         TableColumn(field="side", title="side")])
    return column(depth, Div(text="<b>Trades</b>"), tape, width=420)


def _microstructure(samples: ColumnDataSource) -> LayoutDOM:
    """Mid and microprice, spread, depth imbalance at 1, 5 and 10 levels. They share their
    own time range: the sample clock is not the bars' interval, and each source keeps its
    own number of rows."""
    micro = _time_figure("Mid and microprice", [("mid", "@mid"), ("microprice", "@microprice")])
    micro.line(x="t", y="mid", source=samples, color="#546e7a", legend_label="mid")
    micro.line(x="t", y="microprice", source=samples, color="#d81b60",
               legend_label="microprice")
    spread = _time_figure("Spread", [("spread", "@spread")], x_range=micro.x_range)
    spread.step(x="t", y="spread", source=samples, color="#5e35b1", mode="after")
    imbalance = _time_figure("Depth imbalance", [("top 1", "@imbalance_1"),
                                                 ("top 5", "@imbalance_5"),
                                                 ("top 10", "@imbalance_10")],
                             x_range=micro.x_range)
    imbalance.y_range = Range1d(-1.05, 1.05)
    for field, color, label in (("imbalance_1", "#00897b", "top 1"),
                                ("imbalance_5", "#fb8c00", "top 5"),
                                ("imbalance_10", "#3949ab", "top 10")):
        imbalance.line(x="t", y=field, source=samples, color=color, legend_label=label)
    _small_legend(micro)
    _small_legend(imbalance)
    return row(micro, spread, imbalance, sizing_mode="stretch_width")


def _agents(agents: ColumnDataSource, agent_pnl: ColumnDataSource) -> LayoutDOM:
    """The agents' (or groups') inventory, PnL and share of volume, and their PnL over
    time: hidden until an ``agents`` message has rows for the symbol."""
    pnl = figure(title="PnL (quote)", x_axis_type="datetime", height=TIME_HEIGHT,
                 x_range=DataRange1d(default_span=SPAN), sizing_mode="stretch_width",
                 tools="xpan,xwheel_zoom,reset", active_scroll="xwheel_zoom")
    pnl.xaxis.formatter = DatetimeTickFormatter(**TIME_FORMAT)
    pnl.multi_line(xs="xs", ys="ys", line_color="color", source=agent_pnl, line_width=2)
    heads = pnl.scatter(x="t", y="pnl", color="color", size=7, source=agents)
    pnl.add_tools(HoverTool(renderers=[heads], tooltips=[
        ("name", "@name"), ("PnL", "@pnl"), ("inventory", "@position")]))
    table = DataTable(source=agents, name="agent_table", height=TIME_HEIGHT,
                      sizing_mode="stretch_width", index_position=None, columns=[
                          TableColumn(field="name", title="name"),
                          TableColumn(field="group", title="group"),
                          TableColumn(field="position", title="inventory",
                                      formatter=NumberFormatter(format="0,0.[0000]")),
                          TableColumn(field="pnl", title="PnL",
                                      formatter=NumberFormatter(format="0,0.00")),
                          TableColumn(field="volume_share", title="share of volume",
                                      formatter=NumberFormatter(format="0.0%"))])
    return column(Div(text="<h3>Agents</h3>"), row(table, pnl, sizing_mode="stretch_width"),
                  name="agents_panel", visible=False, sizing_mode="stretch_width")


def build_layout() -> LayoutDOM:
    """The dashboard's Bokeh layout, its sources empty (the page fills them)."""
    candles = _source("candles", "t", "open", "high", "low", "close", "volume", "color",
                      "width")
    indicators = _source("indicators", "t", "sma", "ema", "bb_upper", "bb_middle",
                         "bb_lower", "vwap")
    samples = _source("samples", "t", "mid", "microprice", "spread", "imbalance_1",
                      "imbalance_5", "imbalance_10", "trade_sign_imbalance")
    book = _book(_source("depth_bids", "price", "qty", "cum"),
                 _source("depth_asks", "price", "qty", "cum"),
                 _source("trades", "time", "price", "qty", "side"))
    agents = _agents(_source("agents", "name", "group", "position", "pnl", "volume_share",
                             "t", "color"),
                     _source("agent_pnl", "xs", "ys", "name", "color"))
    return column(row(_price(candles, indicators), book, sizing_mode="stretch_width"),
                  _microstructure(samples), agents, sizing_mode="stretch_width",
                  name="dashboard")


@functools.lru_cache(maxsize=1)
def layout_json() -> str:
    """The layout as ``json_item`` text, built once per process (the page embeds it; each
    page load makes its own BokehJS document from it)."""
    text = json.dumps(json_item(build_layout(), "rltrader-root"), separators=(",", ":"))
    # Inside a <script> element only "</" could end it early.
    return text.replace("</", "<\\/")


def page_html() -> str:
    """The page: its template with the layout and BokehJS's version filled in."""
    template = (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")
    limits = json.dumps({"candles": MAX_CANDLES, "samples": MAX_SAMPLES,
                         "trades": MAX_TRADES})
    return (template.replace("{{ bokeh_version }}", bokeh.__version__)
            .replace("{{ limits }}", limits)
            .replace("{{ layout }}", layout_json()))


async def _page(request: Request) -> HTMLResponse:
    return HTMLResponse(page_html(), headers={"Cache-Control": "no-store"})


def dashboard_routes() -> list[BaseRoute]:
    """Starlette routes of the dashboard, to mount next to the analytics server's ``/ws``,
    ``/analytics/symbols`` and REST routes: the page at ``/`` and ``/dashboard``, BokehJS
    at ``/dashboard/bokeh`` and the page's own files at ``/dashboard/static``."""
    js = bokeh_js_dir()
    if not (js / "bokeh.min.js").is_file():
        raise RuntimeError(f"BokehJS not found in {js}: is the bokeh package installed?")
    return [Route("/", _page, methods=["GET"]),
            Route("/dashboard", _page, methods=["GET"]),
            Mount("/dashboard/bokeh", app=StaticFiles(directory=js), name="bokehjs"),
            Mount("/dashboard/static", app=StaticFiles(directory=STATIC_DIR),
                  name="dashboard_static")]
