"""The smart order routers (rltrader.routing.router): children sum to the parent (or to the
parent less the reported remainder), respect its limit and lie on each venue's grid; the
greedy sweep is the cheapest allocation (brute force over every split); Cont–Kukanov's
allocation is a minimum of its sample-average cost (brute force over a grid) and shows the
paper's limits; the outflow estimate equals a reference that reads the book between
messages; the children's messages trade on real books as the routes say."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltrader import Books
from rltrader.core.constants import (
    BUY,
    CANCEL,
    CANCELLED,
    FILL,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    REDUCE,
    REDUCED,
    REJECTED,
    REPLACE,
    SELL,
    Reason,
    SelfTradePrevention,
)
from rltrader.core.messages import empty_messages
from rltrader.routing.router import (
    Child,
    Parent,
    VenueView,
    children_messages,
    cont_kukanov,
    even_split,
    greedy_sweep,
    outflow_samples,
    single_venue,
    snapshot_of,
)

WINDOW = 1_000


def make_view(rng: np.random.Generator, *, factor: int | None = None, n_samples: int = 12,
              outflow: bool = True, max_levels: int = 4) -> VenueView:
    """A random venue around 1000 common ticks on its own grid."""
    f = int(rng.choice([1, 2, 5])) if factor is None else factor
    bid = (1000 // f) * f - f * int(rng.integers(0, 3))
    ask = bid + f * int(rng.integers(1, 4))
    prices = np.zeros((2, max_levels), dtype=np.int64)
    qtys = np.zeros((2, max_levels), dtype=np.int64)
    for row, (start, sign) in enumerate(((bid, -1), (ask, 1))):
        n = int(rng.integers(0, max_levels + 1))
        prices[row, :n] = start + sign * f * np.arange(n)
        qtys[row, :n] = rng.integers(1, 8, n)
    flow = rng.integers(0, 15, (2, n_samples)) * (rng.random((2, n_samples)) < 0.7)
    return VenueView(prices, qtys, f, int(rng.integers(-300, 200)), int(rng.integers(0, 500)),
                     int(rng.integers(0, 5)) * 1_000_000, flow if outflow else None,
                     WINDOW if outflow else 0)


def snapshot(seed: int, venues: int, **kw) -> tuple[VenueView, ...]:
    rng = np.random.default_rng(seed)
    return tuple(make_view(rng, **kw) for _ in range(venues))


def mid_of(views) -> float:
    bids = [v.prices[0, 0] for v in views if v.qtys[0, 0] > 0]
    asks = [v.prices[1, 0] for v in views if v.qtys[1, 0] > 0]
    if bids and asks:
        return (max(bids) + min(asks)) / 2
    return float(max(bids) if bids else min(asks) if asks else 0)


def lots_of(parent: Parent, views, penalty: float = 0.0) -> list[tuple[float, float, int, int]]:
    """Every takeable lot: (decision key, cost beyond the mid, venue, price)."""
    s, m = parent.side, mid_of(views)
    row = 1 if s == BUY else 0
    out = []
    for v, view in enumerate(views):
        for p, q in zip(view.prices[row], view.qtys[row], strict=True):
            if q == 0 or (parent.limit is not None and s * p > s * parent.limit):
                continue
            unit = s * (p - m) + p * view.taker_fee_ppm / 1e6
            out += [(unit + penalty * view.latency_ns / 1e6, unit, v, int(p))] * int(q)
    return out


def check_route(route, parent: Parent, views, *, total: int | None = None) -> None:
    """The invariants every router keeps."""
    sent = sum(c.qty for c in route)
    assert sent + route.remainder == parent.qty
    assert sent <= (parent.qty if total is None else total)
    seen_ioc = set()
    for c in route:
        assert isinstance(c, Child)
        assert c.qty >= 1 and c.side == parent.side and c.tif in (IOC, GTC)
        view = views[c.venue]
        price = c.price * view.factor                         # back to common ticks
        assert parent.allows(price)
        row = (1 if parent.side == BUY else 0) if c.tif == IOC else (0 if parent.side == BUY
                                                                       else 1)
        levels = view.prices[row][view.qtys[row] > 0]
        assert price in levels                                # on the venue's grid: a level
        if c.tif == IOC:
            assert c.venue not in seen_ioc                    # one sweep per venue
            seen_ioc.add(c.venue)
            reach = view.qtys[row][(view.qtys[row] > 0)
                                   & (parent.side * view.prices[row] <= parent.side * price)]
            assert c.qty <= reach.sum()                       # the visible depth holds it
        else:
            assert price == view.prices[row, 0]               # limit orders at the touch


# ---- the sweeps --------------------------------------------------------------------------


def brute_sweep(parent: Parent, views, penalty: float) -> tuple[float, int]:
    """Cheapest (decision) cost of the largest fillable qty, over every per-venue split."""
    lots = lots_of(parent, views, penalty)
    per = [sorted(x[0] for x in lots if x[2] == v) for v in range(len(views))]
    want = min(parent.qty, len(lots))
    best = np.inf
    for split in itertools.product(*(range(len(p) + 1) for p in per)):
        if sum(split) == want:
            best = min(best, sum(sum(p[:k]) for p, k in zip(per, split, strict=True)))
    return best, want


@pytest.mark.parametrize("seed", range(40))
def test_greedy_is_the_cheapest_split(seed):
    rng = np.random.default_rng(1000 + seed)
    views = snapshot(seed, int(rng.integers(1, 4)), max_levels=3)
    side = int(rng.choice([BUY, SELL]))
    limit = None if rng.random() < 0.5 else 1000 + side * int(rng.integers(-2, 8))
    parent = Parent(side, int(rng.integers(1, 25)), limit)
    penalty = float(rng.choice([0.0, 0.3]))
    route = greedy_sweep(parent, views, latency_penalty_ticks_per_ms=penalty)
    check_route(route, parent, views)
    best, want = brute_sweep(parent, views, penalty)
    assert parent.qty - route.remainder == want
    lots = lots_of(parent, views, penalty)
    # The route's own decision cost: each child's lots, cheapest first on its venue.
    got = sum(sum(sorted(x[0] for x in lots if x[2] == c.venue)[:c.qty]) for c in route)
    assert got == pytest.approx(best, abs=1e-9)
    costs = sum(sum(sorted(x[1] for x in lots if x[2] == c.venue)[:c.qty]) for c in route)
    assert route.cost == pytest.approx(costs, abs=1e-9)


def test_greedy_takes_fee_adjusted_prices_in_order():
    # alpha shows 100 at 1000 with a 1 % taker fee (1010 a lot); beta 1005 at 0.1 % (1006).
    alpha = VenueView([[0], [1000]], [[0], [5]], taker_fee_ppm=10_000)
    beta = VenueView([[0], [1005]], [[0], [5]], factor=5, taker_fee_ppm=1_000)
    route = greedy_sweep(Parent(BUY, 7), (alpha, beta))
    assert [(c.venue, c.qty, c.price) for c in route] == [(0, 2, 1000), (1, 5, 201)]
    # A latency penalty of 3 ticks per ms on beta's 2 ms makes alpha first.
    slow = VenueView([[0], [1005]], [[0], [5]], factor=5, taker_fee_ppm=1_000,
                     latency_ns=2_000_000)
    route = greedy_sweep(Parent(BUY, 7), (alpha, slow), latency_penalty_ticks_per_ms=3.0)
    assert [(c.venue, c.qty) for c in route] == [(0, 5), (1, 2)]
    # A sell limit of 1001 leaves beta's bid of 1000 untouched and reports the rest.
    bids = VenueView([[1002, 1000], [0, 0]], [[3, 9], [0, 0]])
    route = greedy_sweep(Parent(SELL, 10, limit=1001), (bids,))
    assert [(c.qty, c.price) for c in route] == [(3, 1002)] and route.remainder == 7


def test_even_split_and_single_venue():
    views = (VenueView([[999], [1001]], [[50], [4]]),
             VenueView([[995], [1005]], [[50], [50]], factor=5),
             VenueView([[998, 0], [1002, 1003]], [[50, 0], [10, 10]]))
    route = even_split(Parent(BUY, 31), views)
    assert [(c.venue, c.qty, c.price) for c in route] == [(0, 4, 1001), (1, 10, 201),
                                                          (2, 10, 1002)]
    assert route.remainder == 7                       # venue 0 shows only 4 of its 11
    check_route(route, Parent(BUY, 31), views)
    route = single_venue(Parent(SELL, 20), views, 1)
    assert [(c.venue, c.qty, c.price, c.tif) for c in route] == [(1, 20, 199, IOC)]


# ---- Cont–Kukanov ------------------------------------------------------------------------


def ck_cost(parent: Parent, views, x: dict, *, horizon: int, lam_u: float, lam_o: float,
            penalty: float = 0.0) -> float:
    """The sample-average cost of an allocation ``x`` ({"M": m, venue: L}), from scratch."""
    s, m = parent.side, mid_of(views)
    keys = sorted(k for k, *_ in lots_of(parent, views, penalty))
    cost = sum(keys[:x["M"]])
    row = 0 if s == BUY else 1
    k = horizon // WINDOW
    n = views[0].outflow.shape[1] - k + 1
    total = 0.0
    for i in range(n):
        filled = x["M"]
        for v, view in enumerate(views):
            if x.get(v, 0) == 0:
                continue
            touch = view.prices[row, 0]
            xi = view.outflow[row, i:i + k].sum()
            got = min(x[v], max(xi - view.qtys[row, 0], 0))
            total -= got * (s * (m - touch) - touch * view.maker_fee_ppm / 1e6)
            filled += got
        total += lam_u * max(parent.qty - filled, 0) + lam_o * max(filled - parent.qty, 0)
    return cost + total / n


def ck_allocation(route) -> dict:
    x = {"M": sum(c.qty for c in route if c.tif == IOC)}
    for c in route:
        if c.tif == GTC:
            x[c.venue] = x.get(c.venue, 0) + c.qty
    return x


def brute_ck(parent: Parent, views, total: int, **kw) -> float:
    s = parent.side
    row = 0 if s == BUY else 1
    depth = len(lots_of(parent, views, kw.get("penalty", 0.0)))
    able = [v for v, view in enumerate(views) if view.qtys[row, 0] > 0
            and parent.allows(int(view.prices[row, 0]))]
    best = np.inf
    for m in range(min(depth, parent.qty, total) + 1):
        for ls in itertools.product(range(total - m + 1), repeat=len(able)):
            if m + sum(ls) <= total:
                x = {"M": m, **dict(zip(able, ls, strict=True))}
                best = min(best, ck_cost(parent, views, x, **kw))
    return best


@pytest.mark.parametrize("method", ["exact", "sa"])
@pytest.mark.parametrize("seed", range(12))
def test_cont_kukanov_reaches_the_grid_minimum(seed, method):
    rng = np.random.default_rng(2000 + seed)
    views = snapshot(seed, int(rng.integers(1, 3)), n_samples=10)
    side = int(rng.choice([BUY, SELL]))
    parent = Parent(side, int(rng.integers(1, 6)),
                    None if seed % 3 else 1000 + side * int(rng.integers(0, 6)))
    total = int(rng.choice([parent.qty, parent.qty + 2]))
    kw = dict(horizon=WINDOW * int(rng.integers(1, 3)), lam_u=float(rng.uniform(0, 12)),
              lam_o=float(rng.uniform(0, 8)), penalty=float(rng.choice([0.0, 0.5])))
    route = cont_kukanov(parent, views, horizon_ns=kw["horizon"], lambda_under=kw["lam_u"],
                         lambda_over=kw["lam_o"], latency_penalty_ticks_per_ms=kw["penalty"],
                         max_total=total, method=method, seed=seed)
    check_route(route, parent, views, total=total)
    x = ck_allocation(route)
    assert route.cost == pytest.approx(ck_cost(parent, views, x, **kw), abs=1e-6)
    assert route.cost <= brute_ck(parent, views, total, **kw) + 1e-6


def test_cont_kukanov_leaves_a_point_where_three_lots_must_move_together():
    """From (M, L_0, L_1, L_2) = (1, 1, 0, 1) no single coordinate and no transfer between
    two improves, but (0, 2, 0, 2) is cheaper: the local search must step on all at once."""
    views = (
        VenueView([[998, 997, 996, 995], [1001, 1002, 1003, 1004]],
                  [[6, 1, 5, 2], [5, 5, 7, 4]], 1, 180, 251, 1_000_000,
                  [[11, 10, 0, 4, 0, 0, 14, 10, 8, 8, 9, 2, 14, 5, 11, 0, 2, 9, 6, 12, 5, 0,
                    6, 13, 0, 8, 8, 0],
                   [1, 9, 2, 0, 9, 0, 8, 13, 0, 0, 13, 11, 7, 11, 10, 0, 0, 0, 0, 0, 0, 0,
                    14, 4, 8, 3, 7, 8]], WINDOW),
        VenueView([[996, 994, 992, 990], [998, 1000, 1002, 1004]],
                  [[2, 1, 5, 1], [3, 5, 4, 2]], 2, -299, 299, 0,
                  [[4, 0, 4, 10, 6, 7, 8, 0, 0, 7, 0, 2, 0, 4, 13, 12, 0, 13, 0, 14, 5, 5, 7,
                    4, 11, 0, 0, 9],
                   [2, 4, 4, 0, 0, 0, 0, 2, 6, 2, 0, 0, 0, 13, 0, 0, 2, 1, 0, 0, 2, 14, 11, 1,
                    6, 0, 9, 0]], WINDOW),
        VenueView([[998, 997, 996, 995], [1000, 1001, 1002, 1003]],
                  [[7, 2, 6, 2], [3, 4, 4, 7]], 1, 161, 95, 3_000_000,
                  [[11, 13, 3, 7, 0, 10, 0, 0, 9, 0, 11, 0, 0, 13, 0, 14, 6, 13, 5, 3, 4, 0,
                    11, 3, 2, 0, 6, 0],
                   [1, 0, 0, 10, 0, 7, 2, 9, 4, 11, 2, 0, 0, 9, 12, 9, 5, 2, 12, 5, 7, 1, 6,
                    11, 9, 0, 10, 0]], WINDOW))
    kw = dict(horizon_ns=WINDOW, lambda_under=6.603073826795844,
              lambda_over=4.529771704353157, max_total=4, latency_penalty_ticks_per_ms=0.5)
    exact = cont_kukanov(Parent(SELL, 2), views, method="exact", **kw)
    searched = cont_kukanov(Parent(SELL, 2), views, method="sa", **kw)
    assert ck_allocation(exact) == {"M": 0, 0: 2, 2: 2}
    assert searched.cost == pytest.approx(exact.cost, abs=1e-9)


def flat_view(bid: int, ask: int, *, flow: int, queue: int = 5, maker: int = -200,
              taker: int = 300, n: int = 20) -> VenueView:
    return VenueView([[bid, bid - 1, bid - 2], [ask, ask + 1, ask + 2]], [[queue] * 3, [40] * 3],
                     maker_fee_ppm=maker, taker_fee_ppm=taker, outflow=np.full((2, n), flow),
                     outflow_window_ns=WINDOW)


def test_cont_kukanov_limits():
    views = (flat_view(999, 1001, flow=3), flat_view(999, 1001, flow=0, queue=0))
    noisy = VenueView(views[0].prices, views[0].qtys, maker_fee_ppm=-200, taker_fee_ppm=300,
                      outflow=np.tile([0, 40], (2, 10)), outflow_window_ns=WINDOW)
    # A huge under-fill penalty: everything by sweep (limits fill in only half the samples).
    route = cont_kukanov(Parent(BUY, 30), (noisy, views[1]), horizon_ns=WINDOW,
                         lambda_under=1e6, lambda_over=1.0)
    assert route.remainder == 0 and all(c.tif == IOC for c in route)
    assert sum(c.qty for c in route) == 30 and route.expected_fill == 30
    # Outflow that always clears the queue and the order, with a rebate: all limits.
    ample = flat_view(999, 1001, flow=100)
    for method in ("exact", "sa"):
        route = cont_kukanov(Parent(BUY, 30), (ample, views[1]), horizon_ns=WINDOW,
                             lambda_under=50.0, lambda_over=1.0, method=method)
        assert [(c.venue, c.qty, c.price, c.tif) for c in route] == [(0, 30, 999, GTC)]
        assert route.cost == pytest.approx(-30 * (1.0 + 999 * 200e-6))
    # No outflow anywhere: limits never fill. Cheaper to leave unfilled than to pay the
    # half spread and fee (1 + 0.3): no sweep, and the parent waits as limits (top-up).
    dead = (flat_view(999, 1001, flow=0), flat_view(999, 1001, flow=0, maker=-500))
    route = cont_kukanov(Parent(BUY, 10), dead, horizon_ns=WINDOW, lambda_under=1.0,
                         lambda_over=1.0)
    assert [(c.venue, c.qty, c.tif) for c in route] == [(1, 10, GTC)]
    assert route.expected_fill == 0 and route.cost == pytest.approx(10.0)
    # ... and dearer to leave unfilled: all by sweep.
    route = cont_kukanov(Parent(BUY, 10), dead, horizon_ns=WINDOW, lambda_under=2.0,
                         lambda_over=1.0)
    assert all(c.tif == IOC for c in route) and sum(c.qty for c in route) == 10


def test_cont_kukanov_over_posts_when_allowed():
    # Each venue fills 10 lots in half the samples: with max_total above the parent and a
    # small over-fill penalty, posting more than the parent pays.
    flow = np.tile([5, 15], (2, 10))
    views = tuple(VenueView([[999], [1001]], [[5], [100]], maker_fee_ppm=-200,
                            taker_fee_ppm=300, outflow=flow, outflow_window_ns=WINDOW)
                  for _ in range(2))
    kw = dict(horizon_ns=WINDOW, lambda_under=4.0, lambda_over=0.1)
    bound = cont_kukanov(Parent(BUY, 10), views, **kw)
    free = cont_kukanov(Parent(BUY, 10), views, max_total=20, **kw)
    assert sum(c.qty for c in bound) <= 10
    assert 10 < sum(c.qty for c in free) <= 20 and free.remainder < 0
    assert free.cost < bound.cost


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), venues=st.integers(1, 3), qty=st.integers(1, 40),
       side=st.sampled_from([BUY, SELL]), limit=st.one_of(st.none(), st.integers(990, 1010)),
       router=st.sampled_from(["greedy", "even", "single", "ck"]))
def test_route_invariants(seed, venues, qty, side, limit, router):
    views = snapshot(seed, venues, outflow=seed % 4 != 0)
    parent = Parent(side, qty, limit)
    if router == "greedy":
        route = greedy_sweep(parent, views, latency_penalty_ticks_per_ms=0.2)
    elif router == "even":
        route = even_split(parent, views)
    elif router == "single":
        route = single_venue(parent, views, seed % venues)
    else:
        route = cont_kukanov(parent, views, horizon_ns=2 * WINDOW, lambda_under=3.0,
                             lambda_over=1.0, method="sa", iterations=100)
    check_route(route, parent, views)
    if router != "ck":
        assert route.expected_fill == qty - route.remainder


# ---- the children on real books ---------------------------------------------------------


def test_children_trade_as_routed():
    """Venue books in their own ticks, viewed in common ticks: the greedy children fill
    exactly their qty, and what the accounts pay equals the route's cost."""
    factors = (1, 5, 2)
    fees = ((-20, 300), (0, 100), (-10, 200))
    rng = np.random.default_rng(7)
    books, views = [], []
    for f, (maker, taker) in zip(factors, fees, strict=True):
        b = Books(1, n_owners=2)
        b.set_fees(maker, taker)
        msgs = empty_messages(8)
        for i in range(8):
            side = BUY if i < 4 else SELL
            touch = (1000 // f) + (0 if side == BUY else 1)
            msgs[i]["order_id"], msgs[i]["op"], msgs[i]["side"] = i + 1, LIMIT, side
            msgs[i]["price"] = touch - side * (i % 4)
            msgs[i]["qty"], msgs[i]["tif"], msgs[i]["owner"] = int(rng.integers(1, 9)), GTC, 0
        b.process_all(msgs)
        prices, qtys, _ = b.top_levels(4)
        views.append(VenueView(prices[0] * f, qtys[0], f, maker, taker))
        books.append(b)
    parent = Parent(BUY, 25)
    route = greedy_sweep(parent, views)
    sent = children_messages(route, owner=[1, 1, 1], next_order_id=100, timestamp=5)
    assert sorted(sent) == sorted({c.venue for c in route})
    ids = np.concatenate([m["order_id"] for m in sent.values()])
    assert sorted(ids.tolist()) == list(range(100, 100 + len(route)))
    m = mid_of(views)
    paid = slack = 0.0
    for v, msgs in sent.items():
        assert (msgs["op"] == LIMIT).all() and (msgs["owner"] == 1).all()
        assert (msgs["timestamp"] == 5).all() and (msgs["book"] == 0).all()
        events = books[v].process_all(msgs)
        assert not (events["kind"] == CANCELLED).any()             # fully filled IOCs
        account = books[v].accounts[0, 1]
        assert account["position"] == sum(c.qty for c in route if c.venue == v)
        # cash is venue ticks x lots, fees truncated per fill: within a tick per fill
        paid += -account["cash"] * factors[v] - m * account["position"]
        n_fills = int((events["kind"] == FILL).sum())
        slack += n_fills * factors[v]
        assert abs(-account["cash"] * factors[v] - (
            sum(p * q * (1 + fees[v][1] / 1e6) for p, q in zip(
                events["price"][events["kind"] == FILL] * factors[v],
                events["qty"][events["kind"] == FILL], strict=True)))) <= n_fills * factors[v]
    assert abs(paid - route.cost) <= slack


def test_children_messages_fields():
    children = [Child(2, SELL, 3, 101, IOC), Child(0, SELL, 4, 99, GTC),
                Child(2, SELL, 1, 100, GTC)]
    out = children_messages(children, owner={0: 7, 2: 9}, next_order_id=50, timestamp=11,
                            book=0)
    assert sorted(out) == [0, 2]
    assert out[2]["order_id"].tolist() == [50, 52] and out[0]["order_id"].tolist() == [51]
    assert out[2]["price"].tolist() == [101, 100] and out[2]["tif"].tolist() == [IOC, GTC]
    assert (out[2]["owner"] == 9).all() and (out[0]["owner"] == 7).all()
    assert (out[2]["side"] == SELL).all() and out[0]["qty"].tolist() == [4]


def test_routes_on_a_simulated_multi_venue_market():
    """The views of a participant's ConsolidatedBook, the venues' own flow as outflow
    samples, every router's children sent through MultiVenueMarket.submit: none is
    rejected, and the sweeps fill."""
    from rltrader.routing.consolidated import ConsolidatedBook
    from rltrader.routing.evaluate import SIMULATED
    from rltrader.routing.venues import MultiVenueMarket

    mv = MultiVenueMarket(SIMULATED, seed=1)
    cb = ConsolidatedBook.of_market(mv, 0)
    start = mv.time_ns
    flow: list[list[np.ndarray]] = [[] for _ in range(mv.n_venues)]
    for _ in range(300):
        for v, events in enumerate(mv.step()):
            flow[v].append(events)
            cb.on_events(v, events)
    cb.advance(mv.time_ns)
    window = int(mv.dt_ns)
    outflow = [np.stack([outflow_samples(np.concatenate(f), s, window, start_ns=start,
                                         end_ns=mv.time_ns) for s in (BUY, SELL)])
               for f in flow]
    assert all(o.shape == (2, 300) for o in outflow) and sum(o.sum() for o in outflow) > 0
    views = snapshot_of(cb, 10, outflow=outflow, outflow_window_ns=window)
    assert [v.factor for v in views] == mv.factor.tolist()
    parent = Parent(BUY, 30)
    routes = [greedy_sweep(parent, views), even_split(parent, views),
              single_venue(parent, views, 0),
              cont_kukanov(parent, views, horizon_ns=10 * window, lambda_under=20.0,
                           lambda_over=5.0)]
    for route in routes:
        check_route(route, parent, views)
        before = mv.accounts(0)["position"].copy()
        sent = children_messages(route, owner=0, next_order_id=0, timestamp=0)
        for v, msgs in sent.items():
            mv.submit(0, v, msgs)
        events = [mv.step() for _ in range(60)]
        for v in range(mv.n_venues):
            mine = np.concatenate([e[v] for e in events])
            mine = mine[mine["owner"] == mv.owner(v, 0)]
            assert not (mine["kind"] == REJECTED).any()
        assert (mv.accounts(0)["position"] - before).sum() > 0


# ---- the outflow estimate ----------------------------------------------------------------


def random_flow(seed: int, n: int) -> np.ndarray:
    """Limit (GTC/IOC/FOK), market, cancel, reduce and replace messages near 1000 from two
    owners (self-trades cancel the taker or both sides)."""
    rng = np.random.default_rng(seed)
    msgs = empty_messages(n)
    msgs["owner"] = rng.integers(0, 2, n)
    live: list[int] = []
    next_id = 1
    for i in range(n):
        msgs[i]["timestamp"] = 1_000 + 37 * i
        r = rng.random()
        if live and r < 0.25:
            oid = live.pop(int(rng.integers(len(live))))
            msgs[i]["order_id"], msgs[i]["op"] = oid, CANCEL
        elif live and r < 0.32:
            oid = live[int(rng.integers(len(live)))]
            msgs[i]["order_id"], msgs[i]["op"], msgs[i]["qty"] = oid, REDUCE, 1
        elif live and r < 0.38:
            oid = live[int(rng.integers(len(live)))]
            msgs[i]["order_id"], msgs[i]["op"] = oid, REPLACE
            msgs[i]["price"], msgs[i]["qty"] = 1000 + int(rng.integers(-3, 4)), 3
        elif r < 0.46:
            msgs[i]["order_id"], msgs[i]["op"] = next_id, MARKET
            msgs[i]["side"], msgs[i]["qty"] = rng.choice([BUY, SELL]), int(rng.integers(1, 6))
            next_id += 1
        else:
            side = int(rng.choice([BUY, SELL]))
            msgs[i]["order_id"], msgs[i]["op"], msgs[i]["side"] = next_id, LIMIT, side
            msgs[i]["price"] = 1000 - side * int(rng.integers(-1, 4))
            msgs[i]["qty"] = int(rng.integers(1, 6))
            msgs[i]["tif"] = rng.choice([GTC, GTC, GTC, IOC, FOK])
            live.append(next_id)
            next_id += 1
    return msgs


def stp_books() -> Books:
    books = Books(1, n_owners=2)
    books.set_self_trade_prevention(SelfTradePrevention.CANCEL_BOTH)
    return books


@pytest.mark.parametrize("side", [BUY, SELL])
def test_outflow_samples_equal_a_message_by_message_reference(side):
    msgs = random_flow(3, 3000)
    events = stp_books().process_all(msgs)
    horizon, start = 2_000, 5_000
    got = outflow_samples(events, side, horizon, start_ns=start)
    # Reference: the touch read off the book before each message; cancels known from the
    # messages that asked for them.
    ref_book = stp_books()
    n = (int(events["timestamp"][-1]) + 1 - start) // horizon
    want = np.zeros(n, dtype=np.int64)
    touch = {}
    self_trades = [0]
    for m in msgs:
        t = int(m["timestamp"])
        w = (t - start) // horizon
        if 0 <= w < n and w not in touch:
            touch[w] = ref_book.best_bid(0) if side == BUY else ref_book.best_ask(0)
        ev = ref_book.process_all(m[None])
        if not 0 <= w < n:
            continue
        p0 = touch[w]
        for e in ev:
            if e["kind"] == FILL and e["side"] == -side and side * e["price"] <= side * p0:
                want[w] += e["qty"]
            elif e["kind"] not in (CANCELLED, REDUCED) or e["side"] != side or e["price"] != p0:
                continue
            elif m["op"] in (CANCEL, REDUCE, REPLACE) and e["reason"] in (
                    Reason.CANCEL_REQUESTED, Reason.REPLACED, 0) and e["order_id"] == m[
                    "order_id"]:
                want[w] += e["qty"]
            elif e["reason"] == Reason.SELF_TRADE and not (
                    m["op"] in (LIMIT, MARKET, REPLACE) and e["order_id"] == m["order_id"]):
                want[w] += e["qty"]                       # a resting maker's, not the taker's
                self_trades[0] += 1
    assert got.sum() > 0 and self_trades[0] > 0
    np.testing.assert_array_equal(got, want)


def test_outflow_samples_feed_cont_kukanov():
    msgs = random_flow(4, 2000)
    events = Books(1).process_all(msgs)
    flow = np.stack([outflow_samples(events, BUY, 1_000), outflow_samples(events, SELL, 1_000)])
    view = VenueView([[999], [1001]], [[3], [3]], outflow=flow, outflow_window_ns=1_000)
    route = cont_kukanov(Parent(BUY, 5), (view,), horizon_ns=3_000, lambda_under=2.0,
                         lambda_over=1.0)
    check_route(route, Parent(BUY, 5), (view,))


# ---- misuse ------------------------------------------------------------------------------


def test_misuse():
    view = VenueView([[999], [1001]], [[5], [5]], outflow=np.ones((2, 4)),
                     outflow_window_ns=WINDOW)
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="qty"):
            Parent(BUY, bad)
    for bad in (0, 2, "buy", True):
        with pytest.raises(ValueError, match="side"):
            Parent(bad, 5)
    with pytest.raises(ValueError, match="limit"):
        Parent(BUY, 5, limit=0)
    for router in (greedy_sweep, even_split):
        with pytest.raises(ValueError, match="no venue"):
            router(Parent(BUY, 5), ())
        with pytest.raises(ValueError, match="Parent"):
            router((BUY, 5), (view,))
        with pytest.raises(ValueError, match="VenueView"):
            router(Parent(BUY, 5), ({"prices": []},))
    with pytest.raises(ValueError, match="no venue"):
        cont_kukanov(Parent(BUY, 5), [], horizon_ns=WINDOW, lambda_under=1, lambda_over=1)
    with pytest.raises(ValueError, match="venue"):
        single_venue(Parent(BUY, 5), (view,), 1)
    with pytest.raises(ValueError, match="multiple"):
        cont_kukanov(Parent(BUY, 5), (view,), horizon_ns=1500, lambda_under=1, lambda_over=1)
    with pytest.raises(ValueError, match="span less"):
        cont_kukanov(Parent(BUY, 5), (view,), horizon_ns=5 * WINDOW, lambda_under=1,
                     lambda_over=1)
    with pytest.raises(ValueError, match="lambda_under"):
        cont_kukanov(Parent(BUY, 5), (view,), horizon_ns=WINDOW, lambda_under=-1, lambda_over=1)
    with pytest.raises(ValueError, match="method"):
        cont_kukanov(Parent(BUY, 5), (view,), horizon_ns=WINDOW, lambda_under=1, lambda_over=1,
                     method="newton")
    with pytest.raises(ValueError, match="latency_penalty"):
        greedy_sweep(Parent(BUY, 5), (view,), latency_penalty_ticks_per_ms=-1.0)
    with pytest.raises(ValueError, match="multiples of factor"):
        VenueView([[999], [1001]], [[5], [5]], factor=2)
    with pytest.raises(ValueError, match="best first"):
        VenueView([[998, 999], [0, 0]], [[5, 5], [0, 0]])
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        VenueView([999, 1001], [5, 5])
    with pytest.raises(ValueError, match="outflow_window_ns"):
        VenueView([[999], [1001]], [[5], [5]], outflow=np.ones((2, 4)))
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        outflow_samples(np.zeros(3), BUY, WINDOW)
    with pytest.raises(ValueError, match="next_order_id"):
        children_messages([Child(0, BUY, 1, 1000, IOC)], owner=0, next_order_id=-1,
                          timestamp=0)
    with pytest.raises(ValueError, match="Child"):
        children_messages([(0, BUY, 1, 1000, IOC)], owner=0, next_order_id=1, timestamp=0)
