"""A warm start for :class:`~rltrader.training.ppo.trainer.FastPPO`: behaviour cloning of
a scripted teacher (a :class:`~rltrader.training.exploits.Strategy`, e.g. the strongest
baseline of the task) before PPO.

The teacher drives every agent row of the trainer's own env for ``steps`` batched steps.
From those steps the trainer's observation normaliser and reward scaler take their
statistics; the actor is fitted to the teacher's actions (cross-entropy against a target
that keeps ``smoothing`` of its mass spread over each head's actions, so that PPO still
explores), and the critic to the discounted returns of the scaled rewards. PPO then
continues from the env's state after those steps: the teacher's agent-steps are not
counted in ``agent_steps``.

Only categorical actions (``Discrete`` / ``MultiDiscrete``) and feed-forward policies are
cloned; a ``Box`` action space or a recurrent core raises ``ValueError``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from rltrader.training.ppo.trainer import FastPPO, _adam


def teacher_rollout(trainer: FastPPO, teacher: Any, steps: int) -> dict[str, torch.Tensor]:
    """Drive the trainer's env with ``teacher`` for ``steps`` batched steps from its
    current state; ``(T, N, ...)`` tensors of raw observations, actions, rewards, dones
    (env row order). Over a ``MixedMarketEnv`` a copy of the teacher begins in each lane
    (its market) and acts for that lane's rows."""
    import copy

    env = trainer.env
    if trainer._obs_np is None:
        trainer.start()
    lanes = getattr(env, "lanes", None)
    if lanes is None:                   # a plain env: one lane, the teacher itself
        lanes, rows, teachers = [env], [slice(0, trainer.n_rows)], [teacher]
    else:
        rows, teachers = env.rows, [copy.deepcopy(teacher) for _ in lanes]
    for t, lane in zip(teachers, lanes, strict=True):
        t.begin(lane)
    agents = list(range(trainer.n_agents))
    obs = np.empty((steps, trainer.n_rows, trainer.model.obs_dim), np.float32)
    actions = np.empty((steps, trainer.n_rows, trainer.spec.columns), np.int64)
    rewards = np.empty((steps, trainer.n_rows), np.float32)
    dones = np.empty((steps, trainer.n_rows), np.float32)
    current = trainer._obs_np
    for t in range(steps):
        obs[t] = current
        for teach, lane, r in zip(teachers, lanes, rows, strict=True):
            chosen = np.asarray(teach.actions(np.asarray(lane.episode_step, dtype=np.int64),
                                              lane.config.horizon, lane, agents),
                                dtype=np.int64)
            actions[t, r] = chosen.reshape(r.stop - r.start, -1)
        current, reward, terminated, truncated = env.step(
            actions[t].reshape(trainer.n_rows, *actions.shape[2:])
            if trainer.spec.columns > 1 else actions[t, :, 0])
        rewards[t] = reward
        dones[t] = terminated | truncated
    trainer._obs_np = current
    trainer._counted = False
    return {name: torch.from_numpy(value) for name, value in (
        ("obs", obs), ("actions", actions), ("rewards", rewards), ("dones", dones))}


def clone(trainer: FastPPO, teacher: Any, *, steps: int, epochs: int = 10,
          minibatch_size: int = 4_096, learning_rate: float = 1e-3,
          smoothing: float = 0.05) -> dict[str, float]:
    """Fit ``trainer``'s policy and critic to ``teacher`` (module docstring); returns the
    clone's statistics: agent-steps cloned, the share of the teacher's actions the
    clone's most likely action matches (every head), the samples whose return is complete
    (the critic's), the final losses and the seconds."""
    m = trainer.model
    if trainer.spec.is_box or m.recurrent:
        raise ValueError("cloning needs categorical actions and a feed-forward policy")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if steps < 1 or epochs < 1:
        raise ValueError(f"need steps >= 1 and epochs >= 1, got {steps} and {epochs}")
    began = time.perf_counter()
    data = teacher_rollout(trainer, teacher, steps)
    obs, actions = data["obs"], data["actions"]
    rewards, dones = data["rewards"], data["dones"]
    if trainer.order is not None:                    # into the rollout's group order
        obs, actions = obs[:, trainer.order], actions[:, trainer.order]
        rewards, dones = rewards[:, trainer.order], dones[:, trainer.order]
    flat = obs.reshape(-1, m.obs_dim)
    if m.normalize_obs:
        m.obs_norm.update(flat)
    # the running episode returns continue into PPO's first rollouts
    for t in range(steps):
        trainer._episode_return += rewards[t]
        trainer._episode_return *= 1.0 - dones[t].to(torch.float64)
    scaled = rewards.clone()
    if trainer.reward_scaler is not None:
        trainer.reward_scaler.scale_(scaled, dones)
    returns = torch.zeros_like(scaled)
    running = torch.zeros(scaled.shape[1])
    gamma = trainer.settings.gamma
    for t in range(steps - 1, -1, -1):
        running = scaled[t] + gamma * running * (1.0 - dones[t])
        returns[t] = running
    # a sample's return is complete when its episode ended within the teacher's steps, or
    # (gamma < 1) when the steps left after it cover ~3 / (1 - gamma) of discounting
    ended = torch.arange(steps).unsqueeze(1) * dones
    last_end = torch.where(dones.any(0), ended.argmax(0), -1)
    horizon = steps if gamma >= 1.0 else int(round(3.0 / (1.0 - gamma)))
    complete = ((torch.arange(steps).unsqueeze(1) <= last_end)
                | (torch.arange(steps).unsqueeze(1) < steps - horizon))
    z = m.normalize(flat).view(steps, -1, m.obs_dim)
    means = None
    if m.centralised:
        means = torch.empty(steps, trainer.n_markets, m.obs_dim)
        for t in range(steps):
            trainer._market_means(z[t], means[t])
    optimizer = _adam(m, learning_rate)
    spec = trainer.spec
    width = max(spec.nvec)
    losses = {"policy": math.nan, "value": math.nan}
    value_samples = 0
    for g, c in enumerate(trainer.columns):
        net = m.nets[g]
        z_g = z[:, c].reshape(-1, m.obs_dim)
        a_g = actions[:, c].reshape(-1, spec.columns)
        critic_in = z[:, c]
        if means is not None:
            critic_in = torch.cat([critic_in, means[:, trainer.market_of[c]]], -1)
        chosen = complete[:, c].reshape(-1)
        critic_in = critic_in.reshape(-1, critic_in.shape[-1])[chosen]
        r_g = returns[:, c].reshape(-1)[chosen]
        value_samples += int(chosen.sum())
        n, n_value = z_g.shape[0], critic_in.shape[0]
        target = torch.full((n, spec.columns, width), 0.0)
        for head, size in enumerate(spec.nvec):
            target[:, head, :size] = smoothing / size
        target.scatter_add_(-1, a_g.unsqueeze(-1),
                            torch.full((n, spec.columns, 1), 1.0 - smoothing))
        batches = max(1, math.ceil(n / minibatch_size))
        for _ in range(epochs):
            order = torch.randperm(n, generator=trainer.generator)
            value_order = torch.randperm(n_value, generator=trainer.generator)
            for k in range(batches):
                pick = order[k * minibatch_size:(k + 1) * minibatch_size]
                vpick = value_order[k * n_value // batches:(k + 1) * n_value // batches]
                with m.autocast():
                    logp = m.head(g, net.actor.mlp(z_g[pick]))
                    values = net.value_head(net.critic.mlp(critic_in[vpick])).squeeze(-1)
                policy_loss = -(target[pick] * logp.clamp(min=-30.0)).sum((-1, -2)).mean()
                value_loss = (0.5 * (values.float() - r_g[vpick]).square().mean()
                              if len(vpick) else values.sum() * 0.0)
                loss = policy_loss + trainer.settings.vf_coef * value_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
                optimizer.step()
                losses = {"policy": float(policy_loss.detach()),
                          "value": float(value_loss.detach())}
    with torch.no_grad(), m.autocast():
        matched = []
        for g, c in enumerate(trainer.columns):
            z_g = z[:, c].reshape(-1, m.obs_dim)
            mode = m.mode(m.head(g, m.nets[g].actor.mlp(z_g)))
            matched.append((mode == actions[:, c].reshape(-1, spec.columns)).all(-1))
        match = float(torch.cat(matched).float().mean())
    return {"teacher": getattr(teacher, "name", type(teacher).__name__),
            "agent_steps": steps * trainer.n_rows, "matched": match,
            "value_samples": value_samples,
            "policy_loss": losses["policy"], "value_loss": losses["value"],
            "seconds": time.perf_counter() - began}


__all__ = ["clone", "teacher_rollout"]
