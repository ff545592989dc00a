"""Benchmark the scene-graph builder on synthetic frames of 10 to 200 objects; prints ms.

The k-NN graph (default k) and the all-pairs graph (knn_k=0) are timed side by side in one run,
on the same frames, so their ratio is meaningful even on a busy machine. Frames are random but
seeded: objects of random COCO classes with boxes spread over a 1280x720 image, and (unless
--no-depth) metric depth with uncertainty and 3D positions as the geometric source gives them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import DetectionResult
from spatial_caption_ros.tools.synthetic import synthetic_frame

def time_build(builder: SceneGraphBuilder, frame: DetectionResult, repeats: int
               ) -> tuple[float, float, int]:
    """Median and minimum milliseconds of builder.build(frame), and the number of relations.

    The minimum is what the code costs when nothing else runs; the median includes what other
    processes on the machine take from it.
    """
    times, relations = [], 0
    for _ in range(repeats):
        work = copy.deepcopy(frame)            # build() writes into the objects
        t0 = time.perf_counter()
        graph = builder.build(work)
        times.append((time.perf_counter() - t0) * 1e3)
        relations = len(graph.relations)
    return statistics.median(times), min(times), relations


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='spatial-caption-bench-graph',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--sizes', default='10,50,100,200', help='object counts (comma-separated)')
    p.add_argument('--repeats', type=int, default=30, help='timed builds per size (median)')
    p.add_argument('--k', type=int, default=SceneGraphConfig().knn_k, help='k of the k-NN graph')
    p.add_argument('--no-depth', action='store_true', help='objects without depth')
    p.add_argument('--json', action='store_true', help='print one JSON line per size')
    args = p.parse_args(argv)
    knowledge = KnowledgeBase.load()
    classes = knowledge.class_names()
    knn = SceneGraphBuilder(SceneGraphConfig(knn_k=args.k), knowledge)
    full = SceneGraphBuilder(SceneGraphConfig(knn_k=0), knowledge)
    if not args.json:
        load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
        print(f'scene-graph build time in ms, median (min) of {args.repeats} builds; depth: '
              f'{"none" if args.no_depth else "metric"}; {os.cpu_count()} cores, load '
              f'{load:.1f}')
        print(f'{"objects":>8} {"k-NN k=" + str(args.k):>16} {"relations":>10} '
              f'{"all pairs":>16} {"relations":>10} {"ratio":>6}')
    for n in (int(s) for s in args.sizes.split(',') if s.strip()):
        frame = synthetic_frame(n, seed=n, with_depth=not args.no_depth, classes=classes)
        knn_ms, knn_min, knn_rel = time_build(knn, frame, args.repeats)
        full_ms, full_min, full_rel = time_build(full, frame, max(3, args.repeats // 3))
        if args.json:
            print(json.dumps({'objects': n, 'knn_k': args.k, 'knn_ms': round(knn_ms, 3),
                              'knn_min_ms': round(knn_min, 3), 'knn_relations': knn_rel,
                              'all_pairs_ms': round(full_ms, 3),
                              'all_pairs_min_ms': round(full_min, 3),
                              'all_pairs_relations': full_rel}))
        else:
            knn_text = f'{knn_ms:.2f} ({knn_min:.2f})'
            full_text = f'{full_ms:.1f} ({full_min:.1f})'
            print(f'{n:>8} {knn_text:>16} {knn_rel:>10} {full_text:>16} {full_rel:>10} '
                  f'{full_ms / knn_ms:>6.1f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
