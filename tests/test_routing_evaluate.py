"""The routers' evaluation: every router executes the same parent from the same market
state and completes it exactly; the accounting of a parent's cost is exact; on simulated
venues the greedy router's advantage over the even split has a CI that excludes zero."""

from __future__ import annotations

import pickle

import numpy as np

from rltrader.core.constants import BUY, SELL
from rltrader.routing.evaluate import (
    SIMULATED,
    execute,
    run_market,
    seeded_view,
    summarize,
)
from rltrader.routing.router import Child
from rltrader.routing.venues import MultiVenueMarket


def warmed(seed: int = 0) -> MultiVenueMarket:
    mv = MultiVenueMarket(SIMULATED, seed=seed)
    for _ in range(200):
        mv.step()
    return mv


def test_every_router_completes_the_parent_from_the_same_state() -> None:
    mv = warmed()
    results = run_market(mv, parents=6, qty=(50, 300), horizon=5, gap=(5, 15), seed=3)
    assert {"greedy", "even_split", "venue_0"} <= set(results)
    sizes = None
    for outcomes in results.values():
        assert len(outcomes) == 6
        filled = [o.filled for o in outcomes]
        sizes = filled if sizes is None else sizes
        assert filled == sizes                      # the same parents, each completed
        assert all(0 <= o.fill_rate <= 1 for o in outcomes)


def test_a_parents_cost_is_what_the_accounts_paid() -> None:
    mv = warmed(1)
    state = pickle.dumps(mv)
    for side in (BUY, SELL):
        market = pickle.loads(state)
        bid, _, ask, _ = market.touch(0)
        mid = (bid + ask) / 2
        start = market.accounts(0).copy()
        price = ask + 5 if side == BUY else bid - 5
        outcome = execute(market, [Child(0, side, 20, price, 1)], side, 20, 3,
                          np.zeros(3), mid)
        end = market.accounts(0)
        moved = end["position"] - start["position"]
        assert int(moved.sum()) == side * 20 == side * outcome.filled
        paid = float(-(end["cash"] - start["cash"]) @ market.factor)   # common ticks, fees in
        assert abs(outcome.shortfall_bps - side * (paid / (side * 20) - mid) / mid * 1e4) < 1e-9
        assert outcome.shortfall_bps > 0            # crossing the spread costs


def test_the_consolidated_view_starts_from_the_venues_books() -> None:
    mv = warmed(2)
    view = seeded_view(mv, 0)
    for v in range(mv.n_venues):
        prices, qtys, _ = mv.books[v].top_levels(10)
        got_p, got_q = view.venue_levels(v, 10)
        assert np.array_equal(got_q, qtys[0])
        assert np.array_equal(np.where(got_q > 0, got_p, 0),
                              np.where(qtys[0] > 0, prices[0] * mv.factor[v], 0))


def test_greedy_beats_the_even_split_with_a_ci_excluding_zero() -> None:
    outcomes = run_market(warmed(4), parents=25, qty=(50, 400), horizon=10, gap=(20, 40),
                          seed=11)
    summary = summarize({"simulated": outcomes})["simulated"]["routers"]
    assert summary["greedy"]["minus_even_split_bps"]["ci_high"] < 0
    assert summary["greedy"]["minus_best_single_bps"]["ci_high"] < 0
