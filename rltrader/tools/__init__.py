"""The ``rltrader`` command (:mod:`~rltrader.tools.cli`) and what it runs: the demo, the
benchmark suite and its fixed workloads, the profiler, the simulate command."""
