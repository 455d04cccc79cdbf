"""A fast multi-agent PPO trainer over the batched env's buffers (docs/training.md,
"The fast trainer"); needs torch (the ``rl`` extra).

Rollouts are preallocated ``(T, N, ...)`` tensors filled from the env's own numpy buffers
(``torch.from_numpy``, no copies on the way in), one batched forward per step acts for
every agent, and nothing on the hot path runs per agent in Python. PPO with the clipped
objective, GAE (bootstrapping truncated episodes from ``final_observations``), optional
value clipping, an entropy bonus, advantage normalisation, running observation
normalisation (in the policy, saved with it) and reward scaling; one shared policy or one
per group of agent slots; an independent or a centralised critic; an optional GRU core;
Discrete, MultiDiscrete and Box actions.

- :class:`FastPPO` (``learn``, ``save``, ``load``, ``policy``) over any env with the
  batched env's protocol;
- :func:`train`: a :class:`~rltrader.envs.BatchedMarketEnv` from an ``EnvConfig`` (or its
  markets sharded over processes or Ray actors: ``backend``, ``n_workers``), trained
  into ``out_dir`` (``checkpoint.pt``, ``curve.csv``, ``learning_curve.png``,
  ``results.json``);
- :func:`load_policy`: a checkpoint as a deterministic ``policy(obs) -> actions``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from rltrader.envs import EnvConfig
from rltrader.envs.backends import close_env, make_env
from rltrader.envs.mixed import MixedConfig, MixedMarketEnv
from rltrader.training.ppo.policy import ActionSpec, Policy
from rltrader.training.ppo.report import CurveLog, plot_curve
from rltrader.training.ppo.rollout import gae
from rltrader.training.ppo.settings import FastPPOSettings
from rltrader.training.ppo.trainer import FastPPO, load_policy, plain

__all__ = ["ActionSpec", "FastPPO", "FastPPOSettings", "Policy", "gae", "load_policy",
           "train"]


def train(env_config: EnvConfig | MixedConfig | None, *, n_envs: int, n_agents: int,
          total_agent_steps: int, seed: int = 0, out_dir: Path | str,
          settings: FastPPOSettings | None = None, backend: str = "batched",
          n_workers: int = 1) -> dict[str, Any]:
    """Train a :class:`FastPPO` on ``n_envs`` markets x ``n_agents`` agents of
    ``env_config`` for ``total_agent_steps`` (whole rollouts) and write to ``out_dir``.

    ``backend``: where the markets step (:func:`rltrader.envs.backends.make_env`):
    ``"batched"`` in this process, ``"sharded"`` in ``n_workers`` processes, ``"ray"`` in
    ``n_workers`` Ray actors (on a cluster's nodes; this process is the one learner). The
    two sharded backends train identically for the same ``n_workers``; they are closed
    when training ends. A :class:`~rltrader.envs.mixed.MixedConfig` (several markets,
    restarts at the open) trains on a :class:`~rltrader.envs.mixed.MixedMarketEnv`
    (``backend="batched"``, ``n_envs`` its markets). Writes:

    - with ``settings.warm_start``, ``clone.pt``: the policy cloned from that baseline
      (:mod:`rltrader.training.ppo.imitate`) before PPO; with ``settings.residual`` (a
      market-making baseline) the policy corrects that teacher's quotes
      (:mod:`rltrader.training.ppo.residual`), and ``clone.pt`` is its clone of "keep";
    - ``checkpoint.pt`` (:meth:`FastPPO.save`; :func:`load_policy` reads it), and
      ``checkpoints/fast_ppo_<agent-steps>.pt`` every ``settings.checkpoint_every``;
    - ``curve.csv`` (one row per update; ``tensorboard/`` too with
      ``settings.tensorboard``) and ``learning_curve.png``;
    - ``results.json``: the settings, the env config, throughput and where the time went,
      the last updates' mean episode return.

    Returns what ``results.json`` holds.
    """
    settings = FastPPOSettings() if settings is None else settings
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if settings.warm_start is not None and backend != "batched":
        raise ValueError("warm_start plays a baseline that reads the batched env's state: "
                         f"backend='batched' only, got {backend!r}")
    if settings.residual is not None and backend != "batched":
        raise ValueError("a residual policy's teacher reads the batched env's state: "
                         f"backend='batched' only, got {backend!r}")
    if isinstance(env_config, MixedConfig):
        if backend != "batched" or n_envs != env_config.n_envs:
            raise ValueError(f"a MixedConfig steps its lanes in this process with their "
                             f"markets ({env_config.n_envs}): backend 'batched' and n_envs="
                             f"{env_config.n_envs}, got {backend!r} and {n_envs}")
        env = MixedMarketEnv(env_config, n_agents=n_agents, seed=seed)
    else:
        env = make_env(env_config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                       backend=backend, n_workers=n_workers)
    try:
        if settings.residual is not None:
            from rltrader.training.ppo.residual import ResidualEnv

            env = ResidualEnv(env, settings.residual)
        trainer = FastPPO(env, settings, seed=seed)
    except BaseException:
        close_env(env)
        raise
    cloned = None
    if settings.residual is not None:
        from rltrader.training.ppo.imitate import clone
        from rltrader.training.ppo.residual import Keep

        cloned = clone(trainer, Keep(), steps=settings.warm_start_steps,
                       epochs=settings.warm_start_epochs,
                       smoothing=settings.warm_start_smoothing)
        cloned["teacher"] = f"keep ({settings.residual}'s quotes)"
        trainer.save(out / "clone.pt")
    if settings.warm_start is not None:
        from rltrader.training.evaluate import candidate
        from rltrader.training.ppo.imitate import clone

        cloned = clone(trainer, candidate(f"baseline:{settings.warm_start}"),
                       steps=settings.warm_start_steps, epochs=settings.warm_start_epochs,
                       smoothing=settings.warm_start_smoothing)
        trainer.save(out / "clone.pt")
    log = CurveLog(out / "curve.csv", out / "tensorboard" if settings.tensorboard else None)
    from tqdm.auto import tqdm

    bar = tqdm(total=total_agent_steps, unit="agent-steps", unit_scale=True,
               disable=not settings.progress)
    saved = [0]

    def on_update(row: dict[str, Any]) -> None:
        log.write(row)
        bar.update(min(row["agent_steps"], total_agent_steps) - bar.n)
        if math.isfinite(row["mean_episode_return"]):
            bar.set_postfix(ret=f"{row['mean_episode_return']:+.3g}",
                            k_per_s=f"{row['agent_steps_per_s'] / 1e3:.0f}")
        every = settings.checkpoint_every
        if every is not None and row["agent_steps"] - saved[0] >= every:
            saved[0] = row["agent_steps"]
            trainer.save(out / "checkpoints" / f"fast_ppo_{row['agent_steps']}.pt")

    try:
        rows = trainer.learn(total_agent_steps, on_update=on_update)
    finally:
        bar.close()
        log.close()
        close_env(env)
    trainer.save(out / "checkpoint.pt")
    plot_curve(rows, out / "learning_curve.png")
    learn_s = rows[-1]["wall_s"]
    tail = [r["mean_episode_return"] for r in rows[-10:]
            if math.isfinite(r["mean_episode_return"])]
    results = {
        "settings": trainer.state()["settings"],
        "env_config": plain(trainer.state()["env_config"]),
        "n_envs": n_envs, "n_agents": n_agents, "seed": seed,
        "backend": backend, "n_workers": n_workers,
        "agent_steps": trainer.agent_steps, "updates": trainer.updates,
        "learn_s": learn_s, "agent_steps_per_s": rows[-1]["agent_steps"] / learn_s
        if learn_s else math.nan,
        "seconds": dict(trainer.seconds),
        "env_share": trainer.seconds["env"] / learn_s if learn_s else math.nan,
        "final_mean_episode_return": sum(tail) / len(tail) if tail else None,
        "warm_start": cloned,
        "wall_s": time.perf_counter() - started,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
