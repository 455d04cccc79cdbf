"""Markets sharded over worker processes, one batched view in shared memory.

:class:`ShardedMarketEnv` splits ``n_envs`` markets into ``n_workers`` contiguous shards.
Each worker process owns a :class:`BatchedMarketEnv` for its shard and steps it when told
to; actions, observations, rewards, flags and final observations live in
``multiprocessing.shared_memory`` blocks, so the main process reads and writes one
``(n_envs * n_agents, ...)`` array as with the single-process env (agent ``i`` of market
``e`` is row ``e * n_agents + i``). A step validates the actions in the main process,
sends one short message per worker through a pipe, and waits for every worker's answer.

Worker ``w`` seeds its markets from ``SeedSequence(seed).spawn(n_workers)[w]``: a sharded
run is reproducible, but it differs from an unsharded run with the same seed.
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from rltrader.core.checks import is_int
from rltrader.envs.batched import BatchedMarketEnv, write_actions
from rltrader.envs.config import EnvConfig

_FIELDS = ("actions", "observations", "rewards", "terminated", "truncated",
           "final_observations")


def shard_arguments(n_envs: Any, n_agents: Any, n_workers: Any, seed: Any
                    ) -> tuple[int, int, int, int]:
    """A sharded env's ``n_envs``, ``n_agents``, ``n_workers`` and ``seed`` checked
    (``ValueError``) and as ints."""
    for name, value in (("n_envs", n_envs), ("n_agents", n_agents)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not is_int(n_workers) or not 1 <= n_workers <= n_envs:
        raise ValueError(f"n_workers must be an int in [1, n_envs={n_envs}], got "
                         f"{n_workers!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(n_envs), int(n_agents), int(n_workers), int(seed)


def shard_sizes(n_envs: int, n_workers: int) -> list[int]:
    """Markets of each shard: ``n_envs`` split as evenly as possible, in order."""
    return [len(part) for part in np.array_split(np.arange(n_envs), n_workers)]


def shard_seeds(seed: int, n_workers: int) -> list[int]:
    """Each shard's seed: ``SeedSequence(seed).spawn(n_workers)`` (the module docstring)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_workers)]


def _layout(env_like: BatchedMarketEnv, n: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape (for ``n`` agents) and dtype of every shared buffer."""
    return {name: ((n,) + getattr(env_like, name).shape[1:], getattr(env_like, name).dtype)
            for name in _FIELDS}


def _attach(name: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[SharedMemory,
                                                                      np.ndarray]:
    # spawned workers share the creator's resource tracker: the creator unlinks
    shm = SharedMemory(name=name)
    return shm, np.ndarray(shape, dtype=dtype, buffer=shm.buf)


def _worker(conn: Connection, config: EnvConfig, n_envs: int, n_agents: int, seed: int,
            lo: int, names: dict[str, str], layout: dict[str, Any]) -> None:
    """Step a shard of markets (rows ``lo .. lo + n_envs * n_agents``) on command."""
    shms: list[SharedMemory] = []
    try:
        env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed)
        for k in _FIELDS:
            shms.append(_attach(names[k], *layout[k])[0])
    except Exception as error:                  # start-up failed: report it, then stop
        for shm in shms:
            shm.close()
        conn.send(f"{type(error).__name__}: {error}")
        conn.close()
        return
    view = {k: np.ndarray(layout[k][0], dtype=layout[k][1], buffer=shm.buf)
            [lo: lo + env.num_agents_total] for k, shm in zip(_FIELDS, shms, strict=True)}

    def publish() -> None:
        for k in _FIELDS[1:]:
            view[k][...] = getattr(env, k)

    try:
        publish()
        conn.send(None)                         # ready: the first observations are out
        while True:
            command, argument = conn.recv()
            if command == "close":
                break
            try:
                if command == "step":
                    env.step(view["actions"])
                else:
                    env.reset(seed=argument)
                publish()
            except Exception as error:          # report it; the main process raises
                conn.send(f"{type(error).__name__}: {error}")
            else:
                conn.send(None)
    finally:
        view.clear()                            # no array may export the buffers now
        for shm in shms:
            shm.close()
        conn.close()


class ShardedMarketEnv:
    """``n_envs`` markets x ``n_agents`` agents stepped by ``n_workers`` processes.

    Parameters
    ----------
    config : EnvConfig, optional
    n_envs, n_agents : int
    seed : int
    n_workers : int
        Worker processes (at most ``n_envs``); markets are split as evenly as possible.

    Attributes mirror :class:`BatchedMarketEnv`: ``observations``, ``rewards``,
    ``terminated``, ``truncated``, ``final_observations`` (shared-memory arrays),
    ``single_observation_space``, ``single_action_space``, ``num_agents_total``. Call
    :meth:`close` (or use it as a context manager) to stop the workers.
    """

    def __init__(self, config: EnvConfig | None = None, *, n_envs: int, n_agents: int,
                 seed: int = 0, n_workers: int = 2) -> None:
        # nothing is allocated before every argument is checked; what is allocated later is
        # freed (close) if construction fails
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._shm: dict[str, SharedMemory] = {}
        self._closed = False
        n_envs, n_agents, n_workers, seed = shard_arguments(n_envs, n_agents, n_workers, seed)
        self.config = EnvConfig() if config is None else config
        if not isinstance(self.config, EnvConfig):
            raise TypeError(f"config must be an EnvConfig, got {type(self.config).__name__}")
        if self.config.symbols > 1:
            raise ValueError("ShardedMarketEnv is one symbol per market (EnvConfig.symbols "
                             "= 1)")
        probe = BatchedMarketEnv(self.config.replace(warmup_steps=0), n_envs=1,
                                 n_agents=n_agents, seed=0)
        self.n_envs, self.n_agents, self.n_workers = n_envs, n_agents, n_workers
        self.num_agents_total = n_envs * n_agents
        self.single_observation_space = probe.single_observation_space
        self.single_action_space = probe.single_action_space
        self.action_high = probe.action_high
        layout = _layout(probe, self.num_agents_total)
        for k, (shape, dtype) in layout.items():     # empty until the buffers exist
            setattr(self, k, np.empty((0,) + shape[1:], dtype))
        try:
            self._start(layout, seed)
        except BaseException as error:
            self.close()
            if isinstance(error, (RuntimeError, KeyboardInterrupt)):
                raise
            raise RuntimeError(f"ShardedMarketEnv could not start: {type(error).__name__}: "
                               f"{error}") from error

    def _start(self, layout: dict[str, Any], seed: int) -> None:
        """Allocate the shared buffers, start the workers and wait until they are ready."""
        n_envs, n_agents, n_workers = self.n_envs, self.n_agents, self.n_workers
        arrays = {}
        for k, (shape, dtype) in layout.items():
            size = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
            self._shm[k] = SharedMemory(create=True, size=size)
            arrays[k] = np.ndarray(shape, dtype=dtype, buffer=self._shm[k].buf)
        self.actions, self.observations = arrays["actions"], arrays["observations"]
        self.rewards, self.final_observations = arrays["rewards"], arrays["final_observations"]
        self.terminated, self.truncated = arrays["terminated"], arrays["truncated"]
        del arrays
        names = {k: shm.name for k, shm in self._shm.items()}
        sizes, seeds = shard_sizes(n_envs, n_workers), shard_seeds(seed, n_workers)
        context = mp.get_context("spawn")
        first = 0
        for size, shard_seed in zip(sizes, seeds, strict=True):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, daemon=True, args=(
                child, self.config, size, n_agents, shard_seed, first * n_agents, names,
                layout))
            self._conns.append(parent)
            self._procs.append(proc)
            proc.start()
            child.close()
            first += size
        self._collect()

    def _call(self, command: str, argument: Any = None) -> None:
        for w, conn in enumerate(self._conns):
            try:
                conn.send((command, argument))
            except OSError as error:        # BrokenPipeError: the worker is gone
                raise RuntimeError(f"worker {w} is gone ({self._exit(w)}): {error}") from None
        self._collect()

    def _exit(self, w: int) -> str:
        proc = self._procs[w]
        proc.join(timeout=1)
        return f"exit code {proc.exitcode}" if proc.exitcode is not None else "still running"

    def _collect(self) -> None:
        """Wait for every worker; raise the first error one of them reported (a worker
        that died, e.g. at start-up, is an error too: no bare ``EOFError``)."""
        errors = []
        for w, conn in enumerate(self._conns):
            try:
                errors.append((w, conn.recv()))
            except (EOFError, OSError):
                errors.append((w, f"the worker process died ({self._exit(w)})"))
        for w, error in errors:
            if error is not None:
                raise RuntimeError(f"worker {w} failed: {error}")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("ShardedMarketEnv is closed")

    def reset(self, seed: int | None = None) -> np.ndarray:
        """New episodes everywhere (``seed`` rebuilds every shard from it)."""
        self._check_open()
        if seed is not None and (not is_int(seed) or seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")
        if seed is None:
            self._call("reset", None)
        else:
            for conn, shard_seed in zip(self._conns, shard_seeds(seed, self.n_workers),
                                        strict=True):
                conn.send(("reset", shard_seed))
            self._collect()
        return self.observations

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`BatchedMarketEnv.step`; the workers step their shards in parallel."""
        self._check_open()
        write_actions(actions, self.actions, self.action_high, self.n_envs, self.n_agents)
        self._call("step")
        return self.observations, self.rewards, self.terminated, self.truncated

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent); :meth:`step` and
        :meth:`reset` raise ``RuntimeError`` afterwards."""
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            if proc.pid is None:            # never started
                continue
            proc.join(timeout=10)
            if proc.is_alive():             # stuck: it is ours, stop it
                proc.terminate()
                proc.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
        for k in _FIELDS:
            if hasattr(self, k):
                setattr(self, k, np.empty((0,) + getattr(self, k).shape[1:],
                                          getattr(self, k).dtype))
        for shm in self._shm.values():
            try:
                shm.close()
            except BufferError:     # the caller still holds a view: the mapping stays
                pass
            shm.unlink()
        self._shm = {}

    def __enter__(self) -> ShardedMarketEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
