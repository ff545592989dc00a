"""Cost of the depth stage per frame with 20 objects, each depth source side by side.

Geometric (with and without gravity) and sensor take turns frame by frame.

The frame is a real TUM RGB-D frame (../shared/eval/tum_fr1_rpy: its colour image, its Kinect
depth with holes, its gravity from the ground-truth pose); the 20 detections are boxes of 8
indoor classes spread over the image (the detector is not timed: this is the depth stage alone,
`DepthSource.estimate`, what the pipeline reports as its `depth` stage time). Goal (issue 12):
under 2 ms per frame for 20 objects.

    scripts/env.sh .venv/bin/python -m spatial_caption_ros.tools.bench_depth_cues [--frames N]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import platform
import statistics
import sys
import time

from spatial_caption_ros.core.evaluation.tum import read_tum_sequence
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.perception.depth import BoxStatConfig, DepthInput
from spatial_caption_ros.core.perception.depth.geometric import GeometricDepth
from spatial_caption_ros.core.perception.depth.sensor import SensorDepth
from spatial_caption_ros.core.perception.models import repository_root
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import BoundingBox, Detection

CLASSES = ('cup', 'keyboard', 'mouse', 'laptop', 'chair', 'book', 'tv', 'person')
GOAL_MS = 2.0


def detections(width: int, height: int, count: int = 20) -> list[Detection]:
    """`count` boxes of indoor classes on a 5 x 4 grid, some overlapping, some at the border."""
    out = []
    for k in range(count):
        col, row = k % 5, k // 5
        x0, y0 = col * width / 5 - 10, row * height / 4 + 5
        box = BoundingBox(max(0.0, x0), y0, min(width, x0 + width / 4), min(height, y0 +
                                                                             height / 3))
        out.append(Detection(box, k, CLASSES[k % len(CLASSES)], 0.3 + 0.6 * (k % 3) / 2))
    return out


def main(argv: list[str] | None = None) -> int:
    root = repository_root()
    default = (root.parent / 'shared' / 'eval' / 'tum_fr1_rpy') if root else Path('tum')
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tum', type=Path, default=default)
    p.add_argument('--frames', type=int, default=200)
    args = p.parse_args(argv)
    if not (args.tum / 'associations.txt').is_file():
        print(f'no TUM folder at {args.tum}', file=sys.stderr)
        return 2
    seq = read_tum_sequence(args.tum)
    frame = seq.frames[len(seq.frames) // 2]
    image, kinect = read_image_file(frame.rgb_path), seq.read_depth(frame)
    dets = detections(image.width, image.height)
    knowledge = KnowledgeBase.load()
    modes = {
        'geometric, gravity known': (GeometricDepth(knowledge), DepthInput(
            image, dets, seq.intrinsics, None, frame.gravity)),
        'geometric, gravity known, no surface cue': (
            GeometricDepth(knowledge, surface_consistency=False),
            DepthInput(image, dets, seq.intrinsics, None, frame.gravity)),
        'geometric, no gravity': (GeometricDepth(knowledge), DepthInput(
            image, dets, seq.intrinsics)),
        'sensor (Kinect depth)': (SensorDepth(knowledge, BoxStatConfig()), DepthInput(
            image, dets, seq.intrinsics, kinect)),
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for source, inp in modes.values():
        source.estimate(inp)                                  # warm-up
    for _ in range(args.frames):
        for name, (source, inp) in modes.items():
            t0 = time.perf_counter()
            source.estimate(inp)
            times[name].append((time.perf_counter() - t0) * 1e3)
    print(f'depth stage, {len(dets)} objects per frame, {args.frames} frames each, '
          f'{platform.machine()} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} '
          f'({time.strftime("%Y-%m-%d %H:%M")})')
    print('| source | median ms/frame | mean | p90 | goal |')
    print('|---|---|---|---|---|')
    for name, values in times.items():
        ordered = sorted(values)
        print(f'| {name} | {statistics.median(values):.2f} | {statistics.fmean(values):.2f} | '
              f'{ordered[int(0.9 * (len(ordered) - 1))]:.2f} | < {GOAL_MS} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
