"""ONNX Runtime backend (TensorRT, CUDA or CPU execution providers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spatial_caption_ros.core.perception.backends.base import (
    auto_threads, BackendInfo, check_model_file, InferenceBackend, TensorInfo, usable_cpus)
from spatial_caption_ros.core.errors import BackendError, BackendUnavailableError, ModelError

_ORT_TYPES = {
    'tensor(float)': np.float32, 'tensor(float16)': np.float16, 'tensor(double)': np.float64,
    'tensor(uint8)': np.uint8, 'tensor(int8)': np.int8, 'tensor(int32)': np.int32,
    'tensor(int64)': np.int64, 'tensor(bool)': np.bool_,
}
TRT_EP = 'TensorrtExecutionProvider'
CUDA_EP = 'CUDAExecutionProvider'
CPU_EP = 'CPUExecutionProvider'
PROVIDER_NAMES = {'tensorrt': TRT_EP, 'cuda': CUDA_EP, 'cpu': CPU_EP}
DEVICES = ('auto', 'tensorrt', 'cuda', 'cpu')
# TensorRT EP builder workspace (bytes): enough for YOLO11n/DA-V2-S tactics, fits a Jetson Orin.
TRT_WORKSPACE_BYTES = 2 << 30


def _dim(d) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def _shape_list(shapes: dict[str, tuple[int, ...]]) -> str:
    """TensorRT EP profile syntax: 'name:1x3x640x640,other:...'."""
    return ','.join(f'{name}:{"x".join(str(int(d)) for d in shape)}'
                    for name, shape in shapes.items())


def provider_list(device: str, available: list[str], *, fp16: bool = True,
                  trt_cache_dir: str | Path | None = None, device_id: int = 0,
                  profile_shapes: dict[str, tuple[dict, dict, dict]] | None = None
                  ) -> list[str | tuple[str, dict[str, Any]]]:
    """ONNX Runtime `providers=` for a device choice, best first, always ending with CPU.

    device: 'auto' (TensorRT EP, then CUDA EP, then CPU, whichever this build of ONNX Runtime
    has) or one of 'tensorrt', 'cuda', 'cpu' (BackendUnavailableError when that provider is not
    compiled in). profile_shapes: optional (min, opt, max) input shapes for the TensorRT EP
    optimisation profile of models with dynamic inputs.
    """
    if device == 'auto':
        wanted = [p for p in (TRT_EP, CUDA_EP) if p in available] + [CPU_EP]
    elif device in PROVIDER_NAMES:
        name = PROVIDER_NAMES[device]
        if name not in available:
            raise BackendUnavailableError(
                f'ONNX Runtime provider {name} is not available here (available: '
                f'{", ".join(available)}); install onnxruntime-gpu with CUDA/TensorRT')
        # The TensorRT EP hands unsupported nodes to CUDA, and CUDA to the CPU.
        wanted = {TRT_EP: [TRT_EP, CUDA_EP, CPU_EP], CUDA_EP: [CUDA_EP, CPU_EP],
                  CPU_EP: [CPU_EP]}[name]
        wanted = [p for p in wanted if p in available or p == CPU_EP]
    else:
        raise BackendUnavailableError(f'unknown ONNX Runtime device {device!r}; use one of '
                                      f'{", ".join(DEVICES)}')
    providers: list[str | tuple[str, dict[str, Any]]] = []
    for name in wanted:
        if name == TRT_EP:
            opts: dict[str, Any] = {
                'device_id': int(device_id), 'trt_fp16_enable': bool(fp16),
                'trt_max_workspace_size': TRT_WORKSPACE_BYTES}
            if trt_cache_dir:
                # ONNX Runtime keys its cached engines by model, TensorRT version and GPU itself.
                opts.update(trt_engine_cache_enable=True,
                            trt_engine_cache_path=str(trt_cache_dir),
                            trt_timing_cache_enable=True,
                            trt_timing_cache_path=str(trt_cache_dir))
            if profile_shapes:
                mins, opts_, maxs = ({n: s[i] for n, s in profile_shapes.items()}
                                     for i in range(3))
                opts.update(trt_profile_min_shapes=_shape_list(mins),
                            trt_profile_opt_shapes=_shape_list(opts_),
                            trt_profile_max_shapes=_shape_list(maxs))
            providers.append((name, opts))
        elif name == CUDA_EP:
            providers.append((name, {'device_id': int(device_id),
                                     'cudnn_conv_algo_search': 'HEURISTIC',
                                     'do_copy_in_default_stream': True}))
        else:
            providers.append(name)
    return providers


class OnnxRuntimeBackend(InferenceBackend):
    """A model run by onnxruntime.InferenceSession with the best available execution provider.

    device: 'auto' (TensorRT EP, then CUDA EP, then CPU), or one of 'tensorrt', 'cuda', 'cpu'.
    threads: intra-op threads of the CPU provider; 0 = auto_threads() (all usable cores up to 8).
    io_binding: bind inputs and preallocated outputs once per run (no output allocation per run,
    one device copy each way on GPU); outputs are then reused buffers (see InferenceBackend).
    allow_spinning: let idle intra-op threads spin-wait for work (ONNX Runtime's default). None:
    automatic, off when the model's threads take every usable core. Spinning only pays with
    spare cores: with 2 threads on 2 shared cores it made YOLO11n 1.5-3x SLOWER here, in the
    node and in the bare pipeline alike (docs/perception_engine.md).
    """

    def __init__(self, model_path: str | Path, device: str = 'auto', threads: int = 0,
                 fp16: bool = True, trt_cache_dir: str | Path | None = None,
                 device_id: int = 0, *, io_binding: bool = True,
                 allow_spinning: bool | None = None,
                 profile_shapes: dict[str, tuple[dict, dict, dict]] | None = None) -> None:
        import onnxruntime as ort

        path = check_model_file(model_path, ('.onnx',))
        self.path = path
        available = ort.get_available_providers()
        if trt_cache_dir:
            Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
        providers = provider_list(device, available, fp16=fp16, trt_cache_dir=trt_cache_dir,
                                  device_id=device_id, profile_shapes=profile_shapes)
        threads = int(threads) or auto_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if allow_spinning is None:
            allow_spinning = threads < usable_cpus()
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '1' if allow_spinning else '0')
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options,
                                                 providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise ModelError(f'ONNX Runtime could not load {path}: {exc}') from exc
        self.inputs = [TensorInfo(i.name, tuple(_dim(d) for d in i.shape),
                                  np.dtype(_ORT_TYPES.get(i.type, np.float32)))
                       for i in self._session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(_dim(d) for d in o.shape),
                                   np.dtype(_ORT_TYPES.get(o.type, np.float32)))
                        for o in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        meta = self._session.get_modelmeta()
        self.metadata = dict(meta.custom_metadata_map or {})
        active = self._session.get_providers()
        requested = [p if isinstance(p, str) else p[0] for p in providers]
        details = {'providers': ','.join(active), 'threads': str(threads),
                   'spinning': 'on' if allow_spinning else 'off',
                   'io_binding': str(bool(io_binding))}
        if requested[0] != active[0]:
            details['fallback'] = (f'{requested[0]} requested but ONNX Runtime could not start '
                                   f'it (missing CUDA/TensorRT libraries?); running on '
                                   f'{active[0]}')
        elif active[0] == CPU_EP and device == 'auto':
            details['fallback'] = ('no GPU execution provider in this ONNX Runtime build: '
                                   'running on the CPU')
        self.info = BackendInfo(
            backend='onnxruntime', device=active[0],
            precision='fp16' if fp16 and active[0] == TRT_EP else 'fp32', details=details)
        self._binding = None
        self._bound_outputs: list[np.ndarray] = []
        if io_binding and all(not o.is_dynamic for o in self.outputs):
            self._binding = self._session.io_binding()
            for o in self.outputs:
                buf = np.empty(o.shape, dtype=o.dtype)
                self._binding.bind_output(o.name, 'cpu', 0, o.dtype, list(o.shape),
                                          buf.ctypes.data)
                self._bound_outputs.append(buf)

    @property
    def session(self):
        """The onnxruntime.InferenceSession (for side-by-side raw timing in the benchmark)."""
        return self._session

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._session is None:
            raise BackendError(f'{self.path.name} was closed')
        try:
            if self._binding is None:
                return self._session.run(self._output_names, feeds)
            for name, array in feeds.items():
                self._binding.bind_cpu_input(name, np.ascontiguousarray(array))
            self._session.run_with_iobinding(self._binding)
            return self._bound_outputs
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f'ONNX Runtime run failed on {self.path.name}: {exc}') from exc

    def close(self) -> None:
        self._binding = None
        self._bound_outputs = []
        self._session = None
