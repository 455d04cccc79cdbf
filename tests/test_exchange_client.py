"""A learner on a served market (``rltrader.exchange.client.ServedMarketEnv``): a Gymnasium
agent that is an account of a running ``rltrader serve`` meets external clients (ccxt) and
the background in the same book."""

from __future__ import annotations

import numpy as np
import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("websockets")
pytest.importorskip("uvicorn")

from _exchange import ACCOUNTS, ccxt_client, running_server  # noqa: E402
from gymnasium.utils.passive_env_checker import (  # noqa: E402
    check_action_space,
    check_observation_space,
    env_reset_passive_checker,
    env_step_passive_checker,
)

from rltrader.exchange.client import ServedMarketEnv  # noqa: E402

MARKET = "XYZ/USDT"


def env_for(url: str, name: str = "bob", **kwargs) -> ServedMarketEnv:
    key, secret, _ = ACCOUNTS[name]
    return ServedMarketEnv(url, key, secret, **kwargs)


def test_the_learner_trades_with_an_external_client_in_one_book(tmp_path) -> None:
    (tmp_path / "quiet.toml").write_text('symbols = ["XYZ"]\ntick_size = 0.01\n')
    with running_server(tmp_path, "--config", str(tmp_path / "quiet.toml")) as url:
        alice = ccxt_client(url, "alice")
        alice.load_markets()
        ask = alice.create_order(MARKET, "limit", "sell", 3, 100.00)
        alice.create_order(MARKET, "limit", "buy", 2, 99.00)
        env = env_for(url, step_s=0.0, order_qty=1, position_limit=2)
        obs, info = env.reset()
        assert info["position"] == 0 and obs[4 * 5 + 1] == 0
        obs, reward, terminated, truncated, info = env.step(ServedMarketEnv.BUY)
        assert info["position"] == 1 and obs[4 * 5 + 1] == 0.5
        assert alice.fetch_order(ask["id"], MARKET)["filled"] == 1      # from alice
        assert reward == pytest.approx(99.50 * 100 - 100.00 * 100)       # paid the half
        obs, *_ , info = env.step(ServedMarketEnv.ASK)                   # spread, in ticks
        assert obs[-1] == 1.0 and info["sent"] == 1
        assert len(env.client.open_orders()) == 1
        env.step(ServedMarketEnv.BUY)
        obs, *_, info = env.step(ServedMarketEnv.BUY)        # the limit: 2 lots held
        assert info["position"] == 2 and info["sent"] == 0
        obs, *_ = env.step(ServedMarketEnv.CANCEL)
        assert obs[-1] == 0.0 and env.client.open_orders() == []
        env.close()


def test_the_env_passes_the_ecosystems_checkers_on_a_moving_market(tmp_path) -> None:
    """Gymnasium's passive checks and Stable-Baselines3's ``check_env`` (Gymnasium's full
    ``check_env`` also asks that a seed make steps repeat: a live market cannot)."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with running_server(tmp_path, "--speed", "20") as url:
        env = env_for(url, step_s=0.02, horizon=15, position_limit=5)
        check_action_space(env.action_space)
        check_observation_space(env.observation_space)
        env_reset_passive_checker(env, seed=0)
        env_step_passive_checker(env, env.action_space.sample())
        sb3_check_env(env, warn=True)
        env.reset()
        env.action_space.seed(0)
        for _ in range(15):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert np.all(np.isfinite(obs)) and np.isfinite(reward)
            assert abs(info["position"]) <= 5
        assert truncated and not terminated
        env.close()


def test_ppo_learns_over_the_network_beside_a_ccxt_client(tmp_path) -> None:
    """Three accounts as one batched env (``ServedVectorEnv``), served to Stable-Baselines3
    by the project's ``SB3VecEnv``: PPO collects and updates on the live market while a
    ccxt client trades in the same book; every agent's position is what its account says."""
    from stable_baselines3 import PPO

    from rltrader.envs.sb3 import SB3VecEnv
    from rltrader.exchange.client import ServedVectorEnv

    accounts = {f"agent{k}": (f"agent{k}-key", f"agent{k}-secret",
                              {"USDT": "100000", "XYZ": "100"}) for k in range(3)}
    accounts["alice"] = ACCOUNTS["alice"]
    with running_server(tmp_path, "--speed", "20", accounts=accounts) as url:
        keys = [accounts[f"agent{k}"][:2] for k in range(3)]
        batched = ServedVectorEnv(url, keys, step_s=0.02, horizon=8, position_limit=4)
        venv = SB3VecEnv(batched)
        alice = ccxt_client(url, "alice")
        alice.load_markets()
        bought = alice.create_order(MARKET, "market", "buy", 3)
        model = PPO("MlpPolicy", venv, n_steps=8, batch_size=24, n_epochs=1, seed=0,
                    device="cpu")
        model.learn(total_timesteps=48)
        assert model.num_timesteps >= 48
        for env in batched.envs:
            position = env._state()[2]
            assert abs(position) <= 4
            mine = env.client.balances()["XYZ"]
            assert sum(mine) == 100 + position
        # a market order takes what the book holds: up to 3 (the market may be thin)
        assert 0 < bought["filled"] <= 3
        assert alice.fetch_balance()["XYZ"]["total"] == 1000 + bought["filled"]
        batched.close()
