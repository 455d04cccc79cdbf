"""``rltrader demo``: rebuild a real NASDAQ book, trade on top of it, measure, plot.

1. Replays the LOBSTER AAPL 2012-06-21 09:30-10:30 message file (92k real adds, deletes and
   executions) into a compiled book, sampling the top of book as it goes.
2. At mid-session, an agent sends a market buy of a size that a small trader could not
   move the price with and one a large trader would: the book shows the impact.
3. Times the batched core on the same flow over 1 and 512 books.
4. Writes ``demo.png`` (price path, spread, the agent's impact, final depth) and prints a
   summary.

Without the data samples it runs the same steps on a generated flow.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from rltrader import workloads
from rltrader._book import Books
from rltrader.constants import BUY, EMPTY_ASK, EMPTY_BID, FILL, MARKET, REJECTED
from rltrader.messages import empty_events, empty_messages

AAPL_FILE = "lobster/AAPL_2012-06-21_34200000_37800000_message_50.csv.gz"
TICK = 0.01   # dollars per tick (LOBSTER prices / 100)


def find_data_dir(explicit: str | None = None) -> Path | None:
    """The shared market-data folder: explicit, $RLTRADER_DATA, or ../shared/data nearby."""
    candidates = [explicit, os.environ.get("RLTRADER_DATA")]
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for parent in (start, *start.parents[:3]):
            candidates.append(str(parent / "shared" / "data"))
            candidates.append(str(parent.parent / "shared" / "data"))
    for c in candidates:
        if c and (Path(c) / AAPL_FILE).exists():
            return Path(c)
    if explicit:
        raise FileNotFoundError(f"{explicit} does not hold {AAPL_FILE}")
    return None


def load_flow(data_dir: Path | None) -> tuple[np.ndarray, str]:
    if data_dir is not None:
        from rltrader.data import lobster

        feed = lobster.read_messages(data_dir / AAPL_FILE)
        return feed.messages, "LOBSTER AAPL 2012-06-21 09:30-10:30 (real NASDAQ flow)"
    return workloads.limit_cancel(100_000, seed=7), "generated limit+cancel flow (no data found)"


def replay(books: Books, messages: np.ndarray, chunk: int, progress: bool
           ) -> dict[str, np.ndarray]:
    """Process ``messages`` in chunks, sampling best bid/ask after each chunk."""
    from tqdm import tqdm

    events = empty_events(64 * chunk)
    n_chunks = (len(messages) + chunk - 1) // chunk
    bid = np.zeros(n_chunks, dtype=np.int64)
    ask = np.zeros(n_chunks, dtype=np.int64)
    t = np.zeros(n_chunks, dtype=np.int64)
    rejected = 0
    for k in tqdm(range(n_chunks), desc="replay", unit="chunk", disable=not progress,
                  leave=False):
        part = messages[k * chunk:(k + 1) * chunk]
        done = 0
        while done < len(part):
            consumed, written = books.process(part[done:], events)
            rejected += int(np.count_nonzero(events["kind"][:written] == REJECTED))
            done += consumed
        bid[k], ask[k], t[k] = books.best_bid(0), books.best_ask(0), part["timestamp"][-1]
    return {"bid": bid, "ask": ask, "time": t, "rejected": np.array([rejected])}


def agent_impact(books: Books, qty: int, owner: int) -> dict:
    """Send a market buy of ``qty`` lots for ``owner``; report fills and the mid move."""
    before = (books.best_bid(0), books.best_ask(0))
    msg = empty_messages(1)
    msg[0] = (0, 9_000_000_000 + owner, 0, 0, 0, qty, 0, owner, MARKET, BUY, 0)
    events = books.process_all(msg)
    fills = events[events["kind"] == FILL]
    after = (books.best_bid(0), books.best_ask(0))
    return {
        "qty": qty, "filled": int(fills["qty"].sum()),
        "levels": int(np.unique(fills["price"]).size),
        "avg_price": float((fills["price"] * fills["qty"]).sum() / max(fills["qty"].sum(), 1)),
        "ask_before": before[1], "ask_after": after[1], "bid_after": after[0],
        "position": int(books.accounts[0, owner]["position"]),
        "cash": int(books.accounts[0, owner]["cash"]),
    }


def throughput(messages: np.ndarray, n_books: int, repeats: int = 3) -> float:
    """Median ns/message of the batched core on ``messages`` spread over ``n_books``."""
    from rltrader.bench import time_batched

    msgs = messages if n_books == 1 else workloads.interleave(messages, n_books,
                                                              max_messages=1_000_000)
    return time_batched(msgs, n_books, repeats=repeats)[0]


def plot_report(path: Path, sampled: dict, cut: int, impact: dict, before: tuple,
                after: tuple, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bid, ask = sampled["bid"].astype(float), sampled["ask"].astype(float)
    ok = (sampled["bid"] != EMPTY_BID) & (sampled["ask"] != EMPTY_ASK)
    hours = sampled["time"] / 3.6e12
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    ax.plot(hours[ok], bid[ok] * TICK, lw=0.7, label="best bid")
    ax.plot(hours[ok], ask[ok] * TICK, lw=0.7, label="best ask")
    ax.axvline(hours[min(cut, len(hours) - 1)], color="k", ls=":", lw=0.8)
    ax.set(title="price path", xlabel="hours after midnight", ylabel="$")
    ax.legend()
    ax = axes[1]
    ax.plot(hours[ok], (ask[ok] - bid[ok]), lw=0.6, color="tab:purple")
    ax.set(title="spread", xlabel="hours after midnight", ylabel="ticks")
    ax = axes[2]
    for (prices, qtys), alpha, when in ((before, 0.3, "before"), (after, 1.0, "after")):
        for side, colour, name in ((0, "tab:green", "bids"), (1, "tab:red", "asks")):
            keep = qtys[0, side] > 0
            ax.bar(prices[0, side][keep] * TICK, qtys[0, side][keep], width=TICK * 0.9,
                   color=colour, alpha=alpha, label=f"{name} {when}")
    ax.axvline(impact["avg_price"] * TICK, ls="--", lw=0.8, color="k",
               label="agent's average price")
    lo = (before[0][0, 0, 0] - 150) * TICK        # $1.50 below the best bid before
    hi = (after[0][0, 1, 0] + 100) * TICK         # $1 above the best ask after
    ax.set_xlim(lo, hi)
    ax.set(title=f"the book before and after a {impact['qty']:,}-lot market buy",
           xlabel="$", ylabel="lots")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(out_dir: str = "rltrader-demo", plot: bool = True, data_dir: str | None = None,
         progress: bool = True) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    messages, title = load_flow(find_data_dir(data_dir))
    print(f"flow: {title}: {len(messages):,} messages")

    books = Books(1, n_owners=2, capacity=1 << 14)
    cut = len(messages) // 2
    start = time.perf_counter()
    first = replay(books, messages[:cut], 256, progress)
    mid_bid, mid_ask = books.best_bid(0), books.best_ask(0)
    print(f"book at mid-session: bid {mid_bid * TICK:.2f}  ask {mid_ask * TICK:.2f}  "
          f"({books.live_orders(0):,} resting orders)")

    impacts = []
    before = books.top_levels(40)[:2]
    for owner, qty in ((0, 100), (1, 20_000)):
        imp = agent_impact(books, qty, owner)
        impacts.append(imp)
        who = "small" if owner == 0 else "large"
        print(f"{who} agent market buy {qty:>6,} lots: filled {imp['filled']:,} over "
              f"{imp['levels']} levels at avg {imp['avg_price'] * TICK:.4f}; best ask "
              f"{imp['ask_before'] * TICK:.2f} -> {imp['ask_after'] * TICK:.2f}")

    after = books.top_levels(40)[:2]
    # the historical flow goes on; references to liquidity the agents took are rejected
    # (UNKNOWN_ORDER / BAD_QTY) until hybrid replay trims them (see the issues)
    second = replay(books, messages[cut:], 256, progress)
    print(f"after the agents' trades the history went on: {int(second['rejected'][0]):,} "
          "historical cancels/executions referred to orders the agents had taken and were "
          "rejected, the rest of the book rebuilt")
    elapsed = time.perf_counter() - start
    sampled = {k: np.concatenate([first[k], second[k]]) for k in ("bid", "ask", "time")}
    books.check_integrity()
    prices, qtys, _ = books.top_levels(5)
    print(f"replayed {len(messages):,} messages in {elapsed:.3f} s with sampling and "
          "Python chunking; the final book:")
    print("      bid  size  |  ask  size")
    for k in range(5):
        print(f"  {prices[0, 0, k] * TICK:8.2f} {qtys[0, 0, k]:5d}  | "
              f"{prices[0, 1, k] * TICK:7.2f} {qtys[0, 1, k]:5d}")

    one = throughput(messages, 1)
    many = throughput(messages, 512, repeats=1)
    print(f"batched core: {one:.1f} ns/message on 1 book ({1e3 / one:.1f} M msg/s), "
          f"{many:.1f} ns/message over 512 books")

    if plot:
        png = out / "demo.png"
        plot_report(png, sampled, len(first["bid"]), impacts[1], before, after, title)
        print(f"wrote {png}")
    return 0
