"""Warm-start PPO from a teacher policy: behaviour cloning plus a value fit.

In the market-making mode the value of a quote is its place in the queue, and any change
of price or size sends it to the back. A policy that samples its actions keeps losing its
place: the fixed-spread maker's return halves when each of its three action heads is
replaced by a random choice 1 % of the time (docs/training.md). PPO started from random
weights samples widely for millions of steps, so it rarely sees what steady quoting earns.
Cloning a teacher first starts PPO where steady quoting is already the policy (the
"kickstarting" of Schmitt et al. 2018, here done once before training). PPO then improves
on the teacher from its own rollouts; the teacher is not consulted again.

:func:`demonstrate` runs the teacher in the training env stack (its ``VecNormalize``
statistics learn from these steps too). :func:`clone` fits the policy's action heads to
the teacher's actions (cross-entropy) and its value head to the discounted returns of the
demonstrations, in the normalised reward units PPO will use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rltrader.training.baselines import Policy


@dataclass(frozen=True)
class Demonstrations:
    """A teacher's steps in a vectorised env: ``T`` steps x ``n`` sub-envs.

    ``observations`` are the policy's raw (unnormalised) inputs, ``(T, n, obs_dim)``;
    ``actions`` ``(T, n, heads)``; ``rewards`` raw, ``(T, n)``; ``dones`` ``(T, n)``, true
    where the sub-env's episode ended with that step.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray


@dataclass(frozen=True)
class CloneReport:
    """How closely the cloned policy follows its teacher on the demonstrations."""

    samples: int                 #: (observation, action) pairs fitted
    epochs: int
    head_accuracy: list[float]   #: per action head: most likely action == teacher's
    action_accuracy: float       #: every head at once
    teacher_probability: float   #: mean probability of the teacher's whole action
    value_explained_variance: float
    seconds: float


def demonstrate(venv, teacher: Policy, steps: int, env_obs_dim: int) -> Demonstrations:
    """Run ``teacher`` for ``steps`` steps of ``venv``, an SB3 ``VecNormalize`` stack.

    The teacher sees the first ``env_obs_dim`` columns of the raw observation (the env's
    own, without columns appended by wrappers such as ``PreviousAction``); the recorded
    observations are the policy's full raw input.
    """
    if steps < 1:
        raise ValueError(f"demonstrate: steps must be >= 1, got {steps}")
    venv.reset()
    first = venv.get_original_obs()
    n, width = first.shape
    heads = len(np.atleast_1d(venv.action_space.sample()))
    observations = np.empty((steps, n, width), dtype=np.float32)
    actions = np.empty((steps, n, heads), dtype=np.int64)
    rewards = np.empty((steps, n), dtype=np.float32)
    dones = np.empty((steps, n), dtype=bool)
    for t in range(steps):
        raw = venv.get_original_obs()
        observations[t] = raw
        action = np.asarray(teacher(raw[:, :env_obs_dim])).reshape(n, heads)
        actions[t] = action
        _, _, done, _ = venv.step(action if heads > 1 else action[:, 0])
        rewards[t] = venv.get_original_reward()
        dones[t] = done
    return Demonstrations(observations, actions, rewards, dones)


class WithKeepHead:
    """``teacher``'s actions for a policy with a keep head (``PPOSettings.keep_head``):
    ``1`` where the teacher repeats its previous action, ``0`` and the action where it
    changes (and at its first step)."""

    def __init__(self, teacher: Policy) -> None:
        self.teacher = teacher
        self.previous: np.ndarray | None = None

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        actions = np.asarray(self.teacher(observations)).reshape(len(observations), -1).copy()
        keep = (np.zeros(len(actions), dtype=bool) if self.previous is None
                else (actions == self.previous).all(axis=1))
        self.previous = actions
        return np.concatenate([keep[:, None].astype(actions.dtype), actions], axis=1)


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` within episodes (``(T, n)`` arrays), 0 after the
    last step: the tail's returns are truncated (see :func:`clone`)."""
    returns = np.zeros_like(rewards, dtype=np.float64)
    following = np.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = rewards[t] + gamma * following * ~dones[t]
        returns[t] = following
    return returns


def clone(model, venv, demos: Demonstrations, *, epochs: int = 4, batch_size: int = 8_192,
          learning_rate: float = 1e-3, seed: int = 0) -> CloneReport:
    """Fit ``model``'s policy (an SB3 ``PPO``) to ``demos`` in place.

    Loss per minibatch: ``-log pi(teacher's action | obs) + vf_coef * (V(obs) - G)^2``, with
    observations normalised and rewards scaled by ``venv``'s (a ``VecNormalize``) final
    statistics and ``G`` the discounted return at the model's ``gamma``, 0 after an
    episode's end (the env's horizon *terminates* an episode, so PPO does not bootstrap
    there either). Steps within ``5 / (1 - gamma)`` of the end of the demonstrations (whose
    returns are cut short) are left out of the value fit. A fresh Adam optimiser is used,
    so PPO's own starts clean.
    """
    import time

    import torch

    started = time.perf_counter()
    steps, n, width = demos.observations.shape
    gamma = float(model.gamma)
    scaled = np.asarray(venv.normalize_reward(demos.rewards), dtype=np.float64)
    returns = discounted_returns(scaled, demos.dones, gamma)
    usable = np.zeros((steps, n), dtype=bool)
    usable[: max(steps - math.ceil(5 / (1 - gamma)), 1)] = True

    obs = torch.as_tensor(venv.normalize_obs(demos.observations.reshape(-1, width)),
                          dtype=torch.float32)
    heads = demos.actions.shape[2]
    acts = torch.as_tensor(demos.actions.reshape(-1, heads))
    if heads == 1:
        acts = acts[:, 0]
    targets = torch.as_tensor(returns.reshape(-1), dtype=torch.float32)
    weights = torch.as_tensor(usable.reshape(-1), dtype=torch.float32)
    policy = model.policy
    policy.set_training_mode(True)
    optimiser = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    total = obs.shape[0]
    for _ in range(epochs):
        for batch in torch.randperm(total, generator=generator).split(batch_size):
            values, log_prob, _ = policy.evaluate_actions(obs[batch], acts[batch])
            w = weights[batch]
            value_loss = (w * (values.flatten() - targets[batch]) ** 2).sum() / w.sum().clamp(min=1)
            loss = -log_prob.mean() + model.vf_coef * value_loss
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
            optimiser.step()
    policy.set_training_mode(False)
    return _report(policy, obs, acts, targets, weights, epochs, time.perf_counter() - started)


def _report(policy, obs, acts, targets, weights, epochs: int, seconds: float) -> CloneReport:
    import torch

    agree, probability, values = [], [], []
    with torch.no_grad():
        for batch in torch.arange(obs.shape[0]).split(65_536):
            value, log_prob, _ = policy.evaluate_actions(obs[batch], acts[batch])
            predicted = policy._predict(obs[batch], deterministic=True).reshape(acts[batch].shape)
            agree.append((predicted == acts[batch]).reshape(len(batch), -1))
            probability.append(log_prob.exp())
            values.append(value.flatten())
    agree_all = torch.cat(agree)
    value = torch.cat(values)
    mask = weights > 0
    residual = (targets[mask] - value[mask]).var()
    explained = 1.0 - float(residual / targets[mask].var().clamp(min=1e-12))
    return CloneReport(samples=int(obs.shape[0]), epochs=epochs,
                       head_accuracy=[float(x) for x in agree_all.float().mean(0)],
                       action_accuracy=float(agree_all.all(1).float().mean()),
                       teacher_probability=float(torch.cat(probability).mean()),
                       value_explained_variance=explained, seconds=seconds)
