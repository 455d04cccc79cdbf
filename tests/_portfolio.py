"""The portfolio command without its training: ``record_training(monkeypatch)`` replaces
``train_manager`` by a flat manager and returns the list each call's training configs are
appended to, for tests of what the command trains on."""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrader.training.portfolio import experiment
from rltrader.training.portfolio.manager import LEVELS, PortfolioConfig

#: the action level of a zero target weight
ZERO = LEVELS.index(0.0)


def record_training(monkeypatch: Any) -> list[list[PortfolioConfig]]:
    seen: list[list[PortfolioConfig]] = []

    def fake_train(configs: list[PortfolioConfig], executor: object, **kw: object
                   ) -> tuple[object, list[dict[str, float]]]:
        seen.append(list(configs))
        return (lambda obs: np.full((len(obs), 2), ZERO)), [
            {"agent_steps": 1, "mean_episode_return": 0.0, "mean_reward": 0.0}]

    monkeypatch.setattr(experiment, "train_manager", fake_train)
    return seen
