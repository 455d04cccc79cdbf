"""``rltrader train CONFIG.toml``: a task, its env, the fast trainer, several training
seeds, then the evaluation of every seed's checkpoint against the baselines on held-out
markets.

The file (``examples/train/*.toml`` has one per task)::

    task = "market_making"            # market_making | execution | directional
    seeds = [0, 1, 2, 3, 4]           # training seeds: one checkpoint each
    n_envs = 64
    n_agents = 16
    agent_steps = 20_000_000          # per seed
    backend = "batched"               # optional: "sharded" or "ray" (docs/scale.md)
    n_workers = 1                     # processes or Ray actors stepping the markets

    [env]                             # EnvConfig fields over the task's defaults
    market = "thin"
    horizon = 1000

    [trainer]                         # FastPPOSettings fields
    n_steps = 32
    learning_rate = 0.001

    restart_episodes = [1, 20]        # optional: each training lane back to the open
                                      # after 1-20 episodes (drawn per day; opt-in)
    reward_scaling = "lane"           # optional: each lane's rewards over the running
                                      # root mean square of its returns (docs/envs.md)
    [[markets]]                       # optional: train on several markets at once
    market = "realistic"              # a preset, or a real record (binance_perp,
    n_envs = 512                      # binance_spot, coinbase); never "lobster"
    lanes = 4                         # optional: split into lanes that restart apart
    [[markets]]
    market = "thin"
    n_envs = 512

    [evaluate]                        # rltrader evaluate, after training
    baselines = ["best_fixed_spread", "avellaneda_stoikov"]   # the first is the reference
    markets = ["thin", "resilient", "lobster"]
    seeds = "100-104"                 # held-out: never a training seed
    n_envs = 16
    n_agents = 4
    episodes = 2

With ``[[markets]]``, ``restart_episodes`` or ``reward_scaling`` the seeds train on a
:class:`~rltrader.envs.mixed.MixedMarketEnv` (``[env]`` gives every market's task fields;
``n_envs``, when given, must equal the ``[[markets]]`` total); without them on the
``[env]`` market alone, as before.

``run(experiment, out)`` writes ``out/seed_<k>/`` (each seed's ``checkpoint.pt``, curve
and results), ``out/evaluation.json`` and ``out/report/``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltrader.envs import EnvConfig
from rltrader.training.evaluate import TASKS, evaluate, parse_seeds, report

try:
    import tomllib
except ModuleNotFoundError:        # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass(frozen=True)
class Evaluation:
    """The ``[evaluate]`` table."""

    baselines: tuple[str, ...] = ()
    markets: tuple[str, ...] = ("resilient",)
    seeds: tuple[int, ...] = (100, 101, 102, 103, 104)
    n_envs: int = 16
    n_agents: int = 4
    episodes: int = 2


@dataclass(frozen=True)
class Experiment:
    """A parsed ``CONFIG.toml`` (the module docstring has the format)."""

    task: str
    env: EnvConfig
    settings: Any                      # FastPPOSettings (torch is imported lazily)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_envs: int = 64
    n_agents: int = 16
    agent_steps: int = 10_000_000
    evaluation: Evaluation = field(default_factory=Evaluation)
    backend: str = "batched"
    n_workers: int = 1
    #: the training markets when several (or restarting): a MixedConfig; None: ``env``
    mixed: Any = None


def load(path: str | Path) -> Experiment:
    """Read and check a config file; a ``ValueError`` names the file and the problem."""
    from rltrader.training.fast_ppo import FastPPOSettings

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not TOML: {exc}") from None
    known = {"task", "seeds", "n_envs", "n_agents", "agent_steps", "env", "trainer",
             "evaluate", "backend", "n_workers", "markets", "restart_episodes",
             "reward_scaling"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
    task = data.get("task")
    if task not in TASKS:
        raise ValueError(f"{path}: task must be one of {sorted(TASKS)}, got {task!r}")
    try:
        env = TASKS[task].replace(**data.get("env", {}))
        settings = FastPPOSettings(**_tuples(data.get("trainer", {})))
        table = dict(data.get("evaluate", {}))
        if isinstance(table.get("seeds"), str):
            table["seeds"] = parse_seeds(table["seeds"])
        evaluation = Evaluation(**_tuples(table))
        experiment = Experiment(task, env, settings, **_tuples(
            {k: data[k] for k in ("seeds", "n_envs", "n_agents", "agent_steps", "backend",
                                  "n_workers") if k in data}),
            evaluation=evaluation)
        if {"markets", "restart_episodes", "reward_scaling"} & set(data):
            experiment = _with_lanes(experiment, data)
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    from rltrader.envs.backends import BACKENDS

    if experiment.backend not in BACKENDS:
        raise ValueError(f"{path}: backend must be one of {list(BACKENDS)}, got "
                         f"{experiment.backend!r}")
    if (not isinstance(experiment.n_workers, int) or isinstance(experiment.n_workers, bool)
            or not 1 <= experiment.n_workers <= experiment.n_envs
            or (experiment.backend == "batched" and experiment.n_workers != 1)):
        raise ValueError(f"{path}: n_workers must be an int in [1, n_envs] (1 with backend "
                         f"'batched'), got {experiment.n_workers!r}")
    overlap = set(experiment.seeds) & set(evaluation.seeds)
    if overlap:
        raise ValueError(f"{path}: evaluation seeds {sorted(overlap)} were training seeds "
                         "(held-out markets must be new)")
    return experiment


def _with_lanes(experiment: Experiment, data: dict[str, Any]) -> Experiment:
    """The experiment with its ``[[markets]]`` / ``restart_episodes`` /
    ``reward_scaling`` as a MixedConfig."""
    from rltrader.envs.mixed import Lane, MixedConfig, lanes_from

    entries = data.get("markets")
    if entries is None:
        lanes: tuple[Lane, ...] = (Lane(str(experiment.env.market), experiment.n_envs),)
    elif not isinstance(entries, list) or not entries:
        raise ValueError("markets must be a non-empty list of [[markets]] tables")
    else:
        lanes = lanes_from(entries)
    restart = data.get("restart_episodes")
    mixed = MixedConfig(experiment.env, lanes,
                        tuple(restart) if isinstance(restart, list) else restart,
                        data.get("reward_scaling"))
    if "n_envs" in data and data["n_envs"] != mixed.n_envs:
        raise ValueError(f"n_envs {data['n_envs']} differs from the [[markets]] total "
                         f"{mixed.n_envs}")
    if experiment.backend != "batched":
        raise ValueError("[[markets]] / restart_episodes / reward_scaling train with "
                         "backend 'batched'")
    return dataclasses.replace(experiment, n_envs=mixed.n_envs, mixed=mixed)


def _tuples(table: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def run(experiment: Experiment, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Train every seed, then evaluate the checkpoints with the baselines."""
    from rltrader.training.fast_ppo import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(experiment.settings, progress=progress)
    trained = {}
    for seed in experiment.seeds:
        folder = out / f"seed_{seed}"
        trained[seed] = train(experiment.mixed or experiment.env, n_envs=experiment.n_envs,
                              n_agents=experiment.n_agents,
                              total_agent_steps=experiment.agent_steps, seed=seed,
                              out_dir=folder, settings=settings,
                              backend=experiment.backend, n_workers=experiment.n_workers)
    ev = experiment.evaluation
    candidates = [f"baseline:{name}" for name in ev.baselines] + [
        str(out / f"seed_{seed}" / "checkpoint.pt") for seed in experiment.seeds]
    result = evaluate(candidates, task=experiment.task, markets=ev.markets, seeds=ev.seeds,
                      n_envs=ev.n_envs, n_agents=ev.n_agents, episodes=ev.episodes,
                      horizon=experiment.env.horizon)
    result["training"] = {str(k): {"agent_steps_per_s": v.get("agent_steps_per_s"),
                                   "seconds": v.get("seconds")} for k, v in trained.items()}
    (out / "evaluation.json").write_text(json.dumps(result, indent=2, default=str))
    report(result, out / "report")
    return result


__all__ = ["Evaluation", "Experiment", "load", "run"]
