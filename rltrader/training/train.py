"""Train one shared PPO policy for every agent of the batched market env (``rltrader train``).

``n_envs`` markets x ``n_agents`` learners are one Stable-Baselines3 ``VecEnv``
(:class:`rltrader.envs.SB3VecEnv`: every agent is a sub-env), so one PPO policy acts for all
of them and learns from all of their experience. The stack, innermost first:
``SB3VecEnv`` → :class:`~rltrader.training.callbacks.EnvMeter` (env time, raw rewards) →
``VecMonitor`` (episode returns) → ``VecNormalize`` (observations and rewards scaled by
running statistics; saved next to every checkpoint, needed to run the policy).

``train(config, out_dir)`` writes to ``out_dir``:

- ``checkpoints/ppo_<agent-steps>_steps.zip`` and ``ppo_vecnormalize_<agent-steps>_steps.pkl``
  every ``checkpoint_every`` agent-steps; ``ppo_final.zip`` and ``vecnormalize.pkl`` at the end;
- ``curve.csv`` (one row per rollout, :class:`~rltrader.training.callbacks.CurvePoint`) and
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

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names
from rltrader.training.baselines import (
    Evaluation,
    FixedSpreadMaker,
    MakerChoice,
    Policy,
    RandomPolicy,
    evaluate,
    tune_maker,
)

#: the model attribute (saved with it) that says it has a keep head
KEEP_HEAD_ATTRIBUTE = "rltrader_keep_head"
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
    ent_coef: float = 0.003
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)
    previous_action: bool = True       #: append the previous action to the observation
    keep_head: bool = True             #: a first action head that repeats the last action
    imitate_steps: int = 500           #: batched steps of the market maker cloned first; 0: none
    imitate_epochs: int = 10           #: passes over those demonstrations
    #: the cloned maker's (offset, size, inventory limit); None: the compared maker
    teacher: tuple[int, float, float] | None = None


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
    validation_seed : int or None
        Seeds the markets on which every checkpoint is scored (one episode, deterministic
        actions); the best one is the policy evaluated. ``None``: the final weights.
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
    validation_seed: int | None = 2_000
    eval_episodes: int = 8
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
    from rltrader.training.callbacks import EnvMeter, KeepAction, PreviousAction

    batched = BatchedMarketEnv(config.env, n_envs=config.n_envs, n_agents=config.n_agents,
                               seed=config.seed)
    meter = EnvMeter(SB3VecEnv(batched))
    monitored = VecMonitor(meter)
    if config.ppo.previous_action:
        monitored = PreviousAction(monitored)
    if config.ppo.keep_head:
        monitored = KeepAction(monitored)
    venv = VecNormalize(monitored, gamma=config.ppo.gamma)
    return venv, meter


class PPOPolicy:
    """A saved PPO model (and its ``VecNormalize`` statistics) as a :data:`Policy`.

    ``deterministic`` takes the most likely action of each row instead of sampling. A model
    trained with ``PPOSettings.previous_action`` (its observations are wider than the env's
    by the one-hot action) gets its own previous actions appended, zeros before the first.
    ``keep_head``: the model was trained with ``PPOSettings.keep_head``; its first head
    repeats its previous action (:class:`~rltrader.training.callbacks.KeepAction`). ``None``
    (default): as recorded in the model by :func:`train`.
    """

    def __init__(self, model_path: Path | str, vecnormalize_path: Path | str | None, *,
                 deterministic: bool = True, keep_head: bool | None = None) -> None:
        import pickle

        from stable_baselines3 import PPO

        from rltrader.training.callbacks import action_heads

        self.model = PPO.load(model_path, device="cpu")
        self.normalizer = None
        if vecnormalize_path is not None:
            with open(vecnormalize_path, "rb") as f:
                self.normalizer = pickle.load(f)
            self.normalizer.training = False
        self.deterministic = deterministic
        self.keep_head = (getattr(self.model, KEEP_HEAD_ATTRIBUTE, False) if keep_head is None
                          else keep_head)
        heads = action_heads(self.model.action_space)
        self.env_heads = heads[1:] if self.keep_head else heads
        self.previous: np.ndarray | None = None      # the env's last actions, one-hot
        self.last: np.ndarray | None = None          # the env's last actions

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        from rltrader.training.callbacks import one_hot_actions

        obs = observations
        width = self.model.observation_space.shape[0]
        if width != obs.shape[1]:
            if width != obs.shape[1] + self.env_heads.sum():
                raise ValueError(f"PPOPolicy: observations have {obs.shape[1]} columns, the "
                                 f"model expects {width}")
            if self.previous is None:
                self.previous = np.zeros((obs.shape[0], int(self.env_heads.sum())),
                                         dtype=np.float32)
            obs = np.concatenate([obs, self.previous], axis=1)
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        if self.keep_head:
            actions = actions.reshape(obs.shape[0], -1)
            if self.last is None:
                self.last = np.zeros((obs.shape[0], len(self.env_heads)), dtype=np.int64)
            self.last = np.where(actions[:, :1].astype(bool), self.last, actions[:, 1:])
            actions = self.last if len(self.env_heads) > 1 else self.last[:, 0]
        if self.previous is not None:
            self.previous = one_hot_actions(actions, self.env_heads)
        return actions


def compare(policies: dict[str, Policy], config: TrainConfig) -> dict[str, Evaluation]:
    """Evaluate each policy on the same seeded evaluation markets."""
    return {name: evaluate(policy, config.env, n_envs=config.n_envs,
                           n_agents=config.n_agents, seed=config.eval_seed,
                           episodes=config.eval_episodes)
            for name, policy in policies.items()}


def baselines(config: TrainConfig, maker: MakerChoice, n: int | None = None) -> dict[str, Policy]:
    """The random policy and the fixed-spread market maker ``maker`` for ``config``'s env."""
    n = config.n_envs * config.n_agents if n is None else n
    probe = BatchedMarketEnv(config.env, n_envs=1, n_agents=1, seed=config.seed)
    return {"random": RandomPolicy(probe.single_action_space, n, seed=config.eval_seed),
            "fixed_spread_mm": maker.policy(config.env, n)}


def choose_maker(config: TrainConfig) -> MakerChoice:
    """The fixed-spread maker compared with PPO (and cloned by ``imitate_steps``): the best
    of the grid of :func:`~rltrader.training.baselines.tune_maker` on the *training* markets."""
    return tune_maker(config.env, n_envs=config.n_envs, n_agents=config.n_agents,
                      seed=config.seed)


def train(config: TrainConfig, out_dir: Path | str, *, progress: bool = True,
          evaluate_baselines: bool = True) -> dict:
    """Train, checkpoint, evaluate; write the files of the module docstring; return what
    ``results.json`` holds."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.logger import configure as configure_logger
    from stable_baselines3.common.utils import LinearSchedule

    from rltrader.training.callbacks import LearningCurve, TqdmProgress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / "checkpoints").glob("ppo_*_steps.*"):    # an earlier run's
        stale.unlink()
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
    setattr(model, KEEP_HEAD_ATTRIBUTE, p.keep_head)     # saved with every checkpoint
    # SB3's own log (losses, KL, clip fraction ...) as out/sb3/progress.csv; without a
    # logger SB3 makes an empty folder in the system's temp directory on every run
    model.set_logger(configure_logger(str(out / "sb3"), ["csv"]))
    tune_start = time.perf_counter()
    maker = choose_maker(config) if evaluate_baselines or p.imitate_steps else None
    tune_s = time.perf_counter() - tune_start
    imitation = None
    if p.imitate_steps:
        imitation = warm_start(model, venv, config, maker, out / "checkpoints")
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

    eval_start = time.perf_counter()
    candidates = checkpoints(out, model.num_timesteps)
    validation = validate(candidates, config) if config.validation_seed is not None else {}
    chosen = (max(validation, key=lambda k: validation[k].mean) if validation
              else model.num_timesteps)
    policies: dict[str, Policy] = {"ppo": PPOPolicy(*candidates[chosen])}
    if imitation is not None:
        policies["cloned_maker"] = PPOPolicy(*candidates[0])
    if evaluate_baselines:
        policies.update(baselines(config, maker))
    results = compare(policies, config)
    eval_s = time.perf_counter() - eval_start
    report = {
        "config": _as_json(dataclasses.asdict(config)),
        "agent_steps": model.num_timesteps,
        "imitation": None if imitation is None else dataclasses.asdict(imitation),
        "validation": {str(k): {"mean": e.mean, "standard_error": e.standard_error}
                       for k, e in validation.items()},
        "selected_checkpoint": chosen,
        "maker": None if maker is None else {
            "offset": maker.offset, "size": maker.size, "max_inventory": maker.max_inventory,
            "seconds": tune_s, "grid": [list(row) for row in maker.grid]},
        "learn_s": learn_s,
        "env_s": meter.seconds,
        "env_share": meter.seconds / learn_s,
        "eval_s": eval_s,
        "wall_s": time.perf_counter() - started,
        "evaluation": {name: {"mean": e.mean, "standard_error": e.standard_error,
                              "agent_episodes": int(e.returns.size)}
                       for name, e in results.items()},
        "ppo_minus": {name: dict(zip(("mean", "standard_error"), results["ppo"].minus(e),
                                     strict=True))
                      for name, e in results.items() if name != "ppo"},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_curve(curve.points, report["evaluation"], out / "learning_curve.png",
               report["validation"])
    return report


def warm_start(model, venv, config: TrainConfig, maker: MakerChoice, folder: Path):
    """Clone ``maker`` (or ``PPOSettings.teacher``'s maker) into ``model`` before PPO
    (:mod:`rltrader.training.imitation`) and save the result as the checkpoint of 0 agent-steps;
    returns the clone's report."""
    from rltrader.training.imitation import WithKeepHead, clone, demonstrate

    teacher: Policy = maker.policy(config.env, venv.num_envs)
    if config.ppo.teacher is not None:
        offset, size, limit = config.ppo.teacher
        teacher = FixedSpreadMaker(config.env, venv.num_envs, offset=offset, size=size,
                                   max_inventory=limit)
    if config.ppo.keep_head:
        teacher = WithKeepHead(teacher)
    env_obs_dim = len(observation_names(config.env.depth))
    demos = demonstrate(venv, teacher, config.ppo.imitate_steps, env_obs_dim)
    report = clone(model, venv, demos, epochs=config.ppo.imitate_epochs, seed=config.seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "ppo_0_steps.zip")
    venv.save(str(folder / "ppo_vecnormalize_0_steps.pkl"))
    return report


def checkpoints(out: Path, final_steps: int) -> dict[int, tuple[Path, Path]]:
    """Every saved policy of a run by agent-steps: ``(model, VecNormalize statistics)``,
    the final weights (``ppo_final.zip``) under ``final_steps``."""
    found = {}
    for model_path in (out / "checkpoints").glob("ppo_*_steps.zip"):
        steps = int(model_path.stem.split("_")[1])
        found[steps] = (model_path, out / "checkpoints" / f"ppo_vecnormalize_{steps}_steps.pkl")
    found[final_steps] = (out / "ppo_final.zip", out / "vecnormalize.pkl")
    return dict(sorted(found.items()))


def validate(candidates: dict[int, tuple[Path, Path]],
             config: TrainConfig) -> dict[int, Evaluation]:
    """Each candidate policy's deterministic return over one episode of the validation
    markets (``config.validation_seed``), which the final evaluation does not use."""
    return {steps: evaluate(PPOPolicy(*paths), config.env,
                            n_envs=config.n_envs, n_agents=config.n_agents,
                            seed=config.validation_seed)
            for steps, paths in candidates.items()}


def _as_json(value):
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def plot_curve(points: list, evaluation: dict, path: Path,
               validation: dict | None = None) -> Path:
    """Episode return and reward per agent-step against agent-steps, with the final
    evaluation of each policy as a horizontal line (mean ± s.e. band) and the checkpoints'
    validation scores (``results.json``'s ``validation``) as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([pt.agent_steps for pt in points], dtype=float) / 1e6
    episode = np.array([pt.episode_return for pt in points])
    reward = np.array([pt.step_reward for pt in points])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ok = np.isfinite(episode)
    top.plot(steps[ok], episode[ok], "o-", color="tab:blue", label="PPO (training episodes)")
    if validation:
        at = np.array([int(k) for k in validation], dtype=float) / 1e6
        top.plot(at, [v["mean"] for v in validation.values()], "s--", color="tab:green",
                 ms=4, lw=1, label="PPO checkpoints (validation markets)")
    colours = ("tab:blue", "tab:purple", "tab:grey", "tab:orange", "tab:red", "tab:brown")
    for (name, e), colour in zip(evaluation.items(), colours, strict=False):
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
             ]
    imitation = report.get("imitation")
    if imitation:
        lines.append(f"cloned the market maker first: {imitation['samples']:,} samples, "
                     f"{100 * imitation['action_accuracy']:.3f} % of actions matched, "
                     f"{imitation['seconds']:.1f} s")
    validation = report.get("validation")
    if validation:
        scores = ", ".join(f"{int(k) / 1e6:g} M: {v['mean']:+.2f}" for k, v in validation.items())
        lines.append(f"validation (deterministic, one episode): {scores}")
        lines.append(f"selected: the policy after {report['selected_checkpoint']:,} agent-steps")
    maker = report.get("maker")
    if maker:
        lines.append(f"fixed-spread maker: offset {maker['offset']}, size {maker['size']:g}, "
                     f"inventory limit {maker['max_inventory']:g} (best of "
                     f"{len(maker['grid'])} on the training markets, {maker['seconds']:.1f} s)")
    lines.append("mean episode return ± s.e. (ticks per lot of the agent's order size):")
    for name, e in report["evaluation"].items():
        lines.append(f"  {name:16s} {e['mean']:+9.3f} ± {e['standard_error']:.3f}  "
                     f"({e['agent_episodes']} agent-episodes)")
    for name, d in report.get("ppo_minus", {}).items():
        lines.append(f"  ppo - {name:10s} {d['mean']:+9.3f} ± {d['standard_error']:.3f}  "
                     f"(paired by market)")
    return "\n".join(lines)


def main(out: str, *, timesteps: int | None = None, seed: int = 0, horizon: int | None = None,
         market: str | None = None, imitate_steps: int | None = None, progress: bool = True,
         **overrides: int | None) -> int:
    """``rltrader train``: a :class:`TrainConfig` from the defaults and the options given
    (``None``: the default), trained into ``out``; prints the figures."""
    changes: dict = {k: v for k, v in overrides.items() if v is not None}
    if imitate_steps is not None:
        changes["ppo"] = dataclasses.replace(PPOSettings(), imitate_steps=imitate_steps)
    if timesteps is not None:
        changes["total_timesteps"] = timesteps
    env = DEFAULT_ENV
    if horizon is not None:
        env = env.replace(horizon=horizon)
    if market is not None:
        env = env.replace(market=market)
    if env != DEFAULT_ENV:
        changes["env"] = env
    config = TrainConfig(seed=seed, **changes)
    report = train(config, out, progress=progress)
    print(format_report(report))
    print(f"wrote {out}/ppo_final.zip, checkpoints/, curve.csv, learning_curve.png, "
          f"results.json")
    return 0
