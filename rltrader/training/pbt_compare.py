"""Population-based training against the same population with fixed hyperparameters, at
equal compute (``python -m rltrader.training.pbt_compare``; docs/training.md,
"Population-based training").

For each repetition seed, two populations of ``n_policies`` members train on the same
markets for the same agent-steps: one with exploit/explore (:class:`PBTSettings`
``explore=True``, members' learning rates and entropy bonuses drawn log-uniformly), one
with every member at the ranges' geometric means and no rounds. The fittest member of
each then plays held-out markets (:func:`rltrader.training.evaluate.evaluate`, alone in
its market); the two are paired by market, over every repetition. Output: ``result.json``
and ``pbt_vs_fixed.png`` (the populations' fitness during training) in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.envs import BatchedMarketEnv
from rltrader.training.evaluate import TASKS, evaluate, parse_seeds
from rltrader.training.evaluation import Summary
from rltrader.training.pbt import PBTSettings, Population


def compare(*, task: str, market: str, out: Path | str, repetitions: Sequence[int],
            agent_steps: int, n_envs: int, n_agents: int, settings: PBTSettings,
            eval_seeds: Sequence[int], horizon: int, progress: bool = True
            ) -> dict[str, Any]:
    """Train both populations per repetition, evaluate their fittest members, pair them."""
    if set(repetitions) & set(eval_seeds):
        raise ValueError("evaluation seeds must not be training seeds")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = TASKS[task].replace(market=market, horizon=horizon)
    runs: dict[str, Any] = {}
    diffs: list[np.ndarray] = []
    for seed in repetitions:
        paths = {}
        for mode, explore in (("pbt", True), ("fixed", False)):
            began = time.perf_counter()
            env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=seed)
            population = Population(env, _with(settings, explore), seed=seed)
            population.learn(agent_steps)
            paths[mode] = population.save(out / f"seed_{seed}" / f"{mode}.pt")
            runs[f"{mode}/{seed}"] = {
                "seconds": time.perf_counter() - began, "curve": population.curve,
                "best_member": population.best(),
                "learning_rate": population.hyper["learning_rate"].tolist(),
                "ent_coef": population.hyper["ent_coef"].tolist()}
            if progress:
                print(f"seed {seed} {mode}: {runs[f'{mode}/{seed}']['seconds']:.0f} s, "
                      f"last fitness {population.curve[-1] if population.curve else None}",
                      flush=True)
        result = evaluate([str(paths["fixed"]), str(paths["pbt"])], task=task,
                          markets=[market], seeds=eval_seeds, n_envs=16, n_agents=1,
                          episodes=2, horizon=horizon)
        rows = result["markets"][market]["rows"]
        fixed, pbt = (np.array(rows[name]["per_market"]) for name in rows)
        runs[f"evaluation/{seed}"] = {"fixed": Summary.of(fixed).as_dict(),
                                      "pbt": Summary.of(pbt).as_dict(),
                                      "pbt_minus_fixed": Summary.of(pbt - fixed).as_dict()}
        diffs.append(pbt - fixed)
    summary = {"task": task, "market": market, "agent_steps": agent_steps,
               "n_envs": n_envs, "n_agents": n_agents, "repetitions": list(repetitions),
               "eval_seeds": list(eval_seeds), "settings": _plain(settings),
               "pbt_minus_fixed": Summary.of(np.concatenate(diffs)).as_dict(), "runs": runs}
    (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(runs, repetitions, out / "pbt_vs_fixed.png")
    return summary


def _with(settings: PBTSettings, explore: bool) -> PBTSettings:
    from dataclasses import replace

    return replace(settings, explore=explore)


def _plain(settings: PBTSettings) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}


def _plot(runs: dict[str, Any], repetitions: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, color in (("pbt", "tab:blue"), ("fixed", "tab:gray")):
        for k, seed in enumerate(repetitions):
            curve = runs[f"{mode}/{seed}"]["curve"]
            x = [c["agent_steps"] / 1e6 for c in curve]
            ax.plot(x, [c["best"] for c in curve], color=color, alpha=0.9,
                    label=f"{mode}: best member" if k == 0 else None)
            ax.plot(x, [c["median"] for c in curve], color=color, alpha=0.5, ls="--",
                    label=f"{mode}: median" if k == 0 else None)
    ax.set_xlabel("agent-steps (millions)")
    ax.set_ylabel("fitness")
    ax.set_title("population-based training vs fixed hyperparameters, equal compute")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rltrader.training.pbt_compare",
        description="PBT against fixed hyperparameters at equal compute, paired on "
                    "held-out markets")
    parser.add_argument("--task", default="market_making", choices=sorted(TASKS))
    parser.add_argument("--market", default="thin")
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--repetitions", default="0-2", help="training seeds, e.g. 0-2")
    parser.add_argument("--eval-seeds", default="100-104")
    parser.add_argument("--agent-steps", type=float, default=10e6)
    parser.add_argument("--n-envs", type=int, default=256)
    parser.add_argument("--n-agents", type=int, default=1)
    parser.add_argument("--n-policies", type=int, default=64)
    parser.add_argument("--fitness", default="sharpe", choices=("sharpe", "mean"))
    parser.add_argument("--gamma", type=float, default=0.95)
    parser.add_argument("--ready-every", type=int, default=10)
    parser.add_argument("--out", default="pbt-compare")
    args = parser.parse_args(argv)
    settings = PBTSettings(n_policies=args.n_policies, fitness=args.fitness,
                           gamma=args.gamma, ready_every=args.ready_every)
    result = compare(task=args.task, market=args.market, out=args.out,
                     repetitions=parse_seeds(args.repetitions),
                     agent_steps=int(args.agent_steps), n_envs=args.n_envs,
                     n_agents=args.n_agents, settings=settings,
                     eval_seeds=parse_seeds(args.eval_seeds), horizon=args.horizon)
    d = result["pbt_minus_fixed"]
    print(f"PBT - fixed, fittest members on held-out markets: {d['mean']:+.3f} "
          f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (n={d['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
