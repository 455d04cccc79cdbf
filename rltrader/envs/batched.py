"""The batched market environment: ``n_envs`` markets x ``n_agents`` learners, one call.

Description
-----------
Every env is one book with background traders (a :class:`rltrader.sim.market.Market`
population, preset ``"resilient"`` by default: impact that decays, a book that
survives the largest agent; docs/market.md) or, as the data source, a hybrid replay of real
LOBSTER flow (:class:`rltrader.data.hybrid.HybridReplay`, one per env). ``n_agents``
learning agents trade in each book through the core's accounts (cash with fees,
position). Agent ``i`` of env ``e`` is row ``e * n_agents + i`` of every array.

Action space
------------
``action_mode="discrete"``: ``Discrete(2 * len(limit_offsets) + 4)``: 0 hold; then a limit
buy at each offset, a limit sell at each offset; market buy; market sell; cancel all.
``action_mode="market_making"``: ``MultiDiscrete([n_quotes + 1, n_quotes + 1, n_sizes])``:
bid offset, ask offset (index ``n_quotes``: no quote on that side), size. Sizes scale with
the agent's size class; orders beyond the position limit are cut to fit.

Observation space
-----------------
``Box(-f32max, f32max, (4 * depth + 12,), float32)``; the table is in docs/envs.md
(:func:`rltrader.envs.config.observation_names` gives the column names).

Rewards
-------
``pnl``: the change of the agent's account value per lot of its order size (ticks): cash
(fees included) plus what liquidating the position would fetch now (``valuation=
"liquidation"``: walking the book, the agent's own orders excluded, net of the taker
fee), minus ``running_inventory_penalty * (position / order size)^2`` each step and
``terminal_inventory_penalty * (position / order size)^2`` at the episode's end.
``sharpe``: the differential Sharpe ratio (Moody & Saffell 2001) of those changes.

Arrival
-------
Agents' decisions leave at a uniformly random time within the step and arrive
``latency_ns`` (+ jitter) later, in the order each agent sent them; within a step every
decision, agents' and background traders', reaches the book in arrival order: a seeded
random order per book, never the agent's row (docs/envs.md, "Arrival").

Episode end
-----------
After ``horizon`` steps every agent of the env is ``terminated`` (time left is part of the
observation); with a replay that runs out of data every agent is ``truncated``. Auto-reset
happens in the same step: the returned observation of an ended env is the first one of its
next episode, and the last one of the ended episode is in :attr:`final_observations` (rows
where ``terminated | truncated``). The market itself runs on. With
``end_of_episode="liquidate"`` (default) the agents' orders are withdrawn and their
positions flattened with market orders at the end of the last step, the cost in that
episode's reward; with ``"carry"`` a position stays, observed (``inventory``) and valued
from the next episode's first step. Position limits always hold for the real account.

Arguments
---------
``BatchedMarketEnv(config=None, *, n_envs=1, n_agents=1, seed=0, source=None)``; ``source``
is a ``HybridReplay`` (``n_envs=1``) or one distinct replay per book (``n_envs *
config.symbols``, book ``symbol * n_envs + market``: with several symbols, a market's
replays run on one clock and start over together).

Version history
---------------
v0: first version.
v1: fair arrival (seeded random order per book, per-agent latency), limits on the real
account, liquidation valuation, ``end_of_episode="liquidate"`` by default, quadratic
inventory penalties, observations scaled to O(1) (``in_flight`` and ``limited`` added,
``cash`` removed), the ``resilient`` background by default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rltrader._env import ActionMode, EnvKernel, OrderOp, copy_actions
from rltrader.core.constants import AGENT_ID_BASE, CANCEL, REDUCE, REPLACE
from rltrader.envs.config import (
    ACTION_MODES,
    ORDER_TIFS,
    REWARDS,
    VALUATIONS,
    EnvConfig,
    observation_names,
)
from rltrader.sim.market import Market, RecordConfig, pareto_multipliers

#: SeedSequence spawn key of the drifts' generator (the build spawns keys 0, 1, 2)
_DRIFT_KEY = 3


def size_classes(config: EnvConfig, n_envs: int, n_agents: int,
                 seed: np.random.SeedSequence) -> np.ndarray:
    """Per-agent size class, shape ``(n_envs * n_agents,)``: heavy-tailed multipliers
    ``min(size_max, U^(-1 / size_alpha))`` (Pareto, minimum 1), or ``config.size_classes``."""
    if config.size_classes is not None:
        if len(config.size_classes) != n_agents:
            raise ValueError(f"EnvConfig.size_classes has {len(config.size_classes)} values "
                             f"for n_agents={n_agents}")
        return np.tile(np.asarray(config.size_classes, dtype=np.float64), n_envs)
    u = np.random.default_rng(seed).random(n_envs * n_agents)
    return pareto_multipliers(u, config.size_alpha, config.size_max)


def write_actions(actions: Any, out: np.ndarray, high: np.ndarray, n_envs: int,
                  n_agents: int) -> None:
    """Validate ``actions`` (vectorised) and copy them into ``out``.

    ``out`` has shape ``(N,)`` (discrete) or ``(N, d)``; ``actions`` may also be shaped
    ``(n_envs, n_agents[, d])``. Values must be whole numbers in ``[0, high)`` per column:
    a float array is accepted only when every value is finite and whole. A float ``out``
    (continuous mode): ``high`` holds the Box's low and high rows, and every value must be
    finite and within them.
    """
    a = np.asarray(actions)
    shape, grouped = out.shape, (n_envs, n_agents) + out.shape[1:]
    if out.dtype.kind == "f":
        write_continuous(a, out, high, shape, grouped)
        return
    if (a.dtype == np.int64 and out.dtype == np.int64 and a.flags.c_contiguous
            and a.shape in (shape, grouped) and copy_actions(a, out, high) < 0):
        return                      # the common case: one compiled pass, no temporaries
    if a.dtype.kind not in "iuf" and a.dtype != np.bool_:
        raise TypeError(f"actions must be integers, got dtype {a.dtype}")
    if a.shape != shape:
        if a.shape != grouped:
            raise ValueError(f"actions must have shape {shape} or {grouped}, got {a.shape}")
        a = a.reshape(shape)
    wide = a.reshape(len(a), -1)
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(wide).all(axis=1))
        if bad.size:
            raise ValueError(f"actions of agent {bad[0]} are NaN or infinite: {a[bad[0]]}")
        bad = np.flatnonzero((wide != np.floor(wide)).any(axis=1))
        if bad.size:
            raise ValueError(f"actions of agent {bad[0]} are not whole numbers: {a[bad[0]]}")
    if wide.min() < 0 or np.any(wide.max(axis=0) >= high):
        bad = np.flatnonzero(((wide < 0) | (wide >= high)).any(axis=1))
        space = f"Discrete({high[0]})" if len(high) == 1 else f"MultiDiscrete({high.tolist()})"
        raise ValueError(f"action of agent {bad[0]} is {a[bad[0]]}, outside {space}")
    np.copyto(out, a, casting="unsafe")


def write_continuous(a: np.ndarray, out: np.ndarray, bounds: np.ndarray,
                     shape: tuple[int, ...], grouped: tuple[int, ...]) -> None:
    """``write_actions`` for a Box: finite values within ``bounds`` (low row, high row)."""
    if a.dtype.kind not in "iuf" or a.dtype == np.bool_:
        raise TypeError(f"actions must be real numbers, got dtype {a.dtype}")
    if a.shape != shape:
        if a.shape != grouped:
            raise ValueError(f"actions must have shape {shape} or {grouped}, got {a.shape}")
        a = a.reshape(shape)
    bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
    if bad.size:
        raise ValueError(f"actions of agent {bad[0]} are NaN or infinite: {a[bad[0]]}")
    bad = np.flatnonzero(((a < bounds[0]) | (a > bounds[1])).any(axis=1))
    if bad.size:
        raise ValueError(f"action of agent {bad[0]} is {a[bad[0]]}, outside the Box "
                         f"[{bounds[0].tolist()}, {bounds[1].tolist()}]")
    np.copyto(out, a)


class BatchedMarketEnv:
    """``n_envs`` markets x ``n_agents`` learning agents stepped by one compiled call
    (module docstring: spaces, rewards, episodes).

    Parameters
    ----------
    config : EnvConfig, optional
        Defaults to ``EnvConfig()``.
    n_envs, n_agents : int
        Markets and learning agents per market.
    seed : int
        Root seed: ``SeedSequence(seed).spawn(3)`` seeds the market, the size classes and the
        arrival times.
    source : HybridReplay or sequence of them, optional
        Real order flow as the background instead of simulated populations: one distinct
        replay per book, ``n_envs * config.symbols`` of them, replay ``symbol * n_envs +
        market`` for that book (copies of a record, or different records), each with
        ``n_agents`` or more agent accounts. A market's symbols step on one clock: its
        replays start at the latest of their first timestamps and, when one runs out of
        record, all of them are truncated and start over together.

    The arrays returned by :meth:`reset` and :meth:`step` are the environment's own
    buffers, overwritten by the next call: copy what you keep.
    """

    def __init__(self, config: EnvConfig | None = None, *, n_envs: int = 1, n_agents: int = 1,
                 seed: int = 0, source: Any = None, _shared: Any = None) -> None:
        self.config = EnvConfig() if config is None else config
        if not isinstance(self.config, EnvConfig):
            raise TypeError(f"config must be an EnvConfig, got {type(self.config).__name__}")
        for name, value in (("n_envs", n_envs), ("n_agents", n_agents)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.sources: list[Any] = ([] if source is None else list(source)
                                   if isinstance(source, (list, tuple)) else [source])
        #: symbols per market; the books are ``symbol * n_envs + market`` (``n_books``)
        self.n_symbols = self.config.symbols
        books = n_envs * self.n_symbols
        if self.sources and (len(self.sources) != books
                             or len({id(x) for x in self.sources}) != books
                             or any(x.n_agents < n_agents for x in self.sources)):
            per = "env" if self.n_symbols == 1 else (
                f"book: n_envs x symbols = {n_envs} x {self.n_symbols}, replay symbol x "
                "n_envs + market")
            raise ValueError(f"replay sources: one distinct replay per {per} (n_envs="
                             f"{n_envs}), each with n_agents >= {n_agents}; got "
                             f"{len(self.sources)} ({len({id(x) for x in self.sources})} "
                             "distinct)")
        self.n_envs, self.n_agents = int(n_envs), int(n_agents)
        self.n_books = self.n_envs * self.n_symbols
        #: the fundamental drifts (EnvConfig.drift_mean / drift_sd)
        self.drifting = bool(self.config.drift_mean or self.config.drift_sd)
        if self.drifting and (self.sources or _shared is not None):
            raise ValueError("EnvConfig.drift_mean / drift_sd move a simulated market's "
                             "fundamental: not for replay sources or a group's view of a "
                             "shared market")
        self.num_agents_total = self.n_books * self.n_agents
        c = self.config
        self.mode = ACTION_MODES[c.action_mode]
        n_quotes, n_sizes = len(c.quote_offsets) + 1, len(c.quote_sizes)
        if self.mode == ActionMode.DISCRETE:
            self.single_action_space: spaces.Space = spaces.Discrete(2 * len(c.limit_offsets) + 4)
            #: per action column, the exclusive upper bound
            self.action_high = np.array([2 * len(c.limit_offsets) + 4], dtype=np.int64)
        elif self.mode == ActionMode.EXECUTION:
            self.single_action_space = spaces.Discrete(1 + 2 * len(c.execution_rates))
            self.action_high = np.array([1 + 2 * len(c.execution_rates)], dtype=np.int64)
        elif self.mode == ActionMode.CONTINUOUS:
            m, z = c.continuous_max_offset, c.continuous_max_size
            bounds = np.array([[-m, -m, 0.0, 0.0], [m, m, z, z]], dtype=np.float32)
            #: continuous mode: the Box's low and high bounds, shape (2, 4) (the float32
            #: values of the space, so that its own bounds and clipped actions are in it)
            self.action_high = bounds.astype(np.float64)
            self.single_action_space = spaces.Box(bounds[0], bounds[1], dtype=np.float32)
        elif self.mode == ActionMode.ORDER:
            self.action_high = np.array([int(OrderOp.N_ORDER_OPS), len(c.order_offsets),
                                         n_sizes, ORDER_TIFS, c.max_orders], dtype=np.int64)
            self.single_action_space = spaces.MultiDiscrete(self.action_high.tolist())
        else:
            self.single_action_space = spaces.MultiDiscrete([n_quotes, n_quotes, n_sizes])
            self.action_high = np.array([n_quotes, n_quotes, n_sizes], dtype=np.int64)
        self.obs_dim = len(observation_names(c.depth, c.action_mode, c.max_orders))
        big = np.finfo(np.float32).max       # finite bounds: every float32 value fits
        self.single_observation_space = spaces.Box(-big, big, (self.obs_dim,), np.float32)
        n = self.num_agents_total
        shape = ((n,) if self.mode in (ActionMode.DISCRETE, ActionMode.EXECUTION)
                 else (n, self.action_high.shape[-1]))
        self.actions = np.zeros(shape, dtype=np.float64 if self.mode == ActionMode.CONTINUOUS
                                else np.int64)
        self.observations = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.final_observations = np.zeros((n, self.obs_dim), dtype=np.float32)
        #: agent orders a replay refused because they arrived in a trading halt
        self.refused_in_halt = 0
        self.seed = seed
        #: (market, first owner, id base): a group's view of a market it shares
        #: (GroupedMarketEnv)
        self._shared = _shared
        self._build(seed)

    @property
    def source(self) -> Any:
        """The first replay source (None for a simulated market)."""
        return self.sources[0] if self.sources else None

    # ---- construction -----------------------------------------------------------------

    def _build(self, seed: int) -> None:
        """Fresh markets (or rewound replays) and kernels, warmed up, episodes begun: one
        kernel over the simulated market's books, or one per replay (its rows of the
        buffers)."""
        c = self.config
        market_seed, size_seed, arrival_seed = np.random.SeedSequence(seed).spawn(3)
        for buffer in (self.observations, self.rewards, self.terminated, self.truncated,
                       self.final_observations):
            buffer[...] = 0
        # an agent (market, i) has one row per symbol, with the same size class in each
        sizes = np.tile(size_classes(c, self.n_envs, self.n_agents, size_seed),
                        self.n_symbols)
        qty = np.maximum(1, np.rint(sizes * c.base_qty)).astype(np.int64)
        limit = np.maximum(qty, np.rint(sizes * c.base_position_limit).astype(np.int64))
        #: per agent: size class, lots per order, position limit (lots), latency (ns)
        self.size_class, self.order_qty, self.position_limit = sizes, qty, limit
        latency = np.atleast_1d(np.asarray(c.latency_ns, dtype=np.int64))
        if latency.shape[0] not in (1, self.n_agents):
            raise ValueError(f"EnvConfig.latency_ns has {latency.shape[0]} values for "
                             f"n_agents={self.n_agents}")
        self.latency_ns = np.tile(np.broadcast_to(latency, (self.n_agents,)), self.n_books)
        self.market: Market | None = None
        if self._shared is not None:        # a group of a GroupedMarketEnv: its market
            self.market, first_owner, id_base = self._shared
            mc = self.market.config
            self.kernels = [self._kernel(self.market.books, slice(None), self.n_books,
                                         first_owner, mc.dt_ns, arrival_seed,
                                         (mc.open_ns, mc.close_ns - mc.open_ns), id_base)]
            self.kernel = self.kernels[0]
            return                          # warmed up and begun by the grouped env
        if not self.sources:
            mc = c.market_config()
            names = (tuple(mc.symbols[:self.n_symbols]) if len(mc.symbols) >= self.n_symbols
                     else tuple(f"{mc.symbols[0]}{k}" for k in range(self.n_symbols)))
            mc = mc.replace(copies=self.n_envs, symbols=names,
                            extra_owners=self.n_agents, record=RecordConfig())
            self.market = Market(mc, seed=int(market_seed.generate_state(1)[0]))
            self.market.books.set_fees(c.maker_fee_ppm, c.taker_fee_ppm)
            mc = self.market.config
            self.kernels = [self._kernel(self.market.books, slice(None), self.n_books,
                                         self.market.n_traders, mc.dt_ns, arrival_seed,
                                         (mc.open_ns, mc.close_ns - mc.open_ns))]
            if self.drifting:
                # a stream apart from the three children above: draws leave them unchanged
                self._drift_rng = np.random.default_rng(
                    np.random.SeedSequence(seed, spawn_key=(_DRIFT_KEY,)))
                #: each book's drift of the fundamental in this episode, ticks per step
                self.drift = np.zeros(self.n_books)
                self._draw_drift(np.ones(self.n_books, dtype=bool))
        else:
            # each replay's simulated traders (if any) draw their own days
            for replay, own in zip(self.sources, market_seed.spawn(len(self.sources)),
                                   strict=True):
                replay.reset(seed=int(own.generate_state(1)[0]))
            self.kernels = [
                self._kernel(replay.books, slice(j * self.n_agents, (j + 1) * self.n_agents),
                             1, 0, c.replay_step_ns, lane_seed)
                for j, (replay, lane_seed) in enumerate(
                    zip(self.sources, arrival_seed.spawn(len(self.sources)), strict=True))]
        #: the kernel of the simulated market (of the first replay)
        self.kernel = self.kernels[0]
        if self.sources:
            for m in range(self.n_envs):
                self._align(m)
        for j in range(len(self.kernels)):
            self._warm_up(j)

    def _draw_drift(self, books: np.ndarray) -> None:
        """New drifts of ``books`` (a mask), ticks per step, for their new episodes."""
        c = self.config
        per_step = self.market.config.dt_ns / 1e9
        self.drift[books] = per_step * self._drift_rng.normal(c.drift_mean, c.drift_sd,
                                                              int(books.sum()))

    def _lanes(self, m: int) -> range:
        """The replay lanes (books) of market ``m``: ``symbol * n_envs + m``."""
        return range(m, self.n_books, self.n_envs)

    def _align(self, m: int) -> None:
        """Put market ``m``'s replays on one clock: each replays its record up to the
        latest of their current timestamps (one symbol: nothing to do)."""
        if self.n_symbols == 1:
            return
        start = max(self.sources[j].timestamp for j in self._lanes(m))
        for j in self._lanes(m):
            if self.sources[j].timestamp < start:
                self.sources[j].step(until_ts=start)

    def _kernel(self, books: Any, rows: slice, n_envs: int, first_owner: int, dt_ns: int,
                seed: np.random.SeedSequence, day: tuple[int, int] = (0, 0),
                id_base: int = AGENT_ID_BASE) -> EnvKernel:
        """The kernel of ``n_envs`` books of ``books`` over rows ``rows`` of the buffers,
        its agents owners ``first_owner`` on, steps of ``dt_ns``; ``day``: the session's
        open and length (ns; 0: no ``time_of_day``)."""
        c = self.config
        return EnvKernel(
            books, self.order_qty[rows], self.position_limit[rows], self.size_class[rows],
            self.latency_ns[rows], self.actions[rows], self.observations[rows],
            self.rewards[rows], self.terminated[rows], self.truncated[rows],
            self.final_observations[rows],
            n_envs=n_envs, n_agents=self.n_agents, first_owner=first_owner, depth=c.depth,
            n_slots=c.max_orders, action_mode=int(self.mode),
            reward_kind=int(REWARDS[c.reward]), valuation=int(VALUATIONS[c.valuation]),
            liquidate=c.end_of_episode == "liquidate", return_lag=c.return_lag,
            scan_ticks=c.scan_ticks, horizon=c.horizon, id_base=id_base, dt_ns=dt_ns,
            jitter_ns=c.latency_jitter_ns, seed=seed, qty_scale=c.qty_scale,
            price_scale=c.price_scale, pnl_scale=c.pnl_scale,
            running_penalty=c.running_inventory_penalty,
            terminal_penalty=c.terminal_inventory_penalty, sharpe_eta=c.sharpe_eta,
            flow_alpha=c.flow_alpha, limit_offsets=c.limit_offsets,
            quote_offsets=c.quote_offsets, quote_sizes=c.quote_sizes,
            order_offsets=c.order_offsets, rates=c.execution_rates,
            parent_lots=np.maximum(1, np.rint(self.size_class[rows] * c.base_qty
                                              * c.execution_size)).astype(np.int64),
            day_open_ns=day[0], day_ns=day[1],
            mark_parent=c.execution_reward == "marked")

    def _warm_up(self, j: int) -> None:
        """Background-only steps of lane ``j``; the last ones also fill the mid history
        (returns); then new episodes begin."""
        warmup = self.config.warmup_steps
        tracked = min(warmup, self.config.return_lag + 1)
        self._background(j, warmup - tracked)
        for _ in range(tracked):
            self._background(j, 1)
            self.kernels[j].advance()
        self._begin(j)

    def _background(self, j: int, n_steps: int) -> None:
        if self.market is not None:
            self.market.flow.run(n_steps)
        elif n_steps:
            replay = self.sources[j]
            replay.step(until_ts=replay.timestamp + n_steps * self.config.replay_step_ns)

    def _begin(self, j: int) -> None:
        self._submit(j, self.kernels[j].cancel_orders(self._timestamp(j), True))
        self.kernels[j].begin(True)

    # ---- the market clock and the data source ----------------------------------------

    def _timestamp(self, j: int = 0) -> int:
        if self.market is not None:
            return self.market.config.open_ns + self.market.flow.step * self.market.config.dt_ns
        return int(self.sources[j].timestamp)

    def _submit(self, j: int, n: int) -> None:
        if not n:
            return
        if self.market is not None:
            self.kernels[j].submit(n)
        else:
            self.sources[j].step(n_messages=0, agent_messages=self._to_replay(j, n))

    def _to_replay(self, j: int, n: int) -> np.ndarray:
        """The kernel's ``messages[:n]`` for replay ``j``. In a trading halt the exchange
        takes cancels only: a new order sent into a halt is refused (the kernel then sees
        it as an order that did not rest, or an IOC that did not fill) and a replace
        cancels its old order, its new one refused. (Held to the resume instead, as
        ``HybridReplay`` holds a direct caller's orders, they would arrive after the
        kernel had counted them as arrived: past the position limit, untracked.)
        :attr:`refused_in_halt` counts the refusals."""
        messages = self.kernels[j].messages[:n].copy()
        halted = self.sources[j].halted(messages["timestamp"])
        if not halted.any():
            return messages
        replace = halted & (messages["op"] == REPLACE)
        messages["op"][replace] = CANCEL
        messages["new_order_id"][replace] = 0
        refused = halted & ~np.isin(messages["op"], (CANCEL, REDUCE))
        self.refused_in_halt += int(refused.sum() + replace.sum())
        return messages[~refused]

    def _replay_step(self, m: int) -> None:
        """The step's phases of market ``m`` with its replays in place of the core call
        and the flow; when one of them runs out of record, every one of the market's
        lanes is truncated and starts over (its symbols stay on one clock)."""
        lanes = self._lanes(m)
        for j in lanes:
            k, replay, ts = self.kernels[j], self.sources[j], self._timestamp(j)
            n = k.act(ts)
            replay.step(until_ts=ts + self.config.replay_step_ns,
                        agent_messages=self._to_replay(j, n))
            k.advance()
            self._submit(j, k.settle(self._timestamp(j)))
        if any(self.sources[j].done for j in lanes):
            for j in lanes:
                self.kernels[j].observe(True)
                self.sources[j].reset()
                self.kernels[j].rebind(self.sources[j].books)
            self._align(m)
            for j in lanes:
                self._warm_up(j)
            return
        for j in lanes:
            k = self.kernels[j]
            if k.observe(False):
                self._submit(j, k.cancel_orders(self._timestamp(j)))
                k.begin()

    # ---- public API -------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start new episodes everywhere; ``seed`` rebuilds the market from that seed
        (bit-identical runs), ``None`` keeps the market running. Returns the observations
        ``(num_agents_total, obs_dim)`` (the env's buffer)."""
        self._refuse_if_shared("reset")
        if seed is not None:
            self.seed = seed
            self._build(seed)
        else:
            for j in range(len(self.kernels)):
                self._begin(j)
            if self.drifting:
                self._draw_drift(np.ones(self.n_books, dtype=bool))
        self.terminated[:] = False
        self.truncated[:] = False
        self.rewards[:] = 0.0
        return self.observations

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every market one step.

        Parameters
        ----------
        actions : array of int
            ``(num_agents_total,)`` or ``(n_envs, n_agents)`` (discrete);
            ``(num_agents_total, 3)`` or ``(n_envs, n_agents, 3)`` (market making).

        Returns
        -------
        observations, rewards, terminated, truncated
            The env's buffers (float32, float32, bool, bool); ended envs were reset in
            this step and their final observations are in :attr:`final_observations`.
        """
        self._refuse_if_shared("step")
        write_actions(actions, self.actions, self.action_high, self.n_books, self.n_agents)
        return self._step_written()

    def _refuse_if_shared(self, what: str) -> None:
        """A group's view steps and resets only with its market (its episodes stay in
        step with the other groups', whose liquidation and arrival order it shares)."""
        if self._shared is not None:
            raise RuntimeError(f"{what}() on a group's view: {what} the GroupedMarketEnv "
                               "(every group's episodes run in step)")

    def _step_written(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`step` with the actions already in :attr:`actions`, validated (adapters
        that assemble them with :func:`write_actions` call this: one check per step)."""
        if self.market is not None:
            if self.drifting:
                # level and long-run mean move together: the deviation, which the
                # reversion acts on, is unchanged, so the step adds exactly the drift
                flow = self.market.flow
                np.add(flow.fundamental, self.drift, out=flow.fundamental)
                np.add(flow.r_bar, self.drift, out=flow.r_bar)
            self.kernel.step(self._timestamp(), self.market.flow)
            if self.drifting and self.terminated.any():
                self._draw_drift(self.terminated.reshape(self.n_books, self.n_agents)
                                 .any(1))
        else:
            for m in range(self.n_envs):
                self._replay_step(m)
        return self.observations, self.rewards, self.terminated, self.truncated

    @property
    def episode_step(self) -> np.ndarray:
        """Steps into the current episode, per env."""
        return np.concatenate([k.book_arrays["episode_step"] for k in self.kernels])

    def accounts(self) -> np.ndarray:
        """The agents' core accounts (position, cash, volume, fees since the market was
        built), shape ``(n_books, n_agents)`` of ACCOUNT_DTYPE (a copy; ``n_books =
        n_envs`` with one symbol)."""
        if self.market is not None:
            first = self.market.n_traders if self._shared is None else self._shared[1]
            return self.market.books.account_array[:, first: first + self.n_agents].copy()
        return np.concatenate([replay.books.account_array[:1, : self.n_agents]
                               for replay in self.sources])
