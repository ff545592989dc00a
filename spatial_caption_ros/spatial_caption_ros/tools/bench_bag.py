"""Benchmark of spatial-caption-bag: its per-frame time beside the core pipeline's own.

On the first N frames of the TUM fr1_rpy slice (written as an MCAP recording first):
- core: PerceptionPipeline.process + SceneGraphBuilder.build + Captioner.caption on frames
  already decoded in memory (no reading, no drawing, no writing: the stages alone);
- bag: `spatial-caption-bag` on the recording (reading, deserializing, the same stages, drawing,
  serializing, the files, the MCAP and the report), model loading excluded;
measured in turns (core, bag, core, bag...) so that a busy machine slows both alike, in wall
clock and CPU time. With
--ray-workers, the bag run again as Ray tasks (chunks of --chunk-frames) with each worker count.
Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import tempfile
import time

import cv2
import numpy as np

from spatial_caption_ros.bag.processor import effective_params, OFFLINE_CAPTION_TIMEOUT_S, Stages
from spatial_caption_ros.bag.tum import (
    DEPTH_UNIT_M, frame_stamp_ns, TUM, tum_frames, write_tum_recording)
from spatial_caption_ros.cli import bag
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.inputs.sources import load_camera_info_file
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.params_file import load_params, section


def core_frames(count: int) -> list[tuple]:
    """(image, header, intrinsics, depth in metres) of the first frames, decoded beforehand."""
    intrinsics = load_camera_info_file(TUM / 'camera.yaml', 640, 480)
    out = []
    for frame in tum_frames(count):
        image = ColorImage(cv2.cvtColor(cv2.imread(str(frame.rgb_path)), cv2.COLOR_BGR2RGB),
                           'rgb')
        metres = cv2.imread(str(frame.depth_path), cv2.IMREAD_UNCHANGED).astype(np.float32)
        metres *= np.float32(DEPTH_UNIT_M)
        metres[metres <= 0] = np.nan
        out.append((image, FrameHeader(frame_stamp_ns(frame), 'camera_color_optical_frame'),
                    intrinsics, metres))
    return out


def core_pass(frames: list[tuple], params: dict) -> tuple[float, float]:
    """(wall, CPU) seconds per frame of the core stages alone, on a fresh pipeline.

    Fresh as in one bag run; CPU counts every thread of the process (the models' included).
    """
    stages = Stages(params)
    t0, c0 = time.perf_counter(), time.process_time()
    for image, header, intrinsics, depth in frames:
        graph = stages.builder.build(stages.perception.process(image, header, intrinsics, depth))
        stages.captioner.caption(graph)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages.close()
    return wall / len(frames), cpu / len(frames)


def bag_pass(recording: Path, out: Path, args: list[str]) -> dict:
    """The bag command's timings (run.json) and seconds per frame without the model load."""
    code = bag.main([str(recording), '--output', str(out), '--restart', '--quiet', *args])
    if code != 0:
        raise SystemExit(f'spatial-caption-bag failed with {code}')
    run = json.loads((out / bag.RUN_FILE).read_text())
    t = run['timing_s']
    c = run['cpu_s']
    run['per_frame_s'] = (t['plan_s'] + t['process_s'] + t['finish_s']) / run['frames']
    run['cpu_per_frame_s'] = (c['plan_s'] + c['process_s'] + c['finish_s']) / run['frames']
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='bench_bag', description=__doc__.split('\n\n')[0])
    p.add_argument('--frames', type=int, default=12, help='TUM frames (default 12)')
    p.add_argument('--generator', choices=('llm', 'template'), action='append',
                   help='caption generators to measure (default: both)')
    p.add_argument('--turns', type=int, default=3, help='measurements of each (default 3)')
    p.add_argument('--ray-workers', default='', metavar='1,2',
                   help='also time --ray local with these worker counts (needs ray)')
    p.add_argument('--ray-frames', type=int, default=24, help='frames of the Ray runs')
    p.add_argument('--chunk-frames', type=int, default=6, help='frames per Ray task')
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix='bench_bag_'))
    recording = write_tum_recording(tmp / 'tum', 'mcap', args.frames)
    frames = core_frames(args.frames)
    print(f'TUM fr1_rpy, first {args.frames} frames, MCAP; caption timeout '
          f'{OFFLINE_CAPTION_TIMEOUT_S:.0f} s in both (offline runs never time out)')
    print('ms per frame, wall clock and CPU time (all threads of the process; less disturbed\n'
          'by the other programs on a shared machine than the wall clock)')
    print(f'{"generator":<10} {"turn":>4} {"core wall":>9} {"bag wall":>9} {"wall x":>7} '
          f'{"core cpu":>9} {"bag cpu":>9} {"cpu x":>7}  bag wall s: plan, load, process, '
          'finish')
    for generator in args.generator or ['template', 'llm']:
        params = load_params()
        section(params, 'caption')['generator'] = generator
        core_params = effective_params(params)
        walls, cpus = [], []
        for turn in range(args.turns):
            core, core_cpu = core_pass(frames, core_params)
            run = bag_pass(recording, tmp / 'out', ['--set', f'caption.generator={generator}'])
            walls.append((core, run['per_frame_s']))
            cpus.append((core_cpu, run['cpu_per_frame_s']))
            t = run['timing_s']
            print(f'{generator:<10} {turn + 1:>4} {core * 1e3:>9.1f} '
                  f'{run["per_frame_s"] * 1e3:>9.1f} {run["per_frame_s"] / core:>7.3f} '
                  f'{core_cpu * 1e3:>9.1f} {run["cpu_per_frame_s"] * 1e3:>9.1f} '
                  f'{run["cpu_per_frame_s"] / core_cpu:>7.3f}  {t["plan_s"]:.2f}, '
                  f'{t["load_s"]:.2f}, {t["process_s"]:.2f}, {t["finish_s"]:.2f}')
        core_w, bag_w = (sum(x) / len(walls) for x in zip(*walls, strict=True))
        core_c, bag_c = (sum(x) / len(cpus) for x in zip(*cpus, strict=True))
        print(f'{generator:<10} mean of {args.turns} turns ({args.frames} frames each): wall '
              f'core {core_w * 1e3:.1f}, bag {bag_w * 1e3:.1f} ms/frame, ratio '
              f'{bag_w / core_w:.3f}; CPU core {core_c * 1e3:.1f}, bag {bag_c * 1e3:.1f} '
              f'ms/frame, ratio {bag_c / core_c:.3f}')
    workers = [int(w) for w in args.ray_workers.split(',') if w]
    if workers:
        ray_rec = write_tum_recording(tmp / 'tum_ray', 'mcap', args.ray_frames)
        print(f'\nRay: {args.ray_frames} frames in chunks of {args.chunk_frames} '
              '(default generator: llm)')
        print(f'{"workers":>7} {"wall s":>8} {"ray start s":>12} {"process s":>10} '
              f'{"frames/s":>9} {"speed-up":>9}')
        first = None
        for w in workers:
            t0 = time.perf_counter()
            run = bag_pass(ray_rec, tmp / f'ray{w}', ['--ray', 'local', '--workers', str(w),
                                                      '--chunk-frames', str(args.chunk_frames)])
            wall = time.perf_counter() - t0
            t = run['timing_s']
            first = first or t['process_s']
            print(f'{w:>7} {wall:>8.1f} {t["load_s"]:>12.1f} {t["process_s"]:>10.1f} '
                  f'{run["frames"] / t["process_s"]:>9.2f} {first / t["process_s"]:>9.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
