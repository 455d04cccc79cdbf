// rltrader's live dashboard: embeds the Bokeh layout that rltrader/analytics/dashboard.py
// built, subscribes to one symbol's analytics streams on this page's own /ws (Binance's
// SUBSCRIBE protocol, docs/analytics.md) and streams their payloads into the
// layout's ColumnDataSources, found by name.
//
// Messages are queued as they come and applied every UPDATE_MS in one batch per source
// (one patch and one stream of the candles, the last depth snapshot, ...): a fast market
// sends hundreds a second, and redrawing the charts for each one would starve the page.
//
// window.rltraderDashboard holds counters and the last values shown, for people and tests:
// ready, connected, paused, symbol, interval, error; messages (applied); candles, samples,
// indicators (rows of those sources); closedCandles, lastClose, lastClosed ({t, open, high,
// low, close, volume} of the last bar seen closed); depthLevels, bestBid, bestAsk,
// depthTime (ns, else E, of the depth message shown); trades, lastTrade ({price, qty,
// time}); agents (rows of the last agents message); clock (the market's time, ms).
(function () {
  "use strict";

  const LIMITS = JSON.parse(document.getElementById("rltrader-limits").textContent);
  const UPDATE_MS = 100;
  const UP = "#26a69a";
  const DOWN = "#ef5350";
  const PALETTE = ["#1e88e5", "#d81b60", "#43a047", "#fb8c00", "#8e24aa", "#00acc1",
                   "#6d4c41", "#fdd835", "#3949ab", "#e53935"];
  const SOURCES = ["candles", "indicators", "samples", "depth_bids", "depth_asks",
                   "depth_bids_area", "depth_asks_area", "trades", "agents", "agent_pnl"];

  const state = {
    ready: false, connected: false, paused: false, symbol: null, interval: null,
    error: null, messages: 0,
  };
  window.rltraderDashboard = state;

  const sources = {};
  const models = {};
  let symbols = [];
  let socket = null;
  let subscribed = [];
  let requestId = 0;
  let queue = [];
  let loading = false;        // the chosen symbol's history is loading: the queue waits
  let agentLines = new Map();

  // ---- small helpers -----------------------------------------------------------------
  const num = (v) => (v === null || v === undefined || v === "" ? NaN : Number(v));
  const fmt = (v) => (v !== null && Number.isFinite(v) ? String(+v.toPrecision(10)) : "–");
  const column = (name, field) => sources[name].data[field];

  function setStatus(text, cls) {
    const el = document.getElementById("status");
    el.textContent = text;
    el.className = "status " + (cls || "");
  }

  function setText(id, value) {
    document.getElementById(id).textContent = value;
  }

  function timeOfDay(ms) {
    return new Date(Number(ms)).toISOString().slice(11, 23);
  }

  // The market's time (ms) as its payloads stamp it: the agents' PnL is drawn against it,
  // on the bars' axis (a replayed day's time is not the wall clock's).
  function advance(t) {
    if (Number.isFinite(t) && (state.clock === null || t > state.clock)) state.clock = t;
  }

  // A DataTable redraws when its view's indices change, which a new source of the same
  // length does not do (BokehJS 3.9): tell it.
  function redraw(table) {
    table.view.change.emit();
  }

  function resetState() {
    for (const name of SOURCES) {
      const empty = {};
      for (const field of Object.keys(sources[name].data)) empty[field] = [];
      sources[name].data = empty;
    }
    redraw(models.tape);
    redraw(models.agent_table);
    agentLines = new Map();
    Object.assign(state, {
      candles: 0, closedCandles: 0, lastClose: null, lastClosed: null, depthLevels: 0,
      bestBid: null, bestAsk: null, depthTime: null, trades: 0, lastTrade: null,
      samples: 0, indicators: 0, agents: 0, clock: null,
    });
    for (const id of ["ticker-last", "ticker-bid", "ticker-ask", "ticker-spread",
                      "ticker-time"]) {
      setText(id, "–");
    }
  }

  // ---- candles -----------------------------------------------------------------------
  function barOfKline(k) {
    return {t: Number(k.t), open: num(k.o), high: num(k.h), low: num(k.l), close: num(k.c),
            volume: num(k.v), width: 0.7 * (Number(k.T) - Number(k.t) + 1)};
  }

  // Binance REST klines: [t, o, h, l, c, v, T, ...].
  function barOfRow(r) {
    return {t: Number(r[0]), open: num(r[1]), high: num(r[2]), low: num(r[3]),
            close: num(r[4]), volume: num(r[5]), width: 0.7 * (Number(r[6]) - Number(r[0]) + 1)};
  }

  // Bars (in time order, one per t) into the candles: those already shown are patched,
  // newer ones streamed (the oldest roll over).
  function putCandles(bars) {
    const times = column("candles", "t");
    const last = times.length ? times[times.length - 1] : -Infinity;
    const fields = ["t", "open", "high", "low", "close", "volume", "color", "width"];
    const patch = {};
    const fresh = {};
    for (const field of fields) {
      patch[field] = [];
      fresh[field] = [];
    }
    for (const bar of bars) {
      bar.color = bar.close >= bar.open ? UP : DOWN;
      if (bar.t > last) {
        for (const field of fields) fresh[field].push(bar[field]);
        continue;
      }
      const at = times.lastIndexOf(bar.t);
      if (at < 0) continue;               // older than the chart and not on it
      for (const field of fields) patch[field].push([at, bar[field]]);
    }
    if (patch.t.length) sources.candles.patch(patch);
    if (fresh.t.length) sources.candles.stream(fresh, LIMITS.candles);
    state.candles = column("candles", "t").length;
    if (bars.length) {
      state.lastClose = bars[bars.length - 1].close;
      advance(bars[bars.length - 1].t);
      setText("ticker-last", fmt(state.lastClose));
    }
  }

  // ---- indicators, samples -----------------------------------------------------------
  function putIndicators(rows) {
    const times = column("indicators", "t");
    let last = times.length ? times[times.length - 1] : -Infinity;
    const data = {t: [], sma: [], ema: [], bb_upper: [], bb_middle: [], bb_lower: [],
                  vwap: []};
    for (const bar of rows) {
      const t = Number(bar.t);
      if ((bar.i !== undefined && bar.i !== state.interval) || !(t > last)) continue;
      last = t;
      data.t.push(t);
      for (const field of ["sma", "ema", "bb_upper", "bb_middle", "bb_lower"]) {
        data[field].push(num(bar[field]));
      }
      data.vwap.push(num(bar.session_vwap));
    }
    if (data.t.length) sources.indicators.stream(data, LIMITS.candles);
    state.indicators = column("indicators", "t").length;
  }

  function putSamples(rows) {
    const times = column("samples", "t");
    let last = times.length ? times[times.length - 1] : -Infinity;
    const fields = ["mid", "microprice", "spread", "imbalance_1", "imbalance_5",
                    "imbalance_10", "trade_sign_imbalance"];
    const data = {t: []};
    for (const field of fields) data[field] = [];
    for (const s of rows) {
      const t = Number(s.t);
      if (!(t > last)) continue;
      last = t;
      data.t.push(t);
      for (const field of fields) data[field].push(num(s[field]));
    }
    if (data.t.length) {
      sources.samples.stream(data, LIMITS.samples);
      advance(last);
    }
    state.samples = column("samples", "t").length;
  }

  // ---- depth, trades -----------------------------------------------------------------
  function sideOf(levels) {
    const side = {price: [], qty: [], cum: []};
    let total = 0;
    for (const level of levels || []) {
      const q = num(level[1]);
      if (!(q > 0)) continue;
      total += q;
      side.price.push(num(level[0]));
      side.qty.push(q);
      side.cum.push(total);
    }
    return side;
  }

  // The staircase under a side's step line: each level's cumulative quantity holds out to
  // the next level's price.
  function staircase(side) {
    const x = [];
    const y = [];
    for (let i = 0; i < side.price.length; i++) {
      x.push(side.price[i]);
      y.push(side.cum[i]);
      if (i + 1 < side.price.length) {
        x.push(side.price[i + 1]);
        y.push(side.cum[i]);
      }
    }
    return {x: x, y: y};
  }

  function putDepth(msg) {
    const bids = sideOf(msg.b);
    const asks = sideOf(msg.a);
    sources.depth_bids.data = bids;
    sources.depth_asks.data = asks;
    sources.depth_bids_area.data = staircase(bids);
    sources.depth_asks_area.data = staircase(asks);
    state.depthLevels = bids.price.length + asks.price.length;
    state.bestBid = bids.price.length ? bids.price[0] : null;
    state.bestAsk = asks.price.length ? asks.price[0] : null;
    state.depthTime = msg.ns !== undefined ? msg.ns : msg.E;
    setText("ticker-bid", fmt(state.bestBid));
    setText("ticker-ask", fmt(state.bestAsk));
    setText("ticker-spread", state.bestBid !== null && state.bestAsk !== null
      ? fmt(state.bestAsk - state.bestBid) : "–");
  }

  // Trades in arrival order onto the tape, newest first.
  function putTrades(msgs) {
    const data = sources.trades.data;
    const newest = msgs.slice(-LIMITS.trades).reverse();
    const next = {
      time: newest.map((m) => timeOfDay(m.T)).concat(data.time),
      price: newest.map((m) => num(m.p)).concat(data.price),
      qty: newest.map((m) => num(m.q)).concat(data.qty),
      side: newest.map((m) => (m.m ? "sell" : "buy")).concat(data.side),
    };
    for (const field of Object.keys(next)) next[field] = next[field].slice(0, LIMITS.trades);
    sources.trades.data = next;
    redraw(models.tape);
    const last = msgs[msgs.length - 1];
    state.trades += msgs.length;
    state.lastTrade = {price: num(last.p), qty: num(last.q), time: Number(last.T)};
    advance(state.lastTrade.time);
  }

  // ---- agents ------------------------------------------------------------------------
  // The rows of the chosen symbol (a row without one is the whole market's); the panel
  // shows from the first message with rows.
  function putAgents(msg) {
    const rows = (msg.rows || []).filter((r) => r.symbol === undefined
                                               || r.symbol === state.symbol);
    state.agents = rows.length;
    if (!rows.length) return;
    if (!models.agents_panel.visible) models.agents_panel.visible = true;
    const t = state.clock !== null ? state.clock : Number(msg.E);
    for (const r of rows) {
      const name = String(r.name);
      if (!agentLines.has(name)) agentLines.set(name, {xs: [], ys: []});
      const line = agentLines.get(name);
      if (line.xs.length && t <= line.xs[line.xs.length - 1]) continue;
      line.xs.push(t);
      line.ys.push(num(r.pnl));
      if (line.xs.length > LIMITS.samples) {
        line.xs.shift();
        line.ys.shift();
      }
    }
    const names = Array.from(agentLines.keys());
    const colorOf = (name) => PALETTE[names.indexOf(name) % PALETTE.length];
    sources.agent_pnl.data = {
      xs: names.map((n) => agentLines.get(n).xs.slice()),
      ys: names.map((n) => agentLines.get(n).ys.slice()),
      name: names,
      color: names.map(colorOf),
    };
    sources.agents.data = {
      name: rows.map((r) => String(r.name)),
      group: rows.map((r) => (r.group === undefined || r.group === null ? "" : String(r.group))),
      position: rows.map((r) => num(r.position)),
      pnl: rows.map((r) => num(r.pnl)),
      volume_share: rows.map((r) => num(r.volume_share)),
      t: rows.map(() => t),
      color: rows.map((r) => colorOf(String(r.name))),
    };
    redraw(models.agent_table);
  }

  // ---- applying the queue ------------------------------------------------------------
  function apply() {
    if (loading || state.paused || !queue.length) return;
    const batch = queue;
    queue = [];
    const bars = new Map();
    const indicators = [];
    const samples = [];
    const trades = [];
    let depth = null;
    let agents = null;
    for (let msg of batch) {
      if (msg && msg.stream !== undefined && msg.data !== undefined) msg = msg.data;
      if (!msg || msg.e === undefined) continue;            // answers to requests
      if (msg.s !== undefined && String(msg.s).toUpperCase() !== state.symbol) continue;
      state.messages += 1;
      switch (msg.e) {
        case "kline": {
          if (msg.k.i !== state.interval) break;
          const bar = barOfKline(msg.k);
          bars.set(bar.t, bar);
          if (msg.k.x) {
            state.closedCandles += 1;
            state.lastClosed = {t: bar.t, open: bar.open, high: bar.high, low: bar.low,
                                close: bar.close, volume: bar.volume};
          }
          break;
        }
        case "indicators": indicators.push(msg); break;
        case "analytics": samples.push(msg); break;
        case "depth": depth = msg; break;
        case "trade": trades.push(msg); break;
        case "agents": agents = msg; break;
        default: break;
      }
    }
    if (bars.size) putCandles(Array.from(bars.values()).sort((a, b) => a.t - b.t));
    if (indicators.length) putIndicators(indicators);
    if (samples.length) putSamples(samples);
    if (depth !== null) putDepth(depth);
    if (trades.length) putTrades(trades);
    if (agents !== null) putAgents(agents);
    setStatus(`live · ${state.messages} messages`, "live");
    if (state.clock !== null) setText("ticker-time", timeOfDay(state.clock));
  }

  // ---- the socket and the chosen symbol ----------------------------------------------
  function streamsOf(symbol, interval) {
    const s = symbol.toLowerCase();
    return [`${s}@kline_${interval}`, `${s}@indicators_${interval}`, `${s}@analytics`,
            `${s}@depth`, `${s}@trade`, "agents"];
  }

  function send(method, params) {
    if (socket && socket.readyState === WebSocket.OPEN && params.length) {
      socket.send(JSON.stringify({method: method, params: params, id: ++requestId}));
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/ws`);
    socket.onopen = () => {
      state.connected = true;
      subscribed = [];
      if (!state.paused) load(state.symbol, state.interval);
    };
    socket.onmessage = (event) => {
      if (state.paused) return;
      try {
        queue.push(JSON.parse(event.data));
      } catch (err) {
        // not JSON: nothing a chart can show
      }
    };
    socket.onclose = () => {
      state.connected = false;
      setStatus("disconnected: retrying", "down");
      setTimeout(connect, 1000);
    };
  }

  async function fetchJson(url) {
    const response = await fetch(url, {cache: "no-store"});
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }

  // The streams are subscribed first and their messages held while the history loads
  // (REST), so that no bar falls between the two; what both hold is shown once.
  async function load(symbol, interval) {
    send("UNSUBSCRIBE", subscribed);
    subscribed = streamsOf(symbol, interval);
    queue = [];
    loading = true;
    send("SUBSCRIBE", subscribed);
    const sym = encodeURIComponent(symbol);
    const recent = (stream, limit) => fetchJson(
      `/analytics/history?symbol=${sym}&stream=${stream}&limit=${limit}`);
    const [klines, indicators, samples] = await Promise.allSettled([
      fetchJson(`/api/v3/klines?symbol=${sym}&interval=${interval}&limit=${LIMITS.candles}`),
      recent(`indicators_${interval}`, LIMITS.candles),
      recent("analytics", LIMITS.samples),
    ]);
    if (symbol !== state.symbol || interval !== state.interval) return;   // chosen again
    if (klines.status === "fulfilled" && Array.isArray(klines.value)) {
      putCandles(klines.value.map(barOfRow));
    }
    if (indicators.status === "fulfilled" && Array.isArray(indicators.value)) {
      putIndicators(indicators.value);
    }
    if (samples.status === "fulfilled" && Array.isArray(samples.value)) {
      putSamples(samples.value);
    }
    loading = false;
    apply();
  }

  function choose(symbol, interval) {
    state.symbol = symbol;
    state.interval = interval;
    resetState();
    const params = new URLSearchParams(location.search);
    params.set("symbol", symbol);
    params.set("interval", interval);
    history.replaceState(null, "", `${location.pathname}?${params}`);
    const entry = symbols.find((s) => s.symbol === symbol);
    document.getElementById("interval").replaceChildren(...entry.intervals.map(
      (i) => new Option(i, i, false, i === interval)));
    if (socket && socket.readyState === WebSocket.OPEN) load(symbol, interval);
  }

  // Paused, the charts stand still and the streams' messages are dropped; resuming loads
  // the symbol again (history, then the streams), so nothing is missing.
  function togglePause() {
    state.paused = !state.paused;
    document.getElementById("pause").textContent = state.paused ? "resume" : "pause";
    if (state.paused) {
      queue = [];
      setStatus("paused", "");
    } else {
      choose(state.symbol, state.interval);
    }
  }

  async function start() {
    const item = JSON.parse(document.getElementById("rltrader-layout").textContent);
    await Bokeh.embed.embed_item(item, "rltrader-root");
    const doc = Bokeh.documents[Bokeh.documents.length - 1];
    for (const name of SOURCES) sources[name] = doc.get_model_by_name(name);
    for (const name of ["tape", "agent_table", "agents_panel"]) {
      models[name] = doc.get_model_by_name(name);
    }
    // /analytics/symbols: [{symbol, intervals, ...}, ...]
    symbols = (await fetchJson("/analytics/symbols")).map(
      (s) => ({symbol: s.symbol, intervals: s.intervals}));
    if (!symbols.length) throw new Error("/analytics/symbols lists no symbol");
    const select = document.getElementById("symbol");
    select.replaceChildren(...symbols.map((s) => new Option(s.symbol, s.symbol)));
    const params = new URLSearchParams(location.search);
    const wanted = (params.get("symbol") || "").toUpperCase();
    const entry = symbols.find((s) => s.symbol.toUpperCase() === wanted) || symbols[0];
    select.value = entry.symbol;
    const firstOf = (s) => (s.intervals.includes("1s") ? "1s" : s.intervals[0]);
    const interval = entry.intervals.includes(params.get("interval"))
      ? params.get("interval") : firstOf(entry);
    select.onchange = () => {
      const chosen = symbols.find((s) => s.symbol === select.value);
      choose(chosen.symbol, chosen.intervals.includes(state.interval)
        ? state.interval : firstOf(chosen));
    };
    document.getElementById("interval").onchange = (event) => {
      choose(state.symbol, event.target.value);
    };
    document.getElementById("pause").onclick = togglePause;
    choose(entry.symbol, interval);
    state.ready = true;
    setInterval(apply, UPDATE_MS);
    connect();
  }

  start().catch((err) => {
    state.error = String(err && err.stack ? err.stack : err);
    setStatus(`error: ${err}`, "down");
    console.error(err);
  });
})();
