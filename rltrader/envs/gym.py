"""Gymnasium environments: one learner among background traders and other agents
(:class:`MarketEnv`, registered as ``rltrader/Market-v1``), and a vector env whose
sub-envs are all the agents of a batched env (:class:`MarketVectorEnv`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rltrader.core.checks import is_int
from rltrader.envs.batched import BatchedMarketEnv, write_actions
from rltrader.envs.config import EnvConfig

#: Others' policy: their observations ``(n_others, obs_dim)`` -> actions.
OthersPolicy = Callable[[np.ndarray], np.ndarray]


def depth_image(obs: np.ndarray, depth: int, height: int = 96, bar: int = 8) -> np.ndarray:
    """A depth chart of one observation: ``depth`` bid levels (green, best level nearest
    the centre) and ``depth`` ask levels (red), bar heights proportional to the levels'
    sizes. RGB ``uint8`` of shape ``(height, 2 * depth * bar, 3)``."""
    qty = np.concatenate([obs[depth: 2 * depth][::-1], obs[3 * depth: 4 * depth]])
    top = float(qty.max())
    rows = np.rint(height * qty / top).astype(int) if top > 0 else np.zeros(len(qty), int)
    image = np.full((height, len(qty) * bar, 3), 255, dtype=np.uint8)
    colours = np.array([(40, 160, 60)] * depth + [(200, 50, 50)] * depth, dtype=np.uint8)
    for j, (n, colour) in enumerate(zip(rows.tolist(), colours, strict=True)):
        image[height - n:, j * bar: (j + 1) * bar - 1] = colour
    return image


class MarketEnv(gym.Env):
    """One learning agent (row 0) in a simulated market with ``n_others`` other agents
    that act at random (``others=None``) or by a frozen policy, and the background
    traders. The spaces, observation table and rewards are the batched env's
    (docs/envs.md). The episode ends (``terminated``) after ``config.horizon`` steps;
    the step returns that episode's final observation and ``reset()`` starts the next
    episode in the same running market (``reset(seed=s)`` rebuilds it from ``s``).
    An action must be a whole number in the action space (an int, or an integer-valued
    array for ``market_making``): others raise ``TypeError``/``ValueError``, as in
    :meth:`BatchedMarketEnv.step`.

    Parameters
    ----------
    config : EnvConfig, optional
    n_others : int
        Other agents in the market.
    others : callable, optional
        Frozen policy of the others; default: uniform random actions drawn from
        ``self.np_random``.
    render_mode : {None, "rgb_array"}
        ``"rgb_array"``: :meth:`render` returns the learner's view of the book as a depth
        chart (:func:`depth_image`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: EnvConfig | None = None, n_others: int = 0,
                 others: OthersPolicy | None = None, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of "
                             f"{self.metadata['render_modes']}, got {render_mode!r}")
        if not is_int(n_others) or n_others < 0:
            raise ValueError(f"n_others must be an int >= 0, got {n_others!r}")
        n_others = int(n_others)
        self.render_mode = render_mode
        self.batched = BatchedMarketEnv(config, n_envs=1, n_agents=1 + n_others, seed=0)
        if self.batched.n_symbols > 1:
            raise ValueError("MarketEnv is one symbol: for EnvConfig.symbols > 1 use "
                             "BatchedMarketEnv (one row per agent and symbol)")
        self.observation_space = self.batched.single_observation_space
        self.action_space = self.batched.single_action_space
        self.others = others
        self.n_others = n_others
        # the batched env's own action buffer: step writes (and validates) the actions
        # there once, then steps without a second check
        self._actions = self.batched.actions
        self._obs = self.batched.observations[0].copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs = self.batched.reset(seed=seed)
        self._obs = obs[0].copy()      # a fresh array per call: the caller may keep it
        return self._obs, {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        # the batched env's checks, on a batch of one: no silent truncation of 1.7 or "2"
        write_actions(np.expand_dims(np.asarray(action), 0), self._actions[:1],
                      self.batched.action_high, 1, 1)
        if self.n_others:
            rest = self.batched.observations[1:]
            high = self.batched.action_high
            others = (self.others(rest) if self.others is not None else
                      self.np_random.uniform(high[0], high[1], size=self._actions[1:].shape)
                      if self._actions.dtype.kind == "f" else
                      self.np_random.integers(0, high, size=self._actions[1:].shape))
            write_actions(others, self._actions[1:], self.batched.action_high, 1,
                          self.n_others)
        obs, rewards, terminated, truncated = self.batched._step_written()
        done = bool(terminated[0] or truncated[0])
        # one copy: a fresh array per step, valid after the next one (render reads it too)
        self._obs = (self.batched.final_observations if done else obs)[0].copy()
        return self._obs, float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The depth chart of the last observation (``render_mode="rgb_array"``), else
        None."""
        if self.render_mode is None:
            return None
        return depth_image(self._obs, self.batched.config.depth)


class MarketVectorEnv(VectorEnv):
    """Gymnasium ``VectorEnv`` whose ``num_envs`` sub-envs are the ``n_envs x n_agents``
    agents of a :class:`BatchedMarketEnv` (one shared market per group of ``n_agents``).

    Autoreset is ``AutoresetMode.SAME_STEP``: an ended agent's step returns the first
    observation of its next episode, with the final one in ``infos["final_obs"]`` (object
    array, mask ``infos["_final_obs"]``). Arrays returned are copies.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, batched_env: BatchedMarketEnv) -> None:
        self.batched = batched_env
        self.num_envs = batched_env.num_agents_total
        self.single_observation_space = batched_env.single_observation_space
        self.single_action_space = batched_env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, (list, tuple)):
            if not seed:
                raise ValueError("seed must be an int, None or a non-empty list (its first "
                                 "value seeds the one market of every sub-env), got []")
            seed = seed[0]      # one market seed for all sub-envs
        if seed is not None:
            self._np_random_seed = seed
        return self.batched.reset(seed=seed).copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        obs, rewards, terminated, truncated = self.batched.step(actions)
        done = terminated | truncated
        infos: dict[str, Any] = {}
        if done.any():
            final = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done).tolist():
                final[i] = self.batched.final_observations[i].copy()
            infos = {"final_obs": final, "_final_obs": done.copy()}
        return obs.copy(), rewards.copy(), terminated.copy(), truncated.copy(), infos
