"""The analytics engine's features as RL observations: :class:`AnalyticsObservations`
wraps a :class:`~rltrader.envs.batched.BatchedMarketEnv` and appends, to every agent's
observation, features of its book computed by the same :class:`FeatureEngine` that the
dashboard, the publishers and the offline files use.

What the engine sees of the env: after every step, each book's top ``depth`` levels
(``Books.top_levels``, one :meth:`FeatureEngine.snapshot` for all books) and the step's
trades as one aggregate per book (lots and VWAP from the core's per-book volume and
notional). The env's step does not hand out its events, so the aggregate's aggressor side
is the tick rule (its VWAP above the previous mid: a buy; below: a sell; at the mid:
half each) and the order-flow imbalance is taken once per step: both are exact at the
step's resolution, not within it.

Features are in ticks, lots or plain ratios; ``NaN`` (no mid yet, no trade in the
window) is observed as 0, and the columns are appended in the order of ``features``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrader.analytics.engine import MD_DTYPE, MD_TRADE, FeatureEngine

#: Sample fields an agent may observe (``embedding`` gives its four components).
FEATURES = ("spread", "microprice_offset", "imbalance_1", "imbalance_5", "imbalance_10",
            "ofi", "trade_sign_imbalance", "returns", "realized_vol", "kyle_lambda",
            "embedding")
DEFAULT = ("spread", "microprice_offset", "imbalance_1", "imbalance_5", "ofi",
           "trade_sign_imbalance", "realized_vol", "kyle_lambda")


class AnalyticsObservations:
    """A batched env whose observations end with analytics features of each agent's book.

    Parameters
    ----------
    env : BatchedMarketEnv
        A simulated market (``env.market``); its agents are ``n_agents`` rows per book.
    features : sequence of str
        Columns from :data:`FEATURES` (``microprice_offset`` is microprice - mid).
    window : int
        Steps behind ``realized_vol`` and ``kyle_lambda``.
    depth : int
        Levels per side the engine follows (10 feed every feature).
    scale : float
        Divides ``ofi`` (lots): O(1) observations for the default sizes.
    """

    def __init__(self, env: Any, features: Any = DEFAULT, *, window: int = 20,
                 depth: int = 10, scale: float = 10.0) -> None:
        if getattr(env, "market", None) is None:
            raise ValueError("AnalyticsObservations needs a simulated market (env.market); a "
                             "replay-driven env has one core per replay")
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; choose from {FEATURES}")
        self.env, self.features, self.depth, self.scale = env, tuple(features), depth, scale
        self.dt_ns = int(env.market.config.dt_ns)
        self.n_books = int(env.n_books)
        self.n_agents = int(env.n_agents)
        width = sum(4 if f == "embedding" else 1 for f in self.features)
        self.extra = width
        self.obs_dim = env.obs_dim + width
        self.window = window
        self._engine()
        rows = self.n_books * self.n_agents
        self.observations = np.zeros((rows, self.obs_dim), dtype=np.float32)
        self.final_observations = np.zeros_like(self.observations)
        self._book_features = np.zeros((self.n_books, width), dtype=np.float32)

    def _engine(self) -> None:
        embedding: Any = "default" if "embedding" in self.features else None
        self.engine = FeatureEngine(self.n_books, intervals=(self.dt_ns,), sample=self.dt_ns,
                                    window=self.window, indicators=False, embedding=embedding)
        books = self.env.market.books.book_array
        self._volume = books["volume"].astype(np.int64).copy()
        self._notional = books["notional"].astype(np.float64).copy()
        self._mid = np.full(self.n_books, np.nan)

    # ---- the env's interface ----------------------------------------------------------

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs = self.env.reset(seed=seed)
        self._engine()
        self._observe()
        return self._join(obs, self.observations)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        obs, rewards, terminated, truncated = self.env.step(actions)
        self._observe()
        self._join(obs, self.observations)
        ended = terminated | truncated
        if ended.any():
            self._join(self.env.final_observations, self.final_observations)
        return self.observations, rewards, terminated, truncated

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    # ---- features ---------------------------------------------------------------------

    def _join(self, obs: np.ndarray, out: np.ndarray) -> np.ndarray:
        out[:, :self.env.obs_dim] = obs
        out[:, self.env.obs_dim:] = np.repeat(self._book_features, self.n_agents, axis=0)
        return out

    def _trades(self, t: int) -> np.ndarray:
        """The step's trades, one aggregate record per book that traded (tick rule)."""
        books = self.env.market.books.book_array
        volume = books["volume"].astype(np.int64)
        notional = books["notional"].astype(np.float64)
        lots, value = volume - self._volume, notional - self._notional
        self._volume, self._notional = volume.copy(), notional.copy()
        traded = np.flatnonzero(lots > 0)
        if not traded.size:
            return np.zeros(0, dtype=MD_DTYPE)
        vwap = value[traded] / lots[traded]
        mid = self._mid[traded]
        sign = np.where(np.isnan(mid), 1, np.sign(vwap - mid)).astype(np.int8)
        halves = sign == 0
        recs = np.zeros(traded.size + int(halves.sum()), dtype=MD_DTYPE)
        head = recs[:traded.size]
        head["timestamp"], head["book"], head["kind"] = t, traded, MD_TRADE
        head["price"] = np.rint(vwap).astype(np.int64)
        head["qty"], head["side"] = lots[traded], np.where(halves, 1, sign)
        if halves.any():                 # at the mid: half bought, half sold
            buy_half = (lots[traded][halves] + 1) // 2
            head["qty"][halves] = buy_half
            tail = recs[traded.size:]
            tail["timestamp"], tail["book"], tail["kind"] = t, traded[halves], MD_TRADE
            tail["price"] = head["price"][halves]
            tail["qty"], tail["side"] = lots[traded][halves] - buy_half, -1
            recs = recs[recs["qty"] > 0]
        return recs

    def _observe(self) -> None:
        t = int(self.env._timestamp())
        self.engine.process_records(self._trades(t))
        prices, qtys, _ = self.env.market.books.top_levels(self.depth)
        self.engine.snapshot(t, prices, qtys)
        samples = self.engine.flush(t + self.dt_ns).samples[-self.n_books:]
        if samples.size < self.n_books:
            return
        self._mid = samples["mid"].copy()
        columns = []
        for name in self.features:
            if name == "embedding":
                columns.append(samples["embedding"])
                continue
            if name == "microprice_offset":
                value = samples["microprice"] - samples["mid"]
            else:
                value = samples[name].astype(np.float64)
            if name == "ofi":
                value = value / self.scale
            columns.append(value[:, None])
        self._book_features[...] = np.nan_to_num(np.concatenate(columns, axis=1), nan=0.0,
                                                 posinf=0.0, neginf=0.0)


__all__ = ["DEFAULT", "FEATURES", "AnalyticsObservations"]
