"""One batched env over a choice of backends, for trainers that drive its buffers.

``make_env(config, n_envs=..., n_agents=..., seed=..., backend=..., n_workers=...)``:

- ``"batched"``: :class:`BatchedMarketEnv`, in the caller's process (``n_workers`` = 1);
- ``"sharded"``: :class:`~rltrader.envs.shards.ShardedMarketEnv`, ``n_workers`` processes
  on this machine, buffers in shared memory;
- ``"ray"``: :class:`~rltrader.envs.ray_shards.RayMarketEnv`, ``n_workers`` Ray actors on
  any node of a Ray cluster.

All three have the same buffers and ``step``/``reset``; ``"sharded"`` and ``"ray"`` with the
same ``n_workers`` give identical markets (each shard seeded from
``SeedSequence(seed).spawn(n_workers)``), which differ from ``"batched"``'s. Close what
:func:`close_env` is given when done (the batched env has nothing to close).
"""

from __future__ import annotations

from typing import Any

from rltrader.core.checks import is_int
from rltrader.envs.batched import BatchedMarketEnv
from rltrader.envs.config import EnvConfig

BACKENDS = ("batched", "sharded", "ray")


def check_backend(backend: str, n_workers: int) -> None:
    """Raise ``ValueError`` unless :func:`make_env` takes ``backend`` with ``n_workers``
    (for callers that check their arguments before any work)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not is_int(n_workers) or n_workers < 1:
        raise ValueError(f"n_workers must be an int >= 1, got {n_workers!r}")
    if backend == "batched" and n_workers != 1:
        raise ValueError(f"backend='batched' steps in this process: n_workers must be "
                         f"1, got {n_workers} (use 'sharded' or 'ray')")


def make_env(config: EnvConfig | None, *, n_envs: int, n_agents: int, seed: int = 0,
             backend: str = "batched", n_workers: int = 1,
             actor_options: dict[str, Any] | None = None) -> Any:
    """The env of ``backend`` (module docstring); ``actor_options``: Ray only."""
    check_backend(backend, n_workers)
    if actor_options is not None and backend != "ray":
        raise ValueError(f"actor_options are for backend='ray', not {backend!r}")
    if backend == "batched":
        return BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed)
    if backend == "sharded":
        from rltrader.envs.shards import ShardedMarketEnv

        return ShardedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                                n_workers=n_workers)
    from rltrader.envs.ray_shards import RayMarketEnv

    return RayMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                        n_workers=n_workers, actor_options=actor_options)


def close_env(env: Any) -> None:
    """Stop an env's workers or actors, if it has any."""
    close = getattr(env, "close", None)
    if close is not None:
        close()
