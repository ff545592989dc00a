"""Frame rate of the perception stage with each depth mode, measured side by side in one run.

Every mode is a PerceptionPipeline (the node's own code) fed the same frames; the modes take turns
frame by frame, so background load on a shared machine hits them alike. Also times the raw
`session.run` of both models, to relate the whole stage to the sum of the raw model times.

Depth timing does not depend on weights: pass models of the Depth Anything V2 Small architecture
(tools/make_dav2_timing_model.py writes them with random weights) at the full and at the
real-time input size. Their depth values are meaningless, so this measures speed only.

    scripts/env.sh .venv/bin/python -m spatial_caption_ros.tools.bench_depth \
        --full M518.onnx --small M266.onnx
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import os
from pathlib import Path
import platform
import statistics
import sys
import time

import numpy as np

from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.perception.models import cache_dir, repository_root
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.inputs.sources import load_camera_info_file
from spatial_caption_ros.core.types import FrameHeader


@dataclass
class Mode:
    """One configuration under test and its measured frame times."""

    name: str
    values: dict
    pipeline: PerceptionPipeline | None = None
    times: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)


def frames(kitti: Path, count: int):
    """(image, intrinsics) of the KITTI frames, cycled to `count`."""
    images = sorted((kitti / 'image_2').glob('*.jpeg'))[:count]
    loaded = []
    for path in images:
        image = read_image_file(path)
        loaded.append((image, load_camera_info_file(kitti / 'calib' / f'{path.stem}.txt',
                                                    image.width, image.height)))
    return [loaded[i % len(loaded)] for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    root = repository_root()
    shared = root.parent / 'shared' if root else Path('shared')
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--full', type=Path,
                        default=cache_dir() / 'models' / 'depth_anything_v2_vits_timing_518.onnx',
                        help='DA-V2 Small-architecture model at the full input size (518)')
    parser.add_argument('--small', type=Path, required=True,
                        help='the same architecture at the real-time input size')
    parser.add_argument('--kitti', type=Path, default=shared / 'eval' / 'kitti')
    parser.add_argument('--frames', type=int, default=12)
    parser.add_argument('--every', type=int, default=3, help='real-time mode: depth every N')
    args = parser.parse_args(argv)
    base = {'model_dir': str(shared / 'models'), 'backend': 'onnxruntime'}
    dav2 = dict(base, depth_source='depth_anything_v2', depth_scale_source='geometric')
    modes = [
        Mode('detection only (depth none)', dict(base)),
        Mode('geometric depth', dict(base, depth_source='geometric')),
        Mode('DA-V2 full, sequential', dict(dav2, depth_model=str(args.full),
                                            parallel_depth='off')),
        Mode('DA-V2 full, parallel 1+1 threads', dict(dav2, depth_model=str(args.full),
                                                      parallel_depth='on')),
        Mode(f'real-time: DA-V2 small every {args.every}', dict(
            dav2, depth_model=str(args.small), parallel_depth='off',
            depth_every_n_frames=args.every)),
        Mode(f'real-time: DA-V2 full every {args.every}', dict(
            dav2, depth_model=str(args.full), parallel_depth='off',
            depth_every_n_frames=args.every)),
    ]
    for mode in modes:
        mode.pipeline = PerceptionPipeline(build_config(PerceptionConfig, mode.values))
    sequence = frames(args.kitti, args.frames)
    image0, intr0 = sequence[0]
    for mode in modes:                                   # warm-up: first runs allocate
        mode.pipeline.process(image0, FrameHeader(0, 'cam'), intr0)
        mode.pipeline.tracker.reset()
    # Raw session.run of each model on a fixed input, taking its turn in the same loop.
    det = modes[0].pipeline.detector
    raw = {'YOLO11n': (det.backend, {det.input_name: det.preprocess(image0)[0].copy()})}
    for label, mode in (('DA-V2 full', modes[2]), ('DA-V2 small', modes[4])):
        model = mode.pipeline.depth.model
        raw[label] = (model.backend, {model.input_name: model.preprocess(image0)[0].copy()})
    raw_times: dict[str, list[float]] = {label: [] for label in raw}
    for index, (image, intrinsics) in enumerate(sequence):
        for mode in modes:
            t0 = time.perf_counter()
            result = mode.pipeline.process(image, FrameHeader(index + 1, 'cam'), intrinsics)
            mode.times.append((time.perf_counter() - t0) * 1e3)
            for key, value in result.stage_times_ms.items():
                mode.stages.setdefault(key, []).append(value)
        for label, (backend, feeds) in raw.items():
            t0 = time.perf_counter()
            backend.run(feeds)
            raw_times[label].append((time.perf_counter() - t0) * 1e3)
    yolo_ms = statistics.mean(raw_times['YOLO11n'])
    depth_ms = {'full': statistics.mean(raw_times['DA-V2 full']),
                'small': statistics.mean(raw_times['DA-V2 small'])}
    print(f'# bench_depth: {time.strftime("%Y-%m-%d %H:%M")}, {platform.processor() or "cpu"}, '
          f'{os.cpu_count()} cores, {len(sequence)} KITTI frames '
          f'{image0.width}x{image0.height}')
    print(f'# models: full {args.full.name}, small {args.small.name} (random weights: timing '
          'only)')
    print(f'raw session.run (mean, same loop): YOLO11n {yolo_ms:.1f} ms, DA-V2 full '
          f'{depth_ms["full"]:.1f} ms, DA-V2 small {depth_ms["small"]:.1f} ms, YOLO + DA-V2 '
          f'full {yolo_ms + depth_ms["full"]:.1f} ms')
    print()
    print('| mode | mean ms/frame | median | frames/s | x (raw YOLO + raw DA-V2 full) |')
    print('|---|---|---|---|---|')
    raw_sum = yolo_ms + depth_ms['full']
    for mode in modes:
        mean = statistics.mean(mode.times)
        print(f'| {mode.name} | {mean:.0f} | {statistics.median(mode.times):.0f} | '
              f'{1e3 / mean:.2f} | {mean / raw_sum:.2f} |')
    print()
    for mode in modes:
        parts = ', '.join(f'{k} {np.mean(v):.1f}' for k, v in sorted(mode.stages.items()))
        print(f'- {mode.name}: mean stage ms: {parts}')
        mode.pipeline.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
