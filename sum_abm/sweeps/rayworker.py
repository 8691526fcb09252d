"""The body of a warm Ray actor: one per core, it keeps a sweep's task (scenario, data) loaded and
runs chunks of runs. Light to import (no polars, no simulator until a task arrives), so that the
helper process of :mod:`sum_abm.sweeps.rayhelper` can define actors with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class Worker:
    """Tasks are cached by key, so a task travels once per actor. A task may arrive as the bytes
    of ``cloudpickle.dumps`` (from the helper process, which never unpickles it); then
    :meth:`run_pickled` takes and returns bytes as well."""

    def __init__(self, driver_node: str) -> None:
        import ray

        # One thread per pool: the environment (runtime_env) set it at process start; BLAS may
        # have been loaded before (Ray imports numpy), so its pool is limited here as well.
        try:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(1)
        except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
            self._limits = None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.on_driver_node = self.node_id == driver_node
        self.tasks: dict[str, Any] = {}

    def _task(self, key: str, box: list[Any]) -> Any:
        import ray

        if key not in self.tasks:
            if len(self.tasks) >= 4:
                self.tasks.clear()
            task = ray.get(box[0])
            if isinstance(task, bytes):
                import cloudpickle

                task = cloudpickle.loads(task)
            if not self.on_driver_node and getattr(task, "out", None) is not None:
                task = dataclasses.replace(task, out=None)  # another machine: rows travel back
            self.tasks[key] = task
        return self.tasks[key]

    def warm(self, key: str, box: list[Any]) -> str:
        """Load the task and warm it up (imports, data); returns this actor's Ray node id."""
        task = self._task(key, box)
        if hasattr(task, "warm"):
            task.warm()
        return self.node_id

    def run_chunk(self, key: str, box: list[Any], runs: list[Any]) -> list[Any]:
        """Run ``runs`` in order; returns their outcomes (each run's error is its outcome's)."""
        task = self._task(key, box)
        out = []
        for run in runs:
            outcome = task(run)
            outcome.node_id, outcome.executor = self.node_id, "ray"
            out.append(outcome)
        return out

    def run_pickled(self, key: str, box: list[Any], runs: bytes) -> bytes:
        """:meth:`run_chunk` with the runs and the outcomes as ``cloudpickle`` bytes."""
        import cloudpickle

        return cloudpickle.dumps(self.run_chunk(key, box, cloudpickle.loads(runs)))
