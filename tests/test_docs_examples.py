"""The runnable examples of the docs run as written (the fragments that need the reader's
own files, in docs/generic.md and docs/hybrid.md, are not run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("rltrader._env")

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S)


SERVED = "http://127.0.0.1:8080"


@pytest.mark.parametrize("doc", ["README.md", "docs/envs.md", "docs/exchange.md"])
def test_every_python_block_runs(doc: str, tmp_path: Path) -> None:
    """Blocks that talk to ``rltrader serve`` at its default address run against a real
    one (started here on a free port, with the docs' account)."""
    blocks = python_blocks(doc)
    assert blocks
    for k, block in enumerate(blocks):
        if SERVED in block:
            pytest.importorskip("ccxt")
            from _exchange import running_server

            with running_server(tmp_path, "--speed", "5") as url:
                block = block.replace(SERVED, url)
                exec(compile(block, f"{doc}, python block {k}", "exec"), {})  # noqa: S102
            continue
        exec(compile(block, f"{doc}, python block {k}", "exec"), {})  # noqa: S102


def test_the_mixed_group_example_is_what_its_comments_say() -> None:
    """docs/envs.md, "Agent groups": scripted makers, learning executors and directional
    traders of different market share in one market of two correlated symbols."""
    block = next(b for b in python_blocks("docs/envs.md") if "GroupedMarketEnv" in b)
    scope: dict = {}
    exec(block, scope)  # noqa: S102
    env = scope["env"]
    assert env.market.config.n_books == 2 * 64
    assert env.market.config.fundamental.correlation == 0.6
    assert scope["obs"].shape[0] == 128 and env.envs["traders"].num_agents_total == 512
    assert env.groups[0].policy is not None and env.groups[1].policy is None
    assert env.envs["traders"].order_qty.max() == 10 * env.envs["traders"].order_qty.min()
