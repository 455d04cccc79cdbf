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

``shape`` (opt-in, with the clip guard) decides per row from the first steps it sees
where the policy acts at all (docs/training.md, "Round 14, market making"): over the
row's first ``window`` observations since its last reset the row plays the shape's
``action`` (for a residual market maker "keep": the teacher's quotes exactly) while the
mean of each named column is taken; from then on, a row whose means all lie in
``[low, high]`` plays the policy, and any other row plays the shape's action for the rest
of its life (until :meth:`GuardedPolicy.reset`). The window decides the clip guard
too: it stands aside step by step (in the window and after it) on a row where it fired
in the window, and is off for the rest of a row where it never did (a market familiar
from its first steps: on the presets the clip guard fires on a few steps in a thousand,
and each stand-aside costs the queue place; on the real AAPL hour it fires from the
first step, round 14's validation). ``rltrader
evaluate`` resets the policy when each seed's markets begin, so the first ``window``
steps after the open decide for the market's episodes. The state is per row: the rows
must be the same agents, in the same order, from call to call (a call with another
number of rows starts afresh)::

    python -m rltrader.training.ppo.guard seed_0/checkpoint.pt guarded_0.pt \
        --clip-columns bid_price_0,...,spread,volatility \
        --shape volume:5:80 --shape-window 10

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
    if not isinstance(guard, dict) or not {"clip", "action"} <= set(guard) <= {
            "clip", "action", "shape"}:
        raise ValueError(f"a guard is {{'clip': float, 'action': int}} (and optionally "
                         f"'shape'), got {guard!r}")
    if guard.get("shape") is not None:
        shape = check_shape(guard["shape"], n_actions)
        rest = check_guard({"clip": guard["clip"], "action": guard["action"]}, n_actions)
        return {**rest, "shape": shape}
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


def check_shape(shape: Any, n_actions: int | Sequence[int] | None = None
                ) -> dict[str, Any]:
    """A guard's ``shape`` (module docstring): ``{"columns": [int, ...], "low": [float,
    ...], "high": [float, ...], "window": int >= 1, "action": int}`` (a MultiDiscrete
    policy: ``action`` one int per head), checked, as plain types. ``columns`` are
    observation column indices, distinct; ``low`` < ``high`` per column (``-inf`` /
    ``inf``: no bound on that side)."""
    keys = {"columns", "low", "high", "window", "action"}
    if not isinstance(shape, dict) or set(shape) != keys:
        raise ValueError(f"a guard's shape is a dict of {sorted(keys)}, got {shape!r}")
    columns, low, high = shape["columns"], shape["low"], shape["high"]
    if not isinstance(columns, (list, tuple)) or not columns or any(
            isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in columns) or \
            len(set(columns)) != len(columns):
        raise ValueError(f"guard shape columns must be distinct column indices >= 0, got "
                         f"{columns!r}")
    for name, bound in (("low", low), ("high", high)):
        if not isinstance(bound, (list, tuple)) or len(bound) != len(columns) or any(
                isinstance(b, bool) or not isinstance(b, (int, float)) or math.isnan(b)
                for b in bound):
            raise ValueError(f"guard shape {name} must be {len(columns)} numbers (one per "
                             f"column, not NaN), got {bound!r}")
    if any(not lo < hi for lo, hi in zip(low, high, strict=True)):
        raise ValueError(f"guard shape needs low < high per column, got {low!r}, {high!r}")
    window = shape["window"]
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"guard shape window must be an int >= 1, got {window!r}")
    action = check_guard({"clip": 1.0, "action": shape["action"]}, n_actions)["action"]
    return {"columns": [int(c) for c in columns], "low": [float(x) for x in low],
            "high": [float(x) for x in high], "window": int(window), "action": action}


#: a row's shape decision (:class:`GuardedPolicy`): still in its window; the policy acts
#: with the clip guard; the shape's action with the clip guard; the shape's action alone;
#: the policy acts alone
WINDOW, ACT_GUARDED, SHAPE_GUARDED, SHAPE_ALONE, ACT_ALONE = 0, 1, 2, 3, 4


class GuardedPolicy:
    """``policy`` (a :class:`~rltrader.training.ppo.policy.Policy` with Discrete or
    MultiDiscrete actions) whose rows with an observation beyond ``clip`` standard
    deviations of its normaliser play ``action`` (module docstring; MultiDiscrete: one
    action per head; ``clip`` a list: one per observation column). ``fired`` and ``rows``
    count the guarded rows and all rows acted for since construction."""

    def __init__(self, policy: Policy, *, clip: float | Sequence[float],
                 action: int | Sequence[int], shape: dict[str, Any] | None = None) -> None:
        if not policy.model.normalize_obs:
            raise ValueError("the guard reads the policy's observation normaliser; this "
                             "policy was trained without one (normalize_obs=False)")
        guard = check_guard({"clip": clip, "action": action, "shape": shape},
                            _actions_of(policy))
        self.policy, self.clip, self.action = policy, guard["clip"], guard["action"]
        #: the shape rule (module docstring), or None; ``modes``: each row's decision
        #: (:data:`WINDOW`, :data:`ACT_GUARDED`, :data:`SHAPE_GUARDED`,
        #: :data:`SHAPE_ALONE`, :data:`ACT_ALONE`)
        self.shape = guard.get("shape")
        self.modes = np.zeros(0, dtype=np.int8)
        self._seen = np.zeros(0, dtype=np.int64)
        self._sums = np.zeros((0, 0))
        self._fired_early = np.zeros(0, dtype=bool)
        #: agent-steps on which the policy's own action was played
        self.acted = 0
        self.spec, self.model = policy.spec, policy.model
        norm = policy.model.obs_norm
        self._shift = norm.shift.detach().numpy().astype(np.float64)
        self._scale = norm.scale.detach().numpy().astype(np.float64)
        if isinstance(self.clip, list) and len(self.clip) != self._scale.shape[-1]:
            raise ValueError(f"the guard has {len(self.clip)} clips, one per observation "
                             f"column; the policy reads {self._scale.shape[-1]} columns")
        self._clip = np.asarray(self.clip, dtype=np.float64)
        if self.shape is not None and max(self.shape["columns"]) >= self._scale.shape[-1]:
            raise ValueError(f"the guard's shape reads columns {self.shape['columns']}; the "
                             f"policy reads {self._scale.shape[-1]} columns")
        self.fired = 0
        self.rows = 0

    def unfamiliar(self, observations: np.ndarray) -> np.ndarray:
        """Rows with a column beyond ``clip`` standard deviations (its own, with a clip
        per column), ``(n,)`` bool."""
        z = (np.asarray(observations, dtype=np.float64) + self._shift) * self._scale
        return (~(np.abs(z) <= self._clip)).any(axis=1)      # NaN is unfamiliar too

    def reset(self, done: np.ndarray | None = None) -> None:
        """Reset the policy's state and the shape's rows (all; with ``done``, a bool per
        row, those rows): they start a new window."""
        self.policy.reset(done)
        if done is None or self._seen.size == 0:
            self._start(0)
            return
        rows = np.asarray(done, dtype=bool).reshape(-1)
        if rows.shape != self._seen.shape:
            self._start(0)
            return
        self._seen[rows] = 0
        self._sums[rows] = 0.0
        self._fired_early[rows] = False
        self.modes[rows] = WINDOW

    def _start(self, n: int) -> None:
        k = 0 if self.shape is None else len(self.shape["columns"])
        self.modes = np.full(n, WINDOW, dtype=np.int8)
        self._seen = np.zeros(n, dtype=np.int64)
        self._sums = np.zeros((n, k))
        self._fired_early = np.zeros(n, dtype=bool)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        actions = self.policy(observations)
        away = self.unfamiliar(observations)
        if self.shape is not None:
            own = self._shape_step(np.asarray(observations, dtype=np.float64), away)
            actions[~own] = self.shape["action"]  # type: ignore[index]
            away &= (self.modes != SHAPE_ALONE) & (self.modes != ACT_ALONE)
            self.acted += int((own & ~away).sum())
        else:
            self.acted += int((~away).sum())
        actions[away] = self.action
        self.fired += int(away.sum())
        self.rows += away.size
        return actions

    def _shape_step(self, obs: np.ndarray, away: np.ndarray) -> np.ndarray:
        """The rows that play the policy's own action this step (before the clip guard);
        takes this step's observations into the rows still in their window, and decides
        those whose window it completes (for the steps after this one)."""
        shape, n = self.shape, obs.shape[0]
        assert shape is not None
        if self._seen.shape != (n,):
            self._start(n)
        own = (self.modes == ACT_GUARDED) | (self.modes == ACT_ALONE)
        window = self.modes == WINDOW
        self._sums[window] += obs[window][:, shape["columns"]]
        self._fired_early[window] |= away[window]
        self._seen[window] += 1
        ready = window & (self._seen >= shape["window"])
        if ready.any():
            mean = self._sums[ready] / self._seen[ready, None]
            inside = ((mean >= np.asarray(shape["low"]))
                      & (mean <= np.asarray(shape["high"]))).all(axis=1)  # NaN: outside
            early = self._fired_early[ready]
            self.modes[ready] = np.where(inside, np.where(early, ACT_GUARDED, ACT_ALONE),
                                         np.where(early, SHAPE_GUARDED, SHAPE_ALONE))
        return own


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


def observation_columns(env_config: Any) -> list[str]:
    """The observation column names of a checkpoint's saved ``env_config`` (an
    ``EnvConfig``'s or a ``MixedConfig``'s base's depth and action mode)."""
    from rltrader.envs import observation_names

    if isinstance(env_config, dict) and isinstance(env_config.get("base"), dict):
        env_config = env_config["base"]
    if not isinstance(env_config, dict) or "depth" not in env_config:
        raise ValueError("the checkpoint does not say its env's depth: name columns by index")
    return list(observation_names(int(env_config["depth"]),
                                  str(env_config.get("action_mode") or "discrete"),
                                  int(env_config.get("max_orders", 4))))


def keep_action(env_config: Any, n_actions: int | Sequence[int],
                path: str | Path = "") -> int:
    """The shape's default action: a residual market maker's "keep" (the teacher's quotes,
    :data:`~rltrader.training.ppo.residual.CORRECTIONS` index 0). Other policies must name
    it."""
    if saved_action_mode(env_config) == "market_making" and isinstance(n_actions, int):
        from rltrader.training.ppo.residual import CORRECTIONS

        if n_actions == len(CORRECTIONS):
            return CORRECTIONS.index("keep")
    raise ValueError(f"{path}: no default shape action for this policy (only a residual "
                     "market maker keeps by default); give it (shape_action)")


def guard_checkpoint(path: str | Path, out: str | Path, *,
                     clip: float | Sequence[float] | None = None,
                     action: int | Sequence[int] | None = None,
                     clip_columns: Sequence[str] | None = None,
                     shape: dict[str, tuple[float, float]] | None = None,
                     shape_window: int = 10,
                     shape_action: int | Sequence[int] | None = None) -> Path:
    """A copy of the fast PPO checkpoint ``path`` at ``out`` that plays guarded:
    ``clip`` defaults to the policy's ``obs_clip``, ``action`` to the action mode's
    stand-aside (:func:`stand_aside_action`). ``clip_columns`` (names): only these
    columns are read, each with ``clip`` (the others' clips ``inf``). ``shape`` (opt-in):
    ``{column name: (low, high)}``, the box of the columns' means over each row's first
    ``shape_window`` steps inside which the policy acts (module docstring);
    ``shape_action`` defaults to a residual maker's "keep" (:func:`keep_action`)."""
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
    clip = policy.model.obs_clip if clip is None else clip
    if clip_columns is not None or shape is not None:
        names = observation_columns(state.get("env_config"))
        unknown = sorted(set(clip_columns or ()) - set(names)) + sorted(
            set(shape or {}) - set(names))
        if unknown:
            raise ValueError(f"{path}: no observation columns {unknown} (known: {names})")
    if clip_columns is not None:
        if isinstance(clip, (list, tuple)):
            raise ValueError("clip_columns takes one clip for the columns named")
        one = float(clip)  # type: ignore[arg-type]
        clip = [one if n in set(clip_columns) else math.inf for n in names]
    box = None
    if shape is not None:
        if shape_action is None:
            shape_action = keep_action(state.get("env_config"), n_actions, path)
        box = {"columns": [names.index(n) for n in shape],
               "low": [float(lo) for lo, _ in shape.values()],
               "high": [float(hi) for _, hi in shape.values()],
               "window": shape_window, "action": shape_action}
    # refuses what it cannot play
    guarded = GuardedPolicy(policy, clip=clip, action=action, shape=box)
    state["guard"] = {"clip": guarded.clip, "action": guarded.action}
    if guarded.shape is not None:
        state["guard"]["shape"] = guarded.shape
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


def _shape_arg(text: str) -> tuple[str, tuple[float, float]]:
    """``--shape``'s value: ``"volume:5:80"`` is ``("volume", (5.0, 80.0))``."""
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        return parts[0], (float(parts[1]), float(parts[2]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"COLUMN:LOW:HIGH, got {text!r}") from None


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
    parser.add_argument("--clip-columns", default=None,
                        help="comma-separated column names: only these are read, each "
                             "with CLIP (default: every column)")
    parser.add_argument("--shape", action="append", type=_shape_arg, default=None,
                        metavar="COLUMN:LOW:HIGH",
                        help="opt-in, repeatable: the policy acts only on rows whose mean "
                             "of COLUMN over their first --shape-window steps lies in "
                             "[LOW, HIGH] (inf, -inf: no bound); elsewhere the shape "
                             "action (a residual market maker: keep, the teacher's quotes)")
    parser.add_argument("--shape-window", type=int, default=10,
                        help="steps that decide the shape (default 10)")
    parser.add_argument("--shape-action", type=_action_arg, default=None,
                        help="the action played outside the shape (default: a residual "
                             "market maker's keep)")
    args = parser.parse_args(argv)
    shape = None if args.shape is None else dict(args.shape)
    if shape is not None and len(shape) != len(args.shape):
        parser.error("--shape: a column given twice")
    out = guard_checkpoint(
        args.checkpoint, args.out, clip=args.clip, action=args.action,
        clip_columns=None if args.clip_columns is None else args.clip_columns.split(","),
        shape=shape, shape_window=args.shape_window, shape_action=args.shape_action)
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = ["ACT_ALONE", "ACT_GUARDED", "SHAPE_ALONE", "SHAPE_GUARDED", "WINDOW",
           "GuardedPolicy", "check_guard", "check_shape", "guard_checkpoint", "keep_action",
           "observation_columns", "saved_action_mode", "stand_aside_action"]
