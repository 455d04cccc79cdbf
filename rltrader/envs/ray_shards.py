"""Markets sharded over Ray actors: the batched env's interface on one machine or a cluster.

:class:`RayMarketEnv` splits ``n_envs`` markets into ``n_workers`` contiguous shards, as
:class:`~rltrader.envs.shards.ShardedMarketEnv` does, but each shard is a Ray actor (a
process on any node of a Ray cluster) that owns a whole :class:`BatchedMarketEnv` and steps
it in place. The driver (the learner) keeps one set of ``(n_envs * n_agents, ...)`` buffers
as the single-process env does (agent ``i`` of market ``e`` is row ``e * n_agents + i``).
A step validates the actions in the driver (:func:`write_actions`), sends each actor its
slice (integer actions as the smallest integer type that holds them), and copies every
actor's answer (observations, rewards, terminated, truncated, and the final observations
when one of its markets ended) into the driver's buffers: numpy arrays through Ray's
object store (answers under 100 KiB ride inline in the reply).

Shard ``w`` seeds its markets from ``SeedSequence(seed).spawn(n_workers)[w]``, exactly as a
``ShardedMarketEnv`` worker does: with the same ``n_envs``, ``n_agents``, ``seed`` and
``n_workers`` the two give bit-identical observations, rewards and flags, and each shard
equals a :class:`BatchedMarketEnv` over its markets with its seed (tests/test_envs_ray.py).

:meth:`RayMarketEnv.step_async` / :meth:`RayMarketEnv.step_wait` split a step so that the
driver can work while the actors step. Ray must be installed (the ``ray`` extra); the env
connects to the running Ray instance, or starts a local one (``ray.init()``) when there is
none. docs/scale.md has the cluster deployment and the measured scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrader.core.checks import is_int
from rltrader.envs.batched import BatchedMarketEnv, write_actions
from rltrader.envs.config import EnvConfig
from rltrader.envs.shards import shard_arguments, shard_seeds, shard_sizes

#: the buffers an actor answers with, in order
_FIELDS = ("observations", "rewards", "terminated", "truncated", "final_observations")


class MarketShard:
    """One shard: a :class:`BatchedMarketEnv` stepped in place (the body of a Ray actor).

    Every method answers with the env's buffers (``_FIELDS``; the final observations only
    when a market of the shard ended, else ``None``). Ray serialises the answer before the
    actor runs its next call, so the buffers are not copied here.
    """

    def __init__(self, config: EnvConfig, n_envs: int, n_agents: int, seed: int) -> None:
        self.env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed)

    def _answer(self, final: bool) -> tuple[Any, ...]:
        env = self.env
        ended = final or bool(env.terminated.any() or env.truncated.any())
        return (env.observations, env.rewards, env.terminated, env.truncated,
                env.final_observations if ended else None)

    def buffers(self) -> tuple[Any, ...]:
        """The current buffers (all of them)."""
        return self._answer(True)

    def reset(self, seed: int | None) -> tuple[Any, ...]:
        self.env.reset(seed=seed)
        return self._answer(True)

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        """Step with ``actions`` (the driver validated them; the shape is checked)."""
        env = self.env
        if actions.shape != env.actions.shape:
            raise ValueError(f"shard actions must have shape {env.actions.shape}, got "
                             f"{actions.shape}")
        np.copyto(env.actions, actions, casting="unsafe")
        env._step_written()
        return self._answer(False)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("RayMarketEnv needs Ray: pip install 'rltrader[ray]'") from None
    return ray


class RayMarketEnv:
    """``n_envs`` markets x ``n_agents`` agents stepped by ``n_workers`` Ray actors.

    Parameters
    ----------
    config : EnvConfig, optional
    n_envs, n_agents : int
    seed : int
    n_workers : int
        Actors (at most ``n_envs``); markets are split as evenly as possible, in order.
    actor_options : dict, optional
        Passed to the actor class's ``.options()`` (default ``{"num_cpus": 1}``): for
        example ``{"num_cpus": 1, "scheduling_strategy": "SPREAD"}`` to spread the shards
        over a cluster's nodes, or a placement group's strategy.
    start_timeout_s : float
        How long to wait for every actor to be placed and to build its markets; then
        ``RuntimeError`` (a cluster without the CPUs for ``n_workers`` actors would
        otherwise wait for ever).

    Attributes mirror :class:`BatchedMarketEnv`: ``actions``, ``observations``,
    ``rewards``, ``terminated``, ``truncated``, ``final_observations`` (the driver's
    buffers, overwritten by each step), ``single_observation_space``,
    ``single_action_space``, ``action_high``, ``num_agents_total``, ``n_agents``; and
    ``shard_rows`` (each actor's rows). Call :meth:`close` (or use it as a context
    manager) to stop the actors; the Ray instance itself stays up.
    """

    def __init__(self, config: EnvConfig | None = None, *, n_envs: int, n_agents: int,
                 seed: int = 0, n_workers: int = 2,
                 actor_options: dict[str, Any] | None = None,
                 start_timeout_s: float = 120.0) -> None:
        self._actors: list[Any] = []
        self._pending: list[Any] | None = None
        self._closed = False
        n_envs, n_agents, n_workers, seed = shard_arguments(n_envs, n_agents, n_workers, seed)
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"actor_options must be a dict, got {type(actor_options).__name__}")
        if not isinstance(start_timeout_s, (int, float)) or not start_timeout_s > 0:
            raise ValueError(f"start_timeout_s must be a number > 0, got {start_timeout_s!r}")
        self.config = EnvConfig() if config is None else config
        if not isinstance(self.config, EnvConfig):
            raise TypeError(f"config must be an EnvConfig, got {type(self.config).__name__}")
        if self.config.symbols > 1:
            raise ValueError("RayMarketEnv is one symbol per market (EnvConfig.symbols = 1)")
        ray = _import_ray()
        probe = BatchedMarketEnv(self.config.replace(warmup_steps=0), n_envs=1,
                                 n_agents=n_agents, seed=0)
        self.n_envs, self.n_agents, self.n_workers = n_envs, n_agents, n_workers
        self.num_agents_total = n = n_envs * n_agents
        self.single_observation_space = probe.single_observation_space
        self.single_action_space = probe.single_action_space
        self.action_high = probe.action_high
        self.actions = np.zeros((n,) + probe.actions.shape[1:], probe.actions.dtype)
        self.observations = np.zeros((n,) + probe.observations.shape[1:], np.float32)
        self.final_observations = np.zeros_like(self.observations)
        self.rewards = np.zeros(n, np.float32)
        self.terminated = np.zeros(n, bool)
        self.truncated = np.zeros(n, bool)
        # integer actions travel in the smallest dtype that holds them (uint8 for every
        # discrete mode): an exact copy, and under Ray's 100 KiB inline limit for 16k agents
        wire = (self.actions.dtype if self.actions.dtype.kind == "f"
                else np.min_scalar_type(int(self.action_high.max()) - 1))
        self._wire = np.zeros(self.actions.shape, wire)
        sizes = shard_sizes(n_envs, n_workers)
        bounds = np.concatenate([[0], np.cumsum(sizes)]) * n_agents
        #: the driver's rows of each actor
        self.shard_rows = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:],
                                                                     strict=True)]
        if not ray.is_initialized():
            ray.init()
        options = {"num_cpus": 1} if actor_options is None else dict(actor_options)
        shard = ray.remote(MarketShard).options(**options)
        try:
            self._actors = [shard.remote(self.config, size, n_agents, s)
                            for size, s in zip(sizes, shard_seeds(seed, n_workers), strict=True)]
            refs = [actor.buffers.remote() for actor in self._actors]
            _, waiting = ray.wait(refs, num_returns=len(refs), timeout=start_timeout_s)
            if waiting:
                raise RuntimeError(
                    f"RayMarketEnv: {len(waiting)} of {n_workers} actors not ready after "
                    f"{start_timeout_s} s (each asks {options}; the cluster has "
                    f"{ray.available_resources().get('CPU', 0)} of "
                    f"{ray.cluster_resources().get('CPU', 0)} CPUs free)")
            self._gather(refs)
        except BaseException as error:
            self.close()
            if isinstance(error, (RuntimeError, KeyboardInterrupt)):
                raise
            raise RuntimeError(f"RayMarketEnv could not start: {type(error).__name__}: "
                               f"{error}") from error

    def _gather(self, refs: list[Any]) -> None:
        """Wait for every actor's answer and copy it into the driver's buffers; raise
        ``RuntimeError`` naming the first shard that failed (or whose actor died)."""
        ray = _import_ray()
        answers, errors = [], []
        for w, ref in enumerate(refs):
            try:
                answers.append(ray.get(ref))
            except ray.exceptions.RayError as error:
                # an exception raised in the actor: its own type and message (Ray's
                # traceback stays in the chained error); else the actor died
                cause = getattr(error, "cause", None) or error
                errors.append((f"shard {w} failed: {type(cause).__name__}: {cause}", error))
                answers.append(None)
        if errors:
            raise RuntimeError("; ".join(text for text, _ in errors)) from errors[0][1]
        for rows, answer in zip(self.shard_rows, answers, strict=True):
            for name, array in zip(_FIELDS, answer, strict=True):
                if array is not None:
                    getattr(self, name)[rows] = array

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RayMarketEnv is closed")
        if self._pending is not None:
            raise RuntimeError("a step is in flight: call step_wait() first")

    def reset(self, seed: int | None = None) -> np.ndarray:
        """New episodes everywhere (``seed`` rebuilds every shard from it)."""
        self._check_open()
        if seed is not None and (not is_int(seed) or seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")
        seeds = [None] * self.n_workers if seed is None else shard_seeds(int(seed), self.n_workers)
        self._gather([actor.reset.remote(s)
                      for actor, s in zip(self._actors, seeds, strict=True)])
        return self.observations

    def step_async(self, actions: Any) -> None:
        """Validate ``actions`` and send each actor its slice; :meth:`step_wait` collects
        the answers (the driver may work in between)."""
        self._check_open()
        write_actions(actions, self.actions, self.action_high, self.n_envs, self.n_agents)
        np.copyto(self._wire, self.actions, casting="unsafe")
        # .remote() serialises its arguments at once: the buffer may be reused next step
        self._pending = [actor.step.remote(self._wire[rows])
                         for actor, rows in zip(self._actors, self.shard_rows, strict=True)]

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The answers of the step sent by :meth:`step_async`, in the driver's buffers."""
        if self._pending is None:
            raise RuntimeError("step_wait() without step_async()")
        refs, self._pending = self._pending, None
        self._gather(refs)
        return self.observations, self.rewards, self.terminated, self.truncated

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`BatchedMarketEnv.step`; the actors step their shards in parallel."""
        self.step_async(actions)
        return self.step_wait()

    def close(self) -> None:
        """Stop the actors (idempotent); :meth:`step` and :meth:`reset` raise
        ``RuntimeError`` afterwards."""
        self._closed = True
        self._pending = None
        actors, self._actors = self._actors, []
        if not actors:
            return
        ray = _import_ray()
        if not ray.is_initialized():        # the cluster is gone, and the actors with it
            return
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:               # already dead: nothing to stop
                pass

    def __enter__(self) -> RayMarketEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
