"""Faults: missing, truncated, wrong-shape and non-file model paths, through the real nodes.

Every case goes through the real lifecycle: the node starts with autostart (configure fails,
FAILURE), the reason (last_error and /diagnostics) names the file and says what the file should
have been (inputs/outputs for ONNX models), then the parameter is fixed over the parameter service
and configure/activate succeed over the lifecycle services, in the same process, and the node
produces output. Wrong-shape models are generated at test time (fault_models.py,
dav2_contract.py). docs/reliability.md lists what each case proves.
"""

from __future__ import annotations

import os
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from spatial_caption_interfaces.msg import Caption, DetectionArray, SceneGraph

from support import BUS, MODELS, needs_shared, spin_until, YOLO
from support.dav2_contract import make_contract_model
from support.fault_models import make_onnx
from spatial_caption_ros.core.perception.backends import create_backend
from spatial_caption_ros.core.captioning.llm import LlamaModel
from spatial_caption_ros.core.perception.detection import read_class_names_file
from spatial_caption_ros.core.errors import ModelError, ModelNotFoundError
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.perception.models import cache_dir, check_model_file, resolve_model
from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader
from spatial_caption_ros.nodes.caption_node import CaptionNode
from spatial_caption_ros.nodes.perception_node import PerceptionNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile
from support.scenes import street
from support.rig import diagnostic_values, LifecycleRig

pytestmark = pytest.mark.usefixtures('rclpy_context')

YOLO_IN = '[1, 3, H, W]'                 # what every detector error says the input must be
YOLO_OUT = ('[1, 4+C, N]', '[1, 84, N]')  # ... and the output (generic, or for 80 names)
DEPTH_EXPECTED = ('[1, 3, H, W]', 'multiples of 14', '[1, H, W] or [1, 1, H, W]')
GEMMA_FILE = cache_dir() / 'models' / 'gemma-3-270m-q4_k_m.gguf'


# ------------------------------------------------------------------ model files that are not

def _not_files(tmp_path):
    """Paths that are there but are no model file: name -> (path, words the error must say)."""
    tmp_path.joinpath('a_directory.onnx').mkdir()
    tmp_path.joinpath('empty.onnx').touch()
    os.mkfifo(tmp_path / 'fifo.onnx')
    os.symlink(tmp_path / 'loop_b.onnx', tmp_path / 'loop_a.onnx')
    os.symlink(tmp_path / 'loop_a.onnx', tmp_path / 'loop_b.onnx')
    os.symlink(tmp_path / 'gone.onnx', tmp_path / 'dangling.onnx')
    return {
        'directory': (tmp_path / 'a_directory.onnx', 'is a directory'),
        'empty': (tmp_path / 'empty.onnx', 'is empty'),
        'fifo': (tmp_path / 'fifo.onnx', 'FIFO'),
        'device': ('/dev/zero', 'character device'),
        'symlink_loop': (tmp_path / 'loop_a.onnx', 'symbolic link loop'),
        'dangling_symlink': (tmp_path / 'dangling.onnx', 'which does not exist'),
    }


def _finishes(fn, timeout=20.0):
    """Run fn() in a thread: (finished, exception). A loader that opened a FIFO or read
    /dev/zero would never finish; the test then fails instead of hanging."""
    outcome = []

    def target():
        try:
            fn()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive()), (outcome[0] if outcome else None)


def test_model_paths_are_checked_before_any_loader_opens_them(tmp_path):
    loaders = {
        'resolve_model': lambda p: resolve_model(str(p)),
        'check_model_file': check_model_file,
        'onnx backend': create_backend,
        'llm': LlamaModel,
        'class names file': read_class_names_file,
    }
    for case, (path, words) in _not_files(tmp_path).items():
        for loader, load in loaders.items():
            finished, exc = _finishes(lambda: load(path))   # noqa: B023 - run at once
            assert finished, f'{loader} hung on the {case} path {path}'
            assert isinstance(exc, ModelError), f'{loader} on {case}: {exc!r}'
            assert str(path) in str(exc) and words in str(exc), f'{loader} on {case}: {exc}'
    with pytest.raises(ModelNotFoundError, match='missing.onnx does not exist'):
        resolve_model(str(tmp_path / 'missing.onnx'))


# ------------------------------------------------------------------ the rig

class Rig(LifecycleRig):
    """One stage node started with autostart and its lifecycle and parameter clients, with
    diagnostics and outputs recorded."""

    def __init__(self, node_cls, namespace: str, outputs: dict[str, type], **params):
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        overrides.append(Parameter('diagnostics_period', value=0.2))
        node = node_cls(namespace=namespace, parameter_overrides=overrides)
        self.name = node.get_name()
        super().__init__(node, f'{self.name}_fault_client')
        self.statuses: list[DiagnosticStatus] = []
        suffix = f'{namespace}/{self.name}'
        self.client.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: self.statuses.extend(s for s in m.status if s.name.endswith(suffix)), 50)
        self.received = {topic: [] for topic in outputs}
        for topic, msg_type in outputs.items():
            self.client.create_subscription(msg_type, topic, self.received[topic].append,
                                            qos_profile('reliable'))

    def set(self, name, value):
        result = self.set_parameter(name, value)
        assert result.successful, result.reason
        return result

    def diagnosed(self, level, *words, timeout=10.0) -> DiagnosticStatus | None:
        """The first diagnostics status (from now on) at `level` whose values hold `words`."""
        self.statuses.clear()

        def match():
            for s in self.statuses:
                text = s.message + ' ' + ' '.join(kv.value for kv in s.values)
                if s.level == level and all(w in text for w in words):
                    return s
            return None
        spin_until(self.ex, lambda: match() is not None, timeout=timeout)
        return match()


def _check_failure(rig, path, *words):
    """The node is unconfigured; last_error and an ERROR diagnostic name the file and words."""
    assert rig.lifecycle.get_state() == 'unconfigured' and not rig.node.active
    error = rig.node.last_error
    assert str(path) in error, error
    for word in words:
        assert word in error, f'{word!r} not in: {error}'
    status = rig.diagnosed(DiagnosticStatus.ERROR, str(path), *words)
    assert status is not None, f'no ERROR diagnostic naming {path} and {words}'
    assert status.message.startswith('configure failed')
    assert diagnostic_values(status)['state'] == 'unconfigured'


def _camera(rig):
    image = read_image_file(BUS)
    intrinsics = CameraIntrinsics.from_horizontal_fov(60.0, image.width, image.height)
    image_pub = rig.client.create_publisher(Image, 'image', qos_profile('reliable'))
    info_pub = rig.client.create_publisher(CameraInfo, 'camera_info', qos_profile('reliable'))

    def publish(stamp_ns):
        header = FrameHeader(stamp_ns, 'camera_optical_frame')
        info_pub.publish(conversions.intrinsics_to_camera_info(intrinsics, header))
        image_pub.publish(conversions.color_to_image_msg(image, header))
    assert spin_until(rig.ex, lambda: image_pub.get_subscription_count() >= 1)
    return publish


def _wrong_detectors(tmp_path):
    """Detector model files that are not usable: name -> (path, words the reason must hold)."""
    names = str({i: f'class{i}' for i in range(80)})
    half = tmp_path / 'yolo11n_first_half.onnx'
    data = YOLO.read_bytes()
    half.write_bytes(data[:len(data) // 2])
    cases = {
        'missing': (tmp_path / 'no_such_detector.onnx', 'does not exist'),
        'truncated': (half, 'could not load'),
        'grey_input': (make_onnx(tmp_path / 'grey_input.onnx', [('images', [1, 1, 640, 640])],
                                 [('output0', [1, 84, 8400])], {'names': names}),
                       'images [1, 1, 640, 640]'),
        'wrong_rows': (make_onnx(tmp_path / 'rows_85.onnx', [('images', [1, 3, 640, 640])],
                                 [('output0', [1, 85, 8400])], {'names': names}),
                       'output0 [1, 85, 8400]'),
        'two_inputs': (make_onnx(tmp_path / 'two_inputs.onnx',
                                 [('images', [1, 3, 640, 640]), ('extra', [1, 3, 640, 640])],
                                 [('output0', [1, 84, 8400])], {'names': names}),
                       'this one has 2'),
        'depth_model': (make_contract_model(tmp_path / 'depth_as_detector.onnx',
                                            fixed_hw=(518, 518)), 'no class names'),
        'bad_stride': (make_onnx(tmp_path / 'stride_zero.onnx', [('images', [1, 3, 'h', 'w'])],
                                 [('output0', [1, 84, 8400])], {'names': names, 'stride': '0'}),
                       "metadata stride '0'"),
    }
    cases.update(_not_files(tmp_path))
    return cases


@needs_shared
@pytest.mark.slow
def test_detector_model_faults_fail_configure_with_the_reason_then_recover(tmp_path):
    cases = _wrong_detectors(tmp_path)
    first, (first_path, first_words) = next(iter(cases.items()))
    rig = Rig(PerceptionNode, '/fault_det', {'detections': DetectionArray},
              detector_model=str(first_path), model_dir=str(MODELS), input_qos='reliable',
              threads=1)
    try:
        # autostart configured the node at start-up, and the configure failed
        _check_failure(rig, first_path, first_words, 'expected', YOLO_IN)
        for case, (path, words) in cases.items():
            rig.set('detector_model', str(path))
            assert not rig.lifecycle.change_state('configure'), case
            _check_failure(rig, path, words, YOLO_IN)
            assert any(w in rig.node.last_error for w in YOLO_OUT), rig.node.last_error
        # fixed over the parameter service, configured over the lifecycle services
        rig.set('detector_model', 'yolo11n')
        assert rig.lifecycle.change_state('configure')
        assert rig.lifecycle.change_state('activate')
        assert rig.lifecycle.get_state() == 'active' and rig.node.last_error == ''
        assert rig.diagnosed(DiagnosticStatus.OK, 'active') is not None
        publish = _camera(rig)
        publish(7)
        detections = rig.received['detections']
        assert spin_until(rig.ex, lambda: detections, timeout=30)
        assert any(o.class_name == 'bus' for o in detections[0].objects)
    finally:
        rig.close()


def _wrong_depth_models(tmp_path):
    half = tmp_path / 'depth_first_half.onnx'
    data = YOLO.read_bytes()
    half.write_bytes(data[:len(data) // 2])
    cases = {
        'missing': (tmp_path / 'no_such_depth.onnx', 'does not exist'),
        'truncated': (half, 'could not load'),
        'yolo_as_depth': (YOLO, 'not multiples of 14'),
        'grey_input': (make_onnx(tmp_path / 'grey_depth.onnx', [('image', [1, 1, 518, 518])],
                                 [('depth', [1, 518, 518])]), 'image [1, 1, 518, 518]'),
        'flat_output': (make_onnx(tmp_path / 'flat_depth.onnx', [('image', [1, 3, 518, 518])],
                                  [('depth', [1, 268324])]), 'depth [1, 268324]'),
        'rgb_output': (make_onnx(tmp_path / 'rgb_depth.onnx', [('image', [1, 3, 518, 518])],
                                 [('depth', [1, 3, 518, 518])]), 'depth [1, 3, 518, 518]'),
        'unnamed_outputs': (make_onnx(tmp_path / 'two_outputs.onnx',
                                      [('image', [1, 3, 518, 518])],
                                      [('a', [1, 518, 518]), ('b', [1, 518, 518])]),
                            'none is called depth or predicted_depth'),
    }
    cases.update(_not_files(tmp_path))
    return cases


@needs_shared
@pytest.mark.slow
def test_depth_model_faults_fail_configure_with_the_reason_then_recover(tmp_path):
    cases = _wrong_depth_models(tmp_path)
    first_path, first_words = cases['missing']
    rig = Rig(PerceptionNode, '/fault_depth', {'detections': DetectionArray},
              depth_source='depth_anything_v2', depth_model=str(first_path),
              depth_input_size=266, model_dir=str(MODELS), input_qos='reliable', threads=1)
    try:
        _check_failure(rig, first_path, first_words, 'depth_model', *DEPTH_EXPECTED)
        for case, (path, words) in cases.items():
            rig.set('depth_model', str(path))
            assert not rig.lifecycle.change_state('configure'), case
            _check_failure(rig, path, words, *DEPTH_EXPECTED)
        good = make_contract_model(tmp_path / 'depth_contract.onnx')
        rig.set('depth_model', str(good))
        assert rig.lifecycle.change_state('configure')
        assert rig.lifecycle.change_state('activate') and rig.node.last_error == ''
        publish = _camera(rig)
        publish(8)
        detections = rig.received['detections']
        assert spin_until(rig.ex, lambda: detections, timeout=30)
        assert detections[0].depth_source == 'depth_anything_v2'
        assert all(o.depth_source == 'depth_anything_v2' for o in detections[0].objects)
    finally:
        rig.close()


# ------------------------------------------------------------------ the LLM file

def _wrong_llm_files(tmp_path):
    cases = {'missing': (tmp_path / 'no_such_model.gguf', 'does not exist')}
    if GEMMA_FILE.is_file():
        half = tmp_path / 'gemma_first_half.gguf'
        with open(GEMMA_FILE, 'rb') as src, open(half, 'wb') as dst:
            dst.write(src.read(GEMMA_FILE.stat().st_size // 2))
        cases['truncated'] = (half, 'corrupted or incomplete')
    garbage = tmp_path / 'random_bytes.gguf'
    garbage.write_bytes(os.urandom(1 << 16))
    cases['not_gguf'] = (garbage, "expected 'GGUF'")
    cases.update(_not_files(tmp_path))
    return cases


def _publish_graph(rig, stamp_ns):
    pub = rig.client.create_publisher(SceneGraph, 'scene_graph', qos_profile('reliable'))
    assert spin_until(rig.ex, lambda: pub.get_subscription_count() >= 1)
    graph = street(True)
    graph.header = FrameHeader(stamp_ns, 'camera_optical_frame')
    pub.publish(conversions.scene_graph_to_msg(graph))


@pytest.mark.slow
def test_unusable_llm_file_gives_verified_template_captions_and_a_warning(tmp_path):
    """llm_required false (the default): the caption node comes up, says why, and publishes
    verified template captions marked as such."""
    cases = _wrong_llm_files(tmp_path)
    rig = Rig(CaptionNode, '/fault_llm', {'caption': Caption},
              model=str(cases['missing'][0]))
    try:
        for case, (path, words) in cases.items():
            if case != 'missing':            # the first one came up with autostart
                for transition in ('deactivate', 'cleanup'):
                    assert rig.lifecycle.change_state(transition), case
                rig.set('model', str(path))
                for transition in ('configure', 'activate'):
                    assert rig.lifecycle.change_state(transition), case
            assert rig.lifecycle.get_state() == 'active', case
            assert str(path) in rig.node.captioner.llm_error, case
            assert words in rig.node.captioner.llm_error, (case, rig.node.captioner.llm_error)
            status = rig.diagnosed(DiagnosticStatus.WARN, 'LLM unavailable', str(path))
            assert status is not None, case
            assert words in diagnostic_values(status)['llm_error']
            rig.received['caption'].clear()
            _publish_graph(rig, 100)
            assert spin_until(rig.ex, lambda: rig.received['caption'], timeout=30), case
            msg = rig.received['caption'][0]
            assert msg.generator == 'template' and msg.verified and msg.model == ''
            assert msg.fallback_reason.startswith('llm_unavailable') and str(path) in \
                msg.fallback_reason
    finally:
        rig.close()


@pytest.mark.slow
@pytest.mark.skipif(not GEMMA_FILE.is_file(), reason='Gemma GGUF missing: run make setup')
def test_unusable_llm_file_fails_configure_when_required_then_recovers(tmp_path):
    cases = _wrong_llm_files(tmp_path)
    path, words = cases['truncated']
    rig = Rig(CaptionNode, '/fault_llm_required', {'caption': Caption}, model=str(path),
              llm_required=True, timeout=120.0)
    try:
        _check_failure(rig, path, words)            # autostart: FAILURE naming the file
        for case, (path, words) in cases.items():
            rig.set('model', str(path))
            assert not rig.lifecycle.change_state('configure'), case
            _check_failure(rig, path, words)
        rig.set('model', str(GEMMA_FILE))
        assert rig.lifecycle.change_state('configure')
        assert rig.lifecycle.change_state('activate') and rig.node.last_error == ''
        _publish_graph(rig, 200)
        captions = rig.received['caption']
        assert spin_until(rig.ex, lambda: captions, timeout=120)
        assert captions[0].generator == 'llm' and captions[0].verified
    finally:
        rig.close()
