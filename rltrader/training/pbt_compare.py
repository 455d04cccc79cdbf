"""Population-based training against the same population with fixed hyperparameters, at
equal compute (``rltrader pbt``, also ``python -m rltrader.training.pbt_compare``; docs/training.md,
"Population-based training").

For each repetition seed, populations of ``n_policies`` members train on the same markets
for the same agent-steps, one per *arm*:

- ``pbt``: exploit/explore (:class:`PBTSettings` ``explore=True``, the settings'
  selection), members' learning rates and entropy bonuses drawn log-uniformly;
- ``fixed``: every member at the ranges' geometric means, no rounds;
- ``random``: PBT's own initial draws kept fixed, no rounds (random search, the control
  of Jaderberg et al. 2017).

Each arm then names one member: the fittest in training, or, with validation seeds, the
best on validation markets of the ``top_k`` fittest (the same rule for every arm). With
``warm_start`` every arm's members start as one behaviour clone of that baseline. The
training markets step where ``backend`` says (:func:`rltrader.envs.backends.make_env`): in
this process, in ``n_workers`` processes, or in ``n_workers`` Ray actors on a cluster's
nodes, with this process the one learner of every population; validation and evaluation
run here. The named members play held-out markets
(:func:`rltrader.training.evaluate.evaluate`, alone in their market), paired by market
with PBT's over every repetition. Output:
``result.json`` and ``pbt_vs_fixed.png`` (the populations' fitness during training) in
``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.envs import EnvConfig
from rltrader.envs.backends import BACKENDS, check_backend, close_env, make_env
from rltrader.training.evaluate import (
    TASKS,
    CheckpointStrategy,
    candidate,
    evaluate,
    parse_seeds,
)
from rltrader.training.evaluation import Summary, run_lineup
from rltrader.training.pbt import MemberPolicy, PBTSettings, Population
from rltrader.training.ppo.trainer import plain

#: each arm's changes to the settings
ARMS: dict[str, dict[str, Any]] = {
    "pbt": {"explore": True},
    "fixed": {"explore": False, "fixed_draws": False, "selection": "truncation"},
    "random": {"explore": False, "fixed_draws": True, "selection": "truncation"},
}


def compare(*, task: str, market: str, out: Path | str, repetitions: Sequence[int],
            agent_steps: int, n_envs: int, n_agents: int, settings: PBTSettings,
            eval_seeds: Sequence[int], horizon: int, arms: Sequence[str] = ("pbt", "fixed"),
            validation_seeds: Sequence[int] = (), top_k: int = 8, episodes: int = 2,
            warm_start: str | None = None, warm_start_steps: int = 400,
            backend: str = "batched", n_workers: int = 1,
            progress: bool = True) -> dict[str, Any]:
    """Train every arm per repetition, name a member of each, pair them with PBT's."""
    check_backend(backend, n_workers)
    if warm_start is not None and backend != "batched":
        raise ValueError("warm_start plays a baseline that reads the batched env's state: "
                         f"backend='batched' only, got {backend!r}")
    arms = list(arms)
    if "pbt" not in arms or len(arms) < 2 or not set(arms) <= set(ARMS):
        raise ValueError(f"arms: 'pbt' and one or more of {sorted(set(ARMS) - {'pbt'})}, "
                         f"got {arms}")
    if set(repetitions) & set(eval_seeds):
        raise ValueError("evaluation seeds must not be training seeds")
    if set(validation_seeds) & (set(eval_seeds) | set(repetitions)):
        raise ValueError("validation seeds must be neither evaluation nor training seeds")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = TASKS[task].replace(market=market, horizon=horizon)
    controls = [arm for arm in arms if arm != "pbt"]
    runs: dict[str, Any] = {}
    diffs: dict[str, list[np.ndarray]] = {arm: [] for arm in controls}
    for seed in repetitions:
        paths = {}
        for arm in arms:
            began = time.perf_counter()
            env = make_env(config, n_envs=n_envs, n_agents=n_agents, seed=seed,
                           backend=backend, n_workers=n_workers)
            try:
                population = Population(env, replace(settings, **ARMS[arm]), seed=seed)
                cloned = None
                if warm_start is not None:     # every arm from the same teacher's clone
                    cloned = population.warm_start(candidate(f"baseline:{warm_start}"),
                                                   steps=warm_start_steps)
                population.learn(agent_steps)
            finally:
                close_env(env)
            trained = time.perf_counter() - began
            member, scores = population.best(), {}
            if validation_seeds:
                member, scores = choose_member(population, config, validation_seeds,
                                               top_k, episodes)
            paths[arm] = population.save(out / f"seed_{seed}" / f"{arm}.pt", best=member)
            runs[f"{arm}/{seed}"] = {
                "seconds": trained, "curve": population.curve,
                "best_member": population.best(), "member": member,
                "validation": {str(k): v for k, v in scores.items()},
                "rounds": len(population.rounds), "warm_start": cloned,
                "learning_rate": population.hyper["learning_rate"].tolist(),
                "ent_coef": population.hyper["ent_coef"].tolist()}
            if progress:
                print(f"seed {seed} {arm}: {trained:.0f} s, member {member}, last fitness "
                      f"{population.curve[-1] if population.curve else None}", flush=True)
        result = evaluate([str(paths[arm]) for arm in arms], task=task, markets=[market],
                          seeds=eval_seeds, n_envs=16, n_agents=1, episodes=episodes,
                          horizon=horizon)
        rows = result["markets"][market]["rows"]
        per = {arm: np.array(rows[arm]["per_market"]) for arm in arms}
        runs[f"evaluation/{seed}"] = {
            **{arm: Summary.of(per[arm]).as_dict() for arm in arms},
            **{f"pbt_minus_{arm}": Summary.of(per["pbt"] - per[arm]).as_dict()
               for arm in controls}}
        for arm in controls:
            diffs[arm].append(per["pbt"] - per[arm])
    summary = {"task": task, "market": market, "agent_steps": agent_steps,
               "n_envs": n_envs, "n_agents": n_agents, "repetitions": list(repetitions),
               "eval_seeds": list(eval_seeds), "validation_seeds": list(validation_seeds),
               "top_k": top_k, "episodes": episodes, "arms": arms,
               "warm_start": warm_start,
               "warm_start_steps": warm_start_steps if warm_start else None,
               "backend": backend, "n_workers": n_workers,
               "settings": plain(asdict(settings)),
               **{f"pbt_minus_{arm}": Summary.of(np.concatenate(diffs[arm])).as_dict()
                  for arm in controls},
               "runs": runs}
    (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(runs, arms, repetitions, out / "pbt_vs_fixed.png")
    return summary


class _Member(CheckpointStrategy):
    """One member of a live population as an evaluation strategy."""

    def __init__(self, policy: MemberPolicy, name: str) -> None:
        self.policy, self.name = policy, name


def choose_member(population: Population, config: EnvConfig, seeds: Sequence[int],
                  top_k: int, episodes: int, n_envs: int = 16
                  ) -> tuple[int, dict[int, float]]:
    """The best of the population's ``top_k`` fittest members on validation markets
    (alone in each of ``n_envs`` markets per seed, ``episodes`` each): the member and
    every candidate's mean return."""
    state = population.state()
    scores = {}
    for member in population.ranking()[:top_k]:
        run = run_lineup(config, [(_Member(MemberPolicy(state, member), f"m{member}"),
                                   [0])], n_envs=n_envs, n_agents=1, seeds=seeds,
                         episodes=episodes)
        scores[member] = float(run.per_market([0]).mean())
    return max(scores, key=lambda m: scores[m]), scores


def _plot(runs: dict[str, Any], arms: Sequence[str], repetitions: Sequence[int],
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"pbt": "tab:blue", "fixed": "tab:gray", "random": "tab:orange"}
    for mode in arms:
        color = colors[mode]
        for k, seed in enumerate(repetitions):
            curve = runs[f"{mode}/{seed}"]["curve"]
            x = [c["agent_steps"] / 1e6 for c in curve]
            ax.plot(x, [c["best"] for c in curve], color=color, alpha=0.9,
                    label=f"{mode}: best member" if k == 0 else None)
            ax.plot(x, [c["median"] for c in curve], color=color, alpha=0.5, ls="--",
                    label=f"{mode}: median" if k == 0 else None)
    ax.set_xlabel("agent-steps (millions)")
    ax.set_ylabel("fitness")
    ax.set_title("population-based training vs fixed hyperparameters, equal compute",
                 fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Pool several runs' ``result.json`` (e.g. repetitions run in several calls): for each
    control arm, each repetition's mean paired difference (PBT's named member minus the
    arm's, over that repetition's held-out markets) and their Student-t interval over the
    repetitions, each repetition one observation. A repetition found in two files is an
    error (it would count twice)."""
    per_rep: dict[int, dict[str, float]] = {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        for key, run in result["runs"].items():
            if not key.startswith("evaluation/"):
                continue
            rep = int(key.split("/", 1)[1])
            if rep in per_rep:
                raise ValueError(f"repetition {rep} is in more than one result ({path})")
            per_rep[rep] = {k[len("pbt_minus_"):]: float(v["mean"]) for k, v in run.items()
                            if k.startswith("pbt_minus_")}
    if not per_rep:
        raise ValueError("no evaluated repetition in the results given")
    arms = sorted(set().union(*per_rep.values()))
    out: dict[str, Any] = {"repetitions": sorted(per_rep), "per_repetition": per_rep}
    for arm in arms:
        values = np.array([per_rep[r][arm] for r in sorted(per_rep) if arm in per_rep[r]])
        out[f"pbt_minus_{arm}"] = {**Summary.of(values).as_dict(),
                                   "ahead": int((values > 0).sum())}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rltrader pbt",
        description="PBT against fixed hyperparameters at equal compute, paired on "
                    "held-out markets (each arm's named member alone in each of 16 "
                    "markets per evaluation seed)")
    parser.add_argument("--task", default="market_making", choices=sorted(TASKS),
                        help="the env's action mode and reward (default: market_making)")
    parser.add_argument("--market", default="thin",
                        help="the preset trained and evaluated on (default: thin)")
    parser.add_argument("--horizon", type=int, default=1000,
                        help="steps per episode (default: 1000)")
    parser.add_argument("--repetitions", default="0-2",
                        help="training seeds, one repetition each (default: 0-2)")
    parser.add_argument("--eval-seeds", default="100-104",
                        help="held-out market seeds of the paired evaluation "
                             "(default: 100-104)")
    parser.add_argument("--agent-steps", type=float, default=10e6,
                        help="training budget of each arm, in agent-steps: equal compute "
                             "(default: 1e7)")
    parser.add_argument("--n-envs", type=int, default=256,
                        help="training markets (default: 256)")
    parser.add_argument("--n-agents", type=int, default=1,
                        help="agents per training market (default: 1)")
    parser.add_argument("--n-policies", type=int, default=64,
                        help="stacked policies per arm, the population (default: 64)")
    parser.add_argument("--fitness", default="sharpe", choices=("sharpe", "mean"),
                        help="what PBT ranks members by: mean / s.d. of their episode "
                             "returns, or the mean (default: sharpe)")
    parser.add_argument("--gamma", type=float, default=0.95, help="discount (default: 0.95)")
    parser.add_argument("--gae-lambda", type=float, default=0.9,
                        help="GAE's lambda (default: 0.9)")
    parser.add_argument("--n-steps", type=int, default=32,
                        help="batched steps per rollout (default: 32)")
    parser.add_argument("--ready-every", type=int, default=10,
                        help="updates between rounds of exploit and explore (default: 10)")
    parser.add_argument("--selection", default="truncation", choices=("truncation", "ttest"),
                        help="PBT's selection; the t-test needs --fitness mean "
                             "(default: truncation)")
    parser.add_argument("--min-episodes", type=int, default=8,
                        help="t-test: episodes a member needs before it is compared "
                             "(default: 8)")
    parser.add_argument("--arms", default="pbt,fixed",
                        help="pbt and controls: fixed (geometric means), random (fixed "
                             "draws, random search) (default: pbt,fixed)")
    parser.add_argument("--validation-seeds", default="",
                        help="name each arm's member on these markets (of its --top-k "
                             "fittest) instead of by training fitness, e.g. 50-51 "
                             "(default: by training fitness)")
    parser.add_argument("--top-k", type=int, default=8,
                        help="with --validation-seeds: how many of the fittest are "
                             "validated (default: 8)")
    parser.add_argument("--episodes", type=int, default=2,
                        help="episodes per market in validation and evaluation (default: 2)")
    parser.add_argument("--warm-start", default=None, metavar="BASELINE",
                        help="every arm starts from one behaviour clone of this baseline "
                             "(--backend batched only; default: random weights)")
    parser.add_argument("--warm-start-steps", type=int, default=400,
                        help="batched steps the teacher plays, not counted (default: 400)")
    parser.add_argument("--backend", default="batched", choices=BACKENDS,
                        help="where the training markets step: this process (batched), "
                             "processes (sharded) or Ray actors (ray); this process learns. "
                             "sharded and ray give the same markets for the same "
                             "--n-workers, other ones than batched (default: batched)")
    parser.add_argument("--n-workers", type=int, default=1,
                        help="processes or Ray actors with --backend sharded or ray "
                             "(default: 1)")
    parser.add_argument("--out", default="pbt-compare",
                        help="output folder (default: pbt-compare)")
    parser.add_argument("--summarize", nargs="+", default=None, metavar="RESULT.json",
                        help="train nothing: pool these runs' result.json, the interval over "
                             "repetitions of PBT minus each control")
    args = parser.parse_args(argv)
    if args.summarize is not None:
        try:
            pooled = summarize(args.summarize)
        except (OSError, ValueError, KeyError) as error:
            parser.error(f"--summarize: {error}")
        for rep in pooled["repetitions"]:
            print(f"repetition {rep}: " + ", ".join(
                f"PBT - {arm} {d:+.3f}" for arm, d in pooled["per_repetition"][rep].items()))
        for key in (k for k in pooled if k.startswith("pbt_minus_")):
            d = pooled[key]
            print(f"PBT - {key[len('pbt_minus_'):]}, over {d['n']} repetitions: "
                  f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], "
                  f"ahead in {d['ahead']}")
        return 0
    try:
        settings = PBTSettings(n_policies=args.n_policies, fitness=args.fitness,
                               gamma=args.gamma, gae_lambda=args.gae_lambda,
                               n_steps=args.n_steps, ready_every=args.ready_every,
                               selection=args.selection, min_episodes=args.min_episodes)
        result = compare(task=args.task, market=args.market, out=args.out,
                         repetitions=parse_seeds(args.repetitions),
                         agent_steps=int(args.agent_steps), n_envs=args.n_envs,
                         n_agents=args.n_agents, settings=settings,
                         eval_seeds=parse_seeds(args.eval_seeds), horizon=args.horizon,
                         arms=args.arms.split(","),
                         validation_seeds=(parse_seeds(args.validation_seeds)
                                           if args.validation_seeds else ()),
                         top_k=args.top_k, episodes=args.episodes,
                         warm_start=args.warm_start, warm_start_steps=args.warm_start_steps,
                         backend=args.backend, n_workers=args.n_workers)
    except ValueError as error:
        parser.error(str(error))
    for arm in (a for a in result["arms"] if a != "pbt"):
        d = result[f"pbt_minus_{arm}"]
        print(f"PBT - {arm}, named members on held-out markets: {d['mean']:+.3f} "
              f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (n={d['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
