"""The RL trader as a portfolio manager over per-stock traders (issue 16, item 2;
docs/portfolio.md).

It lives in the training layer (``rltrader/training/portfolio/``) because it is a trained
agent over the batched env, built from the project's trainer, baselines and evaluation,
not a new kind of environment: both of its levels are thin wrappers that give the fast PPO
trainer (:class:`rltrader.training.fast_ppo.FastPPO`) the batched env's protocol.

- :mod:`~rltrader.training.portfolio.sharpe`: the differential Sharpe ratio (Moody &
  Saffell), batched over markets;
- :mod:`~rltrader.training.portfolio.tracking`: the per-stock traders' task
  (:class:`TargetTrackingEnv`: every row of a multi-symbol ``BatchedMarketEnv`` holds a
  target position, observed as a gap; reward: PnL minus a tracking penalty) and the
  scripted executors;
- :mod:`~rltrader.training.portfolio.manager`: the portfolio manager's env
  (:class:`PortfolioEnv`: one row per market, a decision every ``decision_steps`` env
  steps, target weights per stock executed by frozen traders, rewarded by the
  differential Sharpe ratio of the portfolio's value changes) and the allocation
  baselines (flat, equal weight, inverse volatility, buy and hold);
- :mod:`~rltrader.training.portfolio.experiment`: the hierarchical training (traders
  first, frozen, then the manager), the paired evaluation on held-out seeds and presets,
  the JSON and plot report (``python -m rltrader.training.portfolio.experiment``).
"""

from rltrader.training.portfolio.sharpe import DifferentialSharpe, differential_sharpe

__all__ = ["DifferentialSharpe", "differential_sharpe"]
