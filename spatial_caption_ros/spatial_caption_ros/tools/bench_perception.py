r"""spatial-caption-bench: time the perception stage exactly as the node runs it.

Side by side with the raw model runs, and through the real perception node.

    spatial-caption-bench                                     # YOLO11n on bus.jpg, no depth
    spatial-caption-bench --depth-source depth_anything_v2 \
        --depth-model depth_anything_v2_small_timing
    spatial-caption-bench --backend tensorrt --frames 500 --json out.json     # on a GPU

Every iteration runs, one after the other on the same image: JPEG decode, the core
PerceptionPipeline.process() (what the node calls), the raw ONNX Runtime `session.run` of the
detector on a prepared input, and the raw `session.run` of the depth model when one is
configured. Medians of each are reported with the ratios

  detection stage / raw detector run            (preprocess + inference + postprocess)
  whole stage / sum of the raw model runs       (detection + depth + per-object depth)

so machine load (other processes on a shared machine) affects numerator and denominator alike.
Then the node path, side by side: per frame, process() alone, publish -> detections through a
PerceptionNode in this process, and through a perception node in its own process (the shipped
Fast DDS profile), in rotating order (real rclpy, loopback DDS); the ratio in-process node /
process() and the milliseconds the separate process adds are printed, and the path cost: each
frame's latency minus the node's own process() time for that frame (from its DetectionArray), the
transport, conversions and hand-offs alone (`--repeats N`: N such runs, for the spread on a
loaded machine).
Nothing here asserts a time: it prints measurements.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import random
import statistics
import sys
import time
from typing import Any

import numpy as np

STAGE_ORDER = ('decode', 'preprocess', 'inference', 'postprocess', 'depth')
DETECTION_STAGES = ('preprocess', 'inference', 'postprocess')


def default_image() -> Path | None:
    from spatial_caption_ros.core.perception.models import shared_path
    return shared_path('data', 'images', 'bus.jpg')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='spatial-caption-bench', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--image', type=Path, default=default_image(),
                   help='JPEG/PNG image to run on (default ../shared/data/images/bus.jpg)')
    p.add_argument('--frames', type=int, default=30, help='timed iterations (default 30)')
    p.add_argument('--warmup', type=int, default=3, help='untimed iterations first (default 3)')
    p.add_argument('--backend', default=None, help='perception backend (auto/onnxruntime/'
                                                   'tensorrt; default: the parameter default)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads per model')
    p.add_argument('--detector-model', default=None, help='detector name or path')
    p.add_argument('--model-dir', default=None, help='folder of the named models')
    p.add_argument('--depth-source', default=None, help='depth_source parameter')
    p.add_argument('--depth-model', default=None,
                   help='depth model name or path (depth_model parameter; also timed raw)')
    p.add_argument('--set', action='append', default=[], metavar='PARAM=VALUE',
                   help='any other perception parameter (YAML value), repeatable')
    p.add_argument('--node-frames', type=int, default=20,
                   help='frames published through the real node (0: skip the node run)')
    p.add_argument('--node-modes', default=','.join(NODE_MODES),
                   help='node paths timed beside process(): in-process, processes or both '
                        '(default both)')
    p.add_argument('--repeats', type=int, default=1,
                   help='repeat the node-path measurement N times (spread on a loaded machine)')
    p.add_argument('--json', type=Path, help='also write the figures to this JSON file')
    return p.parse_args(argv)


def perception_values(args: argparse.Namespace) -> dict[str, Any]:
    """Perception parameter values from the command line (unset ones keep their defaults)."""
    values: dict[str, Any] = {}
    for key, arg in (('backend', args.backend), ('threads', args.threads),
                     ('detector_model', args.detector_model), ('model_dir', args.model_dir),
                     ('depth_source', args.depth_source), ('depth_model', args.depth_model)):
        if arg is not None:
            values[key] = arg
    from spatial_caption_ros.params_file import parse_set
    for item in args.set:
        _, name, value = parse_set(item, nodes=('perception',), default_node='perception')
        values[name] = value
    return values


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float('nan')


class RawRunner:
    """The bare `session.run` of one model on a fixed input: the denominator of the ratios."""

    def __init__(self, label: str, run, feeds: dict[str, np.ndarray]) -> None:
        self.label, self._run, self.feeds = label, run, feeds
        self.times: list[float] = []

    def __call__(self, record: bool) -> None:
        t0 = time.perf_counter()
        self._run(self.feeds)
        if record:
            self.times.append((time.perf_counter() - t0) * 1e3)


def detector_raw_runner(pipeline, image) -> RawRunner:
    """Raw run of the pipeline's own detector session on the preprocessed image."""
    blob, _ = pipeline.detector.preprocess(image)
    feeds = {pipeline.detector.input_name: blob.copy()}
    backend = pipeline.backend
    session = getattr(backend, 'session', None)
    if session is not None:     # ONNX Runtime: exactly session.run, with a fresh output array
        return RawRunner('raw detector session.run', lambda f: session.run(None, f), feeds)
    return RawRunner(f'raw detector {backend.info.backend} run', backend.run, feeds)


def depth_raw_runner(name: str, config, threads: int) -> RawRunner | None:
    """Raw run of the depth model on the stage's backend (its own instance, same threads).

    ONNX Runtime: exactly `session.run`, with spinning off so its idle threads do not slow the
    next measured run on few cores (costs well under 1 % of a 0.8 s depth run). TensorRT: the
    engine run (input copy, execute, output copy).
    """
    if not name:
        return None
    from spatial_caption_ros.core.perception.backends import create_backend
    from spatial_caption_ros.core.perception.models import resolve_model
    path = resolve_model(name, config.model_dir or None, task='depth')
    run = config.inference
    backend = create_backend(path, run.backend, threads=threads, fp16=run.fp16,
                             cache_dir=run.engine_cache_dir or None, io_binding=False,
                             allow_spinning=False)
    inp = backend.inputs[0]
    shape = [d if d else (1 if i == 0 else 3 if i == 1 else 518)
             for i, d in enumerate(inp.shape)]
    feeds = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    session = getattr(backend, 'session', None)
    if session is not None:
        return RawRunner(f'raw depth session.run ({path.name})',
                         lambda f: session.run(None, f), feeds)
    return RawRunner(f'raw depth {backend.info.backend} run ({path.name})', backend.run, feeds)


def bench_pipeline(values: dict[str, Any], image_path: Path, frames: int,
                   warmup: int) -> dict[str, Any]:
    """Per-stage medians of the core pipeline and the raw runs, interleaved per iteration."""
    from spatial_caption_ros.core.inputs.image import compressed_to_color
    from spatial_caption_ros.core.params import build_config, param_fields
    from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
    from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader

    known = {f.name for f, _ in param_fields(PerceptionConfig)}
    notes = []
    depth_model = values.get('depth_model', '')
    if depth_model and 'depth_model' not in known:
        values = {k: v for k, v in values.items() if k != 'depth_model'}
        notes.append('this build of the perception stage has no depth_model parameter: the '
                     'depth model is timed raw only, not inside the stage')
    config = build_config(PerceptionConfig, values)
    jpeg = image_path.read_bytes()
    first = compressed_to_color('jpeg', jpeg)
    intrinsics = CameraIntrinsics.from_horizontal_fov(60.0, first.width, first.height)
    pipeline = PerceptionPipeline(config)
    try:
        runners = [detector_raw_runner(pipeline, first)]
        depth_runner = depth_raw_runner(
            depth_model, config, config.depth.threads or config.detector.threads)
        if depth_runner is not None:
            runners.append(depth_runner)
        stages: dict[str, list[float]] = {}
        totals: list[float] = []
        n_objects = 0
        for i in range(warmup + frames):
            record = i >= warmup
            t0 = time.perf_counter()
            image = compressed_to_color('jpeg', jpeg)
            decode_ms = (time.perf_counter() - t0) * 1e3
            # Alternate which of the stage and the raw detector run comes first, so neither
            # always follows the JPEG decode or the depth run (both evict the detector from the
            # CPU caches: measured 7 % slower right after the decode).
            raw_first = i % 2 == 1
            if raw_first:
                runners[0](record)
            result = pipeline.process(image, FrameHeader(i, 'camera'), intrinsics)
            for runner in runners[0 if not raw_first else 1:]:
                runner(record)
            if record:
                stages.setdefault('decode', []).append(decode_ms)
                for key, value in result.stage_times_ms.items():
                    stages.setdefault(key, []).append(value)
                stages.setdefault('detection stage', []).append(
                    sum(result.stage_times_ms.get(k, 0.0) for k in DETECTION_STAGES))
                totals.append(result.processing_latency * 1e3)
                n_objects = len(result.objects)
        medians = {k: _median(v) for k, v in stages.items()}
        whole = _median(totals)
        raw = {r.label: _median(r.times) for r in runners}
        raw_det = _median(runners[0].times)
        out: dict[str, Any] = {
            'describe': pipeline.describe(), 'objects': n_objects, 'notes': notes,
            'stages_ms': medians, 'whole_stage_ms': whole,
            'whole_stage_fps': 1e3 / whole if whole else float('nan'),
            'raw_ms': raw,
            'ratio_detection_stage_to_raw': medians['detection stage'] / raw_det,
        }
        if depth_runner is not None and 'depth_model' in known:
            raw_sum = raw_det + _median(depth_runner.times)
            out['raw_sum_ms'] = raw_sum
            out['ratio_whole_stage_to_raw_sum'] = whole / raw_sum
            out['slower_model_ms'] = max(raw_det, _median(depth_runner.times))
        return out
    finally:
        pipeline.close()


NODE_MODES = ('in-process', 'processes')


def _node_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """Perception parameters of the benchmarked nodes: the given ones, reliable input.

    Reliable input, one frame at a time: no frame can be lost, so every round trip is timed.
    """
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    out['input_qos'] = 'reliable'
    return out


def bench_node_paths(values: dict[str, Any], image_path: Path, frames: int,
                     modes: tuple[str, ...] = NODE_MODES, warmup: int = 2,
                     timeout_s: float = 120.0) -> dict[str, Any]:
    """process() and the real perception node, side by side, one frame at a time.

    Every iteration publishes the same frame (Image + CameraInfo, built before the clock starts,
    as a camera driver would) and times publish -> detections received: through a
    PerceptionNode in this process (the executor the node processes use, ros/spin.py) and, with
    'processes', through a perception node in its own process started like the runner's
    (Fast DDS profile config/fastdds_large_images.xml for both sides), then runs the core
    PerceptionPipeline.process() itself on the decoded frame. The order rotates per iteration
    so that none always follows another, and machine load affects all of them alike.
    """
    from spatial_caption_ros.core.runtime.resources import package_file
    from spatial_caption_ros.ros.graph import DDS_PROFILE_FILE
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 200)))
    os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(package_file(DDS_PROFILE_FILE)))
    import tempfile

    import rclpy
    import yaml
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image
    from spatial_caption_interfaces.msg import DetectionArray

    from spatial_caption_ros.core.inputs.image import read_image_file
    from spatial_caption_ros.core.perception.pipeline import PerceptionPipeline
    from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader
    from spatial_caption_ros.nodes.perception_node import PerceptionNode
    from spatial_caption_ros.ros import conversions
    from spatial_caption_ros.ros.graph import spawn_node, stop_processes
    from spatial_caption_ros.ros.qos import qos_profile
    from spatial_caption_ros.ros.spin import node_executor, spin_once

    image = read_image_file(image_path)
    intrinsics = CameraIntrinsics.from_horizontal_fov(60.0, image.width, image.height)
    params = _node_parameters(values)
    rclpy.init()
    base = f'/bench{os.getpid()}'
    executor = node_executor()
    nodes, procs, logs = [], [], []
    # per mode: stamp -> (arrival time, the node's own process() time for that frame in ms)
    received: dict[str, dict[int, tuple[float, float]]] = {m: {} for m in modes}
    publishers: dict[str, tuple] = {}
    tmp = tempfile.TemporaryDirectory(prefix='spatial_caption_bench_')
    try:
        client = rclpy.create_node('bench_client', namespace=base)
        nodes.append(client)
        for mode in modes:
            ns = f'{base}/{mode.replace("-", "_")}'
            if mode == 'in-process':
                node = PerceptionNode(namespace=ns, parameter_overrides=[
                    Parameter(k, value=v) for k, v in params.items()])
                nodes.append(node)
                if not node.active:
                    raise SystemExit(f'perception node did not start: {node.last_error}')
            else:
                params_file = Path(tmp.name) / 'perception.yaml'
                params_file.write_text(yaml.safe_dump({'/**/perception': {
                    'ros__parameters': params}}), encoding='utf-8')
                logs.append(open(Path(tmp.name) / 'perception.log', 'w', encoding='utf-8'))
                procs.append(spawn_node('perception', params_file, {'__ns': ns},
                                        dict(os.environ), logs[-1]))
            client.create_subscription(
                DetectionArray, f'{ns}/detections',
                lambda m, stamps=received[mode]: stamps.setdefault(
                    conversions.stamp_to_ns(m.header.stamp),
                    (time.perf_counter(), _process_ms(m))),
                qos_profile('reliable'))
            publishers[mode] = (
                client.create_publisher(Image, f'{ns}/image', qos_profile('reliable')),
                client.create_publisher(CameraInfo, f'{ns}/camera_info', qos_profile('reliable')))
        for node in nodes:
            executor.add_node(node)

        def spin_until(predicate, limit: float) -> bool:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline and not predicate():
                spin_once(executor, 0.05)
            return predicate()

        def connected() -> bool:
            return all(pub.get_subscription_count() >= 1
                       and client.count_publishers(f'{base}/{m.replace("-", "_")}/detections')
                       for m, (pub, _) in publishers.items())
        if not spin_until(connected, 60.0):
            raise SystemExit('perception node(s) not connected after 60 s'
                             + (f'; see {tmp.name}/perception.log' if procs else ''))
        pipeline = PerceptionPipeline(nodes[1].config if 'in-process' in modes
                                      else _pipeline_config(values))
        times: dict[str, list[float]] = {m: [] for m in ('process()',) + modes}
        path: dict[str, list[float]] = {m: [] for m in modes}
        path_ratio: dict[str, list[float]] = {m: [] for m in modes}
        steps = ('process()',) + modes
        for i in range(1, warmup + frames + 1):
            header = FrameHeader(time.time_ns(), 'camera_optical_frame')
            info = conversions.intrinsics_to_camera_info(intrinsics, header)
            msg = conversions.color_to_image_msg(image, header)
            for step in steps[i % len(steps):] + steps[:i % len(steps)]:
                if step == 'process()':
                    decoded = conversions.image_msg_to_color(msg)
                    t0 = time.perf_counter()
                    pipeline.process(decoded, header, intrinsics)
                    elapsed = time.perf_counter() - t0
                else:
                    # stamped now, as a camera would: the node's input_age is then the time
                    # from publish to its worker (only setting the stamp, no copy)
                    stamp_ns = time.time_ns()
                    msg.header.stamp = info.header.stamp = conversions.ns_to_stamp(stamp_ns)
                    image_pub, info_pub = publishers[step]
                    info_pub.publish(info)
                    t0 = time.perf_counter()
                    image_pub.publish(msg)
                    if not spin_until(lambda s=step, n=stamp_ns: n in received[s], timeout_s):
                        raise SystemExit(f'no detections for frame {i} from the {step} node '
                                         f'after {timeout_s:.0f} s' + _child_log(procs, tmp))
                    arrived, inner_ms = received[step][stamp_ns]
                    elapsed = arrived - t0
                    if i > warmup:
                        path[step].append(elapsed * 1e3 - inner_ms)
                        path_ratio[step].append(elapsed * 1e3 / inner_ms)
                if i > warmup:
                    times[step].append(elapsed * 1e3)
        pipeline.close()
        medians = {k: _median(v) for k, v in times.items()}
        out: dict[str, Any] = {'frames': frames, 'executor': type(executor).__name__,
                               'median_ms': medians,
                               'max_ms': {k: max(v) for k, v in times.items()},
                               'path_ms': {k: _median(v) for k, v in path.items()},
                               'path_ratio': {k: _median(v) for k, v in path_ratio.items()}}
        # Paired per frame (the three ran within a second of each other), so that load changing
        # over the run cancels out; the ratio of the medians is kept beside it.
        base_times = times['process()']
        if 'in-process' in modes:
            out['ratio_in_process'] = _median(
                [n / b for n, b in zip(times['in-process'], base_times, strict=True)])
            out['ratio_of_medians_in_process'] = medians['in-process'] / medians['process()']
            out['node_stage_ms'] = {k: v[1] for k, v in nodes[1].timings.summary().items()}
        if 'processes' in modes:
            out['processes_overhead_ms'] = _median(
                [n - b for n, b in zip(times['processes'], base_times, strict=True)])
            out['difference_of_medians_processes_ms'] = medians['processes'] - medians['process()']
        return out
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        stop_processes(procs)
        for f in logs:
            f.close()
        tmp.cleanup()
        rclpy.try_shutdown()


def _process_ms(msg) -> float:
    """The node's own PerceptionPipeline.process() time for a frame, from its DetectionArray.

    processing_latency is process() plus the node's decode and depth matching (stage_times).
    """
    stages = {kv.key: float(kv.value) for kv in msg.stage_times}
    return (msg.processing_latency * 1e3 - stages.get('decode', 0.0)
            - stages.get('depth_match', 0.0))


def _child_log(procs: list, tmp) -> str:
    """State and last lines of the perception node process, for an error message."""
    if not procs:
        return ''
    state = 'running' if procs[0].poll() is None else f'exited with {procs[0].returncode}'
    lines = (Path(tmp.name) / 'perception.log').read_text(encoding='utf-8').splitlines()
    return f'; the node process is {state}; its last log lines:\n' + '\n'.join(lines[-15:])


def _pipeline_config(values: dict[str, Any]):
    from spatial_caption_ros.core.params import build_config
    from spatial_caption_ros.core.perception.pipeline import PerceptionConfig
    return build_config(PerceptionConfig, values)


def format_node_paths(node: dict[str, Any], run: int = 1, runs: int = 1) -> list[str]:
    """Lines of one side-by-side node-path measurement."""
    med, peak = node['median_ms'], node['max_ms']
    label = f'node path, run {run} of {runs}' if runs > 1 else 'node path'
    lines = [f'{label} ({node["frames"]} frames one at a time, publish -> detections, '
             f'{node["executor"]}; medians, max in brackets; ratio and overhead paired per '
             'frame):']
    lines.append(f'  {"process() alone":32s} {med["process()"]:9.2f}  ({peak["process()"]:.1f})')
    if 'ratio_in_process' in node:
        lines.append(f'  {"node in this process":32s} {med["in-process"]:9.2f}  '
                     f'({peak["in-process"]:.1f})   ratio to process(): '
                     f'{node["ratio_in_process"]:.3f} (goal <= 1.15; of the medians '
                     f'{node["ratio_of_medians_in_process"]:.3f})')
    if 'processes_overhead_ms' in node:
        lines.append(f'  {"node in its own process":32s} {med["processes"]:9.2f}  '
                     f'({peak["processes"]:.1f})   over process(): '
                     f'{node["processes_overhead_ms"]:+.1f} ms (goal <= +12; of the medians '
                     f'{node["difference_of_medians_processes_ms"]:+.1f})')
    for mode, ms in node['path_ms'].items():
        lines.append(f'  path cost {mode + ":":21s} {ms:9.2f}   latency minus the node\'s own '
                     f'process() of the same frame; latency / that process(): '
                     f'{node["path_ratio"][mode]:.3f}')
    return lines


def format_report(pipe: dict[str, Any], node_runs: list[dict[str, Any]] | None,
                  frames: int) -> str:
    """The printed table."""
    lines = []
    d = pipe['describe']
    lines.append(f'perception stage: {d.get("backend")} {d.get("device")} {d.get("precision")}, '
                 f'detector {Path(d.get("detector_model", "")).name} '
                 f'({d.get("detector_input")}), depth {d.get("depth_source")}, '
                 f'{pipe["objects"]} objects; medians of {frames} frames')
    lines.append(f'{"stage":34s} {"ms":>9s}')
    stages = pipe['stages_ms']
    ordered = [k for k in STAGE_ORDER if k in stages] + sorted(
        k for k in stages if k not in STAGE_ORDER and k != 'detection stage')
    for key in ordered:
        lines.append(f'  {key:32s} {stages[key]:9.2f}')
    lines.append(f'  {"detection stage (pre+inf+post)":32s} {stages["detection stage"]:9.2f}')
    lines.append(f'  {"whole stage (process())":32s} {pipe["whole_stage_ms"]:9.2f}'
                 f'   = {pipe["whole_stage_fps"]:.1f} frames/s (decode excluded)')
    for label, value in pipe['raw_ms'].items():
        lines.append(f'  {label:32s} {value:9.2f}')
    lines.append(f'ratio detection stage / raw detector run: '
                 f'{pipe["ratio_detection_stage_to_raw"]:.3f} (goal <= 1.05)')
    if 'ratio_whole_stage_to_raw_sum' in pipe:
        lines.append(f'ratio whole stage / sum of raw model runs ({pipe["raw_sum_ms"]:.1f} ms): '
                     f'{pipe["ratio_whole_stage_to_raw_sum"]:.3f} (goal <= 1.10; slower model '
                     f'alone {pipe["slower_model_ms"]:.1f} ms)')
    lines.extend(f'note: {n}' for n in pipe['notes'])
    for k, node in enumerate(node_runs or []):
        lines.extend(format_node_paths(node, k + 1, len(node_runs)))
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.image is None or not args.image.is_file():
        print(f'error: --image {args.image or ""}: no such file (default: '
              '../shared/data/images/bus.jpg)', file=sys.stderr)
        return 2
    from spatial_caption_ros.core.errors import SpatialCaptionError
    modes = tuple(m.strip() for m in args.node_modes.split(',') if m.strip())
    unknown = sorted(set(modes) - set(NODE_MODES))
    if unknown:
        print(f'error: --node-modes: unknown {", ".join(unknown)}; use '
              f'{" and/or ".join(NODE_MODES)}', file=sys.stderr)
        return 2
    try:
        values = perception_values(args)
        pipe = bench_pipeline(values, args.image, args.frames, args.warmup)
        node_values = {k: v for k, v in values.items()
                       if k != 'depth_model' or not pipe['notes']}
        node_runs = [bench_node_paths(node_values, args.image, args.node_frames, modes)
                     for _ in range(args.repeats if args.node_frames and modes else 0)]
    except SpatialCaptionError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(format_report(pipe, node_runs, args.frames))
    if args.json:
        doc = {'date': time.strftime('%Y-%m-%d'), 'machine': f'{platform.machine()}, '
               f'{os.cpu_count()} CPUs, {platform.processor() or platform.platform()}',
               'image': str(args.image), 'parameters': values, 'pipeline': pipe,
               'node': node_runs or None}
        args.json.write_text(json.dumps(doc, indent=2, default=str) + '\n', encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
