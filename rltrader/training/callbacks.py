"""Stable-Baselines3 plumbing for :mod:`rltrader.training.train`: env timing, progress,
learning curve.

``EnvMeter`` wraps the innermost VecEnv and adds up the wall time spent inside the env
(``reset`` and ``step``), so that the env's share of an end-to-end PPO run can be quoted,
and the raw rewards it paid (before any normalisation).
``TqdmProgress`` shows agent-steps with tqdm (SB3's own bar needs ``rich``).
``LearningCurve`` keeps one row per PPO rollout: agent-steps so far, wall seconds, the mean
reward per agent-step in the rollout and the mean return of the episodes that ended in it.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn
from tqdm import tqdm


class EnvMeter(VecEnvWrapper):
    """Adds up the wall seconds spent in the wrapped env's ``reset`` and ``step``, and the
    rewards it returned.

    Put it directly around the env, below any monitor or normaliser, so that only the env
    is timed and the rewards are the env's own.
    """

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        #: wall seconds inside the env so far
        self.seconds = 0.0
        #: calls to ``step_wait`` so far (one per batched step)
        self.steps = 0
        #: sum of every reward returned so far, over all sub-envs
        self.reward_sum = 0.0

    def reset(self) -> VecEnvObs:
        start = time.perf_counter()
        obs = self.venv.reset()
        self.seconds += time.perf_counter() - start
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        start = time.perf_counter()
        self.venv.step_async(actions)
        self.seconds += time.perf_counter() - start

    def step_wait(self) -> VecEnvStepReturn:
        start = time.perf_counter()
        obs, rewards, dones, infos = self.venv.step_wait()
        self.seconds += time.perf_counter() - start
        self.steps += 1
        self.reward_sum += float(rewards.sum())
        return obs, rewards, dones, infos


class TqdmProgress(BaseCallback):
    """A tqdm bar over agent-steps (``model.num_timesteps``), with the last episode return."""

    def __init__(self, total: int, disable: bool = False) -> None:
        super().__init__()
        self.total = total
        self.disable = disable
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, unit="agent-step", unit_scale=True,
                        disable=self.disable, desc="ppo")

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.model.num_timesteps - self.bar.n)
        return True

    def _on_rollout_end(self) -> None:
        assert self.bar is not None
        buffer = self.model.ep_info_buffer
        if buffer:
            self.bar.set_postfix(ep_return=f"{np.mean([e['r'] for e in buffer]):.3g}")

    def _on_training_end(self) -> None:
        assert self.bar is not None
        self.bar.close()


@dataclass(frozen=True)
class CurvePoint:
    """One PPO rollout of the learning curve."""

    agent_steps: int          #: agent-steps done at the rollout's end
    wall_s: float             #: wall seconds since training started
    env_s: float              #: of which inside the env
    step_reward: float        #: mean reward per agent-step over the rollout
    episodes: int             #: episodes that ended during the rollout
    episode_return: float     #: their mean return (NaN when none ended)


class LearningCurve(BaseCallback):
    """One :class:`CurvePoint` per rollout; ``save_csv`` writes them.

    Episode returns come from the ``"episode"`` entries that ``VecMonitor`` adds to the
    infos of finished episodes.
    """

    def __init__(self, meter: EnvMeter) -> None:
        super().__init__()
        self.meter = meter
        self.points: list[CurvePoint] = []
        self._returns: list[float] = []
        self._start = 0.0
        self._last = (0, 0.0)    # meter's (steps, reward_sum) at the last rollout's end

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._last = (self.meter.steps, self.meter.reward_sum)

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        for i in np.flatnonzero(self.locals["dones"]):
            episode = infos[i].get("episode")
            if episode is not None:
                self._returns.append(float(episode["r"]))
        return True

    def _on_rollout_end(self) -> None:
        steps, reward_sum = self.meter.steps, self.meter.reward_sum
        agent_steps = (steps - self._last[0]) * self.meter.num_envs
        self.points.append(CurvePoint(
            agent_steps=self.model.num_timesteps,
            wall_s=time.perf_counter() - self._start,
            env_s=self.meter.seconds,
            step_reward=(reward_sum - self._last[1]) / max(agent_steps, 1),
            episodes=len(self._returns),
            episode_return=float(np.mean(self._returns)) if self._returns else float("nan"),
        ))
        self._returns = []
        self._last = (steps, reward_sum)

    def save_csv(self, path: Path) -> None:
        """Write the points as CSV with a header row (field names of :class:`CurvePoint`)."""
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(CurvePoint.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(asdict(p) for p in self.points)


def action_heads(space) -> np.ndarray:
    """Choices per head of a ``Discrete`` (one head) or ``MultiDiscrete`` action space."""
    from gymnasium import spaces

    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.nvec).ravel()
    if isinstance(space, spaces.Discrete):
        return np.array([int(space.n)])
    raise TypeError(f"expected a Discrete or MultiDiscrete action space, got {space}")


def one_hot_actions(actions: np.ndarray, nvec: np.ndarray) -> np.ndarray:
    """``n`` actions (``(n, len(nvec))``, or ``(n,)`` for one head) as ``(n, sum(nvec))``
    float32 one-hots, the heads side by side."""
    actions = np.asarray(actions).reshape(-1, len(nvec))
    offsets = np.concatenate(([0], np.cumsum(nvec)[:-1]))
    out = np.zeros((actions.shape[0], int(np.sum(nvec))), dtype=np.float32)
    out[np.arange(actions.shape[0])[:, None], offsets + actions] = 1.0
    return out


class PreviousAction(VecEnvWrapper):
    """Appends each sub-env's previous action (one-hot per head of a ``Discrete`` or
    ``MultiDiscrete`` space; zeros before the first action) to its observation.

    A memory of one step for a feed-forward policy: in the market-making mode an unchanged
    quote keeps its queue position and a changed one goes to the back, so the value of an
    action depends on the previous one, which the env's observation does not show. It is
    carried across episode boundaries (:class:`~rltrader.training.train.PPOPolicy` does the
    same when it evaluates).
    """

    def __init__(self, venv: VecEnv) -> None:
        from gymnasium import spaces

        self.nvec = action_heads(venv.action_space)
        box = venv.observation_space
        extra = int(self.nvec.sum())
        space = spaces.Box(np.concatenate([box.low, np.zeros(extra, np.float32)]),
                           np.concatenate([box.high, np.ones(extra, np.float32)]),
                           dtype=np.float32)
        super().__init__(venv, observation_space=space)
        self.previous = np.zeros((venv.num_envs, extra), dtype=np.float32)

    def reset(self) -> VecEnvObs:
        self.previous[:] = 0.0
        return np.concatenate([self.venv.reset(), self.previous], axis=1)

    def step_async(self, actions: np.ndarray) -> None:
        self.previous = one_hot_actions(np.asarray(actions), self.nvec)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        for i, info in enumerate(infos):
            if "terminal_observation" in info:
                info["terminal_observation"] = np.concatenate(
                    [info["terminal_observation"], self.previous[i]])
        return np.concatenate([obs, self.previous], axis=1), rewards, dones, infos


class KeepAction(VecEnvWrapper):
    """Adds a first action head, *keep*: 1 repeats the sub-env's previous action (the other
    heads are then ignored), 0 takes the action of the other heads.

    A policy that samples its actions pays for every sampled change in the market-making
    mode (a changed quote loses its queue position). With this head the policy decides
    *whether* to act again separately from *how*, so once keeping pays it can keep with
    high probability while the other heads still explore (the repeat decisions of TempoRL,
    Biedenkapp et al. 2021, one step at a time). Before the first action, and after a
    ``reset``, the previous action is all zeros. Wrap it outside :class:`PreviousAction`,
    which then records the actions the env received.
    """

    def __init__(self, venv: VecEnv) -> None:
        from gymnasium import spaces

        self.nvec = action_heads(venv.action_space)
        space = spaces.MultiDiscrete(np.concatenate(([2], self.nvec)))
        super().__init__(venv, action_space=space)
        self.previous = np.zeros((venv.num_envs, len(self.nvec)), dtype=np.int64)

    def reset(self) -> VecEnvObs:
        self.previous[:] = 0          # as PreviousAction shows after a reset
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(self.effective(actions))

    def effective(self, actions: np.ndarray) -> np.ndarray:
        """The actions the env receives for policy actions ``(n, 1 + heads)``; updates the
        previous actions."""
        actions = np.asarray(actions).reshape(len(self.previous), -1)
        keep = actions[:, 0].astype(bool)
        self.previous = np.where(keep[:, None], self.previous, actions[:, 1:])
        return self.previous if len(self.nvec) > 1 else self.previous[:, 0]

    def step_wait(self) -> VecEnvStepReturn:
        return self.venv.step_wait()
