"""The portfolio manager's real-data market: the Binance BTCUSDT perpetual and spot of the
same 345 s as one two-symbol market (rltrader/training/portfolio/real.py), and its row in
the experiment."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rltrader._env")

from rltrader.data.samples import BINANCE_SPOT, BINANCE_USDM, PACKAGED  # noqa: E402
from rltrader.envs import observation_names  # noqa: E402
from rltrader.training.portfolio import real  # noqa: E402
from rltrader.training.portfolio.experiment import run_allocator, task  # noqa: E402
from rltrader.training.portfolio.manager import BASELINES, PortfolioEnv  # noqa: E402


@pytest.fixture(scope="module")
def config():
    return real.binance_pair_task(task("resilient", symbols=2, horizon=100,
                                       decision_steps=20))


def test_the_packaged_records_are_the_ones_their_readme_names() -> None:
    for name in (BINANCE_USDM, BINANCE_SPOT):
        packaged = (PACKAGED / name).read_bytes()
        assert hashlib.sha256(packaged).hexdigest() in (
            PACKAGED / "crypto" / "binance" / "README.md").read_text()


def test_the_task_is_converted_to_the_records(config) -> None:
    base = task("resilient", symbols=2, horizon=100, decision_steps=20)
    env = config.env
    assert env.symbols == 2 and env.horizon == base.env.horizon
    assert env.base_qty == 1_000 * base.env.base_qty
    assert env.base_position_limit == 1_000 * base.env.base_position_limit
    # BTC near 61,800 USDT on the 0.01 tick; the simulated fundamental's level is r_bar
    assert 6_100_000 < real.first_mid() < 6_300_000
    r_bar = base.env.market_config().fundamental.r_bar
    assert env.price_scale == pytest.approx(base.env.price_scale * real.first_mid() / r_bar)
    assert 344 < real.record_seconds() < 346


def test_the_pair_is_one_market_on_one_clock(config) -> None:
    n = 2
    sources = real.binance_pair_sources(config, n)
    env = PortfolioEnv(config, n_envs=n, seed=1000, source=sources)
    assert env.traders.env.sources == sources
    # books symbol x n_envs + market: the perpetuals, then the spots
    assert [s.fees for s in sources] == [(0, 100)] * 4
    mids = []
    for r in sources:
        bid, ask = r.top_of_book()
        mids.append(0.5 * (bid + ask))
    # the perpetual trades a few USDT below spot (the basis), both near 61,800
    assert mids[0] == mids[1] and mids[2] == mids[3] and 0 < mids[2] - mids[0] < 10_000
    limit = env.traders.position_limit.reshape(2, n)
    np.testing.assert_allclose(env.capital, (limit * np.array(mids).reshape(2, n)).sum(0))
    times = {r.timestamp for r in sources}
    assert len(times) == 1
    flat = run_allocator(env, BASELINES["flat"](env), seed=1000, episodes=1)
    assert not np.any(flat["total_return"]) and not np.any(flat["traded"])
    ew = run_allocator(env, BASELINES["equal_weight"](env), seed=1000, episodes=1)
    assert np.all(ew["traded"] > 0) and np.all(np.isfinite(ew["sharpe"]))
    assert len({r.timestamp for r in sources}) == 1
    # the traders saw the real books on the 0.01 tick: the perpetual's spread is a
    # multiple of its own 0.1 tick, the spot's at least one cent
    spread = np.rint(env.traders.env.observations[:, observation_names(
        config.env.depth).index("spread")] * config.env.price_scale)
    assert np.all(spread[:n] % 10 == 0) and np.all(spread >= [10] * n + [1] * n)


def test_wrong_configs_are_refused(config) -> None:
    with pytest.raises(ValueError, match="the real market has 2 symbols"):
        real.binance_pair_sources(task("resilient", symbols=3), 1)
    real.check_fits(config, 3)
    with pytest.raises(ValueError, match=r"cover 344.6 s; 4 episodes .* need"):
        real.check_fits(real.binance_pair_task(task("resilient", symbols=2)), 4)


def test_the_experiment_has_a_real_row(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from rltrader.training.portfolio.experiment import main

    tiny = ["--n-envs", "4", "--manager-decisions", "80", "--seeds", "0",
            "--validation-seeds", "500", "--eval-seeds", "1000", "--eval-envs", "2",
            "--episodes", "1", "--trader-eval-steps", "20", "--horizon", "100",
            "--decision-steps", "20", "--symbols", "2", "--trader", "aggressive",
            "--real-envs", "2"]
    assert main(["--out", str(tmp_path), *tiny, "--eval-presets",
                 f"thin,{real.NAME}"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    row = report["evaluation"][real.NAME]
    assert row["policies"]["flat"]["total_return"]["mean"] == 0
    assert row["policies"]["equal_weight"]["sharpe"]["n"] == 2
    assert "manager_seed0 - flat" in row["paired"]
    assert f"## {real.NAME}" in (tmp_path / "report.md").read_text()
    # misuse: a 4-symbol task, more episodes than the records hold
    assert main(["--out", str(tmp_path / "x"), *tiny, "--symbols", "4",
                 "--eval-presets", real.NAME]) == 2
    assert main(["--out", str(tmp_path / "x"), *tiny, "--episodes", "4", "--horizon",
                 "1000", "--decision-steps", "50", "--eval-presets", real.NAME]) == 2
    assert main(["--out", str(tmp_path / "x"), *tiny, "--real-envs", "0",
                 "--eval-presets", real.NAME]) == 2
    assert not (tmp_path / "x" / "report.json").exists()
