"""The protocol of the paired A/B scripts (``core_pair.py``, ``itch_pair.py``,
``env_pair.py``): worker processes, one per checkout (and mode), answer one line per
workload name they are sent;
pair after pair, the two checkouts run each case in turn, alternating which goes first, so
that both see the same machine state. Pair 0 warms up and is not counted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any


def alternate(cases: Sequence[Any], pairs: int,
              worker: Callable[[Any, int], tuple[subprocess.Popen, str]],
              where: Sequence[str]) -> dict[Any, tuple[list[str], list[str]]]:
    """Each case's answer lines, checkout A's and B's, over ``pairs`` counted pairs.
    ``worker(case, j)`` is the process of checkout ``j`` (0: A, 1: B) that runs ``case``
    and the line to send it; ``where`` names the checkouts for errors."""
    answers: dict[Any, tuple[list[str], list[str]]] = {case: ([], []) for case in cases}
    for k in range(pairs + 1):
        for case in cases:
            for j in ((0, 1) if k % 2 == 0 else (1, 0)):
                proc, request = worker(case, j)
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(request + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the run from {where[j]} exited")
                if k:
                    answers[case][j].append(line)
    return answers


def stop(procs: Iterable[subprocess.Popen]) -> None:
    """Close the workers' input (their loop ends) and wait for them."""
    for p in procs:
        if p.stdin is not None:
            p.stdin.close()
        p.wait()


def offered_cases(child: str, dirs: Sequence[str], args: Sequence[str], pairs: int,
                  what: str) -> dict[Any, tuple[list[str], list[str]]]:
    """Run ``child`` (a script: its first line of output names its cases, then it answers
    one line per case name it reads) once from each of the two checkouts ``dirs``, with
    the checkout's absolute path and ``args`` as its arguments; both must offer the same
    ``what`` (cases); :func:`alternate` over them."""
    procs = [subprocess.Popen([sys.executable, "-c", child, str(Path(d).resolve()), *args],
                              cwd=d, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
             for d in dirs]
    try:
        names = [p.stdout.readline().split() for p in procs]  # type: ignore[union-attr]
        if names[0] != names[1] or not names[0]:
            raise RuntimeError(f"the checkouts offer different {what}: {names}")
        return alternate(names[0], pairs, lambda name, j: (procs[j], name), dirs)
    finally:
        stop(procs)
