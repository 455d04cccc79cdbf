"""The mirror-symmetric residual market maker (rltrader.training.ppo.mirror): the mirror
of an observation row, column by column against a by-name reference, is an involution on
real observations; a mirrored policy's action probabilities and values are symmetric
(p(a | o) = p(mirror a | mirror o), V(o) = V(mirror o)) and its normaliser commutes with
the mirror; a mirrored checkpoint saves, loads and evaluates; without ``mirror`` the
architecture is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.envs.config import observation_names  # noqa: E402
from rltrader.envs.mixed import Lane, MixedConfig, MixedMarketEnv  # noqa: E402
from rltrader.training.evaluate import TASKS, evaluate  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, load_policy, train  # noqa: E402
from rltrader.training.ppo.mirror import (  # noqa: E402
    CORRECTION_MIRROR,
    column_mirror,
    mirror_rows,
    observation_mirror,
)
from rltrader.training.ppo.residual import CORRECTIONS, ResidualEnv  # noqa: E402

CONFIG = TASKS["market_making"].replace(market="thin", horizon=30)
QUIET = {"progress": False, "threads": 1}
MIRROR = {"residual": "best_flow_maker", "mirror": True, **QUIET}


def _by_name(row: dict[str, float], depth: int) -> dict[str, float]:
    """The mirrored row, written out name by name (the module's table)."""
    out = dict(row)
    for k in range(depth):
        out[f"bid_price_{k}"] = -row[f"ask_price_{k}"]
        out[f"ask_price_{k}"] = -row[f"bid_price_{k}"]
        out[f"bid_qty_{k}"] = row[f"ask_qty_{k}"]
        out[f"ask_qty_{k}"] = row[f"bid_qty_{k}"]
    for name in ("return_1", "return_lag", "flow_imbalance", "last_trade", "inventory"):
        out[name] = -row[name]
    out["bought"], out["sold"] = row["sold"], row["bought"]
    return out


def _observations(env, steps: int, seed: int) -> np.ndarray:
    """Rows of ``env`` under random quotes (both sides, every size)."""
    rng = np.random.default_rng(seed)
    n = len(env.config.quote_offsets)
    rows = [env.reset(seed=seed).copy()]
    for _ in range(steps):
        actions = np.stack([rng.integers(0, n + 1, env.num_agents_total),
                            rng.integers(0, n + 1, env.num_agents_total),
                            rng.integers(0, len(env.config.quote_sizes),
                                         env.num_agents_total)], 1)
        rows.append(env.step(actions)[0].copy())
    return np.concatenate(rows)


def test_corrections_mirror_bid_and_ask() -> None:
    mirrored = {CORRECTIONS[a]: CORRECTIONS[CORRECTION_MIRROR[a]]
                for a in range(len(CORRECTIONS))}
    assert mirrored == {"keep": "keep", "no_bid": "no_ask", "no_ask": "no_bid",
                        "no_quotes": "no_quotes", "bid_back": "ask_back",
                        "ask_back": "bid_back"}


def test_the_mirror_maps_each_column_by_name_and_is_an_involution() -> None:
    config = CONFIG.replace(market="realistic")
    env = BatchedMarketEnv(config, n_envs=4, n_agents=2, seed=5)
    obs = _observations(env, 150, seed=5)
    names = observation_names(config.depth, "market_making")
    assert obs.shape[1] == len(names)
    # every column the mirror moves is non-zero somewhere (else the check is empty)
    for name in ("return_1", "return_lag", "flow_imbalance", "last_trade", "inventory",
                 "bought", "sold", "bid_price_0", "ask_qty_4"):
        assert (obs[:, names.index(name)] != 0).any(), name
    mirror = observation_mirror(env)
    mirrored = mirror_rows(torch.from_numpy(obs), mirror).numpy()
    for row, got in zip(obs[::7], mirrored[::7], strict=True):
        expected = _by_name(dict(zip(names, row.tolist(), strict=True)), config.depth)
        np.testing.assert_array_equal(got, [expected[name] for name in names])
    np.testing.assert_array_equal(mirror_rows(torch.from_numpy(mirrored), mirror).numpy(), obs)
    with pytest.raises(ValueError, match="no mirror known"):
        column_mirror([*names, "parent_side"])


def test_a_mirrored_policy_is_symmetric_on_real_observations() -> None:
    env = ResidualEnv(BatchedMarketEnv(CONFIG, n_envs=8, n_agents=2, seed=3), "best_flow_maker")
    trainer = FastPPO(env, FastPPOSettings(n_steps=16, learning_rate=3e-3, **MIRROR), seed=2)
    trainer.learn(16 * 16 * 4)                          # weights and statistics moved
    m, mirror = trainer.model, trainer.architecture["mirror"]
    obs = torch.from_numpy(_observations(
        BatchedMarketEnv(CONFIG, n_envs=8, n_agents=2, seed=9), 40, seed=9))
    z, z_mirrored = m.normalize(obs), m.normalize(mirror_rows(obs, mirror))
    assert torch.equal(z_mirrored, mirror_rows(z, mirror))     # exactly: symmetric statistics
    net = m.nets[0]
    with torch.no_grad():
        p = m.head(0, net.actor.mlp(z))[:, 0].exp()
        p_mirrored = m.head(0, net.actor.mlp(z_mirrored))[:, 0].exp()
        v = net.value_head(net.critic.mlp(z))
        v_mirrored = net.value_head(net.critic.mlp(z_mirrored))
    torch.testing.assert_close(p_mirrored[:, list(CORRECTION_MIRROR)], p, rtol=0, atol=1e-6)
    torch.testing.assert_close(v_mirrored, v, rtol=0, atol=1e-6)
    assert (p[:, 1] - p[:, 2]).abs().max() > 1e-4       # not symmetric by being uniform
    policy = trainer.policy()
    actions = policy(obs.numpy())
    mirrored = policy(mirror_rows(obs, mirror).numpy())
    clear = (p.topk(2).values[:, 0] - p.topk(2).values[:, 1]) > 1e-5
    np.testing.assert_array_equal(np.asarray(CORRECTION_MIRROR)[actions[clear.numpy()]],
                                  mirrored[clear.numpy()])


def test_a_mix_of_lanes_mirrors_and_bad_settings_are_refused() -> None:
    mixed = MixedConfig(CONFIG, (Lane("thin", 2), Lane("resilient", 2)), restart_episodes=(1, 1))
    env = ResidualEnv(MixedMarketEnv(mixed, n_agents=1, seed=4), "best_flow_maker")
    trainer = FastPPO(env, FastPPOSettings(n_steps=4, **MIRROR))
    assert trainer.architecture["mirror"]["actions"] == list(CORRECTION_MIRROR)
    with pytest.raises(ValueError, match="mirror symmetrises a residual"):
        FastPPOSettings(mirror=True)
    with pytest.raises(ValueError, match="mirror symmetrises a residual"):
        FastPPOSettings(residual="best_flow_maker", mirror=True, critic="centralised")
    with pytest.raises(ValueError, match="mirror must be a bool"):
        FastPPOSettings(residual="best_flow_maker", mirror=1)
    plain = FastPPO(ResidualEnv(BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1),
                                "best_flow_maker"),
                    FastPPOSettings(n_steps=4, residual="best_flow_maker", **QUIET))
    assert "mirror" not in plain.architecture and FastPPOSettings().mirror is False


def test_a_mirrored_checkpoint_saves_loads_and_evaluates(tmp_path) -> None:
    result = train(CONFIG, n_envs=4, n_agents=1, total_agent_steps=256, seed=0,
                   out_dir=tmp_path / "run",
                   settings=FastPPOSettings(n_steps=32, warm_start_steps=40, **MIRROR))
    assert result["settings"]["mirror"] is True
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["architecture"]["mirror"]["actions"] == list(CORRECTION_MIRROR)
    policy = load_policy(tmp_path / "run" / "checkpoint.pt")
    obs = _observations(BatchedMarketEnv(CONFIG, n_envs=4, n_agents=1, seed=1), 5, seed=1)
    env = ResidualEnv(BatchedMarketEnv(CONFIG, n_envs=4, n_agents=1, seed=0), "best_flow_maker")
    trainer = FastPPO(env, FastPPOSettings(n_steps=32, warm_start_steps=40, **MIRROR))
    trainer.load(tmp_path / "run" / "checkpoint.pt")
    np.testing.assert_array_equal(policy(obs), trainer.policy()(obs))
    out = evaluate(["baseline:best_flow_maker", str(tmp_path / "run" / "checkpoint.pt")],
                   task="market_making", markets=["thin"], seeds=[11], n_envs=4,
                   n_agents=1, episodes=1, horizon=30)
    rows = out["markets"]["thin"]["rows"]
    assert len(rows) == 2 and all(np.isfinite(r["per_market"]).all() for r in rows.values())
