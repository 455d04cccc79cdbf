"""RLlib PPO on the market through PettingZoo (docs/scale.md, "RLlib"). Needs the ``rllib``
extra in an environment of its own (RLlib pins gymnasium==1.2.2)::

    python -m venv /tmp/rllib-venv
    /tmp/rllib-venv/bin/pip install -e ".[rllib]"
    /tmp/rllib-venv/bin/python examples/rllib_ppo.py --iterations 5 --runners 2

Every trader of a market acts with one shared policy; each env runner (a Ray actor) steps
its own market (seed + 1,000 x its index). Prints one line per training iteration.
"""

from __future__ import annotations

import argparse

import ray

from rltrader.envs.rllib import ppo_config, register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--runners", type=int, default=0,
                        help="env runner actors (0: sample in the driver)")
    parser.add_argument("--agents", type=int, default=4, help="traders per market")
    parser.add_argument("--batch", type=int, default=2_000, help="env steps per iteration")
    parser.add_argument("--address", default=None,
                        help="a running Ray cluster (default: start a local one)")
    args = parser.parse_args()
    ray.init(address=args.address, include_dashboard=False)
    register()
    config = (ppo_config({"n_agents": args.agents, "env": {"horizon": 200}})
              .env_runners(num_env_runners=args.runners)
              .training(train_batch_size_per_learner=args.batch, minibatch_size=500,
                        num_epochs=2, lr=3e-4))
    algo = config.build_algo()
    try:
        for k in range(args.iterations):
            runners = algo.train()["env_runners"]
            print(f"iteration {k + 1}: episode return {runners['episode_return_mean']:+.3f} "
                  f"(sum over {args.agents} traders), "
                  f"{runners['num_env_steps_sampled_lifetime']:.0f} env steps")
    finally:
        algo.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
