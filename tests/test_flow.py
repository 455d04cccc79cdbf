"""Behaviour of the compiled background populations (rltrader._flow) inside a Market."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

from rltrader._flow import Flow
from rltrader.core.constants import FILL, MARKET
from rltrader.sim.market import (
    FundamentalConfig,
    MakerConfig,
    Market,
    MarketConfig,
    NoiseConfig,
    OrderSize,
    ParentOrderConfig,
    RecordConfig,
    SizeClassConfig,
    ValueConfig,
    flow_params,
    preset,
)

DT_S = 0.1  # the configs below step every 100 ms


def background(copies: int = 8, **changes) -> MarketConfig:
    """Noise traders and one market maker around a fixed fundamental of 10,000 ticks."""
    config = MarketConfig(
        copies=copies, close="09:50",
        fundamental=FundamentalConfig(r_bar=10_000.0),
        noise=NoiseConfig(count=40, rate_per_s=0.05, p_market=0.1, p_cancel=0.3,
                          depth_max=10, size=OrderSize(1.0, 2.0, 50.0)),
        makers=MakerConfig(count=1, rate_per_s=0.2, levels=3, half_spread=1.0, qty=5.0,
                           skew=0.05, requote_ticks=2))
    return config.replace(**changes)


def maker_quotes(market: Market, book: int = 0) -> list[tuple[int, int]]:
    """(side, price) of the market maker's resting quotes in ``book``."""
    maker = market.owners["makers"][0]
    out = []
    for order_id in market.flow.live[book, maker]:
        order = market.books.order(book, int(order_id)) if order_id else None
        if order is not None:
            out.append((order["side"], order["price"]))
    return out


def quotes_at(half_spread: float, inventory: int) -> tuple[list[tuple[int, int]], float]:
    """The maker's quotes (skew 0.5 tick per lot) after its inventory was set, and the mid
    it saw when it quoted."""
    config = MarketConfig(close="09:31", makers=MakerConfig(
        count=1, rate_per_s=1 / DT_S, levels=2, half_spread=half_spread, qty=5.0, skew=0.5,
        max_inventory=100))
    market = Market(config, seed=3)
    market.step(1)
    market.books.account_array["position"][0, market.owners["makers"][0]] = inventory
    mid = 0.5 * (market.books.best_bid(0) + market.books.best_ask(0))
    market.step(1)
    return maker_quotes(market), mid


def test_market_maker_skews_its_quotes_against_its_inventory() -> None:
    centres = {}
    for inventory in (-20, 0, 20):
        quotes, _ = quotes_at(12.0, inventory)
        assert sorted(side for side, _ in quotes) == [-1, -1, 1, 1]
        centres[inventory] = np.mean([price for _, price in quotes])
    # the centre moves skew * inventory = 10 ticks against the position
    assert centres[20] == pytest.approx(centres[0] - 10, abs=1)
    assert centres[-20] == pytest.approx(centres[0] + 10, abs=1)


def test_the_skew_never_moves_the_centre_past_the_half_spread() -> None:
    """A skew of 0.5 tick per lot at 20 lots would move the centre 10 ticks; it stops at
    the half spread (1 tick), so the maker's bid stays below the mid and it never buys
    the asks back as a taker."""
    centres = {}
    for inventory in (-20, 0, 20):
        quotes, mid = quotes_at(1.0, inventory)
        centres[inventory] = np.mean([price for _, price in quotes])
        assert max(p for side, p in quotes if side == 1) <= mid
        assert min(p for side, p in quotes if side == -1) >= mid
    assert centres[20] == pytest.approx(centres[0] - 1, abs=1)
    assert centres[-20] == pytest.approx(centres[0] + 1, abs=1)


def test_market_maker_quotes_one_side_at_its_inventory_limit() -> None:
    config = MarketConfig(close="09:31", makers=MakerConfig(
        count=1, rate_per_s=1 / DT_S, levels=2, qty=5.0, max_inventory=30))
    market = Market(config, seed=3)
    market.step(1)
    market.books.account_array["position"][0, market.owners["makers"][0]] = 30
    market.step(1)
    assert {side for side, _ in maker_quotes(market)} == {-1}


def mean_gap(market: Market, steps: int) -> float:
    """Mean over books of (mid - fundamental) after ``steps`` more steps."""
    market.step(steps)
    bid = market.books.book_array["best_bid"].astype(float)
    ask = market.books.book_array["best_ask"].astype(float)
    return float(np.mean(0.5 * (bid + ask) - market.flow.fundamental))


@pytest.mark.parametrize("value_traders", [20, 0])
def test_value_traders_pull_the_price_to_a_shocked_fundamental(value_traders: int) -> None:
    config = background(value=ValueConfig(count=value_traders, rate_per_s=0.2, obs_sd=2.0,
                                          threshold=1.0, passive_offset=1.0))
    market = Market(config, seed=11)
    before = mean_gap(market, 1200)
    market.flow.fundamental[:] += 30.0      # news: the latent value jumps 30 ticks
    market.flow.r_bar[:] += 30.0
    after = mean_gap(market, 3000)
    if value_traders:
        assert abs(before) < 5
        assert after > -10                  # most of the 30-tick gap is gone
    else:
        assert after < -20                  # nobody trades on the news


def impact(qty: int, seed: int = 5) -> tuple[float, np.ndarray]:
    parent = ParentOrderConfig(side="buy", qty=qty, start_s=120.0, end_s=420.0,
                               interval_s=5.0)
    value = ValueConfig(count=10, rate_per_s=0.1, obs_sd=2.0, threshold=2.0)
    market = Market(background(copies=16, parents=(parent,), value=value), seed=seed)
    market.run()
    records = market.recording.parents
    return float(np.mean(records["side"] * (records["end_mid"] - records["arrival_mid"]))), \
        records


def test_a_bigger_parent_order_has_a_bigger_impact() -> None:
    small, small_records = impact(60)
    large, large_records = impact(1200)
    assert np.all(small_records["executed"] == 60)
    assert np.all(large_records["executed"] <= 1200)
    assert np.all(large_records["executed"] > 600)
    assert np.all(large_records["vwap"] > large_records["arrival_mid"])
    assert large > small + 5


def test_larger_size_classes_move_prices_more() -> None:
    config = background(copies=4, close="09:40",
                        noise=NoiseConfig(count=60, rate_per_s=0.1, p_market=0.3,
                                          p_cancel=0.2, depth_max=10,
                                          size=OrderSize(1.0, 3.0, 400.0)),
                        size_class=SizeClassConfig(alpha=1.2, max=40.0),
                        record=RecordConfig(messages=True))
    market = Market(config, seed=2)
    market.run()
    rec = market.recording
    fills = rec.events[rec.events["kind"] == FILL]
    takers = rec.messages[fills["message_index"]]
    is_market = takers["op"] == MARKET
    fills, takers = fills[is_market], takers[is_market]
    # ticks walked by each market order: worst fill price minus first fill price
    index, first = np.unique(fills["message_index"], return_index=True)
    last = np.r_[first[1:], len(fills)] - 1
    walked = np.abs(fills["price"][last] - fills["price"][first]).astype(float)
    owner = takers["owner"][first]
    size_class = market.flow.size_class[takers["book"][first], owner]
    big = size_class >= np.quantile(size_class, 0.75)
    small = size_class <= np.quantile(size_class, 0.25)
    assert big.sum() > 20 and small.sum() > 20
    assert walked[big].mean() > 2 * walked[small].mean()


def test_latency_delays_arrivals_by_whole_steps() -> None:
    parent = ParentOrderConfig(side="sell", qty=40, start_s=1.0, end_s=5.0, interval_s=1.0,
                               latency_ns=250_000_000)      # rounds up to 3 steps
    config = background(copies=1, close="09:31", parents=(parent,),
                        record=RecordConfig(messages=True))
    market = Market(config, seed=1)
    market.run()
    messages = market.recording.messages
    child = messages[messages["owner"] == market.owners["parents"][0]]
    steps = (child["timestamp"] - config.open_ns) // config.dt_ns
    assert steps.tolist() == [13, 23, 33, 43]
    assert child["qty"].tolist() == [10, 10, 10, 10]


def test_maker_latency_holds_back_its_first_quotes() -> None:
    late = MakerConfig(count=1, rate_per_s=1 / DT_S, levels=1, latency_ns=2_000_000_000)
    config = MarketConfig(close="09:31", makers=late, record=RecordConfig(messages=True))
    market = Market(config, seed=1)
    market.step(25)
    first = market.recording.messages["timestamp"].min()
    assert first == config.open_ns + 20 * config.dt_ns


def test_wakeups_follow_the_configured_rates() -> None:
    config = preset("small")
    market = Market(config, seed=4)
    market.step(6000)
    counters = market.flow.counters
    seconds = 6000 * config.dt_ns / 1e9 * config.n_books
    for name, pop in (("noise", config.noise), ("value", config.value),
                      ("momentum", config.momentum)):
        expected = pop.count * pop.rate_per_s * seconds
        assert abs(counters[f"wakeups_{name}"] - expected) < 5 * np.sqrt(expected)
    assert counters["overflow"] == 0


def test_stale_cancels_are_counted_not_lost() -> None:
    market = Market(preset("small"), seed=4)
    market.step(6000)
    counters = market.flow.counters
    assert counters["stale_cancels"] > 0        # cancels of orders that had filled
    assert counters["rejects"] == 0


@pytest.mark.parametrize("bucket", [None, 16])
def test_no_trader_loses_track_of_a_resting_order(monkeypatch, bucket: int | None) -> None:
    """Busy traders are woken twice in one step (their two decisions are shuffled
    independently), and with a bucket far too small decisions are dropped (and counted);
    either way every order a trader has resting stays in its ring, so it can still be
    cancelled: no ghost liquidity."""
    from rltrader._book import OrderState
    from rltrader.sim import market as market_module

    if bucket is not None:
        monkeypatch.setattr(market_module, "bucket_capacity", lambda config: bucket)
    small = preset("small")
    config = small.replace(noise=dataclasses.replace(small.noise, rate_per_s=2.0),
                           makers=dataclasses.replace(small.makers, rate_per_s=5.0))
    day = market_module.Market(config, seed=3)
    day.step(3000)
    assert (day.flow.counters["overflow"] > 0) == (bucket is not None)
    orders = day.books.order_array
    resting = orders[orders["state"] == OrderState.RESTING]
    tracked_owners = [range(*day.owners[pop]) for pop in ("noise", "value", "makers")]
    for owners in tracked_owners:
        for o in resting[np.isin(resting["owner"], list(owners))]:
            assert o["order_id"] in day.flow.live[o["book"], o["owner"]], o
    day.books.check_integrity()


def test_a_negative_latency_is_refused() -> None:
    config = background(copies=1)
    market = Market(config, seed=1)
    params = flow_params(config)
    params = dataclasses.replace(params, value=dataclasses.replace(params.value, latency=-1))
    flow = market.flow
    with pytest.raises(ValueError, match="latencies must be >= 0"):
        Flow(market.books, flow.n_traders, flow.rng_state, flow.r_bar, flow.size_class, 0,
             config.dt_ns, 64, **{f.name: getattr(params, f.name)
                                  for f in dataclasses.fields(params)})


def test_reciprocal_depths_match_pow() -> None:
    """The flow draws alpha = 1 depths as floor(1 / u) (correctly rounded) rather than
    floor(pow(u, -1)) (within 0.54 ulp) when depth_max <= 479. The floors differ only if
    1/u is within pow's error of the rounding midpoint half an ulp below an integer n;
    check exactly that no u of the uniform's grid ((j + 1/2) / 2^53, j < 2^52) does so for
    n <= 480 (n = 2: u above 1/2 is on the grid j / 2^53, 1/u >= 2 - 2 ulp; n = 1: u <= 1),
    and that this machine's pow agrees around every 1/n."""
    for n in range(3, 481):
        below = n - 1 if n & (n - 1) == 0 else n    # the binade of the doubles just below n
        ulp = Fraction(2) ** (below.bit_length() - 1 - 52)
        u_lo, u_hi = 1 / (n - Fraction(44, 100) * ulp), 1 / (n - Fraction(56, 100) * ulp)
        j0 = math.floor(u_lo * 2**53 - Fraction(1, 2))
        for j in range(j0 - 2, j0 + 4):
            u = (j + Fraction(1, 2)) / 2**53
            assert not u_lo < u < u_hi, (n, j)
            assert math.floor(1.0 / float(u)) == math.floor(math.pow(float(u), -1.0)), (n, j)


def test_decide_is_run_without_the_core_call_and_first_owner_shifts_every_owner() -> None:
    """``Flow.decide`` returns the step's arrivals (the draws of ``run(1)``) for the caller
    to run; ``first_owner`` moves the traders to owners ``first_owner ..``, and the market
    makers read their inventory there (their quotes, hence every event, are the same)."""
    from rltrader._book import Books
    from rltrader.core.messages import empty_events
    from rltrader.sim.market import build_flow, owner_ranges

    config = background(copies=4).replace(makers=dataclasses.replace(
        background().makers, skew=0.5, max_inventory=10))
    ran = Market(config, seed=3)
    n = ran.n_traders
    assert n == owner_ranges(config)["parents"][1]
    shift = 5
    books = Books(4, window=config.window, n_owners=n + shift, capacity=1024)
    flow = build_flow(config, books, np.random.SeedSequence(3),
                      np.full(4, config.fundamental.r_bar), 0, first_owner=shift)
    events = empty_events(1 << 16)
    for _ in range(400):
        ran.flow.run(1)
        messages = flow.decide()
        assert set(np.unique(messages["owner"])) <= set(range(shift, shift + n))
        while messages.size:
            consumed, _ = books.process(messages, events)
            messages = messages[consumed:]
    np.testing.assert_array_equal(books.accounts[:, shift:], ran.books.accounts[:, :n])
    assert np.abs(ran.books.accounts[:, :n]["position"]).max() > 0
    for b in range(4):
        assert (books.best_bid(b), books.best_ask(b)) == (ran.books.best_bid(b),
                                                          ran.books.best_ask(b))
    assert flow.step == ran.flow.step
    with pytest.raises(ValueError, match="too few"):
        build_flow(config, Books(4, n_owners=n), np.random.SeedSequence(3),
                   np.full(4, 1e4), 0, first_owner=1)
