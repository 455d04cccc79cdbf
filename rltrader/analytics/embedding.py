"""A book embedding: the depth profile's principal components (PCA by numpy's SVD).

A depth snapshot is the queue of the 10 best levels per side (``depth_bid``,
``depth_ask`` of ``SAMPLE_DTYPE``: lots, best first, 0 where missing). Its *profile* is
the depth chart in shares: for ``j = 1..10`` the quantity within the best ``j`` bid levels,
then the same for the asks, each divided by the total of all 20 levels (so the bid curve
ends at the bid side's share and the two ends sum to 1). The embedding is the profile's
coordinates on the first ``k`` principal components of a training set.

Why this normalisation:

- *Shares, no size feature.* A lot is 1 share of AAPL on LOBSTER, 1e-5 BTC on Binance
  spot, and whatever a simulated market says: total depth differs by orders of magnitude
  between sources for reasons of units, not of market state. Dividing by the total makes
  profiles of every source comparable (one model serves simulated and real books) and
  keeps the shape: bid/ask imbalance, how concentrated the touch is, where the walls are.
  A ``log(total depth)`` feature would make the first component "which venue"; the book's
  size is in ``depth_bid``/``depth_ask`` and the imbalances anyway.
- *Cumulative.* Per-level shares are noisy (one level's queue jumps when an order lands):
  4 components explain 20-87% of held-out variance for them, against 87-98% for the
  cumulative curves, which carry the same information (differences give the levels back).
  Shares of each side's own total (with the imbalance) explain 45-83%; square-root
  shares and log quantities no more than plain shares.

The shipped model (``models/book_pca.npz``, :meth:`BookEmbedding.default`) is fitted by
``python -m rltrader.analytics.embedding fit`` (about 10 s) on:

- simulated days: presets ``rmsc04``, ``thin``, ``resilient`` (seed 1) and ``realistic``
  (its 8 books, seed 1), the top 10 levels every 10 steps (1 s);
- real days: the first 75% (in time) of the LOBSTER AAPL hour (every message's book,
  ``lobster.replay_depth``) and of the Binance spot and USD-M futures BTCUSDT captures in
  the package's samples, ``crypto/binance`` (the book after every depth update, rebuilt
  by the core),

each source thinned by a regular stride to at most 20,000 rows so that none dominates. Its
reconstruction error is measured on held-out data: other seeds of those presets, a preset
it never saw (``informed``) and the last 25% of each real file. The fit is deterministic
(same data; each component's sign fixed so that its first largest loading is positive).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

LEVELS = 10
#: The shipped model.
DEFAULT_MODEL = Path(__file__).with_name("models") / "book_pca.npz"


def depth_profile(depth_bid: Any, depth_ask: Any, levels: int = LEVELS) -> np.ndarray:
    """``(n, 2 * levels)`` float64 cumulative depth (bids: best 1, 2 … ``levels``; then
    asks) as shares of the total visible depth; NaN rows where both sides are empty. 1-D
    inputs are one snapshot."""
    bid = np.asarray(depth_bid)
    ask = np.asarray(depth_ask)
    if bid.shape != ask.shape or bid.shape[-1:] != (levels,) or bid.ndim not in (1, 2):
        raise ValueError(f"depth_bid and depth_ask must both be (n, {levels}) or "
                         f"({levels},), got {bid.shape} and {ask.shape}")
    depth = np.concatenate([bid, ask], axis=-1).reshape(-1, 2, levels)
    if depth.size and depth.min() < 0:
        raise ValueError("depth quantities must be >= 0 (lots)")
    cumulative = depth.cumsum(axis=2, dtype=np.float64).reshape(-1, 2 * levels)
    total = cumulative[:, levels - 1:levels] + cumulative[:, -1:]
    # an empty book (total 0) stays NaN
    return np.divide(cumulative, total, out=np.full_like(cumulative, np.nan),
                     where=total > 0)


class BookEmbedding:
    """PCA of the depth profile (module docstring).

    Parameters
    ----------
    mean : ndarray, shape (2 * levels,)
        The training profiles' mean.
    components : ndarray, shape (k, 2 * levels)
        Orthonormal principal axes, strongest first.
    explained_variance_ratio : ndarray, shape (k,)
        Each component's share of the training profiles' variance.
    info : dict
        JSON-able notes kept with the model (sources, held-out table).
    """

    def __init__(self, mean: np.ndarray, components: np.ndarray,
                 explained_variance_ratio: np.ndarray | None = None,
                 info: dict[str, Any] | None = None) -> None:
        mean = np.asarray(mean, dtype=np.float64)
        components = np.asarray(components, dtype=np.float64)
        if mean.ndim != 1 or mean.shape[0] % 2 or components.ndim != 2 \
                or components.shape[1] != mean.shape[0] or components.shape[0] < 1:
            raise ValueError(f"mean must be (2 * levels,) and components (k, 2 * levels), "
                             f"got {mean.shape} and {components.shape}")
        self.mean = mean
        self.components = components
        self.explained_variance_ratio = (np.full(components.shape[0], np.nan)
                                         if explained_variance_ratio is None else
                                         np.asarray(explained_variance_ratio, np.float64))
        self.info = dict(info or {})

    @property
    def k(self) -> int:
        """Components (the embedding's size)."""
        return self.components.shape[0]

    @property
    def levels(self) -> int:
        """Levels per side of the depth it takes."""
        return self.mean.shape[0] // 2

    # ---- fitting ----------------------------------------------------------------------

    @classmethod
    def fit(cls, depth_bid: Any, depth_ask: Any, k: int = 4,
            info: dict[str, Any] | None = None) -> BookEmbedding:
        """The first ``k`` principal components of the snapshots' profiles.

        Parameters
        ----------
        depth_bid, depth_ask : array of int, shape (n, levels)
            Lots per level, best first, 0 where missing; empty snapshots are skipped.
        k : int
            Components kept.
        """
        profile = depth_profile(depth_bid, depth_ask, np.shape(depth_bid)[-1])
        profile = profile[~np.isnan(profile[:, 0])]
        width = profile.shape[1]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= width:
            raise ValueError(f"k must be an int in [1, {width}], got {k!r}")
        if profile.shape[0] <= k:
            raise ValueError(f"fit needs more than k={k} non-empty snapshots, got "
                             f"{profile.shape[0]}")
        mean = profile.mean(axis=0)
        _, singular, axes = np.linalg.svd(profile - mean, full_matrices=False)
        axes = axes[:k]
        # a component's sign is arbitrary: fix it for a deterministic model, by its first
        # largest loading. "First": a component of a profile symmetric in bid and ask has
        # two equal largest loadings (a bid level and its ask level), and the last bits of
        # the SVD (the machine's LAPACK) would otherwise pick one, and the sign with it
        magnitude = np.abs(axes)
        largest = magnitude >= magnitude.max(axis=1, keepdims=True) * (1.0 - 1e-9)
        strongest = np.argmax(largest, axis=1)
        axes *= np.sign(axes[np.arange(k), strongest])[:, None]
        variance = singular ** 2
        return cls(mean, axes, variance[:k] / variance.sum(), info)

    # ---- use --------------------------------------------------------------------------

    def transform(self, depth_bid: Any, depth_ask: Any) -> np.ndarray:
        """``(n, k)`` embedding of ``n`` snapshots (``(k,)`` for one); NaN rows where the
        book is empty."""
        profile = depth_profile(depth_bid, depth_ask, self.levels)
        out = (profile - self.mean) @ self.components.T
        return out[0] if np.ndim(depth_bid) == 1 else out

    def inverse_transform(self, embedding: Any) -> np.ndarray:
        """The profiles (:func:`depth_profile`, ``(n, 2 * levels)``) that ``embedding``
        stands for."""
        return np.asarray(embedding, dtype=np.float64) @ self.components + self.mean

    def reconstruction_error(self, depth_bid: Any, depth_ask: Any) -> dict[str, float]:
        """How well ``k`` numbers describe the snapshots' profiles (empty ones skipped).

        Returns
        -------
        dict
            ``rows``; ``rmse``: root mean square error of the reconstructed profile per
            entry (:func:`depth_profile`: cumulative shares of the total depth);
            ``mean_rmse``: the same for the trivial model that predicts the training mean;
            ``explained_variance``: ``1 - SSE / SST`` with SST the profiles' squared
            deviations from their own mean.
        """
        profile = depth_profile(depth_bid, depth_ask, self.levels)
        profile = profile[~np.isnan(profile[:, 0])]
        if profile.shape[0] == 0:
            nan = float("nan")
            return {"rows": 0, "rmse": nan, "mean_rmse": nan, "explained_variance": nan}
        centred = profile - self.mean
        residual = centred - (centred @ self.components.T) @ self.components
        sse = float(np.sum(residual ** 2))
        sst = float(np.sum((profile - profile.mean(axis=0)) ** 2))
        return {"rows": int(profile.shape[0]), "rmse": float(np.sqrt(sse / profile.size)),
                "mean_rmse": float(np.sqrt(np.sum(centred ** 2) / profile.size)),
                "explained_variance": 1.0 - sse / sst if sst > 0 else float("nan")}

    # ---- files ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model as ``.npz`` (no pickles)."""
        np.savez(path, mean=self.mean, components=self.components,
                 explained_variance_ratio=self.explained_variance_ratio,
                 info=np.array(json.dumps(self.info, sort_keys=True)))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BookEmbedding:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["components"], data["explained_variance_ratio"],
                       json.loads(str(data["info"])))

    @classmethod
    def default(cls) -> BookEmbedding:
        """The shipped model (module docstring), loaded once."""
        return _default()

    def __repr__(self) -> str:
        return (f"BookEmbedding(k={self.k}, levels={self.levels}, explained variance "
                f"{self.explained_variance_ratio.sum():.3f})")


@functools.lru_cache(maxsize=1)
def _default() -> BookEmbedding:
    return BookEmbedding.load(DEFAULT_MODEL)


# ---- the shipped model's data -----------------------------------------------------------

#: (preset, seed) of the simulated days fitted on, and of those held out.
FIT_DAYS = (("rmsc04", 1), ("thin", 1), ("resilient", 1), ("realistic", 1))
HELD_OUT_DAYS = (("rmsc04", 2), ("thin", 2), ("resilient", 2), ("informed", 1))
SAMPLE_EVERY = 10            # steps between simulated snapshots (1 s at 100 ms steps)
TRAIN_SHARE = 0.75           # of each real file, in time: fitted on; the rest held out
ROWS_PER_SOURCE = 20_000
BINANCE_FILES = ("crypto/binance/hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz",
                 "crypto/binance/hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz")
Depth = tuple[np.ndarray, np.ndarray]


def simulated_depth(preset_name: str, seed: int, every: int = SAMPLE_EVERY,
                    steps: int | None = None) -> Depth:
    """The top 10 levels of every book of a simulated day (``steps`` of it), every
    ``every`` steps: ``(bid, ask)`` lots ``(snapshots * books, 10)``."""
    from rltrader.sim import Market, preset

    market = Market(preset(preset_name), seed)
    n_books = market.config.n_books
    steps = market.n_steps if steps is None else min(steps, market.n_steps)
    qtys = np.zeros((steps // every, n_books, 2, LEVELS), dtype=np.int64)
    prices = np.zeros((n_books, 2, LEVELS), dtype=np.int64)
    counts = np.zeros((n_books, 2, LEVELS), dtype=np.int32)
    for i in range(qtys.shape[0]):
        market.step(every)
        market.books.top_levels(LEVELS, prices, qtys[i], counts)
    flat = qtys.reshape(-1, 2, LEVELS)
    return flat[:, 0], flat[:, 1]


def lobster_depth() -> tuple[Depth, np.ndarray]:
    """The book after every row of the LOBSTER AAPL hour, and the rows' timestamps."""
    from rltrader.data import lobster
    from rltrader.data.samples import AAPL_HOUR, sample_path

    feed = lobster.read_messages(sample_path(AAPL_HOUR))
    _, qtys = lobster.replay_depth(feed, LEVELS)
    return (qtys[:, 0], qtys[:, 1]), feed.raw["timestamp"]


def binance_depth(name: str, root: str | os.PathLike[str] | None = None
                  ) -> tuple[Depth, np.ndarray]:
    """The book after every depth update of a Binance capture (``name`` under ``root``,
    ``$RLTRADER_DATA`` or the package's samples), rebuilt by the core, and the updates'
    timestamps."""
    from rltrader.data import binance
    from rltrader.data._levels import depth_after
    from rltrader.data.replay_crypto import WINDOW
    from rltrader.data.samples import sample_path

    feed = binance.read_feed([sample_path(name, root)])
    updates = np.unique(feed.update_id)
    _, qtys = depth_after(feed.messages, feed.update_id, updates, LEVELS, window=WINDOW)
    last = np.searchsorted(feed.update_id, updates, side="right") - 1
    stamps = feed.messages["timestamp"][last]
    return (qtys[:, 0], qtys[:, 1]), stamps


def split_in_time(depth: Depth, stamps: np.ndarray, share: float = TRAIN_SHARE
                  ) -> tuple[Depth, Depth]:
    """The snapshots before and after ``share`` of the record's time span."""
    cut = stamps[0] + share * (stamps[-1] - stamps[0])
    first = stamps < cut
    return (depth[0][first], depth[1][first]), (depth[0][~first], depth[1][~first])


def thin(depth: Depth, rows: int = ROWS_PER_SOURCE) -> Depth:
    """At most ``rows`` snapshots by a regular stride (deterministic)."""
    stride = max(1, -(-depth[0].shape[0] // rows))
    return depth[0][::stride], depth[1][::stride]


def shipped_data(test_data: str | os.PathLike[str] | None = None
                 ) -> tuple[dict[str, Depth], dict[str, Depth]]:
    """``(fit, held_out)``: the shipped model's sources by name (module docstring)."""
    if test_data is None:
        test_data = Path(__file__).resolve().parents[2] / "tests" / "data"
    fit: dict[str, Depth] = {}
    held_out: dict[str, Depth] = {}
    for name, seed in FIT_DAYS:
        fit[f"sim {name} seed {seed}"] = simulated_depth(name, seed)
    for name, seed in HELD_OUT_DAYS:
        held_out[f"sim {name} seed {seed}"] = simulated_depth(name, seed)
    real = {"LOBSTER AAPL 2012-06-21": lobster_depth()}
    for path in BINANCE_FILES:
        market = "spot" if "_spot_" in path else "USD-M"
        real[f"Binance {market} BTCUSDT"] = binance_depth(path, test_data)
    for name, (depth, stamps) in real.items():
        fit[name], held_out[f"{name}, last 25%"] = split_in_time(depth, stamps)
    return {name: thin(depth) for name, depth in fit.items()}, held_out


def error_table(model: BookEmbedding, sets: dict[str, Depth]) -> list[dict[str, Any]]:
    """:meth:`BookEmbedding.reconstruction_error` of each named set."""
    return [{"source": name, **model.reconstruction_error(*depth)}
            for name, depth in sets.items()]


def format_table(rows: Sequence[dict[str, Any]], k: int) -> str:
    """The error table as aligned text."""
    head = (f"{'held-out source':<40} {'rows':>8} {f'rmse k={k}':>10} {'mean rmse':>10} "
            f"{'expl. var':>9}")
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(f"{row['source']:<40} {row['rows']:>8,} {row['rmse']:>10.5f} "
                     f"{row['mean_rmse']:>10.5f} {row['explained_variance']:>9.3f}")
    return "\n".join(lines)


def fit_shipped(k: int = 4, test_data: str | os.PathLike[str] | None = None
                ) -> tuple[BookEmbedding, list[dict[str, Any]]]:
    """Fit the shipped model and measure it on the held-out sets."""
    fit, held_out = shipped_data(test_data)
    bid = np.concatenate([d[0] for d in fit.values()])
    ask = np.concatenate([d[1] for d in fit.values()])
    info: dict[str, Any] = {"feature": "cumulative shares of the top-10-per-side depth",
                            "fit_rows": {name: int(d[0].shape[0]) for name, d in fit.items()}}
    model = BookEmbedding.fit(bid, ask, k, info)
    table = error_table(model, held_out)
    model.info["held_out"] = table
    return model, table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rltrader.analytics.embedding",
                                     description="Fit the shipped book embedding.")
    parser.add_argument("command", choices=("fit",))
    parser.add_argument("--k", type=int, default=4, help="components (default 4)")
    parser.add_argument("--out", default=str(DEFAULT_MODEL), help="model file (.npz)")
    parser.add_argument("--test-data", default=None,
                        help="a samples folder (crypto/binance/...) looked at first "
                             "(default: $RLTRADER_DATA, then the package's samples)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model, table = fit_shipped(args.k, args.test_data)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    ratios = ", ".join(f"{r:.3f}" for r in model.explained_variance_ratio)
    print(f"fitted on {sum(model.info['fit_rows'].values()):,} snapshots "
          f"({len(model.info['fit_rows'])} sources) in {time.perf_counter() - start:.1f} s; "
          f"training variance explained per component: {ratios}")
    print(format_table(table, model.k))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
