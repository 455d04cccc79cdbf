"""A residual market maker: PPO on corrections to a baseline maker's quotes, so that the
baseline is the policy's zero (docs/training.md, "Round 10, market making").

A market maker cloned from a scripted maker loses to it: a clone that misses 0.2 % of the
maker's actions (the inventory withdrawals) already loses 1.6 ticks a lot an episode, and
PPO from the clone drifts below it (round 5). Here the policy does not choose the quotes.
Every step the teacher (a market-making baseline of :mod:`rltrader.training.strategies`,
by its ``rltrader evaluate`` name) quotes for every row, and the policy picks one of
:data:`CORRECTIONS`, which changes the teacher's action:

=====  =====================================================
index  the agent quotes
=====  =====================================================
0      the teacher's quotes (keep)
1      the teacher's quotes without the bid
2      the teacher's quotes without the ask
3      no quote on either side (stand aside)
4      the teacher's bid one quote offset further back
5      the teacher's ask one quote offset further back
=====  =====================================================

A side the teacher does not quote stays unquoted; one already at the farthest offset stays
there. The policy that always plays 0 is the teacher, action for action, and a policy that
starts there (the warm start clones "always 0", :class:`Keep`) is the teacher with a
little exploration.

- :class:`ResidualEnv` wraps a market-making env (a :class:`~rltrader.envs.BatchedMarketEnv`
  or a :class:`~rltrader.envs.mixed.MixedMarketEnv`, one copy of the teacher per lane)
  with the batched env's protocol and a ``Discrete(len(CORRECTIONS))`` action space, for
  :class:`~rltrader.training.ppo.trainer.FastPPO`.
- ``FastPPOSettings(residual="best_flow_maker")`` trains on it (:func:`rltrader.training.
  fast_ppo.train`); the checkpoint's settings name the teacher, and ``rltrader evaluate``
  (``CheckpointStrategy``) runs the teacher beside the policy on the evaluated markets.
  Without ``residual`` the trainer is unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from rltrader.training.exploits import Strategy

#: the corrections, by index (module docstring)
CORRECTIONS = ("keep", "no_bid", "no_ask", "no_quotes", "bid_back", "ask_back")
#: the correction that leaves the agent out of the book (the guard's stand-aside)
STAND_ASIDE = CORRECTIONS.index("no_quotes")


def correct(teacher: np.ndarray, corrections: np.ndarray, n_offsets: int) -> np.ndarray:
    """The teacher's market-making actions ``(..., 3)`` (``[bid index, ask index, size
    index]``, ``n_offsets`` = no quote) changed by ``corrections`` ``(...)``
    (:data:`CORRECTIONS`); a new array."""
    teacher = np.asarray(teacher, dtype=np.int64)
    c = np.asarray(corrections, dtype=np.int64)
    if teacher.shape[-1:] != (3,) or teacher.shape[:-1] != c.shape:
        raise ValueError(f"need teacher actions (..., 3) and corrections (...) of the same "
                         f"rows, got {teacher.shape} and {c.shape}")
    if c.size and (c.min() < 0 or c.max() >= len(CORRECTIONS)):
        raise ValueError(f"corrections must lie in [0, {len(CORRECTIONS)}), got "
                         f"{c.min()} .. {c.max()}")
    out = teacher.copy()
    bid, ask = out[..., 0], out[..., 1]
    no_bid = (c == 1) | (c == 3)
    no_ask = (c == 2) | (c == 3)
    bid[no_bid] = n_offsets
    ask[no_ask] = n_offsets
    back_bid = (c == 4) & (bid < n_offsets - 1)
    back_ask = (c == 5) & (ask < n_offsets - 1)
    bid[back_bid] += 1
    ask[back_ask] += 1
    return out


def teacher_of(name: str) -> Strategy:
    """The market-making baseline ``name`` (``rltrader evaluate``'s ``baseline:NAME``)."""
    from rltrader.training.evaluate import candidate

    return candidate(f"baseline:{name}")


class ResidualEnv:
    """``env`` (market making) whose actions are :data:`CORRECTIONS` to ``teacher``'s
    quotes (module docstring). Everything else (observations, rewards, episode ends,
    lanes) is ``env``'s."""

    def __init__(self, env: Any, teacher: str | Strategy) -> None:
        lanes = getattr(env, "lanes", None)
        self._lanes = [env] if lanes is None else list(lanes)
        modes = {lane.config.action_mode for lane in self._lanes}
        if modes != {"market_making"}:
            raise ValueError(f"a residual maker corrects market-making quotes; this env's "
                             f"action mode is {sorted(modes)}")
        self.env = env
        self.teacher_name = teacher if isinstance(teacher, str) else teacher.name
        made = teacher_of(teacher) if isinstance(teacher, str) else teacher
        self._rows = [slice(0, int(env.num_agents_total))] if lanes is None else list(env.rows)
        self.teachers = [made] if lanes is None else [copy.deepcopy(made) for _ in lanes]
        self._begun: list[Any] = [None] * len(self.teachers)
        quoted = {tuple(lane.config.quote_offsets) for lane in self._lanes}
        if len(quoted) != 1:
            raise ValueError(f"a residual maker's lanes must quote the same offsets, got "
                             f"{sorted(quoted)}")
        (offsets,) = quoted
        if any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)):
            raise ValueError(f"a residual maker moves a quote one offset back to the next of "
                             f"quote_offsets, which must be strictly ascending, got {offsets}")
        self.n_offsets = len(offsets)
        self.single_action_space = spaces.Discrete(len(CORRECTIONS))
        #: the teacher's actions of the last step, ``(num_agents_total, 3)``
        self.teacher_actions = np.zeros((int(env.num_agents_total), 3), dtype=np.int64)

    def __getattr__(self, name: str) -> Any:
        if name == "env":                      # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    def teacher_step(self) -> np.ndarray:
        """The teacher's actions for the current observations, ``(num_agents_total, 3)``."""
        lanes = getattr(self.env, "lanes", None)
        current = [self.env] if lanes is None else list(lanes)
        agents = list(range(int(self.env.n_agents)))
        for k, (teacher, lane, rows) in enumerate(zip(self.teachers, current, self._rows,
                                                      strict=True)):
            if self._begun[k] is not lane:     # a lane object begun once
                teacher.begin(lane)
                self._begun[k] = lane
            chosen = teacher.actions(np.asarray(lane.episode_step, dtype=np.int64),
                                     lane.config.horizon, lane, agents)
            self.teacher_actions[rows] = np.asarray(chosen, dtype=np.int64).reshape(-1, 3)
        return self.teacher_actions

    def step(self, corrections: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c = np.asarray(corrections, dtype=np.int64).reshape(-1)
        if c.shape != (self.teacher_actions.shape[0],):
            raise ValueError(f"corrections must be one per row ({self.teacher_actions.shape[0]}),"
                             f" got shape {np.shape(corrections)}")
        actions = correct(self.teacher_step(), c, self.n_offsets)
        return self.env.step(actions)


class Keep(Strategy):
    """Always correction 0 (the teacher's quotes): the warm start of a residual policy."""

    name = "keep"

    def actions(self, step: np.ndarray, horizon: int, env: Any,
                agents: Sequence[int]) -> np.ndarray:
        return np.zeros((len(step), len(agents)), dtype=np.int64)


class ResidualStrategy(Strategy):
    """A residual checkpoint's policy with its teacher, for ``rltrader evaluate``: the
    teacher quotes on the evaluated env, the policy's corrections change its quotes.

    A tuned teacher (``best_flow_maker``) is tuned when it begins, on the evaluated
    market's configuration; with ``tune_agents`` (the checkpoint's agents a market) it is
    tuned with the agents a market of training, so that an evaluation with other
    ``--n-agents`` runs the teacher the policy learned to correct, not one tuned for
    another crowd (the tune's choice depends on it)."""

    def __init__(self, policy: Any, teacher: str, name: str = "residual",
                 tune_agents: int | None = None) -> None:
        self.policy, self.teacher, self.name = policy, teacher_of(teacher), name
        if tune_agents is not None and hasattr(self.teacher, "tune_agents"):
            self.teacher.tune_agents = int(tune_agents)

    def begin(self, env: Any) -> None:
        super().begin(env)
        self.teacher.begin(env)
        if hasattr(self.policy, "reset"):
            self.policy.reset()

    def actions(self, step: np.ndarray, horizon: int, env: Any,
                agents: Sequence[int]) -> np.ndarray:
        rows = env.observations.reshape(env.n_envs, env.n_agents, -1)[:, list(agents)]
        corrections = np.asarray(self.policy(rows.reshape(-1, rows.shape[-1])))
        teacher = np.asarray(self.teacher.actions(step, horizon, env, agents))
        return correct(teacher, corrections.reshape(teacher.shape[:-1]),
                       len(env.config.quote_offsets))


__all__ = ["CORRECTIONS", "STAND_ASIDE", "Keep", "ResidualEnv", "ResidualStrategy",
           "correct", "teacher_of"]
