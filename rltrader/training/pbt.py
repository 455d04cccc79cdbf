"""Population-based training (Jaderberg et al. 2017) of many PPO policies at once, their
parameters stacked (docs/training.md, "Population-based training").

``n_policies`` policies share one batched env: policy ``p`` plays every agent of markets
``p * E/P .. (p + 1) * E/P - 1``, so each member's samples come from markets of its own.
Every layer of every member is one ``(P, in, out)`` tensor, and a batched matrix product
(``torch.baddbmm``) evaluates the whole population: thousands of agents of 64 policies cost
one forward pass. Each member has its own Adam state, gradient-norm clip and
hyperparameters (learning rate and entropy bonus, ``(P,)`` tensors), so one optimiser step
updates every member with its own settings.

Every ``ready_every`` updates a round of *exploit* and *explore* runs, with one of the two
selections of the paper:

- ``"truncation"``: the members are ranked by their fitness over the episodes they
  finished since the last round (the Sharpe-type ratio ``mean / std`` of their episode
  returns, or the mean). The bottom ``truncation`` share copies a random member of the
  top share (weights, Adam state, hyperparameters).
- ``"ttest"``: each member with ``min_episodes`` or more recent episode returns (its last
  ``history``, kept across rounds) is compared with another such member drawn at random,
  and copies it only when the other's mean return is higher by a one-sided Welch t-test
  at level ``alpha``. A member whose fitness is only luckier than another's is left
  alone; a copy clears the copier's history.

A member that copied multiplies each hyperparameter by 0.8 or 1.25 (*explore*). With
``explore=False`` no round happens: the same population trained with fixed
hyperparameters, at the same compute, every member at the ranges' geometric means or
(``fixed_draws``) at PBT's own initial draws, which is random search.

Categorical actions (``Discrete``, ``MultiDiscrete``) and feed-forward policies; the
observation normaliser (running statistics) and the reward scaler are shared.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rltrader.training.evaluation import student_t_quantile
from rltrader.training.ppo.normalize import RewardScaler, RunningMeanStd
from rltrader.training.ppo.policy import ActionSpec, head_mask
from rltrader.training.ppo.rollout import gae

#: checkpoint format tag
FORMAT = "rltrader.pbt/1"


@dataclass(frozen=True)
class PBTSettings:
    """Hyperparameters of :class:`Population`.

    Attributes
    ----------
    n_policies : int
        Members (each plays ``n_envs / n_policies`` whole markets).
    n_steps, n_epochs, minibatches : int
        Batched steps per rollout, passes over it, minibatches per pass.
    hidden : tuple of int
        Hidden widths of every member's actor and critic (tanh MLPs).
    gamma, gae_lambda, clip_range, vf_coef, max_grad_norm : float
        PPO's, the same for every member.
    learning_rate, ent_coef : tuple of (float, float)
        The ranges the members' initial values are drawn from (log-uniform); with
        ``explore=False`` each member starts at the range's geometric mean, unless
        ``fixed_draws``.
    explore : bool
        Exploit and explore every ``ready_every`` updates (False: fixed hyperparameters).
    fixed_draws : bool
        With ``explore=False``: keep the log-uniform draws fixed (random search) instead
        of the geometric means.
    ready_every : int
        Updates between rounds.
    selection : str
        ``"truncation"`` or ``"ttest"`` (module docstring).
    truncation : float
        Truncation selection: the share of the population replaced each round (bottom)
        and copied from (top).
    alpha, min_episodes, history : float, int, int
        T-test selection: the test's level, the episodes a member needs before it is
        compared, and the most recent episode returns it keeps.
    fitness : str
        ``"sharpe"`` (mean / std of the member's episode returns in the window) or
        ``"mean"`` (the only one for the t-test, which compares means).
    threads : int or None
        ``torch.set_num_threads``.
    """

    n_policies: int = 64
    n_steps: int = 32
    n_epochs: int = 2
    minibatches: int = 1
    hidden: tuple[int, ...] = (64, 64)
    gamma: float = 0.95
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    learning_rate: tuple[float, float] = (1e-4, 3e-3)
    ent_coef: tuple[float, float] = (1e-4, 1e-2)
    explore: bool = True
    fixed_draws: bool = False
    ready_every: int = 10
    selection: str = "truncation"
    truncation: float = 0.25
    alpha: float = 0.05
    min_episodes: int = 8
    history: int = 64
    fitness: str = "sharpe"
    threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("n_policies", "n_steps", "n_epochs", "minibatches", "ready_every",
                     "min_episodes", "history"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PBTSettings.{name} must be an int >= 1, got {value!r}")
        for name in ("learning_rate", "ent_coef"):
            low, high = getattr(self, name)
            if not 0 < low <= high or not math.isfinite(high):
                raise ValueError(f"PBTSettings.{name} must be a range 0 < low <= high, "
                                 f"got {(low, high)!r}")
        if not 0 < self.truncation <= 0.5:
            raise ValueError(f"PBTSettings.truncation must be in (0, 0.5], "
                             f"got {self.truncation!r}")
        if self.fitness not in ("sharpe", "mean"):
            raise ValueError(f"PBTSettings.fitness must be 'sharpe' or 'mean', "
                             f"got {self.fitness!r}")
        if self.selection not in ("truncation", "ttest"):
            raise ValueError(f"PBTSettings.selection must be 'truncation' or 'ttest', "
                             f"got {self.selection!r}")
        if self.selection == "ttest":
            if self.fitness != "mean":
                raise ValueError("PBTSettings: the t-test compares mean returns: "
                                 "fitness='mean'")
            if not 0 < self.alpha < 0.5:
                raise ValueError(f"PBTSettings.alpha must be in (0, 0.5), got {self.alpha!r}")
            if not 2 <= self.min_episodes <= self.history:
                raise ValueError(f"PBTSettings: need 2 <= min_episodes <= history, got "
                                 f"{self.min_episodes} and {self.history}")
        if not self.hidden or not all(isinstance(h, int) and h >= 1 for h in self.hidden):
            raise ValueError(f"PBTSettings.hidden must be ints >= 1, got {self.hidden!r}")


class StackedMLP(nn.Module):
    """``P`` independent MLPs ``sizes[0] -> ... -> sizes[-1]`` (tanh between layers) as
    ``(P, in, out)`` weights: ``forward(x)`` maps ``(P, B, in)`` to ``(P, B, out)``."""

    def __init__(self, n: int, sizes: list[int], out_gain: float,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            gain = out_gain if k == len(sizes) - 2 else math.sqrt(2.0)
            w = torch.empty(n, a, b)
            for p in range(n):              # orthogonal per member, as the PPO trainer
                nn.init.orthogonal_(w[p].T, gain=gain, generator=generator)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(n, 1, b)))

    def forward(self, x: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if members is not None:
                w, b = w[members], b[members]
            x = torch.baddbmm(b, x, w)
            if k < last:
                x = torch.tanh(x)
        return x


class Population:
    """``settings.n_policies`` PPO policies trained together on ``env`` (module
    docstring). ``env`` has the batched env's protocol (``reset``, ``step``,
    ``final_observations``, ``num_agents_total``, ``n_agents``, the single spaces)."""

    def __init__(self, env: Any, settings: PBTSettings | None = None, *,
                 seed: int = 0) -> None:
        self.settings = s = PBTSettings() if settings is None else settings
        self.env, self.seed = env, int(seed)
        self.n_rows, self.n_agents = int(env.num_agents_total), int(env.n_agents)
        n_markets = self.n_rows // self.n_agents
        if n_markets % s.n_policies:
            raise ValueError(f"{n_markets} markets do not split evenly over "
                             f"{s.n_policies} policies")
        self.spec = ActionSpec.from_space(env.single_action_space)
        if self.spec.is_box:
            raise ValueError("population training needs categorical actions")
        if s.threads is not None:
            torch.set_num_threads(s.threads)
        self.generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        P, self.rows_per = s.n_policies, self.n_rows // s.n_policies
        self.obs_dim = int(env.single_observation_space.shape[0])
        self.actor = StackedMLP(P, [self.obs_dim, *s.hidden, self.spec.n_outputs], 0.01,
                                self.generator)
        self.critic = StackedMLP(P, [self.obs_dim, *s.hidden, 1], 1.0, self.generator)
        self.params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.adam = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self.adam_steps = torch.zeros(P)
        self.mask, self.top = head_mask(self.spec.nvec), torch.tensor(self.spec.nvec) - 1
        self.hyper = {name: self._draw(getattr(s, name)) for name in ("learning_rate",
                                                                      "ent_coef")}
        self.obs_norm = RunningMeanStd(self.obs_dim)
        self.reward_scaler = RewardScaler(self.n_rows, s.gamma, 10.0)
        self.agent_steps = self.updates = 0
        self._obs: np.ndarray | None = None
        self._episode_return = torch.zeros(self.n_rows, dtype=torch.float64)
        self.window: list[list[float]] = [[] for _ in range(P)]
        self.rounds: list[dict[str, Any]] = []
        #: the population's best and median fitness every ``ready_every`` updates
        self.curve: list[dict[str, float]] = []
        self.last_fitness = torch.full((P,), math.nan)
        self.seconds = {"env": 0.0, "rollout": 0.0, "update": 0.0}

    def _draw(self, bounds: tuple[float, float]) -> torch.Tensor:
        low, high = (math.log(x) for x in bounds)
        if not self.settings.explore and not self.settings.fixed_draws:
            return torch.full((self.settings.n_policies,), math.exp(0.5 * (low + high)))
        u = torch.rand(self.settings.n_policies, generator=self.generator)
        return torch.exp(low + (high - low) * u)

    def warm_start(self, teacher: Any, *, steps: int, epochs: int = 10,
                   minibatch_size: int = 4_096, smoothing: float = 0.05) -> dict[str, Any]:
        """Every member starts as the same behaviour clone of ``teacher`` (a scripted
        :class:`~rltrader.training.exploits.Strategy`, e.g. the task's strongest baseline).

        The fast trainer's warm start (:func:`rltrader.training.ppo.imitate.clone`) fits
        a network of this population's architecture on this env (the teacher plays
        ``steps`` batched steps, not counted); its actor and critic, observation
        statistics and reward scaler are then copied into every member, and training
        continues from the env's state after the teacher's steps. Returns the clone's
        statistics."""
        from rltrader.training.ppo.imitate import clone
        from rltrader.training.ppo.settings import FastPPOSettings
        from rltrader.training.ppo.trainer import FastPPO

        if self._obs is not None:
            raise ValueError("warm_start comes before the first learn()")
        s = self.settings
        trainer = FastPPO(self.env, FastPPOSettings(
            hidden=s.hidden, activation="tanh", gamma=s.gamma, gae_lambda=s.gae_lambda,
            threads=s.threads, progress=False), seed=self.seed)
        stats = clone(trainer, teacher, steps=steps, epochs=epochs,
                      minibatch_size=minibatch_size, smoothing=smoothing)
        net = trainer.model.nets[0]
        with torch.no_grad():
            for stacked, layers in ((self.actor, [*net.actor.mlp, net.policy_head]),
                                    (self.critic, [*net.critic.mlp, net.value_head])):
                linear = [layer for layer in layers if isinstance(layer, nn.Linear)]
                for w, b, layer in zip(stacked.weights, stacked.biases, linear, strict=True):
                    w.copy_(layer.weight.T.expand_as(w))
                    b.copy_(layer.bias.view(1, 1, -1).expand_as(b))
        self.obs_norm.load_state_dict(trainer.model.obs_norm.state_dict())
        self.reward_scaler.load_state_dict(trainer.reward_scaler.state_dict())
        self._obs = trainer._obs_np
        self._episode_return.copy_(trainer._episode_return)
        return stats

    # ---- acting -------------------------------------------------------------------------

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs + self.obs_norm.shift) * self.obs_norm.scale).clamp_(-10.0, 10.0)

    def log_probs(self, z: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        """``(P, B, heads, width)`` log-probabilities for ``z`` ``(P, B, obs_dim)``."""
        logits = self.actor(z, members).view(*z.shape[:2], *self.mask.shape) + self.mask
        return logits - torch.logsumexp(logits, -1, keepdim=True)

    def values(self, z: torch.Tensor) -> torch.Tensor:
        return self.critic(z).squeeze(-1)

    def _sample(self, logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.rand(logp.shape[:-1], generator=self.generator).unsqueeze(-1)
        actions = torch.minimum((logp.exp().cumsum(-1) < u).sum(-1), self.top)
        return actions, logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1).sum(-1)

    # ---- the loop -----------------------------------------------------------------------

    def learn(self, total_agent_steps: int,
              on_update: Callable[[dict[str, Any]], None] | None = None
              ) -> list[dict[str, Any]]:
        """Train for at least ``total_agent_steps`` more agent-steps (whole rollouts)."""
        s = self.settings
        if self._obs is None:
            self._obs = self.env.reset(seed=self.seed)
            self.obs_norm.update(torch.from_numpy(np.asarray(self._obs, np.float32)))
        per_rollout = s.n_steps * self.n_rows
        rows = []
        began = time.perf_counter()
        for _ in range(max(1, math.ceil(total_agent_steps / per_rollout))):
            t0 = time.perf_counter()
            data = self.collect()
            t1 = time.perf_counter()
            losses = self.update(data)
            self.seconds["rollout"] += t1 - t0
            self.seconds["update"] += time.perf_counter() - t1
            row = {"update": self.updates, "agent_steps": self.agent_steps,
                   "wall_s": time.perf_counter() - began, **losses}
            if self.updates % s.ready_every == 0:
                fit = self.fitness()
                # the population's fitness, either mode (t-test: the members with episodes)
                seen = fit[~torch.isnan(fit)] if s.selection == "ttest" else fit
                if seen.numel() and not torch.isnan(seen).any():
                    self.curve.append({"update": self.updates,
                                       "agent_steps": self.agent_steps,
                                       "best": float(seen.max()),
                                       "median": float(seen.median())})
                if s.explore:
                    row["round"] = self.exploit_explore()
                elif not torch.isnan(fit).any():
                    self.last_fitness, self.window = fit, [[] for _ in range(s.n_policies)]
            rows.append(row)
            if on_update is not None:
                on_update(row)
        return rows

    @torch.inference_mode()
    def collect(self) -> dict[str, torch.Tensor]:
        """One rollout; its samples as ``(T, P, B, ...)`` tensors with advantages."""
        s, P, B = self.settings, self.settings.n_policies, self.rows_per
        T, d, heads = s.n_steps, self.obs_dim, len(self.spec.nvec)
        raw = torch.empty(T, self.n_rows, d)
        obs = torch.empty(T + 1, P, B, d)
        actions = torch.empty(T, P, B, heads, dtype=torch.int64)
        logp = torch.empty(T, P, B)
        rewards = torch.empty(T, self.n_rows)
        dones = torch.empty(T, self.n_rows)
        env_actions = np.empty((self.n_rows, heads) if self.spec.kind != "discrete"
                               else (self.n_rows,), np.int64)
        bootstrap = torch.zeros(T, self.n_rows)
        current = self._obs
        for t in range(T):
            x = torch.from_numpy(np.asarray(current, np.float32))
            raw[t] = x
            obs[t] = self.normalize(x.view(P, B, d))
            actions[t], logp[t] = self._sample(self.log_probs(obs[t]))
            env_actions[...] = actions[t].reshape(self.n_rows, heads).numpy().reshape(
                env_actions.shape)
            e0 = time.perf_counter()
            current, reward, terminated, truncated = self.env.step(env_actions)
            self.seconds["env"] += time.perf_counter() - e0
            rewards[t] = torch.from_numpy(np.asarray(reward, np.float32))
            done = np.logical_or(terminated, truncated)
            dones[t] = torch.from_numpy(done.astype(np.float32))
            cut = truncated & ~terminated
            if cut.any():            # bootstrap a truncated episode from its final obs
                final = torch.from_numpy(np.asarray(self.env.final_observations,
                                                    np.float32))
                v = self.values(self.normalize(final.view(P, B, d))).reshape(-1)
                bootstrap[t] = torch.where(torch.from_numpy(cut), v, 0.0)
        self._obs = current
        obs[T] = self.normalize(torch.from_numpy(np.asarray(current, np.float32)).view(P, B, d))
        self._record_episodes(rewards, dones)
        self.reward_scaler.scale_(rewards, dones)
        rewards.add_(bootstrap, alpha=s.gamma)          # the critic's (scaled) units
        values = self.values(obs.transpose(0, 1).reshape(P, (T + 1) * B, d))
        values = values.view(P, T + 1, B).transpose(0, 1).reshape(T + 1, self.n_rows)
        advantages = gae(rewards, values, dones, s.gamma, s.gae_lambda)
        returns = advantages + values[:-1]
        self.obs_norm.update(raw.view(-1, d))
        self.agent_steps += T * self.n_rows
        shape = (T, P, B)
        return {"obs": obs[:-1], "actions": actions, "logp": logp,
                "advantages": advantages.view(shape), "returns": returns.view(shape)}

    def _record_episodes(self, rewards: torch.Tensor, dones: torch.Tensor) -> None:
        ret = self._episode_return
        member = torch.arange(self.n_rows) // self.rows_per
        for t in range(rewards.shape[0]):
            ret += rewards[t]
            ended = torch.nonzero(dones[t]).flatten()
            for row in ended.tolist():
                self.window[int(member[row])].append(float(ret[row]))
            ret *= 1.0 - dones[t].to(torch.float64)
        if self.settings.selection == "ttest":       # a rolling history per member
            for returns in self.window:
                del returns[:-self.settings.history]

    def update(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        """``n_epochs`` passes of clipped-PPO minibatches; every member's own loss, Adam
        step, clip and hyperparameters."""
        s, P = self.settings, self.settings.n_policies
        flat = {k: v.transpose(0, 1).reshape(P, -1, *v.shape[3:]) for k, v in data.items()}
        adv = flat["advantages"]
        adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
        flat["advantages"] = adv
        n = adv.shape[1]
        size = math.ceil(n / s.minibatches)
        ent = self.hyper["ent_coef"].view(P, 1)
        stats = torch.zeros(4)
        for _ in range(s.n_epochs):
            order = torch.randperm(n, generator=self.generator)
            for k in range(s.minibatches):
                pick = order[k * size:(k + 1) * size]
                mb = {key: torch.index_select(v, 1, pick) for key, v in flat.items()}
                logp_all = self.log_probs(mb["obs"])
                logp = logp_all.gather(-1, mb["actions"].unsqueeze(-1)).squeeze(-1).sum(-1)
                entropy = -(logp_all.exp() * logp_all).sum((-1, -2))
                ratio = (logp - mb["logp"]).exp()
                a = mb["advantages"]
                policy = torch.maximum(-a * ratio, -a * ratio.clamp(1 - s.clip_range,
                                                                    1 + s.clip_range))
                value = 0.5 * (self.values(mb["obs"]) - mb["returns"]).square()
                per_member = (policy + s.vf_coef * value - ent * entropy).mean(1)
                for p in self.params:
                    p.grad = None
                per_member.sum().backward()
                self._adam_step()
                with torch.no_grad():
                    stats += torch.stack([policy.mean(), value.mean(), entropy.mean(),
                                          ((ratio - 1).abs() > s.clip_range).float().mean()])
        self.updates += 1
        stats /= s.n_epochs * s.minibatches
        return dict(zip(("policy_loss", "value_loss", "entropy", "clip_fraction"),
                        stats.tolist(), strict=True))

    @torch.no_grad()
    def _adam_step(self, beta1: float = 0.9, beta2: float = 0.999,
                   eps: float = 1e-5) -> None:
        """Adam per member: its own learning rate, step count and gradient-norm clip."""
        P = self.settings.n_policies
        norms = torch.sqrt(sum(p.grad.reshape(P, -1).square().sum(1) for p in self.params))
        clip = (self.settings.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        self.adam_steps += 1
        c1 = 1 - beta1 ** self.adam_steps
        c2 = 1 - beta2 ** self.adam_steps
        for p, (m, v) in zip(self.params, self.adam, strict=True):
            shape = (P,) + (1,) * (p.dim() - 1)
            g = p.grad * clip.view(shape)
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step = (self.hyper["learning_rate"] / c1).view(shape)
            p.sub_(step * m / ((v / c2.view(shape)).sqrt() + eps))

    # ---- exploit and explore ------------------------------------------------------------

    def fitness(self) -> torch.Tensor:
        """Each member's fitness over its window of episode returns (NaN: none yet)."""
        out = torch.full((self.settings.n_policies,), math.nan)
        for p, returns in enumerate(self.window):
            if returns:
                x = torch.tensor(returns, dtype=torch.float64)
                if self.settings.fitness == "mean" or len(returns) < 2:
                    out[p] = float(x.mean())
                else:
                    out[p] = float(x.mean() / (x.std() + 1e-8))
        return out

    @torch.no_grad()
    def exploit_explore(self) -> dict[str, Any]:
        """One round of the settings' selection: some members copy others, then perturb."""
        s, P = self.settings, self.settings.n_policies
        fit = self.fitness()
        if s.selection == "ttest":
            return self._ttest_round(fit)
        if torch.isnan(fit).any():            # a member without a finished episode: wait
            return {"skipped": True}
        self.last_fitness = fit
        ranked = torch.argsort(fit, descending=True)
        k = max(1, int(round(s.truncation * P)))
        top, bottom = ranked[:k], ranked[-k:]
        sources = top[torch.randint(0, k, (k,), generator=self.generator)]
        self._copy(bottom, sources, fit)
        self.window = [[] for _ in range(P)]
        return {"best": float(fit.max()), "median": float(fit.median())}

    def _ttest_round(self, fit: torch.Tensor) -> dict[str, Any]:
        """Each ready member against a random other ready one: copy it when its mean
        return is higher by a one-sided Welch t-test (Jaderberg et al. 2017, "T-test
        selection"). Copies read the weights as they were before the round."""
        s = self.settings
        ready = [p for p, returns in enumerate(self.window) if len(returns) >= s.min_episodes]
        if len(ready) < 2:
            return {"skipped": True}
        self.last_fitness = fit
        targets, sources = [], []
        for i in torch.randperm(len(ready), generator=self.generator).tolist():
            j = int(torch.randint(0, len(ready) - 1, (1,), generator=self.generator))
            p, q = ready[i], ready[j + (j >= i)]            # q: uniform over the others
            if welch_greater(self.window[q], self.window[p], s.alpha):
                targets.append(p)
                sources.append(q)
        if targets:
            self._copy(torch.tensor(targets), torch.tensor(sources), fit)
            for p in targets:
                self.window[p] = []
        finite = fit[ready]
        return {"best": float(finite.max()), "median": float(finite.median()),
                "copied": len(targets)}

    def _copy(self, targets: torch.Tensor, sources: torch.Tensor,
              fit: torch.Tensor) -> None:
        """Exploit (``targets`` take the weights, Adam state and hyperparameters of
        ``sources``, as they were before) and explore (x0.8 or x1.25 each), recorded."""
        for p, (m, v) in zip(self.params, self.adam, strict=True):
            for tensor in (p, m, v):
                tensor[targets] = tensor[sources]
        self.adam_steps[targets] = self.adam_steps[sources]
        k = len(targets)
        for name in ("learning_rate", "ent_coef"):      # explore: unbounded, as in the paper
            values = self.hyper[name]
            factor = torch.where(torch.rand(k, generator=self.generator) < 0.5, 0.8, 1.25)
            values[targets] = values[sources] * factor
        self.rounds.append({"update": self.updates, "fitness": fit.tolist(),
                            "replaced": targets.tolist(), "sources": sources.tolist(),
                            **{name: v.tolist() for name, v in self.hyper.items()}})

    # ---- checkpoints and evaluation ---------------------------------------------------

    def best(self) -> int:
        """The member with the highest fitness (the last round's, else the window's; with
        the t-test, among members with ``min_episodes`` in their history if any)."""
        return int(self.ranking()[0])

    def ranking(self) -> list[int]:
        """The members from the fittest down (:meth:`best`'s order)."""
        fit = self.fitness()
        if self.settings.selection == "ttest":
            short = torch.tensor([len(w) < self.settings.min_episodes for w in self.window])
            if not short.all():
                fit = torch.where(short, math.nan, fit)
        if torch.isnan(fit).all():
            fit = self.last_fitness
        return torch.argsort(torch.nan_to_num(fit, nan=-math.inf), descending=True,
                             stable=True).tolist()

    def state(self) -> dict[str, Any]:
        config = getattr(self.env, "config", None)
        return {"format": FORMAT, "settings": {**asdict(self.settings)},
                "obs_dim": self.obs_dim, "action": self.spec.as_dict(),
                "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "obs_normalizer": self.obs_norm.state_dict(),
                "hyper": {k: v.clone() for k, v in self.hyper.items()},
                "fitness": self.fitness(), "best": self.best(), "rounds": self.rounds,
                "curve": self.curve,
                "agent_steps": self.agent_steps, "updates": self.updates,
                "env_config": None if config is None else repr(config)}

    def save(self, path: Path | str, best: int | None = None) -> Path:
        """Write the checkpoint; ``best``: the member it plays by default (chosen
        elsewhere, e.g. on validation markets) instead of :meth:`best`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.state()
        if best is not None:
            if not 0 <= best < self.settings.n_policies:
                raise ValueError(f"best must be a member, 0..{self.settings.n_policies - 1}")
            state["best"] = int(best)
        torch.save(state, path)
        return path

    def policy(self, member: int | None = None) -> MemberPolicy:
        """Member ``member`` (default: :meth:`best`) as a deterministic policy."""
        return MemberPolicy(self.state(), member)


class MemberPolicy:
    """One member of a population checkpoint acting deterministically (most likely action
    per head) on any rows: ``policy(obs) -> actions`` as the env takes them."""

    def __init__(self, state: dict[str, Any], member: int | None = None) -> None:
        if state.get("format") != FORMAT:
            raise ValueError(f"not a population checkpoint: {state.get('format')!r}")
        self.member = int(state["best"] if member is None else member)
        settings = dict(state["settings"])
        for name in ("hidden", "learning_rate", "ent_coef"):
            settings[name] = tuple(settings[name])
        P = settings["n_policies"]
        if not 0 <= self.member < P:
            raise ValueError(f"member must be in 0..{P - 1}, got {self.member}")
        self.spec = ActionSpec.from_dict(state["action"])
        self.obs_dim = int(state["obs_dim"])
        g = torch.Generator().manual_seed(0)
        self.actor = StackedMLP(P, [self.obs_dim, *settings["hidden"], self.spec.n_outputs],
                                0.01, g)
        self.actor.load_state_dict(state["actor"])
        self.obs_norm = RunningMeanStd(self.obs_dim)
        self.obs_norm.load_state_dict(state["obs_normalizer"])
        self.mask = head_mask(self.spec.nvec)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"observations must be (n, {self.obs_dim}), got {obs.shape}")
        with torch.inference_mode():
            x = torch.from_numpy(obs)
            z = ((x + self.obs_norm.shift) * self.obs_norm.scale).clamp_(-10.0, 10.0)
            m = slice(self.member, self.member + 1)
            logits = self.actor(z.unsqueeze(0), m)[0].view(len(obs), *self.mask.shape)
            actions = (logits + self.mask).argmax(-1).numpy()
        return actions[:, 0].copy() if self.spec.kind == "discrete" else actions


def welch_greater(a: Sequence[float], b: Sequence[float], alpha: float) -> bool:
    """Whether the mean of ``a`` exceeds the mean of ``b`` by a one-sided Welch t-test at
    level ``alpha`` (Welch-Satterthwaite degrees of freedom, rounded down). Each needs two
    values or more."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.size < 2 or y.size < 2:
        raise ValueError(f"the t-test needs 2 values or more per side, got {x.size}, {y.size}")
    gap = x.mean() - y.mean()
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    if gap <= 0:
        return False
    if vx + vy == 0:
        return True
    dof = (vx + vy) ** 2 / (vx * vx / (x.size - 1) + vy * vy / (y.size - 1))
    return bool(gap / math.sqrt(vx + vy) > _t_quantile(1 - alpha, max(1, int(dof))))


@functools.lru_cache(maxsize=4096)
def _t_quantile(p: float, dof: int) -> float:
    return student_t_quantile(p, dof)


def load_member(path: Path | str, member: int | None = None) -> MemberPolicy:
    """Member ``member`` of a population checkpoint (default: the fittest)."""
    return MemberPolicy(torch.load(Path(path), weights_only=True), member)


__all__ = ["FORMAT", "MemberPolicy", "PBTSettings", "Population", "StackedMLP",
           "load_member", "welch_greater"]
