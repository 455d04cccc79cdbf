"""Train a fast PPO checkpoint on for more agent-steps on an experiment file's markets.

    python examples/train/finetune.py CHECKPOINT CONFIG.toml STEPS OUT [--seed S]

The checkpoint's weights, optimizer and normalisers are restored (``FastPPO.load``; the
architecture must match the file's ``[trainer]``), the file's ``[[markets]]`` mix is built
from ``--seed`` (use one that is neither a training seed of the checkpoint nor an
evaluation seed), no warm start is played, and ``OUT/checkpoint.pt`` is written after
``STEPS`` more agent-steps. A checkpoint of another action mode than the file's is refused;
a guarded checkpoint's guard (``rltrader.training.ppo.guard``) is carried over, reading the
fine-tuned normaliser; a residual market maker's file (``[trainer] residual``) trains on
its teacher's corrections. Round 9 (docs/training.md) trained round 8's directional
checkpoints on ``examples/train/directional_hold.toml``'s mix this way, round 12 round
11's mirrored market makers on ``examples/train/market_making_keep_cost.toml``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from rltrader.envs.mixed import MixedMarketEnv
from rltrader.training.experiment import load
from rltrader.training.fast_ppo import FastPPO
from rltrader.training.ppo.guard import guard_checkpoint, saved_action_mode
from rltrader.training.ppo.residual import ResidualEnv
from rltrader.training.ppo.trainer import read_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("config")
    parser.add_argument("steps", type=int)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    experiment = load(args.config)
    if experiment.mixed is None:
        raise SystemExit(f"{args.config}: no [[markets]] mix to train on")
    state = read_checkpoint(args.checkpoint)
    mode = saved_action_mode(state.get("env_config"))
    if mode != experiment.mixed.base.action_mode:
        raise SystemExit(f"{args.checkpoint}: a policy of action mode {mode!r}; "
                         f"{args.config} trains {experiment.mixed.base.action_mode!r}")
    settings = dataclasses.replace(experiment.settings, warm_start=None, progress=False)
    teacher = (state.get("settings") or {}).get("residual")
    if teacher != settings.residual:      # corrections are to one teacher's quotes
        raise SystemExit(f"{args.checkpoint}: a policy of residual teacher {teacher!r}; "
                         f"{args.config} trains {settings.residual!r}")
    env = MixedMarketEnv(experiment.mixed, n_agents=experiment.n_agents, seed=args.seed)
    if settings.residual is not None:       # a residual maker corrects its teacher's quotes
        env = ResidualEnv(env, settings.residual)
    trainer = FastPPO(env, settings, seed=args.seed)
    trainer.load(args.checkpoint)
    began = time.perf_counter()
    rows = trainer.learn(args.steps)
    out = trainer.save(Path(args.out) / "checkpoint.pt")
    if state.get("guard") is not None:
        guard_checkpoint(out, out, **state["guard"])
    print(f"{args.checkpoint} -> {out}: {trainer.agent_steps} agent-steps in all, "
          f"{len(rows)} updates, {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
