"""The routers against single-venue execution and a naive even split, paired, with
confidence intervals: ``python -m rltrader.routing.evaluate [--out DIR]``.

For every market (simulated multi-venue markets of several seeds, and the real Binance
spot + USD-M pair), parent orders arrive at random times with a random side and size. At
each parent's arrival the market is copied once per router (pickle: the same state for
every router), and each copy runs the router's children for ``horizon`` steps: the
router decides on the participant's latency-aware view (a
:class:`~rltrader.routing.consolidated.ConsolidatedBook`), its children travel with the
participant's latency, whatever rests at the end is cancelled and the remainder is bought
(sold) with a market order on the venue with the best touch, so that every router ends
the parent complete. Per parent and router:

- implementation shortfall (bps): side x (what was paid per lot, fees included, in
  currency) / (the NBBO mid at arrival) - 1, net of the Binance pair's basis;
- fill rate: the share of the parent filled by the router's children before the clean-up;
- fees (bps of notional; negative is a net rebate).

Differences are paired by parent (the same market state); the report gives means with
Student-t 95 % intervals and plots.
"""

from __future__ import annotations

import argparse
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.core.constants import BUY, CANCEL, EMPTY_ASK, EMPTY_BID, GTC, IOC, LIMIT, MARKET
from rltrader.core.messages import empty_messages
from rltrader.routing.consolidated import ConsolidatedBook
from rltrader.routing.venues import Arbitrageurs, MultiVenueConfig, MultiVenueMarket, Venue
from rltrader.training.evaluation import Summary, interval_text

#: The simulated venues: a deep maker-rebate venue, a cheap thin one, a coarse slow one.
SIMULATED = MultiVenueConfig("XYZ", (
    Venue("lit", "resilient", "0.01", maker_fee_ppm=-20, taker_fee_ppm=30, latency_ns=200_000),
    Venue("cheap", "thin", "0.01", maker_fee_ppm=0, taker_fee_ppm=5, latency_ns=1_000_000),
    Venue("coarse", "resilient", "0.05", maker_fee_ppm=0, taker_fee_ppm=20,
          latency_ns=5_000_000)), Arbitrageurs(qty=10), participants=1)


@dataclass(frozen=True)
class Outcome:
    """One parent executed by one router."""

    shortfall_bps: float
    fill_rate: float
    fees_bps: float
    filled: int
    cleanup: int


def _view(mv: MultiVenueMarket, participant: int) -> ConsolidatedBook:
    return ConsolidatedBook.of_market(mv, participant)


def _mid(mv: MultiVenueMarket, basis: np.ndarray) -> float:
    """The true NBBO mid now, common ticks (basis-adjusted)."""
    bids, asks = [], []
    for v in range(mv.n_venues):
        bid, _, ask, _ = mv.touch(v)
        if bid != EMPTY_BID:
            bids.append(bid * mv.factor[v] - basis[v])
        if ask != EMPTY_ASK:
            asks.append(ask * mv.factor[v] - basis[v])
    return (max(bids) + min(asks)) / 2


def execute(mv: MultiVenueMarket, children: list[Any], side: int, qty: int, horizon: int,
            basis: np.ndarray, arrival_mid: float, participant: int = 0) -> Outcome:
    """Send ``children`` now, run ``horizon`` steps, cancel what rests, complete the rest
    with a market order; the outcome against ``arrival_mid`` (common ticks)."""
    start = mv.accounts(participant).copy()
    resting: list[tuple[int, int]] = []
    for child in children:
        msg = empty_messages(1)
        msg["side"], msg["qty"] = side, int(child.qty)
        if child.tif is None or child.price is None:
            msg["op"], msg["tif"] = MARKET, IOC
        else:
            msg["op"], msg["price"], msg["tif"] = LIMIT, int(child.price), int(child.tif)
        order_id = int(mv.submit(participant, int(child.venue), msg)[0])
        if msg["op"][0] == LIMIT and int(child.tif) == GTC:
            resting.append((int(child.venue), order_id))
    for _ in range(horizon):
        mv.step()
    filled = int(abs((mv.accounts(participant)["position"] - start["position"]).sum()))
    for venue, order_id in resting:
        msg = empty_messages(1)
        msg["op"], msg["order_id"] = CANCEL, order_id
        mv.submit(participant, venue, msg)
    mv.step()                                             # the cancels land
    done = int(abs((mv.accounts(participant)["position"] - start["position"]).sum()))
    left = qty - done
    cleanup = 0
    while left > 0:                                       # complete at the best touch
        best, best_price = -1, None
        for v in range(mv.n_venues):
            bid, bid_qty, ask, ask_qty = mv.touch(v)
            price = (ask if side == BUY else bid)
            if price in (EMPTY_ASK, EMPTY_BID):
                continue
            adjusted = price * mv.factor[v] - basis[v]
            if best_price is None or side * adjusted < side * best_price:
                best, best_price = v, adjusted
        if best < 0:
            mv.step()
            continue
        msg = empty_messages(1)
        msg["op"], msg["side"], msg["qty"], msg["tif"] = MARKET, side, left, IOC
        mv.submit(participant, best, msg)
        mv.step()
        cleanup += 1
        left = qty - int(abs((mv.accounts(participant)["position"]
                              - start["position"]).sum()))
        if cleanup > 50:
            raise RuntimeError("the market could not complete the parent in 50 steps")
    end = mv.accounts(participant)
    moved = (end["position"] - start["position"]).astype(np.float64)
    cash = (end["cash"] - start["cash"]).astype(np.float64)      # venue ticks x lots, fees in
    fees = (end["fees"] - start["fees"]).astype(np.float64)
    factor = mv.factor.astype(np.float64)
    paid = float((-cash * factor - basis * moved).sum())           # common ticks x lots
    price = paid / float(moved.sum())                              # per lot, fees in
    shortfall = side * (price - arrival_mid) / arrival_mid * 1e4
    fee_bps = float((fees * factor).sum()) / (abs(float(moved.sum())) * arrival_mid) * 1e4
    return Outcome(float(shortfall), filled / qty, fee_bps, int(abs(moved.sum())), cleanup)


# ---- the participant's view ----------------------------------------------------------------


def seeded_view(mv: MultiVenueMarket, participant: int, depth: int = 20) -> ConsolidatedBook:
    """A participant's consolidated book, started from every venue's whole book now (the
    events that follow then keep it)."""
    view = ConsolidatedBook.of_market(mv, participant, depth)
    for v, books in enumerate(mv.books):
        prices, qtys, _ = books.top_levels(4096)
        view.on_levels(v, prices[0], qtys[0], mv.time_ns, arrival_ns=mv.time_ns)
    view.advance(mv.time_ns)
    return view


def snapshot(view: ConsolidatedBook, basis: np.ndarray, outflow: list[np.ndarray] | None,
             window_ns: int) -> tuple[Any, ...]:
    """The routers' input: each venue's top levels as the participant sees them, prices
    net of the venue's basis (common ticks, a multiple of its factor)."""
    from rltrader.routing.router import VenueView

    views = []
    for v in range(view.n_venues):
        prices, qtys = view.venue_levels(v, 10)
        prices = np.where(qtys > 0, prices - basis[v], 0)
        views.append(VenueView(prices, qtys, int(view.factor[v]), int(view.fees[v][0]),
                               int(view.fees[v][1]), int(view.latency_ns[v]),
                               None if outflow is None else outflow[v], window_ns))
    return tuple(views)


# ---- one market ----------------------------------------------------------------------------


def routers(n_venues: int, horizon_ns: int, lambda_under: float) -> dict[str, Any]:
    """The routers compared: name -> ``route(parent, snapshot) -> Route``. Cont–Kukanov
    prices a lot left unfilled at the horizon at ``lambda_under`` common ticks (the
    clean-up's market order then pays about that much beyond the mid) and an extra lot
    bought at half of it."""
    from rltrader.routing import router as r

    out: dict[str, Any] = {
        "greedy": r.greedy_sweep,
        "greedy_latency": lambda p, s: r.greedy_sweep(p, s, latency_penalty_ticks_per_ms=0.5),
        "even_split": r.even_split,
    }
    for v in range(n_venues):
        out[f"venue_{v}"] = (lambda k: lambda p, s: r.single_venue(p, s, k))(v)
    out["cont_kukanov"] = lambda p, s: r.cont_kukanov(
        p, s, horizon_ns=horizon_ns, lambda_under=lambda_under,
        lambda_over=lambda_under / 2, method="sa", iterations=400)
    return out


def run_market(mv: MultiVenueMarket, *, parents: int, qty: tuple[int, int], horizon: int,
               gap: tuple[int, int], seed: int, basis: np.ndarray | None = None,
               participant: int = 0, lambda_under: float = 4.0, progress: Any = None
               ) -> dict[str, list[Outcome]]:
    """``parents`` parent orders on ``mv``, each executed by every router from the same
    state; the outcomes per router, in parent order."""
    rng = np.random.default_rng(seed)
    basis = np.zeros(mv.n_venues) if basis is None else np.asarray(basis, dtype=np.float64)
    grid_basis = np.rint(basis / mv.factor) * mv.factor            # on each venue's grid
    view = seeded_view(mv, participant)
    table = routers(mv.n_venues, mv.dt_ns * horizon, lambda_under)
    results: dict[str, list[Outcome]] = {name: [] for name in table}
    recent: list[list[np.ndarray]] = [[] for _ in range(mv.n_venues)]
    for _parent in range(parents):
        for _ in range(int(rng.integers(*gap))):
            events = mv.step()
            for v, e in enumerate(events):
                view.on_events(v, e)
                recent[v].append(e)
                del recent[v][:-600]
            view.advance(mv.time_ns)
            if mv.done:
                return results
        side = 1 if rng.random() < 0.5 else -1
        size = int(rng.integers(*qty))
        outflow = _outflows(recent, mv.dt_ns * horizon)
        views = snapshot(view, grid_basis, outflow, mv.dt_ns * horizon)
        from rltrader.routing.router import Parent
        parent = Parent(side, size)
        state = pickle.dumps(mv)
        arrival = _mid(mv, grid_basis)
        for name, route in table.items():
            market = pickle.loads(state)
            children = [_raw(c, grid_basis, mv.factor) for c in route(parent, views)]
            results[name].append(execute(market, children, side, size, horizon, grid_basis,
                                         arrival, participant))
        if progress is not None:
            progress(1)
    return results


def _raw(child: Any, basis: np.ndarray, factor: np.ndarray) -> Any:
    """A child priced net of basis, back on its venue's own prices."""
    from rltrader.routing.router import Child

    shift = int(basis[child.venue] // factor[child.venue])
    return Child(child.venue, child.side, child.qty, child.price + shift, child.tif)


def _outflows(recent: list[list[np.ndarray]], window_ns: int) -> list[np.ndarray] | None:
    """Each venue's touch outflow per window, from its last 600 steps of events."""
    from rltrader.routing import router as r

    out = []
    for chunks in recent:
        events = np.concatenate(chunks) if chunks else None
        if events is None or events.size == 0:
            return None
        out.append(np.stack([r.outflow_samples(events, side, window_ns) for side in (1, -1)]))
    return out


# ---- every market, the statistics, the report ----------------------------------------------


def _basis(mv: MultiVenueMarket) -> np.ndarray:
    """Each venue's price level against venue 0 now (common ticks): the mids' difference."""
    mids = []
    for v in range(mv.n_venues):
        bid, _, ask, _ = mv.touch(v)
        mids.append((bid + ask) / 2 * mv.factor[v])
    return np.array(mids) - mids[0]


def evaluate(*, seeds: tuple[int, ...] = (0, 1, 2, 3, 4), parents: int = 60,
             real: bool = True, progress: bool = True) -> dict[str, Any]:
    """The simulated markets (one per seed) and the Binance pair; outcomes per group."""
    from tqdm import tqdm

    groups: dict[str, dict[str, list[Outcome]]] = {}
    bar = tqdm(total=parents * len(seeds) + (80 if real else 0), unit="parent",
               disable=not progress, desc="routing")
    simulated: dict[str, list[Outcome]] = {}
    for seed in seeds:
        mv = MultiVenueMarket(SIMULATED, seed=seed)
        for _ in range(300):
            mv.step()
        for name, outs in run_market(mv, parents=parents, qty=(50, 400), horizon=10,
                                     gap=(20, 60), seed=1000 + seed,
                                     progress=bar.update).items():
            simulated.setdefault(name, []).extend(outs)
    groups["simulated"] = simulated
    if real:
        mv = MultiVenueMarket.binance_pair()
        for _ in range(50):
            mv.step()
        groups["binance_spot_usdm"] = run_market(
            mv, parents=80, qty=(50_000, 1_000_000), horizon=10, gap=(20, 45), seed=7,
            basis=_basis(mv), progress=bar.update)
    bar.close()
    return groups


def summarize(groups: dict[str, dict[str, list[Outcome]]]) -> dict[str, Any]:
    """Per group: each router's means with 95 % intervals, and the paired differences of
    every router against the even split and against the best single venue (the one with
    the lowest mean shortfall, chosen after the fact: the strongest baseline)."""
    out: dict[str, Any] = {}
    for group, results in groups.items():
        names = list(results)
        n = min(len(v) for v in results.values())
        if n < 2:
            continue
        shortfall = {k: np.array([o.shortfall_bps for o in v[:n]]) for k, v in results.items()}
        singles = [k for k in names if k.startswith("venue_")]
        best_single = min(singles, key=lambda k: shortfall[k].mean())
        table = {}
        for name in names:
            table[name] = {
                "shortfall_bps": Summary.of(shortfall[name]).as_dict(),
                "fill_rate": Summary.of([o.fill_rate for o in results[name][:n]]).as_dict(),
                "fees_bps": Summary.of([o.fees_bps for o in results[name][:n]]).as_dict(),
                "minus_even_split_bps": Summary.of(
                    shortfall[name] - shortfall["even_split"]).as_dict(),
                "minus_best_single_bps": Summary.of(
                    shortfall[name] - shortfall[best_single]).as_dict(),
            }
        out[group] = {"parents": n, "best_single_venue": best_single, "routers": table}
    return out



def report(summary: dict[str, Any], out: Path) -> Path:
    """``report.md`` and ``shortfall.png`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = list(summary)
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    lines = ["# Smart order routing: paired evaluation", ""]
    for ax, group in zip(axes[0], groups, strict=True):
        g = summary[group]
        names = list(g["routers"])
        means = [g["routers"][k]["shortfall_bps"]["mean"] for k in names]
        low = [m - g["routers"][k]["shortfall_bps"]["ci_low"] for k, m in zip(names, means,
                                                                                strict=True)]
        ax.bar(range(len(names)), means, yerr=low, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
        ax.set_ylabel("implementation shortfall, bps (95 % CI)")
        ax.set_title(f"{group} ({g['parents']} parents)")
        lines += [f"## {group}: {g['parents']} parents, best single venue "
                  f"`{g['best_single_venue']}`", "",
                  "| router | shortfall bps | fill rate | fees bps | − even split bps | "
                  "− best single venue bps |", "|---|---|---|---|---|---|"]
        for name in names:
            r = g["routers"][name]
            cells = [interval_text(r["shortfall_bps"]), interval_text(r["fill_rate"], 3),
                     interval_text(r["fees_bps"]), interval_text(r["minus_even_split_bps"]),
                     interval_text(r["minus_best_single_bps"])]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    fig.tight_layout()
    fig.savefig(out / "shortfall.png", dpi=110)
    plt.close(fig)
    lines += ["![shortfall](shortfall.png)", "",
              "Paired by parent: every router executed the same parent from the same market "
              "state (a copy). Negative differences: the router paid less.", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rltrader.routing.evaluate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("routing-eval"))
    parser.add_argument("--seeds", type=int, default=5, help="simulated markets (seeds)")
    parser.add_argument("--parents", type=int, default=60, help="parents per market")
    parser.add_argument("--no-real", action="store_true", help="skip the Binance pair")
    args = parser.parse_args(argv)
    groups = evaluate(seeds=tuple(range(args.seeds)), parents=args.parents,
                      real=not args.no_real)
    summary = summarize(groups)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(report(summary, args.out).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
