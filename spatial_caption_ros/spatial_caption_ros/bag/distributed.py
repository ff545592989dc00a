"""Many recordings (or chunks of long ones) as Ray tasks, each on the core stages.

Ray is optional (`pip install ray`); the local run needs none of it. A task runs the same
process_chunk() as the local run and returns its frame records to the driver, which writes every
output file, so workers need to read the recordings (shared storage on a cluster) but never the
output folder. Each worker process loads the models once and reuses them for its tasks.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import os
from typing import Any

from spatial_caption_ros.bag.processor import FrameRecord, Plan, process_chunk, Stages

_STAGES: dict[str, Stages] = {}


def _stages(params: dict[str, Any]) -> Stages:
    key = json.dumps(params, sort_keys=True)
    if key not in _STAGES:
        _STAGES[key] = Stages(params)
    return _STAGES[key]


def run_chunk(plan: Plan, chunk: list[int], params: dict[str, Any],
              skip: set[int]) -> tuple[list[FrameRecord], list[str], list[dict[str, Any]]]:
    """One Ray task: a chunk's records, and the recording's problems and skipped items."""
    records = list(process_chunk(plan, chunk, _stages(params), skip))
    return records, plan.problems, plan.skipped


def ray_init(address: str, workers: int) -> Any:
    """Start Ray locally with `workers` CPUs (address 'local') or join the cluster at address."""
    try:
        import ray
    except ImportError:
        raise SystemExit('--ray needs Ray: pip install ray (an optional dependency)') from None
    env = {k: v for k, v in os.environ.items()
           if k.startswith(('ROS_', 'AMENT_', 'RMW_', 'FASTDDS_', 'SPATIAL_CAPTION_'))
           or k in ('LD_LIBRARY_PATH', 'PYTHONPATH')}
    kwargs: dict[str, Any] = {'runtime_env': {'env_vars': env}, 'log_to_driver': False,
                              'include_dashboard': False, 'ignore_reinit_error': True}
    if address == 'local':
        kwargs['num_cpus'] = workers
    else:
        kwargs['address'] = address
    ray.init(**kwargs)
    return ray


def run_on_ray(ray: Any, jobs: list[tuple[Plan, list[int], dict[str, Any], set[int]]],
               on_record: Callable[[Plan, FrameRecord], None]) -> None:
    """Run every (plan, chunk, params, finished frames) job as a task; records as they finish."""
    task = ray.remote(num_cpus=1)(run_chunk)
    pending = {task.remote(*job): job[0] for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        plan = pending.pop(done[0])
        records, problems, skipped = ray.get(done[0])
        plan.problems.extend(p for p in problems if p not in plan.problems)
        plan.skipped.extend(s for s in skipped if s not in plan.skipped)
        for record in records:
            on_record(plan, record)
