"""Faults while running, through the real nodes: a backend that raises or hangs mid-stream, an
LLM that raises mid-stream, and a camera that stops and restarts (stamps continuing, or jumping
back as after a camera restart or a looped bag).

No GPU exists here to fail for real. The backend and LLM faults are FAULT INJECTION: a test
stand-in wraps the model the node really loaded and raises (or blocks) on chosen calls, standing
in for a GPU/driver error (CUDA error, device lost, a llama.cpp failure); every other call runs
the real model. Everything else (nodes, topics, counters, logs, diagnostics) is real.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from spatial_caption_interfaces.msg import Caption, SceneGraph

from support import BUS, MODELS, needs_shared, spin_until
from support.dav2_contract import expected_output, make_contract_model
from spatial_caption_ros.core.errors import BackendError
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.caption_node import CaptionNode
from spatial_caption_ros.nodes.perception_node import PerceptionNode
from spatial_caption_ros.nodes.scene_graph_node import SceneGraphNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile
from support.llm import needs_llm
from support.rig import Camera, diagnostic_values
from support.scenes import street

pytestmark = pytest.mark.usefixtures('rclpy_context')


class FaultInjection:
    """FAULT INJECTION, a test stand-in for a GPU/driver failure inside a loaded backend.

    Wraps the backend the node loaded; call number k (1-based) raises raise_on[k], or blocks
    until `release` is set when k == block_on (a hung kernel, a slow frame); every other call
    runs the real model. Attributes are the real backend's.
    """

    def __init__(self, real, raise_on: dict[int, Exception] | None = None,
                 block_on: int | None = None) -> None:
        self.real = real
        self.raise_on = dict(raise_on or {})
        self.block_on = block_on
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, feeds):
        self.calls += 1
        if self.calls in self.raise_on:
            raise self.raise_on[self.calls]
        if self.calls == self.block_on:
            self.entered.set()
            assert self.release.wait(120), 'the test never released the blocked frame'
        return self.real.run(feeds)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _perception(namespace, **params):
    values = {'model_dir': str(MODELS), 'input_qos': 'reliable', 'threads': 1,
              'diagnostics_period': 0.5, **params}
    return PerceptionNode(namespace=namespace, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()])


@needs_shared
@pytest.mark.slow
def test_backend_exception_mid_stream_skips_and_counts_the_frame(tmp_path, capfd):
    depth_model = make_contract_model(tmp_path / 'depth_contract.onnx')
    node = _perception('/fault_raise', depth_source='depth_anything_v2',
                       depth_model=str(depth_model), depth_input_size=266)
    camera = Camera('/fault_raise')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(camera.node)
    try:
        assert node.active, node.last_error
        # Frame 2: the detector's backend raises (as ONNX Runtime/TensorRT report a CUDA
        # error); frame 4: the depth model's backend raises something no backend wraps.
        node.pipeline.detector.backend = FaultInjection(node.pipeline.detector.backend, {
            2: BackendError('CUDA error 700: an illegal memory access was encountered '
                            '(fault injection)')})
        # depth runs once per frame that got through detection: frame 4 is its 3rd call
        node.pipeline.depth.model.backend = FaultInjection(node.pipeline.depth.model.backend, {
            3: RuntimeError('cudaErrorLaunchFailure: unspecified launch failure '
                            '(fault injection)')})
        assert spin_until(ex, lambda: camera.image_pub.get_subscription_count() >= 1)
        for frame in range(1, 6):
            camera.publish(frame * 100_000_000)
            assert spin_until(ex, lambda: node.counters.finished == frame, timeout=30), frame  # noqa: B023
        assert spin_until(ex, lambda: len(camera.out['detections']) == 3, timeout=10)
        spin_until(ex, lambda: False, timeout=0.5)          # nothing more may arrive
        # the failed frames published nothing; the ones after them are complete
        assert camera.stamps('detections') == [100_000_000, 300_000_000, 500_000_000]
        assert all(m.depth_source == 'depth_anything_v2' and m.objects
                   for m in camera.out['detections'])
        snap = node.counters.snapshot()
        assert snap['errors.backend'] == 1 and snap['errors.RuntimeError'] == 1
        assert snap['processed'] == 3 and snap['received'] == 5
        assert node.active
        assert spin_until(ex, lambda: any(
            s.level == DiagnosticStatus.WARN and diagnostic_values(s)['state'] == 'active'
            and diagnostic_values(s).get('errors.backend') == '1'
            and diagnostic_values(s).get('errors.RuntimeError') == '1'
            for _, s in camera.diagnostics),
            timeout=10)
        log = capfd.readouterr().err
        assert 'frame skipped: CUDA error 700' in log
        assert 'frame skipped after an unexpected RuntimeError: cudaErrorLaunchFailure' in log
    finally:
        ex.shutdown()
        node.destroy_node()
        camera.node.destroy_node()


@needs_shared
@pytest.mark.slow
def test_a_hung_frame_makes_later_frames_stale_not_queued():
    node = _perception('/fault_hang')
    camera = Camera('/fault_hang')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(camera.node)
    injected = FaultInjection(node.pipeline.detector.backend, block_on=2)
    node.pipeline.detector.backend = injected
    try:
        assert spin_until(ex, lambda: camera.image_pub.get_subscription_count() >= 1)
        camera.publish(1)
        assert spin_until(ex, lambda: node.counters.processed == 1, timeout=30)
        camera.publish(2)                                   # this one hangs in the backend
        assert spin_until(ex, injected.entered.is_set, timeout=30)
        for stamp in range(3, 8):                           # five frames arrive meanwhile
            camera.publish(stamp)
        assert spin_until(ex, lambda: node.counters.received == 7, timeout=30)
        assert node.active and node.worker.busy
        injected.release.set()
        assert spin_until(ex, lambda: len(camera.out['detections']) == 3, timeout=30)
        spin_until(ex, lambda: False, timeout=1.0)          # nothing queued behind them
        # the hung frame is finished, then only the newest frame: 3..6 were replaced
        assert camera.stamps('detections') == [1, 2, 7]
        snap = node.counters.snapshot()
        assert snap['dropped_stale'] == 4 and snap['processed'] == 3
        assert snap['received'] == (snap['processed'] + snap['dropped_stale']
                                    + snap['rejected'] + snap['errors'])
        assert spin_until(ex, lambda: any(diagnostic_values(s).get('dropped_stale') == '4'
                                          for _, s in camera.diagnostics), timeout=10)
    finally:
        injected.release.set()
        ex.shutdown()
        node.destroy_node()
        camera.node.destroy_node()


@needs_llm
@pytest.mark.slow
def test_llm_exception_mid_stream_publishes_a_marked_template_caption(capfd):
    node = CaptionNode(namespace='/fault_llm_raise', parameter_overrides=[
        Parameter('timeout', value=120.0), Parameter('diagnostics_period', value=0.5)])
    harness = rclpy.create_node('fault_graphs', namespace='/fault_llm_raise')
    pub = harness.create_publisher(SceneGraph, 'scene_graph', qos_profile('reliable'))
    captions, statuses = [], []
    harness.create_subscription(Caption, 'caption', captions.append, qos_profile('reliable'))
    harness.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: statuses.extend(s for s in m.status if '/fault_llm_raise/' in s.name), 50)
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(harness)
    real_generate = node.captioner.llm.generate
    calls = []

    def generate(*args, **kwargs):
        """FAULT INJECTION: the first call fails inside the LLM runtime, the rest are real."""
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError('GGML_ASSERT failed in llama_decode (fault injection)')
        return real_generate(*args, **kwargs)
    node.captioner.llm.generate = generate
    try:
        assert node.active, node.last_error
        assert spin_until(ex, lambda: pub.get_subscription_count() >= 1)
        for stamp in (1, 2):
            graph = street(True)
            graph.header = FrameHeader(stamp, 'camera_optical_frame')
            pub.publish(conversions.scene_graph_to_msg(graph))
            assert spin_until(ex, lambda: len(captions) == stamp, timeout=120)  # noqa: B023
        failed, fine = captions
        assert failed.generator == 'template' and failed.verified and failed.model == ''
        assert failed.fallback_reason.startswith('llm_error: RuntimeError: GGML_ASSERT')
        assert fine.generator == 'llm' and fine.verified and fine.fallback_reason == ''
        assert len(calls) == 2
        snap = node.captioner.stats.snapshot()
        assert snap['fallback.llm_error'] == 1 and snap['generator.llm'] == 1
        assert node.counters.snapshot()['errors'] == 0        # no frame was lost
        assert spin_until(ex, lambda: any(
            s.level == DiagnosticStatus.WARN and '1 llm_error' in s.message
            and diagnostic_values(s).get('fallback.llm_error') == '1' for s in statuses),
            timeout=10)
        assert 'LLM failed, template caption published: llm_error: RuntimeError' in \
            capfd.readouterr().err
    finally:
        ex.shutdown()
        node.destroy_node()
        harness.destroy_node()


# ------------------------------------------------------------------ camera stops and restarts

# Frames per burst, seconds between frames, and the pause: longer than the 5 s window of the
# input-rate meter (core/runtime/monitoring.py RateMeter), so a stopped camera reads 0 Hz.
BURST_FRAMES = 8
FRAME_PERIOD_S = 0.25
PAUSE_S = 6.5
RATE_WINDOW_S = 5.0


def _burst(ex, camera, first_stamp_ns):
    """Publish BURST_FRAMES frames FRAME_PERIOD_S apart; returns (start, end, rate in Hz)."""
    start = time.monotonic()
    for i in range(BURST_FRAMES):
        camera.publish(first_stamp_ns + i * int(FRAME_PERIOD_S * 1e9))
        spin_until(ex, lambda: False, timeout=FRAME_PERIOD_S)
    end = time.monotonic()
    return start, end, (BURST_FRAMES - 1) / (end - start)


def _pause(ex):
    start = time.monotonic()
    spin_until(ex, lambda: False, timeout=PAUSE_S)
    return start


def _rates(camera, node_name, since, until):
    return [float(diagnostic_values(s)['input_rate_hz']) for t, s in camera.diagnostics
            if since <= t <= until and s.name.endswith(f'/{node_name}')]


def _phase(messages, lo, hi):
    return [m for m in messages if lo <= conversions.stamp_to_ns(m.header.stamp) < hi]


def _scale(msg) -> str:
    """What the metric depth scale of a frame came from (the perception node's notes)."""
    notes = ' '.join(msg.notes)
    if 'smoothed over frames' in notes:
        return 'smoothed'            # this frame's fit blended with the earlier ones
    if ' fit on ' in notes:
        return 'fresh'               # a fit of this frame alone: no scale history
    if 'using the fit of' in notes:
        return 'carried'             # no fit this frame (e.g. its depth frame came late)
    return 'none'


def _first_fit(msgs) -> str:
    """The scale of the first frame that had a fit of its own, and no 'carried' before it."""
    states = [_scale(m) for m in msgs]
    fits = [i for i, s in enumerate(states) if s in ('fresh', 'smoothed')]
    assert fits, states
    return states[fits[0]] if 'carried' not in states[:fits[0]] else f'carried: {states}'


@needs_shared
@pytest.mark.slow
def test_camera_stop_and_restart_every_node_resumes(tmp_path, capfd):
    """Three bursts from one camera: then a pause with stamps continuing (a), then a pause after
    which the stamps jump back 500 s (b: the camera restarted, or a bag looped). Perception
    (Depth Anything V2 contract model, metric scale from the aligned depth image), scene graph
    and caption nodes run throughout: no restart, outputs resume; (b) resets tracks and scale."""
    ns = '/fault_restart'
    image = read_image_file(BUS)
    rgb = image.pixels[..., ::-1] if image.order == 'bgr' else image.pixels
    # Aligned depth consistent with the contract model's output (inverse depth = 0.1 d + 0.05),
    # so the sensor anchors give the relative model a metric scale.
    depth = (1.0 / (0.1 * expected_output(rgb) + 0.05)).astype(np.float32)
    depth_model = make_contract_model(tmp_path / 'depth_contract.onnx')
    nodes = [
        _perception(ns, depth_source='depth_anything_v2', depth_model=str(depth_model),
                    depth_input_size=266, depth_scale_source='sensor', depth_wait=0.5),
        SceneGraphNode(namespace=ns, parameter_overrides=[
            Parameter('diagnostics_period', value=0.5)]),
        CaptionNode(namespace=ns, parameter_overrides=[
            Parameter('generator', value='template'), Parameter('diagnostics_period', value=0.5)]),
    ]
    camera = Camera(ns, depth)
    ex = MultiThreadedExecutor()
    for node in nodes:
        ex.add_node(node)
    ex.add_node(camera.node)
    base = 1_000 * 10**9
    starts = {'1': base, 'a': base + 10 * 10**9, 'b': base - 500 * 10**9}
    span = BURST_FRAMES * int(FRAME_PERIOD_S * 1e9)
    try:
        assert all(n.active for n in nodes), [n.last_error for n in nodes]
        assert spin_until(ex, lambda: camera.image_pub.get_subscription_count() >= 1
                          and camera.depth_pub.get_subscription_count() >= 1
                          and camera.node.count_publishers('caption') >= 1)
        bursts, pauses = {}, {}
        bursts['1'] = _burst(ex, camera, starts['1'])
        pauses['a'] = _pause(ex)
        bursts['a'] = _burst(ex, camera, starts['a'])
        pauses['b'] = _pause(ex)
        bursts['b'] = _burst(ex, camera, starts['b'])
        spin_until(ex, lambda: len(_phase(camera.out['caption'], starts['b'],
                                          starts['b'] + span)) >= 1, timeout=30)
        spin_until(ex, lambda: False, timeout=1.0)

        # every node's output resumed after each pause, without a restart
        for phase, lo in starts.items():
            for topic in ('detections', 'scene_graph', 'caption'):
                assert _phase(camera.out[topic], lo, lo + span), (topic, phase)
        assert all(n.active for n in nodes)
        for n in nodes:
            snap = n.counters.snapshot()
            assert snap['errors'] == 0 and snap['rejected'] == 0, (n.get_name(), snap)

        # (a) stamps continued: the same tracks and the smoothed scale carry on;
        # (b) stamps went back: tracks and scale start over (ids keep counting up)
        det = {p: _phase(camera.out['detections'], lo, lo + span) for p, lo in starts.items()}
        ids = {p: [[o.id for o in m.objects] for m in msgs] for p, msgs in det.items()}
        assert _first_fit(det['1']) == 'fresh'
        assert ids['a'][0] == ids['1'][-1] and _first_fit(det['a']) == 'smoothed'
        assert min(ids['b'][0]) > max(max(i) for i in ids['1'] + ids['a'])
        assert all(i == ids['b'][0] for i in ids['b']) and _first_fit(det['b']) == 'fresh'
        assert any(_scale(m) == 'smoothed' for m in det['b'])   # ... and builds up again
        log = capfd.readouterr().err
        assert log.count('camera restarted or bag looped; starting a new sequence') == 1

        # diagnostics: input rate 0 Hz once the rate window passed without frames, back up
        # once frames arrive again (perception: close to the rate the camera published at)
        for name in ('perception', 'scene_graph', 'caption'):
            for phase in ('a', 'b'):
                quiet = _rates(camera, name, pauses[phase] + RATE_WINDOW_S + 0.3,
                               bursts[phase][0])
                assert quiet and quiet[-1] == 0.0, (name, phase, quiet)
                back = _rates(camera, name, bursts[phase][0], bursts[phase][1] + 0.5)
                assert back and max(back) > 0.0, (name, phase, back)
        figures = []
        for phase in ('a', 'b'):
            published = bursts[phase][2]
            diagnosed = max(_rates(camera, 'perception', bursts[phase][0],
                                   bursts[phase][1] + 0.5))
            assert diagnosed >= 0.5 * published
            first = min(t for t, m in zip(camera.arrived['caption'], camera.out['caption'],
                                          strict=True)
                        if starts[phase] <= conversions.stamp_to_ns(m.header.stamp)
                        < starts[phase] + span)
            figures.append(f'{phase}: first caption {first - bursts[phase][0]:.2f} s after the '
                           f'first frame, camera {published:.1f} Hz, diagnosed up to '
                           f'{diagnosed:.1f} Hz')
        with capfd.disabled():
            print('\n[restart] ' + '; '.join(figures))
    finally:
        ex.shutdown()
        for node in nodes:
            node.destroy_node()
        camera.node.destroy_node()
