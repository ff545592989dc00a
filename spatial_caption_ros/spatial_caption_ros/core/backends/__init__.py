"""Inference backends and the factory that picks one from the `backend` parameter."""

from __future__ import annotations

from pathlib import Path

from spatial_caption_ros.core.backends.base import (
    BackendInfo, check_model_file, InferenceBackend, TensorInfo)
from spatial_caption_ros.core.errors import BackendUnavailableError

BACKENDS = ('auto', 'onnxruntime', 'tensorrt')

__all__ = ['BACKENDS', 'BackendInfo', 'check_model_file', 'create_backend', 'InferenceBackend',
           'TensorInfo']


def create_backend(model_path: str | Path, backend: str = 'auto', *, threads: int = 0,
                   fp16: bool = True, cache_dir: str | Path | None = None,
                   device_id: int = 0) -> InferenceBackend:
    """Load a model with the requested backend.

    'onnxruntime' loads .onnx files with the best ONNX Runtime provider; 'auto' does the same
    (native TensorRT engines are added by the perception-engine work).
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f'unknown backend {backend!r}; use one of {BACKENDS}')
    if backend == 'tensorrt':
        raise BackendUnavailableError('the native TensorRT backend is not available yet')
    from spatial_caption_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(model_path, device='auto', threads=threads, fp16=fp16,
                              trt_cache_dir=cache_dir, device_id=device_id)
