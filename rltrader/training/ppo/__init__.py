"""The fast multi-agent PPO trainer's modules (imported through
:mod:`rltrader.training.fast_ppo`; they need torch): ``settings`` (hyperparameters, no
torch), ``normalize`` (running statistics), ``policy`` (the actor-critic and
:class:`Policy`), ``rollout`` (buffers, GAE), ``trainer`` (:class:`FastPPO`) and ``report``
(the CSV, TensorBoard and plot of a run)."""
