"""Train one shared PPO policy for every agent of the batched market env (``rltrader train``).

``n_envs`` markets x ``n_agents`` learners are one Stable-Baselines3 ``VecEnv``
(:class:`rltrader.envs.SB3VecEnv`: every agent is a sub-env), so one PPO policy acts for all
of them and learns from all of their experience. The stack, innermost first:
``SB3VecEnv`` → :class:`~rltrader.train_callbacks.EnvMeter` (env time, raw rewards) →
``VecMonitor`` (episode returns) → ``VecNormalize`` (observations and rewards scaled by
running statistics; saved next to every checkpoint, needed to run the policy).

``train(config, out_dir)`` writes to ``out_dir``:

- ``checkpoints/ppo_<agent-steps>_steps.zip`` and ``ppo_vecnormalize_<agent-steps>_steps.pkl``
  every ``checkpoint_every`` agent-steps; ``ppo_final.zip`` and ``vecnormalize.pkl`` at the end;
- ``curve.csv`` (one row per rollout, :class:`~rltrader.train_callbacks.CurvePoint`) and
  ``learning_curve.png``;
- ``results.json``: the configuration, timings and the final evaluation of PPO, the random
  policy and the fixed-spread market maker on the same seeded markets.

Timesteps are agent-steps: one batched env step is ``n_envs * n_agents`` of them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rltrader.baselines import Evaluation, FixedSpreadMaker, Policy, RandomPolicy, evaluate
from rltrader.envs import BatchedMarketEnv, EnvConfig

#: the environment PPO and the baselines are trained and compared on
DEFAULT_ENV = EnvConfig(action_mode="market_making", reward="pnl")


@dataclass(frozen=True)
class PPOSettings:
    """Stable-Baselines3 PPO hyperparameters (their SB3 names)."""

    n_steps: int = 32                  #: batched steps per rollout (x num_envs samples)
    batch_size: int = 32_768           #: minibatch, agent-steps (capped at a rollout)
    n_epochs: int = 4
    learning_rate: float = 1e-3        #: at the start; see ``anneal_lr``
    anneal_lr: bool = False            #: decay the learning rate linearly to 0
    gamma: float = 0.95
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)
    previous_action: bool = False      #: append the previous action to the observation


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes
    ----------
    total_timesteps : int
        Agent-steps to train for.
    n_envs, n_agents : int
        Markets and learners per market; PPO sees ``n_envs * n_agents`` sub-envs.
    seed : int
        Seeds the training markets, torch and the policy's sampling.
    eval_seed : int
        Seeds the evaluation markets (the same for every policy compared).
    eval_episodes : int
        Whole episodes per policy in the final evaluation (each has ``n_envs * n_agents``
        agent-episodes).
    checkpoint_every : int
        Agent-steps between checkpoints.
    threads : int
        torch threads (1: the machine is shared and the nets are small).
    """

    total_timesteps: int = 20_000_000
    n_envs: int = 256
    n_agents: int = 4
    seed: int = 0
    eval_seed: int = 1_000
    eval_episodes: int = 2
    checkpoint_every: int = 2_000_000
    threads: int = 1
    env: EnvConfig = DEFAULT_ENV
    ppo: PPOSettings = field(default_factory=PPOSettings)

    def __post_init__(self) -> None:
        for name in ("total_timesteps", "n_envs", "n_agents", "eval_episodes",
                     "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")


def make_vec_env(config: TrainConfig):
    """The SB3 env stack for training (module docstring); returns ``(venv, meter)``."""
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from rltrader.envs import SB3VecEnv
    from rltrader.train_callbacks import EnvMeter, PreviousAction

    batched = BatchedMarketEnv(config.env, n_envs=config.n_envs, n_agents=config.n_agents,
                               seed=config.seed)
    meter = EnvMeter(SB3VecEnv(batched))
    monitored = VecMonitor(meter)
    if config.ppo.previous_action:
        monitored = PreviousAction(monitored)
    venv = VecNormalize(monitored, gamma=config.ppo.gamma)
    return venv, meter


class PPOPolicy:
    """A saved PPO model (and its ``VecNormalize`` statistics) as a :data:`Policy`.

    ``deterministic`` takes the most likely action of each row instead of sampling. A model
    trained with ``PPOSettings.previous_action`` (its observations are wider than the env's
    by the one-hot action) gets its own previous actions appended, zeros before the first.
    """

    def __init__(self, model_path: Path | str, vecnormalize_path: Path | str | None, *,
                 deterministic: bool = True) -> None:
        import pickle

        from stable_baselines3 import PPO

        self.model = PPO.load(model_path, device="cpu")
        self.normalizer = None
        if vecnormalize_path is not None:
            with open(vecnormalize_path, "rb") as f:
                self.normalizer = pickle.load(f)
            self.normalizer.training = False
        self.deterministic = deterministic
        self.previous: np.ndarray | None = None

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        from rltrader.train_callbacks import action_heads, one_hot_actions

        obs = observations
        width = self.model.observation_space.shape[0]
        if width != obs.shape[1]:
            nvec = action_heads(self.model.action_space)
            if width != obs.shape[1] + nvec.sum():
                raise ValueError(f"PPOPolicy: observations have {obs.shape[1]} columns, the "
                                 f"model expects {width}")
            if self.previous is None:
                self.previous = np.zeros((obs.shape[0], int(nvec.sum())), dtype=np.float32)
            obs = np.concatenate([obs, self.previous], axis=1)
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        if self.previous is not None:
            self.previous = one_hot_actions(actions, action_heads(self.model.action_space))
        return actions


def compare(policies: dict[str, Policy], config: TrainConfig) -> dict[str, Evaluation]:
    """Evaluate each policy on the same seeded evaluation markets."""
    return {name: evaluate(policy, config.env, n_envs=config.n_envs,
                           n_agents=config.n_agents, seed=config.eval_seed,
                           episodes=config.eval_episodes)
            for name, policy in policies.items()}


def baselines(config: TrainConfig) -> dict[str, Policy]:
    """The random policy and the fixed-spread market maker for ``config``'s env.

    The maker joins the touch (offset 0) with the largest quote size and withdraws a side
    at half the position limit: the best of a grid over offsets 0/1/2, sizes 1/2/4 and
    limits 0.25/0.5/1 on the training seed, up to its standard error (docs/training.md).
    """
    n = config.n_envs * config.n_agents
    probe = BatchedMarketEnv(config.env, n_envs=1, n_agents=1, seed=config.seed)
    return {"random": RandomPolicy(probe.single_action_space, n, seed=config.eval_seed),
            "fixed_spread_mm": FixedSpreadMaker(config.env, n, offset=0,
                                                size=max(config.env.quote_sizes),
                                                max_inventory=0.5)}


def train(config: TrainConfig, out_dir: Path | str, *, progress: bool = True,
          evaluate_baselines: bool = True) -> dict:
    """Train, checkpoint, evaluate; write the files of the module docstring; return what
    ``results.json`` holds."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.utils import LinearSchedule

    from rltrader.train_callbacks import LearningCurve, TqdmProgress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    venv, meter = make_vec_env(config)
    p = config.ppo
    batch_size = min(p.batch_size, p.n_steps * venv.num_envs)
    model = PPO("MlpPolicy", venv, n_steps=p.n_steps, batch_size=batch_size,
                n_epochs=p.n_epochs, gamma=p.gamma,
                learning_rate=(LinearSchedule(p.learning_rate, 0.0, 1.0) if p.anneal_lr
                               else p.learning_rate),
                gae_lambda=p.gae_lambda, clip_range=p.clip_range, ent_coef=p.ent_coef,
                vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
                policy_kwargs={"net_arch": list(p.net_arch)}, seed=config.seed, device="cpu")
    curve = LearningCurve(meter)
    callbacks = CallbackList([
        TqdmProgress(config.total_timesteps, disable=not progress),
        CheckpointCallback(max(config.checkpoint_every // venv.num_envs, 1),
                           str(out / "checkpoints"), name_prefix="ppo",
                           save_vecnormalize=True),
        curve,
    ])
    learn_start = time.perf_counter()
    model.learn(config.total_timesteps, callback=callbacks)
    learn_s = time.perf_counter() - learn_start
    model.save(out / "ppo_final.zip")
    venv.save(str(out / "vecnormalize.pkl"))
    curve.save_csv(out / "curve.csv")

    policies: dict[str, Policy] = {
        "ppo": PPOPolicy(out / "ppo_final.zip", out / "vecnormalize.pkl")}
    if evaluate_baselines:
        policies.update(baselines(config))
    eval_start = time.perf_counter()
    results = compare(policies, config)
    eval_s = time.perf_counter() - eval_start
    report = {
        "config": _as_json(dataclasses.asdict(config)),
        "agent_steps": model.num_timesteps,
        "learn_s": learn_s,
        "env_s": meter.seconds,
        "env_share": meter.seconds / learn_s,
        "eval_s": eval_s,
        "wall_s": time.perf_counter() - started,
        "evaluation": {name: {"mean": e.mean, "standard_error": e.standard_error,
                              "agent_episodes": int(e.returns.size)}
                       for name, e in results.items()},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_curve(curve.points, report["evaluation"], out / "learning_curve.png")
    return report


def _as_json(value):
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def plot_curve(points: list, evaluation: dict, path: Path) -> Path:
    """Episode return and reward per agent-step against agent-steps, with the final
    evaluation of each policy as a horizontal line (mean ± s.e. band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([pt.agent_steps for pt in points], dtype=float) / 1e6
    episode = np.array([pt.episode_return for pt in points])
    reward = np.array([pt.step_reward for pt in points])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ok = np.isfinite(episode)
    top.plot(steps[ok], episode[ok], "o-", color="tab:blue", label="PPO (training episodes)")
    for (name, e), colour in zip(evaluation.items(), ("tab:blue", "tab:grey", "tab:orange"),
                                 strict=False):
        top.axhline(e["mean"], color=colour, ls="--", lw=1, label=f"{name} (evaluation)")
        top.axhspan(e["mean"] - e["standard_error"], e["mean"] + e["standard_error"],
                    color=colour, alpha=0.15)
    top.set_ylabel("episode return (ticks per lot)")
    top.legend(fontsize=8, loc="best")
    top.grid(alpha=0.3)
    bottom.plot(steps, reward, color="tab:blue", lw=0.6, alpha=0.4, label="per rollout")
    window = min(20, len(reward))
    if window > 1:
        smooth = np.convolve(reward, np.ones(window) / window, mode="valid")
        bottom.plot(steps[window - 1:], smooth, color="tab:blue", lw=1.8,
                    label=f"mean of {window} rollouts")
        bottom.legend(fontsize=8, loc="best")
    bottom.set_ylabel("reward per agent-step")
    bottom.set_xlabel("agent-steps (millions)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_report(report: dict) -> str:
    """The figures of a run, one per line."""
    lines = [f"{report['agent_steps']:,} agent-steps in {report['learn_s']:.1f} s "
             f"({report['agent_steps'] / report['learn_s']:,.0f} agent-steps/s); env "
             f"{report['env_s']:.1f} s = {100 * report['env_share']:.1f} % of training wall "
             f"time; evaluation {report['eval_s']:.1f} s; total {report['wall_s']:.1f} s",
             "mean episode return ± s.e. (ticks per lot of the agent's order size):"]
    for name, e in report["evaluation"].items():
        lines.append(f"  {name:16s} {e['mean']:+9.3f} ± {e['standard_error']:.3f}  "
                     f"({e['agent_episodes']} agent-episodes)")
    return "\n".join(lines)


def main(out: str, *, timesteps: int | None = None, seed: int = 0, horizon: int | None = None,
         progress: bool = True, **overrides: int | None) -> int:
    """``rltrader train``: a :class:`TrainConfig` from the defaults and the options given
    (``None``: the default), trained into ``out``; prints the figures."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if timesteps is not None:
        changes["total_timesteps"] = timesteps
    if horizon is not None:
        changes["env"] = DEFAULT_ENV.replace(horizon=horizon)
    config = TrainConfig(seed=seed, **changes)
    report = train(config, out, progress=progress)
    print(format_report(report))
    print(f"wrote {out}/ppo_final.zip, checkpoints/, curve.csv, learning_curve.png, "
          f"results.json")
    return 0
