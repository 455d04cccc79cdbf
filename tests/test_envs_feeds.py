"""Every shipped feed drives a HybridReplay and the env (``hybrid.from_feed``): ITCH, LOBSTER,
Coinbase L3, Binance and tardis L2, and the generic reader's Bitstamp example. Without agents
the replay is the reader's own book; with two agents (one market-buying, one resting at the
touch) the book stays sound and the accounts are what the fills say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _data import crypto_file
from test_data_generic import BITSTAMP, BITSTAMP_MAPPING
from test_data_itch import FLOW
from test_data_lobster import MESSAGE_999, ORDERBOOK_999

from rltrader import Books
from rltrader.core.constants import (
    AGENT_ID_BASE,
    BUY,
    CANCEL,
    EXECUTE,
    FILL,
    GTC,
    LIMIT,
    MARKET,
    REDUCE,
    REJECTED,
    REPLACE,
    SELL,
    Reason,
)
from rltrader.core.messages import empty_events, empty_messages
from rltrader.data import binance, coinbase, generic, itch, lobster, tardis
from rltrader.data._levels import LevelBook, levels_after, process_every
from rltrader.data.hybrid import HybridReplay, feed_messages, from_feed
from rltrader.data.lobster_exact import exact_messages

pytest.importorskip("rltrader._env")
from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402

TAKER_FEE_PPM = 100
WINDOW = 1 << 18  # crypto prices span many ticks; what falls outside waits on overflow lists


def _lobster(tmp):
    return exact_messages(lobster.read_raw(MESSAGE_999), lobster.read_orderbook(ORDERBOOK_999))


def _itch(tmp):
    """The AAPL rows as NASDAQ would send them: the exact LOBSTER messages written as ITCH."""
    path = tmp / "aapl.itch50"
    itch.write_itch(path, _lobster(tmp).messages, ["AAPL"])
    return itch.read_messages(path)


def _coinbase(tmp):
    return coinbase.read_feed(
        crypto_file("coinbase", "coinbase_gdax_btcusd_2018-07-13_l3_snapshot_begin.json.gz"),
        crypto_file("coinbase", "coinbase_gdax_btcusd_2018-07-13_l3_full_channel_messages.json.gz"))


def _binance(tmp):
    return binance.read_feed(crypto_file("binance",
                                         "hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz"))


def _tardis(tmp):
    return tardis.read_feed(crypto_file("tardis", "binance-futures_book_snapshot_25_BTCUSDT.csv"))


def _bitstamp(tmp):
    return generic.load(BITSTAMP, BITSTAMP_MAPPING)


# feed -> (reader, env step in ns, lots per agent order)
FEEDS = {
    "lobster": (_lobster, 100_000_000, 100),
    "itch": (_itch, 100_000_000, 100),
    "coinbase": (_coinbase, 2_000_000_000, 1_000_000),   # 0.01 BTC
    "binance": (_binance, 1_000_000_000, 100),             # 0.001 BTC
    "tardis": (_tardis, 10_000_000, 1_000),                # 1 BTC
    "bitstamp": (_bitstamp, 5_000_000_000, 10_000_000),    # 0.1 BTC
}


@pytest.fixture(scope="module", params=list(FEEDS))
def case(request, tmp_path_factory):
    reader, step_ns, qty = FEEDS[request.param]
    return request.param, reader(tmp_path_factory.mktemp(request.param)), step_ns, qty


class Recording(HybridReplay):
    """A replay that keeps every event since its last reset."""

    def reset(self, seed=None) -> None:
        super().reset(seed)
        self.log: list[np.ndarray] = []

    def step(self, *args, **kwargs) -> np.ndarray:
        events = super().step(*args, **kwargs)
        self.log.append(events)
        return events

    def events(self) -> np.ndarray:
        return np.concatenate(self.log)


def test_without_agents_the_replay_is_the_readers_book(case) -> None:
    name, feed, _, _ = case
    given = feed_messages(feed)
    replay = Recording(given.messages, 2, window=WINDOW, halts=given.halts)
    plain = feed.messages          # the reader's own, one book
    ts = plain["timestamp"]
    at = np.unique(np.r_[np.linspace(ts[0], ts[-1], 60).astype(np.int64), ts[-1]])
    want_prices, want_qtys = levels_after(Books(1, window=WINDOW), plain,
                                          np.searchsorted(ts, at, side="right"), 5)
    for k, t in enumerate(at.tolist()):
        replay.step(until_ts=t)
        prices, qtys, _ = replay.books.top_levels(5)
        np.testing.assert_array_equal(prices[0], want_prices[k], err_msg=f"{name} at {t}")
        np.testing.assert_array_equal(qtys[0], want_qtys[k], err_msg=f"{name} at {t}")
    assert replay.done
    events = replay.events()
    assert not np.any(events["kind"] == REJECTED)
    assert replay.stats.trimmed_messages == 0 and replay.stats.interaction_points == 0
    if name in ("binance", "tardis"):   # L2: increases re-add the level; same book
        grow = np.count_nonzero(plain["op"] == REPLACE)
        assert grow and given.messages.shape[0] == plain.shape[0] + grow
    else:
        assert given.messages.shape[0] == plain.shape[0]


def _expected_accounts(fills: np.ndarray, n_agents: int) -> np.ndarray:
    """Position and cash per agent from its fills (taker fee per fill, truncated)."""
    out = np.zeros((n_agents, 2), dtype=np.int64)
    for f in fills:
        side, price, qty = int(f["side"]), int(f["price"]), int(f["qty"])
        notional = price * qty
        if 0 <= f["owner"] < n_agents:           # taker: moves its side
            out[f["owner"]] += (side * qty, -side * notional - notional * TAKER_FEE_PPM
                                // 1_000_000)
        if 0 <= f["maker_owner"] < n_agents:
            out[f["maker_owner"]] += (-side * qty, side * notional)
    return out


def test_two_agents_trade_on_every_feed(case) -> None:
    name, feed, step_ns, qty = case
    given = feed_messages(feed)
    replay = Recording(given.messages, 2, window=WINDOW, halts=given.halts,
                       taker_fee_ppm=TAKER_FEE_PPM)
    config = EnvConfig(horizon=10_000, warmup_steps=2, replay_step_ns=step_ns,
                       size_classes=(1.0, 1.0), base_qty=qty, base_position_limit=6 * qty)
    env = BatchedMarketEnv(config, n_envs=1, n_agents=2, seed=0, source=replay)
    assert env.order_qty.tolist() == [qty, qty]
    buy, rest = 2 * 4 + 1, 2                    # market buy; limit buy at the touch
    for _ in range(25):
        env.step([buy, rest])
        replay.books.check_integrity()
        assert np.all(np.abs(env.accounts()[0]["position"]) <= env.position_limit)
    events = replay.events()
    fills = events[events["kind"] == FILL]
    acc = env.accounts()[0]
    expected = _expected_accounts(fills, 2)
    assert acc["position"].tolist() == expected[:, 0].tolist(), name
    assert acc["cash"].tolist() == expected[:, 1].tolist(), name
    assert acc["position"][0] > 0                 # the buyer bought real liquidity
    taker = (fills["owner"] == 0) & (fills["maker_owner"] == replay.history_owner)
    assert fills["qty"][taker].sum() >= qty
    # an agent's message is refused only when it names an order that had filled (a
    # cancel or replace that raced the fill); the record's only refusals are orders
    # that agents took
    rejected = events[events["kind"] == REJECTED]
    by_agent = (rejected["owner"] >= 0) & (rejected["owner"] < 2)
    filled = fills["maker_order_id"][fills["maker_leaves_qty"] == 0]
    assert np.all(rejected["reason"][by_agent] == Reason.UNKNOWN_ORDER), name
    assert np.all(np.isin(rejected["order_id"][by_agent], filled)), name
    taken = sum(n for kind, n in replay.stats.trimmed_by_kind.items() if "taken" in kind)
    assert np.count_nonzero(~by_agent) == taken, name


def test_simulated_traders_trade_beside_every_feed(case) -> None:
    """``from_feed(..., background=)``: the ``resilient`` populations trade in each feed's
    book next to an agent, the book stays sound, positions add up."""
    from rltrader import preset

    name, feed, step_ns, qty = case
    resilient = preset("resilient")         # a decision each step (at most 1 s), a maker
    dt = min(step_ns, 1_000_000_000)        # quote every second decision
    background = resilient.replace(dt_ns=dt, makers=dataclasses.replace(
        resilient.makers, rate_per_s=0.5 * 1e9 / dt))
    replay = from_feed(feed, 1, window=WINDOW, background=background)
    config = EnvConfig(horizon=10_000, warmup_steps=2, replay_step_ns=step_ns,
                       size_classes=(1.0,), base_qty=qty, base_position_limit=6 * qty)
    env = BatchedMarketEnv(config, n_envs=1, n_agents=1, seed=0, source=replay)
    for _ in range(40):
        env.step([2])
        replay.books.check_integrity()
    assert replay.stats.background_messages > 0, name
    simulated = replay.background_accounts
    assert simulated["volume"].sum() > 0, name
    # every lot a simulated trader or the agent holds came from the record or each other
    every = replay.books.accounts[0]
    assert every["position"].sum() == every["position"][replay.history_owner] + (
        simulated["position"].sum() + replay.accounts["position"].sum()), name


# ---- ITCH: one stock, orders from before the file, halts ----------------------------------

def test_itch_references_to_orders_before_the_file_are_dropped() -> None:
    """The real slice starts mid-session: its deletes, cancels and replaces of older orders
    (and of orders those replaces would have made) are dropped: exactly the messages the
    core refuses in the reader's own replay, stock by stock, to the same book."""
    feed = itch.read_messages(FLOW, tick_size=1)
    with pytest.raises(ValueError, match="65 stocks: pass book="):
        from_feed(feed, 2)
    with pytest.raises(ValueError, match="'' names 3 books"):
        from_feed(feed, 2, book="")
    assert np.array_equal(feed_messages(feed, book="FMS").messages,
                          feed_messages(feed, book=1).messages)
    dropped = 0
    for book, symbol in enumerate(feed.book_symbols):
        given = feed_messages(feed, book=book)
        mine = feed.messages[feed.messages["book"] == book].copy()
        mine["book"] = 0
        refused: list[int] = []

        def note(events: np.ndarray, first: int, refused=refused) -> None:
            bad = events[events["kind"] == REJECTED]
            assert np.all(bad["reason"] == Reason.UNKNOWN_ORDER)
            refused.extend((first + bad["message_index"]).tolist())

        process_every(Books(1), mine, empty_events(256), note)
        unknown = np.isin(np.arange(mine.shape[0]), refused)
        assert given.dropped == np.count_nonzero(unknown), symbol
        fields = ["timestamp", "op", "order_id", "new_order_id", "qty"]
        assert np.array_equal(given.messages[fields], mine[~unknown][fields])
        dropped += given.dropped
        replay = Recording(given.messages, 2, halts=given.halts)
        replay.step(until_ts=int(mine["timestamp"][-1]))
        want = levels_after(Books(1), mine, np.array([mine.shape[0]]), 5)
        got = replay.books.top_levels(5)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert not np.any(replay.events()["kind"] == REJECTED)
    assert dropped == 70                      # 83 refer to earlier orders, 13 in the slice


def test_itch_messages_are_the_lobster_ones_with_sides_and_prices(tmp_path) -> None:
    """ITCH's E/X/D carry no side or price; the replay's executions need them (agent orders
    ahead are on the executed order's side). Filled in, the ITCH file of the AAPL rows is
    the LOBSTER feed, and two agents trading on either end with the same accounts."""
    fields = ["timestamp", "op", "order_id", "side", "price"]
    lob = _lobster(tmp_path)
    raw = _itch(tmp_path)
    assert np.any(raw.messages["side"] != lob.messages["side"])   # what ITCH leaves out
    given = feed_messages(raw).messages
    assert np.array_equal(given[fields], lob.messages[fields])
    sized = lob.messages["op"] != CANCEL                 # LOBSTER's deletes show the size
    assert np.array_equal(given["qty"][sized], lob.messages["qty"][sized])
    accounts = []
    for feed in (lob, raw):
        config = EnvConfig(horizon=10_000, warmup_steps=2, size_classes=(1.0, 1.0),
                           base_qty=100, base_position_limit=600)
        env = BatchedMarketEnv(config, n_envs=1, n_agents=2, seed=0,
                               source=from_feed(feed, 2, taker_fee_ppm=TAKER_FEE_PPM))
        for _ in range(25):
            env.step([2 * 4 + 1, 2])
        assert env.source.stats.agent_lots_hit > 0   # the record's executions filled agent 1
        accounts.append(env.accounts())
    assert np.array_equal(*accounts)


def test_itch_trading_actions_are_the_replays_halts(tmp_path) -> None:
    feed = _itch(tmp_path)
    t0 = int(feed.messages["timestamp"][0])
    actions = np.zeros(4, dtype=feed.trading_actions.dtype)
    actions["timestamp"] = [t0 + 10, t0 + 20, t0 + 30, t0 + 40]
    actions["state"] = [b"H", b"Q", b"T", b"P"]
    given = feed_messages(dataclasses.replace(feed, trading_actions=actions))
    assert given.halts.tolist() == [[t0 + 10, t0 + 30], [t0 + 40, np.iinfo(np.int64).max]]
    replay = from_feed(dataclasses.replace(feed, trading_actions=actions), 1)
    assert replay.halted(np.array([t0 + 9, t0 + 10, t0 + 29, t0 + 30, t0 + 40])).tolist() == [
        False, True, True, False, True]


# ---- L2: what an agent's place in a level's queue means -----------------------------------

def _level_feed(*events: list[tuple[int, int, int]]) -> np.ndarray:
    """An L2 record: event ``k`` (``(side, price, size)`` level updates) at ``k`` s."""
    levels = LevelBook()
    for k, changes in enumerate(events):
        levels.update(list(changes), (k + 1) * 1_000_000_000, k)
    return levels.to_array()[0]


def _agent(owner: int, order_id: int, op: int, side: int, price: int, qty: int, ts: int
           ) -> np.ndarray:
    m = empty_messages(1)
    m[0] = (ts, AGENT_ID_BASE + order_id, 0, price, 0, qty, 0, owner, op, side, GTC)
    return m


def test_l2_agent_queue_position() -> None:
    """An L2 level is one order holding the displayed size. An agent joining it queues
    behind that size; the record's decreases never fill it (they are not trades); an
    increase re-adds the whole level behind it; the record fills it only by crossing it.
    """
    s = 1_000_000_000
    record = _level_feed(
        [(BUY, 100, 10), (SELL, 102, 10)],      # 1 s: the book
        [(BUY, 100, 4)],                         # 2 s: the bid level shrinks (not a trade)
        [(BUY, 100, 12)],                        # 3 s: and grows again: re-added at the back
        [(BUY, 100, 0), (SELL, 100, 3)],         # 4 s: the market moves down through 100
        [(SELL, 102, 15)],                       # 5 s: an ask level the agent emptied grows
    )
    replay = Recording(feed_messages(record).messages, 2)
    replay.step(until_ts=s)
    replay.step(until_ts=s + 1, agent_messages=_agent(0, 1, LIMIT, BUY, 100, 5, s + 1))
    queue = replay.books.level_queue(0, int(BUY), 100)
    assert queue["owner"].tolist() == [2, 0]     # behind the level's 10 lots
    replay.step(until_ts=2 * s)
    assert replay.books.level_queue(0, int(BUY), 100)["qty"].tolist() == [4, 5]
    assert replay.accounts["position"][0] == 0   # the decrease filled nobody
    replay.step(until_ts=3 * s)
    queue = replay.books.level_queue(0, int(BUY), 100)
    assert queue["owner"].tolist() == [0, 2] and queue["qty"].tolist() == [5, 12]
    # agent 1 sells 6 at market: the agent's 5 first (ahead since the increase), then 1
    sell = _agent(1, 2, MARKET, SELL, 0, 6, 3 * s + 1)
    replay.step(until_ts=3 * s + 1, agent_messages=sell)
    assert replay.accounts["position"].tolist() == [5, -6]
    # the agent buys again; the record's move through 100 fills it as a maker at 100
    replay.step(until_ts=3 * s + 2, agent_messages=_agent(0, 3, LIMIT, BUY, 100, 2, 3 * s + 2))
    replay.step(until_ts=4 * s)
    assert replay.accounts["position"][0] == 7
    assert replay.books.level_queue(0, int(SELL), 100)["qty"].tolist() == [1]
    # agent 1 takes the whole ask at 102; the record's increase brings the level back
    replay.step(until_ts=4 * s + 1, agent_messages=_agent(1, 4, MARKET, BUY, 0, 11, 4 * s + 1))
    assert replay.books.level_queue(0, int(SELL), 102).size == 0
    assert replay.accounts["position"].tolist() == [7, 5]
    replay.step(until_ts=5 * s)
    assert replay.books.level_queue(0, int(SELL), 102)["qty"].tolist() == [15]
    assert replay.stats.trimmed_by_kind == {"CANCEL of a taken order": 1}
    replay.books.check_integrity()
    ops = feed_messages(record).messages["op"]
    assert np.count_nonzero(ops == CANCEL) == np.count_nonzero(record["op"] == CANCEL) + 2


# ---- L2 trades: the record's aggressors fill the agents ahead of the level they hit ---------

@dataclasses.dataclass
class _L2WithTrades:
    messages: np.ndarray
    trades: np.ndarray


def _trades(*rows: tuple[int, int, int, int]) -> np.ndarray:
    """``(ns, price, lots, aggressor side)`` rows as Binance's TRADE_DTYPE."""
    out = np.zeros(len(rows), dtype=binance.TRADE_DTYPE)
    for k, (ts, price, qty, side) in enumerate(rows):
        out[k] = (ts, k, price, qty, side)
    return out


def test_l2_trades_fill_the_agent_ahead_of_the_level_they_hit() -> None:
    """A recorded seller hits the 100 bid for 7: the agent's bid at 101 (inside the
    spread, ahead of it) fills first, 5 lots, then the level 2; the depth update that
    shows the trade is not applied twice. A trade at a price with no level is counted,
    not replayed. Without ``trades`` nothing fills the agent."""
    s = 1_000_000_000
    record = _L2WithTrades(
        _level_feed([(BUY, 100, 10), (SELL, 102, 10)],       # 1 s
                    [(BUY, 100, 3)]),                         # 2 s: the trade's effect
        _trades((s + s // 2, 100, 7, SELL), (s + s // 2, 99, 4, SELL)))
    given = feed_messages(record, trades=True)
    assert (given.trades, given.unmatched_lots) == (1, 4)
    for trades, position, level in ((True, 5, 8), (False, 0, 3)):
        replay = Recording(feed_messages(record, trades=trades).messages, 1)
        replay.step(until_ts=s)
        replay.step(until_ts=s + 1, agent_messages=_agent(0, 1, LIMIT, BUY, 101, 5, s + 1))
        replay.step(until_ts=3 * s)
        assert replay.accounts["position"][0] == position, trades
        # the level keeps the lots the agent took in its place (as a LOBSTER execution)
        assert replay.books.level_queue(0, int(BUY), 100)["qty"].tolist() == [level], trades
        assert replay.stats.trimmed_messages == 0
    alone = Recording(given.messages, 1)                          # no agent: the trade
    alone.step(until_ts=3 * s)
    events = alone.events()
    assert events["qty"][events["kind"] == FILL].tolist() == [7]
    assert alone.books.level_queue(0, int(BUY), 100)["qty"].tolist() == [3]
    with pytest.raises(ValueError, match="L2 feed with trades"):
        feed_messages(_lobster(None), trades=True)


def test_binance_trades_replay_as_executions_of_the_levels_they_hit() -> None:
    """The real BTCUSDT capture with ``trades=True`` and no agents: every execution is a
    recorded trade on the maker's level, lots accounted for; nothing is trimmed; and after
    each depth update every level it names has the record's size."""
    feed = _binance(None)
    given = feed_messages(feed, trades=True)
    m = given.messages
    execs = m[m["op"] == EXECUTE]
    trades = feed.trades
    assert given.trades == execs.size > 0.5 * trades.size
    assert execs["qty"].sum() + given.unmatched_lots == trades["qty"].sum()
    key = {(int(t), int(p), -int(sd)) for t, p, sd in trades[["timestamp", "price", "side"]]}
    assert all((int(t), int(p), int(sd)) in key
               for t, p, sd in execs[["timestamp", "price", "side"]])
    replay = HybridReplay(m, 1, window=WINDOW)
    plain = feed.messages
    record: dict[int, int] = {}
    cursor = 0
    times = np.unique(plain["timestamp"])[:800]
    for t in times.tolist():
        replay.step(until_ts=t)
        stop = int(np.searchsorted(plain["timestamp"], t, side="right"))
        for row in plain[cursor:stop]:
            oid, op, qty = int(row["order_id"]), int(row["op"]), int(row["qty"])
            old = record.get(oid, 0)
            record[oid] = qty if op in (LIMIT, REPLACE) else old - qty if op == REDUCE else 0
        for oid in set(plain["order_id"][cursor:stop].tolist()):
            info = replay.books.order(0, oid)
            assert (0 if info is None else int(info["qty"])) == record[oid], (t, oid)
        cursor = stop
    assert replay.stats.trimmed_messages == 0
    replay.books.check_integrity()
