"""An out-of-distribution guard: a trained policy that stands aside where it has no
experience.

A policy trained on simulated markets acts on whatever it is shown. On a market unlike
its training (the real AAPL hour: a spread of 18 ticks where the presets have 1 to 3, a
volatility and a volume 15 to 30 times theirs) its network extrapolates, and round 8's
directional policy quoted at the touch on 93 % of the steps there and was picked off.
The guard asks the policy's own observation normaliser, the running mean and standard
deviation of every observation seen in training (saved in the checkpoint): when a row's
observation has a column more than ``clip`` standard deviations from its training mean,
the row plays ``action`` (for the discrete mode, "cancel all own orders", which leaves
the agent out of the book; for the market-making mode, no quote on either side) instead
of the policy's action. ``clip`` defaults to the
normaliser's own clip (``obs_clip``, 10): the guard fires exactly where the network
would see a clipped input. A column that never varied in training has the normaliser's
floor for its standard deviation (``sqrt(1e-8)``), so any change of it fires the guard:
trained without latency, ``in_flight`` is always 0, and a policy that never reached its
position limit in training never saw ``limited`` set. Such a policy stands aside under
latency and at its limit. A non-finite observation fires it too.

``clip`` may instead be a list, one clip per observation column (opt-in): a column whose
clip is ``inf`` is not read (only a NaN there fires), so that the guard can watch the
columns that tell a market apart from the training ones (the portfolio manager's ``cost``:
docs/portfolio.md, "Fourth round") and ignore the heavy tails of the others.

The guard is saved in the checkpoint (``state["guard"]``) so that
:func:`~rltrader.training.ppo.trainer.load_policy`, ``rltrader evaluate`` and
``pretrained:NAME`` play the guarded policy::

    python -m rltrader.training.ppo.guard seed_0/checkpoint.pt guarded_0.pt [--clip 10]

It acts only when the policy acts (evaluation, deployment); training is unchanged.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rltrader.training.ppo.policy import Policy


def check_guard(guard: Any, n_actions: int | Sequence[int] | None = None
                ) -> dict[str, Any]:
    """``guard`` (``{"clip": float > 0, "action": int}``, or for a MultiDiscrete policy
    ``"action": [int, ...]``, one per head) checked, as plain types; ``n_actions``: the
    policy's Discrete size, which ``action`` must lie below, or its MultiDiscrete
    ``nvec``, which each head's action must lie below. ``clip`` may be a list, one per
    observation column (each > 0, ``inf``: the column is not read, at least one finite)."""
    if not isinstance(guard, dict) or set(guard) != {"clip", "action"}:
        raise ValueError(f"a guard is {{'clip': float, 'action': int}}, got {guard!r}")
    clip, action = guard["clip"], guard["action"]
    if isinstance(clip, (list, tuple)):
        if not clip or any(isinstance(c, bool) or not isinstance(c, (int, float))
                           or math.isnan(c) or c <= 0 for c in clip) or \
                not any(math.isfinite(c) for c in clip):
            raise ValueError(f"guard clips per column must be numbers > 0 (inf: not read), "
                             f"at least one finite, got {clip!r}")
        clip = [float(c) for c in clip]
    elif (isinstance(clip, bool) or not isinstance(clip, (int, float))
            or not math.isfinite(clip) or clip <= 0):
        raise ValueError(f"guard clip must be a finite number > 0, got {clip!r}")
    else:
        clip = float(clip)
    heads = None if n_actions is None or isinstance(n_actions, int) else list(n_actions)
    if heads is not None or (n_actions is None and isinstance(action, (list, tuple))):
        if not isinstance(action, (list, tuple)) or not action or any(
                isinstance(a, bool) or not isinstance(a, int) or a < 0 for a in action) or (
                heads is not None and (len(action) != len(heads)
                                       or any(a >= n for a, n in zip(action, heads, strict=True)))):
            bound = "" if heads is None else f" of {len(heads)} ints, each below {heads}"
            raise ValueError(f"guard action must be a list{bound} (one per head, >= 0), "
                             f"got {action!r}")
        return {"clip": clip, "action": [int(a) for a in action]}
    if isinstance(action, bool) or not isinstance(action, int) or action < 0 or (
            n_actions is not None and action >= n_actions):
        bound = "" if n_actions is None else f" below {n_actions}"
        raise ValueError(f"guard action must be an int >= 0{bound}, got {action!r}")
    return {"clip": clip, "action": int(action)}


class GuardedPolicy:
    """``policy`` (a :class:`~rltrader.training.ppo.policy.Policy` with Discrete or
    MultiDiscrete actions) whose rows with an observation beyond ``clip`` standard
    deviations of its normaliser play ``action`` (module docstring; MultiDiscrete: one
    action per head; ``clip`` a list: one per observation column). ``fired`` and ``rows``
    count the guarded rows and all rows acted for since construction."""

    def __init__(self, policy: Policy, *, clip: float | Sequence[float],
                 action: int | Sequence[int]) -> None:
        if not policy.model.normalize_obs:
            raise ValueError("the guard reads the policy's observation normaliser; this "
                             "policy was trained without one (normalize_obs=False)")
        guard = check_guard({"clip": clip, "action": action}, _actions_of(policy))
        self.policy, self.clip, self.action = policy, guard["clip"], guard["action"]
        self.spec, self.model = policy.spec, policy.model
        norm = policy.model.obs_norm
        self._shift = norm.shift.detach().numpy().astype(np.float64)
        self._scale = norm.scale.detach().numpy().astype(np.float64)
        if isinstance(self.clip, list) and len(self.clip) != self._scale.shape[-1]:
            raise ValueError(f"the guard has {len(self.clip)} clips, one per observation "
                             f"column; the policy reads {self._scale.shape[-1]} columns")
        self._clip = np.asarray(self.clip, dtype=np.float64)
        self.fired = 0
        self.rows = 0

    def unfamiliar(self, observations: np.ndarray) -> np.ndarray:
        """Rows with a column beyond ``clip`` standard deviations (its own, with a clip
        per column), ``(n,)`` bool."""
        z = (np.asarray(observations, dtype=np.float64) + self._shift) * self._scale
        return (~(np.abs(z) <= self._clip)).any(axis=1)      # NaN is unfamiliar too

    def reset(self, done: np.ndarray | None = None) -> None:
        self.policy.reset(done)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        actions = self.policy(observations)
        away = self.unfamiliar(observations)
        actions[away] = self.action
        self.fired += int(away.sum())
        self.rows += away.size
        return actions


def _actions_of(policy: Policy) -> int | tuple[int, ...]:
    """The Discrete size or the MultiDiscrete ``nvec`` of ``policy``; other action spaces
    are refused."""
    if policy.spec.kind == "discrete":
        return int(policy.spec.nvec[0])
    if policy.spec.kind == "multi_discrete":
        return tuple(int(n) for n in policy.spec.nvec)
    raise ValueError(f"the guard replaces a Discrete or MultiDiscrete action; this "
                     f"policy's actions are {policy.spec.kind}")


def saved_action_mode(env_config: Any) -> str | None:
    """The action mode of a checkpoint's saved ``env_config``: an ``EnvConfig``'s, or a
    ``MixedConfig``'s base's (its lanes share it); None when it does not say."""
    if isinstance(env_config, dict) and isinstance(env_config.get("base"), dict):
        env_config = env_config["base"]
    return env_config.get("action_mode") if isinstance(env_config, dict) else None


def stand_aside_action(env_config: Any, n_actions: int | Sequence[int],
                       path: str | Path = "") -> int | list[int]:
    """The action that leaves an agent out of the book in the checkpoint's action mode:
    the discrete mode's last action (cancel all own orders), the execution mode's first
    (wait: the resting child is cancelled), the market-making mode's no quote on both
    sides (each quote head's last index; the size head's first, which then says
    nothing; a residual maker's correction "no quotes",
    :data:`~rltrader.training.ppo.residual.STAND_ASIDE`). ``n_actions``: the Discrete
    size or the MultiDiscrete ``nvec``. Other
    modes, or a checkpoint that does not say its mode, must name the action."""
    mode = saved_action_mode(env_config)
    if mode == "discrete":
        return int(n_actions) - 1  # type: ignore[arg-type]
    if mode == "execution":
        return 0
    if mode == "market_making" and isinstance(n_actions, int):
        from rltrader.training.ppo.residual import CORRECTIONS, STAND_ASIDE

        if n_actions != len(CORRECTIONS):
            raise ValueError(f"{path}: a Discrete market maker is a residual one, with "
                             f"{len(CORRECTIONS)} corrections; this one has {n_actions}")
        return STAND_ASIDE
    if mode == "market_making":
        nvec = [int(n) for n in n_actions]
        return [nvec[0] - 1, nvec[1] - 1, 0]
    raise ValueError(f"{path}: no default stand-aside action for action mode {mode!r}; "
                     "give the action (--action)")


def guard_checkpoint(path: str | Path, out: str | Path, *,
                     clip: float | Sequence[float] | None = None,
                     action: int | Sequence[int] | None = None) -> Path:
    """A copy of the fast PPO checkpoint ``path`` at ``out`` that plays guarded:
    ``clip`` defaults to the policy's ``obs_clip``, ``action`` to the action mode's
    stand-aside (:func:`stand_aside_action`)."""
    from rltrader.training.ppo.trainer import load_policy, read_checkpoint

    state = read_checkpoint(path)
    policy = load_policy(path)
    policy = policy.policy if isinstance(policy, GuardedPolicy) else policy
    try:
        n_actions = _actions_of(policy)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if action is None:
        action = stand_aside_action(state.get("env_config"), n_actions, path)
    guard = {"clip": policy.model.obs_clip if clip is None else clip, "action": action}
    guarded = GuardedPolicy(policy, **guard)    # refuses what it cannot play
    state["guard"] = {"clip": guarded.clip, "action": guarded.action}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out


def _action_arg(text: str) -> int | list[int]:
    """``--action``'s value: ``"3"`` is 3, ``"4,4,0"`` is ``[4, 4, 0]``."""
    try:
        heads = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"an int or comma-separated ints, got {text!r}"
                                         ) from None
    return heads[0] if len(heads) == 1 else heads


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rltrader.training.ppo.guard",
        description="Write a copy of a fast PPO checkpoint that plays a guarded policy: "
                    "rows whose observation lies beyond CLIP standard deviations of the "
                    "policy's training statistics play ACTION instead.")
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--clip", type=float, default=None,
                        help="standard deviations (default: the policy's obs_clip)")
    parser.add_argument("--action", type=_action_arg, default=None,
                        help="the action played instead: an int, or for a MultiDiscrete "
                             "policy one int per head, comma-separated (4,4,0) (default: "
                             "the action mode's stand-aside: discrete: cancel all; "
                             "execution: wait; market making: no quotes)")
    args = parser.parse_args(argv)
    out = guard_checkpoint(args.checkpoint, args.out, clip=args.clip, action=args.action)
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = ["GuardedPolicy", "check_guard", "guard_checkpoint", "saved_action_mode",
           "stand_aside_action"]
