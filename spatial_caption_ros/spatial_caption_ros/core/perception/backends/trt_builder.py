"""Build TensorRT engines from ONNX: FP16/INT8, fixed or dynamic shapes, progress, keyed cache.

Used by `spatial-caption-build-engine` (cli/build_engine.py). The engine goes into the cache
folder under a name derived from its EngineKey (model sha256, TensorRT version, GPU, compute
capability, precision, input profile) with the key in a sidecar JSON, so the loader can refuse a
stale engine and `backend: auto` finds the right one. Needs TensorRT and a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
import os
from pathlib import Path
import sys
import threading
import time

import numpy as np

from spatial_caption_ros.core.perception.backends.engine_cache import (
    EngineKey, engine_path_for, file_sha256, key_mismatches, PRECISIONS, read_sidecar, Shape,
    ShapeRange, write_sidecar)
from spatial_caption_ros.core.perception.backends.tensorrt_backend import (
    check_cuda, import_cudart, import_tensorrt, make_logger, runtime_identity)
from spatial_caption_ros.core.errors import ConfigError, ModelError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Seconds between two progress lines when the output is not a terminal (logs, CI).
PROGRESS_LOG_PERIOD_S = 10.0


def parse_shape(text: str) -> Shape:
    """'1x3x640x640' -> (1, 3, 640, 640)."""
    try:
        shape = tuple(int(d) for d in text.lower().split('x'))
    except ValueError as exc:
        raise ConfigError(f'bad shape {text!r}: write it like 1x3x640x640') from exc
    if not shape or any(d <= 0 for d in shape):
        raise ConfigError(f'bad shape {text!r}: every dimension must be a positive integer')
    return shape


def plan_profiles(model_inputs: Sequence[tuple[str, Shape]],
                  fixed: dict[str, Shape] | None = None,
                  dynamic: dict[str, tuple[Shape, Shape, Shape]] | None = None
                  ) -> tuple[ShapeRange, ...]:
    """Optimisation profile of every model input (dims < 0 in the model are dynamic).

    fixed: name -> shape to build for; dynamic: name -> (min, opt, max). An input the model
    declares static needs neither; a dynamic one needs one of them (ConfigError otherwise).
    """
    fixed, dynamic = dict(fixed or {}), dict(dynamic or {})
    names = [n for n, _ in model_inputs]
    unknown = sorted((set(fixed) | set(dynamic)) - set(names))
    if unknown:
        raise ConfigError(f'the model has no input {", ".join(unknown)} (inputs: '
                          f'{", ".join(names)})')
    ranges = []
    for name, shape in model_inputs:
        if name in dynamic:
            lo, opt, hi = (tuple(s) for s in dynamic[name])
            candidate = ShapeRange(name, lo, opt, hi)
        elif name in fixed:
            candidate = ShapeRange.fixed(name, fixed[name])
        elif all(d > 0 for d in shape):
            candidate = ShapeRange.fixed(name, tuple(shape))
        else:
            raise ConfigError(
                f'input {name} is dynamic {list(shape)}: give --shape {name}=' + 'x'.join(
                    str(d if d > 0 else 640) for d in shape) + ' or --min/--opt/--max')
        for s in (candidate.min, candidate.opt, candidate.max):
            if len(s) != len(shape) or any(m > 0 and d != m for d, m in zip(s, shape,
                                                                             strict=True)):
                raise ConfigError(f'shape {"x".join(map(str, s))} does not fit input {name} '
                                  f'{list(shape)}')
        if not all(a <= b <= c for a, b, c in zip(candidate.min, candidate.opt, candidate.max,
                                                  strict=True)):
            raise ConfigError(f'input {name}: need min <= opt <= max in every dimension')
        ranges.append(candidate)
    return tuple(ranges)


def letterbox_batch(path: Path, shape: Shape) -> np.ndarray:
    """YOLO calibration input: letterboxed RGB in [0, 1], exactly as the detector feeds it."""
    from spatial_caption_ros.core.perception.detection import LetterboxPreprocessor
    from spatial_caption_ros.core.inputs.image import read_image_file
    blob, _ = LetterboxPreprocessor(shape[3], shape[2])(read_image_file(path))
    return blob.copy()


def imagenet_batch(path: Path, shape: Shape) -> np.ndarray:
    """Depth Anything calibration input: RGB resized to the input, ImageNet-normalised."""
    import cv2
    from spatial_caption_ros.core.inputs.image import read_image_file
    image = read_image_file(path)
    rgb = image.pixels[:, :, ::-1] if image.order == 'bgr' else image.pixels
    rgb = cv2.resize(np.ascontiguousarray(rgb), (shape[3], shape[2]),
                     interpolation=cv2.INTER_CUBIC)
    x = (rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


PREPROCESSORS: dict[str, Callable[[Path, Shape], np.ndarray]] = {
    'yolo': letterbox_batch, 'imagenet': imagenet_batch}


def calibration_images(folder: str | os.PathLike, limit: int) -> list[Path]:
    """Up to `limit` image files of a folder (sorted, recursive)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f'calibration folder {root} does not exist')
    files = sorted(p for p in root.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in calibration folder {root}')
    return files[:limit]


def make_calibrator(trt, files: list[Path], input_name: str, shape: Shape,
                    preprocess: Callable[[Path, Shape], np.ndarray], cache_file: Path):
    """An IInt8EntropyCalibrator2 feeding preprocessed images through one device buffer."""
    cudart = import_cudart()

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.nbytes = int(np.prod(shape)) * 4
            self.device = check_cuda(cudart.cudaMalloc(self.nbytes), 'cudaMalloc')

        def get_batch_size(self) -> int:
            return int(shape[0])

        def get_batch(self, names, *args):
            if self.index >= len(files):
                return None
            batch = np.ascontiguousarray(preprocess(files[self.index], shape), np.float32)
            self.index += 1
            check_cuda(cudart.cudaMemcpy(self.device, batch.ctypes.data, self.nbytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyHostToDevice),
                       'calibration copy')
            print(f'[calibrate] {self.index}/{len(files)} {files[self.index - 1].name}',
                  file=sys.stderr)
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            cache_file.write_bytes(bytes(cache))

        def free(self) -> None:
            if self.device:
                cudart.cudaFree(self.device)
                self.device = 0

    return Calibrator()


class ConsoleProgress:
    """Text progress of a TensorRT build: nested phases with step counts and elapsed time.

    On a terminal one line is redrawn; otherwise (logs, CI) a line is printed at most every
    PROGRESS_LOG_PERIOD_S seconds and at each phase end.
    """

    def __init__(self, stream=None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
        self.phases: dict[str, list] = {}   # name -> [parent, steps, done]
        self.clock = clock
        self.start = clock()
        self.last_print = self.start

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        self.phases[name] = [parent, max(1, int(steps)), 0]
        self.show(force=parent is None)

    def step_complete(self, name: str, step: int) -> bool:
        if name in self.phases:
            self.phases[name][2] = int(step) + 1
        self.show()
        return True          # returning False would cancel the build

    def phase_finish(self, name: str) -> None:
        self.phases.pop(name, None)
        self.show(force=True)

    def line(self) -> str:
        parts = [f'{name} {done}/{steps}' for name, (_, steps, done) in self.phases.items()]
        return f'[build {self.clock() - self.start:6.1f} s] ' + (' > '.join(parts) or 'done')

    def show(self, force: bool = False) -> None:
        now = self.clock()
        if self.tty:
            self.stream.write('\r' + self.line()[:150].ljust(150))
            self.stream.flush()
        elif force or now - self.last_print >= PROGRESS_LOG_PERIOD_S:
            print(self.line(), file=self.stream, flush=True)
            self.last_print = now


def _trt_progress_monitor(trt, progress: ConsoleProgress):
    """Wrap ConsoleProgress as a trt.IProgressMonitor (TensorRT >= 10)."""
    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step) -> bool:
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name) -> None:
            progress.phase_finish(phase_name)

    return Monitor()


@dataclass
class BuildResult:
    engine: Path
    key: EngineKey
    seconds: float
    reused: bool


def build_engine(onnx_path: str | os.PathLike, *, cache_dir: str | os.PathLike,
                 output: str | os.PathLike | None = None, precision: str = 'fp16',
                 fixed_shapes: dict[str, Shape] | None = None,
                 dynamic_shapes: dict[str, tuple[Shape, Shape, Shape]] | None = None,
                 calibration_dir: str | os.PathLike | None = None,
                 calibration_limit: int = 500, preprocess: str = 'yolo',
                 workspace_gb: float = 2.0, device_id: int = 0, force: bool = False,
                 progress: ConsoleProgress | None = None) -> BuildResult:
    """Build (or reuse) the engine of an ONNX model for this GPU and TensorRT version."""
    if precision not in PRECISIONS:
        raise ConfigError(f'precision {precision!r}: use one of {", ".join(PRECISIONS)}')
    if precision == 'int8' and not calibration_dir:
        raise ConfigError('INT8 needs a calibration image folder (--calibration DIR)')
    trt = import_tensorrt()
    if precision == 'int8' and not hasattr(trt, 'IInt8EntropyCalibrator2'):
        raise ConfigError(f'TensorRT {trt.__version__} has no implicit INT8 calibration: '
                          'quantize the ONNX model (explicit Q/DQ nodes) and build it as fp16')
    check_cuda(import_cudart().cudaSetDevice(device_id), 'cudaSetDevice')
    identity = runtime_identity(device_id)
    onnx_path = Path(onnx_path)
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split('.')[0]) < 10:   # explicit batch is the only mode from 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(f'TensorRT could not parse {onnx_path}: {" | ".join(errors[:3])}')
    model_inputs = [(network.get_input(i).name, tuple(int(d) for d in network.get_input(i).shape))
                    for i in range(network.num_inputs)]
    ranges = plan_profiles(model_inputs, fixed_shapes, dynamic_shapes)
    key = EngineKey(identity, file_sha256(onnx_path), precision, ranges)
    target = Path(output) if output else engine_path_for(cache_dir, onnx_path, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and not force:
        found = read_sidecar(target)
        if found is not None and found[0] == key and not key_mismatches(found[0], identity):
            return BuildResult(target, key, 0.0, reused=True)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ('fp16', 'int8'):
        config.set_flag(trt.BuilderFlag.FP16)       # INT8 layers fall back to FP16, not FP32
    profile = builder.create_optimization_profile()
    for r in ranges:
        profile.set_shape(r.name, r.min, r.opt, r.max)
    config.add_optimization_profile(profile)
    timing_file = Path(cache_dir) / (f'timing-{identity.trt_version}-'
                                     f'sm{identity.compute_capability}.cache')
    timing_cache = config.create_timing_cache(
        timing_file.read_bytes() if timing_file.is_file() else b'')
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    calibrator = None
    if precision == 'int8':
        config.set_flag(trt.BuilderFlag.INT8)
        first = ranges[0]
        calibrator = make_calibrator(
            trt, calibration_images(calibration_dir, calibration_limit), first.name, first.opt,
            PREPROCESSORS[preprocess], target.with_suffix('.calib'))
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    progress = progress or ConsoleProgress()
    heartbeat_stop = threading.Event()
    if hasattr(trt, 'IProgressMonitor'):
        config.progress_monitor = _trt_progress_monitor(trt, progress)
    else:   # TensorRT 8.x: no progress API; show that the build is alive
        def beat() -> None:
            while not heartbeat_stop.wait(PROGRESS_LOG_PERIOD_S):
                progress.show(force=True)
        threading.Thread(target=beat, daemon=True).start()
    t0 = time.monotonic()
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        heartbeat_stop.set()
        if calibrator is not None:
            calibrator.free()
    seconds = time.monotonic() - t0
    if progress.tty:
        progress.stream.write('\n')
    if serialized is None:
        raise ModelError(f'TensorRT could not build an engine from {onnx_path}: '
                         f'{" | ".join(logger.messages[-3:]) or "no details"}')
    tmp = target.with_name(target.name + '.tmp')
    tmp.write_bytes(bytes(serialized))
    tmp.replace(target)
    timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    write_sidecar(target, key, {'onnx': str(onnx_path.resolve()),
                                'built': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                                'build_seconds': round(seconds, 1)})
    return BuildResult(target, key, seconds, reused=False)
