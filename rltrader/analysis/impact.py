"""How a background market absorbs one aggressive trader: the paired metaorder measurement.

:func:`metaorder_impact` plays the trader an RL environment's largest agent can be: after
the warm-up, one market order of ``lots_per_step`` lots per book every step for ``steps``
steps (a metaorder of ``lots_per_step * steps`` lots), then nothing for ``after`` steps.
It runs the same market from the same seed without the program (the control); both runs
draw the same random numbers (:mod:`rltrader._flow`: every trader's draws are independent
of the book), so the per-book difference of the mids is the program's impact plus the
market's reaction to it, free of the market's own moves.

What a market fit for an RL environment should show (docs/market.md, "Stability under a
metaorder"): impact that is concave in the executed quantity while the program runs, that
decays (at least partly) once it stops, and a book whose sides never empty. A book whose
only liquidity is a market maker at its inventory limit fails all three: the price walks
away and never comes back, and the next agent trades against nothing.

Example::

    from rltrader.sim.market import preset
    result = metaorder_impact(preset("resilient"), lots_per_step=50, steps=20, after=600)
    result.mean[result.steps], result.retained, result.books_emptied

``python -m rltrader.analysis.impact resilient thin`` prints the stability table of
presets (docs/market.md quotes it).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rltrader.core.checks import is_int
from rltrader.core.constants import (
    AGENT_ID_BASE,
    BUY,
    EMPTY_ASK,
    EMPTY_BID,
    IOC,
    MARKET,
    SELL,
)
from rltrader.core.messages import MESSAGE_DTYPE
from rltrader.sim.config import MarketConfig, RecordConfig
from rltrader.sim.market import Market, preset

#: Background steps between the market's warm-up and the program, like the env's default
#: ``EnvConfig.warmup_steps`` (a preset without a warm-up opens on an empty book).
SETTLE_STEPS = 200


@dataclass(frozen=True)
class MetaorderImpact:
    """The paired result of :func:`metaorder_impact`; prices in ticks, sizes in lots.

    Row ``k`` of ``difference`` is taken after ``k`` steps: row 0 at arrival (before the
    first order), row ``steps`` when the program has stopped (its last order and one flow
    step after it), the last row ``after`` steps later. A mid with one side of the book
    empty is the last trade price (the flow's own convention).

    Attributes
    ----------
    side : int
        ``+1`` a buy program, ``-1`` a sell program.
    lots_per_step, steps, after : int
        The program and the steps measured after it.
    difference : ndarray, shape (steps + after + 1, n_books)
        ``side * (mid - control mid)``: the impact per book, positive against the trader.
    opposite_empty, same_empty : ndarray of bool, shape (n_books,)
        The side the program trades against (asks for a buy), or its own side, was empty
        at some check of the treated run (after each program order and each flow step).
    control_empty : ndarray of bool, shape (n_books,)
        Either side empty at some check of the control run (the market without the
        program).
    filled : ndarray of int64, shape (n_books,)
        Lots the program traded (less than ``lots_per_step * steps`` only when it met an
        empty side).
    slippage : ndarray, shape (n_books,)
        ``side * (average fill price - arrival mid)``; NaN where nothing filled.
    """

    side: int
    lots_per_step: int
    steps: int
    after: int
    difference: np.ndarray
    opposite_empty: np.ndarray
    same_empty: np.ndarray
    control_empty: np.ndarray
    filled: np.ndarray
    slippage: np.ndarray

    @property
    def n_books(self) -> int:
        return self.difference.shape[1]

    @property
    def mean(self) -> np.ndarray:
        """Impact per row, mean over books (ticks)."""
        return self.difference.mean(axis=1)

    @property
    def standard_error(self) -> np.ndarray:
        """Standard error of :attr:`mean` per row (0 with one book)."""
        if self.n_books < 2:
            return np.zeros(self.difference.shape[0])
        return self.difference.std(axis=1, ddof=1) / np.sqrt(self.n_books)

    @property
    def peak(self) -> float:
        """Mean impact when the program stops (row ``steps``)."""
        return float(self.mean[self.steps])

    @property
    def retained(self) -> float:
        """Share of :attr:`peak` left ``after`` steps later (1: no decay, 0: all gone)."""
        return float(self.mean[-1] / self.peak) if self.peak else float("nan")

    @property
    def half_way(self) -> float:
        """Impact half-way through the program over :attr:`peak` (0.5: linear in the
        executed quantity, above: concave; a square root gives 0.71)."""
        return float(self.mean[self.steps // 2] / self.peak) if self.peak else float("nan")

    def decay_t(self) -> float:
        """Mean over books of ``peak - final`` over its standard error (each book's own
        difference): above 3, the impact decays after the program, not by chance."""
        return _t_statistic(self.difference[self.steps] - self.difference[-1])

    def concavity_t(self) -> float:
        """Mean over books of ``half-way - peak / 2`` over its standard error: above 3,
        the impact grows slower than the executed quantity (concave), not by chance."""
        return _t_statistic(self.difference[self.steps // 2]
                            - 0.5 * self.difference[self.steps])

    @property
    def books_emptied(self) -> int:
        """Books where either side was empty at some check of the treated run."""
        return int(np.count_nonzero(self.opposite_empty | self.same_empty))

    def failures(self, t: float = 3.0) -> list[str]:
        """What the market fails of the stability check: ``"book emptied"`` (a side of
        some book), ``"no decay"`` (:meth:`decay_t` <= ``t``), ``"not concave"``
        (:meth:`concavity_t` <= ``t``); empty when it passes."""
        out = []
        if self.books_emptied:
            out.append("book emptied")
        if not self.decay_t() > t:
            out.append("no decay")
        if not self.concavity_t() > t:
            out.append("not concave")
        return out

    def row(self) -> dict[str, float]:
        """The table's numbers: program, peak and final impact with standard errors,
        half-way ratio, retained share, decay and concavity t, emptied books, slippage."""
        se = self.standard_error
        return {"lots": self.lots_per_step * self.steps, "peak": self.peak,
                "peak_se": float(se[self.steps]), "final": float(self.mean[-1]),
                "final_se": float(se[-1]), "half_way": self.half_way,
                "retained": self.retained, "decay_t": self.decay_t(),
                "concavity_t": self.concavity_t(),
                "opposite_empty": int(self.opposite_empty.sum()),
                "same_empty": int(self.same_empty.sum()),
                "control_empty": int(self.control_empty.sum()),
                "slippage": float(np.nanmean(self.slippage))
                if np.isfinite(self.slippage).any() else float("nan")}


def _t_statistic(values: np.ndarray) -> float:
    """Mean over its standard error (NaN when the error is 0 or undefined)."""
    se = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.0
    return float(values.mean() / se) if se > 0 else float("nan")


def book_mids(market: Market) -> np.ndarray:
    """Each book's mid (ticks); the last trade, then the fundamental, when a side is empty."""
    state = market.books.book_array
    bid, ask = state["best_bid"], state["best_ask"]
    two_sided = (bid != EMPTY_BID) & (ask != EMPTY_ASK)
    fallback = np.where(state["last_price"] > 0, state["last_price"], market.flow.fundamental)
    return np.where(two_sided, 0.5 * (bid + ask), fallback)


def _empty_sides(market: Market) -> tuple[np.ndarray, np.ndarray]:
    """(bids empty, asks empty) per book, now."""
    state = market.books.book_array
    return state["best_bid"] == EMPTY_BID, state["best_ask"] == EMPTY_ASK


class _Run:
    """One run of the measurement: the market, its mids per row, and which sides emptied
    from the program's start on."""

    def __init__(self, config: MarketConfig, seed: int, settle: int, rows: int) -> None:
        self.market = Market(config, seed=seed)
        self.market.step(settle)
        self.mids = np.empty((rows, config.n_books))
        self.mids[0] = book_mids(self.market)
        self.bid_empty, self.ask_empty = _empty_sides(self.market)

    def check(self) -> None:
        bid_empty, ask_empty = _empty_sides(self.market)
        self.bid_empty |= bid_empty
        self.ask_empty |= ask_empty

    def step(self, row: int) -> None:
        self.market.step(1)
        self.check()
        self.mids[row] = book_mids(self.market)


def _check_args(config: MarketConfig, lots_per_step: int, steps: int, after: int,
                n_books: int, side: int, settle_steps: int) -> None:
    if not isinstance(config, MarketConfig):
        raise TypeError(f"config must be a MarketConfig, got {type(config).__name__}")
    for name, value, low in (("lots_per_step", lots_per_step, 0), ("steps", steps, 1),
                             ("after", after, 0), ("n_books", n_books, 1),
                             ("settle_steps", settle_steps, 0)):
        if not is_int(value) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if side not in (BUY, SELL):
        raise ValueError(f"side must be +1 (buy) or -1 (sell), got {side!r}")
    if settle_steps + steps + after > config.n_steps:
        raise ValueError(f"settle_steps + steps + after = {settle_steps + steps + after} "
                         f"steps do not fit in the day of {config.n_steps} steps")


def metaorder_impact(config: MarketConfig, *, lots_per_step: int, steps: int, after: int,
                     n_books: int = 64, seed: int = 0, side: int = BUY,
                     settle_steps: int = SETTLE_STEPS) -> MetaorderImpact:
    """Paired impact of a program of market orders, and whether the book survives it.

    Builds ``config``'s market with ``copies=n_books`` (its first symbol) and one extra
    owner, runs its warm-up and ``settle_steps`` steps; then for ``steps`` steps sends,
    before each flow step, one market order of ``lots_per_step`` lots in every book from
    that owner (order ids from ``AGENT_ID_BASE``, as the envs use), then runs ``after``
    steps without it. The control is the same market and seed without the orders.

    Parameters
    ----------
    config : MarketConfig
        The background market (a preset). Its recording is turned off.
    lots_per_step : int
        Lots of each market order (0: no orders; the result is then exactly 0).
    steps, after : int
        Steps with the program (>= 1) and after it (>= 0).
    n_books : int
        Independent books (the sample over which means and standard errors are taken).
    seed : int
        Root seed of both runs (``SeedSequence(seed).spawn(n_books)``, per :class:`Market`).
    side : int
        ``+1`` (buy, the default) or ``-1`` (sell).
    settle_steps : int
        Background steps after the warm-up before the first order.

    Returns
    -------
    MetaorderImpact
    """
    _check_args(config, lots_per_step, steps, after, n_books, side, settle_steps)
    config = config.replace(copies=n_books, symbols=config.symbols[:1], extra_owners=1,
                            record=RecordConfig())
    rows = steps + after + 1
    treated = _Run(config, seed, settle_steps, rows)
    control = _Run(config, seed, settle_steps, rows)
    owner = treated.market.n_traders
    orders = np.zeros(n_books, dtype=MESSAGE_DTYPE)
    orders["book"] = np.arange(n_books)
    orders["owner"] = owner
    orders["op"] = MARKET
    orders["side"] = side
    orders["tif"] = IOC
    orders["qty"] = lots_per_step
    for k in range(steps):
        if lots_per_step:
            orders["timestamp"] = treated.market.time_ns
            orders["order_id"] = AGENT_ID_BASE + k
            treated.market.books.process_all(orders)
            treated.check()
        treated.step(k + 1)
        control.step(k + 1)
    for k in range(steps, rows - 1):
        treated.step(k + 1)
        control.step(k + 1)
    account = treated.market.books.account_array[:, owner]
    filled = np.abs(account["position"])
    with np.errstate(invalid="ignore", divide="ignore"):
        price = -(account["cash"] + account["fees"]) / account["position"]
    slippage = np.where(filled > 0, side * (price - treated.mids[0]), np.nan)
    bid_empty, ask_empty = treated.bid_empty, treated.ask_empty
    return MetaorderImpact(
        side=side, lots_per_step=lots_per_step, steps=steps, after=after,
        difference=side * (treated.mids - control.mids),
        opposite_empty=ask_empty if side == BUY else bid_empty,
        same_empty=bid_empty if side == BUY else ask_empty,
        control_empty=control.bid_empty | control.ask_empty,
        filled=filled.astype(np.int64), slippage=slippage)


def one_sided_books(config: MarketConfig, *, n_books: int = 64, seed: int = 0,
                    settle_steps: int = SETTLE_STEPS) -> np.ndarray:
    """Which books lose a side at some step of the day without any program.

    Builds ``config``'s market with ``copies=n_books`` (its first symbol), runs its
    warm-up and ``settle_steps`` steps, then checks both sides of every book after each
    step to the close. Returns a bool array of shape ``(n_books,)``.
    """
    _check_args(config, 0, 1, 0, n_books, BUY, settle_steps)
    run = _Run(config.replace(copies=n_books, symbols=config.symbols[:1],
                              record=RecordConfig()), seed, settle_steps, 1)
    for _ in range(config.n_steps - settle_steps):
        run.market.step(1)
        run.check()
    return run.bid_empty | run.ask_empty


# ---- the stability table ------------------------------------------------------------

#: Columns of :func:`format_table`: (key of :meth:`MetaorderImpact.row`, header, format).
_COLUMNS = (("lots", "lots", "{:.0f}"), ("peak", "peak", "{:+.1f}"),
            ("peak_se", "s.e.", "{:.1f}"), ("final", "final", "{:+.1f}"),
            ("final_se", "s.e.", "{:.1f}"), ("half_way", "half-way", "{:.2f}"),
            ("concavity_t", "concave t", "{:.1f}"), ("retained", "retained", "{:.2f}"),
            ("decay_t", "decay t", "{:.1f}"), ("opposite_empty", "opp. empty", "{:d}"),
            ("same_empty", "own empty", "{:d}"), ("control_empty", "ctl empty", "{:d}"),
            ("slippage", "slippage", "{:.1f}"))


def stability_rows(presets: Sequence[str], sizes: Sequence[int] = (25, 50), *,
                   steps: int = 20, after: int = 600, n_books: int = 64,
                   seed: int = 0) -> list[tuple[str, MetaorderImpact]]:
    """``(preset, result)`` of a buy program for each preset and each size (lots per
    step)."""
    out = []
    for name in presets:
        config = preset(name)
        for lots in sizes:
            out.append((name, metaorder_impact(config, lots_per_step=lots, steps=steps,
                                               after=after, n_books=n_books, seed=seed)))
    return out


def format_table(rows: Sequence[tuple[str, MetaorderImpact]]) -> str:
    """A Markdown table of :func:`stability_rows`: the numbers of
    :meth:`MetaorderImpact.row` and the verdict (``ok`` or the failures)."""
    header = ["preset", "lots/step"] + [title for _, title, _ in _COLUMNS] + ["verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in rows:
        row = result.row()
        cells = ([name, str(result.lots_per_step)]
                 + [fmt.format(row[key]) for key, _, fmt in _COLUMNS]
                 + [", ".join(result.failures()) or "ok"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rltrader.analysis.impact",
        description="Paired impact of a buy program of market orders on presets: the "
                    "stability table of docs/market.md.")
    parser.add_argument("presets", nargs="+", help="preset names")
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50],
                        help="lots per step, one program each (default: 25 50)")
    parser.add_argument("--steps", type=int, default=20, help="program steps (default 20)")
    parser.add_argument("--after", type=int, default=600,
                        help="steps measured after the program (default 600)")
    parser.add_argument("--books", type=int, default=64, help="books (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--day", action="store_true",
                        help="instead: books that lose a side in a day without a program")
    args = parser.parse_args(argv)
    if args.day:
        print("| preset | steps | books with a side empty |\n|---|---|---|")
        for name in args.presets:
            config = preset(name)
            lost = one_sided_books(config, n_books=args.books, seed=args.seed)
            print(f"| {name} | {config.n_steps - SETTLE_STEPS} | {lost.sum()} of {lost.size} |")
        return
    rows = stability_rows(args.presets, args.sizes, steps=args.steps, after=args.after,
                          n_books=args.books, seed=args.seed)
    print(format_table(rows))


if __name__ == "__main__":
    main()
