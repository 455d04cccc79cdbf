"""The PPO loop over a batched env's buffers (:class:`FastPPO`).

Per batched step the hot path is: the env's observation buffer viewed as a tensor
(``torch.from_numpy``, no copy), normalised into the rollout, one forward of the actor for
every agent (one per group), the sampled actions written into a tensor whose numpy view is
passed to ``env.step``, the reward and done buffers copied into the rollout. No Python
runs per agent and nothing is allocated per agent. The critic runs once per rollout over
all ``(T + 1) x N`` observations; then GAE, and ``n_epochs`` passes of minibatches.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rltrader.training.ppo.normalize import RewardScaler
from rltrader.training.ppo.policy import ActionSpec, ActorCritic, Policy, group_order
from rltrader.training.ppo.rollout import Rollout, Truncation, bootstrap_truncated, gae
from rltrader.training.ppo.settings import FastPPOSettings, group_slots

if TYPE_CHECKING:
    from rltrader.training.ppo.guard import GuardedPolicy

#: checkpoint format tag
FORMAT = "rltrader.fast_ppo/1"
#: rows per forward pass of the critic over a rollout
CHUNK = 16_384
#: what an env must offer (BatchedMarketEnv's protocol)
PROTOCOL = ("reset", "step", "final_observations", "num_agents_total", "n_agents",
            "single_observation_space", "single_action_space")


class FastPPO:
    """Multi-agent PPO over a batched env (``BatchedMarketEnv`` or anything with its
    protocol: ``reset(seed)``, ``step(actions)`` returning its own buffers,
    ``final_observations``, ``num_agents_total``, ``n_agents``, the single spaces).

    Parameters
    ----------
    env
        The env; agent ``i`` of market ``e`` is row ``e * n_agents + i``.
    settings : FastPPOSettings
    seed : int
        Seeds the env (``reset(seed)``), the weights and the sampling.
    """

    def __init__(self, env: Any, settings: FastPPOSettings | None = None, *,
                 seed: int = 0) -> None:
        missing = [name for name in PROTOCOL if not hasattr(env, name)]
        if missing:
            raise ValueError(f"env lacks {missing} of the batched env's protocol")
        self.settings = s = FastPPOSettings() if settings is None else settings
        if not isinstance(s, FastPPOSettings):
            raise ValueError(f"settings must be FastPPOSettings, got {type(s).__name__}")
        if s.residual is not None:
            from rltrader.training.ppo.residual import ResidualEnv

            if not isinstance(env, ResidualEnv):
                raise ValueError(f"settings.residual names a teacher ({s.residual!r}), but "
                                 f"this env is a {type(env).__name__}, whose actions are the "
                                 f"quotes themselves: train() wraps it, FastPPO needs "
                                 f"ResidualEnv(env, {s.residual!r})")
        self.env, self.seed = env, int(seed)
        self.n_rows, self.n_agents = int(env.num_agents_total), int(env.n_agents)
        if self.n_rows % self.n_agents:
            raise ValueError(f"num_agents_total {self.n_rows} is not a multiple of "
                             f"n_agents {self.n_agents}")
        self.n_markets = self.n_rows // self.n_agents
        space = env.single_observation_space
        if len(space.shape) != 1:
            raise ValueError(f"observations must be 1-D per agent, got {space.shape}")
        self.spec = ActionSpec.from_space(env.single_action_space)
        slots = group_slots(s.groups, self.n_agents)
        torch.set_num_threads(s.threads or os.cpu_count() or 1)
        torch.manual_seed(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.architecture = {
            "obs_dim": int(space.shape[0]), "action": self.spec.as_dict(),
            "n_agents": self.n_agents, "groups": slots, "hidden": list(s.hidden),
            "activation": s.activation, "critic": s.critic, "recurrent": s.recurrent,
            "gru_size": s.gru_size, "log_std_init": s.log_std_init,
            "normalize_obs": s.normalize_obs, "obs_clip": s.obs_clip,
            "precision": s.precision, "shared_trunk": s.shared_trunk}
        if s.mirror:                # only then: other checkpoints' architecture unchanged
            from rltrader.training.ppo.mirror import observation_mirror

            self.architecture["mirror"] = observation_mirror(env)
        self.model = ActorCritic(self.architecture)
        self.optimizer = _adam(self.model, s.learning_rate)
        order = group_order(slots, self.n_rows, self.n_agents)
        identity = bool(torch.equal(order, torch.arange(self.n_rows)))
        #: env row of each rollout column (None: the identity)
        self.order = None if identity else order
        #: each column's market (for the centralised critic's means)
        self.market_of = order // self.n_agents
        self.columns = self.model.group_columns(self.n_rows)
        if not identity:
            self.inverse = torch.empty_like(order)
            self.inverse[order] = torch.arange(self.n_rows)
        self.rollout = Rollout(s.n_steps, self.n_rows, self.model.obs_dim, self.spec,
                               self.n_markets, s.critic == "centralised",
                               s.gru_size if s.recurrent else None)
        self.reward_scaler = (RewardScaler(self.n_rows, s.gamma, s.reward_clip)
                              if s.scale_rewards else None)
        # env-ordered action buffer whose numpy view goes to env.step
        shape = (self.n_rows,) if self.spec.kind == "discrete" else (self.n_rows,
                                                                   self.spec.columns)
        self.env_actions = torch.zeros(shape, dtype=torch.float32 if self.spec.is_box
                                       else torch.int64)
        self._env_actions_np = self.env_actions.numpy()
        self._done_np = np.zeros(self.n_rows, dtype=bool)
        self._scratch = torch.zeros(self.n_rows, self.model.obs_dim)
        self._scratch2 = torch.zeros(self.n_rows, self.model.obs_dim)
        self._episode_return = torch.zeros(self.n_rows, dtype=torch.float64)
        self._obs_np: np.ndarray | None = None
        self._counted = False       # the current observations are in the statistics
        self._actor_state = (torch.zeros(self.n_rows, s.gru_size) if s.recurrent else None)
        self._critic_state = (torch.zeros(self.n_rows, s.gru_size) if s.recurrent else None)
        self._next_starts = torch.ones(self.n_rows)
        #: the rollout columns charged deviation_cost (None: every column)
        self._charged = (charged_columns(env, s.deviation_markets, order)
                         if s.deviation_markets is not None else None)
        self.agent_steps = 0
        self.updates = 0
        self.seconds = {"env": 0.0, "rollout": 0.0, "update": 0.0}

    # ---- the loop -----------------------------------------------------------------------

    def start(self) -> None:
        """Reset the env from the seed; the observation statistics start from its first
        observations."""
        obs = self.env.reset(seed=self.seed)
        self._obs_np = obs
        if self.settings.normalize_obs and float(self.model.obs_norm.count) == 0:
            self.model.obs_norm.update(torch.from_numpy(np.asarray(obs, dtype=np.float32)))
            self._counted = True        # the first rollout's first observations

    def learn(self, total_agent_steps: int,
              on_update: Callable[[dict[str, float]], None] | None = None
              ) -> list[dict[str, float]]:
        """Train for at least ``total_agent_steps`` more agent-steps (whole rollouts);
        returns one row per update (the ``curve.csv`` columns), each also passed to
        ``on_update``."""
        if not isinstance(total_agent_steps, (int, np.integer)) or total_agent_steps < 1:
            raise ValueError(f"total_agent_steps must be an int >= 1, got "
                             f"{total_agent_steps!r}")
        if self._obs_np is None:
            self.start()
        per_rollout = self.settings.n_steps * self.n_rows
        n_updates = max(1, math.ceil(total_agent_steps / per_rollout))
        first = self.agent_steps
        rows = []
        began = time.perf_counter()
        for k in range(n_updates):
            if self.settings.anneal_lr:
                fraction = 1.0 - k / n_updates
                for group in self.optimizer.param_groups:
                    group["lr"] = self.settings.learning_rate * fraction
            t0 = time.perf_counter()
            episodes = self.collect()
            t1 = time.perf_counter()
            losses = self.update()
            t2 = time.perf_counter()
            self.seconds["rollout"] += t1 - t0
            self.seconds["update"] += t2 - t1
            wall = time.perf_counter() - began
            done = self.agent_steps - first
            row = {"update": self.updates, "agent_steps": self.agent_steps, "wall_s": wall,
                   "agent_steps_per_s": done / wall,
                   "env_steps_per_s": done / self.n_rows / wall,
                   "rollout_s": t1 - t0, "update_s": t2 - t1,
                   "learning_rate": self.optimizer.param_groups[0]["lr"],
                   **episodes, **losses}
            rows.append(row)
            self.adapt_learning_rate(losses["approx_kl"])
            if on_update is not None:
                on_update(row)
        return rows

    @torch.inference_mode()
    def collect(self) -> dict[str, float]:
        """One rollout of ``n_steps`` batched steps; values, returns and advantages."""
        s, b, m = self.settings, self.rollout, self.model
        b.truncations.clear()
        sums = torch.zeros(2, m.obs_dim, dtype=torch.float64)
        self._observe(0, self._obs_np, None if self._counted else sums)
        counted = s.n_steps - self._counted
        self._counted = False
        b.starts[0].copy_(self._next_starts)
        state = self._actor_state
        if state is not None:
            b.actor_state.copy_(state)
            b.critic_state.copy_(self._critic_state)
        env_seconds = 0.0
        # a shared feed-forward trunk gives the values with the actions
        fused = m.shared_trunk and not m.recurrent
        for t in range(s.n_steps):
            if state is not None:
                state = state * (1.0 - b.starts[t]).unsqueeze(1)
            with m.autocast():
                actions, logp, state = m.act(b.obs[t], state, deterministic=False,
                                             generator=self.generator,
                                             values=b.values[t] if fused else None)
            b.actions[t].copy_(actions)
            b.logp[t].copy_(logp)
            self._write_env_actions(actions)
            e0 = time.perf_counter()
            obs, rewards, terminated, truncated = self.env.step(self._env_actions_np)
            env_seconds += time.perf_counter() - e0
            self._record(t, rewards, terminated, truncated)
            self._observe(t + 1, obs, sums if t + 1 < s.n_steps else None)
            b.starts[t + 1].copy_(b.dones[t])
        self._obs_np = obs
        self._actor_state = state
        self._next_starts.copy_(b.starts[s.n_steps])
        self.seconds["env"] += env_seconds
        self.agent_steps += s.n_steps * self.n_rows
        episodes = self._episode_stats()       # raw rewards: before any training cost
        if s.deviation_cost:
            # a residual maker's cost for leaving "keep" (correction 0), training only
            deviated = b.actions[..., 0] != 0
            episodes["deviations"] = float(deviated.float().mean())
            if self._charged is not None:
                deviated &= self._charged
            b.rewards.sub_(deviated.to(b.rewards.dtype), alpha=s.deviation_cost)
        with m.autocast():
            self._values(first=s.n_steps if fused else 0)
        if self.reward_scaler is not None:
            self.reward_scaler.scale_(b.rewards, b.dones)
        if b.truncations:
            bootstrap_truncated(b.rewards, [(tr.t, tr.columns, tr.values)
                                            for tr in b.truncations], s.gamma)
        gae(b.rewards, b.values, b.dones, s.gamma, s.gae_lambda, out=b.advantages)
        torch.add(b.advantages, b.values[:-1], out=b.returns)
        if s.normalize_obs:
            if counted:
                self._merge_obs_stats(sums, counted * self.n_rows)
        episodes["env_s"] = env_seconds
        return episodes

    def _observe(self, t: int, obs_np: np.ndarray, sums: torch.Tensor | None) -> None:
        """Normalise the env's observations into ``rollout.obs[t]`` (group order), adding
        their shifted sums to ``sums`` (the observation statistics of this rollout)."""
        m, b = self.model, self.rollout
        x = torch.from_numpy(obs_np)
        if self.order is not None:
            x = torch.index_select(x, 0, self.order, out=self._scratch)
        z = b.obs[t]
        if m.normalize_obs:
            torch.add(x, m.obs_norm.shift, out=z)
            if sums is not None:
                sums[0] += z.sum(0)
                sums[1] += torch.mul(z, z, out=self._scratch2).sum(0)
            z.mul_(m.obs_norm.scale).clamp_(-m.obs_clip, m.obs_clip)
        else:
            z.copy_(x)
        if b.means is not None:
            self._market_means(z, b.means[t])

    def _market_means(self, z: torch.Tensor, out: torch.Tensor) -> None:
        if self.order is None:
            torch.mean(z.view(self.n_markets, self.n_agents, -1), 1, out=out)
        else:
            out.zero_().index_add_(0, self.market_of, z).div_(self.n_agents)

    def _write_env_actions(self, actions: torch.Tensor) -> None:
        if self.spec.is_box:
            actions = self.model.env_actions(actions)
        target = self.env_actions.view(self.n_rows, -1)
        if self.order is None:
            target.copy_(actions)
        else:
            target.index_copy_(0, self.order, actions.to(target.dtype))

    def _record(self, t: int, rewards: np.ndarray, terminated: np.ndarray,
                truncated: np.ndarray) -> None:
        b = self.rollout
        np.logical_or(terminated, truncated, out=self._done_np)
        for source, target in ((rewards, b.rewards[t]), (self._done_np, b.dones[t])):
            tensor = torch.from_numpy(source)
            target.copy_(tensor if self.order is None else tensor[self.order])
        if truncated.any():
            rows = np.flatnonzero(truncated & ~terminated)
            if rows.size:
                self._keep_final(t, rows)

    def _keep_final(self, t: int, rows: np.ndarray) -> None:
        """Final observations of rows truncated at step ``t`` (for their bootstrap)."""
        m = self.model
        final = m.normalize(torch.from_numpy(np.asarray(self.env.final_observations)))
        index = torch.from_numpy(rows)
        means = None
        if self.rollout.means is not None:
            means = m.market_mean(final)[index // self.n_agents]
        columns = index if self.order is None else self.inverse[index]
        self.rollout.truncations.append(Truncation(t, columns, final[index], means))

    def _episode_stats(self) -> dict[str, float]:
        """Mean return of the episodes that ended in this rollout (raw rewards)."""
        b, ret = self.rollout, self._episode_return
        total = torch.zeros((), dtype=torch.float64)
        count = torch.zeros((), dtype=torch.float64)
        for t in range(b.rewards.shape[0]):
            ret += b.rewards[t]
            done = b.dones[t].to(torch.float64)
            total += (ret * done).sum()
            count += done.sum()
            ret *= 1.0 - done
        n = float(count)
        return {"episodes": n, "mean_episode_return": float(total) / n if n else math.nan,
                "mean_reward": float(b.rewards.mean())}

    def _values(self, first: int = 0) -> None:
        """The critic over the rollout from step ``first`` on (the earlier values came
        with the actions) and the final observations of truncated rows, into
        ``Truncation.values``."""
        b, m = self.rollout, self.model
        critic_in = self._critic_inputs(b.obs, b.means)
        finals = [(tr, m.critic_input(tr.obs, tr.means)) for tr in b.truncations]
        for g, c in enumerate(self.columns):
            net = m.nets[g]
            if not m.recurrent:
                # in chunks of about CHUNK rows: activations that stay in cache (a tensor
                # past glibc's mmap threshold would also be page-faulted in afresh)
                step = max(1, CHUNK // (c.stop - c.start))
                for t in range(first, b.obs.shape[0], step):
                    x = critic_in[t:t + step, c]
                    b.values[t:t + step, c] = net.value_head(net.critic.mlp(x)).squeeze(-1)
                for tr, z in finals:
                    pick = (tr.columns >= c.start) & (tr.columns < c.stop)
                    tr.values[pick] = net.value_head(net.critic.mlp(z[pick])).squeeze(-1)
                continue
            h = b.critic_state[c]
            for t in range(b.obs.shape[0]):
                h = net.critic.gru(net.critic.mlp(critic_in[t, c]),
                                   h * (1.0 - b.starts[t, c]).unsqueeze(1))
                b.values[t, c] = net.value_head(h).squeeze(-1)
                if t == b.obs.shape[0] - 2:         # the next rollout starts from here
                    self._critic_state[c] = h
                for tr, z in finals:
                    if tr.t != t:
                        continue
                    # the final observation follows obs[t]: from the state after it
                    pick = (tr.columns >= c.start) & (tr.columns < c.stop)
                    state = h[tr.columns[pick] - c.start]
                    after = net.critic.gru(net.critic.mlp(z[pick]), state)
                    tr.values[pick] = net.value_head(after).squeeze(-1)

    def _critic_inputs(self, obs: torch.Tensor, means: torch.Tensor | None) -> torch.Tensor:
        if means is None:
            return obs
        return torch.cat([obs, means[:, self.market_of]], -1)

    def update(self) -> dict[str, float]:
        """``n_epochs`` passes of clipped-PPO minibatches over the rollout (fewer with
        ``target_kl``: the returned ``minibatches`` and ``epochs`` say how many ran)."""
        s, b, m = self.settings, self.rollout, self.model
        if s.normalize_advantage:
            adv = b.advantages
            adv.sub_(adv.mean()).div_(adv.std() + 1e-8)
        fields = {"obs": b.obs[:-1], "actions": b.actions, "logp": b.logp,
                  "advantages": b.advantages, "returns": b.returns, "values": b.values[:-1]}
        if b.means is not None:
            fields["critic"] = self._critic_inputs(b.obs[:-1], b.means[:-1])
        if m.recurrent:
            fields["starts"] = b.starts[:-1]
        # each group's samples: (T, columns, ...) for a recurrent policy, else flat
        # (T x columns, ...): a view for a shared policy, one copy per field otherwise
        data = [{name: value[:, c] if m.recurrent else value[:, c].reshape(
                    -1, *value.shape[2:]) for name, value in fields.items()}
                for c in self.columns]
        n_batches = max(1, math.ceil(s.n_steps * self.n_rows / s.minibatch_size))
        if m.recurrent:
            n_batches = min(n_batches, min(c.stop - c.start for c in self.columns))
        stats = torch.zeros(6, dtype=torch.float64)
        # target_kl: stop before the step of the first minibatch whose policy has moved
        # too far from the rollout's (that minibatch's losses still count in the stats)
        kl_limit = None if s.target_kl is None else 1.5 * s.target_kl
        steps, stopped = 0, False
        for _ in range(s.n_epochs):
            if stopped:
                break
            plans = [self._plan(g, n_batches) for g in range(len(self.columns))]
            for k in range(n_batches):
                with m.autocast():
                    parts = [self._loss(g, _minibatch(data[g], plans[g], k, m.recurrent),
                                        _columns(self.columns[g], plans[g], k))
                             for g in range(len(self.columns))]
                before = stats.clone() if kl_limit is not None else None
                for p in parts:
                    stats += p[2]
                if before is not None:
                    batch = stats - before
                    if float(batch[3]) / float(batch[5]) > kl_limit:
                        stopped = True
                        break
                loss = sum(p[0] for p in parts) / sum(p[1] for p in parts)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(m.parameters(), s.max_grad_norm)
                self.optimizer.step()
                steps += 1
        self.updates += 1
        n = float(stats[5])
        values, returns = b.values[:-1], b.returns
        explained = 1.0 - float((returns - values).var() / (returns.var() + 1e-12))
        return {"policy_loss": float(stats[0]) / n, "value_loss": float(stats[1]) / n,
                "entropy": float(stats[2]) / n, "approx_kl": float(stats[3]) / n,
                "clip_fraction": float(stats[4]) / n, "explained_variance": explained,
                "minibatches": steps, "epochs": steps / n_batches}

    def adapt_learning_rate(self, approx_kl: float) -> None:
        """``kl_adaptive_lr``: the next update's learning rate from this update's mean
        ``approx_kl`` (divided by 1.5 above ``2 x target_kl``, multiplied by 1.5 below
        ``target_kl / 2``, within ``kl_lr_bounds``)."""
        s = self.settings
        if not s.kl_adaptive_lr or not math.isfinite(approx_kl):
            return
        low, high = s.kl_lr_bounds
        for group in self.optimizer.param_groups:
            lr = group["lr"]
            if approx_kl > 2.0 * s.target_kl:
                lr /= 1.5
            elif approx_kl < 0.5 * s.target_kl:
                lr *= 1.5
            group["lr"] = min(max(lr, low), high)

    def _plan(self, g: int, n_batches: int) -> tuple[torch.Tensor | None, int]:
        """How group ``g``'s samples split into ``n_batches`` minibatches this epoch: a
        permutation (None: one batch, no shuffle) and the chunk size. An MLP draws single
        agent-steps, a recurrent policy whole columns (their sequences)."""
        count = self.columns[g].stop - self.columns[g].start
        if not self.model.recurrent:
            count *= self.settings.n_steps
        if n_batches == 1:
            return None, count
        return torch.randperm(count, generator=self.generator), -(-count // n_batches)

    def _loss(self, g: int, data: dict[str, torch.Tensor], columns: torch.Tensor | None
              ) -> tuple[torch.Tensor, int, torch.Tensor]:
        """Group ``g``'s part of a minibatch: its summed PPO loss, its sample count and
        its statistics (sums of the policy and value losses, entropy, approx KL, clipped
        ratios; samples). ``columns``: a recurrent minibatch's columns."""
        s, m = self.settings, self.model
        net = m.nets[g]
        critic_in = data.get("critic", data["obs"])
        if m.recurrent:
            b = self.rollout
            features = net.actor.unroll(data["obs"], b.actor_state[columns], data["starts"])
            hidden = features if m.shared_trunk else net.critic.unroll(
                critic_in, b.critic_state[columns], data["starts"])
        else:
            features = net.actor.mlp(data["obs"])
            hidden = features if m.shared_trunk else net.critic.mlp(critic_in)
        logp, entropy = m.log_prob_entropy(g, m.head(g, features), data["actions"])
        values = net.value_head(hidden).squeeze(-1).float()
        log_ratio = logp - data["logp"]
        ratio = log_ratio.exp()
        adv = data["advantages"]
        policy = torch.maximum(-adv * ratio,
                               -adv * ratio.clamp(1.0 - s.clip_range, 1.0 + s.clip_range))
        error = (values - data["returns"]).square()
        if s.clip_value is not None:
            old = data["values"]
            clipped = old + (values - old).clamp(-s.clip_value, s.clip_value)
            error = torch.maximum(error, (clipped - data["returns"]).square())
        policy_sum, value_sum, entropy_sum = policy.sum(), 0.5 * error.sum(), entropy.sum()
        total = policy_sum + s.vf_coef * value_sum - s.ent_coef * entropy_sum
        with torch.no_grad():
            stats = torch.stack([policy_sum, value_sum, entropy_sum,
                                 ((ratio - 1.0) - log_ratio).sum(),
                                 ((ratio - 1.0).abs() > s.clip_range).sum(),
                                 torch.tensor(float(logp.numel()))]).to(torch.float64)
        return total, logp.numel(), stats

    def _merge_obs_stats(self, sums: torch.Tensor, count: int) -> None:
        """Merge this rollout's observations (shifted sums, collected with the
        statistics the rollout used) into the normaliser, after the rollout's values
        were computed."""
        stats = self.model.obs_norm
        mean_shifted = sums[0] / count
        var = (sums[1] / count - mean_shifted.square()).clamp_(min=0.0)
        stats.merge(stats.mean + mean_shifted, var, count)

    # ---- checkpoints --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What :meth:`save` writes (plain types and tensors: ``torch.load(...,
        weights_only=True)`` reads it)."""
        norm = self.model.obs_norm
        config = getattr(self.env, "config", None)
        return {
            "format": FORMAT,
            "architecture": self.architecture,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs_normalizer": {"mean": norm.mean.clone(), "var": norm.var.clone(),
                               "count": norm.count.clone()},
            "reward_scaler": (None if self.reward_scaler is None
                              else self.reward_scaler.state_dict()),
            "action_space": self.spec.as_dict(),
            "env_config": None if config is None else plain(dataclasses.asdict(config)),
            "settings": plain({**dataclasses.asdict(self.settings),
                               "groups": self.architecture["groups"]}),
            "metadata": {"agent_steps": self.agent_steps, "updates": self.updates,
                         "seed": self.seed, "n_rows": self.n_rows,
                         "n_agents": self.n_agents, "seconds": dict(self.seconds),
                         "torch": str(torch.__version__)},
        }

    def save(self, path: Path | str) -> Path:
        """Write the checkpoint (:meth:`state`) to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state(), path)
        return path

    def load(self, path: Path | str) -> None:
        """Restore weights, optimizer, normalisers and counters from a checkpoint of the
        same architecture."""
        state = read_checkpoint(path)
        if state["architecture"] != self.architecture:
            raise ValueError(f"checkpoint architecture {state['architecture']} differs from "
                             f"this trainer's {self.architecture}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.reward_scaler is not None and state["reward_scaler"] is not None:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.agent_steps = int(state["metadata"]["agent_steps"])
        self.updates = int(state["metadata"]["updates"])

    def policy(self) -> Policy:
        """The current weights as a deterministic :class:`Policy` (a copy)."""
        model = ActorCritic(self.architecture)
        model.load_state_dict(self.model.state_dict())
        return Policy(model)


def charged_columns(env: Any, markets: tuple[str, ...], order: torch.Tensor) -> torch.Tensor:
    """Which rollout columns (``order``: the env row of each) lie in a lane of one of
    ``markets`` of the mix under a residual ``env`` (``FastPPOSettings.
    deviation_markets``), as a bool tensor."""
    mix = getattr(env, "env", env)
    config = getattr(mix, "config", None)
    lanes = getattr(config, "lanes", None)
    if lanes is None or not hasattr(mix, "rows"):
        raise ValueError(f"deviation_markets {list(markets)} names lanes of a mix of "
                         f"markets; this env ({type(mix).__name__}) has none")
    known = {lane.market for lane in lanes}
    unknown = sorted(set(markets) - known)
    if unknown:
        raise ValueError(f"deviation_markets {unknown} are not markets of this mix "
                         f"({sorted(known)})")
    rows = np.zeros(int(mix.num_agents_total), dtype=bool)
    for lane, span in zip(lanes, mix.rows, strict=True):
        rows[span] = lane.market in markets
    return torch.from_numpy(rows)[order]


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fast PPO checkpoint ({FORMAT})")
    return state


def load_policy(path: Path | str) -> Policy | GuardedPolicy:
    """The policy of a checkpoint written by :meth:`FastPPO.save`, acting
    deterministically; guarded (:class:`~rltrader.training.ppo.guard.GuardedPolicy`)
    when the checkpoint holds a guard."""
    state = read_checkpoint(path)
    model = ActorCritic(state["architecture"])
    model.load_state_dict(state["model"])
    if state.get("guard") is None:
        return Policy(model)
    from rltrader.training.ppo.guard import GuardedPolicy, check_guard

    try:
        guard = check_guard(state["guard"])
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return GuardedPolicy(Policy(model), **guard)


def plain(value: Any) -> Any:
    """``value`` with tuples as lists and anything not a plain type as its ``str``."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _adam(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, eps=1e-5, fused=True)
    except (RuntimeError, TypeError):         # a build without the fused CPU kernel
        return torch.optim.Adam(model.parameters(), lr=lr, eps=1e-5)


def _minibatch(data: dict[str, torch.Tensor], plan: tuple[torch.Tensor | None, int],
               k: int, recurrent: bool) -> dict[str, torch.Tensor]:
    """Minibatch ``k`` of one group's samples (whole columns when ``recurrent``)."""
    permutation, size = plan
    if permutation is None:
        return data
    chosen = permutation[k * size:(k + 1) * size]
    # index_select, not value[chosen]: advanced indexing is ~4x slower on CPU here
    axis = 1 if recurrent else 0
    return {name: torch.index_select(value, axis, chosen) for name, value in data.items()}


def _columns(columns: slice, plan: tuple[torch.Tensor | None, int], k: int) -> torch.Tensor:
    """The rollout columns of a recurrent minibatch ``k`` of one group."""
    permutation, size = plan
    if permutation is None:
        return torch.arange(columns.start, columns.stop)
    return columns.start + permutation[k * size:(k + 1) * size]
