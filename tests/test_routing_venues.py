"""Multi-venue markets: venues on one clock with their own ticks, fees and latencies;
arbitrageurs keep them linked; a participant's orders arrive after its latency; the real
two-venue replay rebuilds each venue's record."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.core.constants import BUY, EMPTY_ASK, EMPTY_BID, FILL, IOC, LIMIT, MARKET, SELL
from rltrader.core.messages import empty_messages
from rltrader.data.samples import PACKAGED
from rltrader.routing.venues import Arbitrageurs, MultiVenueConfig, MultiVenueMarket, Venue
from rltrader.sim.config import preset

ALPHA = Venue("alpha", "resilient", "0.01", maker_fee_ppm=-20, taker_fee_ppm=30,
              latency_ns=200_000)
BETA = Venue("beta", "resilient", "0.05", maker_fee_ppm=0, taker_fee_ppm=10,
             latency_ns=30_000_000)


LINKED = Arbitrageurs()


def market(arbitrageurs: Arbitrageurs | None = LINKED, seed: int = 0) -> MultiVenueMarket:
    return MultiVenueMarket(MultiVenueConfig("XYZ", (ALPHA, BETA), arbitrageurs,
                                             participants=2), seed=seed)


def mids(mv: MultiVenueMarket) -> np.ndarray:
    out = np.full(mv.n_venues, np.nan)
    for v in range(mv.n_venues):
        bid, _, ask, _ = mv.touch(v)
        if bid != EMPTY_BID and ask != EMPTY_ASK:
            out[v] = (bid + ask) / 2 * mv.factor[v]
    return out


def test_grid_fees_latency_and_owners() -> None:
    mv = market()
    assert str(mv.common_tick) == "0.01" and mv.factor.tolist() == [1, 5]
    assert mv.fees.tolist() == [[-20, 30], [0, 10]]
    assert mv.latency_ns[:2].tolist() == [[200_000, 30_000_000]] * 2
    assert mv.latency_ns[2:].tolist() == [[500_000] * 2, [2_000_000] * 2]
    assert mv.owner(0, 1) == mv.owner(0, 0) + 1
    for books in mv.books:
        assert books.n_books == 1


def test_one_latent_value_keeps_the_venues_near_each_other() -> None:
    mv = market(None, seed=4)
    gap = []
    for step in range(3000):
        mv.step()
        if step % 50 == 0:
            m = mids(mv)
            gap.append(abs(m[0] - m[1]))
    for books in mv.books:
        books.check_integrity()
    assert np.nanmean(gap) < 15          # common ticks: a few of beta's 5-tick grid


def shock_and_follow(arbs: Arbitrageurs | None, seed: int) -> tuple[np.ndarray, int]:
    """On two thin venues, a participant buys 200 lots on alpha at once: how far each
    venue's mid moved 5 s later (common ticks), and the arbitrage trades."""
    venues = (Venue("alpha", "thin", "0.01", -20, 30, 200_000),
              Venue("beta", "thin", "0.02", 0, 10, 30_000_000))
    mv = MultiVenueMarket(MultiVenueConfig("XYZ", venues, arbs, participants=1), seed=seed)
    for _ in range(300):
        mv.step()
    before = mids(mv)
    trades = mv.arbitrage_trades
    msg = empty_messages(1)
    msg["op"], msg["side"], msg["qty"], msg["tif"] = MARKET, BUY, 200, IOC
    mv.submit(0, 0, msg)
    for _ in range(50):
        mv.step()
    return mids(mv) - before, mv.arbitrage_trades - trades


def test_arbitrageurs_carry_a_shock_to_the_other_venue() -> None:
    alone, linked, trades = [], [], 0
    for seed in range(5, 10):
        move, none = shock_and_follow(None, seed)
        assert none == 0
        alone.append(move)
        move, n = shock_and_follow(Arbitrageurs(qty=20), seed)
        linked.append(move)
        trades += n
    alone_move, linked_move = np.mean(alone, axis=0), np.mean(linked, axis=0)
    assert trades > 10
    assert alone_move[0] > 5                             # the buy moved its own venue
    assert linked_move[0] < alone_move[0] - 2            # arbitrage sold some of it back
    assert linked_move[1] > alone_move[1] + 1            # ...on the other venue, moving it


def test_a_participants_order_arrives_after_its_latency_and_pays_the_venues_fee() -> None:
    mv = market(None, seed=1)
    for _ in range(50):
        mv.step()
    for venue, latency, fee in ((0, 200_000, 30), (1, 30_000_000, 10)):
        msg = empty_messages(1)
        msg["op"], msg["side"], msg["qty"], msg["tif"] = MARKET, BUY, 3, IOC
        sent = mv.time_ns
        before = mv.accounts(0)[venue].copy()
        order_id = int(mv.submit(0, venue, msg)[0])
        seen = []
        while mv.time_ns <= sent + latency:
            events = mv.step()[venue]
            seen.append(events[events["order_id"] == order_id])
        mine = np.concatenate(seen)
        assert mine.size and np.all(mine["timestamp"] == sent + latency)
        fills = mine[mine["kind"] == FILL]
        after = mv.accounts(0)[venue]
        assert after["position"] - before["position"] == fills["qty"].sum() == 3
        notional = int((fills["price"] * fills["qty"]).sum())
        assert after["fees"] - before["fees"] == pytest.approx(notional * fee / 1e6, abs=1)


def test_the_same_seed_gives_the_same_venues() -> None:
    a, b = market(seed=7), market(seed=7)
    for _ in range(300):
        ea, eb = a.step(), b.step()
        for x, y in zip(ea, eb, strict=True):
            assert np.array_equal(x, y)


def test_misuse_is_refused() -> None:
    mv = market()
    msg = empty_messages(1)
    msg["op"], msg["side"], msg["qty"], msg["price"] = LIMIT, SELL, 1, 10_000
    with pytest.raises(ValueError, match="participant"):
        mv.submit(9, 0, msg)
    with pytest.raises(ValueError, match="venue"):
        mv.submit(0, 5, msg)
    with pytest.raises(TypeError, match="MESSAGE_DTYPE"):
        mv.submit(0, 0, np.zeros(1))
    with pytest.raises(ValueError, match="dt_ns"):
        MultiVenueMarket(MultiVenueConfig("XYZ", (ALPHA, Venue(
            "odd", preset("resilient").replace(dt_ns=50_000_000)))), seed=0)
    with pytest.raises(ValueError, match="repeat"):
        MultiVenueConfig("XYZ", (ALPHA, ALPHA))
    with pytest.raises(ValueError, match="latency_ns must be"):
        MultiVenueConfig("XYZ", (ALPHA, BETA), participants=1, latency_ns=((1,),))


def test_the_binance_pair_replays_both_records() -> None:
    """Known answers: each venue of the real pair ends on its own replay's book."""
    from rltrader.data import binance
    from rltrader.data.hybrid import from_feed

    mv = MultiVenueMarket.binance_pair()
    assert mv.factor.tolist() == [1, 10]
    while not mv.done:
        mv.step()
    root = PACKAGED / "crypto" / "binance"
    for v, (name, tick) in enumerate((("spot", "0.01"), ("usdm", "0.1"))):
        feed = binance.read_feed(root / f"hftbacktest_binance_{name}_btcusdt_20240808_raw_ws.gz",
                                 tick_size=tick, lot_size="0.000001")
        alone = from_feed(feed, 1, trades=True)
        alone.step(until_ts=2**62)
        p, q, _ = alone.books.top_levels(20)
        p2, q2, _ = mv.books[v].top_levels(20)
        assert np.array_equal(q, q2) and np.array_equal(p * (q > 0), p2 * (q2 > 0)), name
