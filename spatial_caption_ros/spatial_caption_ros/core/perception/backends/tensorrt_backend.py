"""Native TensorRT backend: serialized .engine files run with the `tensorrt` Python API.

Device buffers (sized for the largest shape the engine's profile admits) and page-locked host
buffers are allocated once at load and reused for every run; copies and execution are queued on
one CUDA stream (cuda-python runtime API) and synchronised once per run. Engines are checked
against their sidecar key (engine_cache.py) before TensorRT deserialises them, so an engine built
for another TensorRT version, GPU, shape or model version is refused with a clear message.

Needs a CUDA GPU, `tensorrt` (10.x; 8.6 works) and `cuda-python`: see requirements/gpu.txt.
None of these exist on the development machines; the tests of this module skip there.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from spatial_caption_ros.core.perception.backends.base import (
    BackendInfo, check_model_file, InferenceBackend, TensorInfo)
from spatial_caption_ros.core.perception.backends.engine_cache import (
    RuntimeIdentity,
    verify_engine,
)
from spatial_caption_ros.core.errors import BackendError, BackendUnavailableError, ModelError


def import_tensorrt():
    """The tensorrt module, or BackendUnavailableError saying what to install."""
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from missing libnvinfer
        raise BackendUnavailableError(
            f'TensorRT is not usable here ({type(exc).__name__}: {exc}); install the tensorrt '
            'and cuda-python packages on a machine with an NVIDIA GPU (requirements/gpu.txt)'
        ) from exc
    return trt


def import_cudart():
    """The CUDA runtime bindings of cuda-python (new and old module layouts)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except Exception as exc:  # noqa: BLE001
            raise BackendUnavailableError(
                f'cuda-python is not usable here ({exc}); pip install cuda-python') from exc
    return cudart


def check_cuda(result, what: str):
    """Unpack a cuda-python (err, *values) tuple; raise BackendError on a CUDA error."""
    cudart = import_cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise BackendError(f'CUDA {what} failed: {text.decode() if text else err}')
    return values[0] if len(values) == 1 else tuple(values)


def runtime_identity(device_id: int = 0) -> RuntimeIdentity:
    """TensorRT version, GPU name and compute capability of this machine (for engine keys)."""
    trt = import_tensorrt()
    cudart = import_cudart()
    try:
        props = check_cuda(cudart.cudaGetDeviceProperties(device_id), 'cudaGetDeviceProperties')
    except BackendError as exc:
        raise BackendUnavailableError(f'no usable CUDA GPU {device_id}: {exc}') from exc
    name = props.name.decode(errors='replace') if isinstance(props.name, bytes) else props.name
    return RuntimeIdentity(trt.__version__, name.strip('\x00').strip(),
                           f'{props.major}.{props.minor}')


def tensorrt_available(device_id: int = 0) -> tuple[bool, str]:
    """(usable, reason): whether TensorRT and a CUDA GPU can be used here, and why not."""
    try:
        ident = runtime_identity(device_id)
    except BackendUnavailableError as exc:
        return False, str(exc)
    return True, (f'TensorRT {ident.trt_version} on {ident.gpu_name} '
                  f'(sm {ident.compute_capability})')


def make_logger(trt):
    """A TensorRT logger keeping the last WARNING-or-worse messages (quoted in load errors)."""
    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg) -> None:
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                self.messages.append(str(msg))
                del self.messages[:-20]
    return Logger()


def _dims(dims) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


class TensorRTBackend(InferenceBackend):
    """A serialized TensorRT engine with device and host buffers allocated once.

    Dynamic inputs: the buffers are sized for the profile's maximum shape; each run sets the
    actual input shape and returns outputs of the matching shape (views of the host buffers).
    """

    def __init__(self, engine_path: str | Path, device_id: int = 0,
                 model_sha256: str | None = None) -> None:
        trt = import_tensorrt()
        cudart = import_cudart()
        path = check_model_file(engine_path, ('.engine', '.plan', '.trt'))
        self.path = path
        self._cudart = cudart
        self._device_buffers: list[int] = []
        self._host_buffers: list[int] = []
        self._stream = None
        check_cuda(cudart.cudaSetDevice(device_id), 'cudaSetDevice')
        identity = runtime_identity(device_id)
        key = verify_engine(path, identity, model_sha256=model_sha256)
        self._logger = make_logger(trt)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ModelError(
                f'TensorRT {trt.__version__} could not deserialize {path} (built with another '
                f'TensorRT version or for another GPU, or not an engine file): '
                f'{" | ".join(self._logger.messages[-3:]) or "no details"}. Rebuild it with '
                'spatial-caption-build-engine')
        self._runtime, self._engine = runtime, engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f'TensorRT could not create an execution context for {path} '
                               '(out of GPU memory?)')
        self._trt = trt
        self.inputs, self.outputs = [], []
        self._max_shapes: dict[str, tuple[int, ...]] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = _dims(engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            info = TensorInfo(name, tuple(d if d >= 0 else None for d in shape), dtype)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(info)
                self._max_shapes[name] = (
                    _dims(engine.get_tensor_profile_shape(name, 0)[2]) if info.is_dynamic
                    else shape)
                if info.is_dynamic:   # outputs sized below for the largest input shape
                    self._context.set_input_shape(name, self._max_shapes[name])
            else:
                self.outputs.append(info)
        for out in self.outputs:
            shape = _dims(self._context.get_tensor_shape(out.name))
            if any(d < 0 for d in shape):
                raise ModelError(f'{path}: output {out.name} has a data-dependent shape '
                                 f'{shape}; engines with such outputs are not supported')
            self._max_shapes[out.name] = shape
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, int] = {}
        try:
            self._allocate()
        except Exception:
            self.close()
            raise
        self._current_shapes: dict[str, tuple[int, ...]] = {}
        self.metadata = {}
        precision = key.precision if key is not None else 'unknown (no engine key file)'
        self.info = BackendInfo(
            backend='tensorrt', device=f'cuda:{device_id} {identity.gpu_name}',
            precision=precision,
            details={'tensorrt': identity.trt_version,
                     'compute_capability': identity.compute_capability,
                     'engine': str(path),
                     'engine_key': 'verified' if key is not None else 'no sidecar: unverified'})

    def _allocate(self) -> None:
        """One CUDA stream, one device and one page-locked host buffer per tensor, max size."""
        cudart = self._cudart
        self._stream = check_cuda(cudart.cudaStreamCreate(), 'cudaStreamCreate')
        for tensor in self.inputs + self.outputs:
            nbytes = int(np.prod(self._max_shapes[tensor.name])) * tensor.dtype.itemsize
            dptr = check_cuda(cudart.cudaMalloc(nbytes), f'cudaMalloc({nbytes})')
            self._device_buffers.append(dptr)
            hptr = check_cuda(cudart.cudaMallocHost(nbytes), f'cudaMallocHost({nbytes})')
            self._host_buffers.append(hptr)
            raw = (ctypes.c_byte * nbytes).from_address(int(hptr))
            self._host[tensor.name] = np.frombuffer(raw, dtype=tensor.dtype)
            self._device[tensor.name] = int(dptr)
            self._context.set_tensor_address(tensor.name, int(dptr))

    def input_buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        host = self._host.get(name)
        if host is None or host.dtype != np.float32 or int(np.prod(shape)) > host.size:
            return None
        return host[:int(np.prod(shape))].reshape(shape)

    def _set_shapes(self, feeds: dict[str, np.ndarray]) -> None:
        changed = False
        for inp in self.inputs:
            arr = feeds.get(inp.name)
            if arr is None:
                raise BackendError(f'{self.path.name}: missing input {inp.name}')
            if self._current_shapes.get(inp.name) != arr.shape:
                if len(arr.shape) != len(self._max_shapes[inp.name]) or any(
                        d > m for d, m in zip(arr.shape, self._max_shapes[inp.name],
                                              strict=True)):
                    raise BackendError(f'{self.path.name}: input {inp.name} shape {arr.shape} '
                                       f'is outside the engine profile (max '
                                       f'{self._max_shapes[inp.name]})')
                if inp.is_dynamic and not self._context.set_input_shape(inp.name, arr.shape):
                    raise BackendError(f'{self.path.name}: TensorRT refused input shape '
                                       f'{arr.shape} for {inp.name}')
                self._current_shapes[inp.name] = arr.shape
                changed = True
        if changed:
            for out in self.outputs:
                self._current_shapes[out.name] = _dims(self._context.get_tensor_shape(out.name))

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._stream is None:
            raise BackendError(f'{self.path.name} was closed')
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._set_shapes(feeds)
        for inp in self.inputs:
            arr = feeds[inp.name]
            n = arr.size
            host = self._host[inp.name][:n]
            if arr.ctypes.data != host.ctypes.data:   # not already written in place
                np.copyto(host, arr.reshape(-1), casting='same_kind')  # into page-locked memory
            check_cuda(cudart.cudaMemcpyAsync(self._device[inp.name], host.ctypes.data,
                                              host.nbytes, h2d, self._stream), 'copy to GPU')
        if not self._context.execute_async_v3(int(self._stream)):
            raise BackendError(f'TensorRT execution failed on {self.path.name}: '
                               f'{" | ".join(self._logger.messages[-3:])}')
        results = []
        for out in self.outputs:
            shape = self._current_shapes[out.name]
            host = self._host[out.name][:int(np.prod(shape))]
            check_cuda(cudart.cudaMemcpyAsync(host.ctypes.data, self._device[out.name],
                                              host.nbytes, d2h, self._stream), 'copy from GPU')
            results.append(host.reshape(shape))
        check_cuda(cudart.cudaStreamSynchronize(self._stream), 'stream synchronize')
        return results

    def close(self) -> None:
        cudart = self._cudart
        if cudart is None:
            return
        for ptr in self._device_buffers:
            cudart.cudaFree(ptr)
        for ptr in self._host_buffers:
            cudart.cudaFreeHost(ptr)
        self._device_buffers, self._host_buffers = [], []
        self._host, self._device = {}, {}
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = self._engine = self._runtime = None
