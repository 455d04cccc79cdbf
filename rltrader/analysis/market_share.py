"""What agents of different market share do to a market: the measurements of the
market-share experiment (docs/market_share.md; the experiment itself, which trains the
population, is :mod:`rltrader.training.market_share`).

:func:`record` steps a :class:`~rltrader.envs.BatchedMarketEnv` under a population's
policy and keeps, per step and book, the mid, the fundamental, the spread and the depth,
and per agent the lots it traded (the change of its real account's position), its action
and its reward. The measures read that :class:`Recording`:

- :func:`propagator`: each class's price impact per lot traded and its decay. The
  one-step mid change is regressed on every class's signed volume of this step and the
  ``lags - 1`` steps before (a linear propagator, Bouchaud et al. 2004), so a class's
  kernel is the effect of one lot holding the other trades fixed, also the class's own
  later children of the same parent; its cumulative sum is the impact ``k`` steps after
  the trade, whose fall from its peak is the decay.
- :func:`response`: the mid's move ``l`` steps after a lot of the class, in its
  direction, with everything that follows it (the rest of its parent included).
- :func:`lead_lag`: the cross-correlation of two classes' signed volumes at lags
  ``-L .. L`` (positive lag: the first class trades first).
- :func:`conditional_return`: the mid's move over the ``k`` steps after a class traded,
  in the direction it traded (does its trading forecast the price beyond its own step?).
- :func:`market_quality`: spread, depth, volatility, the variance ratio and the distance
  of the mid from the fundamental value (price efficiency).
- :func:`execution_behaviour`: for ``action_mode="execution"``: how each class works its
  parents (waits, market and resting children, the rates asked for, how much of a parent
  is left to the deadline's forced market order, how front-loaded the schedule is) and its
  implementation shortfall, also split by whether the class's parent went with or against
  the largest class's parents in that market.

Signed volume counts every fill, passive ones included: a resting buy filled by a
seller's market order is +lots at a falling price, so a class that trades passively shows
a smaller (even negative) impact per lot than one that takes liquidity. That is what the
measure should show: how a class trades is part of what its trading does to the price.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rltrader.analysis.impact import book_mids
from rltrader.core.constants import EMPTY_ASK, EMPTY_BID
from rltrader.envs import BatchedMarketEnv

#: levels per side summed into the recorded depth
DEPTH_LEVELS = 5


@dataclass(frozen=True)
class Recording:
    """Everything :func:`record` kept; ``T`` steps, ``B`` books, ``A`` agents per book.

    Attributes
    ----------
    size_class : ndarray of float, shape (A,)
        Each agent slot's size class (the same in every book).
    mids : ndarray, shape (T + 1, B)
        Mid (ticks) before the first step (row 0) and after each step; the last trade
        price when a side is empty.
    fundamental : ndarray, shape (T + 1, B)
        The background's fundamental value at the same times.
    spread, depth : ndarray, shape (T, B)
        After each step: best ask - best bid (NaN with a side empty), lots in the top
        ``DEPTH_LEVELS`` levels of both sides.
    trades : ndarray of int64, shape (T, B, A)
        Lots each agent's position changed by in the step (its net signed volume).
    actions : ndarray of int64, shape (T, B, A)
        The actions sent (discrete modes).
    rewards : ndarray of float32, shape (T, B, A)
    episode_step : ndarray of int64, shape (T, B)
        Steps already taken in the episode when the step began (0: its first step).
    """

    size_class: np.ndarray
    mids: np.ndarray
    fundamental: np.ndarray
    spread: np.ndarray
    depth: np.ndarray
    trades: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode_step: np.ndarray

    @property
    def n_steps(self) -> int:
        return int(self.trades.shape[0])

    def flows(self, classes: Sequence[Sequence[int]]) -> np.ndarray:
        """Signed lots traded per step by each class (agent slots), ``(T, B, C)``."""
        return np.stack([self.trades[:, :, list(slots)].sum(axis=2) for slots in classes],
                        axis=-1).astype(np.float64)


def record(env: BatchedMarketEnv, act: Callable[[BatchedMarketEnv], np.ndarray], *,
           steps: int, seed: int) -> Recording:
    """Reset ``env`` from ``seed`` and step it ``steps`` times with ``act(env)`` (the
    actions of every row for the observations in ``env.observations``).

    The env must be a market simulation (not a replay) of one symbol.
    """
    if env.market is None or env.n_symbols != 1:
        raise ValueError("record needs a simulated market of one symbol")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    n_books, n_agents = env.n_books, env.n_agents
    env.reset(seed)
    mids = np.empty((steps + 1, n_books))
    fundamental = np.empty((steps + 1, n_books))
    spread = np.empty((steps, n_books))
    depth = np.empty((steps, n_books))
    trades = np.empty((steps, n_books, n_agents), dtype=np.int64)
    actions = np.empty((steps, n_books, n_agents), dtype=np.int64)
    rewards = np.empty((steps, n_books, n_agents), dtype=np.float32)
    episode_step = np.empty((steps, n_books), dtype=np.int64)
    mids[0], fundamental[0] = book_mids(env.market), env.market.flow.fundamental
    position = env.accounts()["position"]
    for t in range(steps):
        episode_step[t] = env.episode_step
        chosen = np.asarray(act(env))
        if chosen.ndim != 1:
            raise ValueError("record takes discrete actions, one per row")
        actions[t] = chosen.reshape(n_books, n_agents)
        _, reward, _, _ = env.step(chosen)
        rewards[t] = reward.reshape(n_books, n_agents)
        now = env.accounts()["position"]
        trades[t] = now - position
        position = now
        mids[t + 1], fundamental[t + 1] = book_mids(env.market), env.market.flow.fundamental
        state = env.market.books.book_array
        bid, ask = state["best_bid"], state["best_ask"]
        spread[t] = np.where((bid != EMPTY_BID) & (ask != EMPTY_ASK),
                             (ask - bid).astype(np.float64), np.nan)
        _, qtys, _ = env.market.books.top_levels(DEPTH_LEVELS)
        depth[t] = qtys.sum(axis=(1, 2))
    return Recording(np.asarray(env.size_class[:n_agents], dtype=np.float64), mids,
                     fundamental, spread, depth, trades, actions, rewards, episode_step)


# ---- impact --------------------------------------------------------------------------


def propagator(recording: Recording, classes: Sequence[Sequence[int]], *,
               lags: int = 50) -> np.ndarray:
    """Each class's impact kernel, ticks per lot: ``G[c, l]`` is the one-step mid change
    ``l`` steps after one lot of class ``c`` (module docstring), from the least-squares fit
    of ``mid[t + 1] - mid[t]`` on ``flow[t - l, c]`` for ``l < lags`` with an intercept,
    over every book and every step with ``lags - 1`` steps before it.

    ``np.cumsum(G, axis=1)`` is the impact ``l`` steps after the trade.
    """
    if not isinstance(lags, int) or lags < 1:
        raise ValueError(f"lags must be an int >= 1, got {lags!r}")
    flow = recording.flows(classes)                       # (T, B, C)
    n_steps, _, n_classes = flow.shape
    if n_steps <= lags + n_classes * lags:
        raise ValueError(f"{n_steps} steps are too few for {lags} lags of {n_classes} "
                         "classes")
    move = np.diff(recording.mids, axis=0)                # (T, B): over step t
    rows = n_steps - lags + 1
    design = np.empty((rows, flow.shape[1], n_classes * lags + 1))
    for c in range(n_classes):
        for lag in range(lags):
            design[:, :, c * lags + lag] = flow[lags - 1 - lag: n_steps - lag, :, c]
    design[:, :, -1] = 1.0
    x = design.reshape(-1, design.shape[-1])
    y = move[lags - 1:].reshape(-1)
    keep = np.isfinite(y)
    coefficients, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
    return coefficients[:-1].reshape(n_classes, lags)


def response(recording: Recording, classes: Sequence[Sequence[int]], *,
             lags: int = 50) -> np.ndarray:
    """Each class's response per lot (Bouchaud's response function weighted by volume):
    ``R[c, l] = sum flow[t, c] x (mid[t + 1 + l] - mid[t]) / sum |flow[t, c]|``, ticks per
    lot, over every book and step with ``l`` steps after it. Unlike :func:`propagator` it
    keeps what follows the trade with it (the rest of the parent, the others' reaction):
    the price path a lot of the class is followed by, in its direction."""
    if not isinstance(lags, int) or not 1 <= lags < recording.n_steps:
        raise ValueError(f"lags must be an int in [1, {recording.n_steps}), got {lags!r}")
    flow = recording.flows(classes)
    n = recording.n_steps - lags + 1
    out = np.full((flow.shape[2], lags), np.nan)
    for c in range(flow.shape[2]):
        f = flow[:n, :, c]
        volume = np.abs(f).sum()
        if volume == 0:
            continue
        for lag in range(lags):
            move = recording.mids[1 + lag: 1 + lag + n] - recording.mids[:n]
            out[c, lag] = float((f * move).sum() / volume)
    return out


def lead_lag(recording: Recording, first: Sequence[int], second: Sequence[int], *,
             max_lag: int = 20) -> np.ndarray:
    """``corr(flow_first[t], flow_second[t + l])`` for ``l = -max_lag .. max_lag``, pooled
    over books after removing each book's means; NaN where a class never traded.

    A peak at positive ``l``: the first class trades before the second, in its direction
    (it anticipates or front-runs); at negative ``l`` it follows."""
    if not isinstance(max_lag, int) or not 0 <= max_lag < recording.n_steps:
        raise ValueError(f"max_lag must be an int in [0, {recording.n_steps}), got "
                         f"{max_lag!r}")
    a, b = (recording.flows([slots])[:, :, 0] for slots in (first, second))
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    n = recording.n_steps
    out = np.full(2 * max_lag + 1, np.nan)
    for k, lag in enumerate(range(-max_lag, max_lag + 1)):
        x = a[max(0, -lag): n - max(0, lag)]
        y = b[max(0, lag): n - max(0, -lag)]
        scale = np.sqrt((x * x).sum() * (y * y).sum())
        if scale > 0:
            out[k] = float((x * y).sum() / scale)
    return out


def conditional_return(recording: Recording, slots: Sequence[int], *,
                       horizon: int = 20) -> float:
    """Mean ``sign(flow[t]) x (mid[t + 1 + horizon] - mid[t + 1])`` over the steps where
    the class traded (ticks): the move after its step, in its direction. NaN when it never
    traded."""
    if not isinstance(horizon, int) or not 1 <= horizon < recording.n_steps:
        raise ValueError(f"horizon must be an int in [1, {recording.n_steps}), got "
                         f"{horizon!r}")
    flow = recording.flows([slots])[:, :, 0]
    n = recording.n_steps - horizon
    sign = np.sign(flow[:n])
    after = recording.mids[1 + horizon: 1 + horizon + n] - recording.mids[1: 1 + n]
    traded = sign != 0
    return float((sign * after)[traded].mean()) if traded.any() else float("nan")


# ---- market quality ------------------------------------------------------------------


def variance_ratio(mids: np.ndarray, q: int = 10) -> float:
    """``Var(q-step change) / (q x Var(one-step change))`` pooled over books (1 for a
    random walk; below 1: moves revert, above: they trend). ``mids`` is ``(T + 1, B)``."""
    one = np.diff(mids, axis=0)
    many = mids[q:] - mids[:-q]
    var_one = float(np.nanvar(one))
    return float(np.nanvar(many) / (q * var_one)) if var_one > 0 else float("nan")


def market_quality(recording: Recording, books: np.ndarray | slice = slice(None)
                   ) -> dict[str, float]:
    """Spread and depth (means), volatility (std of the one-step mid change, ticks), the
    variance ratio at 10 steps, the mean distance of the mid from the fundamental (ticks;
    smaller: the price is more efficient) and the share of steps with a side empty, over
    ``books``."""
    mids = recording.mids[:, books]
    spread = recording.spread[:, books]
    return {
        "spread": float(np.nanmean(spread)),
        "depth": float(recording.depth[:, books].mean()),
        "volatility": float(np.nanstd(np.diff(mids, axis=0))),
        "variance_ratio": variance_ratio(mids),
        "pricing_error": float(np.abs(mids - recording.fundamental[:, books]).mean()),
        "one_sided": float(np.isnan(spread).mean()),
    }


# ---- execution behaviour -------------------------------------------------------------


def _episodes(recording: Recording, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(first step, book) of every complete episode in the recording."""
    starts = np.argwhere(recording.episode_step == 0)
    complete = starts[:, 0] + horizon <= recording.n_steps
    return starts[complete, 0], starts[complete, 1]


def _ratio(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` where ``mask`` over their mean (NaN-aware; NaN if none)."""
    if not mask.any():
        return float("nan")
    return float(np.nanmean(values[mask]) / np.nanmean(values))


def execution_behaviour(recording: Recording, classes: Sequence[Sequence[int]], *,
                        horizon: int, n_rates: int, largest: int = -1
                        ) -> list[dict[str, float]]:
    """How each class works its parents in ``action_mode="execution"`` (actions ``0``
    wait, ``1 .. n_rates`` market children, ``n_rates + 1 .. 2 n_rates`` resting ones),
    over the recording's complete episodes:

    - ``wait``, ``market``, ``resting``: shares of its steps;
    - ``rate_index``: mean index (0 .. n_rates - 1) of the rates its children asked for;
    - ``front_loaded``: share of a parent traded in the episode's first half;
    - ``left_to_deadline``: share traded in the episode's last step (the forced market
      order completes what is left);
    - ``spread_timing``: the mean spread before the steps it sent a market child, over
      the mean spread before all its steps (below 1: it takes liquidity when the spread
      is narrow);
    - ``shortfall``: mean implementation shortfall, ticks per lot (minus the summed
      rewards);
    - ``shortfall_with``, ``shortfall_against``: the same over its parents on the same
      side as the net of class ``largest``'s parents in that market episode, or the other
      (NaN for the largest class itself or when there are none).
    """
    starts, books = _episodes(recording, horizon)
    if starts.size == 0:
        raise ValueError(f"no complete episode of {horizon} steps in the recording")
    window = starts[:, None] + np.arange(horizon)               # (E, H)
    trades = recording.trades[window, books[:, None]]            # (E, H, A)
    actions = recording.actions[window, books[:, None]]
    rewards = recording.rewards[window, books[:, None]].sum(axis=1)   # (E, A)
    parent = trades.sum(axis=1)                                  # (E, A): signed lots
    big = np.sign(parent[:, list(classes[largest])].sum(axis=1))  # (E,)
    before = np.vstack([np.full((1, recording.spread.shape[1]), np.nan),
                        recording.spread[:-1]])[window, books[:, None]]   # (E, H)
    out = []
    for c, slots in enumerate(classes):
        s = list(slots)
        acts, lots, sizes = actions[:, :, s], trades[:, :, s], np.abs(parent[:, s])
        market = (acts >= 1) & (acts <= n_rates)
        resting = acts > n_rates
        children = acts[market | resting]
        done = sizes > 0
        half = np.abs(lots[:, : horizon // 2].sum(axis=1))
        last = np.abs(lots[:, -1])
        shortfall = -rewards[:, s]
        same = np.sign(parent[:, s]) == big[:, None]
        row = {
            "wait": float((acts == 0).mean()),
            "market": float(market.mean()),
            "resting": float(resting.mean()),
            "rate_index": float(((children - 1) % n_rates).mean()) if children.size
            else float("nan"),
            "front_loaded": float(half[done].sum() / sizes[done].sum()) if done.any()
            else float("nan"),
            "left_to_deadline": float(last[done].sum() / sizes[done].sum()) if done.any()
            else float("nan"),
            "spread_timing": _ratio(np.broadcast_to(before[:, :, None], acts.shape),
                                    market),
            "shortfall": float(shortfall[done].mean()) if done.any() else float("nan"),
        }
        is_largest = c == (largest % len(classes))
        for name, mask in (("shortfall_with", same), ("shortfall_against", ~same)):
            mask = mask & done & (big[:, None] != 0)
            row[name] = (float(shortfall[mask].mean()) if mask.any() and not is_largest
                         else float("nan"))
        out.append(row)
    return out
