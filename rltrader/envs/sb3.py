"""Stable-Baselines3 ``VecEnv`` over the batched env: every agent is one sub-env, so one
policy is shared by all ``n_envs * n_agents`` agents (parameter sharing).

Per step the adapter copies the observation, reward and done arrays (SB3 keeps references
to what it is given) and builds the list of ``num_envs`` info dicts SB3 expects; an ended
agent's dict holds ``terminal_observation`` and ``TimeLimit.truncated``. The batched env
resets ended markets in the same step, which is what SB3's ``VecEnv`` contract asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from rltrader.core.checks import is_int
from rltrader.envs.batched import BatchedMarketEnv
from rltrader.envs.groups import GroupLearner

#: What a batched env offers SB3VecEnv (BatchedMarketEnv's protocol; ServedVectorEnv has it).
_PROTOCOL = ("num_agents_total", "single_observation_space", "single_action_space", "reset",
             "step", "final_observations")


class SB3VecEnv(VecEnv):
    """``VecEnv`` with ``num_envs = batched_env.num_agents_total``.

    Parameters
    ----------
    batched_env : BatchedMarketEnv or GroupLearner
        The environment stepped (or a learning group of agent groups, the others
        scripted); ``seed(s)`` (SB3's call) rebuilds it from ``s`` at the next ``reset``.
    """

    render_mode = None

    def __init__(self, batched_env: BatchedMarketEnv | GroupLearner) -> None:
        if not isinstance(batched_env, (BatchedMarketEnv, GroupLearner)) and not all(
                hasattr(batched_env, name) for name in _PROTOCOL):
            raise TypeError(f"batched_env must be a BatchedMarketEnv, a GroupLearner or an "
                            f"env with {', '.join(_PROTOCOL)}; got "
                            f"{type(batched_env).__name__}")
        self.batched_env = batched_env
        super().__init__(batched_env.num_agents_total, batched_env.single_observation_space,
                         batched_env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        obs = self.batched_env.reset(seed=seed)
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called before step_async()")
        env = self.batched_env
        obs, rewards, terminated, truncated = env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones).tolist():
            infos[i]["terminal_observation"] = env.final_observations[i].copy()
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs.copy(), rewards.copy(), dones, infos

    def close(self) -> None:
        """Nothing to release: the env lives in this process."""

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the batched env (the same for every sub-env)."""
        if attr_name == "render_mode":
            return [None] * len(self._indices(indices))
        value = getattr(self.batched_env, attr_name)
        return [value] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError("the sub-envs share one batched env; set attributes on it")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a batched-env method once; its result is repeated per sub-env."""
        result = getattr(self.batched_env, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        chosen = [indices] if isinstance(indices, (int, np.integer)) else list(indices)
        for i in chosen:
            if not is_int(i):
                raise TypeError(f"sub-env indices must be ints, got {i!r}")
            if not -self.num_envs <= i < self.num_envs:
                raise IndexError(f"sub-env index {i} out of range (num_envs={self.num_envs})")
        return chosen
