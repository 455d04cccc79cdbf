"""The portfolio manager's out-of-distribution guard (``--manager-guard``): the guard of
rltrader.training.ppo.guard with one clip per observation column (opt-in), the manager's
stand-aside action (every target 0). A guarded manager plays exactly the stand-aside
targets on rows with a read column beyond its clip (checked against a numpy reference from
the checkpoint's saved mean and variance) and exactly the unguarded manager's actions on
the others; columns not read never fire; the guard saved in a checkpoint plays the same;
a guard that always fires makes the manager's row the flat baseline's, value for value;
bad specs are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rltrader.training.fast_ppo import load_policy  # noqa: E402
from rltrader.training.portfolio.experiment import main, task, train_manager  # noqa: E402
from rltrader.training.portfolio.manager import (  # noqa: E402
    FEATURES,
    PortfolioEnv,
    guard_clips,
    guard_manager,
    stand_aside,
)
from rltrader.training.ppo.guard import GuardedPolicy, check_guard, guard_checkpoint  # noqa: E402
from rltrader.training.ppo.policy import Policy  # noqa: E402

CONFIG = task(symbols=2, horizon=100, decision_steps=20, drift_mean=0.1, drift_sd=0.2,
              cost_feature=True, sharpe_prior=0.1, sharpe_guard=True)
FEATS = FEATURES + ("cost",)
COST = [FEATS.index("cost") * 2, FEATS.index("cost") * 2 + 1]      # its two columns
VOL = FEATS.index("vol") * 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pm_guard") / "manager.pt"
    train_manager(CONFIG, "aggressive", n_envs=4, decisions=400, seed=0, out=out)
    return out


def _observations(n: int = 48) -> np.ndarray:
    env = PortfolioEnv(CONFIG, n_envs=n, seed=11)
    obs = env.reset(11)
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs = env.step(rng.integers(0, len(CONFIG.levels), (n, 2)))[0]
    return obs.copy()


def _statistics(path: Path) -> tuple[np.ndarray, np.ndarray]:
    state = torch.load(path, weights_only=True)
    mean = state["obs_normalizer"]["mean"].numpy().astype(np.float64)
    sd = np.sqrt(state["obs_normalizer"]["var"].numpy().astype(np.float64) + 1e-8)
    return mean, sd


def test_the_spec_gives_one_clip_per_column() -> None:
    n = len(FEATS) * 2 + 3
    assert guard_clips("10", FEATS, 2) == [10.0] * n
    only = guard_clips("cost=2.5", FEATS, 2)
    assert [j for j, c in enumerate(only) if math.isfinite(c)] == COST
    assert [only[j] for j in COST] == [2.5, 2.5]
    mixed = guard_clips("8,cost=2.5,time_left=4", FEATS, 2)
    assert mixed[COST[0]] == mixed[COST[1]] == 2.5 and mixed[-1] == 4.0
    assert mixed[VOL] == mixed[-3] == 8.0 and len(mixed) == n
    # the columns are the env's own: feature k of symbol s is column k x symbols + s
    env = PortfolioEnv(CONFIG, n_envs=1, seed=0)
    assert env.column("cost") == slice(COST[0], COST[1] + 1)
    assert stand_aside(CONFIG.levels, 2) == [4, 4] and CONFIG.levels[4] == 0.0
    for bad in ("", "0", "-1", "nan", "inf", "cost=x", "volume=2", "cost=2,3",
                "cost=2,cost=3", "cost=-2"):
        with pytest.raises(ValueError):
            guard_clips(bad, FEATS, 2)
    with pytest.raises(ValueError, match="no 0"):
        stand_aside((-1.0, 1.0), 2)


def test_a_guarded_manager_stands_aside_exactly_beyond_its_clips(checkpoint) -> None:
    plain = load_policy(checkpoint)
    assert type(plain) is Policy
    mean, sd = _statistics(checkpoint)
    obs = _observations()
    obs[0::4, COST[0]] = mean[COST[0]] - 3.0 * sd[COST[0]]     # beyond 2.5: fires
    obs[1::4, COST[1]] = mean[COST[1]] + 2.0 * sd[COST[1]]     # within: does not
    obs[2::4, VOL] = mean[VOL] + 50.0 * sd[VOL]                # not read: does not
    guarded = guard_manager(plain, CONFIG, "cost=2.5")
    assert isinstance(guarded, GuardedPolicy) and guarded.action == [4, 4]
    clips = np.asarray(guard_clips("cost=2.5", FEATS, 2))
    away = (np.abs((obs - mean) / sd) > clips).any(axis=1)
    assert away[0::4].all() and not away[1::4].any() and not away[2::4].any()
    expected = np.where(away[:, None], [4, 4], plain(obs))
    got = guarded(obs)
    np.testing.assert_array_equal(got, expected)
    assert (guarded.fired, guarded.rows) == (int(away.sum()), len(obs))
    # the rows it guards set every target to 0; the others the manager's own
    env = PortfolioEnv(CONFIG, n_envs=len(obs), seed=0)
    np.testing.assert_array_equal(env.targets(got)[away], 0.0)
    np.testing.assert_array_equal(env.targets(got)[~away], env.targets(plain(obs))[~away])
    # with one clip for every column, the far vol fires too
    every = guard_manager(plain, CONFIG, "10")
    far = (np.abs((obs - mean) / sd) > 10.0).any(axis=1)
    assert far[2::4].all()
    np.testing.assert_array_equal(every(obs), np.where(far[:, None], [4, 4], plain(obs)))
    # a guarded manager given another guard plays the new one only
    again = guard_manager(every, CONFIG, "cost=2.5")
    assert again.policy is plain
    np.testing.assert_array_equal(again(obs), expected)


def test_the_guard_saved_in_a_checkpoint_plays_the_same(checkpoint, tmp_path) -> None:
    clips = guard_clips("cost=2.5", FEATS, 2)
    path = guard_checkpoint(checkpoint, tmp_path / "guarded.pt", clip=clips, action=[4, 4])
    saved = torch.load(path, weights_only=True)["guard"]
    assert saved == {"clip": clips, "action": [4, 4]}
    loaded = load_policy(path)
    assert isinstance(loaded, GuardedPolicy) and loaded.clip == clips
    mean, sd = _statistics(checkpoint)
    obs = _observations()
    obs[::3, COST[1]] = mean[COST[1]] - 4.0 * sd[COST[1]]
    reference = guard_manager(load_policy(checkpoint), CONFIG, "cost=2.5")
    np.testing.assert_array_equal(loaded(obs), reference(obs))
    assert loaded.fired == reference.fired >= len(obs) // 3
    # the per-column form of check_guard
    assert check_guard({"clip": [1, math.inf], "action": 0}) == {"clip": [1.0, math.inf],
                                                                "action": 0}
    for bad in ([], [math.inf, math.inf], [1.0, -1.0], [1.0, math.nan], [1.0, True]):
        with pytest.raises(ValueError):
            check_guard({"clip": bad, "action": 0})
    with pytest.raises(ValueError, match="one per observation column"):
        GuardedPolicy(load_policy(checkpoint), clip=[1.0, 2.0], action=[4, 4])


def test_the_command_guards_every_manager_row(checkpoint, tmp_path) -> None:
    """A guard that always fires (a clip of 1e-9 on every column) makes the manager's row
    the flat baseline's exactly (the scripted traders hold nothing); the counts say it
    fired on every decision; a guard on `cost` alone at 50 s.d. never fires, and the row
    is the unguarded manager's."""
    common = ["--symbols", "2", "--horizon", "100", "--decision-steps", "20",
              "--drift-mean", "0.1", "--drift-sd", "0.2", "--cost-feature",
              "--sharpe-prior", "0.1", "--sharpe-guard", "--trader", "aggressive",
              "--validation-seeds", "500", "--eval-seeds", "1000", "--eval-envs", "4",
              "--episodes", "2", "--trader-eval-steps", "20", "--eval-presets", "thin",
              "--managers", str(checkpoint)]
    runs = {}
    for name, extra in (("always", ["--manager-guard", "1e-9"]),
                        ("never", ["--manager-guard", "cost=50"]), ("none", [])):
        assert main(["--out", str(tmp_path / name), *common, *extra]) == 0
        runs[name] = json.loads((tmp_path / name / "report.json").read_text())
    row = "manager:manager"
    always = runs["always"]["evaluation"]["thin"]
    assert runs["always"]["task"]["manager_guard"] == "1e-9"
    assert always["guard"][row] == {"fired": 4 * 2 * 5, "rows": 4 * 2 * 5}
    for metric in ("sharpe", "total_return", "traded"):
        assert always["policies"][row][metric] == always["policies"]["flat"][metric]
    assert always["policies"][row]["traded"]["mean"] == 0.0
    never, none = runs["never"]["evaluation"]["thin"], runs["none"]["evaluation"]["thin"]
    assert never["guard"][row]["fired"] == 0 and none["guard"] == {}
    assert never["policies"][row] == none["policies"][row]
    assert "stood aside on 40 of 40" in (tmp_path / "always" / "report.md").read_text()
    for bad in ("volume=2", "0", "cost=2,cost=3"):
        assert main(["--out", str(tmp_path / "bad"), *common, "--manager-guard", bad]) == 2
