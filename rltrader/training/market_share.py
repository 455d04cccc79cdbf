"""The market-share experiment: a population of learning executors whose size classes span
100x, trained together in one market with its scripted background, then measured against
the same population untrained and scripted (docs/market_share.md).

Every agent works a parent order each episode (``action_mode="execution"``: the side
drawn at random, ``execution_size`` order sizes, so a class-100 agent's parent is 100 times
a class-1 agent's), and chooses each step to wait, or to send a market or a resting child
at one of the env's rates. One policy per size class, trained by :class:`FastPPO` on the
implementation shortfall of its own parents, with the unfilled rest of the parent marked
at what completing it now would cost (``execution_reward="marked"``; with the plain
shortfall the large class learned to dump its parent at the deadline). A large agent's
parent is about twice the background's volume over an episode (108 lots on
``resilient``), a small agent's two percent of it: the large ones move the price whatever
they do, and how they work their parents decides by how much; the small ones gain by
reading the large ones' flow.

Conditions, each on the same held-out market seeds:

- ``background``: the market without the population (every agent holds);
- ``scripted``: every agent runs TWAP (a market child of ``lots left / steps left``);
- ``untrained``: each training seed's freshly initialised policies, sampling;
- ``trained``: each training seed's trained policies (most likely action).

The measures are those of :mod:`rltrader.analysis.market_share`: each class's impact per
lot and its decay (a propagator fit), how it works its parents (market / resting / wait,
rates, front-loading), its shortfall with and against the large class's parents, the
lead-lag of its flow with the large class's, and market quality. Paired differences
(trained minus untrained, trained minus scripted) are taken per held-out seed, after
averaging the training seeds, with Student-t intervals over the held-out seeds.

``rltrader market-share --out DIR`` (or ``python -m rltrader.training.market_share``)
trains, measures and writes ``results.json``, ``report.md`` and the figures; ``--quick``
is a small run for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.analysis import market_share as measure
from rltrader.core.checks import is_int
from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.sim.config import MarketConfig
from rltrader.sim.market import preset
from rltrader.training.evaluate import parse_seeds
from rltrader.training.evaluation import Summary, interval_text
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, load_policy, train
from rltrader.training.ppo.policy import Policy
from rltrader.training.ppo.trainer import plain
from rltrader.training.strategies import TWAP

CONDITIONS = ("background", "scripted", "untrained", "trained", "deviation")
QUALITY = ("spread", "depth", "volatility", "variance_ratio", "pricing_error", "one_sided")
BEHAVIOUR = ("wait", "market", "resting", "rate_index", "front_loaded", "left_to_deadline",
             "spread_timing", "shortfall", "shortfall_with", "shortfall_against")


def _trainer_defaults() -> FastPPOSettings:
    return FastPPOSettings(n_steps=64, n_epochs=2, learning_rate=3e-4, gamma=1.0,
                           gae_lambda=0.95, ent_coef=0.001, threads=1, progress=False)


@dataclass(frozen=True)
class MarketShareSettings:
    """The experiment. ``size_classes``: one per agent of every market (the same in each);
    agents of equal class share a policy. ``agent_steps`` per training seed."""

    market: str = "resilient"
    noise_traders: int | None = None
    horizon: int = 300
    execution_size: float = 2.0
    execution_reward: str = "marked"
    size_classes: tuple[float, ...] = (1, 1, 1, 1, 10, 10, 100)
    n_envs: int = 256
    agent_steps: int = 20_000_000
    train_seeds: tuple[int, ...] = (0, 1, 2)
    eval_seeds: tuple[int, ...] = (100, 101, 102, 103, 104)
    eval_envs: int = 64
    eval_episodes: int = 3
    lags: int = 30
    max_lag: int = 20
    return_horizon: int = 20
    trainer: FastPPOSettings = field(default_factory=_trainer_defaults)

    def __post_init__(self) -> None:
        for name in ("horizon", "n_envs", "agent_steps", "eval_envs", "eval_episodes",
                     "lags", "max_lag", "return_horizon"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.noise_traders is not None and (not is_int(self.noise_traders)
                                               or self.noise_traders < 0):
            raise ValueError(f"noise_traders must be None or an int >= 0, got "
                             f"{self.noise_traders!r}")
        if not all(is_int(seed) for seed in (*self.train_seeds, *self.eval_seeds)):
            raise ValueError("train_seeds and eval_seeds must be ints")
        if not isinstance(self.trainer, FastPPOSettings):
            raise ValueError(f"trainer must be FastPPOSettings, got {self.trainer!r}")
        self.env_config()                   # the market, sizes and reward, checked now
        classes = sorted(set(self.size_classes))
        if len(classes) < 2:
            raise ValueError("size_classes needs at least two distinct classes")
        if len(classes) > 8:
            raise ValueError(f"at most 8 size classes (one policy each), got {len(classes)}")
        for name in ("train_seeds", "eval_seeds"):
            if len(getattr(self, name)) < 2:
                raise ValueError(f"{name} needs at least two seeds (intervals)")
        if self.eval_episodes < 1 or self.horizon < 2 * self.lags:
            raise ValueError("eval_episodes must be >= 1 and horizon >= 2 x lags")

    @property
    def classes(self) -> list[list[int]]:
        """Agent slots of each size class, smallest class first."""
        return [[i for i, s in enumerate(self.size_classes) if s == c]
                for c in sorted(set(self.size_classes))]

    @property
    def class_names(self) -> list[str]:
        return [f"size {c:g}" for c in sorted(set(self.size_classes))]

    def env_config(self, action_mode: str = "execution") -> EnvConfig:
        market: str | MarketConfig = self.market
        if self.noise_traders is not None:      # learners in the place of noise traders
            config = preset(self.market)
            market = replace(config, noise=replace(config.noise, count=self.noise_traders))
        return EnvConfig(market=market, horizon=self.horizon, action_mode=action_mode,
                         execution_size=self.execution_size,
                         execution_reward=self.execution_reward,
                         size_classes=tuple(float(s) for s in self.size_classes))

    def trainer_settings(self) -> FastPPOSettings:
        return replace(self.trainer, groups=tuple(self.classes))


QUICK = dict(n_envs=32, agent_steps=200_000, train_seeds=(0, 1), eval_seeds=(100, 101),
             eval_envs=16, eval_episodes=2)


# ---- one held-out market seed under one condition ------------------------------------


def _twap(env: BatchedMarketEnv, horizon: int) -> Callable[[BatchedMarketEnv], np.ndarray]:
    strategy = TWAP()
    strategy.begin(env)
    agents = range(env.n_agents)
    return lambda e: strategy.actions(e.episode_step, horizon, e, agents).reshape(-1)


def _policy_act(policy: Policy) -> Callable[[BatchedMarketEnv], np.ndarray]:
    return lambda e: policy(e.observations)


def _deviate(env: BatchedMarketEnv, horizon: int, policy: Policy, slots: Sequence[int]
             ) -> Callable[[BatchedMarketEnv], np.ndarray]:
    """The trained population with the agents ``slots`` running TWAP instead: does one
    class gain by leaving what it learned, the others as trained (a best-response check)?"""
    twap = _twap(env, horizon)
    columns = np.asarray(slots)

    def act(e: BatchedMarketEnv) -> np.ndarray:
        actions = policy(e.observations).reshape(e.n_books, e.n_agents)
        actions[:, columns] = twap(e).reshape(e.n_books, e.n_agents)[:, columns]
        return actions.reshape(-1)

    return act


def measure_run(settings: MarketShareSettings, condition: str, eval_seed: int,
                policy: Policy | None = None) -> dict[str, Any]:
    """Record ``eval_episodes`` episodes of ``eval_envs`` markets of ``eval_seed`` under
    ``condition`` and measure them (JSON-ready)."""
    s = settings
    steps = s.eval_episodes * s.horizon
    if condition == "background":
        env = BatchedMarketEnv(s.env_config("discrete"), n_envs=s.eval_envs,
                               n_agents=len(s.size_classes), seed=eval_seed)
        hold = np.zeros(env.num_agents_total, dtype=np.int64)
        recording = measure.record(env, lambda e: hold, steps=steps, seed=eval_seed)
        return {"quality": measure.market_quality(recording)}
    env = BatchedMarketEnv(s.env_config(), n_envs=s.eval_envs,
                           n_agents=len(s.size_classes), seed=eval_seed)
    if condition == "scripted":
        act = _twap(env, s.horizon)
    elif condition == "deviation" and policy is not None:
        act = _deviate(env, s.horizon, policy, s.classes[-1])
    elif policy is not None:
        act = _policy_act(policy)
    else:
        raise ValueError(f"condition {condition!r} needs a policy")
    recording = measure.record(env, act, steps=steps, seed=eval_seed)
    classes, largest = s.classes, s.classes[-1]
    kernel = measure.propagator(recording, classes, lags=s.lags)
    return {
        "quality": measure.market_quality(recording),
        "impact": np.cumsum(kernel, axis=1).tolist(),
        "response": measure.response(recording, classes, lags=s.lags).tolist(),
        "lead_lag": [measure.lead_lag(recording, slots, largest, max_lag=s.max_lag).tolist()
                     for slots in classes[:-1]],
        "conditional_return": [measure.conditional_return(recording, slots,
                                                          horizon=s.return_horizon)
                               for slots in classes],
        "behaviour": measure.execution_behaviour(
            recording, classes, horizon=s.horizon,
            n_rates=len(env.config.execution_rates)),
    }


# ---- the experiment ------------------------------------------------------------------


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="market-share", disable=not enabled, unit="run")


def run(settings: MarketShareSettings, out_dir: Path | str, *, progress: bool = True,
        reuse: bool = False, checkpoints: Path | str | None = None) -> dict[str, Any]:
    """Train every training seed's population, measure every condition on every held-out
    seed, summarise and write ``results.json``, ``report.md`` and the figures to
    ``out_dir``. Returns the results.

    ``reuse``: a seed whose ``seed_N/checkpoint.pt`` is already in ``out_dir`` is not
    trained again (measure a finished run anew). ``checkpoints``: measure the trained
    policies of another run's folder (its ``seed_N/checkpoint.pt``, every training seed),
    training nothing: the same population in another market."""
    s, out = settings, Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = out if checkpoints is None else Path(checkpoints)
    if checkpoints is not None:
        missing = [str(source / f"seed_{seed}" / "checkpoint.pt") for seed in s.train_seeds
                   if not (source / f"seed_{seed}" / "checkpoint.pt").is_file()]
        if missing:
            raise ValueError(f"no checkpoint {', '.join(missing)}")
    started = time.perf_counter()
    n_seeds, n_eval = len(s.train_seeds), len(s.eval_seeds)
    bar = _progress(n_seeds * (1 + 3 * n_eval) + 2 * n_eval, progress)
    training = {}
    for seed in s.train_seeds:
        bar.set_postfix_str(f"training seed {seed}")
        if checkpoints is not None or (reuse and (out / f"seed_{seed}"
                                                   / "checkpoint.pt").is_file()):
            training[str(seed)] = {"reused": str(source / f"seed_{seed}")}
            bar.update()
            continue
        result = train(s.env_config(), n_envs=s.n_envs, n_agents=len(s.size_classes),
                       total_agent_steps=s.agent_steps, seed=seed,
                       out_dir=out / f"seed_{seed}", settings=s.trainer_settings())
        training[str(seed)] = {k: result[k] for k in (
            "agent_steps", "agent_steps_per_s", "learn_s", "final_mean_episode_return")}
        bar.update()
    runs: dict[str, dict[str, Any]] = {c: {} for c in CONDITIONS}
    for e in s.eval_seeds:
        for condition in ("background", "scripted"):
            bar.set_postfix_str(f"{condition} {e}")
            runs[condition][str(e)] = measure_run(s, condition, e)
            bar.update()
    for seed in s.train_seeds:
        trained = load_policy(source / f"seed_{seed}" / "checkpoint.pt")
        for e in s.eval_seeds:
            bar.set_postfix_str(f"seed {seed} on {e}")
            fresh = FastPPO(BatchedMarketEnv(s.env_config(), n_envs=1,
                                             n_agents=len(s.size_classes), seed=e),
                            s.trainer_settings(), seed=seed)
            untrained = Policy(fresh.model, sample_seed=seed * 1_000 + e)
            runs["untrained"][f"{seed}/{e}"] = measure_run(s, "untrained", e, untrained)
            runs["trained"][f"{seed}/{e}"] = measure_run(s, "trained", e, trained)
            runs["deviation"][f"{seed}/{e}"] = measure_run(s, "deviation", e, trained)
            bar.update(3)
    bar.close()
    results = {"settings": plain(asdict(s)), "classes": s.class_names,
               "training": training, "runs": runs, "summary": summarise(s, runs),
               "seconds": time.perf_counter() - started}
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True))
    write_report(results, out)
    return results


# ---- summaries -----------------------------------------------------------------------


def _per_eval(runs: dict[str, dict[str, Any]], condition: str, eval_seeds: Sequence[int],
              get: Callable[[dict[str, Any]], float]) -> np.ndarray:
    """One value per held-out seed: the condition's, averaged over its training seeds."""
    table = runs[condition]
    values = []
    for e in eval_seeds:
        cells = [get(v) for k, v in table.items() if k.split("/")[-1] == str(e)]
        values.append(float(np.mean(cells)))
    return np.asarray(values)


def _summary(x: np.ndarray) -> dict[str, float] | None:
    x = x[np.isfinite(x)]
    return Summary.of(x).as_dict() if x.size else None


def _impact_lags(lags: int) -> list[int]:
    """The lags the tables show of a cumulative impact curve of ``lags`` values."""
    return sorted({0, min(5, lags - 1), lags - 1})


def _lead_lags(max_lag: int) -> list[int]:
    """The lags the tables show of a lead-lag curve."""
    near = min(1, max_lag)
    far = min(5, max_lag)
    return sorted({-far, -near, 0, near, far})


def summarise(settings: MarketShareSettings, runs: dict[str, dict[str, Any]]
              ) -> dict[str, Any]:
    """Per condition, each measure's mean with a CI over held-out seeds; and the paired
    differences trained - untrained and trained - scripted (trained - background for market
    quality too)."""
    s = settings
    seeds = s.eval_seeds
    getters: dict[str, Callable[[dict[str, Any]], float]] = {
        f"quality.{q}": (lambda v, q=q: v["quality"][q]) for q in QUALITY}
    for c, name in enumerate(s.class_names):
        for b in BEHAVIOUR:
            getters[f"{name}.{b}"] = lambda v, c=c, b=b: v["behaviour"][c][b]
        for lag in _impact_lags(s.lags):
            getters[f"{name}.impact_{lag}"] = lambda v, c=c, lag=lag: v["impact"][c][lag]
            getters[f"{name}.response_{lag}"] = (
                lambda v, c=c, lag=lag: v["response"][c][lag])
        getters[f"{name}.conditional_return"] = (
            lambda v, c=c: v["conditional_return"][c])
    for c, name in enumerate(s.class_names[:-1]):
        for lag in _lead_lags(s.max_lag):
            getters[f"{name}.lead_lag_{lag:+d}"] = (
                lambda v, c=c, lag=lag: v["lead_lag"][c][s.max_lag + lag])
    summary: dict[str, Any] = {}
    for key, get in getters.items():
        row: dict[str, Any] = {}
        values = {}
        for condition in CONDITIONS:
            if condition == "background" and not key.startswith("quality."):
                continue
            values[condition] = _per_eval(runs, condition, seeds, get)
            row[condition] = _summary(values[condition])
        for other in ("untrained", "scripted", "background"):
            if other in values:
                row[f"trained-{other}"] = _summary(values["trained"] - values[other])
        if "deviation" in values:
            row["deviation-trained"] = _summary(values["deviation"] - values["trained"])
        summary[key] = row
    return summary


# ---- the report ----------------------------------------------------------------------


def _cell(row: dict[str, Any], key: str, digits: int = 2) -> str:
    value = row.get(key)
    return "n/a" if value is None else (interval_text(value, digits)
                                        if math.isfinite(value["ci_low"])
                                        else f"{value['mean']:+.{digits}f}")


def _table(summary: dict[str, Any], keys: Sequence[str], columns: Sequence[str],
           digits: int = 2) -> list[str]:
    lines = ["| measure | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(_cell(summary[key], c, digits)
                                                for c in columns) + " |")
    return lines


def write_report(results: dict[str, Any], out_dir: Path | str) -> Path:
    """``report.md`` with the tables and the figures (``impact.png``, ``lead_lag.png``,
    ``behaviour.png``, ``quality.png``)."""
    out = Path(out_dir)
    s, summary, names = results["settings"], results["summary"], results["classes"]
    lines = [
        "# The market-share experiment",
        "",
        f"Market `{s['market']}`"
        + ("" if s["noise_traders"] is None else f" with {s['noise_traders']} noise traders")
        + f", {len(s['size_classes'])} learning executors a market "
        f"(size classes {', '.join(f'{c:g}' for c in s['size_classes'])}), parents of "
        f"{s['execution_size']:g} order sizes over {s['horizon']} steps; "
        f"{s['agent_steps']:,} agent-steps per training seed ({len(s['train_seeds'])} "
        f"seeds), measured on {len(s['eval_seeds'])} held-out seeds x {s['eval_envs']} "
        f"markets x {s['eval_episodes']} episodes. Means with 95 % intervals over the "
        "held-out seeds (each the mean of the training seeds); differences paired per "
        "held-out seed. Took "
        f"{results['seconds']:.0f} s.",
        "",
        "## Market quality",
        "",
        *_table(summary, [f"quality.{q}" for q in QUALITY],
                [*CONDITIONS, "trained-background", "trained-scripted",
                 "trained-untrained"], 3),
        "",
        "![quality](quality.png)",
        "",
        "## Impact per 100 lots, `lag` steps after the trade",
        "",
        "`response`: the mid's move after the class's lots, in their direction, with all "
        "that follows them; `impact`: the cumulative propagator kernel (the other trades "
        "held fixed).",
        "",
    ]
    impact_keys = [f"{n}.{kind}_{lag}" for n in names for kind in ("response", "impact")
                   for lag in _impact_lags(s["lags"])]
    lines += _table({k: {c: (None if v is None else {x: 100 * y if x != "n" else y
                                                      for x, y in v.items()})
                         for c, v in summary[k].items()} for k in impact_keys},
                    impact_keys, ["scripted", "untrained", "trained",
                                  "trained-scripted", "trained-untrained"])
    lines += ["", "![impact](impact.png)", "", "## How each class works its parents", "",
              f"`deviation`: the trained population with the {names[-1]} agents on TWAP "
              "instead (does the largest class gain by leaving what it learned?).", ""]
    lines += _table(summary, [f"{n}.{b}" for n in names for b in BEHAVIOUR],
                    ["scripted", "untrained", "trained", "deviation", "trained-scripted",
                     "trained-untrained", "deviation-trained"])
    lines += ["", "![behaviour](behaviour.png)", "",
              "## Lead-lag with the largest class's flow and conditional returns", ""]
    lines += _table(summary, [f"{n}.lead_lag_{lag:+d}" for n in names[:-1]
                              for lag in _lead_lags(s["max_lag"])]
                    + [f"{n}.conditional_return" for n in names],
                    ["scripted", "untrained", "trained", "trained-scripted",
                     "trained-untrained"], 3)
    lines += ["", "![lead-lag](lead_lag.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    _figures(results, out)
    return path


def _mean_curves(runs: dict[str, Any], key: str) -> np.ndarray:
    return np.mean([np.asarray(v[key], dtype=np.float64) for v in runs.values()], axis=0)


def _figures(results: dict[str, Any], out: Path) -> None:
    from rltrader.analysis.report import _pyplot

    plt = _pyplot()
    runs, names, s = results["runs"], results["classes"], results["settings"]
    shown = ("scripted", "untrained", "trained")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for c, name in enumerate(names):
        ax = axes[0, c]
        for k, condition in enumerate(shown):
            colour = f"C{k}"
            ax.plot(100 * _mean_curves(runs[condition], "response")[c], color=colour,
                    label=f"{condition}, response")
            ax.plot(100 * _mean_curves(runs[condition], "impact")[c], color=colour,
                    ls="--", label=f"{condition}, propagator")
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(name)
        ax.set_xlabel("steps after the trade")
    axes[0, 0].set_ylabel("mid move, ticks per 100 lots")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "impact.png", dpi=110)
    plt.close(fig)

    lags = np.arange(-s["max_lag"], s["max_lag"] + 1)
    fig, axes = plt.subplots(1, len(names) - 1, figsize=(4.2 * (len(names) - 1), 3.4),
                             squeeze=False)
    for c, name in enumerate(names[:-1]):
        ax = axes[0, c]
        for condition in shown:
            ax.plot(lags, _mean_curves(runs[condition], "lead_lag")[c], label=condition)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_title(f"{name} vs {names[-1]}")
        ax.set_xlabel("lag (> 0: the smaller class first)")
    axes[0, 0].set_ylabel("correlation of signed volume")
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(out / "lead_lag.png", dpi=110)
    plt.close(fig)

    summary = results["summary"]
    fig, axes = plt.subplots(1, len(QUALITY), figsize=(3.0 * len(QUALITY), 3.2))
    for ax, q in zip(axes, QUALITY, strict=True):
        row = summary[f"quality.{q}"]
        means = [row[c]["mean"] if row[c] else np.nan for c in CONDITIONS]
        errors = [(row[c]["ci_high"] - row[c]["mean"]) if row[c] else 0 for c in CONDITIONS]
        ax.bar(range(len(CONDITIONS)), means, yerr=np.nan_to_num(errors), capsize=3)
        ax.set_xticks(range(len(CONDITIONS)), CONDITIONS, rotation=35, fontsize=8)
        ax.set_title(q.replace("_", " "))
    fig.tight_layout()
    fig.savefig(out / "quality.png", dpi=110)
    plt.close(fig)

    parts = ("market", "resting", "wait")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for c, name in enumerate(names):
        ax = axes[0, c]
        bottom = np.zeros(len(shown))
        for part in parts:
            heights = [summary[f"{name}.{part}"][cond]["mean"] for cond in shown]
            ax.bar(range(len(shown)), heights, bottom=bottom, label=part)
            bottom += heights
        ax.set_xticks(range(len(shown)), shown)
        ax.set_title(name)
    axes[0, 0].set_ylabel("share of steps")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "behaviour.png", dpi=110)
    plt.close(fig)


# ---- command line --------------------------------------------------------------------


def _seeds(text: str) -> tuple[int, ...]:
    """``"0-2"`` or ``"0,1,5"`` (``rltrader evaluate``'s form)."""
    return tuple(parse_seeds(text))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rltrader market-share",
        description="Train a population of executors of size classes 1 to 100 together, "
        "then measure impact, behaviour, lead-lag and market quality against the same "
        "population untrained and scripted (docs/market_share.md).")
    p.add_argument("--out", default="market-share", help="output folder (default "
                   "market-share)")
    p.add_argument("--market", default="resilient", help="preset (default resilient)")
    p.add_argument("--execution-reward", choices=("marked", "shortfall"), default="marked",
                   help="the executors' reward (default marked; shortfall: the run where "
                   "the large class learned to dump at the deadline)")
    p.add_argument("--agent-steps", type=int, help="per training seed (default 20,000,000)")
    p.add_argument("--train-seeds", type=_seeds, help="e.g. 0-2 (default 0,1,2)")
    p.add_argument("--eval-seeds", type=_seeds, help="held-out seeds (default 100-104)")
    p.add_argument("--quick", action="store_true",
                   help="a small run for a smoke test (minutes; not a result)")
    p.add_argument("--noise-traders", type=int, metavar="N",
                   help="the preset's noise traders cut to N (the learners in their place)")
    p.add_argument("--checkpoints", metavar="DIR",
                   help="measure the trained policies of another run's folder (no training)")
    p.add_argument("--reuse", action="store_true",
                   help="use the checkpoints already in --out (measure again, no training)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    changes: dict[str, Any] = dict(QUICK) if args.quick else {}
    changes["market"] = args.market
    changes["execution_reward"] = args.execution_reward
    changes["noise_traders"] = args.noise_traders
    for name in ("agent_steps", "train_seeds", "eval_seeds"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    try:
        settings = MarketShareSettings(**changes)
    except ValueError as error:
        print(f"rltrader market-share: {error}")
        return 2
    try:
        results = run(settings, args.out, progress=not args.no_progress, reuse=args.reuse,
                      checkpoints=args.checkpoints)
    except ValueError as error:
        print(f"rltrader market-share: {error}")
        return 2
    print(f"wrote {Path(args.out) / 'report.md'} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
