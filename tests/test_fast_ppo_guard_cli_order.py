"""Review finding on the guard's command (rltrader.training.ppo.guard, 64de387):
``--action`` became ``nargs="+"`` for MultiDiscrete policies, so ``--action N CHECKPOINT
OUT`` (the option before the positionals, which parsed on 0984ad0) now reads the paths
as actions and exits 2. Failed on 64de387; a multi-head action is now comma-separated."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.training.evaluate import TASKS  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings  # noqa: E402
from rltrader.training.ppo import guard  # noqa: E402


def test_an_action_option_before_the_paths_still_parses(tmp_path) -> None:
    config = TASKS["directional"].replace(market="thin", horizon=20)
    env = BatchedMarketEnv(config, n_envs=2, n_agents=1, seed=0)
    path = FastPPO(env, FastPPOSettings(n_steps=4, progress=False, threads=1),
                   seed=0).save(tmp_path / "d.pt")
    assert guard.main(["--action", "0", str(path), str(tmp_path / "g.pt")]) == 0
    assert torch.load(tmp_path / "g.pt", weights_only=True)["guard"]["action"] == 0


def test_a_multi_head_action_is_given_comma_separated_and_bad_text_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert guard._action_arg("3") == 3
    assert guard._action_arg("4,4,0") == [4, 4, 0]
    with pytest.raises(SystemExit) as exit_info:
        guard.main(["a.pt", "b.pt", "--action", "4;4"])
    assert exit_info.value.code == 2
    assert "comma-separated ints" in capsys.readouterr().err
