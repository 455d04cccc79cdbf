"""A local Ray instance for a test module: ``from _ray_cluster import ray_cluster``.

Two CPUs (CI's machine has two cores), no dashboard; shut down after the module. Modules
that use it skip when Ray is not installed (``pytest.importorskip("ray")`` first).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    import ray

    if ray.is_initialized():            # another module's instance: not ours to configure
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
