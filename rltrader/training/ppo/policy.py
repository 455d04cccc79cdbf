"""The actor-critic: observation normaliser, one actor and one critic per agent group
(an MLP, optionally followed by a GRU), action distributions for the env's spaces, and
:class:`Policy`, the deterministic view of a trained model for evaluation.

Rows are kept in *group order* inside the trainer: group 0's agents of every market, then
group 1's... (:func:`group_order`); a shared policy is one group and its order is the env's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rltrader.training.ppo.normalize import RunningMeanStd

#: additive logit of a padded (impossible) category of a MultiDiscrete head
_MASKED = -1e9
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ActionSpec:
    """What the policy must produce: ``kind`` ``"discrete"``, ``"multi_discrete"`` (one
    categorical head per ``nvec`` entry) or ``"box"`` (a diagonal Gaussian in ``[-1, 1]``
    units, mapped affinely onto ``[low, high]`` and clipped there)."""

    kind: str
    nvec: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @classmethod
    def from_space(cls, space: spaces.Space) -> ActionSpec:
        if isinstance(space, spaces.Discrete):
            if int(space.start) != 0:
                raise ValueError(f"Discrete action spaces must start at 0, got {space}")
            return cls("discrete", (int(space.n),))
        if isinstance(space, spaces.MultiDiscrete):
            if space.nvec.ndim != 1 or np.any(space.start != 0):
                raise ValueError(f"MultiDiscrete action spaces must be 1-D from 0, got {space}")
            return cls("multi_discrete", tuple(int(n) for n in space.nvec))
        if isinstance(space, spaces.Box):
            if len(space.shape) != 1 or not (np.isfinite(space.low).all()
                                             and np.isfinite(space.high).all()):
                raise ValueError(f"Box action spaces must be 1-D and bounded, got {space}")
            return cls("box", (), tuple(float(x) for x in space.low),
                       tuple(float(x) for x in space.high))
        raise ValueError(f"unsupported action space {space!r} (Discrete, MultiDiscrete or "
                         "Box)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionSpec:
        return cls(d["kind"], tuple(d["nvec"]), tuple(d["low"]), tuple(d["high"]))

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "nvec": list(self.nvec), "low": list(self.low),
                "high": list(self.high)}

    @property
    def is_box(self) -> bool:
        return self.kind == "box"

    @property
    def columns(self) -> int:
        """Action columns stored per agent-step (categorical heads, or Box dimensions)."""
        return len(self.low) if self.is_box else len(self.nvec)

    @property
    def n_outputs(self) -> int:
        """Width of the policy head: heads x widest head (padded), or Box dimensions."""
        return len(self.low) if self.is_box else len(self.nvec) * max(self.nvec)


def head_mask(nvec: tuple[int, ...]) -> torch.Tensor:
    """``(heads, widest head)`` additive logits: 0, or ``_MASKED`` for a narrower head's
    padding categories."""
    mask = torch.zeros(len(nvec), max(nvec))
    for head, n in enumerate(nvec):
        mask[head, n:] = _MASKED
    return mask


def group_order(slots: list[list[int]], n_rows: int, n_agents: int) -> torch.Tensor:
    """Env row of each column in group order: group by group, market by market, the group's
    agent slots in the order given (``n_rows = n_markets x n_agents``)."""
    if n_rows % n_agents:
        raise ValueError(f"{n_rows} rows are not whole markets of {n_agents} agents")
    markets = torch.arange(n_rows // n_agents).unsqueeze(1) * n_agents
    return torch.cat([(markets + torch.tensor(g)).reshape(-1) for g in slots])


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [_linear(a, b, math.sqrt(2.0)),
                   nn.Tanh() if activation == "tanh" else nn.ReLU()]
    return nn.Sequential(*layers)


def _linear(a: int, b: int, gain: float) -> nn.Linear:
    layer = nn.Linear(a, b)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class Encoder(nn.Module):
    """An MLP, then a GRU cell when ``gru_size`` is given."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], activation: str,
                 gru_size: int | None) -> None:
        super().__init__()
        self.mlp = _mlp([in_dim, *hidden], activation)
        self.gru = None if gru_size is None else nn.GRUCell(hidden[-1], gru_size)
        self.out_dim = hidden[-1] if gru_size is None else gru_size

    def step(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """One step of ``x`` ``(B, in)``; the GRU's new state is the output."""
        y = self.mlp(x)
        return y if self.gru is None else self.gru(y, h)

    def unroll(self, x: torch.Tensor, h0: torch.Tensor | None,
               starts: torch.Tensor | None) -> torch.Tensor:
        """Outputs for ``x`` ``(..., in)``; recurrent: ``x`` is ``(T, B, in)`` from state
        ``h0`` ``(B, H)``, zeroed before step ``t`` where ``starts[t]`` is 1."""
        y = self.mlp(x)
        if self.gru is None:
            return y
        out, h = [], h0
        for t in range(y.shape[0]):
            h = self.gru(y[t], h * (1.0 - starts[t]).unsqueeze(1))
            out.append(h)
        return torch.stack(out)


class GroupNet(nn.Module):
    """One group's actor and critic: separate networks, or (``shared``) one trunk under
    both heads (``critic`` is then the actor's module)."""

    def __init__(self, obs_dim: int, critic_dim: int, spec: ActionSpec,
                 hidden: tuple[int, ...], activation: str, gru_size: int | None,
                 log_std_init: float, shared: bool = False) -> None:
        super().__init__()
        self.actor = Encoder(obs_dim, hidden, activation, gru_size)
        self.policy_head = _linear(self.actor.out_dim, spec.n_outputs, 0.01)
        self.critic = self.actor if shared else Encoder(critic_dim, hidden, activation,
                                                        gru_size)
        self.value_head = _linear(self.critic.out_dim, 1, 1.0)
        self.log_std = (nn.Parameter(torch.full((len(spec.low),), float(log_std_init)))
                        if spec.is_box else None)


class ActorCritic(nn.Module):
    """Observation normaliser and one :class:`GroupNet` per group.

    ``architecture`` (saved in checkpoints) rebuilds it: ``obs_dim``, ``action`` (the
    :class:`ActionSpec` as a dict), ``n_agents``, ``groups`` (agent slots per group),
    ``hidden``, ``activation``, ``critic``, ``recurrent``, ``gru_size``,
    ``log_std_init``, ``normalize_obs``, ``obs_clip``, ``precision``, ``shared_trunk``;
    ``mirror`` (only when set: a residual market maker symmetric under the buy-sell
    mirror, :mod:`rltrader.training.ppo.mirror`).
    """

    def __init__(self, architecture: dict[str, Any]) -> None:
        super().__init__()
        a = self.architecture = dict(architecture)
        self.spec = ActionSpec.from_dict(a["action"])
        self.obs_dim, self.n_agents = int(a["obs_dim"]), int(a["n_agents"])
        self.slots: list[list[int]] = [list(g) for g in a["groups"]]
        self.centralised = a["critic"] == "centralised"
        self.recurrent = bool(a["recurrent"])
        self.gru_size = int(a["gru_size"]) if self.recurrent else None
        self.normalize_obs, self.obs_clip = bool(a["normalize_obs"]), float(a["obs_clip"])
        self.bfloat16 = a.get("precision", "float32") == "bfloat16"
        #: one trunk under the policy and value heads (checkpoints before it: separate)
        self.shared_trunk = bool(a.get("shared_trunk", False))
        if self.shared_trunk and self.centralised:
            raise ValueError("a shared trunk needs the independent critic (the centralised "
                             "critic's input is wider)")
        self.obs_norm = RunningMeanStd(self.obs_dim)
        critic_dim = self.obs_dim * (2 if self.centralised else 1)
        self.nets = nn.ModuleList(
            GroupNet(self.obs_dim, critic_dim, self.spec, tuple(a["hidden"]),
                     a["activation"], self.gru_size, a["log_std_init"], self.shared_trunk)
            for _ in self.slots)
        if a.get("mirror") is not None:
            self._mirror(a["mirror"])
        if self.spec.is_box:
            self.register_buffer("low", torch.tensor(self.spec.low, dtype=torch.float32))
            self.register_buffer("high", torch.tensor(self.spec.high, dtype=torch.float32))
        else:
            self.register_buffer("mask", head_mask(self.spec.nvec))
            #: some heads are narrower than the widest: their padding is masked
            self.padded = len(set(self.spec.nvec)) > 1
            self.register_buffer("top", torch.tensor(self.spec.nvec) - 1)

    def _mirror(self, mirror: dict[str, Any]) -> None:
        """Make the actor equivariant and the critic invariant under ``mirror`` (the
        same weights on a row and on its mirror, averaged) and the normaliser
        symmetric."""
        from rltrader.training.ppo.mirror import MirroredEncoder, MirroredHead, MirroredMeanStd

        if self.recurrent or self.centralised or self.spec.kind != "discrete":
            raise ValueError("a mirrored policy is feed-forward, with the independent critic "
                             "and a Discrete action space (the residual corrections)")
        if len(mirror["source"]) != self.obs_dim or len(mirror["actions"]) != self.spec.nvec[0]:
            raise ValueError(f"the mirror maps {len(mirror['source'])} columns and "
                             f"{len(mirror['actions'])} actions; the policy has "
                             f"{self.obs_dim} and {self.spec.nvec[0]}")
        self.obs_norm = MirroredMeanStd(self.obs_dim, mirror)
        for net in self.nets:
            net.actor.mlp = MirroredEncoder(net.actor.mlp, mirror)
            net.policy_head = MirroredHead(net.policy_head, list(mirror["actions"]))
            if net.critic is not net.actor:
                net.critic.mlp = MirroredEncoder(net.critic.mlp, mirror)
            net.value_head = MirroredHead(net.value_head, None)

    def autocast(self) -> torch.autocast:
        """The networks' precision (bfloat16 autocast, or a no-op)."""
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16)

    # ---- layout -------------------------------------------------------------------------

    def group_columns(self, n_rows: int) -> list[slice]:
        """Each group's columns in group order for ``n_rows`` env rows."""
        markets, start, out = n_rows // self.n_agents, 0, []
        for g in self.slots:
            out.append(slice(start, start + markets * len(g)))
            start += markets * len(g)
        return out

    # ---- inputs -------------------------------------------------------------------------

    def normalize(self, obs: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised, clipped observations (into ``out`` when given)."""
        if not self.normalize_obs:
            return obs.clone() if out is None else out.copy_(obs)
        z = torch.add(obs, self.obs_norm.shift, out=out)
        z.mul_(self.obs_norm.scale)
        return z.clamp_(-self.obs_clip, self.obs_clip)

    def market_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Mean normalised observation of each market, ``(n_markets, obs_dim)``, from
        env-ordered rows ``(n_markets x n_agents, obs_dim)``."""
        return z.view(-1, self.n_agents, self.obs_dim).mean(1)

    # ---- distributions ------------------------------------------------------------------

    def head(self, g: int, features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(..., heads, width)`` or the Gaussian's mean ``(..., d)``."""
        out = self.nets[g].policy_head(features).float()
        if self.spec.is_box:
            return out
        out = out.view(*out.shape[:-1], *self.mask.shape)
        if self.padded:
            out = out + self.mask
        # not torch.log_softmax: its CPU kernel is ~4x slower over a last dim this short
        return out - torch.logsumexp(out, -1, keepdim=True)

    def sample(self, g: int, params: torch.Tensor, generator: torch.Generator | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions and their log-probabilities."""
        if self.spec.is_box:
            std = self.nets[g].log_std.exp()
            noise = torch.randn(params.shape, generator=generator)
            actions = params + std * noise
            logp = (-0.5 * noise.square() - self.nets[g].log_std - 0.5 * _LOG_2PI).sum(-1)
            return actions, logp
        u = torch.rand(params.shape[:-1], generator=generator).unsqueeze(-1)
        below = params.exp().cumsum(-1) < u
        actions = torch.minimum(below.sum(-1), self.top)          # inverse CDF per head
        logp = params.gather(-1, actions.unsqueeze(-1)).squeeze(-1).sum(-1)
        return actions, logp

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The most likely action (per head), or the Gaussian's mean."""
        return params if self.spec.is_box else params.argmax(-1)

    def log_prob_entropy(self, g: int, params: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.spec.is_box:
            log_std = self.nets[g].log_std
            z = (actions - params) * torch.exp(-log_std)
            logp = (-0.5 * z.square() - log_std - 0.5 * _LOG_2PI).sum(-1)
            entropy = (0.5 + 0.5 * _LOG_2PI + log_std).sum().expand(logp.shape)
            return logp, entropy
        logp = params.gather(-1, actions.unsqueeze(-1)).squeeze(-1).sum(-1)
        entropy = -(params.exp() * params).sum((-1, -2))
        return logp, entropy

    def env_actions(self, actions: torch.Tensor, out: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Box: ``[-1, 1]`` units onto ``[low, high]``, clipped into the space."""
        scaled = torch.add(actions, 1.0, out=out)
        scaled.mul_(0.5 * (self.high - self.low)).add_(self.low)
        return torch.maximum(torch.minimum(scaled, self.high, out=scaled), self.low,
                             out=scaled)

    # ---- acting -------------------------------------------------------------------------

    def act(self, z: torch.Tensor, h: torch.Tensor | None, *, deterministic: bool,
            generator: torch.Generator | None = None, values: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Actions for group-ordered normalised observations ``z`` ``(N, obs_dim)``:
        ``(actions (N, columns), log-probabilities (N,) or None, new actor state)``.
        With a shared feed-forward trunk, ``values`` ``(N,)`` receives the value head's
        output from the same features (no second pass of the trunk)."""
        columns = self.group_columns(z.shape[0])
        if len(columns) == 1:
            return self._act_group(0, z, h, deterministic, generator, values)
        parts = [self._act_group(g, z[c], None if h is None else h[c], deterministic,
                                 generator, None if values is None else values[c])
                 for g, c in enumerate(columns)]
        actions = torch.cat([p[0] for p in parts])
        logp = None if deterministic else torch.cat([p[1] for p in parts])
        state = None if h is None else torch.cat([p[2] for p in parts])
        return actions, logp, state

    def _act_group(self, g: int, z: torch.Tensor, h: torch.Tensor | None,
                   deterministic: bool, generator: torch.Generator | None,
                   values: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        features = self.nets[g].actor.step(z, h)
        if values is not None:
            values.copy_(self.nets[g].value_head(features).squeeze(-1))
        params = self.head(g, features)
        state = features if self.recurrent else None
        if deterministic:
            return self.mode(params), None, state
        actions, logp = self.sample(g, params, generator)
        return actions, logp, state

    def critic_input(self, z: torch.Tensor, means: torch.Tensor | None) -> torch.Tensor:
        """The critic's input: ``z``, or ``z`` and its market's mean observation."""
        return z if means is None else torch.cat([z, means], -1)


class Policy:
    """A trained policy acting deterministically (most likely action per head, or the
    Gaussian's mean) on env-ordered observations ``(n_markets x n_agents, obs_dim)``:
    ``policy(obs) -> actions`` as the env takes them (int64 ``(N,)`` for Discrete,
    ``(N, heads)`` for MultiDiscrete, float32 ``(N, d)`` inside the Box). A recurrent
    policy keeps each row's state between calls; :meth:`reset` clears it (all rows, or
    those where ``done``).

    ``sample_seed``: instead, sample each action from the policy's distribution, with a
    generator seeded so (what the policy does while it trains, or an untrained one)."""

    def __init__(self, model: ActorCritic, *, sample_seed: int | None = None) -> None:
        self.model = model.eval()
        self.spec = model.spec
        self.generator = (None if sample_seed is None
                          else torch.Generator().manual_seed(int(sample_seed)))
        self._order: dict[int, torch.Tensor] = {}
        self._state: torch.Tensor | None = None

    def reset(self, done: np.ndarray | None = None) -> None:
        if self._state is None or done is None:
            self._state = None
            return
        order = self._order[self._state.shape[0]]
        mask = torch.from_numpy(np.asarray(done, dtype=bool))[order]
        self._state[mask] = 0.0

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.model.obs_dim:
            raise ValueError(f"observations must be (n, {self.model.obs_dim}), got "
                             f"{obs.shape}")
        n = obs.shape[0]
        order = self._order.get(n)
        if order is None and len(self.model.slots) == 1:      # one shared policy: any rows
            order = self._order[n] = torch.arange(n)
        if order is None:
            if n % self.model.n_agents:
                raise ValueError(f"{n} rows are not whole markets of "
                                 f"{self.model.n_agents} agents (a per-group policy)")
            order = self._order[n] = group_order(self.model.slots, n, self.model.n_agents)
        with torch.inference_mode():
            z = self.model.normalize(torch.from_numpy(obs)[order])
            state = self._state
            if self.model.recurrent and (state is None or state.shape[0] != n):
                state = torch.zeros(n, self.model.gru_size)
            with self.model.autocast():
                actions, _, self._state = self.model.act(
                    z, state, deterministic=self.generator is None,
                    generator=self.generator)
            if self.spec.is_box:
                actions = self.model.env_actions(actions)
            out = torch.empty_like(actions)
            out[order] = actions
        array = out.numpy()
        return array[:, 0].copy() if self.spec.kind == "discrete" else array
