"""Training and evaluation (docs/training.md): PPO over the batched env
(:mod:`~rltrader.training.train`, needs the ``rl`` extra), warm starts by behaviour cloning
(:mod:`~rltrader.training.imitation`), and the baselines every result is compared with
(:mod:`~rltrader.training.baselines`)."""
