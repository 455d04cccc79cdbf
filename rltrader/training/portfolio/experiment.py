"""Train the portfolio manager hierarchically and evaluate it against its baselines
(docs/portfolio.md): ``python -m rltrader.training.portfolio.experiment --out DIR``.

1. **Traders.** One shared trader policy for every stock, trained with the fast PPO
   trainer on :class:`TargetTrackingEnv` (random targets held ``decision_steps`` steps),
   then compared with the scripted executors on validation seeds (tracking error, cost
   per lot traded, the task's reward); the trader with the best mean reward there (chosen
   before the held-out evaluation) executes for the manager, frozen.
2. **Manager.** PPO on :class:`PortfolioEnv` (one row per market, a decision every
   ``decision_steps`` steps, rewarded by the differential Sharpe ratio), one run per
   training seed.
3. **Evaluation.** Every manager and the allocation baselines (flat, equal weight,
   inverse volatility, buy and hold), executed by the same traders, on held-out seeds
   of the training preset and of other presets: per market, the mean over episodes of
   the episode's Sharpe ratio (of the per-decision portfolio returns) and total return
   (bp of capital); paired differences (manager - baseline, same markets) with Student-t
   95 % intervals, markets as the units, for each training seed.

Writes ``report.json``, ``report.png``, the checkpoints (``trader.pt``,
``manager_seed<k>.pt``) and ``report.md``. ``--trader aggressive|patient|PATH`` uses that
trader instead of training one; ``--managers PATH,...`` evaluates those manager
checkpoints instead of training (a shipped checkpoint on other seeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.envs import EnvConfig
from rltrader.sim.config import preset
from rltrader.training.evaluate import checkpoint_path, parse_seeds
from rltrader.training.evaluation import Summary
from rltrader.training.portfolio import real
from rltrader.training.portfolio.manager import (
    BASELINES,
    PortfolioConfig,
    PortfolioEnv,
    StackedPortfolioEnv,
    guard_clips,
    guard_manager,
    observation_features,
)
from rltrader.training.portfolio.tracking import ScriptedExecutor, TargetTrackingEnv

Allocator = Callable[[np.ndarray], np.ndarray]


def market(name: str, correlation: float) -> Any:
    """Preset ``name`` with the symbols' diffusion shocks correlated."""
    mc = preset(name)
    return mc.replace(fundamental=dataclasses.replace(mc.fundamental,
                                                      correlation=correlation))


def task(preset_name: str = "resilient", *, symbols: int = 4, correlation: float = 0.5,
         horizon: int = 1_000, decision_steps: int = 50, drift_mean: float = 0.0,
         drift_sd: float = 0.0, cost_feature: bool = False,
         sharpe_prior: float | None = None, sharpe_guard: bool = False,
         wait_decisions: int = 0, min_weight: float = 0.0) -> PortfolioConfig:
    """The experiment's task on a preset: ``symbols`` correlated stocks, one agent of size
    class 1 per market (order size 2 lots, position limit 20 lots per stock); a drift of
    the fundamentals drawn per stock and episode (``drift_mean``, ``drift_sd``, ticks per
    second; EnvConfig) makes holding pay; ``cost_feature``, ``sharpe_prior`` and
    ``sharpe_guard``, ``wait_decisions`` and ``min_weight``: the manager's
    (:class:`PortfolioConfig`)."""
    env = EnvConfig(market=market(preset_name, correlation), symbols=symbols,
                    horizon=horizon, warmup_steps=200, size_classes=(1.0,), base_qty=2,
                    base_position_limit=20, drift_mean=drift_mean, drift_sd=drift_sd)
    return PortfolioConfig(env=env, decision_steps=decision_steps,
                           cost_feature=cost_feature, sharpe_prior=sharpe_prior,
                           sharpe_guard=sharpe_guard, wait_decisions=wait_decisions,
                           min_weight=min_weight)


# ---- traders ----------------------------------------------------------------------------

def trader_settings(threads: int = 1) -> Any:
    from rltrader.training.fast_ppo import FastPPOSettings

    # gamma 0.99: a target is held 50 steps, and closing a gap pays over all of them
    return FastPPOSettings(n_steps=64, n_epochs=4, minibatch_size=16_384,
                           learning_rate=1e-3, gamma=0.99, gae_lambda=0.95,
                           ent_coef=0.003, threads=threads, progress=False)


def train_trader(config: PortfolioConfig, *, n_envs: int, agent_steps: int, seed: int,
                 out: Path, threads: int = 1, relative: bool = True
                 ) -> tuple[Any, list[dict[str, Any]]]:
    """PPO on random targets (``relative``: the reward without the target's own market
    risk, :class:`TargetTrackingEnv`); returns the trader's policy and its learning
    curve."""
    from rltrader.training.fast_ppo import FastPPO

    env = TargetTrackingEnv(config.env, n_envs=n_envs, seed=seed,
                            hold_steps=config.decision_steps,
                            tracking_penalty=config.tracking_penalty, relative=relative)
    trainer = FastPPO(env, trader_settings(threads), seed=seed)
    rows = trainer.learn(agent_steps)
    trainer.save(out)
    return trainer.policy(), rows


def evaluate_trader(config: PortfolioConfig, executor: str | Callable[..., np.ndarray], *,
                    n_envs: int, seeds: Sequence[int], steps: int) -> dict[str, np.ndarray]:
    """A trader on random targets: per market (its stocks averaged), ``tracking_error``
    (mean |target - position| / limit), ``cost`` (minus the value change per lot traded,
    ticks), ``reward`` (the task's mean reward per step) and ``traded`` (lots per stock
    per step)."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("tracking_error", "cost", "reward",
                                                         "traded")}
    for seed in seeds:
        env = TargetTrackingEnv(config.env, n_envs=n_envs, seed=seed,
                                hold_steps=config.decision_steps,
                                tracking_penalty=config.tracking_penalty)
        act = ScriptedExecutor(env, executor) if isinstance(executor, str) else executor
        s = env.n_symbols
        gap = np.zeros(env.num_agents_total)
        pnl = np.zeros_like(gap)
        traded = np.zeros_like(gap)
        reward = np.zeros_like(gap)
        obs = env.observations
        for _ in range(steps):
            obs, r, _, _ = env.step(act(obs))
            gap += np.abs(obs[:, -2])
            pnl += env.pnl
            traded += env.traded
            reward += r
        by_market = (s, env.n_envs)         # rows: symbol x n_envs + market
        out["tracking_error"].append((gap / steps).reshape(by_market).mean(0))
        out["cost"].append(-pnl.reshape(by_market).sum(0) / np.maximum(
            traded.reshape(by_market).sum(0), 1))
        out["reward"].append((reward / steps).reshape(by_market).mean(0))
        out["traded"].append((traded / steps).reshape(by_market).mean(0))
    return {k: np.concatenate(v) for k, v in out.items()}


# ---- the manager ------------------------------------------------------------------------

def manager_settings(threads: int = 1, gamma: float = 0.5) -> Any:
    from rltrader.training.fast_ppo import FastPPOSettings

    # chosen on validation seed 500 against gamma 0.9 / entropy 0.01 / 4 epochs / 3e-4
    # (docs/portfolio.md): the differential Sharpe ratio is a near-myopic reward
    return FastPPOSettings(n_steps=20, n_epochs=8, minibatch_size=1_280, learning_rate=1e-3,
                           gamma=gamma, gae_lambda=0.9, ent_coef=0.0, threads=threads,
                           progress=False)


def train_manager(config: PortfolioConfig | Sequence[PortfolioConfig], executor: Any, *,
                  n_envs: int, decisions: int, seed: int, out: Path, threads: int = 1,
                  gamma: float = 0.5) -> tuple[Any, list[dict[str, Any]]]:
    """PPO on :class:`PortfolioEnv` for ``decisions`` market-decisions (whole rollouts);
    several configs (presets): ``n_envs`` markets shared out among them, one
    :class:`StackedPortfolioEnv`."""
    from rltrader.training.fast_ppo import FastPPO

    configs = [config] if isinstance(config, PortfolioConfig) else list(config)
    if len(configs) == 1:
        env: Any = PortfolioEnv(configs[0], executor=executor, n_envs=n_envs, seed=seed)
    else:
        if n_envs < len(configs):
            raise ValueError(f"n_envs ({n_envs}) must be at least the number of training "
                             f"markets ({len(configs)})")
        shares = [n_envs // len(configs) + (i < n_envs % len(configs))
                  for i in range(len(configs))]
        env = StackedPortfolioEnv([PortfolioEnv(c, executor=executor, n_envs=k, seed=seed)
                                   for c, k in zip(configs, shares, strict=True)])
    trainer = FastPPO(env, manager_settings(threads, gamma), seed=seed)
    rows = trainer.learn(decisions)
    trainer.save(out)
    return trainer.policy(), rows


def run_allocator(env: PortfolioEnv, allocator: Allocator, *, seed: int,
                  episodes: int) -> dict[str, np.ndarray]:
    """``episodes`` whole episodes from ``reset(seed)``; per market, the mean over
    episodes of the episode's ``sharpe`` (mean / standard deviation of the per-decision
    returns x sqrt(decisions); 0 for a constant path), ``total_return`` (bp of capital),
    ``traded`` (lots per decision) and ``tracking_error``."""
    obs = env.reset(seed)
    k = env.steps_per_episode
    returns = np.zeros((episodes * k, env.n_envs))
    traded = np.zeros_like(returns)
    tracking = np.zeros_like(returns)
    for t in range(episodes * k):
        obs, _, terminated, _ = env.step(allocator(obs))
        returns[t], traded[t], tracking[t] = env.returns, env.traded, env.tracking_error
        if (t + 1) % k == 0 and not terminated.all():
            raise RuntimeError("decisions and episodes are out of step")
    r = returns.reshape(episodes, k, env.n_envs)
    sd = r.std(1, ddof=1)
    sharpe = np.where(sd > 0, r.mean(1) / np.where(sd > 0, sd, 1.0) * math.sqrt(k), 0.0)
    return {"sharpe": sharpe.mean(0), "total_return": r.sum(1).mean(0),
            "traded": traded.mean(0), "tracking_error": tracking.mean(0)}


def without_premium(config: PortfolioConfig) -> bool:
    """Whether ``config``'s markets are drawn without a premium (no drift of the
    fundamentals: ``drift_mean`` and ``drift_sd`` both 0)."""
    return config.env.drift_mean == 0 and config.env.drift_sd == 0


def charge_without_premium(configs: Sequence[PortfolioConfig], charge: float, *,
                           observed: bool = True) -> list[PortfolioConfig]:
    """``--no-premium-charge``: the training ``configs`` with ``hold_charge = charge`` on
    those drawn without a premium (:func:`without_premium`), the others unchanged; a
    training charge, since the trainer knows each market's drift and evaluation does
    not. ``observed`` False (``--charge-reward-only``): the charge reaches the reward
    alone, not the running Sharpe ratio the manager observes
    (``PortfolioConfig.charge_observed``)."""
    if not any(without_premium(c) for c in configs):
        raise ValueError("--no-premium-charge charges the training markets drawn without a "
                         "premium, and there are none: add a drift 0:0 to --manager-drifts")
    return [dataclasses.replace(c, hold_charge=charge, charge_observed=observed)
            if without_premium(c) else c for c in configs]


def constrained(config: PortfolioConfig) -> bool:
    """Whether the task constrains whoever acts in it (a wait, a no-trade band)."""
    return config.wait_decisions > 0 or config.min_weight > 0


def plain(config: PortfolioConfig) -> PortfolioConfig:
    """The task without the wait and the no-trade band (the baselines as they are)."""
    return dataclasses.replace(config, wait_decisions=0, min_weight=0.0)


#: prefix of a baseline run without the task's wait and no-trade band
PLAIN = "plain:"


def evaluate_allocators(config: PortfolioConfig, executor: Any,
                        managers: dict[str, Any], *, n_envs: int, seeds: Sequence[int],
                        episodes: int, source: Callable[[int], Any] | None = None
                        ) -> dict[str, dict[str, np.ndarray]]:
    """Every baseline and manager on the same markets (each seed rebuilds them): per
    policy, per metric, one value per market (seeds concatenated). ``source(n_envs)``
    gives real records as the books (:mod:`~rltrader.training.portfolio.real`). Where the
    task waits or has a no-trade band (:func:`constrained`), the baselines run both under
    it (as the managers do) and without it (``plain:NAME``, on the same markets)."""
    results: dict[str, dict[str, list[np.ndarray]]] = {}
    configs = [("", config)] + ([(PLAIN, plain(config))] if constrained(config) else [])
    for seed in seeds:
        for prefix, c in configs:
            env = PortfolioEnv(c, executor=executor, n_envs=n_envs, seed=seed,
                               source=None if source is None else source(n_envs))
            lineup: dict[str, Allocator] = {prefix + name: cls(env)
                                            for name, cls in BASELINES.items()}
            if not prefix:
                lineup.update(managers)
            for name, allocator in lineup.items():
                run = run_allocator(env, allocator, seed=seed, episodes=episodes)
                for metric, values in run.items():
                    results.setdefault(name, {}).setdefault(metric, []).append(values)
    return {name: {m: np.concatenate(v) for m, v in metrics.items()}
            for name, metrics in results.items()}


def paired_table(results: dict[str, dict[str, np.ndarray]], managers: Sequence[str],
                 metrics: Sequence[str] = ("sharpe", "total_return")) -> dict[str, Any]:
    """Each policy's summary per metric, and each manager minus each baseline, paired."""
    table: dict[str, Any] = {"policies": {}, "paired": {}}
    for name, values in results.items():
        table["policies"][name] = {m: Summary.of(values[m]).as_dict() for m in values}
    baselines = [name for name in results
                 if name in BASELINES or name.removeprefix(PLAIN) in BASELINES]
    for manager in managers:
        for baseline in baselines:
            table["paired"][f"{manager} - {baseline}"] = {
                m: Summary.of(results[manager][m] - results[baseline][m]).as_dict()
                for m in metrics}
    return table


# ---- the report ---------------------------------------------------------------------------

def machine() -> str:
    import os

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, " \
           f"{platform.system()} {platform.release()}"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markets = list(report["evaluation"])
    fig, axes = plt.subplots(2, len(markets) + 1, figsize=(5 * (len(markets) + 1), 8),
                             squeeze=False)
    for j, name in enumerate(markets):
        policies = report["evaluation"][name]["policies"]
        labels = list(policies)
        for i, metric in enumerate(("sharpe", "total_return")):
            ax = axes[i, j]
            means = [policies[p][metric]["mean"] for p in labels]
            errors = [policies[p][metric]["mean"] - policies[p][metric]["ci_low"]
                      for p in labels]
            ax.bar(range(len(labels)), means, yerr=errors, capsize=3,
                   color=["C0" if p.removeprefix(PLAIN) in BASELINES else "C3"
                          for p in labels])
            ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{name}: {'episode Sharpe' if i == 0 else 'return (bp)'}",
                         fontsize=9)
    ax = axes[0, -1]
    for seed, rows in report["manager_curves"].items():
        ax.plot([r["agent_steps"] for r in rows], [r["mean_episode_return"] for r in rows],
                label=f"seed {seed}")
    ax.set_title("manager: mean episode reward (sum of D)", fontsize=9)
    ax.set_xlabel("market-decisions")
    if report["manager_curves"]:
        ax.legend(fontsize=7)
    ax = axes[1, -1]
    rows = report["trader_curve"] or [{"agent_steps": 0, "mean_reward": math.nan}]
    ax.plot([r["agent_steps"] for r in rows], [r["mean_reward"] for r in rows])
    ax.set_title("trader: mean reward per step", fontsize=9)
    ax.set_xlabel("agent-steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def text(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['mean']:+.{digits}f} [{s['ci_low']:+.{digits}f}, {s['ci_high']:+.{digits}f}]"


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Portfolio manager over per-stock traders: report", "",
             f"Command: `{report['command']}`", "", f"Machine: {report['machine']}", "",
             "## Traders (validation seeds, per market: its stocks averaged)", "",
             "| trader | tracking error (share of limit) | cost (ticks per lot traded) | "
             "reward per step | lots per step |", "|---|---|---|---|---|"]
    for name, row in report["traders"]["summary"].items():
        lines.append(f"| {name} | {text(row['tracking_error'], 3)} | {text(row['cost'])} | "
                     f"{text(row['reward'], 3)} | {text(row['traded'], 3)} |")
    lines += ["", f"Trader used by the manager: **{report['traders']['chosen']}**.", ""]
    for name, table in report["evaluation"].items():
        lines += [f"## {name} (held-out seeds {report['eval_seeds']})", "",
                  "| policy | episode Sharpe | return (bp) | lots per decision |",
                  "|---|---|---|---|"]
        for policy, row in table["policies"].items():
            lines.append(f"| {policy} | {text(row['sharpe'])} | {text(row['total_return'])} "
                         f"| {text(row['traded'], 1)} |")
        for policy, count in table.get("guard", {}).items():
            lines.append(f"\nGuard: {policy} stood aside on {count['fired']:,} of "
                         f"{count['rows']:,} market-decisions.")
        lines += ["", "| paired (same markets) | Δ Sharpe | Δ return (bp) |", "|---|---|---|"]
        for pair, row in table["paired"].items():
            lines.append(f"| {pair} | {text(row['sharpe'])} | {text(row['total_return'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def base_task(args: argparse.Namespace) -> PortfolioConfig:
    """The command's task from its options (:func:`task`), before the managers' presets,
    fees and drifts vary it."""
    return task(args.preset, symbols=args.symbols, correlation=args.correlation,
                horizon=args.horizon, decision_steps=args.decision_steps,
                drift_mean=args.drift_mean, drift_sd=args.drift_sd,
                cost_feature=args.cost_feature, sharpe_prior=args.sharpe_prior,
                sharpe_guard=args.sharpe_guard, wait_decisions=args.wait,
                min_weight=args.min_weight)


def manager_drifts(args: argparse.Namespace) -> list[tuple[float, float]]:
    """The (mean, sd) drifts the managers train on: ``--manager-drifts``, else the task's."""
    return list(args.manager_drifts or [(args.drift_mean, args.drift_sd)])


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    base = base_task(args)
    seconds: dict[str, float] = {}
    # 1. traders: trained here (then chosen on the validation seeds), or given
    from rltrader.training.fast_ppo import load_policy

    t0 = time.perf_counter()
    trader_curve: list[dict[str, Any]] = []
    executors: dict[str, Any] = {"aggressive": "aggressive", "patient": "patient"}
    if args.trader == "train":
        executors["trained"], trader_curve = train_trader(
            base, n_envs=args.n_envs, seed=args.seeds[0], agent_steps=args.trader_steps,
            out=out / "trader.pt", threads=args.threads)
    elif args.trader not in executors:
        executors["trained"] = load_policy(args.trader)
    seconds["train_trader"] = time.perf_counter() - t0
    trader_results = {name: evaluate_trader(base, ex, n_envs=args.eval_envs,
                                            seeds=args.validation_seeds,
                                            steps=args.trader_eval_steps)
                      for name, ex in executors.items()}
    if args.trader == "train":
        chosen = max(trader_results, key=lambda n: float(trader_results[n]["reward"].mean()))
    else:
        chosen = args.trader if args.trader in ("aggressive", "patient") else "trained"
    traders = {"chosen": chosen, "given": args.trader,
               "validation_seeds": list(args.validation_seeds),
               "summary": {name: {m: Summary.of(v).as_dict() for m, v in res.items()}
                           for name, res in trader_results.items()},
               "paired": {f"trained - {b}": {m: Summary.of(trader_results["trained"][m]
                                                           - trader_results[b][m]).as_dict()
                                             for m in ("tracking_error", "cost", "reward")}
                          for b in ("aggressive", "patient") if "trained" in executors}}
    executor = executors[chosen]
    # 2. managers, one per training seed (or given checkpoints), on their presets and
    # taker fees (every pair: the markets shared out among them)
    training = [dataclasses.replace(base, env=base.env.replace(
        market=market(name, args.correlation), taker_fee_ppm=fee, drift_mean=drift[0],
        drift_sd=drift[1]))
        for name in args.manager_presets or [args.preset]
        for fee in args.manager_fees or [base.env.taker_fee_ppm]
        for drift in manager_drifts(args)]
    if args.no_premium_charge:
        training = charge_without_premium(training, args.no_premium_charge,
                                          observed=not args.charge_reward_only)
    curves: dict[str, list[dict[str, Any]]] = {}
    managers: dict[str, Any] = {}
    t0 = time.perf_counter()
    for spec in args.managers or ():
        name = spec if spec.startswith("pretrained:") else f"manager:{Path(spec).stem}"
        managers[name] = load_policy(checkpoint_path(spec))
    for seed in args.seeds if not args.managers else ():
        policy, rows = train_manager(training, executor, n_envs=args.n_envs,
                                     decisions=args.manager_decisions, seed=seed,
                                     out=out / f"manager_seed{seed}.pt", threads=args.threads,
                                     gamma=args.manager_gamma)
        managers[f"manager_seed{seed}"] = policy
        curves[str(seed)] = [{k: r[k] for k in ("agent_steps", "mean_episode_return",
                                                "mean_reward")} for r in rows]
    seconds["train_managers"] = time.perf_counter() - t0
    if args.manager_guard is not None:      # every manager row plays guarded
        managers = {name: guard_manager(policy, base, args.manager_guard)
                    for name, policy in managers.items()}
    # 3. held-out evaluation
    t0 = time.perf_counter()
    evaluation = {}
    for name in args.eval_presets:
        for policy in managers.values():    # the guard's counts per market
            if hasattr(policy, "fired"):
                policy.fired = policy.rows = 0
        if name == real.NAME:       # the real records: the same task, converted to them
            config = real.binance_pair_task(base)
            results = evaluate_allocators(
                config, executor, managers, n_envs=args.real_envs, seeds=args.eval_seeds,
                episodes=args.episodes,
                source=lambda n, c=config: real.binance_pair_sources(c, n))
        else:
            config = dataclasses.replace(base, env=base.env.replace(
                market=market(name, args.correlation)))
            results = evaluate_allocators(config, executor, managers, n_envs=args.eval_envs,
                                          seeds=args.eval_seeds, episodes=args.episodes)
        evaluation[name] = paired_table(results, list(managers))
        evaluation[name]["guard"] = {m: {"fired": p.fired, "rows": p.rows}
                                     for m, p in managers.items() if hasattr(p, "fired")}
    seconds["evaluate"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - began
    report = {
        "command": "python -m rltrader.training.portfolio.experiment "
                   + " ".join(shlex.quote(a) for a in args.argv),
        "machine": machine(), "seconds": seconds,
        "task": {"preset": args.preset, "symbols": args.symbols,
                 "correlation": args.correlation, "horizon": args.horizon,
                 "decision_steps": args.decision_steps, "levels": list(base.levels),
                 "sharpe_eta": base.sharpe_eta, "sharpe_min_var": base.sharpe_min_var,
                 "tracking_penalty": base.tracking_penalty,
                 "drift_mean": args.drift_mean, "drift_sd": args.drift_sd,
                 "cost_feature": args.cost_feature, "sharpe_prior": args.sharpe_prior,
                 "sharpe_guard": args.sharpe_guard, "wait_decisions": args.wait,
                 "min_weight": args.min_weight, "manager_guard": args.manager_guard,
                 "taker_fee_ppm": base.env.taker_fee_ppm},
        "trader_settings": dataclasses.asdict(trader_settings(args.threads)),
        "manager_settings": dataclasses.asdict(manager_settings(args.threads,
                                                                args.manager_gamma)),
        "n_envs": args.n_envs, "trader_steps": args.trader_steps,
        "manager_decisions": args.manager_decisions, "training_seeds": list(args.seeds),
        "manager_presets": args.manager_presets or [args.preset],
        "manager_fees": args.manager_fees or [base.env.taker_fee_ppm],
        "manager_drifts": [list(d) for d in manager_drifts(args)],
        "no_premium_charge": args.no_premium_charge,
        "charge_reward_only": args.charge_reward_only,
        "managers_given": args.managers,
        "eval_seeds": list(args.eval_seeds), "eval_envs": args.eval_envs,
        "episodes": args.episodes, "traders": traders, "evaluation": evaluation,
        "manager_curves": curves,
        "trader_curve": [{k: r[k] for k in ("agent_steps", "mean_reward")}
                         for r in trader_curve],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / "report.md").write_text(markdown(report))
    plot(report, out / "report.png")
    return report


def drifts(text: str) -> list[tuple[float, float]]:
    """``MEAN:SD,...`` (``--manager-drifts``) as pairs of floats."""
    pairs = []
    for item in text.split(","):
        parts = item.split(":")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"a drift is MEAN:SD, got {item!r}")
        try:
            pairs.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise argparse.ArgumentTypeError(f"a drift is MEAN:SD (numbers), got "
                                             f"{item!r}") from None
    return pairs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rltrader portfolio",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--preset", default="resilient", help="training market preset")
    p.add_argument("--manager-presets", type=lambda s: s.split(","), default=None,
                   help="the managers' training presets (comma-separated; the markets "
                        "shared out among them); default: --preset")
    p.add_argument("--symbols", type=int, default=4)
    p.add_argument("--correlation", type=float, default=0.5)
    p.add_argument("--horizon", type=int, default=1_000)
    p.add_argument("--decision-steps", type=int, default=50)
    p.add_argument("--drift-mean", type=float, default=0.0,
                   help="mean drift of the fundamentals, ticks per second, drawn per stock "
                        "and episode (EnvConfig.drift_mean; 0: none)")
    p.add_argument("--drift-sd", type=float, default=0.0,
                   help="s.d. of the drifts across stocks and episodes, ticks per second")
    p.add_argument("--manager-fees", type=lambda s: [int(x) for x in s.split(",")],
                   default=None,
                   help="the managers' training taker fees, ppm (comma-separated; every "
                        "preset of --manager-presets with every fee, the markets shared out "
                        "among them); default: the task's (100); evaluation keeps the task's")
    p.add_argument("--manager-drifts", type=drifts, default=None,
                   help="the managers' training drifts, MEAN:SD pairs in ticks per second "
                        "(comma-separated; every preset and fee with every pair, the markets "
                        "shared out among them), so that whether a market has a premium "
                        "cannot be read off its preset; default: --drift-mean:--drift-sd; "
                        "evaluation keeps the task's")
    p.add_argument("--no-premium-charge", type=float, default=0.0, metavar="C",
                   help="training only: on the managers' training markets drawn without a "
                        "premium (drift 0:0 in --manager-drifts; without it, every training "
                        "market if --drift-mean and --drift-sd are 0), the reward's Sharpe "
                        "ratio (and the running Sharpe the manager observes, unless "
                        "--charge-reward-only) sees the return minus C bp of capital per "
                        "decision per unit of gross target weight "
                        "(PortfolioConfig.hold_charge); evaluation is never charged; "
                        "default: 0, none")
    p.add_argument("--charge-reward-only", action="store_true",
                   help="with --no-premium-charge: the charge reaches the reward alone; the "
                        "running Sharpe ratio the manager observes is the uncharged "
                        "return's, as in evaluation (PortfolioConfig.charge_observed = "
                        "False)")
    p.add_argument("--cost-feature", action="store_true",
                   help="the manager sees each stock's round-trip cost in bp (spread + "
                        "twice the taker fee: PortfolioConfig.cost_feature)")
    p.add_argument("--sharpe-prior", type=float, default=None,
                   help="restart the differential Sharpe ratio at every episode from A = 0, "
                        "B = this (bp^2), so a flat episode's reward is exactly 0 "
                        "(PortfolioConfig.sharpe_prior); default: it runs across episodes")
    p.add_argument("--sharpe-guard", action="store_true",
                   help="drop the differential Sharpe ratio's variance term while its "
                        "running mean is <= 0 (PortfolioConfig.sharpe_guard)")
    p.add_argument("--wait", type=int, default=0,
                   help="the first WAIT decisions of every episode hold no position, whatever "
                        "the policy (PortfolioConfig.wait_decisions; managers and baselines; "
                        "the baselines are also reported without it, as plain:NAME)")
    p.add_argument("--min-weight", type=float, default=0.0,
                   help="a no-trade band: targets of size below this are 0 "
                        "(PortfolioConfig.min_weight)")
    p.add_argument("--manager-guard", default=None, metavar="SPEC",
                   help="evaluate every manager guarded (rltrader.training.ppo.guard): where "
                        "an observation column lies beyond its clip, in standard deviations "
                        "of the manager's training statistics, every target is 0. SPEC: "
                        "CLIP (every column), FEATURE=CLIP,... (only those features' "
                        "columns, e.g. cost=2.5), or CLIP,FEATURE=CLIP,...; default: none "
                        "(a guarded checkpoint plays its own guard)")
    p.add_argument("--manager-gamma", type=float, default=0.5,
                   help="the manager's PPO discount per decision")
    p.add_argument("--n-envs", type=int, default=128, help="training markets")
    p.add_argument("--trader-steps", type=int, default=15_000_000,
                   help="trader PPO agent-steps")
    p.add_argument("--manager-decisions", type=int, default=400_000,
                   help="manager PPO market-decisions per training seed")
    p.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2], help="training seeds")
    p.add_argument("--validation-seeds", type=parse_seeds, default=[500, 501],
                   help="seeds that choose the trader")
    p.add_argument("--eval-seeds", type=parse_seeds, default=[1000, 1001],
                   help="held-out evaluation seeds")
    p.add_argument("--eval-presets", type=lambda s: s.split(","),
                   default=["resilient", "thin"],
                   help=f"evaluation markets: presets, and {real.NAME!r} (the real Binance "
                        "BTCUSDT perpetual + spot records, 2 symbols: needs --symbols 2)")
    p.add_argument("--eval-envs", type=int, default=64)
    p.add_argument("--real-envs", type=int, default=8,
                   help=f"markets of {real.NAME!r} per evaluation seed (they share the "
                        "record's one price path)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--trader-eval-steps", type=int, default=1_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--trader", default="train",
                   help="'train' (PPO, then the validation seeds choose between it and the "
                        "scripted executors), 'aggressive', 'patient', or a trader checkpoint")
    p.add_argument("--managers", type=lambda s: s.split(","), default=None,
                   help="manager checkpoints to evaluate instead of training (comma-separated "
                        "paths, or pretrained:NAME for one shipped with the package)")
    return p


def check_managers(specs: Sequence[str], config: PortfolioConfig) -> None:
    """Manager checkpoints must read the task's observation (``--cost-feature`` adds a
    column per stock): a clear error before anything runs."""
    if not specs:
        return
    from rltrader.training.fast_ppo import load_policy

    want = len(observation_features(config)) * config.env.symbols + 3
    for spec in specs:
        got = load_policy(checkpoint_path(spec)).model.obs_dim
        if got != want:
            hint = " (without --cost-feature)" if got + config.env.symbols == want else \
                " (with --cost-feature)" if got - config.env.symbols == want else ""
            raise ValueError(f"{spec}: the manager reads {got} observation columns, the "
                             f"task has {want}; it was trained on another task{hint}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    if set(args.eval_seeds) & (set(args.seeds) | set(args.validation_seeds)):
        print("experiment: --eval-seeds must be held out (not training or validation "
              "seeds)", file=sys.stderr)
        return 2
    for path in [*(args.managers or ()),
                 *(() if args.trader in ("train", "aggressive", "patient") else (args.trader,))]:
        if not checkpoint_path(path).is_file():
            print(f"experiment: {path}: no such checkpoint", file=sys.stderr)
            return 2
    training = [args.preset, *(args.manager_presets or ())]
    for name in [*training, *(n for n in args.eval_presets if n != real.NAME)]:
        try:
            preset(name)
        except (KeyError, ValueError) as error:
            print(f"experiment: unknown preset {name!r}: {error}", file=sys.stderr)
            return 2
    try:
        base = base_task(args)
        for fee in args.manager_fees or ():
            base.env.replace(taker_fee_ppm=fee)     # checked by EnvConfig
        for mean, sd in args.manager_drifts or ():
            base.env.replace(drift_mean=mean, drift_sd=sd)
        if real.NAME in args.eval_presets:
            if args.symbols != len(real.SYMBOLS):
                raise ValueError(f"{real.NAME} has {len(real.SYMBOLS)} symbols "
                                 f"({', '.join(real.SYMBOLS)}): it evaluates managers of "
                                 f"--symbols {len(real.SYMBOLS)}, got --symbols "
                                 f"{args.symbols}")
            if args.real_envs < 1:
                raise ValueError(f"--real-envs must be >= 1, got {args.real_envs}")
            real.check_fits(real.binance_pair_task(base), args.episodes)
        if args.charge_reward_only and not args.no_premium_charge:
            raise ValueError("--charge-reward-only says where --no-premium-charge's charge "
                             "reaches, and there is no charge")
        if args.no_premium_charge:
            if args.managers:
                raise ValueError("--no-premium-charge is a training charge: it does not "
                                 "apply to --managers (evaluated, not trained)")
            dataclasses.replace(base, hold_charge=args.no_premium_charge)   # checked
            charge_without_premium([dataclasses.replace(base, env=base.env.replace(
                drift_mean=m, drift_sd=sd)) for m, sd in manager_drifts(args)],
                args.no_premium_charge)
        check_managers(args.managers or (), base)
        if args.manager_guard is not None:
            guard_clips(args.manager_guard, observation_features(base), base.env.symbols)
    except ValueError as error:
        print(f"experiment: {error}", file=sys.stderr)
        return 2
    report = run(args)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
