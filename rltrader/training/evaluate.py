"""``rltrader evaluate``: trained checkpoints and baselines on held-out markets, paired.

Every candidate plays every agent row of the same markets: the same task config, the same
market (a preset, or a hybrid replay of real data), the same seeds. Each market of each
seed is one independent observation (its agents' mean episode return); candidates are
compared with the first one (the reference, usually the strongest baseline) by paired
differences over those markets, with Student-t 95 % intervals
(:mod:`rltrader.training.evaluation`). The env's valuation is its default, the
non-gameable liquidation value (docs/envs.md).

Candidates: a checkpoint file (``*.pt``, :func:`rltrader.training.fast_ppo.load_policy`),
``pretrained:NAME`` (a checkpoint shipped in ``rltrader/training/pretrained/``, with its
model card) or ``baseline:NAME`` (:data:`BASELINES`, plus the baselines of
:mod:`rltrader.training.strategies`). Each market's trained candidates are also compared
with the strongest baseline there (the highest mean, chosen after the fact).

Markets: a preset name (``resilient``, ``thin``, ``realistic`` ...), ``lobster`` (the
LOBSTER AAPL hour as a hybrid replay, one per env, every one from the hour's first message;
real data no policy trained on) or ``lobster_windows`` (the same, each env's replay from its
own seeded time of the hour: different minutes per env instead of copies of the first
ones; :func:`lobster_sources`).

Results: ``--json OUT`` writes every number; ``--report DIR`` a markdown report with a plot.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.training.evaluation import Run, Summary, interval_text, run_lineup
from rltrader.training.exploits import BuyAndHold, FixedSpreadMaker, Hold, Strategy

#: The checkpoints that ship with the package (``pretrained:NAME``), each with a model card.
PRETRAINED = Path(__file__).resolve().parent / "pretrained"

#: The tasks: their env config (the market is set per evaluated market).
TASKS: dict[str, EnvConfig] = {
    "market_making": EnvConfig(action_mode="market_making", reward="pnl"),
    "execution": EnvConfig(action_mode="execution"),
    "directional": EnvConfig(action_mode="discrete", reward="pnl"),
}


class CheckpointStrategy(Strategy):
    """A trained policy (a checkpoint) acting for its rows: one batched forward per step."""

    #: a residual market maker's teacher and policy (None: the policy acts alone); a
    #: class default for subclasses that set their policy without ``__init__``
    residual: Any = None

    def __init__(self, path: str | Path) -> None:
        import torch

        from rltrader.training.fast_ppo import load_policy
        from rltrader.training.pbt import FORMAT as POPULATION
        from rltrader.training.pbt import MemberPolicy

        self.path = Path(path)
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        # a population checkpoint plays its fittest member
        population = isinstance(state, dict) and state.get("format") == POPULATION
        self.policy = MemberPolicy(state) if population else load_policy(self.path)
        # seed_3/checkpoint.pt -> "seed_3"; a named file keeps its name
        self.name = self.path.parent.name if self.path.stem == "checkpoint" else self.path.stem
        #: a residual market maker (training/ppo/residual.py): its policy corrects the
        #: quotes of this teacher, which runs beside it
        teacher = None if population else (state.get("settings") or {}).get("residual")
        self.residual = None
        if teacher is not None:
            from rltrader.training.ppo.residual import ResidualStrategy

            self.residual = ResidualStrategy(self.policy, teacher, self.name,
                                             tune_agents=state["architecture"]["n_agents"])

    def begin(self, env: BatchedMarketEnv) -> None:
        super().begin(env)
        if self.residual is not None:
            self.residual.begin(env)

    def actions(self, step: np.ndarray, horizon: int, env: BatchedMarketEnv,
                agents: Sequence[int]) -> np.ndarray:
        if self.residual is not None:
            return self.residual.actions(step, horizon, env, agents)
        rows = env.observations.reshape(env.n_envs, env.n_agents, -1)[:, list(agents)]
        out = np.asarray(self.policy(rows.reshape(-1, rows.shape[-1])))
        return out.reshape((env.n_envs, len(agents)) + out.shape[1:]).astype(np.int64)


def _baselines() -> dict[str, Any]:
    table: dict[str, Any] = {"hold": Hold, "fixed_spread": FixedSpreadMaker,
                             "buy_and_hold": BuyAndHold}
    try:
        from rltrader.training import strategies
    except ImportError:            # the module is optional for the rest of the command
        return table
    table.update(getattr(strategies, "BASELINES", {}))
    return table


def checkpoint_path(spec: str) -> Path:
    """A checkpoint's path: ``pretrained:NAME`` is ``NAME.pt`` shipped in
    :data:`PRETRAINED` (with its model card ``NAME.md``), anything else a path."""
    if spec.startswith("pretrained:"):
        return PRETRAINED / f"{spec.split(':', 1)[1]}.pt"
    return Path(spec)


def candidate(spec: str) -> Strategy:
    """``baseline:NAME`` or a checkpoint path, as a :class:`Strategy`."""
    if spec.startswith("baseline:"):
        name = spec.split(":", 1)[1]
        table = _baselines()
        if name not in table:
            raise ValueError(f"unknown baseline {name!r}; known: {', '.join(sorted(table))}")
        made = table[name]()
        made.name = name
        return made
    if spec.startswith("pretrained:"):
        name = spec.split(":", 1)[1]
        path = checkpoint_path(spec)
        if not path.is_file():
            known = sorted(p.stem for p in PRETRAINED.glob("*.pt"))
            raise ValueError(f"unknown pretrained checkpoint {name!r}; shipped: "
                             f"{', '.join(known) or 'none'}")
        made = CheckpointStrategy(path)
        made.name = f"pretrained:{name}"
        return made
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"{spec}: no such checkpoint (or write baseline:NAME)")
    return CheckpointStrategy(path)


#: spawn key of the stream that draws ``lobster_windows``' start times (apart from the
#: env's own streams of the same seed)
_WINDOWS_KEY = 0x10B5


def lobster_sources(n_envs: int, n_agents: int, window_ns: int | None = None) -> Any:
    """``source(seed)`` for :func:`run_lineup`: one hybrid replay of the shipped LOBSTER
    AAPL hour per env.

    Without ``window_ns`` (market ``lobster``) every replay starts at the hour's first
    message: the record has no randomness, so the envs of every seed see the same
    minutes, and differ only by the agents' sizes and arrival order. With ``window_ns``
    (market ``lobster_windows``) each env's replay starts at its own time of the hour
    (``HybridReplay.start_ns``), drawn uniformly from the seed's own stream so that
    ``window_ns`` of record (the warm-up and the evaluated episodes) fit after it: the
    envs cover different windows of the hour."""
    from rltrader.data import lobster
    from rltrader.data.hybrid import HybridReplay
    from rltrader.data.samples import AAPL_HOUR, sample_path

    feed = lobster.read_messages(sample_path(AAPL_HOUR))
    stamps = feed.messages["timestamp"]
    latest = int(stamps[-1] - stamps[0]) - (window_ns or 0)
    if window_ns is not None and latest < 0:
        raise ValueError(f"lobster_windows: the record spans {int(stamps[-1] - stamps[0])} "
                         f"ns, shorter than the {window_ns} ns that the warm-up and the "
                         f"episodes need")

    def source(seed: int) -> list[Any]:
        if window_ns is None:
            return [HybridReplay(feed, n_agents) for _ in range(n_envs)]
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_WINDOWS_KEY,)))
        return [HybridReplay(feed, n_agents, start_ns=int(start))
                for start in rng.integers(0, latest + 1, n_envs)]

    return source


def evaluate(candidates: Sequence[str], *, task: str, markets: Sequence[str],
             seeds: Sequence[int], n_envs: int = 16, n_agents: int = 4, episodes: int = 2,
             horizon: int | None = None) -> dict[str, Any]:
    """Every candidate on every market and seed; summaries and paired differences."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    if not candidates:
        raise ValueError("give at least one candidate")
    base = TASKS[task]
    if horizon is not None:
        base = base.replace(horizon=horizon)
    strategies = [candidate(spec) for spec in candidates]
    names = [s.name for s in strategies]
    for k, strategy in enumerate(strategies):        # rows are keyed by name: unique
        if names.count(strategy.name) > 1:
            strategy.name = f"{strategy.name}#{k}"
    out: dict[str, Any] = {"task": task, "seeds": list(seeds), "n_envs": n_envs,
                           "n_agents": n_agents, "episodes": episodes,
                           "candidates": [s.name for s in strategies], "markets": {}}
    for market in markets:
        if market == "lobster":
            config, source = base, lobster_sources(n_envs, n_agents)
        elif market == "lobster_windows":
            window = base.replay_step_ns * (base.warmup_steps + episodes * base.horizon)
            config, source = base, lobster_sources(n_envs, n_agents, window)
        else:
            config, source = base.replace(market=market), None
        runs: list[Run] = []
        for strategy in strategies:
            runs.append(run_lineup(config, [(strategy, range(n_agents))], n_envs=n_envs,
                                   n_agents=n_agents, seeds=seeds, episodes=episodes,
                                   source=source))
        agents = list(range(n_agents))
        rows = {}
        for strategy, run in zip(strategies, runs, strict=True):
            mean = run.per_market(agents) / n_agents
            rows[strategy.name] = {
                "baseline": not isinstance(strategy, CheckpointStrategy),
                "per_market": mean.tolist(),
                "return_per_agent": Summary.of(mean).as_dict(),
                "minus_reference": Summary.of(
                    mean - runs[0].per_market(agents) / n_agents).as_dict(),
                "limit_ratio": run.limit_ratio(agents),
            }
        out["markets"][market] = {"reference": strategies[0].name, "rows": rows,
                                  "against_strongest": against_strongest(rows)}
    return out


def against_strongest(rows: dict[str, Any]) -> dict[str, Any] | None:
    """Every trained candidate against the strongest baseline of the market (the highest
    mean return, chosen after the fact: the hardest bar), paired by market x seed; and
    the trained candidates together (each market's difference averaged over them: the
    training seeds' mean policy)."""
    baselines = [name for name, row in rows.items() if row["baseline"]]
    trained = [name for name, row in rows.items() if not row["baseline"]]
    if not baselines or not trained:
        return None
    best = max(baselines, key=lambda name: rows[name]["return_per_agent"]["mean"])
    reference = np.array(rows[best]["per_market"])
    diffs = {name: np.array(rows[name]["per_market"]) - reference for name in trained}
    out = {"baseline": best,
           "candidates": {name: Summary.of(d).as_dict() for name, d in diffs.items()}}
    if len(trained) > 1:
        out["all_trained"] = Summary.of(np.mean(list(diffs.values()), axis=0)).as_dict()
    return out



def report(result: dict[str, Any], folder: Path) -> Path:
    """``report.md`` and ``returns.png`` in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    markets = list(result["markets"])
    fig, axes = plt.subplots(1, len(markets), figsize=(5 * len(markets), 3.6), squeeze=False)
    unit = "shortfall gain, ticks per lot" if result["task"] == "execution" else (
        "return, ticks per lot of order size")
    lines = [f"# Evaluation: {result['task']}", "",
             f"Seeds {result['seeds']}, {result['n_envs']} markets x {result['n_agents']} "
             f"agents each, {result['episodes']} episode{'s' * (result['episodes'] != 1)}; "
             "each market of each seed is one "
             "observation. Differences are paired with the first candidate (the reference).",
             ""]
    for ax, market in zip(axes[0], markets, strict=True):
        rows = result["markets"][market]["rows"]
        names = list(rows)
        means = [rows[n]["return_per_agent"]["mean"] for n in names]
        errors = [rows[n]["return_per_agent"]["mean"] - rows[n]["return_per_agent"]["ci_low"]
                  for n in names]
        ax.bar(range(len(names)), means, yerr=np.nan_to_num(errors), capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(market)
        ax.set_ylabel(unit)
        reference = result["markets"][market]["reference"]
        lines += [f"## {market}", "", f"| candidate | {unit} (95 % CI) | − {reference} "
                  "(paired) | max |position| / limit |", "|---|---|---|---|"]
        for n in names:
            r = rows[n]
            lines.append(f"| {n} | {interval_text(r['return_per_agent'], 3)} | "
                         f"{interval_text(r['minus_reference'], 3)} "
                         f"| {r['limit_ratio']:.2f} |")
        lines.append("")
        strongest = result["markets"][market].get("against_strongest")
        if strongest:
            lines += [f"Against the strongest baseline here, `{strongest['baseline']}` "
                      "(paired):", "", "| trained | − strongest baseline (95 % CI) |",
                      "|---|---|"]
            lines += [f"| {n} | {interval_text(d, 3)} |"
                      for n, d in strongest["candidates"].items()]
            if "all_trained" in strongest:
                lines.append(f"| all trained seeds (mean policy) | "
                             f"{interval_text(strongest['all_trained'], 3)} |")
            lines.append("")
    fig.tight_layout()
    fig.savefig(folder / "returns.png", dpi=110)
    plt.close(fig)
    lines.append("![returns](returns.png)")
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path




def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` or ``"1,5,9"``."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"seeds: a list of ints or ranges like 0-4, got {text!r}")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    shipped = ", ".join(f"pretrained:{p.stem}" for p in sorted(PRETRAINED.glob("*.pt")))
    parser = argparse.ArgumentParser(
        prog="rltrader evaluate", description=__doc__.split("\n\n")[0],
        epilog="example: rltrader evaluate baseline:best_flow_following "
               "pretrained:directional --task directional --markets realistic,lobster "
               "--seeds 100-104 --n-agents 1 --report OUT (the model card's table; "
               "docs/training.md)")
    parser.add_argument("candidates", nargs="+", metavar="CANDIDATE",
                        help="a checkpoint (*.pt), a shipped one (" + shipped + ") or "
                             "baseline:NAME, NAME one of " + ", ".join(sorted(_baselines()))
                             + "; the first is the reference of the paired differences")
    parser.add_argument("--task", default="market_making", choices=sorted(TASKS),
                        help="the env's action mode and reward (default: market_making)")
    parser.add_argument("--markets", default="resilient,thin",
                        help="comma-separated: presets, lobster (the AAPL hour from its "
                             "open in every env), lobster_windows (each env from its own "
                             "seeded time of the hour) (default: resilient,thin)")
    parser.add_argument("--seeds", default="100-104",
                        help="market seeds, ranges or a list: 100-104 or 1,5,9 "
                             "(default: 100-104)")
    parser.add_argument("--n-envs", type=int, default=16,
                        help="markets per seed; each is one paired observation (default: 16)")
    parser.add_argument("--n-agents", type=int, default=4,
                        help="agents per market, all played by the candidate (default: 4)")
    parser.add_argument("--episodes", type=int, default=2,
                        help="episodes per market, averaged (default: 2)")
    parser.add_argument("--horizon", type=int, default=None,
                        help="steps per episode (default: the task's)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="write every number to OUT (without --report they are also printed)")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="write a markdown report with a plot to DIR and print it")
    args = parser.parse_args(argv)
    result = evaluate(args.candidates, task=args.task, markets=args.markets.split(","),
                      seeds=parse_seeds(args.seeds), n_envs=args.n_envs,
                      n_agents=args.n_agents, episodes=args.episodes, horizon=args.horizon)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    if args.report is not None:
        print(report(result, args.report).read_text())
    else:
        print(json.dumps(result, indent=2))
    return 0


__all__ = ["TASKS", "CheckpointStrategy", "candidate", "evaluate", "main", "report"]


if __name__ == "__main__":
    raise SystemExit(main())
