"""Routing as an action: a Gymnasium env whose agent routes parent orders across venues.

Description
-----------
Each episode is one parent order (random side and size) on a :class:`MultiVenueMarket`.
The agent picks how to route it; the chosen router places the children, which travel
with the agent's latency; after ``horizon`` steps what rests is cancelled and the rest
completed by a market order at the best touch, as in :mod:`rltrader.routing.evaluate`.
Between episodes the market runs on for a random gap.

Action space
------------
``Discrete(len(ROUTERS) + n_venues)``: the routers of :func:`evaluate.routers`
(``greedy``, ``greedy_latency``, ``even_split``, ``cont_kukanov``), then one single-venue
sweep per venue.

Observation space
-----------------
``Box(float32)``: the participant's consolidated-book observation
(:meth:`ConsolidatedBook.observation`), then the parent's side and size (in units of
``qty_scale``).

Rewards
-------
Minus the parent's implementation shortfall, bps (fees in; the clean-up included).

Episode end
-----------
After one parent (``terminated``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rltrader.routing.evaluate import SIMULATED, execute, routers, seeded_view, snapshot
from rltrader.routing.venues import MultiVenueConfig, MultiVenueMarket

ROUTERS = ("greedy", "greedy_latency", "even_split", "cont_kukanov")


class RoutingEnv(gym.Env):
    """Route one parent per episode (the module docstring has the spaces).

    Parameters
    ----------
    config : MultiVenueConfig
        The venues (participant 0 is the agent).
    qty : (int, int)
        Parent sizes, lots, drawn uniformly in ``[low, high)``.
    horizon : int
        Steps the children have before the clean-up.
    gap : (int, int)
        Steps the market runs between parents.
    warmup : int
        Steps before the first parent.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: MultiVenueConfig = SIMULATED, *, qty: tuple[int, int] = (50, 400),
                 horizon: int = 10, gap: tuple[int, int] = (20, 60), warmup: int = 300) -> None:
        self.config, self.qty, self.horizon, self.gap, self.warmup = (config, qty, horizon,
                                                                      gap, warmup)
        self.n_venues = len(config.venues)
        self.action_space = gym.spaces.Discrete(len(ROUTERS) + self.n_venues)
        self.market: MultiVenueMarket | None = None
        self.qty_scale = float(qty[1])
        size = 2 + 4 * self.n_venues + 2         # ConsolidatedBook.observation_size(), side, size
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None
              ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self.market is None or seed is not None:
            self.market = MultiVenueMarket(self.config,
                                           seed=int(self.np_random.integers(2**31)))
            self.view = seeded_view(self.market, 0)
            self._recent: list[list[np.ndarray]] = [[] for _ in range(self.n_venues)]
            self._run(self.warmup)
            self._table = routers(self.n_venues, self.market.dt_ns * self.horizon, 4.0)
        self._run(int(self.np_random.integers(*self.gap)))
        self.side = 1 if self.np_random.random() < 0.5 else -1
        self.size = int(self.np_random.integers(*self.qty))
        return self._observe(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        from rltrader.routing.router import Parent

        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in [0, {self.action_space.n}), got {action}")
        assert self.market is not None
        name = ROUTERS[action] if action < len(ROUTERS) else f"venue_{action - len(ROUTERS)}"
        views = snapshot(self.view, np.zeros(self.n_venues), None, 1)
        if name == "cont_kukanov":
            views = snapshot(self.view, np.zeros(self.n_venues), self._outflow(),
                             self.market.dt_ns * self.horizon)
        arrival = self._mid()
        route = self._table[name](Parent(self.side, self.size), views)
        before = self.market.time_ns
        outcome = execute(self.market, list(route), self.side, self.size, self.horizon,
                          np.zeros(self.n_venues), arrival)
        self.view = seeded_view(self.market, 0)   # the view again, from the books now
        info = {"router": name, "shortfall_bps": outcome.shortfall_bps,
                "fill_rate": outcome.fill_rate, "fees_bps": outcome.fees_bps,
                "steps": (self.market.time_ns - before) // self.market.dt_ns}
        return self._observe(), -outcome.shortfall_bps, True, False, info

    # ---- internals ---------------------------------------------------------------------

    def _run(self, steps: int) -> None:
        assert self.market is not None
        for _ in range(steps):
            for v, events in enumerate(self.market.step()):
                self.view.on_events(v, events)
                self._recent[v].append(events)
                del self._recent[v][:-600]
            self.view.advance(self.market.time_ns)

    def _outflow(self) -> list[np.ndarray] | None:
        from rltrader.routing.evaluate import _outflows

        assert self.market is not None
        return _outflows(self._recent, self.market.dt_ns * self.horizon)

    def _mid(self) -> float:
        from rltrader.routing.evaluate import _mid

        assert self.market is not None
        return _mid(self.market, np.zeros(self.n_venues))

    def _observe(self) -> np.ndarray:
        book = self.view.observation()
        return np.concatenate([book, [self.side, self.size / self.qty_scale]]).astype(
            np.float32)


__all__ = ["ROUTERS", "RoutingEnv"]
