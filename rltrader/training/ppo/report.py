"""A run's records: ``curve.csv`` (one row per update, also to TensorBoard when asked) and
``learning_curve.png``."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

#: curve.csv's columns, in order
COLUMNS = ("update", "agent_steps", "wall_s", "agent_steps_per_s", "env_steps_per_s",
           "episodes", "mean_episode_return", "mean_reward", "policy_loss", "value_loss",
           "entropy", "approx_kl", "clip_fraction", "explained_variance", "learning_rate",
           "epochs", "minibatches", "rollout_s", "env_s", "update_s")


class CurveLog:
    """Appends update rows to ``path`` (CSV, flushed per row) and, with ``tensorboard``
    (a folder), to a ``SummaryWriter`` there (``ImportError`` when the ``tensorboard``
    package is missing)."""

    def __init__(self, path: Path, tensorboard: Path | None = None) -> None:
        self.writer = None
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError("FastPPOSettings.tensorboard needs the tensorboard "
                                  "package (pip install tensorboard)") from e
            self.writer = SummaryWriter(str(tensorboard))
        self.file = open(path, "w", newline="")  # noqa: SIM115 - closed by close()
        self.csv = csv.DictWriter(self.file, COLUMNS, extrasaction="ignore")
        self.csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self.csv.writerow({k: row.get(k, "") for k in COLUMNS})
        self.file.flush()
        if self.writer is not None:
            for name in COLUMNS[2:]:
                value = row.get(name)
                if isinstance(value, float) and math.isfinite(value):
                    self.writer.add_scalar(f"fast_ppo/{name}", value, row["agent_steps"])

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def plot_curve(rows: list[dict[str, Any]], path: Path) -> Path:
    """Mean episode return (and its 10-update moving average), entropy and throughput
    against agent-steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["agent_steps"] for r in rows], dtype=float) / 1e6
    ret = np.array([r["mean_episode_return"] for r in rows], dtype=float)
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ok = np.isfinite(ret)
    top.plot(steps[ok], ret[ok], ".-", color="tab:blue", lw=0.8, alpha=0.5,
             label="episodes ended in the rollout")
    window = min(10, int(ok.sum()))
    if window > 1:
        smooth = np.convolve(ret[ok], np.ones(window) / window, mode="valid")
        top.plot(steps[ok][window - 1:], smooth, color="tab:blue", lw=2,
                 label=f"mean of {window} updates")
    top.set_ylabel("mean episode return")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    middle.plot(steps, [r["entropy"] for r in rows], color="tab:green", label="entropy")
    middle.plot(steps, [r["approx_kl"] * 100 for r in rows], color="tab:red",
                label="approx KL x 100")
    middle.legend(fontsize=8)
    middle.grid(alpha=0.3)
    bottom.plot(steps, np.array([r["agent_steps_per_s"] for r in rows]) / 1e3,
                color="tab:grey")
    bottom.set_ylabel("k agent-steps/s")
    bottom.set_xlabel("agent-steps (millions)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
