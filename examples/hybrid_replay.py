"""Historical mid vs hybrid mid around one large agent buy (LOBSTER AAPL, 2012-06-21).

Two replays of the same message file step through the same one-second grid: one with no
agent (the record), one where agent 0 sends a market buy of ``--qty`` shares at ``--at``.
The plot shows both mids, the agent's fills, and how the recorded flow trades on top of
the agent's footprint afterwards. Run from the repository root::

    python examples/hybrid_replay.py --qty 5000 --at 10:00:00 --out hybrid_replay.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rltrader import BUY, EMPTY_ASK, FILL, MARKET, empty_messages
from rltrader.core.constants import AGENT_ID_BASE
from rltrader.data import lobster
from rltrader.data.hybrid import HybridReplay
from rltrader.data.samples import AAPL_HOUR, sample_path

NS = 1_000_000_000


def _seconds(clock: str) -> int:
    h, m, s = (int(x) for x in clock.split(":"))
    return 3600 * h + 60 * m + s


def ask_cost(replay: HybridReplay, qty: int, levels: int = 50) -> float:
    """Average price (ticks) of buying ``qty`` shares from the visible asks (nan if thin)."""
    prices, qtys, _ = replay.books.top_levels(levels)
    take = np.minimum(np.cumsum(qtys[0, 1]), qty)
    lots = np.diff(take, prepend=0)
    return float((lots * prices[0, 1]).sum() / qty) if take[-1] == qty else np.nan


def trajectory(feed: lobster.LobsterMessages, grid: np.ndarray, buy: np.ndarray | None,
         depth_qty: int) -> tuple[np.ndarray, np.ndarray, HybridReplay, np.ndarray]:
    """Mid and ``ask_cost(depth_qty)`` (ticks) after each grid time; the agent's buy goes
    in at the first grid time at or after its timestamp."""
    replay = HybridReplay(feed, n_agents=1)
    replay.step(until_ts=int(grid[0]))
    mid, cost = np.full(grid.size, np.nan), np.full(grid.size, np.nan)
    fills, pending = [], buy
    for i, t in enumerate(grid.tolist()):
        agent = None
        if pending is not None and pending["timestamp"][0] <= t:
            agent, pending = pending, None
        events = replay.step(until_ts=t, agent_messages=agent)
        fills.append(events[(events["kind"] == FILL) & (events["owner"] == 0)])
        bid, ask = replay.top_of_book()
        if bid > 0 and ask < EMPTY_ASK:
            mid[i] = (bid + ask) / 2
        cost[i] = ask_cost(replay, depth_qty)
    return mid, cost, replay, np.concatenate(fills)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="LOBSTER message file")
    parser.add_argument("--qty", type=int, default=5000, help="shares to buy")
    parser.add_argument("--at", default="10:00:00", help="time of the buy (HH:MM:SS)")
    parser.add_argument("--before", type=int, default=60, help="seconds shown before")
    parser.add_argument("--after", type=int, default=600, help="seconds shown after")
    parser.add_argument("--depth", type=int, default=2000,
                        help="shares priced in the depth panel")
    parser.add_argument("--out", type=Path, default=Path("hybrid_replay.png"))
    args = parser.parse_args()

    path = args.data or sample_path(AAPL_HOUR)
    feed = lobster.read_messages(path)
    at = _seconds(args.at) * NS
    buy = empty_messages(1)
    buy[["op", "side", "qty", "order_id", "owner", "timestamp"]] = [
        (MARKET, BUY, args.qty, AGENT_ID_BASE + 1, 0, at)]
    # the touch: every 5 ms for 1.5 s; the depth: every second for --after seconds
    fine = np.arange(at - 100 * NS // 1000, at + 1500 * NS // 1000 + 1, 5 * NS // 1000)
    coarse = np.arange(at - args.before * NS, at + args.after * NS + 1, NS)
    record_fine, _, _, _ = trajectory(feed, fine, None, args.depth)
    hybrid_fine, _, _, _ = trajectory(feed, fine, buy, args.depth)
    _, record_cost, _, _ = trajectory(feed, coarse, None, args.depth)
    _, hybrid_cost, replay, fills = trajectory(feed, coarse, buy, args.depth)

    cash = -int(replay.accounts[0]["cash"])
    vwap = cash / max(int(fills["qty"].sum()), 1) / 100
    print(f"bought {fills['qty'].sum():,} shares in {len(fills)} fills, VWAP ${vwap:.4f}, "
          f"from ${fills['price'].min() / 100:.2f} to ${fills['price'].max() / 100:.2f}")
    lifted = np.flatnonzero((fine >= at) & (hybrid_fine > record_fine))
    print(f"hybrid mid above the record for {5 * lifted.size} ms of the 1.5 s after the buy "
          f"(max +${np.nanmax(hybrid_fine - record_fine) / 100:.3f})")
    gap = (hybrid_cost - record_cost) / 100
    after = coarse > at
    for sec in (1, 10, 60, args.after):
        k = np.searchsorted(coarse, at + sec * NS)
        if k < coarse.size:
            print(f"  cost of {args.depth:,} shares, hybrid - record at +{sec} s: "
                  f"{gap[k]:+.3f} $")
    print(f"  seconds with a higher cost after the buy: {np.count_nonzero(gap[after] > 0)}"
          f" of {np.count_nonzero(after)}")
    stats = replay.stats
    print(f"trimmed historical messages: {stats.trimmed_messages} {stats.trimmed_by_kind}; "
          f"interaction points {stats.interaction_points}; core calls {stats.core_calls}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, low) = plt.subplots(2, 1, figsize=(10, 8))
    ms = (fine - at) / (NS / 1000)
    top.step(ms, record_fine / 100, where="post", color="0.35", label="historical mid")
    top.step(ms, hybrid_fine / 100, where="post", color="C3",
             label=f"hybrid mid (agent market buy {args.qty:,} at {args.at})")
    top.axvline(0, color="C0", lw=0.8, ls=":")
    top.set_xlabel(f"milliseconds from {args.at}")
    top.set_ylabel("mid ($)")
    top.set_title("touch: the buy lifts the mid until recorded sellers quote inside the spread")
    top.legend(fontsize=9)
    top.grid(alpha=0.3)
    minutes = (coarse - at) / NS / 60
    low.plot(minutes, record_cost / 100, lw=1.0, color="0.35", label="record")
    low.plot(minutes, hybrid_cost / 100, lw=1.0, color="C3", label="hybrid")
    low.axvline(0, color="C0", lw=0.8, ls=":")
    low.set_xlabel(f"minutes from {args.at}")
    low.set_ylabel(f"avg ask price of {args.depth:,} shares ($)")
    low.set_title("depth: the agent's footprint in the ask queues")
    low.legend(fontsize=9)
    low.grid(alpha=0.3)
    fig.suptitle(f"LOBSTER AAPL 2012-06-21, hybrid replay: one {args.qty:,}-share market buy")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
