"""Running statistics: the observation normaliser the policy carries (and saves), and the
reward scaler (running standard deviation of discounted returns)."""

from __future__ import annotations

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Per-feature running mean and variance of ``(batch, dim)`` samples, merged batch by
    batch (Chan et al.'s parallel form of Welford's update, in float64). ``normalize``
    uses float32 copies of ``-mean`` and ``1 / std`` refreshed by every update, so the
    hot path is one subtract, one multiply and one clamp.

    Buffers (all in the module's state dict): ``mean``, ``var`` (population variance),
    ``count`` (samples seen), ``shift`` (``-mean``, float32), ``scale`` (float32).
    """

    def __init__(self, dim: int, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def update(self, x: torch.Tensor) -> None:
        """Merge the samples ``x`` (``(batch, dim)``)."""
        x = x.reshape(-1, self.mean.shape[0]).to(torch.float64)
        self.merge(x.mean(0), x.var(0, unbiased=False), x.shape[0])

    def merge(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        """Merge a batch given by its mean, population variance and size."""
        if count <= 0:
            return
        total = self.count + count
        delta = mean.to(torch.float64) - self.mean
        m2 = (self.var * self.count + var.to(torch.float64) * count
              + delta.square() * (self.count * count / total))
        self.mean += delta * (count / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the float32 ``shift`` and ``scale`` from ``mean`` and ``var``."""
        self.shift.copy_(-self.mean)
        self.scale.copy_(1.0 / torch.sqrt(self.var + self.epsilon))


class RewardScaler:
    """Rewards divided by the running standard deviation of each agent's discounted return
    (``ret = gamma * ret + r``, reset at an episode's end; as Stable-Baselines3's
    ``VecNormalize`` does), then clipped. Works on a whole rollout at once."""

    def __init__(self, n_agents: int, gamma: float, clip: float,
                 epsilon: float = 1e-8) -> None:
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.returns = torch.zeros(n_agents, dtype=torch.float64)
        self.stats = RunningMeanStd(1)

    def scale_(self, rewards: torch.Tensor, dones: torch.Tensor) -> None:
        """Update the statistics with ``rewards`` ``(T, N)`` and scale them in place;
        ``dones[t]`` ends agent episodes after step ``t``."""
        seen = torch.empty(rewards.shape, dtype=torch.float64)
        ret = self.returns
        for t in range(rewards.shape[0]):
            ret.mul_(self.gamma).add_(rewards[t])
            seen[t] = ret
            ret.mul_(1.0 - dones[t].to(torch.float64))
        self.stats.update(seen.reshape(-1, 1))
        std = float(torch.sqrt(self.stats.var[0] + self.epsilon))
        rewards.div_(std).clamp_(-self.clip, self.clip)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"returns": self.returns.clone(), "mean": self.stats.mean.clone(),
                "var": self.stats.var.clone(), "count": self.stats.count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["returns"].shape == self.returns.shape:
            self.returns.copy_(state["returns"])
        for name in ("mean", "var", "count"):
            getattr(self.stats, name).copy_(state[name])
        self.stats.refresh()
