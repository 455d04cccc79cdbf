"""A vector task with the batched env's buffers API, for trainer tests: the right action
is visible in the observation (or is the agent's slot parity), so a trainer must learn it
and a random policy cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gymnasium import spaces


class MatchTask:
    """A vector task with the batched env's buffers API: every agent sees a one-hot target
    (plus a noise column) and earns 1 for choosing it (``target="slot"``: the target is
    the agent's slot parity, which the observation does not show). Episodes of
    ``horizon`` steps end ``terminated`` (or ``truncated``); auto-reset in the step."""

    def __init__(self, n_envs: int, n_agents: int, *, k: int = 4, horizon: int = 8,
                 action: str = "discrete", target: str = "observed",
                 truncate: bool = False) -> None:
        self.n_envs, self.n_agents, self.k = n_envs, n_agents, k
        self.horizon, self.action, self.target, self.truncate = horizon, action, target, truncate
        self.num_agents_total = n = n_envs * n_agents
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (k + 1,), np.float32)
        self.single_action_space = {"discrete": spaces.Discrete(k),
                                    "multi": spaces.MultiDiscrete([k, 3]),
                                    "box": spaces.Box(-2.0, 2.0, (1,), np.float32)}[action]
        self.observations = np.zeros((n, k + 1), np.float32)
        self.final_observations = np.zeros_like(self.observations)
        self.rewards = np.zeros(n, np.float32)
        self.terminated = np.zeros(n, bool)
        self.truncated = np.zeros(n, bool)
        self.slot_target = np.arange(n) % n_agents % 2
        self.rng = np.random.default_rng(0)

    def _draw(self) -> None:
        self.targets = (self.slot_target if self.target == "slot"
                        else self.rng.integers(0, self.k, self.num_agents_total))
        self.observations[:] = 0.0
        if self.target != "slot":
            self.observations[np.arange(self.num_agents_total), self.targets] = 1.0
        self.observations[:, -1] = self.rng.normal(size=self.num_agents_total)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self._draw()
        return self.observations

    def step(self, actions: np.ndarray):
        a = np.asarray(actions)
        if self.action == "discrete":
            assert a.shape == (self.num_agents_total,) and a.dtype == np.int64
            hit = a == self.targets
        elif self.action == "multi":
            assert a.shape == (self.num_agents_total, 2)
            hit = (a[:, 0] == self.targets) & (a[:, 1] == 1)
        else:
            assert np.all(np.abs(a) <= 2.0)
            hit = np.abs(a[:, 0] - (self.targets - 1.5) / 1.5) < 0.25
        self.rewards[:] = hit
        self.t += 1
        ended = self.t % self.horizon == 0
        self.terminated[:] = ended and not self.truncate
        self.truncated[:] = ended and self.truncate
        if ended:
            self.final_observations[:] = self.observations
        self._draw()
        return self.observations, self.rewards, self.terminated, self.truncated


def mean_return(env: MatchTask, policy, episodes: int = 2) -> float:
    obs = env.reset(seed=123)
    total = 0.0
    for _ in range(episodes * env.horizon):
        obs, rewards, _, _ = env.step(policy(obs))
        total += rewards.sum()
    return total / (episodes * env.num_agents_total)


def small_checkpoint(config, folder: Path) -> Path:
    """A fast PPO checkpoint of ``config``'s env (4 markets x 2 agents), 400 agent-steps
    of training: a policy with a normaliser, for the guard's tests."""
    from rltrader.envs import BatchedMarketEnv
    from rltrader.training.fast_ppo import FastPPO, FastPPOSettings

    env = BatchedMarketEnv(config, n_envs=4, n_agents=2, seed=0)
    trainer = FastPPO(env, FastPPOSettings(n_steps=8, progress=False, threads=1), seed=1)
    trainer.learn(400)
    return trainer.save(folder / "checkpoint.pt")
