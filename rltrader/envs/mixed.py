"""Several markets as one batched env for a trainer, and sessions that restart at the open.

``MixedMarketEnv(base, lanes, seed=..., restart_episodes=None)`` stacks *lanes*, each a
:class:`~rltrader.envs.BatchedMarketEnv` of its own market: a preset (``"realistic"``,
``"resilient"``, ``"thin"`` ...) or a hybrid replay of a real record of
:data:`REAL_RECORDS`. Agent ``i`` of market ``e`` of lane ``k`` is row ``(offset_k + e) x
n_agents + i``, lanes in the order given. Every lane shares ``base`` (the task's
``EnvConfig``: action mode, horizon, observation) except its ``market`` and the record's
unit overrides, so the observation and action spaces are the same and one policy acts
for every row. The env has the batched env's protocol (``reset(seed)``, ``step``, its
buffers, ``final_observations``, ``episode_step``), which is what
:class:`~rltrader.training.ppo.trainer.FastPPO` needs.

**Restarts at the open** (``restart_episodes=(low, high)``). A simulated market runs on
after an episode: its next episode starts where the last one ended, so a market built once
shows the session's first minutes only once. With ``restart_episodes`` each simulated
lane is rebuilt from a fresh seed (back to the open, after the preset's warm-up, as
:func:`rltrader.training.evaluate.evaluate` starts its markets) after a number of
episodes drawn uniformly from ``[low, high]``, and again after each new draw. The draws
and the fresh seeds come from the lane's own ``SeedSequence`` child of ``seed``, so a
seed gives the same run; the lanes' days are drawn independently, so lanes restart at
different times. A replay lane needs none: it restarts at the record's first message
when the record runs out. The step in which a lane restarts returns, for its rows,
the ended episode's rewards and ``terminated`` and its final observations (as an
auto-reset does) and the first observations of the new market.

**Rewards scaled per lane** (``reward_scaling="lane"``). Lanes of different markets can
pay on scales orders of magnitude apart (in ticks per lot, passive TWAP makes about +67 an
episode on the Binance perpetual's replay and -1 to -3 on the presets), and a trainer that
scales every row by one running standard deviation lets the widest lane carry the
gradient. With ``"lane"`` each lane's rewards are divided by the running root mean square
of its own rows' episode-to-date returns (undiscounted, summed from each episode's start;
over every row and step of the lane so far, this step's included), so every lane's
returns are of size 1. The root mean square, not the standard deviation: rows that move
together (replays of one record from its start) have a standard deviation near zero at
the open, and dividing by it blows their first rewards up; over the root mean square an
episode-to-date return is at most ``sqrt(n)``, ``n`` the lane's rows x steps so far, and a
reward (the difference of two returns) at most ``2 sqrt(n)``. The divisor of each lane is
in ``reward_scales``, the unscaled rewards in ``raw_rewards``; the statistics start afresh
with ``reset(seed)``, so a seed gives the same scaled rewards. ``None`` (the default)
leaves the rewards as the lanes give them (``raw_rewards`` is ``rewards`` then).

**Lanes of changed markets** (``Lane(..., sim=..., env=...)``, opt-in). ``sim`` changes the
preset's :class:`~rltrader.sim.config.MarketConfig` (a field, or a table of a population's
fields: ``{"fundamental": {"sigma": 15.0}, "makers": {"half_spread": 8.0}}``), ``env`` the
lane's fees and latency (:data:`LANE_ENV_FIELDS`: ``{"maker_fee_ppm": 500}``), so that a
mix can hold markets the presets do not (spreads and fees of many ticks). The rest of the
``EnvConfig`` (observations, actions, rewards) is ``base``'s in every lane: one policy
reads them all. A lane
without them is the preset under ``base``, as before. A real record takes no ``sim``.

Without lanes of several markets and without ``restart_episodes`` a trainer should use
:class:`~rltrader.envs.BatchedMarketEnv` itself: this env is opt-in and changes nothing
of it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.core.checks import is_int
from rltrader.envs.batched import BatchedMarketEnv
from rltrader.envs.config import EnvConfig
from rltrader.sim.config import MarketConfig, preset

#: Real records a lane may replay: the sample file(s) (``crypto/...``, looked up in
#: ``$RLTRADER_DATA``, the package's samples and the repository's ``tests/data``), the
#: reader, and the ``EnvConfig`` fields that put its lots on the scale of an order size.
REAL_RECORDS: dict[str, dict[str, Any]] = {
    "binance_perp": {
        "files": ("crypto/binance/hftbacktest_binance_usdm_btcusdt_20240808_raw_ws.gz",),
        "reader": "binance", "env": {}},
    "binance_spot": {
        "files": ("crypto/binance/hftbacktest_binance_spot_btcusdt_20240808_raw_ws.gz",),
        "reader": "binance", "env": {}},
    # Coinbase BTC-USD lots are satoshis: an order size of 0.001 BTC
    "coinbase": {
        "files": ("crypto/coinbase/coinbase_gdax_btcusd_2018-07-13_l3_snapshot_begin.json.gz",
                  "crypto/coinbase/coinbase_gdax_btcusd_2018-07-13_l3_full_channel_messages"
                  ".json.gz"),
        "reader": "coinbase",
        "env": {"base_qty": 100_000, "base_position_limit": 2_000_000, "qty_scale": 1e6}},
}
#: Markets no training lane may use: the evaluation's real data (``rltrader evaluate
#: --markets lobster``, the LOBSTER AAPL hour) stays held out.
HELD_OUT = frozenset({"lobster"})
#: ``MixedConfig.reward_scaling`` values: the lanes' rewards as given, or scaled per lane
REWARD_SCALINGS = (None, "lane")


#: ``EnvConfig`` fields a lane's ``env`` may change: what a venue charges and how long its
#: orders take, never what the shared policy's observations, actions or rewards mean (a
#: lane's market is ``market`` and ``sim``)
LANE_ENV_FIELDS = frozenset({"maker_fee_ppm", "taker_fee_ppm", "latency_ns",
                             "latency_jitter_ns"})


def changed_market(market: MarketConfig, changes: Mapping[str, Any]) -> MarketConfig:
    """``market`` with ``changes``: a field's new value, or for a population (a nested
    dataclass: ``fundamental``, ``makers`` ...) a table of its fields' new values; every
    value is validated again, an unknown field is a ``ValueError``."""
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(market)}
    for name, value in changes.items():
        if name not in names:
            raise ValueError(f"sim: MarketConfig has no field {name!r}")
        current = getattr(market, name)
        if isinstance(value, Mapping):
            if not dataclasses.is_dataclass(current):
                raise ValueError(f"sim: MarketConfig.{name} is not a table, got {dict(value)!r}")
            unknown = sorted(set(value) - {f.name for f in dataclasses.fields(current)})
            if unknown:
                raise ValueError(f"sim: {type(current).__name__} ({name}) has no field(s) "
                                 f"{unknown}")
            value = dataclasses.replace(current, **value)
        values[name] = value
    return market.replace(**values)


@dataclass(frozen=True)
class Lane:
    """``n_envs`` markets of ``market`` (a preset name or a :data:`REAL_RECORDS` name);
    ``sim`` and ``env``: changes to the preset and to the lane's ``EnvConfig`` (module
    docstring), ``None`` for none."""

    market: str
    n_envs: int
    sim: Mapping[str, Any] | None = None
    env: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.market, str) or not self.market:
            raise ValueError(f"Lane.market must be a market's name, got {self.market!r}")
        if self.market in HELD_OUT:
            raise ValueError(f"Lane.market {self.market!r} is held out for evaluation; "
                             "train on presets or on " + ", ".join(sorted(REAL_RECORDS)))
        if not is_int(self.n_envs) or self.n_envs < 1:
            raise ValueError(f"Lane.n_envs must be an int >= 1, got {self.n_envs!r}")
        for name in ("sim", "env"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Mapping) or not value):
                raise ValueError(f"Lane.{name} must be None or a non-empty table of fields, "
                                 f"got {value!r}")
            if value is not None:           # the lane's own copy, checked once
                object.__setattr__(self, name, copy.deepcopy(dict(value)))
        if self.sim is not None:
            if self.real:
                raise ValueError(f"Lane {self.market!r}: a real record takes no sim changes")
            self.market_config()            # unknown or invalid fields raise here
        if self.env is not None and set(self.env) - LANE_ENV_FIELDS:
            raise ValueError(f"Lane.env may change only {sorted(LANE_ENV_FIELDS)}, got "
                             f"{sorted(set(self.env) - LANE_ENV_FIELDS)} (the lane's market "
                             "is market and sim; the rest is the policy's, shared by every "
                             "lane)")

    @property
    def real(self) -> bool:
        return self.market in REAL_RECORDS

    def market_config(self) -> str | MarketConfig:
        """The lane's market: the preset's name, or its ``MarketConfig`` with ``sim``."""
        if self.sim is None:
            return self.market
        return changed_market(preset(self.market), self.sim)


@dataclass(frozen=True)
class MixedConfig:
    """What a :class:`MixedMarketEnv` is built from (saved with a checkpoint)."""

    base: EnvConfig
    lanes: tuple[Lane, ...]
    restart_episodes: tuple[int, int] | None = None
    reward_scaling: str | None = None
    n_envs: int = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.base, EnvConfig):
            raise TypeError(f"base must be an EnvConfig, got {type(self.base).__name__}")
        if (isinstance(self.lanes, (str, bytes)) or not isinstance(self.lanes, Sequence)
                or not self.lanes or not all(isinstance(x, Lane) for x in self.lanes)):
            raise ValueError(f"lanes must be a non-empty sequence of Lane, got {self.lanes!r}")
        object.__setattr__(self, "lanes", tuple(self.lanes))
        r = self.restart_episodes
        if r is not None:
            if (isinstance(r, (str, bytes)) or not isinstance(r, Sequence) or len(r) != 2
                    or not all(is_int(x) for x in r) or not 1 <= r[0] <= r[1]):
                raise ValueError("restart_episodes must be None or (low, high), ints with "
                                 f"1 <= low <= high, got {r!r}")
            object.__setattr__(self, "restart_episodes", (int(r[0]), int(r[1])))
        if self.reward_scaling not in REWARD_SCALINGS:
            raise ValueError(f"reward_scaling must be one of {list(REWARD_SCALINGS)}, got "
                             f"{self.reward_scaling!r}")
        if self.base.symbols != 1:
            raise ValueError("MixedMarketEnv: one symbol per market (EnvConfig.symbols=1)")
        object.__setattr__(self, "n_envs", sum(x.n_envs for x in self.lanes))
        for lane in self.lanes:
            if lane.env is not None:
                try:
                    self.lane_config(lane)
                except (TypeError, ValueError) as error:
                    raise ValueError(f"lane {lane.market!r}: env {dict(lane.env)!r}: "
                                     f"{error}") from None

    def lane_config(self, lane: Lane) -> EnvConfig:
        """The lane's ``EnvConfig``: ``base`` with its market (a real record's unit
        fields instead, the market left as it is: the record is the background), then the
        lane's ``env`` changes."""
        if lane.real:
            config = self.base.replace(**REAL_RECORDS[lane.market]["env"])
        else:
            config = self.base.replace(market=lane.market_config())
        return config if lane.env is None else config.replace(**lane.env)


def find_sample(name: str) -> Path:
    """A sample file (``crypto/...``): ``$RLTRADER_DATA``, the package's samples, then the
    repository's ``tests/data``; ``FileNotFoundError`` names every place tried."""
    from rltrader.data.samples import sample_roots

    roots = [*sample_roots(), Path(__file__).resolve().parents[2] / "tests" / "data"]
    for root in roots:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"sample {name} not found in " + ", ".join(map(str, roots)))


@functools.lru_cache(maxsize=4)
def _feed(name: str) -> Any:
    """The record's feed, read once per process."""
    record = REAL_RECORDS[name]
    paths = [find_sample(f) for f in record["files"]]
    if record["reader"] == "binance":
        from rltrader.data import binance

        return binance.read_feed(paths)
    from rltrader.data import coinbase

    return coinbase.read_feed(paths[0], paths[1:])


def real_sources(name: str, n_envs: int, n_agents: int) -> list[Any]:
    """``n_envs`` hybrid replays of the real record ``name`` (:data:`REAL_RECORDS`)."""
    if name not in REAL_RECORDS:
        raise ValueError(f"unknown real record {name!r}; known: {', '.join(sorted(REAL_RECORDS))}")
    from rltrader.data.hybrid import HybridReplay, feed_messages

    record = REAL_RECORDS[name]
    given = feed_messages(_feed(name), trades=record["reader"] == "binance")
    return [HybridReplay(given.messages, n_agents, halts=given.halts, window=1 << 18)
            for _ in range(n_envs)]


#: added to a lane's mean square return before its square root (the trainer's epsilon)
_EPSILON = 1e-8


class MixedMarketEnv:
    """Lanes of markets stepped as one batched env (module docstring).

    Parameters
    ----------
    config : MixedConfig
    n_agents : int
        Learners per market.
    seed : int
        Root seed: ``SeedSequence(seed).spawn(len(lanes))`` gives each lane its child, which
        seeds its first market, its day lengths and its restarts.
    """

    def __init__(self, config: MixedConfig, *, n_agents: int = 1, seed: int = 0) -> None:
        if not isinstance(config, MixedConfig):
            raise TypeError(f"config must be a MixedConfig, got {type(config).__name__}")
        if not is_int(n_agents) or n_agents < 1:
            raise ValueError(f"n_agents must be an int >= 1, got {n_agents!r}")
        self.config = config
        self.n_agents = int(n_agents)
        self.n_envs = config.n_envs
        self.num_agents_total = self.n_envs * self.n_agents
        self.lanes: list[BatchedMarketEnv] = []
        self.rows: list[slice] = []
        start = 0
        for lane in config.lanes:
            stop = start + lane.n_envs * self.n_agents
            self.rows.append(slice(start, stop))
            start = stop
        self._build(seed)
        first = self.lanes[0]
        self.single_observation_space = first.single_observation_space
        self.single_action_space = first.single_action_space
        for lane, env in zip(config.lanes, self.lanes, strict=True):
            if (env.single_observation_space.shape != self.single_observation_space.shape
                    or env.single_action_space != self.single_action_space):
                raise ValueError(f"lane {lane.market!r}: spaces differ from the first lane's")
        n = self.num_agents_total
        obs_dim = self.single_observation_space.shape[0]
        self.observations = np.zeros((n, obs_dim), dtype=np.float32)
        self.final_observations = np.zeros((n, obs_dim), dtype=np.float32)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self._scaled = config.reward_scaling == "lane"
        #: the lanes' rewards before scaling (``rewards`` itself without reward scaling)
        self.raw_rewards = np.zeros(n, dtype=np.float32) if self._scaled else self.rewards
        #: each lane's reward divisor (1 without reward scaling)
        self.reward_scales = np.ones(len(self.lanes))
        self._returns = np.zeros(n)                 # each row's episode-to-date raw return
        self._return_stats = np.zeros((len(self.lanes), 2))   # samples, sum of squares
        self._gather()
        #: restarts so far, per lane
        self.restarts = [0] * len(self.lanes)

    def _build(self, seed: int) -> None:
        self.seed = int(seed)
        children = np.random.SeedSequence(self.seed).spawn(len(self.config.lanes))
        self._rngs = [np.random.default_rng(child) for child in children]
        self.lanes = []
        self._left: list[int | None] = []       # episodes left in each lane's day
        for lane, rng in zip(self.config.lanes, self._rngs, strict=True):
            env_config = self.config.lane_config(lane)
            first_seed = int(rng.integers(2**63))
            source = (real_sources(lane.market, lane.n_envs, self.n_agents) if lane.real
                      else None)
            self.lanes.append(BatchedMarketEnv(env_config, n_envs=lane.n_envs,
                                               n_agents=self.n_agents, seed=first_seed,
                                               source=source))
            self._left.append(self._day(rng) if not lane.real else None)

    def _day(self, rng: np.random.Generator) -> int | None:
        r = self.config.restart_episodes
        return None if r is None else int(rng.integers(r[0], r[1] + 1))

    def _gather(self) -> None:
        for env, rows in zip(self.lanes, self.rows, strict=True):
            self.observations[rows] = env.observations

    def reset(self, seed: int | None = None) -> np.ndarray:
        """``seed``: rebuild every lane from it (bit-identical runs); ``None``: new
        episodes in the running markets. Returns the observations (the env's buffer)."""
        if seed is not None:
            self._build(seed)
            self.restarts = [0] * len(self.lanes)
            self._return_stats[:] = 0.0
            self.reward_scales[:] = 1.0
        else:
            for env in self.lanes:
                env.reset()
        self._gather()
        self._returns[:] = 0.0
        self.raw_rewards[:] = 0.0
        self.rewards[:] = 0.0
        self.terminated[:] = False
        self.truncated[:] = False
        return self.observations

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every lane with its rows of ``actions`` (``(num_agents_total, ...)``);
        returns the env's buffers (observations, rewards, terminated, truncated)."""
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_agents_total,):
            raise ValueError(f"actions must have {self.num_agents_total} rows, got shape "
                             f"{actions.shape}")
        for k, (env, rows) in enumerate(zip(self.lanes, self.rows, strict=True)):
            obs, rewards, terminated, truncated = env.step(actions[rows])
            if self._scaled:
                self.raw_rewards[rows] = rewards
                self._scale(k, rows, rewards, terminated | truncated)
            else:
                self.rewards[rows] = rewards
            self.terminated[rows] = terminated
            self.truncated[rows] = truncated
            if terminated.any() or truncated.any():
                self.final_observations[rows] = env.final_observations
            if self._left[k] is not None and terminated.any():
                self._left[k] -= 1
                if self._left[k] == 0:
                    self._restart(k)
            self.observations[rows] = env.observations
        return self.observations, self.rewards, self.terminated, self.truncated

    def _scale(self, k: int, rows: slice, rewards: np.ndarray, done: np.ndarray) -> None:
        """Lane ``k``'s rewards over the running root mean square of its rows'
        episode-to-date returns, this step's included (module docstring), into its rows
        of ``rewards``."""
        returns = self._returns[rows]               # a view: the running returns
        returns += rewards
        stats = self._return_stats[k]
        stats[0] += returns.size
        stats[1] += float(np.dot(returns, returns))
        scale = float(np.sqrt(stats[1] / stats[0] + _EPSILON))
        self.reward_scales[k] = scale
        returns[done] = 0.0
        np.divide(rewards, scale, out=self.rewards[rows])

    def _restart(self, k: int) -> None:
        """Lane ``k`` back to the open: a market built from a fresh seed, a new day."""
        rng = self._rngs[k]
        self.lanes[k].reset(seed=int(rng.integers(2**63)))
        self._left[k] = self._day(rng)
        self.restarts[k] += 1

    @property
    def episode_step(self) -> np.ndarray:
        """Steps into the current episode, per market."""
        return np.concatenate([env.episode_step for env in self.lanes])

    def close(self) -> None:
        """Nothing to close (the lanes run in this process)."""


def lanes_from(entries: Sequence[dict[str, Any]]) -> tuple[Lane, ...]:
    """Lanes from a config's ``[[markets]]`` tables (``market``, ``n_envs``, optional
    ``lanes``: split the markets into that many lanes, each with its own restarts;
    optional ``sim`` and ``env``: the lanes' changes, :class:`Lane`)."""
    out: list[Lane] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"a [[markets]] entry must be a table, got {entry!r}")
        unknown = sorted(set(entry) - {"market", "n_envs", "lanes", "sim", "env"})
        if unknown:
            raise ValueError(f"[[markets]]: unknown keys {unknown} (known: market, n_envs, "
                             "lanes, sim, env)")
        market, n_envs, split = entry.get("market"), entry.get("n_envs"), entry.get("lanes", 1)
        if not is_int(split) or split < 1:
            raise ValueError(f"[[markets]] lanes must be an int >= 1, got {split!r}")
        if not is_int(n_envs) or n_envs < split:
            raise ValueError(f"[[markets]] n_envs must be an int >= lanes ({split}), got "
                             f"{n_envs!r}")
        sizes = [n_envs // split + (1 if i < n_envs % split else 0) for i in range(split)]
        out += [Lane(market, size, entry.get("sim"), entry.get("env")) for size in sizes]
    return tuple(out)


__all__ = ["HELD_OUT", "REAL_RECORDS", "REWARD_SCALINGS", "Lane", "MixedConfig",
           "MixedMarketEnv", "changed_market", "lanes_from", "real_sources"]
