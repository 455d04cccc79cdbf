"""``rltrader demo``: the main job, end to end, with no arguments.

1. **Real flow, agents on top** (the LOBSTER samples shipped in :mod:`rltrader.data.samples`,
   or those of ``--data`` / ``$RLTRADER_DATA``): the AAPL 10-level pair is rebuilt exactly
   (all 999 orderbook rows); then the 09:30-10:30 hour is replayed twice through
   :class:`rltrader.data.hybrid.HybridReplay`, once as recorded and once with a small and a
   large agent sending market buys at 10:00 into the same queues. The record cannot react,
   so the large buy's footprint and the trimmed historical messages show what an agent's
   trade changes. Writes ``real_flow.png``.
2. **A simulated market day** (:func:`rltrader.analysis.realism.demo_day`): background
   populations on 8 books for 09:30-16:00, a paired parent-order impact experiment, and the
   stylized facts of the day against the literature's ranges. Writes ``market/report.md``
   and its figures.
3. **Speed**: the batched core on the real flow over 1 and 512 books.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rltrader.core.constants import BUY, EMPTY_ASK, EMPTY_BID, FILL, MARKET, NS_PER_S
from rltrader.core.messages import empty_messages
from rltrader.data.samples import (
    AAPL_HOUR,
    AAPL_PAIR_MESSAGE,
    AAPL_PAIR_ORDERBOOK,
    sample_path,
)
from rltrader.tools import workloads

TICK = 0.01          # dollars per tick (LOBSTER prices / 100)
BUY_AT = 10 * 3600 * NS_PER_S                      # 10:00:00
AGENTS = ((0, 100, "small"), (1, 20_000, "large"))   # (owner, lots, name)


# ---------------------------------------------------------------------------------------
# 1. real flow with agents on top
# ---------------------------------------------------------------------------------------

def exact_rebuild(data: Path | None = None) -> tuple[int, int]:
    """Rows of the 10-level AAPL pair rebuilt exactly, and rows in all."""
    from rltrader.data import lobster
    from rltrader.data.lobster_exact import exact_messages

    raw = lobster.read_raw(sample_path(AAPL_PAIR_MESSAGE, data))
    depth = lobster.read_orderbook(sample_path(AAPL_PAIR_ORDERBOOK, data))
    prices, qtys = lobster.replay_depth(exact_messages(raw, depth).feed, levels=10)
    want_prices, want_qtys = depth.in_ticks()
    same = ((prices == want_prices) & (qtys == want_qtys)).all(axis=(1, 2))
    return int(same.sum()), len(same)


def agent_buys() -> np.ndarray:
    """The agents' market buys at 10:00 (ids above the history's)."""
    from rltrader.core.constants import AGENT_ID_BASE

    buys = empty_messages(len(AGENTS))
    buys["timestamp"] = BUY_AT
    buys["order_id"] = AGENT_ID_BASE + np.arange(len(AGENTS))
    buys["qty"] = [qty for _, qty, _ in AGENTS]
    buys["owner"] = [owner for owner, _, _ in AGENTS]
    buys["op"] = MARKET
    buys["side"] = BUY
    return buys


def hybrid_hour(feed, grid: np.ndarray, agents: np.ndarray | None, progress: bool) -> dict:
    """Replay ``feed`` on ``grid`` (ns), sending ``agents`` at their time; sample the touch
    after every grid time and the top 40 levels around the buy."""
    from tqdm import tqdm

    from rltrader.data.hybrid import HybridReplay

    replay = HybridReplay(feed, n_agents=len(AGENTS))
    bid = np.zeros(grid.size, dtype=np.int64)
    ask = np.zeros(grid.size, dtype=np.int64)
    fills, depth = [], {}
    pending = agents
    name = "with agents" if agents is not None else "as recorded"
    for i, t in enumerate(tqdm(grid.tolist(), desc=f"hybrid replay, {name}", unit="s",
                               disable=not progress, leave=False)):
        batch = None
        if pending is not None and pending["timestamp"][0] <= t:
            depth["before"] = replay.books.top_levels(40)[:2]
            batch, pending = pending, None
        events = replay.step(until_ts=t, agent_messages=batch)
        if batch is not None:
            fills.append(events[(events["kind"] == FILL) & (events["owner"] < len(AGENTS))])
            depth["after"] = replay.books.top_levels(40)[:2]
        bid[i], ask[i] = replay.top_of_book()
    replay.books.check_integrity()
    return {"bid": bid, "ask": ask, "fills": np.concatenate(fills) if fills else None,
            "depth": depth, "replay": replay}


def mid_of(run: dict) -> np.ndarray:
    ok = (run["bid"] != EMPTY_BID) & (run["ask"] != EMPTY_ASK)
    return np.where(ok, (run["bid"] + run["ask"]) / 2, np.nan)


def real_flow(data: Path | None, out: Path, plot: bool, progress: bool) -> None:
    from rltrader.data import lobster

    same, rows = exact_rebuild(data)
    print(f"LOBSTER AAPL 2012-06-21, 10-level pair: {same} of {rows} orderbook rows rebuilt "
          "exactly (all 10 levels, both sides)")
    feed = lobster.read_messages(sample_path(AAPL_HOUR, data))
    ts = feed.messages["timestamp"]
    grid = np.arange(ts[0] // NS_PER_S * NS_PER_S + NS_PER_S, ts[-1] + NS_PER_S, NS_PER_S)
    print(f"LOBSTER AAPL 09:30-10:30: {len(feed.messages):,} real messages; agents buy at "
          "10:00 in the same queues")
    record = hybrid_hour(feed, grid, None, progress)
    hybrid = hybrid_hour(feed, grid, agent_buys(), progress)
    fills = hybrid["fills"]
    for owner, qty, name in AGENTS:
        mine = fills[fills["owner"] == owner]
        avg = (mine["price"] * mine["qty"]).sum() / max(mine["qty"].sum(), 1)
        print(f"  {name} agent market buy {qty:>6,} lots: filled {mine['qty'].sum():,} over "
              f"{np.unique(mine['price']).size} price levels at avg ${avg * TICK:.4f}")
    at = int(np.searchsorted(grid, BUY_AT))
    gap = (mid_of(hybrid) - mid_of(record)) * TICK
    print(f"  mid at 10:00:01: record ${mid_of(record)[at] * TICK:.3f}, with agents "
          f"${mid_of(hybrid)[at] * TICK:.3f}; the hybrid mid stays above the record for "
          f"{np.count_nonzero(gap[at:] > 0)} of the {grid.size - at} seconds after the buy")
    stats = hybrid["replay"].stats
    trims = ", ".join(f"{n} {kind}" for kind, n in stats.trimmed_by_kind.items())
    print(f"  the record went on: {stats.trimmed_messages} historical messages about liquidity "
          f"the agents had taken were trimmed ({trims}); every invariant holds")
    if plot:
        png = out / "real_flow.png"
        plot_real_flow(png, grid, record, hybrid)
        print(f"  wrote {png}")


def plot_real_flow(path: Path, grid: np.ndarray, record: dict, hybrid: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = (grid - BUY_AT) / NS_PER_S / 60
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, near, scale, title, unit in (
            (axes[0], np.ones(grid.size, bool), 1, "mid price, 09:30-10:30", "minutes"),
            (axes[1], np.abs(minutes) <= 0.5, 60, "mid price, 30 s around the buy", "seconds")):
        ax.step(minutes[near] * scale, mid_of(hybrid)[near] * TICK, where="post", lw=1.2,
                color="C3", label="with the agents")
        ax.step(minutes[near] * scale, mid_of(record)[near] * TICK, where="post", lw=0.8,
                color="k", ls="--", label="record")
        ax.axvline(0, color="C0", ls=":", lw=0.8)
        ax.set(title=title, xlabel=f"{unit} from the buy at 10:00", ylabel="$")
        ax.legend()
    ax = axes[2]
    for when, alpha in (("before", 0.3), ("after", 1.0)):
        prices, qtys = hybrid["depth"][when]
        for side, colour, name in ((0, "tab:green", "bids"), (1, "tab:red", "asks")):
            keep = qtys[0, side] > 0
            ax.bar(prices[0, side][keep] * TICK, qtys[0, side][keep], width=TICK * 0.9,
                   color=colour, alpha=alpha, label=f"{name} {when}")
    before, after = hybrid["depth"]["before"], hybrid["depth"]["after"]
    ax.set_xlim((before[0][0, 0, 0] - 100) * TICK, (after[0][0, 1, 0] + 100) * TICK)
    ax.set(title=f"the book before and after {AGENTS[1][1]:,} + {AGENTS[0][1]} lots bought",
           xlabel="$", ylabel="lots")
    ax.legend(fontsize=8)
    fig.suptitle("LOBSTER AAPL 2012-06-21: real flow with agents trading in the same queues "
                 "(hybrid replay)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# 2. a simulated day, 3. speed
# ---------------------------------------------------------------------------------------

def market_day(out: Path, progress: bool) -> None:
    from rltrader.analysis.realism import demo_day

    print("\nsimulated market day ('realistic' preset: noise, market makers, latent "
          "liquidity, metaorder splitters; 8 books, 09:30-16:00):")
    facts = demo_day(out, seed=1, progress=progress)
    print(facts.format_table())
    print(f"wrote {out / 'report.md'} and its figures")


def speed(data: Path | None) -> None:
    from rltrader.tools.bench import time_batched

    messages, what = workloads.lobster_aapl(sample_path(AAPL_HOUR, data)), "the AAPL flow"
    one = time_batched(messages, 1, repeats=3)[0]
    many_msgs = workloads.interleave(messages, 512, max_messages=1_000_000)
    many = time_batched(many_msgs, 512, repeats=1)[0]
    print(f"\nbatched core on {what}: {one:.1f} ns/message on 1 book ({1e3 / one:.1f} M "
          f"messages/s), {many:.1f} ns/message over 512 books (rltrader bench for the suite)")


def main(out_dir: str = "rltrader-demo", plot: bool = True, data_dir: str | None = None,
         progress: bool = True) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = Path(data_dir) if data_dir is not None else None
    if data is not None and not (data / AAPL_HOUR).is_file():
        raise SystemExit(f"demo: {data} does not hold {AAPL_HOUR}")
    real_flow(data, out, plot, progress)
    market_day(out / "market", progress)
    speed(data)
    print(f"\ndemo done in {time.perf_counter() - start:.1f} s; results in {out}/")
    return 0
