"""Inference backends: selection and fallbacks, provider options, IO binding, engine cache keys,
stale-engine refusal, the engine builder's pure logic, and clear errors for bad model files.

TensorRT cannot exist on the development machines (no GPU): the tests that need it skip with
that reason. Where a test replaces the GPU-only parts, the stand-in is labelled as standing in
for a GPU; the logic under test (which engine is picked, what is refused) is the real one.
"""

import io
import json

import numpy as np
import pytest

from support import BUS, needs_shared, YOLO
from support.fault_models import make_onnx
from spatial_caption_ros.core.perception import backends as backends_mod
from spatial_caption_ros.core.perception.backends import auto_threads, create_backend
from spatial_caption_ros.core.perception.backends import base as base_mod
from spatial_caption_ros.core.perception.backends import engine_cache as ec
from spatial_caption_ros.core.perception.backends import tensorrt_backend as trt_mod
from spatial_caption_ros.core.perception.backends.base import BackendInfo, InferenceBackend
from spatial_caption_ros.core.perception.backends.onnxruntime_backend import (
    CPU_EP, CUDA_EP, provider_list, TRT_EP)
from spatial_caption_ros.core.perception.backends.trt_builder import (
    ConsoleProgress, parse_shape, plan_profiles)
from spatial_caption_ros.core.perception.detection import YoloDetector
from spatial_caption_ros.core.errors import (
    BackendUnavailableError, ConfigError, ModelError, StaleEngineError)
from spatial_caption_ros.core.inputs.image import read_image_file

HAVE_TRT, WHY_NO_TRT = trt_mod.tensorrt_available()
needs_gpu = pytest.mark.skipif(not HAVE_TRT, reason=f'no TensorRT/GPU here ({WHY_NO_TRT})')

H100 = ec.RuntimeIdentity('10.13.0', 'NVIDIA H100 80GB HBM3', '9.0')
ORIN = ec.RuntimeIdentity('10.3.0', 'Orin', '8.7')


# ------------------------------------------------------------------ selection and fallbacks

@needs_shared
def test_auto_on_this_cpu_machine_picks_cpu_and_says_why():
    backend = create_backend(YOLO)
    assert backend.info.backend == 'onnxruntime'
    assert backend.info.device == CPU_EP
    assert backend.info.precision == 'fp32'
    selection = backend.info.details['selection']
    assert selection.startswith('auto:') and 'native TensorRT not used' in selection
    assert 'CPU' in backend.info.details['fallback']


@needs_shared
def test_explicit_tensorrt_without_engine_says_how_to_build_one(tmp_path):
    with pytest.raises(BackendUnavailableError, match='spatial-caption-build-engine'):
        create_backend(YOLO, 'tensorrt', cache_dir=tmp_path)


def test_engine_file_with_onnxruntime_backend_is_refused(tmp_path):
    engine = tmp_path / 'm.engine'
    engine.write_bytes(b'x' * 16)
    with pytest.raises(BackendUnavailableError, match='TensorRT engine'):
        create_backend(engine, 'onnxruntime')


@pytest.mark.skipif(HAVE_TRT, reason='checks the message shown where TensorRT is missing')
def test_engine_file_without_tensorrt_is_a_clear_error(tmp_path):
    engine = tmp_path / 'm.engine'
    engine.write_bytes(b'x' * 16)
    with pytest.raises(BackendUnavailableError, match='TensorRT is not usable here'):
        create_backend(engine)


def test_unknown_backend_and_device_are_refused(tmp_path):
    with pytest.raises(BackendUnavailableError, match='unknown backend'):
        create_backend(tmp_path / 'x.onnx', 'openvino')
    with pytest.raises(BackendUnavailableError, match='unknown ONNX Runtime device'):
        provider_list('npu', [CPU_EP])


def test_requested_gpu_provider_missing_is_refused():
    with pytest.raises(BackendUnavailableError, match='CUDAExecutionProvider is not available'):
        provider_list('cuda', [CPU_EP])


# ------------------------------------------------------------------ provider options

def test_provider_list_prefers_tensorrt_then_cuda_then_cpu(tmp_path):
    providers = provider_list('auto', [TRT_EP, CUDA_EP, CPU_EP], fp16=True,
                              trt_cache_dir=tmp_path, device_id=1)
    assert [p if isinstance(p, str) else p[0] for p in providers] == [TRT_EP, CUDA_EP, CPU_EP]
    trt_opts = providers[0][1]
    assert trt_opts['trt_fp16_enable'] is True and trt_opts['device_id'] == 1
    assert trt_opts['trt_engine_cache_enable'] is True
    assert trt_opts['trt_engine_cache_path'] == str(tmp_path)
    assert trt_opts['trt_timing_cache_enable'] is True
    assert providers[1][1]['device_id'] == 1


def test_provider_list_without_cache_or_fp16_and_cpu_only():
    providers = provider_list('auto', [CUDA_EP, CPU_EP], fp16=False)
    assert [p if isinstance(p, str) else p[0] for p in providers] == [CUDA_EP, CPU_EP]
    assert provider_list('auto', [CPU_EP]) == [CPU_EP]
    trt_only = provider_list('tensorrt', [TRT_EP, CPU_EP], fp16=False)
    assert trt_only[0][1]['trt_fp16_enable'] is False
    assert 'trt_engine_cache_enable' not in trt_only[0][1]
    assert [p if isinstance(p, str) else p[0] for p in trt_only] == [TRT_EP, CPU_EP]


def test_dynamic_profile_shapes_use_the_tensorrt_ep_syntax():
    profile = {'images': ((1, 3, 320, 320), (1, 3, 640, 640), (1, 3, 1280, 1280))}
    (_, opts), *_ = provider_list('tensorrt', [TRT_EP, CPU_EP], profile_shapes=profile)
    assert opts['trt_profile_min_shapes'] == 'images:1x3x320x320'
    assert opts['trt_profile_opt_shapes'] == 'images:1x3x640x640'
    assert opts['trt_profile_max_shapes'] == 'images:1x3x1280x1280'


@pytest.mark.parametrize('cpus,models,expected', [(2, 1, 2), (2, 2, 1), (1, 2, 1), (32, 1, 8),
                                                  (32, 2, 8), (12, 2, 6)])
def test_auto_threads_share_the_cores(monkeypatch, cpus, models, expected):
    monkeypatch.setattr(base_mod, 'usable_cpus', lambda: cpus)
    assert auto_threads(models) == expected


@needs_shared
def test_io_binding_gives_session_run_results_in_reused_buffers():
    image = read_image_file(BUS)
    bound = create_backend(YOLO, threads=1)
    plain = create_backend(YOLO, threads=1, io_binding=False, allow_spinning=False)
    assert bound.info.details['io_binding'] == 'True' and bound.info.details['threads'] == '1'
    blob, _ = YoloDetector(bound).preprocess(image)
    a = bound.run({'images': blob})[0]
    reference = bound.session.run(None, {'images': blob})[0]
    np.testing.assert_allclose(a, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(plain.run({'images': blob})[0], reference, rtol=0, atol=1e-5)
    assert bound.run({'images': blob})[0] is a            # the bound output buffer is reused
    assert plain.run({'images': blob})[0] is not plain.run({'images': blob})[0]


# ------------------------------------------------------------------ bad model files

@needs_shared
def test_truncated_model_names_the_file(tmp_path):
    cut = tmp_path / 'yolo11n_cut.onnx'
    cut.write_bytes(YOLO.read_bytes()[:1_000_000])
    with pytest.raises(ModelError, match='yolo11n_cut.onnx'):
        create_backend(cut)


def test_wrong_input_shape_names_file_and_expected_shapes(tmp_path):
    path = make_onnx(tmp_path / 'gray.onnx', [('x', [1, 1, 64, 64])],
                       [('y', [1, 84, 10])], {'names': str({i: f'c{i}' for i in range(80)})})
    with pytest.raises(ModelError) as err:
        YoloDetector(create_backend(path))
    text = str(err.value)
    assert 'gray.onnx' in text and '[1, 3, H, W]' in text and 'x [1, 1, 64, 64]' in text


def test_depth_model_given_as_detector_is_refused_with_the_expected_layout(tmp_path):
    path = make_onnx(tmp_path / 'depth.onnx', [('pixel_values', [1, 3, 518, 518])],
                       [('predicted_depth', [1, 518, 518])],
                       {'names': str({i: f'c{i}' for i in range(80)})})
    with pytest.raises(ModelError) as err:
        YoloDetector(create_backend(path))
    text = str(err.value)
    assert 'depth.onnx' in text and '[1, 84, N]' in text and '[1, N, 6]' in text
    assert 'predicted_depth [1, 518, 518]' in text


def test_two_inputs_are_refused(tmp_path):
    path = make_onnx(tmp_path / 'two.onnx', [('a', [1, 3, 64, 64]), ('b', [1, 3, 64, 64])],
                       [('y', [1, 84, 10])])
    with pytest.raises(ModelError, match='two.onnx.*one input'):
        YoloDetector(create_backend(path))


def test_dynamic_input_model_uses_input_size_rounded_to_the_stride(tmp_path):
    path = make_onnx(tmp_path / 'dyn.onnx', [('images', [1, 3, 'h', 'w'])],
                       [('output0', [1, 6, 5])], {'names': "{0: 'a', 1: 'b'}", 'stride': '32'})
    backend = create_backend(path)
    assert backend.inputs[0].shape == (1, 3, None, None)
    assert YoloDetector(backend, input_size=(500, 300)).input_shape == (1, 3, 320, 512)
    assert YoloDetector(backend, input_size=416).input_shape == (1, 3, 416, 416)


# ------------------------------------------------------------------ engine cache keys

def _key(identity=H100, sha='a' * 64, precision='fp16', shape=(1, 3, 640, 640)):
    return ec.EngineKey(identity, sha, precision, (ec.ShapeRange.fixed('images', shape),))


def test_key_digest_is_stable_and_covers_every_field():
    base = _key()
    assert base.digest() == _key().digest()
    variants = [_key(identity=ORIN), _key(sha='b' * 64), _key(precision='int8'),
                _key(shape=(1, 3, 320, 320)),
                _key(identity=ec.RuntimeIdentity('10.14.0', H100.gpu_name, '9.0')),
                _key(identity=ec.RuntimeIdentity('10.13.0', 'NVIDIA H200', '9.0'))]
    digests = {v.digest() for v in variants}
    assert base.digest() not in digests and len(digests) == len(variants)


def test_sidecar_round_trip_and_engine_name(tmp_path):
    key = _key()
    engine = ec.engine_path_for(tmp_path, '/models/yolo11n.onnx', key)
    assert engine.name == f'yolo11n.fp16.{key.digest()}.engine'
    engine.write_bytes(b'engine')
    ec.write_sidecar(engine, key, {'onnx': '/models/yolo11n.onnx'})
    read, doc = ec.read_sidecar(engine)
    assert read == key and doc['onnx'] == '/models/yolo11n.onnx'
    assert ec.verify_engine(engine, H100, {'images': (1, 3, 640, 640)}, 'a' * 64) == key


@pytest.mark.parametrize('current,shapes,sha,expected', [
    (ec.RuntimeIdentity('10.14.0', H100.gpu_name, '9.0'), None, None,
     'built with TensorRT 10.13.0, this is TensorRT 10.14.0'),
    (ORIN, None, None, 'compute capability 9.0'),
    (ec.RuntimeIdentity('10.13.0', 'NVIDIA H200', '9.0'), None, None, 'this GPU is NVIDIA H200'),
    (H100, {'images': (1, 3, 480, 640)}, None, 'outside the engine profile'),
    (H100, {'pixel_values': (1, 3, 518, 518)}, None, "no input 'pixel_values'"),
    (H100, None, 'b' * 64, 'the ONNX model changed'),
])
def test_stale_engines_are_refused_with_the_reason(tmp_path, current, shapes, sha, expected):
    engine = tmp_path / 'm.engine'
    engine.write_bytes(b'engine')
    ec.write_sidecar(engine, _key(), {'onnx': '/models/m.onnx'})
    with pytest.raises(StaleEngineError) as err:
        ec.verify_engine(engine, current, shapes, sha)
    text = str(err.value)
    assert expected in text and 'm.engine is stale' in text
    assert 'spatial-caption-build-engine /models/m.onnx' in text


def test_dynamic_profile_admits_shapes_inside_it():
    r = ec.ShapeRange('images', (1, 3, 320, 320), (1, 3, 640, 640), (1, 3, 1280, 1280))
    assert r.admits((1, 3, 480, 640)) and r.admits((1, 3, 1280, 320))
    assert not r.admits((1, 3, 1312, 640)) and not r.admits((1, 3, 640))
    assert 'images=[1x3x320x320 .. 1x3x640x640 .. 1x3x1280x1280]' == str(r)


def test_engine_without_sidecar_is_unverified_and_bad_sidecar_is_an_error(tmp_path):
    engine = tmp_path / 'm.engine'
    engine.write_bytes(b'engine')
    assert ec.verify_engine(engine, H100) is None
    ec.sidecar_path(engine).write_text('{"identity": 3}')
    with pytest.raises(ModelError, match='unreadable'):
        ec.verify_engine(engine, H100)


def test_find_cached_engine_skips_stale_and_picks_the_fitting_one(tmp_path):
    onnx_file = tmp_path / 'yolo11n.onnx'
    onnx_file.write_bytes(b'model v1')
    sha = ec.file_sha256(onnx_file)
    cache = tmp_path / 'engines'
    cache.mkdir()
    good = _key(sha=sha)
    for key in (good, _key(identity=ORIN, sha=sha), _key(sha='0' * 64),
                _key(sha=sha, precision='fp32')):
        path = ec.engine_path_for(cache, onnx_file, key)
        path.write_bytes(b'engine')
        ec.write_sidecar(path, key)
    expected = ec.engine_path_for(cache, onnx_file, good)
    assert ec.find_cached_engine(cache, onnx_file, H100, 'fp16') == expected
    assert ec.find_cached_engine(cache, onnx_file, H100, 'fp16',
                                 {'images': (1, 3, 320, 320)}) is None
    assert ec.find_cached_engine(cache, onnx_file, ORIN, 'fp32') is None
    onnx_file.write_bytes(b'model v2, re-exported')      # the model changed: engines are stale
    assert ec.find_cached_engine(cache, onnx_file, H100, 'fp16') is None


class GpuStandIn(InferenceBackend):
    """STANDS IN FOR A GPU: records which engine create_backend chose instead of running it
    (TensorRT cannot run here). The selection logic and the key checks are the real ones."""

    def __init__(self, engine_path, device_id=0, model_sha256=None):
        ec.verify_engine(engine_path, H100, model_sha256=model_sha256)
        self.path = engine_path
        self.inputs, self.outputs, self.metadata = [], [], {}
        self.info = BackendInfo('tensorrt', 'cuda:0 (stand-in)', 'fp16', {})

    def run(self, feeds):
        raise AssertionError('the GPU stand-in does not run')


def test_auto_selects_a_fitting_cached_engine_on_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(trt_mod, 'runtime_identity', lambda device_id=0: H100)
    monkeypatch.setattr(trt_mod, 'TensorRTBackend', GpuStandIn)
    onnx_file = make_onnx(tmp_path / 'm.onnx', [('images', [1, 3, 64, 64])],
                            [('output0', [1, 6, 5])])
    cache = tmp_path / 'engines'
    cache.mkdir()
    stale = _key(identity=ORIN, sha=ec.file_sha256(onnx_file), shape=(1, 3, 64, 64))
    stale_path = ec.engine_path_for(cache, onnx_file, stale)
    stale_path.write_bytes(b'engine')
    ec.write_sidecar(stale_path, stale)
    # Only a stale engine: auto falls back to ONNX Runtime and says why.
    fallback = create_backend(onnx_file, 'auto', cache_dir=cache)
    assert fallback.info.backend == 'onnxruntime'
    assert 'no fp16/int8 engine for m.onnx built for NVIDIA H100' in \
        fallback.info.details['selection']
    with pytest.raises(BackendUnavailableError, match='spatial-caption-build-engine'):
        create_backend(onnx_file, 'tensorrt', cache_dir=cache)
    fresh = _key(sha=ec.file_sha256(onnx_file), shape=(1, 3, 64, 64))
    fresh_path = ec.engine_path_for(cache, onnx_file, fresh)
    fresh_path.write_bytes(b'engine')
    ec.write_sidecar(fresh_path, fresh)
    chosen = create_backend(onnx_file, 'auto', cache_dir=cache)
    assert isinstance(chosen, GpuStandIn) and chosen.path == fresh_path
    assert chosen.info.details['selection'] == 'auto: cached engine for m.onnx'


def test_backends_module_exports_create_backend_signature():
    # The depth stage calls create_backend(path, backend, threads=..., fp16=...): keep it working.
    import inspect
    params = inspect.signature(backends_mod.create_backend).parameters
    assert list(params)[:2] == ['model_path', 'backend']
    assert {'threads', 'fp16', 'cache_dir', 'device_id'} <= set(params)


# ------------------------------------------------------------------ engine builder logic

def test_parse_shape():
    assert parse_shape('1x3x640x640') == (1, 3, 640, 640)
    assert parse_shape('1X3X518X518') == (1, 3, 518, 518)
    for bad in ('axb', '1x0x3', '', '1x-3'):
        with pytest.raises(ConfigError):
            parse_shape(bad)


def test_plan_profiles_fixed_dynamic_and_errors():
    static = [('images', (1, 3, 640, 640))]
    assert plan_profiles(static) == (ec.ShapeRange.fixed('images', (1, 3, 640, 640)),)
    dynamic = [('images', (1, 3, -1, -1))]
    with pytest.raises(ConfigError, match='--shape images=1x3x640x640'):
        plan_profiles(dynamic)
    assert plan_profiles(dynamic, fixed={'images': (1, 3, 480, 640)})[0].is_fixed
    ranges = plan_profiles(dynamic, dynamic={'images': ((1, 3, 320, 320), (1, 3, 640, 640),
                                                        (1, 3, 1280, 1280))})
    assert ranges[0].max == (1, 3, 1280, 1280)
    with pytest.raises(ConfigError, match='min <= opt <= max'):
        plan_profiles(dynamic, dynamic={'images': ((1, 3, 640, 640), (1, 3, 320, 320),
                                                   (1, 3, 1280, 1280))})
    with pytest.raises(ConfigError, match='does not fit'):
        plan_profiles(static, fixed={'images': (1, 3, 320, 320)})
    with pytest.raises(ConfigError, match='no input pixel_values'):
        plan_profiles(static, fixed={'pixel_values': (1, 3, 518, 518)})


def test_console_progress_prints_nested_phases_when_not_a_terminal():
    out = io.StringIO()
    now = [100.0]
    progress = ConsoleProgress(out, clock=lambda: now[0])
    progress.phase_start('Building engine', None, 3)
    progress.phase_start('Tactic timing', 'Building engine', 10)
    for step in range(10):
        now[0] += 3.0        # a line at most every 10 s of build time in logs
        assert progress.step_complete('Tactic timing', step) is True
    progress.phase_finish('Tactic timing')
    progress.phase_finish('Building engine')
    lines = out.getvalue().splitlines()
    assert lines[0] == '[build    0.0 s] Building engine 0/3'
    assert '[build   12.0 s] Building engine 0/3 > Tactic timing 4/10' in lines
    assert len([x for x in lines if 'Tactic timing' in x]) == 2     # at 12 s and 24 s
    assert lines[-1] == '[build   30.0 s] done'


def test_build_engine_command_without_tensorrt_fails_clearly(capsys):
    if HAVE_TRT:
        pytest.skip('TensorRT is present: the real build is tested below')
    from spatial_caption_ros.cli import build_engine
    assert build_engine.main(['yolo11n', '--precision', 'fp16']) == 2
    assert 'TensorRT is not usable here' in capsys.readouterr().err


def test_int8_without_calibration_folder_is_refused():
    from spatial_caption_ros.core.perception.backends.trt_builder import build_engine
    with pytest.raises(ConfigError, match='calibration'):
        build_engine('m.onnx', cache_dir='.', precision='int8')


# ------------------------------------------------------------------ real TensorRT (GPU only)

@needs_gpu
@needs_shared
def test_tensorrt_engine_matches_onnxruntime_and_is_found_by_auto(tmp_path):
    from spatial_caption_ros.core.perception.backends.trt_builder import build_engine
    result = build_engine(YOLO, cache_dir=tmp_path, precision='fp16')
    assert json.loads(ec.sidecar_path(result.engine).read_text())['precision'] == 'fp16'
    trt_backend = create_backend(YOLO, 'auto', cache_dir=tmp_path)
    assert trt_backend.info.backend == 'tensorrt'
    ort_det = YoloDetector(create_backend(YOLO, 'onnxruntime', ort_device='cpu'))
    trt_det = YoloDetector(trt_backend)
    image = read_image_file(BUS)
    a, b = ort_det.detect(image), trt_det.detect(image)
    assert [d.class_name for d in a] == [d.class_name for d in b]
    for x, y in zip(a, b, strict=True):
        assert x.box.as_tuple() == pytest.approx(y.box.as_tuple(), abs=3)
    assert build_engine(YOLO, cache_dir=tmp_path, precision='fp16').reused


@needs_gpu
@needs_shared
def test_tensorrt_refuses_an_engine_keyed_for_another_gpu(tmp_path):
    from spatial_caption_ros.core.perception.backends.trt_builder import build_engine
    result = build_engine(YOLO, cache_dir=tmp_path, precision='fp16')
    doc = json.loads(ec.sidecar_path(result.engine).read_text())
    doc['identity']['compute_capability'] = '5.3'
    ec.sidecar_path(result.engine).write_text(json.dumps(doc))
    with pytest.raises(StaleEngineError, match='compute capability 5.3'):
        create_backend(result.engine, 'tensorrt')


@needs_shared
def test_thread_spinning_is_off_when_the_threads_take_every_core(monkeypatch):
    monkeypatch.setattr(base_mod, 'usable_cpus', lambda: 2)
    from spatial_caption_ros.core.perception.backends import onnxruntime_backend as ort_mod
    monkeypatch.setattr(ort_mod, 'usable_cpus', lambda: 2)
    assert create_backend(YOLO).info.details['spinning'] == 'off'          # 2 threads, 2 cores
    assert create_backend(YOLO, threads=1).info.details['spinning'] == 'on'
    assert create_backend(YOLO, threads=1, allow_spinning=False).info.details['spinning'] == 'off'
