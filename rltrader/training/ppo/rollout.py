"""The rollout: preallocated ``(T, N, ...)`` tensors in group order, and GAE.

Column ``c`` of every tensor is env row ``order[c]`` (``policy.group_order``; the identity
for a shared policy). ``obs[t]`` is the normalised observation the policy acted on at step
``t``; ``obs[T]`` the one after the last step (for the bootstrap value). ``dones[t]``
(terminated or truncated) ends the column's episode after step ``t``; ``starts[t]`` is 1
where ``obs[t]`` begins an episode (``dones[t - 1]``, the previous rollout's last step for
``t = 0``), which resets a recurrent state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rltrader.training.ppo.policy import ActionSpec


@dataclass
class Truncation:
    """Columns truncated (not terminated) at step ``t``: their final observations
    (normalised), for a centralised critic their markets' mean final observations, and
    (filled by the critic's pass) the values of those final observations."""

    t: int
    columns: torch.Tensor
    obs: torch.Tensor
    means: torch.Tensor | None
    values: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.values = torch.zeros(len(self.columns))


@dataclass
class Rollout:
    """Preallocated buffers of one rollout (module docstring)."""

    n_steps: int
    n_columns: int
    obs_dim: int
    spec: ActionSpec
    n_markets: int
    centralised: bool
    state_size: int | None
    truncations: list[Truncation] = field(default_factory=list)

    def __post_init__(self) -> None:
        t, n, d = self.n_steps, self.n_columns, self.obs_dim
        self.obs = torch.zeros(t + 1, n, d)
        #: centralised critic: each market's mean normalised observation
        self.means = torch.zeros(t + 1, self.n_markets, d) if self.centralised else None
        dtype = torch.float32 if self.spec.is_box else torch.int64
        self.actions = torch.zeros(t, n, self.spec.columns, dtype=dtype)
        self.logp = torch.zeros(t, n)
        self.rewards = torch.zeros(t, n)
        self.dones = torch.zeros(t, n)
        self.starts = torch.zeros(t + 1, n)
        self.values = torch.zeros(t + 1, n)
        self.advantages = torch.zeros(t, n)
        self.returns = torch.zeros(t, n)
        if self.state_size is not None:
            self.actor_state = torch.zeros(n, self.state_size)
            self.critic_state = torch.zeros(n, self.state_size)


def bootstrap_truncated(rewards: torch.Tensor, truncations: list[tuple[int, torch.Tensor,
                                                                       torch.Tensor]],
                        gamma: float) -> None:
    """Add ``gamma x V(final observation)`` to the last reward of each truncated episode
    (in place): with the transition then treated as terminal, GAE bootstraps it from the
    final observation's value, as it would have continued. ``truncations``: ``(t, columns,
    values)``."""
    for t, columns, values in truncations:
        rewards[t].index_add_(0, columns, gamma * values.to(rewards.dtype))


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, gamma: float,
        lam: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised advantage estimates ``(T, N)`` from ``rewards`` and ``dones`` ``(T, N)``
    and ``values`` ``(T + 1, N)`` (``values[T]``: the bootstrap). A done step does not look
    past itself (truncated steps carry their bootstrap in the reward:
    :func:`bootstrap_truncated`)."""
    n_steps = rewards.shape[0]
    out = torch.empty_like(rewards) if out is None else out
    last = torch.zeros_like(rewards[0])
    for t in range(n_steps - 1, -1, -1):
        keep = 1.0 - dones[t]
        delta = rewards[t] + gamma * values[t + 1] * keep - values[t]
        last = delta + (gamma * lam) * keep * last
        out[t] = last
    return out
