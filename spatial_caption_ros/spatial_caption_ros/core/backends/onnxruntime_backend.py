"""ONNX Runtime backend (TensorRT, CUDA or CPU execution providers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spatial_caption_ros.core.backends.base import (
    BackendInfo, check_model_file, InferenceBackend, TensorInfo)
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


def _dim(d) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


class OnnxRuntimeBackend(InferenceBackend):
    """A model run by onnxruntime.InferenceSession with the best available execution provider.

    device: 'auto' (TensorRT EP, then CUDA EP, then CPU), or one of 'tensorrt', 'cuda', 'cpu'.
    threads: intra-op threads for the CPU provider; 0 lets ONNX Runtime choose (all cores).
    """

    def __init__(self, model_path: str | Path, device: str = 'auto', threads: int = 0,
                 fp16: bool = True, trt_cache_dir: str | Path | None = None,
                 device_id: int = 0) -> None:
        import onnxruntime as ort

        path = check_model_file(model_path, ('.onnx',))
        available = ort.get_available_providers()
        providers = self._providers(device, available, fp16, trt_cache_dir, device_id)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options,
                                                 providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise ModelError(f'ONNX Runtime could not load {path}: {exc}') from exc
        self.path = path
        self.inputs = [TensorInfo(i.name, tuple(_dim(d) for d in i.shape),
                                  np.dtype(_ORT_TYPES.get(i.type, np.float32)))
                       for i in self._session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(_dim(d) for d in o.shape),
                                   np.dtype(_ORT_TYPES.get(o.type, np.float32)))
                        for o in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        meta = self._session.get_modelmeta()
        self.metadata = dict(meta.custom_metadata_map or {})
        active = self._session.get_providers()[0]
        self.info = BackendInfo(
            backend='onnxruntime', device=active,
            precision='fp16' if fp16 and active == TRT_EP else 'fp32',
            details={'providers': ','.join(self._session.get_providers()),
                     'threads': str(threads or 'auto')})

    @staticmethod
    def _providers(device: str, available: list[str], fp16: bool,
                   trt_cache_dir: str | Path | None, device_id: int) -> list:
        if device == 'auto':
            wanted = [p for p in (TRT_EP, CUDA_EP) if p in available] + [CPU_EP]
        elif device in PROVIDER_NAMES:
            name = PROVIDER_NAMES[device]
            if name not in available:
                raise BackendUnavailableError(
                    f'ONNX Runtime provider {name} is not available here (available: '
                    f'{", ".join(available)}); install onnxruntime-gpu with CUDA/TensorRT')
            wanted = [name] if name == CPU_EP else [name, CPU_EP]
        else:
            raise BackendUnavailableError(f'unknown ONNX Runtime device {device!r}')
        providers: list = []
        for name in wanted:
            if name == TRT_EP:
                opts = {'device_id': device_id, 'trt_fp16_enable': bool(fp16)}
                if trt_cache_dir:
                    Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                    opts.update(trt_engine_cache_enable=True,
                                trt_engine_cache_path=str(trt_cache_dir),
                                trt_timing_cache_enable=True)
                providers.append((name, opts))
            elif name == CUDA_EP:
                providers.append((name, {'device_id': device_id}))
            else:
                providers.append(name)
        return providers

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session.run(self._output_names, feeds)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f'ONNX Runtime run failed on {self.path.name}: {exc}') from exc

    def close(self) -> None:
        self._session = None
