"""Review findings on the residual market maker (rltrader.training.ppo.residual, 64de387):
inputs that it accepts silently although they make it do something other than it says.

- ``FastPPO`` given ``FastPPOSettings(residual=...)`` and a plain market-making env trains
  the MultiDiscrete quotes directly, and its checkpoint names a teacher it never had:
  ``rltrader evaluate`` then runs that teacher beside it (and fails on the shapes).
- "bid_back" / "ask_back" move a quote to the next index of ``quote_offsets``; the docs
  say "one quote offset further back", which holds only for ascending offsets, and
  ``EnvConfig`` does not require them ascending.

Both failed on 64de387; the trainer and the wrapper now refuse them."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.training.evaluate import TASKS  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings  # noqa: E402
from rltrader.training.ppo.residual import CORRECTIONS, ResidualEnv, correct  # noqa: E402
from rltrader.training.strategies import FlowMaker  # noqa: E402

CONFIG = TASKS["market_making"].replace(market="thin", horizon=30)
QUIET = {"progress": False, "threads": 1}


def test_the_trainer_does_not_train_quotes_under_residual_settings() -> None:
    """Either it refuses the plain env, or what it trains are corrections."""
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1, seed=0)
    try:
        trainer = FastPPO(env, FastPPOSettings(n_steps=4, residual="best_flow_maker",
                                               **QUIET), seed=0)
    except ValueError as error:
        assert "residual" in str(error)
        return
    assert trainer.spec.kind == "discrete" and list(trainer.spec.nvec) == [len(CORRECTIONS)], (
        f"residual settings, yet the policy's actions are {trainer.spec.kind} "
        f"{list(trainer.spec.nvec)}: the quotes themselves")


@pytest.mark.parametrize("correction, side", [("bid_back", 0), ("ask_back", 1)])
def test_moving_a_quote_back_never_moves_it_closer_to_the_touch(correction: str,
                                                                side: int) -> None:
    """Offsets given in descending order: either the wrapper refuses them, or "back"
    still means a larger quote offset (the teacher quotes offset 2 on both sides)."""
    config = CONFIG.replace(quote_offsets=(4, 2, 1, 0))
    teacher = FlowMaker(threshold=None, offset=2, size=4.0, max_inventory=1.0)
    try:
        env = ResidualEnv(BatchedMarketEnv(config, n_envs=1, n_agents=1, seed=0), teacher)
    except ValueError:
        return                                  # refused: fine
    offsets = config.quote_offsets
    quoted = env.teacher_step().copy()
    c = np.array([CORRECTIONS.index(correction)])
    moved = correct(quoted, c, len(offsets))
    before, after = int(quoted[0, side]), int(moved[0, side])
    assert offsets[before] == 2 and after < len(offsets)
    assert offsets[after] >= offsets[before], (
        f"{correction} moved the quote from offset {offsets[before]} to {offsets[after]}")
