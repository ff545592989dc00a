"""Benchmark the scene memory: update time per scene graph with N remembered objects, queries.

A memory holding N confirmed objects (10 classes spread over a 20 m x 20 m x 2 m room) takes
scene graphs of K objects each, re-observations of remembered objects in front of the camera
with 5 cm noise, from camera poses all over the room (so association, fusion and the "gone"
evidence check all run). Printed: the object update alone (core/memory/store.py), the same with
the SQLite write (WAL, a file in a temporary folder), and each query type. Figures are this
machine's, measured now; no thresholds are asserted.

  python -m spatial_caption_ros.tools.bench_memory --objects 500 --graphs 300   (make bench-memory)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.scene_memory import SceneMemory
from spatial_caption_ros.core.memory.store import MemoryObject, PRESENT
from spatial_caption_ros.core.memory.transforms import Transform
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.runtime.monitoring import percentile
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, FrameHeader, SceneGraph, SceneObject)

CLASSES = ('chair', 'cup', 'book', 'bottle', 'tv', 'laptop', 'keyboard', 'mouse',
           'potted plant', 'couch')
CAMERA = CameraIntrinsics(fx=525.0, fy=525.0, cx=320.0, cy=240.0, width=640, height=480)


def populate(memory: SceneMemory, n: int, rng: np.random.Generator) -> None:
    """N confirmed objects at random places (written to the database in one transaction)."""
    objects = []
    for i in range(1, n + 1):
        p = rng.uniform([-10, -10, 0], [10, 10, 2])
        obj = MemoryObject(i, {CLASSES[i % len(CLASSES)]: 1.0}, p, np.eye(3) * 0.01, 0, 0,
                           times_seen=5, state=PRESENT, frames=deque([0], maxlen=20))
        memory.objects.put(obj)
        objects.append(obj)
    memory.db.write(objects, set(), [])


def look_at(eye: np.ndarray, target: np.ndarray) -> Transform:
    """Camera (optical frame: z forward, y down) at eye looking at target, world z up."""
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return Transform(np.stack([x, y, z], axis=1), eye)


def scene_graph(memory: SceneMemory, k: int, stamp_ns: int,
                rng: np.random.Generator) -> tuple[SceneGraph, Transform]:
    """A graph of up to k remembered objects seen from a random pose, with noise."""
    ids = list(memory.objects.objects)
    target = memory.objects.objects[ids[int(rng.integers(len(ids)))]].position
    eye = target + rng.uniform([-3, -3, 0.5], [3, 3, 1.5])
    pose = look_at(eye, target)
    cam = pose.inverse()
    objects = []
    for oid in rng.permutation(ids):
        obj = memory.objects.objects[int(oid)]
        p = cam.apply(obj.position) + rng.normal(0, 0.05, 3)
        if p[2] < 0.5:
            continue
        u, v = CAMERA.fx * p[0] / p[2] + CAMERA.cx, CAMERA.fy * p[1] / p[2] + CAMERA.cy
        half = 0.15 * CAMERA.fx / p[2]
        if not (half < u < CAMERA.width - half and half < v < CAMERA.height - half):
            continue
        objects.append(SceneObject(
            id=len(objects), class_name=obj.class_name, class_id=0, confidence=0.8,
            box=BoundingBox(u - half, v - half, u + half, v + half), depth=float(p[2]),
            depth_uncertainty=0.05, depth_source='sensor', depth_metric=True,
            position=tuple(float(c) for c in p), metric_width=0.3, metric_height=0.3))
        if len(objects) == k:
            break
    return SceneGraph(FrameHeader(stamp_ns, 'camera'), CAMERA.width, CAMERA.height, objects,
                      [], 'sensor', True, True), pose


def _stats(values: list[float], cpu: list[float] | None = None) -> str:
    text = (f'wall mean {statistics.mean(values):7.3f}  p50 {percentile(values, 50):7.3f}  '
            f'p95 {percentile(values, 95):7.3f} ms')
    if cpu:
        text += f'  | CPU mean {statistics.mean(cpu):7.3f} ms'
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='spatial-caption-bench-memory',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--objects', type=int, default=500, help='remembered objects (default 500)')
    p.add_argument('--graphs', type=int, default=300, help='scene graphs to fuse (default 300)')
    p.add_argument('--per-graph', type=int, default=10, help='objects per graph (default 10)')
    p.add_argument('--queries', type=int, default=200, help='queries of each type (default 200)')
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        # exposure_time 0: the random poses between graphs would read as a fast turn (motion
        # blur, no evidence checked); the benchmark measures the whole evidence path instead
        cfg = build_config(MemoryConfig, {'database': str(Path(tmp) / 'bench.sqlite'),
                                          'keyframes': False, 'exposure_time': 0.0,
                                          'max_objects': max(5000, 2 * args.objects)})
        memory = SceneMemory(cfg)
        populate(memory, args.objects, rng)
        update_ms, total_ms, storage_ms, sizes, total_cpu, update_cpu = [], [], [], [], [], []
        for n in range(args.graphs):
            graph, pose = scene_graph(memory, args.per_graph, (n + 1) * 100_000_000, rng)
            sizes.append(len(graph.objects))
            t0, c0 = time.perf_counter(), time.thread_time()
            out = memory.update(graph, pose, CAMERA)
            total_ms.append((time.perf_counter() - t0) * 1e3)
            total_cpu.append((time.thread_time() - c0) * 1e3)
            update_ms.append(out.timings_ms['memory_update'])
            update_cpu.append(out.timings_ms['memory_update_cpu'])
            storage_ms.append(out.timings_ms['storage'])
        remembered = len(memory.objects.objects)
        some = memory.objects.remembered()
        queries = {
            'objects of a class': lambda i: memory.objects.query(class_name=CLASSES[i % 10]),
            'near a point, 2 m': lambda i: memory.objects.query(
                point=tuple(some[i % len(some)].position), radius=2.0),
            'near an object, 1 m': lambda i: memory.objects.query(
                near_object=some[i % len(some)].id, radius=1.0),
            'seen since a time': lambda i: memory.objects.query(since_ns=i * 100_000_000),
            'last seen (class)': lambda i: memory.objects.last_seen(class_name=CLASSES[i % 10]),
            'changes since a time': lambda i: memory.objects.changes_since(i * 100_000_000),
        }
        query_ms, query_cpu, answers = {}, {}, {}
        for name, fn in queries.items():
            times, cpu, sizes_q = [], [], []
            for i in range(args.queries):
                t0, c0 = time.perf_counter(), time.thread_time()
                found = fn(i)
                times.append((time.perf_counter() - t0) * 1e3)
                cpu.append((time.thread_time() - c0) * 1e3)
                sizes_q.append(len(found) if isinstance(found, list) else int(found is not None))
            query_ms[name], query_cpu[name], answers[name] = times, cpu, statistics.mean(sizes_q)
        memory.close()
    print(f'scene memory benchmark: {args.objects} remembered objects at the start '
          f'({remembered} at the end), {args.graphs} graphs of {statistics.mean(sizes):.1f} '
          f'objects (mean), {args.queries} queries of each type')
    print(f'  update, objects only (association, fusion, gone evidence): '
          f'{_stats(update_ms, update_cpu)}')
    print(f'  SQLite write of the update (WAL, one transaction):           {_stats(storage_ms)}')
    print(f'  update + write (what the node spends per graph):            '
          f'{_stats(total_ms, total_cpu)}')
    for name, times in query_ms.items():
        print(f'  query {name:22} ({answers[name]:5.1f} answers): '
              f'{_stats(times, query_cpu[name])}')
    print('  wall: elapsed time (includes waiting for a core on a loaded machine); CPU: this '
          "thread's CPU time")
    print('  goals (issue 14): update <= 2 ms per graph with 500 objects, a query <= 5 ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
