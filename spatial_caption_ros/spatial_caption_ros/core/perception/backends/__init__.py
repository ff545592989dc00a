"""Inference backends and the factory that picks one from the `backend` parameter.

backend='auto':        an .engine file -> native TensorRT; an .onnx file -> native TensorRT when
                       the engine cache holds an engine built from exactly this file for this GPU
                       and TensorRT version, else ONNX Runtime with its best provider (TensorRT EP,
                       then CUDA EP, then CPU).
backend='tensorrt':    native TensorRT only (an .engine file, or an .onnx file with a cached
                       engine); BackendUnavailableError otherwise, saying how to build one.
backend='onnxruntime': ONNX Runtime only (`ort_device` picks the provider, default best).
The returned backend's `info` says what really runs and, in info.details['selection'], why.
"""

from __future__ import annotations

from pathlib import Path

from spatial_caption_ros.core.perception.backends.base import (
    auto_threads, BackendInfo, check_model_file, InferenceBackend, TensorInfo)
from spatial_caption_ros.core.errors import BackendUnavailableError

BACKENDS = ('auto', 'onnxruntime', 'tensorrt')
ENGINE_SUFFIXES = ('.engine', '.plan', '.trt')

__all__ = ['auto_threads', 'BACKENDS', 'BackendInfo', 'check_model_file', 'create_backend',
           'default_engine_dir', 'InferenceBackend', 'TensorInfo']


def default_engine_dir() -> Path:
    """Folder of TensorRT engines built by spatial-caption-build-engine (and the ORT TRT EP)."""
    from spatial_caption_ros.core.perception.models import cache_dir
    return cache_dir() / 'engines'


def create_backend(model_path: str | Path, backend: str = 'auto', *, threads: int = 0,
                   fp16: bool = True, cache_dir: str | Path | None = None,
                   device_id: int = 0, ort_device: str = 'auto', io_binding: bool = True,
                   allow_spinning: bool | None = None,
                   input_shapes: dict[str, tuple[int, ...]] | None = None) -> InferenceBackend:
    """Load a model with the requested backend (see the module docstring for the choice).

    threads: CPU intra-op threads (0: auto_threads()). fp16: FP16 on GPU providers (and the
    precision of cached engines to look for). cache_dir: TensorRT engine cache (default
    default_engine_dir()). input_shapes: the input shapes the caller will run (dynamic models),
    so only engines whose profile admits them are picked. ort_device, io_binding and
    allow_spinning are passed to OnnxRuntimeBackend.
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f'unknown backend {backend!r}; use one of {BACKENDS}')
    path = Path(model_path)
    engines = Path(cache_dir) if cache_dir else default_engine_dir()
    is_engine = path.suffix.lower() in ENGINE_SUFFIXES
    if is_engine and backend == 'onnxruntime':
        raise BackendUnavailableError(
            f'{path} is a TensorRT engine: use backend tensorrt or auto, or give the .onnx file')
    if is_engine:
        check_model_file(path, ENGINE_SUFFIXES)
        from spatial_caption_ros.core.perception.backends.tensorrt_backend import TensorRTBackend
        result = TensorRTBackend(path, device_id=device_id)
        result.info.details['selection'] = f'{backend}: TensorRT engine file'
        return result
    why_not_trt = ''
    if backend in ('auto', 'tensorrt'):
        check_model_file(path, ('.onnx',))
        engine, why_not_trt = _cached_engine(path, engines, fp16, device_id, input_shapes)
        if engine is not None:
            from spatial_caption_ros.core.perception.backends.engine_cache import file_sha256
            from spatial_caption_ros.core.perception.backends.tensorrt_backend import (
                TensorRTBackend,
            )
            result = TensorRTBackend(engine, device_id=device_id, model_sha256=file_sha256(path))
            result.info.details['selection'] = f'{backend}: cached engine for {path.name}'
            return result
        if backend == 'tensorrt':
            raise BackendUnavailableError(
                f'backend tensorrt: {why_not_trt}. Build an engine with '
                f'`spatial-caption-build-engine {path}` (cache {engines}), or use backend '
                'auto/onnxruntime')
    from spatial_caption_ros.core.perception.backends.onnxruntime_backend import OnnxRuntimeBackend
    profile = ({n: (s, s, s) for n, s in input_shapes.items()} if input_shapes else None)
    result = OnnxRuntimeBackend(path, device=ort_device, threads=threads, fp16=fp16,
                                trt_cache_dir=engines / 'onnxruntime', device_id=device_id,
                                io_binding=io_binding, allow_spinning=allow_spinning,
                                profile_shapes=profile)
    reason = f'native TensorRT not used: {why_not_trt}; ' if why_not_trt else ''
    result.info.details['selection'] = (f'{backend}: {reason}ONNX Runtime '
                                        f'{result.info.device}')
    return result


def _cached_engine(model: Path, engines: Path, fp16: bool, device_id: int,
                   input_shapes: dict[str, tuple[int, ...]] | None) -> tuple[Path | None, str]:
    """(engine, '') when a fitting cached engine exists, else (None, why not)."""
    from spatial_caption_ros.core.perception.backends.engine_cache import find_cached_engine
    from spatial_caption_ros.core.perception.backends.tensorrt_backend import runtime_identity
    try:
        identity = runtime_identity(device_id)
    except BackendUnavailableError as exc:
        return None, str(exc)
    precisions = ('fp16', 'int8') if fp16 else ('fp32',)
    for precision in precisions:
        engine = find_cached_engine(engines, model, identity, precision, input_shapes)
        if engine is not None:
            return engine, ''
    return None, (f'no {"/".join(precisions)} engine for {model.name} built for '
                  f'{identity.gpu_name} with TensorRT {identity.trt_version} in {engines}')
