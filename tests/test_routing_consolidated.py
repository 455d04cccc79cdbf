"""The consolidated book equals a brute-force merge of the venues' own books: after every
message of random flow over 2-4 venues with different tick sizes, as of each venue's
latency, and over the real two-venue replay (Binance spot and USD-M futures BTCUSDT);
fee-adjusted depth orders by the taker's net price; misuse is refused clearly."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader import Books
from rltrader.core.constants import (
    BUY,
    CANCEL,
    FILL,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    REDUCE,
    REPLACE,
    SELL,
)
from rltrader.core.messages import empty_events, empty_messages
from rltrader.routing.consolidated import DEPTH_DTYPE, ConsolidatedBook

MID = 6_000           # common ticks: the random flows' centre on every venue
DEEP = 512            # levels read of each venue's own book: all of them here

# ---- the brute force: each venue's rltrader.Books, merged in pure Python -------------------


def venue_book(books: Books, depth: int = DEEP) -> tuple[list[tuple[int, int]], ...]:
    """``(bids, asks)``: the venue's levels ``(price, qty)`` in its own ticks, best first."""
    prices, qtys, _ = books.top_levels(depth)
    return tuple([(int(p), int(q)) for p, q in zip(prices[0, s], qtys[0, s], strict=True) if q > 0]
                 for s in range(2))


def merged(states: list[tuple[list, list]], factor: list[int], side: int) -> list[tuple]:
    """Every venue's levels of one side on the common grid, best first, ties by venue."""
    s = 0 if side == BUY else 1
    rows = [(p * factor[v], q, v) for v, state in enumerate(states) for p, q in state[s]]
    return sorted(rows, key=lambda r: (-r[0] if side == BUY else r[0], r[2]))


def best(states: list[tuple[list, list]], factor: list[int]) -> tuple[int, ...]:
    """The NBBO: best price, all lots there, the venue with most of them (lowest index)."""
    out: list[int] = []
    for side in (BUY, SELL):
        rows = merged(states, factor, side)
        if not rows:
            out += [0, 0, -1]
            continue
        at = [r for r in rows if r[0] == rows[0][0]]
        most = max(r[1] for r in at)
        out += [rows[0][0], sum(r[1] for r in at), min(r[2] for r in at if r[1] == most)]
    return tuple(out)


def rows_of(depth: np.ndarray) -> list[tuple[int, int, int]]:
    return [(int(r["price"]), int(r["qty"]), int(r["venue"])) for r in depth]


def assert_equals_brute(cb: ConsolidatedBook, states: list, factor: list[int], where: str,
                        n: int = 10_000) -> None:
    for side in (BUY, SELL):
        want = merged(states, factor, side)[:n]
        assert rows_of(cb.depth(side, n)) == want, f"{where}: side {side}"
    assert cb.nbbo() == best(states, factor), f"{where}: NBBO"


# ---- random flow -------------------------------------------------------------------------


class Flow:
    """Limit (GTC/IOC/FOK), market, cancel, reduce and replace flow into one venue around
    ``MID`` common ticks, in the venue's ticks (a coarser venue quotes fewer prices)."""

    def __init__(self, rng: np.random.Generator, factor: int) -> None:
        self.rng, self.mid = rng, MID // factor
        self.width = max(2, 30 // factor)
        self.live: list[int] = []
        self.next_id = 1

    def messages(self, k: int, t: int) -> np.ndarray:
        rng, msgs = self.rng, empty_messages(k)
        for m in msgs:
            m["timestamp"], m["owner"] = t, -1
            m["side"] = BUY if rng.random() < 0.5 else SELL
            u = rng.random()
            if self.live and u < 0.3:
                m["order_id"] = self.live[int(rng.integers(len(self.live)))]
                v = rng.random()
                if v < 0.45:
                    m["op"] = CANCEL
                elif v < 0.65:
                    m["op"], m["qty"] = REDUCE, int(rng.integers(1, 4))
                else:
                    m["op"], m["qty"], m["tif"] = REPLACE, int(rng.integers(1, 9)), GTC
                    m["price"] = self.mid + int(rng.integers(-self.width, self.width + 1))
                    if rng.random() < 0.5:
                        m["new_order_id"] = self.fresh()
                continue
            m["order_id"] = self.fresh()
            if u < 0.4:
                m["op"], m["qty"], m["tif"] = MARKET, int(rng.integers(1, 12)), IOC
                continue
            m["op"], m["qty"] = LIMIT, int(rng.integers(1, 9))
            m["tif"] = rng.choice([GTC, GTC, GTC, GTC, IOC, FOK])
            lean = -1 if m["side"] == BUY else 1          # most limits rest, some cross
            m["price"] = self.mid + lean + int(rng.integers(-self.width, self.width + 1))
        return msgs

    def fresh(self) -> int:
        self.next_id += 1
        self.live.append(self.next_id)
        return self.next_id


def run_venue(books: Books, msgs: np.ndarray, events: np.ndarray) -> np.ndarray:
    consumed, written = books.process(msgs, events)
    assert consumed == msgs.shape[0]
    return events[:written].copy()


def random_setup(seed: int) -> tuple[np.random.Generator, list[int], list[Flow], list[Books]]:
    rng = np.random.default_rng(seed)
    n_venues = int(rng.integers(2, 5))
    factor = [int(f) for f in rng.choice([1, 2, 3, 5, 10], size=n_venues)]
    factor[int(rng.integers(n_venues))] = 1            # the common grid is a venue's
    return rng, factor, [Flow(rng, f) for f in factor], [Books(1) for _ in factor]


@pytest.mark.parametrize("seed", range(8))
def test_the_consolidated_book_is_the_merge_of_the_venues_after_every_message(seed: int) -> None:
    rng, factor, flows, venues = random_setup(seed)
    cb = ConsolidatedBook(len(factor), factor)
    events = empty_events(4096)
    t = 1_000_000_000
    traded = crossed = 0
    for step in range(700):
        v = int(rng.integers(len(factor)))
        t += int(rng.integers(0, 2_000_000))          # venues share timestamps at times
        ev = run_venue(venues[v], flows[v].messages(1 if step % 5 else 3, t), events)
        traded += int(np.count_nonzero(ev["kind"] == FILL))
        cb.on_events(v, ev)
        assert cb.advance(t) == ev.shape[0]
        states = [venue_book(b) for b in venues]
        assert_equals_brute(cb, states, factor, f"seed {seed}, step {step}, venue {v}")
        for u, state in enumerate(states):
            prices, qtys = cb.venue_levels(u, 8)
            for s in range(2):
                want = state[s][:8] + [(0, 0)] * (8 - len(state[s][:8]))
                assert [(int(p), int(q)) for p, q in zip(prices[s], qtys[s], strict=True)] == [
                    (p * factor[u], q) for p, q in want], f"step {step}: venue {u} levels"
        bid, _, _, ask, _, _ = cb.nbbo()
        crossed += bool(bid and ask and bid >= ask)
    assert traded > 100 and crossed > 0            # the flow trades; venues cross apart
    assert cb.pending == 0
    assert cb.engine.counters["inconsistent"] == 0


@pytest.mark.parametrize("seed", range(4))
def test_with_latency_each_venue_is_seen_as_of_its_own_latency(seed: int) -> None:
    rng, factor, flows, venues = random_setup(100 + seed)
    latency = [int(x) for x in rng.choice([0, 1_000_000, 3_000_000, 7_000_000],
                                          size=len(factor))]
    cb = ConsolidatedBook(len(factor), factor, latency_ns=latency)
    events = empty_events(4096)
    # each venue's own book after each of its messages: (timestamp, state)
    history: list[list[tuple[int, tuple]]] = [[(-1, ([], []))] for _ in factor]

    def seen(now: int) -> list[tuple]:
        return [next(state for ts, state in reversed(h) if ts + latency[v] <= now)
                for v, h in enumerate(history)]

    t = 1_000_000_000
    stale = 0
    for step in range(600):
        v = int(rng.integers(len(factor)))
        t += int(rng.integers(0, 1_500_000))
        cb.on_events(v, run_venue(venues[v], flows[v].messages(1, t), events))
        history[v].append((t, venue_book(venues[v])))
        now = t + int(rng.integers(0, 500_000)) if step % 3 == 0 else t
        cb.advance(now)
        t = now
        view = seen(now)
        stale += view != [h[-1][1] for h in history]
        assert_equals_brute(cb, view, factor, f"seed {seed}, step {step}, t {now}")
    assert stale > 100                              # the latency showed older books
    cb.advance(t + max(latency))
    assert cb.pending == 0
    assert_equals_brute(cb, [h[-1][1] for h in history], factor, "drained")


def test_an_explicit_arrival_time_holds_a_whole_call_back() -> None:
    venues, events = [Books(1), Books(1)], empty_events(64)
    cb = ConsolidatedBook(2, [1, 2])
    msgs = empty_messages(2)
    msgs["op"], msgs["tif"], msgs["owner"], msgs["qty"] = LIMIT, GTC, -1, 5
    msgs["order_id"], msgs["side"], msgs["price"] = [1, 2], [BUY, SELL], [99, 101]
    msgs["timestamp"] = [10, 20]
    cb.on_events(0, run_venue(venues[0], msgs, events), arrival_ns=50)
    cb.on_events(1, run_venue(venues[1], msgs, events))   # zero latency: at 10 and 20
    assert cb.advance(10) == 1 and cb.nbbo() == (198, 5, 1, 0, 0, -1)
    assert cb.advance(49) == 1 and cb.nbbo() == (198, 5, 1, 202, 5, 1)
    assert cb.advance(50) == 2 and cb.nbbo() == (198, 5, 1, 101, 5, 0)
    assert cb.pending == 0


def test_a_venue_that_started_before_the_view_is_loaded_from_its_levels() -> None:
    rng, factor, flows, venues = random_setup(7)
    events = empty_events(4096)
    for v, books in enumerate(venues):            # the venues trade before anyone listens
        run_venue(books, flows[v].messages(200, 1), events)
    cb = ConsolidatedBook(len(factor), factor, latency_ns=[5] * len(factor))
    for v, books in enumerate(venues):
        prices, qtys, _ = books.top_levels(DEEP)
        cb.on_levels(v, prices[0], qtys[0], 10)
    assert cb.advance(14) == 0
    assert cb.advance(15) > 0 and cb.pending == 0
    assert_equals_brute(cb, [venue_book(b) for b in venues], factor, "loaded")
    for step in range(200):
        v = int(rng.integers(len(factor)))
        cb.on_events(v, run_venue(venues[v], flows[v].messages(1, 20 + step), events))
        cb.advance(25 + step)
        assert_equals_brute(cb, [venue_book(b) for b in venues], factor, f"step {step}")
    with pytest.raises(ValueError, match="before its first events"):
        cb.on_levels(0, prices[0], qtys[0], 1_000)


# ---- the real two-venue replay -------------------------------------------------------------

SPOT = "rltrader/data/samples/crypto/binance/hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz"
FUTURES = "rltrader/data/samples/crypto/binance/hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz"
PER_MESSAGE = 30_000        # messages compared one by one before the diff batches


@pytest.fixture(scope="module")
def binance_pair() -> list[np.ndarray]:
    """The two venues' messages, one lot (0.000001 BTC) for both; ticks 0.01 and 0.1."""
    from rltrader.data import binance
    from rltrader.data.hybrid import feed_messages

    return [feed_messages(binance.read_feed(path, tick_size=tick, lot_size="0.000001")).messages
            for path, tick in ((SPOT, "0.01"), (FUTURES, "0.1"))]


def diff_batches(streams: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
    """``(timestamp, venue, start, end)`` runs of one venue's messages sharing a timestamp
    (one depth diff), merged in time order (spot first on a tie)."""
    runs = []
    for v, msgs in enumerate(streams):
        starts = np.flatnonzero(np.diff(msgs["timestamp"], prepend=-1))
        ends = np.append(starts[1:], msgs.shape[0])
        runs += [(int(msgs["timestamp"][a]), v, int(a), int(b))
                 for a, b in zip(starts, ends, strict=True)]
    return sorted(runs)


def test_the_binance_spot_and_futures_replay_merges_exactly(binance_pair) -> None:
    factor, n = [1, 10], 20
    venues, events = [Books(1), Books(1)], empty_events(1 << 16)
    cb = ConsolidatedBook(2, factor, depth=n)
    done = checks = crossed = 0
    for t, v, start, end in diff_batches(binance_pair):
        parts = [(a, a + 1) for a in range(start, end)] if done < PER_MESSAGE else [(start, end)]
        for a, b in parts:
            msgs = binance_pair[v][a:b]
            while msgs.size:            # a batch larger than the event buffer: in parts
                consumed, written = venues[v].process(msgs, events)
                cb.on_events(v, events[:written].copy())
                msgs = msgs[consumed:]
            done += b - a
            cb.advance(t)
            states = [venue_book(books, n) for books in venues]
            assert_equals_brute(cb, states, factor, f"t {t}, venue {v}, message {b}", n)
            checks += 1
            bid, _, _, ask, _, _ = cb.nbbo()
            crossed += bid >= ask > 0
    assert done == sum(m.shape[0] for m in binance_pair) and checks > 30_000
    assert cb.engine.counters["inconsistent"] == 0
    # futures trade at a discount to spot on this day: the two books are mostly crossed
    assert crossed > checks // 2, f"{crossed} of {checks} checks crossed"


# ---- fee-adjusted depth, the observation, misuse ------------------------------------------


def quoted(quotes: list[tuple[int, int, int, int]], factor: list[int],
           **kwargs) -> ConsolidatedBook:
    """A book of resting limits ``(venue, side, price, qty)`` (venue ticks)."""
    cb = ConsolidatedBook(len(factor), factor, **kwargs)
    venues, events = [Books(1) for _ in factor], empty_events(64)
    for i, (v, side, price, qty) in enumerate(quotes):
        m = empty_messages(1)
        m["op"], m["tif"], m["owner"], m["order_id"] = LIMIT, GTC, -1, i + 1
        m["side"], m["price"], m["qty"], m["timestamp"] = side, price, qty, i
        cb.on_events(v, run_venue(venues[v], m, events))
    cb.advance(len(quotes))
    return cb


def test_fee_adjusted_depth_orders_by_the_takers_net_price() -> None:
    # taker fees: venue 0 none, venue 1 0.1 %, venue 2 a 0.05 % rebate
    fees = [[0, 0], [-20, 1_000], [0, -500]]
    cb = quoted([(0, SELL, 10_000, 3), (1, SELL, 9_995, 4), (2, SELL, 10_004, 5),
                 (0, BUY, 9_990, 6), (1, BUY, 9_994, 7), (2, BUY, 9_986, 8)], [1, 1, 1],
                fees=fees)
    raw_asks, asks = cb.depth(SELL, 3), cb.depth(SELL, 3, fee_adjusted=True)
    assert asks.dtype == DEPTH_DTYPE
    assert raw_asks["venue"].tolist() == [1, 0, 2]
    assert raw_asks["adjusted"].tolist() == [9_995.0, 10_000.0, 10_004.0]
    # costs: 9,995 * 1.001 = 10,004.995; 10,004 * 0.9995 = 9,998.998; 10,000
    assert asks["venue"].tolist() == [2, 0, 1]
    assert asks["price"].tolist() == [10_004, 10_000, 9_995]
    assert asks["qty"].tolist() == [5, 3, 4]
    assert asks["adjusted"] == pytest.approx([10_004 * 0.9995, 10_000, 9_995 * 1.001])
    # proceeds: 9,994 * 0.999 = 9,984.006; 9,986 * 1.0005 = 9,990.993; 9,990
    bids = cb.depth(BUY, 3, fee_adjusted=True)
    assert bids["venue"].tolist() == [2, 0, 1]
    assert bids["adjusted"] == pytest.approx([9_986 * 1.0005, 9_990, 9_994 * 0.999])
    assert cb.depth(BUY, 3)["venue"].tolist() == [1, 0, 2]
    assert cb.depth(BUY, 2, fee_adjusted=True)["venue"].tolist() == [2, 0]
    assert cb.nbbo() == (9_994, 7, 1, 9_995, 4, 1)      # the NBBO stays raw


def test_fee_adjusted_depth_mixes_grids_and_keeps_levels_in_order() -> None:
    cb = quoted([(0, SELL, 101, 1), (0, SELL, 102, 2), (1, SELL, 51, 3), (1, SELL, 52, 4)],
                [1, 2], fees=[[0, 2_000], [0, 0]])
    asks = cb.depth(SELL, 10, fee_adjusted=True)
    # 101 * 1.002 = 101.202 < 102 = 51 * 2 < 102.204 < 104
    assert rows_of(asks) == [(101, 1, 0), (102, 3, 1), (102, 2, 0), (104, 4, 1)]


def test_the_observation_columns() -> None:
    cb = quoted([(0, BUY, 99, 4), (0, SELL, 103, 2), (1, BUY, 50, 6), (1, SELL, 52, 1),
                 (1, BUY, 49, 10)], [1, 2])
    # NBBO 100 (venue 1) / 103 (venue 0), mid 101.5
    assert cb.nbbo() == (100, 6, 1, 103, 2, 0)
    obs = cb.observation(2)
    assert obs.dtype == np.float32 and obs.shape == (cb.observation_size(),) == (10,)
    assert obs.tolist() == pytest.approx([3, -2.5, 1.5, 4, 2, -1.5, 2.5, 6, 1,
                                          (10 - 3) / 13])
    out = np.full(10, np.nan, dtype=np.float32)
    assert cb.observation(2, out=out) is out and np.array_equal(out, obs)
    empty = ConsolidatedBook(2, [1, 2]).observation()
    assert not empty.any()


def test_misuse_is_refused_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="factor must be 2 ints"):
        ConsolidatedBook(2, [1])
    with pytest.raises(ValueError, match="factor must be 2 ints"):
        ConsolidatedBook(2, [1.0, 10.0])
    with pytest.raises(ValueError, match="factor must be >= 1"):
        ConsolidatedBook(2, [0, 1])
    with pytest.raises(ValueError, match=r"fees must be \(2, 2\)"):
        ConsolidatedBook(2, [1, 1], fees=[0, 0])
    with pytest.raises(ValueError, match="fees must be within"):
        ConsolidatedBook(2, [1, 1], fees=[[0, 0], [0, 2_000_000]])
    with pytest.raises(ValueError, match="latency_ns must be >= 0"):
        ConsolidatedBook(2, [1, 1], latency_ns=[0, -1])
    with pytest.raises(ValueError, match="n_venues must be >= 1"):
        ConsolidatedBook(0, [])
    cb = ConsolidatedBook(2, [1, 10])
    events = empty_events(3)
    for venue in (-1, 2):
        with pytest.raises(ValueError, match=r"venue must be in \[0, 2\), got"):
            cb.on_events(venue, events)
        with pytest.raises(ValueError, match=r"venue must be in \[0, 2\)"):
            cb.venue_levels(venue)
    with pytest.raises(TypeError, match="venue must be an int"):
        cb.on_events(1.0, events)
    with pytest.raises(TypeError, match="1-D array of EVENT_DTYPE, got"):
        cb.on_events(0, empty_messages(3))
    with pytest.raises(TypeError, match="1-D array of EVENT_DTYPE"):
        cb.on_events(0, events.reshape(1, 3))
    with pytest.raises(TypeError, match="1-D array of EVENT_DTYPE, got list"):
        cb.on_events(0, list(events))
    with pytest.raises(ValueError, match=r"must be int arrays of one shape \(2, L\)"):
        cb.on_levels(0, np.zeros((2, 3), dtype=np.int64), np.zeros((2, 4), dtype=np.int64), 0)
    with pytest.raises(ValueError, match="side must be BUY"):
        cb.depth(0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        cb.depth(BUY, 0)
    with pytest.raises(ValueError, match="out must be a contiguous float32 array of shape"):
        cb.observation(out=np.zeros(10, dtype=np.float64))
    cb.advance(100)
    with pytest.raises(ValueError, match="before the view's time 100"):
        cb.advance(99)
    assert cb.pending == 0 and cb.nbbo() == (0, 0, -1, 0, 0, -1)   # nothing was taken
