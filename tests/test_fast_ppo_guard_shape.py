"""The guard's opt-in shape rule (rltrader.training.ppo.guard, ``shape``): each row's first
``window`` observations decide whether the policy acts (the means of the named columns in
``[low, high]``) or the shape's action plays (a residual maker's "keep": the teacher), and
whether the clip guard watches the rest (it fired in the window). Checked step by step
against a per-row reference written out plainly; on a residual maker in ``rltrader
evaluate``: outside the box it is the teacher on every market to the last digit, guarded
from the first step it holds exactly, inside the box it is the policy after the window;
saved, loaded and written by the command line alike; bad shapes refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _tasks import small_checkpoint  # noqa: E402

from rltrader.envs import BatchedMarketEnv, observation_names  # noqa: E402
from rltrader.training.evaluate import TASKS, evaluate  # noqa: E402
from rltrader.training.fast_ppo import FastPPOSettings, load_policy, train  # noqa: E402
from rltrader.training.ppo.guard import (  # noqa: E402
    ACT_ALONE,
    ACT_GUARDED,
    SHAPE_ALONE,
    SHAPE_GUARDED,
    WINDOW,
    GuardedPolicy,
    check_guard,
    guard_checkpoint,
    main,
)
from rltrader.training.ppo.residual import CORRECTIONS, STAND_ASIDE  # noqa: E402

CONFIG = TASKS["directional"].replace(market="thin", horizon=20)
MM = TASKS["market_making"].replace(market="thin", horizon=30)
QUIET = {"progress": False, "threads": 1}
NAMES = observation_names(CONFIG.depth, CONFIG.action_mode)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> object:
    return small_checkpoint(CONFIG, tmp_path_factory.mktemp("shape"))


def _reference(plain_actions, z_away, obs, columns, low, high, window, shape_action,
               stand_aside):
    """The shape rule, row by row and step by step, from the module docstring: lists of
    per-step actions for every row."""
    n = obs[0].shape[0]
    out = []
    seen, sums, early, mode = [0] * n, [[0.0] * len(columns) for _ in range(n)], \
        [False] * n, ["window"] * n
    for t, o in enumerate(obs):
        row_actions = []
        for r in range(n):
            away = bool(z_away[t][r])
            if mode[r] == "window":
                a = stand_aside if away else shape_action
                seen[r] += 1
                early[r] = early[r] or away
                for j, c in enumerate(columns):
                    sums[r][j] += float(o[r, c])
                if seen[r] == window:
                    means = [s / window for s in sums[r]]
                    inside = all(lo <= m <= hi for m, lo, hi in
                                 zip(means, low, high, strict=True))
                    mode[r] = ("act" if inside else "shape", early[r])
            else:
                kind, watch = mode[r]
                a = int(plain_actions[t][r]) if kind == "act" else shape_action
                if watch and away:
                    a = stand_aside
            row_actions.append(a)
        out.append(row_actions)
    return out


def test_the_shape_rule_matches_a_per_row_reference_step_by_step(checkpoint,
                                                                 tmp_path) -> None:
    state = torch.load(checkpoint, weights_only=True)
    mean = state["obs_normalizer"]["mean"].numpy()
    sd = np.sqrt(state["obs_normalizer"]["var"].numpy() + 1e-8)
    n_actions = BatchedMarketEnv(CONFIG, n_envs=1, n_agents=1).single_action_space.n
    volume, spread = NAMES.index("volume"), NAMES.index("spread")
    window, steps, n = 4, 12, 8
    env = BatchedMarketEnv(CONFIG, n_envs=n // 2, n_agents=2, seed=5)
    rng = np.random.default_rng(0)
    obs = []
    for t in range(steps):
        o = env.observations.astype(np.float64).copy()
        # rows 0-3: window mean of volume 2 (inside [1, 3]); rows 4-7: 5 (outside)
        o[:, volume] = np.where(np.arange(n) < 4, 2.0, 5.0) + 0.5 * (-1) ** t
        # the clip guard (spread only, 10 sd) fires in the window on rows 1 and 5, after
        # it on rows 2 and 6 (and on 0 and 4 never)
        far = mean[spread] + 20.0 * sd[spread]
        if t == 1:
            o[[1, 5], spread] = far
        if t in (6, 9):
            o[[2, 6], spread] = far
        obs.append(o.astype(np.float32))
        env.step(rng.integers(0, n_actions, n).astype(np.int64))
    stand, keep = n_actions - 1, 2
    path = guard_checkpoint(checkpoint, tmp_path / "shaped.pt", clip=10.0,
                            clip_columns=["spread"], shape={"volume": (1.0, 3.0)},
                            shape_window=window, shape_action=keep)
    guarded, plain = load_policy(path), load_policy(checkpoint)
    assert isinstance(guarded, GuardedPolicy)
    assert guarded.shape == {"columns": [volume], "low": [1.0], "high": [3.0],
                             "window": window, "action": keep}
    plain_actions = [plain(o) for o in obs]
    z_away = [(np.abs((o.astype(np.float64) - mean) / sd)[:, spread] > 10.0) for o in obs]
    assert z_away[1][[1, 5]].all() and not z_away[1][[0, 2, 3, 4, 6, 7]].any()
    expected = _reference(plain_actions, z_away, obs, [volume], [1.0], [3.0], window,
                          keep, stand)
    got = [guarded(o).tolist() for o in obs]
    assert got == expected
    # the policy's own actions are played somewhere, and differ from keep there
    assert any(expected[t][0] != keep for t in range(window, steps))
    assert guarded.modes.tolist() == [ACT_ALONE, ACT_GUARDED, ACT_ALONE, ACT_ALONE,
                                      SHAPE_ALONE, SHAPE_GUARDED, SHAPE_ALONE, SHAPE_ALONE]
    # after the window the clip guard is off on rows 2 and 6 (no fire in their window)
    assert expected[6][2] == plain_actions[6][2] and expected[6][6] == keep
    assert guarded.acted == sum(
        1 for t in range(window, steps) for r in (0, 1, 2, 3)
        if expected[t][r] == plain_actions[t][r] and not (r == 1 and z_away[t][r]))
    # reset(done) restarts the windows of those rows only; reset() of all
    done = np.zeros(n, dtype=bool)
    done[[0, 7]] = True
    guarded.reset(done)
    assert guarded.modes.tolist() == [WINDOW, ACT_GUARDED, ACT_ALONE, ACT_ALONE,
                                      SHAPE_ALONE, SHAPE_GUARDED, SHAPE_ALONE, WINDOW]
    assert guarded(obs[0])[[0, 7]].tolist() == [keep, keep]
    guarded.reset()
    assert (guarded.modes == WINDOW).all()
    guarded(obs[0][:3])                                # other rows: a fresh start
    assert guarded.modes.shape == (3,)


@pytest.fixture(scope="module")
def residual(tmp_path_factory) -> object:
    """A residual maker that always stands aside (the teacher nowhere: holding)."""
    folder = tmp_path_factory.mktemp("residual")
    train(MM, n_envs=4, n_agents=1, total_agent_steps=256, seed=0, out_dir=folder / "run",
          settings=FastPPOSettings(n_steps=32, residual="fixed_spread",
                                   warm_start_steps=40, **QUIET))
    state = torch.load(folder / "run" / "checkpoint.pt", weights_only=True)
    state["model"]["nets.0.policy_head.weight"].zero_()
    state["model"]["nets.0.policy_head.bias"].copy_(torch.tensor(
        [5.0 * (c == STAND_ASIDE) for c in range(len(CORRECTIONS))]))
    torch.save(state, folder / "no_quotes.pt")
    return folder / "no_quotes.pt"


def test_a_shape_guarded_residual_maker_is_its_teacher_outside_the_box(residual,
                                                                      tmp_path) -> None:
    never = {"clip": 1e12, "clip_columns": ["spread"]}          # the clip guard never fires
    outside = guard_checkpoint(residual, tmp_path / "outside.pt", **never,
                               shape={"volume": (1e6, 1e7)}, shape_window=3)
    inside = guard_checkpoint(residual, tmp_path / "inside.pt", **never,
                              shape={"volume": (-math.inf, math.inf)}, shape_window=3)
    aside = guard_checkpoint(residual, tmp_path / "aside.pt", clip=1e-9,
                             shape={"volume": (1e6, 1e7)}, shape_window=3)
    saved = torch.load(outside, weights_only=True)["guard"]
    assert saved["action"] == STAND_ASIDE and saved["shape"]["action"] == 0   # keep
    out = evaluate(["baseline:fixed_spread", "baseline:hold", str(residual), str(outside),
                    str(inside), str(aside)], task="market_making", markets=["thin"],
                   seeds=[11, 12], n_envs=4, n_agents=1, episodes=2, horizon=30)
    rows = out["markets"]["thin"]["rows"]
    teacher = rows["fixed_spread"]["per_market"]
    assert any(x != 0 for x in teacher)
    assert rows["no_quotes"]["per_market"] == rows["hold"]["per_market"] != teacher
    assert rows["outside"]["per_market"] == teacher           # outside the box: the teacher
    assert rows["aside"]["per_market"] == rows["hold"]["per_market"]   # fired: stands aside
    assert rows["inside"]["per_market"] != teacher            # inside: the policy acts
    # inside, after its window, the guarded maker stands aside as the policy does
    policy = load_policy(inside)
    env = BatchedMarketEnv(MM, n_envs=4, n_agents=1, seed=11)
    for t in range(5):
        corrections = policy(env.observations)
        expected = 0 if t < 3 else STAND_ASIDE
        assert (corrections == expected).all(), t
        env.step(np.tile(np.array([0, 0, 0], np.int64), (4, 1, 1)))
    assert (policy.modes == ACT_ALONE).all() and policy.acted == 2 * 4


def test_the_command_line_writes_the_same_guard_and_bad_shapes_are_refused(
        residual, tmp_path) -> None:
    read = "bid_price_0,ask_price_0,spread,volatility"
    main([str(residual), str(tmp_path / "cli.pt"), "--clip", "10", "--clip-columns", read,
          "--shape", "volume:5:80", "--shape-window", "10"])
    guard_checkpoint(residual, tmp_path / "api.pt", clip=10.0, clip_columns=read.split(","),
                     shape={"volume": (5.0, 80.0)}, shape_window=10)
    cli = torch.load(tmp_path / "cli.pt", weights_only=True)["guard"]
    assert cli == torch.load(tmp_path / "api.pt", weights_only=True)["guard"]
    names = observation_names(MM.depth, MM.action_mode)
    assert cli["shape"] == {"columns": [names.index("volume")], "low": [5.0],
                            "high": [80.0], "window": 10, "action": 0}
    assert [n for n, c in zip(names, cli["clip"], strict=True) if c == 10.0] == \
        read.split(",")
    assert all(c == math.inf for n, c in zip(names, cli["clip"], strict=True)
               if n not in read.split(","))
    good = {"columns": [3], "low": [0.0], "high": [1.0], "window": 2, "action": 0}
    assert check_guard({"clip": 3.0, "action": 1, "shape": good}, 6)["shape"] == good
    assert "shape" not in check_guard({"clip": 3.0, "action": 1, "shape": None}, 6)
    for bad in ({**good, "low": [1.0]}, {**good, "window": 0}, {**good, "columns": []},
                {**good, "columns": [3, 3], "low": [0, 0], "high": [1, 1]},
                {**good, "low": [math.nan]}, {**good, "action": 6},
                {**good, "extra": 1}, {**good, "low": [0.0, 1.0]}):
        with pytest.raises(ValueError, match="guard"):
            check_guard({"clip": 3.0, "action": 1, "shape": bad}, 6)
    with pytest.raises(ValueError, match="no observation columns"):
        guard_checkpoint(residual, tmp_path / "x.pt", shape={"volumes": (0.0, 1.0)})
    state = torch.load(residual, weights_only=True)
    state["guard"] = {"clip": 10.0, "action": 3, "shape": {**good, "columns": [99]}}
    torch.save(state, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match="shape reads columns"):
        load_policy(tmp_path / "wide.pt")
