"""ITCH 5.0 reading throughput: parse only, and parse + book rebuild, from a file.

===================================  ====================================================
benchmark                            what is timed
===================================  ====================================================
test_itch[W1-parse]                  W1 (131,072 limit/cancel messages) written as ITCH
                                     (``A``/``D``), read back in 1 MiB chunks, parse only
test_itch[W1-parse+rebuild]          the same file: ``rebuild_books`` (parsed straight
                                     into the books, 2,048 messages per call of the core)
test_itch[W1-parse+rebuild-2threads] the same, parsed in a second thread that fills a ring
                                     of batches (``rebuild_books(threads=2)``)
test_itch[W3-parse]                  W3 (LOBSTER AAPL, 89,712 messages: ``A``/``D``/``E``/
                                     ``X``) written as ITCH, parse only
test_itch[W3-parse+rebuild]          the same file: parse + rebuild
test_itch[W3-parse+rebuild-2threads] the same, two threads
===================================  ====================================================

The files are written once per session by ``rltrader.data.itch.write_itch`` into a
temporary folder (the page cache holds them, so the disk is not timed). Every rebuild round
starts from a new ``Books`` (built inside the timed call: one allocation, negligible next to
the stream; the arena starts at the default size and grows as the book does); the events
buffer is allocated once, outside. ``extra_info["ns_per_message"]`` is the median per book
message. Two checkouts side by side: ``benchmarks/itch_pair.py A_DIR B_DIR`` (paired runs,
thread CPU time as well as wall).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rltrader._itch", reason="the compiled ITCH parser is not built")

from rltrader.core.messages import EVENT_DTYPE  # noqa: E402
from rltrader.data import itch  # noqa: E402
from rltrader.tools.workloads import published  # noqa: E402


@pytest.fixture(scope="session")
def itch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    folder = tmp_path_factory.mktemp("itch")
    files = {}
    for name in ("W1", "W3"):
        msgs, _ = published(name)
        path = folder / f"{name}.itch50"
        itch.write_itch(path, msgs, ["SYNTH"])
        files[name] = (path, msgs)
    return files


def _parse(path: Path) -> int:
    reader = itch.ItchReader(path, reuse_buffers=True)
    return sum(chunk.messages.shape[0] for chunk in reader)


_EVENTS = np.empty(itch.REBUILD_EVENTS, EVENT_DTYPE)


def _rebuild(path: Path, threads: int = 1) -> int:
    reader = itch.ItchReader(path, reuse_buffers=True)
    _, stats = itch.rebuild_books(reader, n_books=1, events=_EVENTS, threads=threads)
    return stats.messages


def _rebuild_2threads(path: Path) -> int:
    return _rebuild(path, threads=2)


_TARGETS = {"parse": _parse, "parse+rebuild": _rebuild,
            "parse+rebuild-2threads": _rebuild_2threads}
_GROUPS = {"W1": "ITCH W1 limit+cancel", "W3": "ITCH W3 LOBSTER AAPL"}


@pytest.mark.parametrize("timed", list(_TARGETS))
@pytest.mark.parametrize("workload", list(_GROUPS))
def test_itch(benchmark, record_messages, itch_files, workload, timed):
    path, msgs = itch_files[workload]
    benchmark.group = _GROUPS[workload]
    counted = benchmark.pedantic(_TARGETS[timed], args=(path,), rounds=15, iterations=1,
                                 warmup_rounds=1)
    assert counted == msgs.shape[0]
    record_messages(benchmark, msgs, bytes=path.stat().st_size,
                    chunk_bytes=itch.CHUNK_BYTES, workload=workload, timed=timed)
