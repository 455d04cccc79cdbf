"""The fast trainer's KL-adaptive step (FastPPOSettings.target_kl, kl_adaptive_lr): an update
stops before the step of the first minibatch whose approx_kl passes 1.5 x target_kl and
reports the steps it took; without a target every minibatch runs, unchanged; the adaptive
learning rate moves by 1.5 within its bounds; the config file takes the settings."""

from __future__ import annotations

import csv
import math

import pytest

torch = pytest.importorskip("torch")

from _tasks import MatchTask  # noqa: E402

from rltrader.envs import EnvConfig  # noqa: E402
from rltrader.training.experiment import load  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, train  # noqa: E402

QUIET = {"progress": False, "threads": 1}
# 8 steps x 16 rows = 128 agent-steps a rollout: 4 minibatches of 32 per epoch
SMALL = {"n_steps": 8, "minibatch_size": 32, "n_epochs": 3, **QUIET}


def _counting_steps(trainer: FastPPO) -> list[int]:
    """Count the optimizer's steps (the gradient steps the update really took)."""
    count = [0]
    step = trainer.optimizer.step

    def counted(*args, **kwargs):
        count[0] += 1
        return step(*args, **kwargs)

    trainer.optimizer.step = counted
    return count


def _weights(trainer: FastPPO) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_huge_step_stops_the_update_after_its_first_minibatch() -> None:
    trainer = FastPPO(MatchTask(4, 4), FastPPOSettings(learning_rate=1.0, target_kl=0.01,
                                                       **SMALL), seed=0)
    steps = _counting_steps(trainer)
    row = trainer.learn(128)[0]
    # the first minibatch meets the rollout's own policy (approx_kl 0) and steps; Adam's
    # first step of size 1.0 moves the policy far, so the second one stops the update
    assert steps[0] == 1
    assert row["minibatches"] == 1 and row["epochs"] == pytest.approx(0.25)
    # the statistics hold the two minibatches computed: (0 + kl) / 2 > 1.5 x 0.01 / 2
    assert row["approx_kl"] > 0.0075


def test_without_a_target_every_minibatch_runs_and_is_reported() -> None:
    trainer = FastPPO(MatchTask(4, 4), FastPPOSettings(learning_rate=1.0, **SMALL), seed=0)
    steps = _counting_steps(trainer)
    rows = trainer.learn(2 * 128)
    assert steps[0] == 2 * 12
    assert [(r["minibatches"], r["epochs"]) for r in rows] == [(12, 3.0), (12, 3.0)]


def test_a_target_that_is_never_reached_changes_nothing() -> None:
    """target_kl None and a target no update reaches give bit-identical weights, statistics
    and learning rates: the check reads the statistics and takes nothing else."""
    runs = []
    for target in (None, 1e30):
        trainer = FastPPO(MatchTask(4, 4), FastPPOSettings(learning_rate=3e-3,
                                                           target_kl=target, **SMALL),
                          seed=2)
        rows = trainer.learn(3 * 128)
        runs.append((_weights(trainer), [{k: v for k, v in r.items()
                                          if not k.endswith("_s")} for r in rows]))
    (w0, rows0), (w1, rows1) = runs
    assert rows0 == rows1
    for name in w0:
        assert torch.equal(w0[name], w1[name]), name


def test_the_update_stops_at_the_first_minibatch_over_the_limit() -> None:
    """Against a replay without a target: the stop falls on the first minibatch whose own
    approx_kl (measured before its step) exceeds 1.5 x target_kl, and the weights are
    those of the steps before it."""
    settings = dict(learning_rate=0.03, **SMALL)
    reference = FastPPO(MatchTask(4, 4), FastPPOSettings(**settings), seed=1)
    reference.start()
    reference.collect()
    kls, snapshots = [], []
    loss = reference._loss

    def recording(g, data, columns):
        total, count, stats = loss(g, data, columns)
        kls.append(float(stats[3]) / float(stats[5]))
        snapshots.append(_weights(reference))       # the weights before this step
        return total, count, stats

    reference._loss = recording
    reference.update()
    assert len(kls) == 12
    target = sorted(kls[1:])[len(kls) // 2] / 1.5    # some minibatch after the first
    stop = next(k for k, kl in enumerate(kls) if kl > 1.5 * target)
    assert 0 < stop < 12

    trainer = FastPPO(MatchTask(4, 4), FastPPOSettings(target_kl=target, **settings),
                      seed=1)
    trainer.start()
    trainer.collect()
    losses = trainer.update()
    assert losses["minibatches"] == stop
    for name, value in snapshots[stop].items():
        assert torch.equal(trainer.model.state_dict()[name], value), name


def test_the_adaptive_learning_rate_moves_by_one_and_a_half_within_its_bounds() -> None:
    trainer = FastPPO(MatchTask(2, 2), FastPPOSettings(
        learning_rate=1e-3, target_kl=0.01, kl_adaptive_lr=True, kl_lr_bounds=(5e-4, 2e-3),
        **QUIET))

    def lr() -> float:
        return trainer.optimizer.param_groups[0]["lr"]

    trainer.adapt_learning_rate(0.021)              # > 2 x target: slower
    assert lr() == pytest.approx(1e-3 / 1.5)
    trainer.adapt_learning_rate(0.01)               # within [target / 2, 2 x target]: kept
    assert lr() == pytest.approx(1e-3 / 1.5)
    trainer.adapt_learning_rate(0.5)                # clamped at the lower bound
    assert lr() == pytest.approx(5e-4)
    for expected in (7.5e-4, 1.125e-3, 1.6875e-3, 2e-3, 2e-3):
        trainer.adapt_learning_rate(0.004)          # < target / 2: faster, up to the bound
        assert lr() == pytest.approx(expected)
    trainer.adapt_learning_rate(math.nan)           # no episode statistics: kept
    assert lr() == pytest.approx(2e-3)


def test_the_adaptive_learning_rate_follows_the_measured_kl_in_training() -> None:
    trainer = FastPPO(MatchTask(4, 4), FastPPOSettings(
        learning_rate=1e-4, target_kl=1e6, kl_adaptive_lr=True, kl_lr_bounds=(1e-5, 3e-4),
        **SMALL), seed=0)
    rows = trainer.learn(4 * 128)
    # a KL far below its target: x1.5 after every update, logged with the next one
    assert [r["learning_rate"] for r in rows] == pytest.approx([1e-4, 1.5e-4, 2.25e-4,
                                                                3e-4])
    fixed = FastPPO(MatchTask(4, 4), FastPPOSettings(learning_rate=1e-4, target_kl=1e6,
                                                     **SMALL), seed=0)
    assert {r["learning_rate"] for r in fixed.learn(2 * 128)} == {1e-4}


def test_train_logs_the_steps_taken_in_curve_csv(tmp_path) -> None:
    results = train(EnvConfig(action_mode="discrete", horizon=5), n_envs=2, n_agents=2,
                    total_agent_steps=2 * 8 * 4, seed=0, out_dir=tmp_path,
                    settings=FastPPOSettings(n_steps=8, minibatch_size=8, n_epochs=2,
                                             learning_rate=1.0, target_kl=0.01, **QUIET))
    with open(tmp_path / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == results["updates"] == 2
    # 32 agent-steps a rollout, 4 minibatches a pass: a step of 1.0 stops after one
    assert [(r["minibatches"], r["epochs"]) for r in rows] == [("1", "0.25")] * 2


@pytest.mark.parametrize("bad", [
    {"target_kl": 0.0}, {"target_kl": -0.01}, {"target_kl": float("nan")},
    {"target_kl": float("inf")}, {"target_kl": "0.01"}, {"target_kl": True},
    {"kl_adaptive_lr": True},
    {"kl_adaptive_lr": 1, "target_kl": 0.01},
    {"kl_adaptive_lr": True, "target_kl": 0.01, "anneal_lr": True},
    {"kl_adaptive_lr": True, "target_kl": 0.01, "learning_rate": 0.5},
    {"kl_lr_bounds": (1e-3, 1e-4)}, {"kl_lr_bounds": (0.0, 1e-3)},
    {"kl_lr_bounds": [1e-5, 1e-3]}, {"kl_lr_bounds": (1e-5,)},
])
def test_bad_kl_settings_raise(bad) -> None:
    with pytest.raises(ValueError, match="FastPPOSettings"):
        FastPPOSettings(**bad)


def test_the_config_file_takes_the_kl_settings(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('task = "directional"\n[trainer]\ntarget_kl = 0.02\n'
                    'kl_adaptive_lr = true\nlearning_rate = 0.0003\n'
                    'kl_lr_bounds = [1e-5, 1e-3]\n')
    settings = load(path).settings
    assert settings.target_kl == 0.02 and settings.kl_adaptive_lr
    assert settings.kl_lr_bounds == (1e-5, 1e-3)
    path.write_text('task = "directional"\n[trainer]\ntarget_kl = -1\n')
    with pytest.raises(ValueError, match="target_kl"):
        load(path)
