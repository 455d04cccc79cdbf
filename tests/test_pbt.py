"""Population-based training (rltrader.training.pbt): stacked members are independent
networks (each one's loss moves only its own weights, with its own learning rate), a
population learns a task, exploit copies a top member's weights, Adam state and
hyperparameters into a bottom one and explore perturbs them, the t-test selection copies
only a member whose mean is significantly higher (Welch's test checked at a hand-worked
boundary), random search keeps PBT's draws, a member saved and loaded acts identically,
the comparison names members on validation markets, misuse raises."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _tasks import MatchTask, mean_return  # noqa: E402

from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402
from rltrader.training.pbt import (  # noqa: E402
    PBTSettings,
    Population,
    StackedMLP,
    load_member,
    welch_greater,
)


def test_stacked_members_are_independent_mlps() -> None:
    g = torch.Generator().manual_seed(0)
    net = StackedMLP(3, [5, 8, 2], 1.0, g)
    x = torch.randn(3, 7, 5)
    out = net(x)
    for p in range(3):                       # member p is its own MLP
        h = torch.tanh(x[p] @ net.weights[0][p] + net.biases[0][p])
        torch.testing.assert_close(out[p], h @ net.weights[1][p] + net.biases[1][p])
    out[1].sum().backward()                  # member 1's loss: only member 1's gradients
    for w in list(net.weights) + list(net.biases):
        assert w.grad[[0, 2]].abs().sum() == 0 and w.grad[1].abs().sum() > 0


def test_each_member_steps_with_its_own_learning_rate() -> None:
    pop = Population(MatchTask(4, 2), PBTSettings(n_policies=4, n_steps=4, explore=False))
    pop.hyper["learning_rate"] = torch.tensor([0.0, 1e-3, 0.0, 1e-2])
    before = [p.detach().clone() for p in pop.params]
    pop.learn(4 * 8)
    moved = torch.stack([sum((p - b).abs().reshape(4, -1).sum(1)
                             for p, b in zip(pop.params, before, strict=True))])[0]
    assert moved[0] == 0 and moved[2] == 0 and moved[1] > 0 and moved[3] > moved[1]


def test_a_population_learns_a_task_a_random_policy_fails() -> None:
    pop = Population(MatchTask(64, 4), PBTSettings(
        n_policies=8, n_steps=8, learning_rate=(1e-3, 1e-2), ent_coef=(1e-5, 1e-4),
        ready_every=5), seed=0)
    pop.learn(60_000)
    assert pop.rounds                                    # exploit/explore happened
    assert mean_return(MatchTask(64, 4), pop.policy()) > 7.0    # 8 is perfect, random 2


def test_exploit_copies_a_top_member_and_explore_perturbs_it() -> None:
    pop = Population(MatchTask(16, 1), PBTSettings(n_policies=8, n_steps=2,
                                                   truncation=0.25), seed=1)
    pop.learn(16 * 2)
    pop.window = [[float(p)] for p in range(8)]           # member 7 the fittest
    for m, _ in pop.adam:
        m.copy_(torch.arange(8.0).view(8, *([1] * (m.dim() - 1))).expand_as(m))
    lr = pop.hyper["learning_rate"].clone()
    pop.exploit_explore()
    record = pop.rounds[-1]
    assert sorted(record["replaced"]) == [0, 1]
    assert set(record["sources"]) <= {6, 7}
    for bottom, source in zip(record["replaced"], record["sources"], strict=True):
        for p, (m, _) in zip(pop.params, pop.adam, strict=True):
            assert torch.equal(p[bottom], p[source])
            assert torch.all(m[bottom] == source)
        ratio = float(pop.hyper["learning_rate"][bottom] / lr[source])
        assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.25)
    untouched = [p for p in range(8) if p not in record["replaced"]]
    assert torch.equal(pop.hyper["learning_rate"][untouched], lr[untouched])
    assert pop.window == [[] for _ in range(8)]


def test_welch_test_at_a_hand_worked_boundary() -> None:
    # 1..10 + 5 against 1..10: t = 5 / sqrt(2 * 9.1667 / 10) = 3.693 with Welch-Satterthwaite
    # 18 degrees of freedom; t(18) quantiles: 0.999 -> 3.610, 0.9995 -> 3.922 (tables).
    # With 9 degrees of freedom (n - 1) the 0.999 quantile is 4.297 and the test would fail.
    b = np.arange(1.0, 11.0)
    assert welch_greater(b + 5, b, 0.001)
    assert not welch_greater(b + 5, b, 0.0005)
    assert not welch_greater(b, b + 5, 0.25)             # one-sided: a must be higher
    assert not welch_greater(b, b, 0.25)
    assert welch_greater([2.0, 2.0], [1.0, 1.0], 0.05)   # no spread: any gap is certain
    with pytest.raises(ValueError, match="2 values"):
        welch_greater([1.0], b, 0.05)


def test_ttest_selection_copies_only_a_significantly_better_member() -> None:
    pop = Population(MatchTask(16, 1), PBTSettings(
        n_policies=8, n_steps=2, selection="ttest", fitness="mean", min_episodes=8), seed=2)
    pop.learn(16 * 2)
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, 20).tolist()
    pop.window = [list(noise) for _ in range(8)]          # equal histories: no copy
    pop.window[5] = (np.array(noise) + 10.0).tolist()     # member 5: far better
    pop.window[6] = [100.0] * 3                           # too few episodes to compare
    lr = pop.hyper["learning_rate"].clone()
    before = [p.detach().clone() for p in pop.params]
    for _ in range(6):                                    # pairs are random: several rounds
        pop.window[5] = (np.array(noise) + 10.0).tolist()
        pop.exploit_explore()
    copies = [(t, s) for r in pop.rounds for t, s in zip(r["replaced"], r["sources"],
                                                          strict=True)]
    assert copies and all(s == 5 for _, s in copies)
    targets = {t for t, _ in copies}
    assert 5 not in targets and 6 not in targets
    for t in targets:
        assert pop.window[t] == []                           # cleared when it copied
        for p, b in zip(pop.params, before, strict=True):
            assert torch.equal(p[t], b[5])
        ratio = float(pop.hyper["learning_rate"][t] / lr[5])
        assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.25)
    assert pop.window[6] == [100.0] * 3
    assert torch.equal(pop.hyper["learning_rate"][[5, 6]], lr[[5, 6]])


def test_random_search_keeps_pbts_draws() -> None:
    settings = PBTSettings(n_policies=4, n_steps=4, ready_every=1)
    pbt = Population(MatchTask(8, 1), settings, seed=3)
    fixed = Population(MatchTask(8, 1), PBTSettings(n_policies=4, n_steps=4, ready_every=1,
                                                    explore=False, fixed_draws=True), seed=3)
    assert torch.equal(fixed.hyper["learning_rate"], pbt.hyper["learning_rate"])
    assert len(set(fixed.hyper["learning_rate"].tolist())) == 4
    drawn = {k: v.clone() for k, v in fixed.hyper.items()}
    fixed.learn(8 * 4 * 5)
    assert not fixed.rounds and all(torch.equal(fixed.hyper[k], drawn[k]) for k in drawn)


def test_fixed_hyperparameters_never_change() -> None:
    pop = Population(MatchTask(8, 1), PBTSettings(n_policies=4, n_steps=4, explore=False,
                                                  ready_every=1))
    pop.learn(8 * 4 * 5)
    assert not pop.rounds
    assert torch.allclose(pop.hyper["learning_rate"], torch.tensor((1e-4 * 3e-3) ** 0.5))


def test_a_saved_member_acts_like_the_live_one_on_the_market_env(tmp_path) -> None:
    env = BatchedMarketEnv(EnvConfig(action_mode="market_making", horizon=10), n_envs=4,
                           n_agents=2, seed=0)
    pop = Population(env, PBTSettings(n_policies=4, n_steps=8, ready_every=1), seed=0)
    pop.learn(4 * 2 * 8 * 3)
    path = pop.save(tmp_path / "population.pt")
    obs = env.observations.copy()
    for member in (None, 2):
        live, loaded = pop.policy(member), load_member(path, member)
        actions = loaded(obs)
        np.testing.assert_array_equal(actions, live(obs))
        assert actions.shape == (8, 3)
        assert all(env.single_action_space.contains(a) for a in actions)
    from rltrader.training.evaluate import CheckpointStrategy
    strategy = CheckpointStrategy(path)         # rltrader evaluate plays the fittest member
    np.testing.assert_array_equal(strategy.policy(obs), load_member(path)(obs))


def test_misuse_raises(tmp_path) -> None:
    for bad in ({"n_policies": 0}, {"learning_rate": (1e-3, 1e-4)}, {"truncation": 0.6},
                {"fitness": "pnl"}, {"hidden": ()}, {"selection": "tournament"},
                {"selection": "ttest"},                       # the t-test needs "mean"
                {"selection": "ttest", "fitness": "mean", "alpha": 0.0},
                {"selection": "ttest", "fitness": "mean", "min_episodes": 80},
                {"min_episodes": 0}):
        with pytest.raises(ValueError):
            PBTSettings(**bad)
    with pytest.raises(ValueError, match="split evenly"):
        Population(MatchTask(6, 1), PBTSettings(n_policies=4))
    with pytest.raises(ValueError, match="categorical"):
        Population(MatchTask(4, 1, action="box"), PBTSettings(n_policies=4))
    with pytest.raises(ValueError, match="member"):
        Population(MatchTask(4, 1), PBTSettings(n_policies=4)).save(tmp_path / "p.pt", best=4)


def test_the_comparison_pairs_both_populations_on_held_out_markets(tmp_path) -> None:
    from rltrader.training.pbt_compare import compare

    settings = PBTSettings(n_policies=2, n_steps=8, ready_every=1)
    result = compare(task="execution", market="resilient", out=tmp_path, repetitions=[0],
                     agent_steps=4 * 8 * 6, n_envs=4, n_agents=1, settings=settings,
                     eval_seeds=[100], horizon=12, progress=False)
    assert result["pbt_minus_fixed"]["n"] == 16          # 16 held-out markets, paired
    assert (tmp_path / "result.json").is_file() and (tmp_path / "pbt_vs_fixed.png").is_file()
    assert (tmp_path / "seed_0" / "pbt.pt").is_file()
    fixed = result["runs"]["fixed/0"]["learning_rate"]
    assert fixed[0] == fixed[1]                           # fixed: one setting for all
    assert result["runs"]["pbt/0"]["curve"] and result["runs"]["fixed/0"]["curve"]
    with pytest.raises(ValueError, match="training seeds"):
        compare(task="execution", market="resilient", out=tmp_path, repetitions=[100],
                agent_steps=8, n_envs=4, n_agents=1, settings=settings, eval_seeds=[100],
                horizon=12, progress=False)


def test_the_comparison_names_members_on_validation_markets(tmp_path) -> None:
    from rltrader.training.pbt_compare import compare

    settings = PBTSettings(n_policies=2, n_steps=8, ready_every=1, selection="ttest",
                           fitness="mean", min_episodes=2)
    result = compare(task="execution", market="resilient", out=tmp_path, repetitions=[0],
                     agent_steps=4 * 8 * 6, n_envs=4, n_agents=1, settings=settings,
                     eval_seeds=[100], horizon=12, arms=("pbt", "fixed", "random"),
                     validation_seeds=[50], top_k=2, warm_start="twap", warm_start_steps=6,
                     progress=False)
    assert result["pbt_minus_fixed"]["n"] == 16 and result["pbt_minus_random"]["n"] == 16
    assert result["runs"]["pbt/0"]["warm_start"]["agent_steps"] == 6 * 4
    for arm in ("pbt", "fixed", "random"):
        run = result["runs"][f"{arm}/0"]
        scores = {int(k): v for k, v in run["validation"].items()}
        assert len(scores) == 2 and run["member"] == max(scores, key=scores.get)
        state = torch.load(tmp_path / "seed_0" / f"{arm}.pt", weights_only=True)
        assert state["best"] == run["member"]       # rltrader evaluate plays that member
    random = result["runs"]["random/0"]
    assert random["rounds"] == 0 and random["learning_rate"][0] != random["learning_rate"][1]
    for bad in ({"arms": ("fixed", "random")}, {"arms": ("pbt", "grid")},
                {"validation_seeds": [100]}, {"validation_seeds": [0]}, {"top_k": 0}):
        kwargs = {"task": "execution", "market": "resilient", "out": tmp_path,
                  "repetitions": [0], "agent_steps": 8, "n_envs": 4, "n_agents": 1,
                  "settings": settings, "eval_seeds": [100], "horizon": 12,
                  "progress": False, **bad}
        with pytest.raises(ValueError):
            compare(**kwargs)


def test_a_warm_start_makes_every_member_the_teachers_clone() -> None:
    from rltrader.training.exploits import FixedSpreadMaker

    config = EnvConfig(action_mode="market_making", horizon=50)
    teacher = {"offset": 1, "size": 2.0, "max_inventory": 0.2}   # its limit binds often
    env = BatchedMarketEnv(config, n_envs=16, n_agents=2, seed=3)
    pop = Population(env, PBTSettings(n_policies=4, n_steps=8, ready_every=1), seed=3)
    stats = pop.warm_start(FixedSpreadMaker(**teacher), steps=150, epochs=20,
                           minibatch_size=256)
    assert stats["matched"] > 0.95 and pop.agent_steps == 0
    fresh = BatchedMarketEnv(config, n_envs=8, n_agents=2, seed=99)   # unseen markets
    maker = FixedSpreadMaker(**teacher)
    maker.begin(fresh)
    agree = []
    for _ in range(60):
        wanted = maker.actions(np.asarray(fresh.episode_step), 50, fresh, [0, 1])
        acts = [pop.policy(p)(fresh.observations) for p in range(4)]
        for other in acts[1:]:
            np.testing.assert_array_equal(other, acts[0])   # one clone in every member
        agree.append((acts[0].reshape(wanted.shape) == wanted).all(-1).ravel())
        fresh.step(wanted.reshape(16, -1))
    assert np.concatenate(agree).mean() > 0.9
    rows = pop.learn(32 * 8 * 2)                 # PPO continues from the teacher's state
    assert np.isfinite(rows[0]["policy_loss"]) and pop.agent_steps == 32 * 8 * 2
    with pytest.raises(ValueError, match="before"):
        pop.warm_start(FixedSpreadMaker(**teacher), steps=5)


def test_summarize_pools_repetitions_from_several_results(tmp_path, capsys) -> None:
    import json

    from rltrader.training.evaluation import Summary
    from rltrader.training.pbt_compare import main, summarize

    def result(reps: dict[int, tuple[float, float]]) -> dict:
        runs = {f"pbt/{r}": {} for r in reps}
        runs.update({f"evaluation/{r}": {"pbt_minus_fixed": {"mean": f},
                                         "pbt_minus_random": {"mean": g}}
                     for r, (f, g) in reps.items()})
        return {"runs": runs}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result({0: (1.0, -2.0), 1: (3.0, 0.5)})))
    b.write_text(json.dumps(result({2: (-0.5, 1.5)})))
    pooled = summarize([a, b])
    assert pooled["repetitions"] == [0, 1, 2]
    want = Summary.of(np.array([1.0, 3.0, -0.5])).as_dict()
    assert pooled["pbt_minus_fixed"] == {**want, "ahead": 2}
    assert pooled["pbt_minus_random"]["mean"] == pytest.approx(0.0)
    assert main(["--summarize", str(a), str(b)]) == 0          # trains nothing
    assert "PBT - fixed, over 3 repetitions: +1.167" in capsys.readouterr().out
    with pytest.raises(ValueError, match="repetition 0 is in more than one"):
        summarize([a, a])
    with pytest.raises(SystemExit):
        main(["--summarize", str(tmp_path / "missing.json")])
