"""The fast PPO trainer's hyperparameters (:class:`FastPPOSettings`), checked on creation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: the critic variants: the agent's own observation, or it and its market's mean observation
CRITICS = ("independent", "centralised")
ACTIVATIONS = ("tanh", "relu")
PRECISIONS = ("float32", "bfloat16")
#: at most this many per-group policies (GroupedMarketEnv's limit)
MAX_GROUPS = 8


@dataclass(frozen=True)
class FastPPOSettings:
    """Hyperparameters of :class:`~rltrader.training.ppo.trainer.FastPPO`.

    Attributes
    ----------
    n_steps : int
        Batched env steps per rollout (a rollout is ``n_steps x num_agents_total``
        agent-steps).
    n_epochs : int
        Passes over each rollout.
    minibatch_size : int
        Agent-steps per gradient step, capped at the rollout (recurrent: rounded to whole
        agent columns of ``n_steps`` each).
    learning_rate, anneal_lr : float, bool
        Adam's step size; ``anneal_lr`` decays it linearly to 0 over the run.
    gamma, gae_lambda : float
        Discount and GAE's lambda.
    clip_range : float
        PPO's ratio clip.
    target_kl : float or None
        A KL-adaptive step (as Stable-Baselines3 and CleanRL): each minibatch's mean
        ``approx_kl`` (``(r - 1) - log r`` of the probability ratio ``r``, against the
        rollout's policy) is measured before its gradient step, and once it exceeds
        ``1.5 x target_kl`` the update stops there (that minibatch takes no step; its
        losses are still in the update's statistics). ``curve.csv`` records the
        minibatches whose step was taken (``minibatches``) and the passes they make
        (``epochs``: ``minibatches`` over the minibatches of one pass). None: every
        epoch runs, as before.
    kl_adaptive_lr, kl_lr_bounds : bool, (float, float)
        With ``target_kl``: after each update, divide the learning rate by 1.5 when the
        update's mean ``approx_kl`` exceeded ``2 x target_kl``, multiply it by 1.5 when it
        stayed below ``target_kl / 2``, kept within ``kl_lr_bounds`` (which must contain
        ``learning_rate``). The rate is the optimizer's, so it is saved with a
        checkpoint. Not with ``anneal_lr``.
    clip_value : float or None
        Clip the value prediction to ``old +- clip_value`` (None: no value clipping).
    ent_coef, vf_coef, max_grad_norm : float
        Entropy bonus, value-loss weight, gradient-norm clip.
    hidden : tuple of int
        Hidden layer widths of the actor and of the critic (separate networks).
    activation : str
        ``"tanh"`` or ``"relu"``.
    critic : str
        ``"independent"`` (the agent's observation) or ``"centralised"`` (also its market's
        mean observation, ``obs.reshape(n_markets, n_agents, -1).mean(1)``, broadcast).
    shared_trunk : bool
        One MLP (and GRU) under both the policy and the value head, trained by both losses:
        one trunk's forward and backward per minibatch instead of two (the independent
        critic only).
    groups : sequence of (slice or sequence of int), optional
        One policy per group of agent slots: each entry selects agent indices ``0 ..
        n_agents - 1`` of every market (agent ``i`` of market ``e`` is row ``e * n_agents +
        i``); together they must cover every slot once. ``None``: one shared policy.
    recurrent : bool
        A GRU core (``gru_size`` units) after the MLP of the actor and of the critic.
    normalize_obs, obs_clip : bool, float
        Running observation normalisation (in the policy, saved with it), clipped to
        ``+- obs_clip``.
    scale_rewards, reward_clip : bool, float
        Divide rewards by the running standard deviation of discounted returns, then clip.
    normalize_advantage : bool
        Advantages to zero mean and unit variance over each rollout.
    log_std_init : float
        Initial log standard deviation of a Box action (in the policy's [-1, 1] units).
    precision : str
        ``"float32"``, or ``"bfloat16"``: the networks' layers run under CPU autocast
        (bfloat16 matrix products, AMX where the CPU has it; log-probabilities, values and
        losses in float32; weights and Adam's state stay float32).
    threads : int or None
        ``torch.set_num_threads`` (None: all cores).
    tensorboard : bool
        Also log to ``out_dir/tensorboard`` through ``torch.utils.tensorboard`` (needs the
        ``tensorboard`` package).
    progress : bool
        A tqdm bar over agent-steps.
    checkpoint_every : int or None
        Also save ``checkpoints/fast_ppo_<agent-steps>.pt`` every so many agent-steps.
    warm_start : str or None
        A baseline to clone before PPO (``rltrader evaluate``'s names: ``"best_fixed_spread"``,
        ``"twap_passive"`` ...; :mod:`rltrader.training.ppo.imitate`), or None: PPO from
        random weights.
    warm_start_steps, warm_start_epochs, warm_start_smoothing : int, int, float
        The clone: batched steps the teacher plays (not counted in the run's agent-steps),
        passes over them, and the share of each head's target spread evenly over its
        actions (the clone's exploration).
    residual : str or None
        A market-making baseline whose quotes the policy corrects
        (:mod:`rltrader.training.ppo.residual`), or None.
    mirror : bool
        With ``residual``: a policy symmetric under the buy-sell mirror by construction
        (:mod:`rltrader.training.ppo.mirror`); the default trainer is unchanged.
    deviation_cost : float
        With ``residual``: a cost, in the env's reward units (ticks per lot), subtracted
        from the training reward of every agent-step whose correction is not "keep"
        (index 0), so that the policy leaves the teacher's quotes only where it expects
        to gain more than that. Training only: the env's rewards, the logged episode
        returns (``curve.csv``) and every evaluation are the raw rewards. 0 (the
        default): the trainer is unchanged.
    deviation_markets : tuple of str or None
        With ``deviation_cost`` on a mix of markets: charge it only on the lanes of these
        markets (``Lane.market``); None: on every row.
    """

    n_steps: int = 32
    n_epochs: int = 2
    minibatch_size: int = 32_768
    learning_rate: float = 1e-3
    anneal_lr: bool = False
    gamma: float = 0.95
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    target_kl: float | None = None
    kl_adaptive_lr: bool = False
    kl_lr_bounds: tuple[float, float] = (1e-6, 1e-2)
    clip_value: float | None = None
    ent_coef: float = 0.003
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    critic: str = "independent"
    shared_trunk: bool = False
    groups: tuple[slice | Sequence[int], ...] | None = None
    recurrent: bool = False
    gru_size: int = 64
    normalize_obs: bool = True
    obs_clip: float = 10.0
    scale_rewards: bool = True
    reward_clip: float = 10.0
    normalize_advantage: bool = True
    log_std_init: float = 0.0
    precision: str = "float32"
    threads: int | None = None
    tensorboard: bool = False
    progress: bool = True
    checkpoint_every: int | None = None
    warm_start: str | None = None
    warm_start_steps: int = 200
    warm_start_epochs: int = 10
    warm_start_smoothing: float = 0.05
    residual: str | None = None
    mirror: bool = False
    deviation_cost: float = 0.0
    deviation_markets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("n_steps", "n_epochs", "minibatch_size", "gru_size"):
            _positive_int(name, getattr(self, name))
        for name in ("learning_rate", "clip_range", "max_grad_norm", "obs_clip",
                     "reward_clip"):
            value = getattr(self, name)
            if not _real(value) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"FastPPOSettings.{name} must be a finite number > 0, "
                                 f"got {value!r}")
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            if not _real(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"FastPPOSettings.{name} must be in [0, 1], got {value!r}")
        for name in ("ent_coef", "vf_coef"):
            value = getattr(self, name)
            if not _real(value) or not value >= 0 or not math.isfinite(value):
                raise ValueError(f"FastPPOSettings.{name} must be a finite number >= 0, "
                                 f"got {value!r}")
        if self.clip_value is not None and (not _real(self.clip_value)
                                            or not self.clip_value > 0):
            raise ValueError(f"FastPPOSettings.clip_value must be None or > 0, "
                             f"got {self.clip_value!r}")
        if self.target_kl is not None and (not _real(self.target_kl)
                                           or not self.target_kl > 0
                                           or not math.isfinite(self.target_kl)):
            raise ValueError(f"FastPPOSettings.target_kl must be None or a finite number "
                             f"> 0, got {self.target_kl!r}")
        if not isinstance(self.kl_adaptive_lr, bool):
            raise ValueError(f"FastPPOSettings.kl_adaptive_lr must be a bool, "
                             f"got {self.kl_adaptive_lr!r}")
        bounds = self.kl_lr_bounds
        if (not isinstance(bounds, tuple) or len(bounds) != 2
                or not all(_real(b) and math.isfinite(b) for b in bounds)
                or not 0 < bounds[0] <= bounds[1]):
            raise ValueError(f"FastPPOSettings.kl_lr_bounds must be a tuple (low, high) "
                             f"with 0 < low <= high, got {bounds!r}")
        if self.kl_adaptive_lr:
            if self.target_kl is None:
                raise ValueError("FastPPOSettings.kl_adaptive_lr needs target_kl (the KL "
                                 "it steers the learning rate towards)")
            if self.anneal_lr:
                raise ValueError("FastPPOSettings.kl_adaptive_lr and anneal_lr both set "
                                 "the learning rate: choose one")
            if not bounds[0] <= self.learning_rate <= bounds[1]:
                raise ValueError(f"FastPPOSettings.learning_rate {self.learning_rate!r} "
                                 f"is outside kl_lr_bounds {bounds!r}")
        if not _real(self.log_std_init) or not math.isfinite(self.log_std_init):
            raise ValueError(f"FastPPOSettings.log_std_init must be finite, "
                             f"got {self.log_std_init!r}")
        if (not isinstance(self.hidden, tuple) or not self.hidden
                or not all(_is_int(h) and h >= 1 for h in self.hidden)):
            raise ValueError(f"FastPPOSettings.hidden must be a non-empty tuple of ints "
                             f">= 1, got {self.hidden!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"FastPPOSettings.activation must be one of {ACTIVATIONS}, "
                             f"got {self.activation!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"FastPPOSettings.precision must be one of {PRECISIONS}, "
                             f"got {self.precision!r}")
        if self.critic not in CRITICS:
            raise ValueError(f"FastPPOSettings.critic must be one of {CRITICS}, "
                             f"got {self.critic!r}")
        if not isinstance(self.shared_trunk, bool):
            raise ValueError(f"FastPPOSettings.shared_trunk must be a bool, "
                             f"got {self.shared_trunk!r}")
        if self.shared_trunk and self.critic == "centralised":
            raise ValueError("FastPPOSettings.shared_trunk needs critic='independent' (the "
                             "centralised critic's input is wider than the actor's)")
        if self.threads is not None:
            _positive_int("threads", self.threads)
        if self.checkpoint_every is not None:
            _positive_int("checkpoint_every", self.checkpoint_every)
        if self.warm_start is not None and (not isinstance(self.warm_start, str)
                                            or not self.warm_start):
            raise ValueError(f"FastPPOSettings.warm_start must be None or a baseline's "
                             f"name, got {self.warm_start!r}")
        if self.residual is not None:
            if not isinstance(self.residual, str) or not self.residual:
                raise ValueError(f"FastPPOSettings.residual must be None or a market-making "
                                 f"baseline's name, got {self.residual!r}")
            if self.warm_start is not None:
                raise ValueError("FastPPOSettings.residual starts from a clone of the "
                                 "teacher's own quotes: warm_start must be None")
            if self.recurrent:
                raise ValueError("FastPPOSettings.residual needs a feed-forward policy "
                                 "(its warm start is a clone)")
        if not isinstance(self.mirror, bool):
            raise ValueError(f"FastPPOSettings.mirror must be a bool, got {self.mirror!r}")
        if self.mirror and (self.residual is None or self.critic != "independent"):
            raise ValueError("FastPPOSettings.mirror symmetrises a residual market maker "
                             "(residual set, critic='independent')")
        if (not _real(self.deviation_cost) or not self.deviation_cost >= 0
                or not math.isfinite(self.deviation_cost)):
            raise ValueError(f"FastPPOSettings.deviation_cost must be a finite number >= 0, "
                             f"got {self.deviation_cost!r}")
        if self.deviation_cost and self.residual is None:
            raise ValueError("FastPPOSettings.deviation_cost charges corrections other than "
                             "'keep' of a residual market maker: it needs residual")
        if self.deviation_markets is not None:
            names = self.deviation_markets
            if (not isinstance(names, tuple) or not names
                    or not all(isinstance(n, str) and n for n in names)):
                raise ValueError(f"FastPPOSettings.deviation_markets must be None or a "
                                 f"non-empty tuple of market names, got {names!r}")
            if not self.deviation_cost:
                raise ValueError("FastPPOSettings.deviation_markets says where "
                                 "deviation_cost is charged: it needs deviation_cost > 0")
        for name in ("warm_start_steps", "warm_start_epochs"):
            _positive_int(name, getattr(self, name))
        if not _real(self.warm_start_smoothing) or not 0 <= self.warm_start_smoothing < 1:
            raise ValueError(f"FastPPOSettings.warm_start_smoothing must be in [0, 1), "
                             f"got {self.warm_start_smoothing!r}")
        if self.groups is not None:
            if (isinstance(self.groups, (str, bytes, slice))
                    or not isinstance(self.groups, Sequence) or not self.groups):
                raise ValueError("FastPPOSettings.groups must be None or a non-empty "
                                 f"sequence of slices / index lists, got {self.groups!r}")
            if len(self.groups) > MAX_GROUPS:
                raise ValueError(f"FastPPOSettings.groups: at most {MAX_GROUPS} groups, "
                                 f"got {len(self.groups)}")
            for group in self.groups:
                if not isinstance(group, slice) and (
                        isinstance(group, (str, bytes)) or not isinstance(group, Sequence)
                        or not all(_is_int(i) for i in group)):
                    raise ValueError("FastPPOSettings.groups: each group is a slice or a "
                                     f"sequence of agent indices, got {group!r}")


def group_slots(groups: Sequence[slice | Sequence[int]] | None,
                n_agents: int) -> list[list[int]]:
    """Each group's agent slots (indices ``0 .. n_agents - 1``), checked to cover every slot
    exactly once; ``None``: one group of all of them."""
    if groups is None:
        return [list(range(n_agents))]
    slots = [list(range(n_agents))[g] if isinstance(g, slice) else [int(i) for i in g]
             for g in groups]
    flat = [i for group in slots for i in group]
    if any(not group for group in slots):
        raise ValueError(f"FastPPOSettings.groups: an empty group for n_agents={n_agents}: "
                         f"{list(groups)}")
    if sorted(flat) != list(range(n_agents)):
        raise ValueError(f"FastPPOSettings.groups must cover the agent slots 0 .. "
                         f"{n_agents - 1} exactly once, got {slots}")
    return slots


def _positive_int(name: str, value: object) -> None:
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ValueError(f"FastPPOSettings.{name} must be an int >= 1, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
