"""The benchmark suite behind ``rltrader bench``: fixed workloads, warm-up, repeats, medians.

Every core workload is a message array from ``rltrader.tools.workloads``; each repeat runs it
on a fresh ``Books`` so that repeats are identical. The core rows give the wall-clock median
and, beside it, the median by the thread's CPU time (``extra["cpu_median_ns"]``): on a
shared machine a long run (W3 x 512, ~100 ms) waits for its core more often than a short one
(W3, ~3 ms), which moves the wall-clock ratio of the two, not the CPU one. The env rows step
the batched env with random actions (1,024 markets x 4 agents, 1 market x 4,096), each
reported also against the core's W1 row of the same run. Figures are medians on one core.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from rltrader._book import Books, OrderBook
from rltrader._probe import memory_latency_ns
from rltrader.core.constants import CANCEL, LIMIT
from rltrader.core.messages import EVENT_DTYPE
from rltrader.tools import workloads

BATCH = 1024


@dataclass
class Result:
    """One benchmark row: the workload, its size and the median time per message."""

    name: str
    workload: str
    messages: int
    books: int
    median_ns: float
    min_ns: float
    repeats: int
    extra: dict = field(default_factory=dict)

    @property
    def messages_per_second(self) -> float:
        return 1e9 / self.median_ns

    def as_dict(self) -> dict:
        return {**asdict(self), "messages_per_second": self.messages_per_second}


def _median_ns(run: Callable[[], float], n: int, repeats: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        run()
    seconds = [run() for _ in range(repeats)]
    return float(np.median(seconds)) / n * 1e9, min(seconds) / n * 1e9


def time_batched(messages: np.ndarray, n_books: int, *, batch: int = BATCH, repeats: int = 7,
                 warmup: int = 1, window: int = 4096,
                 cpu: list | None = None) -> tuple[float, float]:
    """Median and best ns/message of ``Books.process`` in batches of ``batch`` messages,
    by the wall clock. ``cpu``, a list, receives the median ns/message by the thread's CPU
    time over the same repeats: on a machine shared with other jobs, wall time also
    counts the time slices the thread waits for its core, which grow with the length of
    a run (a 100 ms run is preempted tens of times where a 3 ms one is not), CPU time
    does not."""
    events = np.empty(max(64 * batch, 4 * batch), dtype=EVENT_DTYPE)
    chunks = [messages[i:i + batch] for i in range(0, len(messages), batch)]
    cpu_seconds: list[float] = []

    def run() -> float:
        books = Books(n_books, window=window, capacity=1 << 16)
        process = books.process
        start_cpu = time.thread_time()
        start = time.perf_counter()
        for chunk in chunks:
            done, _ = process(chunk, events)
            if done != len(chunk):
                raise RuntimeError("benchmark event buffer too small")
        wall = time.perf_counter() - start
        cpu_seconds.append(time.thread_time() - start_cpu)
        return wall

    result = _median_ns(run, len(messages), repeats, warmup)
    if cpu is not None:
        cpu.append(float(np.median(cpu_seconds[warmup:])) / len(messages) * 1e9)
    return result


def time_per_call(messages: np.ndarray, *, repeats: int = 5,
                  warmup: int = 1) -> tuple[float, float]:
    """Median and best ns/message of one ``OrderBook.limit``/``cancel`` call per message."""
    if not np.isin(messages["op"], (LIMIT, CANCEL)).all():
        raise ValueError("the per-call benchmark takes limit and cancel messages only")
    rows = list(zip(messages["op"].tolist(), messages["side"].tolist(),
                    messages["price"].tolist(), messages["qty"].tolist(),
                    messages["order_id"].tolist(), strict=True))

    def run() -> float:
        book = OrderBook(capacity=1 << 16)
        limit, cancel = book.limit, book.cancel
        start = time.perf_counter()
        for op, side, price, qty, order_id in rows:
            if op == LIMIT:
                limit(side, price, qty, order_id)
            else:
                cancel(order_id)
        return time.perf_counter() - start

    return _median_ns(run, len(messages), repeats, warmup)


LATENCY_KIB = (256, 1024, 4096, 16384, 65536)


def memory_latency() -> dict[int, float]:
    """Nanoseconds per dependent load for working sets of ``LATENCY_KIB`` KiB: where it
    jumps, the machine's caches end, and many-book runs whose data outgrows that size
    slow down (``rltrader._probe.memory_latency_ns``)."""
    return {kib: round(memory_latency_ns(kib * 1024, loads=500_000), 1) for kib in LATENCY_KIB}


def machine() -> dict:
    """Where the figures were taken: CPU, cores, memory latency, Python, numpy and the git
    commit."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5,
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "latency_ns": memory_latency(),
        "python": platform.python_version(), "numpy": np.__version__, "commit": commit,
    }


def memory_figures() -> dict:
    """Bytes per resting order (arena + id hash) and per dense price level."""
    return Books(1, window=4096, capacity=1 << 16).memory_bytes()


def suite(quick: bool = False) -> list[tuple[str, Callable[[], Result]]]:
    """The benchmark rows as (label, thunk) pairs, in report order."""
    scale = 0.1 if quick else 1.0
    repeats = 3 if quick else 7
    n1 = int(1_000_000 * scale)

    def batched(name: str, what: str, msgs: np.ndarray, n_books: int, n: int) -> Result:
        # a batched row: wall-clock median and best, and the median by thread CPU time
        cpu: list[float] = []
        med, best = time_batched(msgs, n_books, repeats=n, cpu=cpu)
        return Result(name, what, len(msgs), n_books, med, best, n, {"cpu_median_ns": cpu[0]})

    def w1_batched() -> Result:
        return batched("W1 batched", "limit+cancel, 1 book, 1024/call",
                       workloads.limit_cancel(n1, seed=1), 1, repeats)

    def w1_per_call() -> Result:
        msgs = workloads.limit_cancel(n1 // 4, seed=1)
        med, best = time_per_call(msgs, repeats=max(3, repeats // 2))
        return Result("W1 per call", "limit+cancel, 1 book, 1 call/msg", len(msgs), 1, med,
                      best, max(3, repeats // 2))

    def w2() -> Result:
        return batched("W2 crossing inserts", "alternating inserts, ~half cross",
                       workloads.crossing_inserts(n1, seed=2), 1, repeats)

    def w3_one() -> Result:
        return batched("W3 LOBSTER AAPL", "real adds/deletes/executions, 1 book",
                       workloads.lobster_aapl(), 1, repeats)

    def w3_many() -> Result:
        msgs = workloads.interleave(workloads.lobster_aapl(), 512,
                                    max_messages=int(2_000_000 * scale))
        return batched("W3 x 512 books", "AAPL flow interleaved over 512 books", msgs, 512,
                       max(3, repeats // 2))

    return [("W1 batched", w1_batched), ("W1 per call", w1_per_call), ("W2", w2),
            ("W3 one book", w3_one), ("W3 512 books", w3_many)]


#: the batched env's rows: (markets, agents per market)
ENV_SHAPES = ((1024, 4), (1, 4096))


def time_env(n_envs: int, n_agents: int, *, steps: int = 20, repeats: int = 15,
             warmup: int = 100) -> dict:
    """The batched env with uniformly random actions: ``BatchedMarketEnv.step`` with the
    default ``EnvConfig`` (``resilient`` background, discrete actions), 16 action arrays
    drawn once from a fixed generator and cycled, ``warmup`` untimed steps, then the
    median over ``repeats`` rounds of ``steps`` steps (the workload of
    ``benchmarks/test_bench_env.py``)."""
    from rltrader.envs import BatchedMarketEnv

    env = BatchedMarketEnv(n_envs=n_envs, n_agents=n_agents, seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, env.single_action_space.n, env.num_agents_total)
               for _ in range(16)]
    t = 0
    for t in range(warmup):
        env.step(actions[t % 16])
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            t += 1
            env.step(actions[t % 16])
        seconds.append((time.perf_counter() - start) / steps)
    step = float(np.median(seconds))
    background = time_background(env.market.config, steps=steps, repeats=repeats,
                                 warmup=warmup)
    agents = env.num_agents_total
    return {"name": f"env {n_envs:,} x {n_agents:,}", "n_envs": n_envs, "n_agents": n_agents,
            "median_us_per_step": step * 1e6, "best_us_per_step": min(seconds) * 1e6,
            "ns_per_agent_step": step / agents * 1e9, "agent_steps_per_second": agents / step,
            "ns_per_book_step": step / n_envs * 1e9,
            "background_ns_per_book_step": background / n_envs * 1e9,
            "steps": steps, "repeats": repeats}


def time_background(config, *, steps: int, repeats: int, warmup: int) -> float:
    """Seconds per step of the env's background alone: a ``Market`` of the env's own
    config (the same books, populations and seed stream, the agents' owners idle), its
    flow run ``steps`` steps at a time after ``warmup`` untimed ones; the median over
    ``repeats`` rounds. What the env's step costs at the least, whatever the agents do."""
    from rltrader.sim import Market

    flow = Market(config, seed=0).flow
    flow.run(warmup)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        flow.run(steps)
        seconds.append((time.perf_counter() - start) / steps)
    return float(np.median(seconds))


def env_suite(quick: bool = False) -> list[tuple[str, Callable[[], dict]]]:
    """The env rows as (label, thunk) pairs."""
    steps, repeats, warmup = (5, 3, 20) if quick else (20, 15, 100)
    return [(f"env {e} x {a}", lambda e=e, a=a: time_env(e, a, steps=steps, repeats=repeats,
                                                         warmup=warmup))
            for e, a in ENV_SHAPES]


def run(quick: bool = False, progress: bool = True) -> dict:
    """Run the suite; returns ``{"machine", "memory", "results", "env"}``: the core's
    rows, then the batched env's (timed in the same run, so that their ratio to the core's
    W1 row compares machines and minutes)."""
    rows: list[tuple[str, Callable[[], object]]] = [*suite(quick), *env_suite(quick)]
    results = []
    try:
        from tqdm import tqdm
        bar = tqdm(rows, desc="bench", unit="workload", disable=not progress, leave=False)
    except ImportError:   # pragma: no cover - tqdm is a dependency
        bar = rows
    for label, thunk in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(label)
        results.append(thunk())
    return {"machine": machine(), "memory": memory_figures(),
            "results": [r.as_dict() for r in results if isinstance(r, Result)],
            "env": [r for r in results if isinstance(r, dict)]}


def _size(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib >= 1024 else f"{kib} KiB"


def format_report(report: dict) -> str:
    """The report as a Markdown table plus machine and memory lines."""
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}; "
        f"commit {m['commit']}",
        "memory latency (ns per dependent load, by working set): " + ", ".join(
            f"{_size(int(kib))} {ns:.1f}" for kib, ns in m["latency_ns"].items()),
        "",
        "| workload | what | messages | books | median ns/msg | best ns/msg | msgs/s "
        "| CPU ns/msg |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        cpu = r.get("extra", {}).get("cpu_median_ns")
        lines.append(
            f"| {r['name']} | {r['workload']} | {r['messages']:,} | {r['books']} | "
            f"{r['median_ns']:.1f} | {r['min_ns']:.1f} | {r['messages_per_second'] / 1e6:.1f} M "
            f"| {'-' if cpu is None else f'{cpu:.1f}'} |"
        )
    by_name = {r["name"]: r for r in report["results"]}
    one, many = by_name.get("W3 LOBSTER AAPL"), by_name.get("W3 x 512 books")
    if one and many:
        ratio = f"W3 x 512 / W3 per message: {many['median_ns'] / one['median_ns']:.2f} wall"
        if "cpu_median_ns" in one.get("extra", {}) and "cpu_median_ns" in many.get("extra", {}):
            ratio += (f", {many['extra']['cpu_median_ns'] / one['extra']['cpu_median_ns']:.2f}"
                      " thread CPU time")
        lines += ["", ratio]
    env = report.get("env", [])
    if env:
        w1 = next((r["median_ns"] for r in report["results"] if r["name"] == "W1 batched"),
                  None)
        lines += ["", "| env, random actions | median us/step | ns/agent-step | "
                      "agent-steps/s | ns/agent-step / W1 ns/msg | ns/book-step: env, "
                      "background alone |", "|---|---:|---:|---:|---:|---:|"]
        for r in env:
            ratio = f"{r['ns_per_agent_step'] / w1:.2f}" if w1 else "-"
            lines.append(f"| {r['name']} | {r['median_us_per_step']:.0f} | "
                         f"{r['ns_per_agent_step']:.0f} | "
                         f"{r['agent_steps_per_second'] / 1e6:.2f} M | {ratio} | "
                         f"{r['ns_per_book_step']:.0f}, "
                         f"{r['background_ns_per_book_step']:.0f} |")
    mem = report["memory"]
    lines += ["", f"memory: {mem['per_order_slot']:.0f} bytes per order slot (arena + id hash), "
                  f"{mem['per_price_level']:.2f} bytes per dense price level"]
    return "\n".join(lines)
