r"""spatial-caption-build-engine: ONNX -> TensorRT engine (FP16, INT8, fixed/dynamic shapes).

    spatial-caption-build-engine yolo11n                                  # FP16, 640x640
    spatial-caption-build-engine depth_anything_v2_small --preprocess imagenet
    spatial-caption-build-engine model.onnx --shape images=1x3x480x640    # dynamic model, fixed
    spatial-caption-build-engine model.onnx --min images=1x3x320x320 \\
        --opt images=1x3x640x640 --max images=1x3x1280x1280             # dynamic profile
    spatial-caption-build-engine yolo11n --precision int8 --calibration ~/calib_images
    spatial-caption-build-engine yolo11n --benchmark 200                  # + time the engine

The engine lands in the engine cache (default ~/.cache/spatial_caption_ros/engines) keyed by
model sha256, TensorRT version, GPU, compute capability, precision and input profile; with
`backend: auto` or `tensorrt` the perception node then loads it instead of the ONNX file. An
up-to-date engine is reused (use --force to rebuild). Needs TensorRT and an NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from spatial_caption_ros.core.perception.backends import default_engine_dir
from spatial_caption_ros.core.perception.backends.engine_cache import PRECISIONS
from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.runtime.monitoring import percentile


def _named_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """['images=1x3x640x640'] -> {'images': (1, 3, 640, 640)}; a bare shape names input ''."""
    from spatial_caption_ros.core.perception.backends.trt_builder import parse_shape
    out = {}
    for item in items or []:
        name, _, shape = item.rpartition('=')
        out[name] = parse_shape(shape)
    return out


def _resolve_unnamed(shapes: dict, inputs: list[str]) -> dict:
    if '' in shapes:
        if len(inputs) != 1:
            raise SystemExit(f'the model has inputs {inputs}: write NAME=SHAPE')
        shapes[inputs[0]] = shapes.pop('')
    return shapes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='spatial-caption-build-engine', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', help='model name from models/manifest.yaml or path to an .onnx file')
    p.add_argument('--model-dir', help='folder of the named models (default: as the nodes)')
    p.add_argument('--precision', choices=PRECISIONS, default='fp16')
    p.add_argument('--calibration', metavar='DIR',
                   help='image folder for INT8 calibration (implies --precision int8)')
    p.add_argument('--calibration-images', type=int, default=500,
                   help='most calibration images used (default 500)')
    p.add_argument('--preprocess', choices=('auto', 'yolo', 'imagenet'), default='auto',
                   help='calibration preprocessing: yolo letterbox or ImageNet normalisation '
                        '(auto: from the manifest task)')
    p.add_argument('--shape', action='append', metavar='NAME=1x3xHxW',
                   help='build for this fixed input shape (dynamic-shape models)')
    for edge in ('min', 'opt', 'max'):
        p.add_argument(f'--{edge}', action='append', metavar='NAME=1x3xHxW',
                       help=f'{edge} shape of a dynamic-shape profile')
    p.add_argument('--output', help='engine file to write (default: in the cache)')
    p.add_argument('--cache-dir', help=f'engine cache folder (default {default_engine_dir()})')
    p.add_argument('--workspace-gb', type=float, default=2.0,
                   help='TensorRT builder workspace in GiB (default 2; lower on small Jetsons)')
    p.add_argument('--device', type=int, default=0, help='CUDA device index')
    p.add_argument('--force', action='store_true', help='rebuild even if up to date')
    p.add_argument('--benchmark', type=int, default=0, metavar='N',
                   help='after building, time N runs of the engine (input copy + execute + '
                        'output copy) and print the median latency')
    return p


def benchmark_engine(engine, runs: int, device_id: int = 0) -> dict[str, float]:
    """Median/p90 latency in ms of `runs` runs of an engine on random input (after warm-up)."""
    from spatial_caption_ros.core.perception.backends.tensorrt_backend import TensorRTBackend
    backend = TensorRTBackend(engine, device_id=device_id)
    try:
        rng = np.random.default_rng(0)
        feeds = {i.name: rng.random([d or 1 for d in i.shape], dtype=np.float32).astype(i.dtype)
                 for i in backend.inputs}
        for _ in range(max(10, runs // 10)):
            backend.run(feeds)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            backend.run(feeds)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        backend.close()
    return {'median_ms': statistics.median(times), 'p90_ms': percentile(times, 90),
            'runs': runs}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spatial_caption_ros.core.perception.backends.trt_builder import build_engine
    from spatial_caption_ros.core.perception.models import load_manifest, resolve_model
    try:
        path = resolve_model(args.model, args.model_dir)
        precision = 'int8' if args.calibration else args.precision
        preprocess = args.preprocess
        if preprocess == 'auto':
            entry = load_manifest().get(args.model)
            preprocess = 'imagenet' if entry is not None and entry.task == 'depth' else 'yolo'
        fixed = _named_shapes(args.shape)
        edges = [_named_shapes(getattr(args, e)) for e in ('min', 'opt', 'max')]
        if any(edges) and not all(set(e) == set(edges[0]) for e in edges):
            raise SystemExit('--min, --opt and --max must name the same inputs')
        dynamic = {n: (edges[0][n], edges[1][n], edges[2][n]) for n in edges[0]}
        if '' in fixed or '' in dynamic:
            import onnxruntime as ort
            session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
            inputs = [i.name for i in session.get_inputs()]
            fixed, dynamic = _resolve_unnamed(fixed, inputs), _resolve_unnamed(dynamic, inputs)
        print(f'[build] {path} -> TensorRT {precision}', file=sys.stderr)
        result = build_engine(
            path, cache_dir=args.cache_dir or default_engine_dir(), output=args.output,
            precision=precision, fixed_shapes=fixed, dynamic_shapes=dynamic,
            calibration_dir=args.calibration, calibration_limit=args.calibration_images,
            preprocess=preprocess, workspace_gb=args.workspace_gb, device_id=args.device,
            force=args.force)
        state = 'up to date' if result.reused else f'built in {result.seconds:.0f} s'
        ident = result.key.identity
        print(f'{result.engine} ({state}; TensorRT {ident.trt_version}, {ident.gpu_name}, '
              f'sm {ident.compute_capability}, {", ".join(map(str, result.key.inputs))})')
        if args.benchmark:
            stats = benchmark_engine(result.engine, args.benchmark, args.device)
            print(f'latency {path.name} {precision}: median {stats["median_ms"]:.3f} ms, '
                  f'p90 {stats["p90_ms"]:.3f} ms over {stats["runs"]} runs (host<->device '
                  'copies included)')
    except SpatialCaptionError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
