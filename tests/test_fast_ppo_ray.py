"""The fast trainer over Ray actors (one central learner): the same run as over the
same shards stepped in this process, and as over ShardedMarketEnv's processes."""

from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ray")

import _ray_cluster  # noqa: E402

from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402
from rltrader.envs.ray_shards import RayMarketEnv  # noqa: E402
from rltrader.training.experiment import load  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, train  # noqa: E402

#: the module's local Ray instance (two CPUs)
ray_cluster = _ray_cluster.ray_cluster
CONFIG = EnvConfig(action_mode="market_making", horizon=6, warmup_steps=20)
#: one torch thread: the same seed gives bit-identical updates
SETTINGS = FastPPOSettings(n_steps=8, n_epochs=2, minibatch_size=32, progress=False,
                           threads=1)


def timing(column: str) -> bool:
    """A column of curve.csv that is a timing (``wall_s``, ``agent_steps_per_s`` ...)."""
    return column.endswith("_s")


class ShardsInProcess:
    """The shards of a ``RayMarketEnv`` (``n_workers`` BatchedMarketEnvs seeded from
    ``SeedSequence(seed).spawn(n_workers)``), stepped one after the other in this
    process: the reference the actors must reproduce."""

    def __init__(self, config: EnvConfig, n_envs: int, n_agents: int, n_workers: int) -> None:
        self.config, self.n_agents, self.n_workers = config, n_agents, n_workers
        self.sizes = [len(p) for p in np.array_split(np.arange(n_envs), n_workers)]
        self.num_agents_total = n_envs * n_agents
        self._build(0)
        first = self.shards[0]
        self.single_observation_space = first.single_observation_space
        self.single_action_space = first.single_action_space

    def _build(self, seed: int) -> None:
        seeds = np.random.SeedSequence(seed).spawn(self.n_workers)
        self.shards = [BatchedMarketEnv(self.config, n_envs=size, n_agents=self.n_agents,
                                        seed=int(s.generate_state(1)[0]))
                       for size, s in zip(self.sizes, seeds, strict=True)]
        self._gather()

    def _gather(self) -> None:
        for name in ("observations", "rewards", "terminated", "truncated",
                     "final_observations"):
            setattr(self, name, np.concatenate([getattr(e, name) for e in self.shards]))

    def reset(self, seed: int | None = None) -> np.ndarray:
        assert seed is not None
        self._build(seed)
        return self.observations

    def step(self, actions: np.ndarray):
        first = 0
        for env, size in zip(self.shards, self.sizes, strict=True):
            rows = size * self.n_agents
            env.step(actions[first: first + rows])
            first += rows
        self._gather()
        return self.observations, self.rewards, self.terminated, self.truncated


def learned(env, updates: int = 3) -> tuple[list[dict], dict[str, torch.Tensor]]:
    trainer = FastPPO(env, SETTINGS, seed=11)
    rows = trainer.learn(updates * SETTINGS.n_steps * env.num_agents_total)
    return ([{k: v for k, v in row.items() if not timing(k)} for row in rows],
            trainer.model.state_dict())


def assert_same_run(a, b) -> None:
    rows_a, weights_a = a
    rows_b, weights_b = b
    assert rows_a == rows_b            # losses, returns, entropy ...: bit-identical floats
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


def test_training_over_ray_actors_is_training_over_the_same_shards_in_process(
        ray_cluster) -> None:
    reference = learned(ShardsInProcess(CONFIG, n_envs=3, n_agents=2, n_workers=2))
    assert sum(row["episodes"] for row in reference[0]) > 0       # episodes ended
    with RayMarketEnv(CONFIG, n_envs=3, n_agents=2, n_workers=2) as env:
        assert_same_run(learned(env), reference)


def test_train_with_the_ray_backend_equals_the_sharded_backend(ray_cluster, tmp_path) -> None:
    common = dict(n_envs=2, n_agents=2, total_agent_steps=3 * 8 * 4, seed=3,
                  settings=SETTINGS, n_workers=2)
    ray_run = train(CONFIG, out_dir=tmp_path / "ray", backend="ray", **common)
    sharded = train(CONFIG, out_dir=tmp_path / "sharded", backend="sharded", **common)
    assert ray_run["backend"] == "ray" and ray_run["n_workers"] == 2
    assert ray_run["agent_steps"] == sharded["agent_steps"] == 96
    curves = []
    for name in ("ray", "sharded"):
        with open(tmp_path / name / "curve.csv") as f:
            curves.append([{k: v for k, v in row.items() if not timing(k)}
                           for row in csv.DictReader(f)])
    assert curves[0] == curves[1] and len(curves[0]) == 3
    weights = [torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["model"]
               for name in ("ray", "sharded")]
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    # the actors are gone: the two CPUs are free again
    assert ray_cluster.available_resources().get("CPU", 0) == 2


def test_train_rejects_a_bad_backend(tmp_path) -> None:
    with pytest.raises(ValueError, match="backend"):
        train(CONFIG, n_envs=2, n_agents=1, total_agent_steps=8, out_dir=tmp_path,
              settings=SETTINGS, backend="dask")
    with pytest.raises(ValueError, match="warm_start"):
        train(CONFIG, n_envs=2, n_agents=1, total_agent_steps=8, out_dir=tmp_path,
              settings=FastPPOSettings(warm_start="best_fixed_spread", progress=False),
              backend="ray", n_workers=2)


def test_the_experiment_file_takes_a_backend(tmp_path) -> None:
    path = tmp_path / "run.toml"
    text = ('task = "market_making"\nseeds = [0]\nn_envs = 4\nn_agents = 2\n'
            'agent_steps = 64\nbackend = "ray"\nn_workers = 2\n'
            '[evaluate]\nseeds = [100]\n')
    path.write_text(text)
    experiment = load(path)
    assert (experiment.backend, experiment.n_workers) == ("ray", 2)
    for bad, match in (('backend = "ray"', 'backend = "dask"'),
                       ("n_workers = 2", "n_workers = 5"),
                       ('backend = "ray"', 'backend = "batched"')):
        path.write_text(text.replace(bad, match))
        with pytest.raises(ValueError, match="backend|n_workers"):
            load(path)


def test_population_training_over_ray_actors_equals_the_sharded_backend(
        ray_cluster, tmp_path) -> None:
    """``rltrader pbt --backend ray``: the populations learn from markets stepped in Ray
    actors, bit-identically to the same shards in processes; the actors are gone after."""
    from rltrader.training.pbt import PBTSettings
    from rltrader.training.pbt_compare import compare

    settings = PBTSettings(n_policies=2, n_steps=8, ready_every=1)
    common = dict(task="execution", market="resilient", repetitions=[0],
                  agent_steps=4 * 8 * 3, n_envs=4, n_agents=1, settings=settings,
                  eval_seeds=[100], horizon=12, n_workers=2, progress=False)
    ray_run = compare(out=tmp_path / "ray", backend="ray", **common)
    sharded = compare(out=tmp_path / "sharded", backend="sharded", **common)
    batched = compare(out=tmp_path / "batched", **{**common, "n_workers": 1})
    assert (ray_run["backend"], ray_run["n_workers"]) == ("ray", 2)
    # the shards' markets are not the batched env's: equal runs mean the backend was used
    assert batched["runs"]["pbt/0"]["curve"] != sharded["runs"]["pbt/0"]["curve"]
    for arm in ("pbt", "fixed"):
        a, b = ray_run["runs"][f"{arm}/0"], sharded["runs"][f"{arm}/0"]
        assert a["curve"] and a["curve"] == b["curve"]
        for key in ("member", "learning_rate", "ent_coef"):
            assert a[key] == b[key], (arm, key)
        saved = [torch.load(tmp_path / name / "seed_0" / f"{arm}.pt", weights_only=True)
                 for name in ("ray", "sharded")]
        for part in ("actor", "critic"):
            for key, value in saved[0][part].items():
                assert torch.equal(value, saved[1][part][key]), (arm, part, key)
    assert ray_run["pbt_minus_fixed"] == sharded["pbt_minus_fixed"]
    assert ray_cluster.available_resources().get("CPU", 0) == 2
    with pytest.raises(ValueError, match="warm_start"):
        compare(out=tmp_path / "warm", backend="ray", warm_start="twap", **common)
    with pytest.raises(ValueError, match="backend"):
        compare(out=tmp_path / "dask", backend="dask", **common)
