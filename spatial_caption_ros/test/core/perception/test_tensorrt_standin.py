"""The native TensorRT backend's own logic (buffers allocated once, dynamic shapes, copies, key
check, cleanup) run against a FAKE `tensorrt` and CUDA runtime that STAND IN FOR A GPU: neither
exists on the development machines. The fakes implement only the API calls the backend makes,
with host memory as 'device' memory and a model that doubles its input, so the data path is
checked end to end. The real TensorRT runs are in test_backends.py (skipped without a GPU)."""

import ctypes
import sys
import types

import numpy as np
import pytest

from spatial_caption_ros.core.perception.backends import engine_cache as ec
from spatial_caption_ros.core.errors import BackendError, ModelError, StaleEngineError

IDENTITY = ec.RuntimeIdentity('10.13.0', 'Fake GPU (stand-in)', '9.0')


class FakeCudart(types.SimpleNamespace):
    """CUDA runtime stand-in: 'device' buffers are host allocations, copies are memmoves."""

    def __init__(self):
        super().__init__()
        self.cudaError_t = types.SimpleNamespace(cudaSuccess=0)
        self.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1,
                                                    cudaMemcpyDeviceToHost=2)
        self.blocks = {}
        self.freed = []
        self.copies = []

    def _alloc(self, nbytes):
        buf = ctypes.create_string_buffer(nbytes)
        self.blocks[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    cudaMalloc = cudaMallocHost = _alloc

    def cudaFree(self, ptr):
        self.freed.append(ptr)
        return (0,)

    cudaFreeHost = cudaFree

    def cudaSetDevice(self, device):
        return (0,)

    def cudaStreamCreate(self):
        return 0, 7

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaStreamDestroy(self, stream):
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        ctypes.memmove(dst, src, nbytes)
        self.copies.append(kind)
        return (0,)

    def cudaGetDeviceProperties(self, device):
        return 0, types.SimpleNamespace(name=IDENTITY.gpu_name.encode(), major=9, minor=0)

    def cudaGetErrorString(self, err):
        return 0, b'fake error'


def make_fake_trt(input_shape, profile_max):
    """tensorrt stand-in: one engine, input `x` (maybe dynamic) -> output `y` = 2 * x."""
    trt = types.ModuleType('tensorrt')
    trt.__version__ = IDENTITY.trt_version
    trt.TensorIOMode = types.SimpleNamespace(INPUT='in', OUTPUT='out')
    trt.nptype = lambda dtype: np.float32

    class ILogger:
        Severity = types.SimpleNamespace(WARNING=2)

        def __init__(self):
            pass

    trt.ILogger = ILogger

    class Context:
        def __init__(self):
            self.shapes = {'x': tuple(input_shape)}
            self.addresses = {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return self.shapes['x']     # y has the shape of x

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream):
            n = int(np.prod(self.shapes['x']))
            x = np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addresses['x']))
            y = np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addresses['y']))
            y[:] = 2 * x
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ('x', 'y')[i]

        def get_tensor_mode(self, name):
            return 'in' if name == 'x' else 'out'

        def get_tensor_shape(self, name):
            return input_shape

        def get_tensor_dtype(self, name):
            return 'float'

        def get_tensor_profile_shape(self, name, profile):
            return [(1, 1, 1), (1, 2, 2), profile_max]

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine() if data.startswith(b'ENGINE') else None

    trt.Runtime = Runtime
    return trt


@pytest.fixture
def gpu_standin(monkeypatch):
    """Install the fake tensorrt + cuda-python modules (standing in for a GPU)."""
    def install(input_shape=(1, 2, 3), profile_max=(1, 2, 3)):
        cudart = FakeCudart()
        monkeypatch.setitem(sys.modules, 'tensorrt', make_fake_trt(input_shape, profile_max))
        cuda = types.ModuleType('cuda')
        bindings = types.ModuleType('cuda.bindings')
        bindings.runtime = cudart
        cuda.bindings = bindings
        monkeypatch.setitem(sys.modules, 'cuda', cuda)
        monkeypatch.setitem(sys.modules, 'cuda.bindings', bindings)
        monkeypatch.setitem(sys.modules, 'cuda.bindings.runtime', cudart)
        return cudart
    return install


def _engine(tmp_path, key_shape=(1, 2, 3)):
    path = tmp_path / 'm.engine'
    path.write_bytes(b'ENGINE fake')
    ec.write_sidecar(path, ec.EngineKey(IDENTITY, 'a' * 64, 'fp16',
                                        (ec.ShapeRange.fixed('x', key_shape),)))
    return path


def test_fixed_shape_engine_runs_with_buffers_allocated_once(tmp_path, gpu_standin):
    from spatial_caption_ros.core.perception.backends.tensorrt_backend import TensorRTBackend
    cudart = gpu_standin()
    backend = TensorRTBackend(_engine(tmp_path))
    assert backend.info.backend == 'tensorrt' and backend.info.precision == 'fp16'
    assert backend.info.details['engine_key'] == 'verified'
    allocated = len(cudart.blocks)
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    (y,) = backend.run({'x': x})
    np.testing.assert_array_equal(y, 2 * x)
    (y2,) = backend.run({'x': x + 1})
    np.testing.assert_array_equal(y2, 2 * (x + 1))
    assert len(cudart.blocks) == allocated          # nothing allocated per run
    # writing into the offered page-locked buffer skips the host copy, not the device copy
    buf = backend.input_buffer('x', (1, 2, 3))
    buf[...] = 5
    (y3,) = backend.run({'x': buf})
    assert np.all(y3 == 10)
    backend.close()
    assert len(cudart.freed) == allocated
    with pytest.raises(BackendError, match='closed'):
        backend.run({'x': x})


def test_dynamic_engine_sizes_buffers_for_the_profile_max(tmp_path, gpu_standin):
    from spatial_caption_ros.core.perception.backends.tensorrt_backend import TensorRTBackend
    gpu_standin(input_shape=(1, -1, -1), profile_max=(1, 4, 4))
    backend = TensorRTBackend(_engine(tmp_path))
    assert backend.inputs[0].shape == (1, None, None)
    for shape in ((1, 2, 3), (1, 4, 4), (1, 1, 2)):
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        (y,) = backend.run({'x': x})
        assert y.shape == shape
        np.testing.assert_allclose(y, 2 * x)
    with pytest.raises(BackendError, match='outside the engine profile'):
        backend.run({'x': np.zeros((1, 5, 4), np.float32)})


def test_stale_or_broken_engines_are_refused_before_running(tmp_path, gpu_standin):
    from spatial_caption_ros.core.perception.backends.tensorrt_backend import TensorRTBackend
    gpu_standin()
    engine = _engine(tmp_path)
    doc = ec.read_sidecar(engine)[0]
    other = ec.EngineKey(ec.RuntimeIdentity('8.6.1', 'Orin', '8.7'), doc.model_sha256, 'fp16',
                         doc.inputs)
    ec.write_sidecar(engine, other)
    with pytest.raises(StaleEngineError, match='built with TensorRT 8.6.1'):
        TensorRTBackend(engine)
    garbage = tmp_path / 'garbage.engine'
    garbage.write_bytes(b'not an engine')
    with pytest.raises(ModelError, match='could not deserialize .*garbage.engine'):
        TensorRTBackend(garbage)


def test_runtime_identity_and_availability_from_the_standin(gpu_standin):
    from spatial_caption_ros.core.perception.backends import tensorrt_backend as trt_mod
    gpu_standin()
    assert trt_mod.runtime_identity() == IDENTITY
    ok, text = trt_mod.tensorrt_available()
    assert ok and 'Fake GPU' in text and 'sm 9.0' in text
