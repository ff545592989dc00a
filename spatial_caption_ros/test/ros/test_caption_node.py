"""Real rclpy: the caption node with the real LLM, real publishers and subscriptions."""

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from spatial_caption_interfaces.msg import Caption, SceneGraph

from support import spin_until
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.caption_node import CaptionNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile
from support.llm import needs_llm
from support.scenes import street
from support.rig import diagnostic_values

pytestmark = pytest.mark.usefixtures('rclpy_context')


class Harness:
    """Publishes scene graphs, records captions (with arrival time) and diagnostics."""

    def __init__(self, namespace: str):
        import rclpy
        self.node = rclpy.create_node('caption_harness', namespace=namespace)
        self.pub = self.node.create_publisher(SceneGraph, 'scene_graph', qos_profile('reliable'))
        self.captions: list[tuple[float, Caption]] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.node.create_subscription(
            Caption, 'caption', lambda m: self.captions.append((time.monotonic(), m)),
            qos_profile('reliable'))
        self.node.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: self.diagnostics.extend(s for s in m.status
                                              if s.name.endswith(f'{namespace}/caption')), 10)

    def publish(self, stamp_ns: int, metric: bool = True, people: int = 3):
        graph = street(metric)
        graph.objects = graph.objects[:1 + people]
        kept = {o.id for o in graph.objects}
        graph.relations = [r for r in graph.relations
                           if r.subject_id in kept and r.object_id in kept]
        graph.header = FrameHeader(stamp_ns, 'camera_optical_frame')
        self.pub.publish(conversions.scene_graph_to_msg(graph))


def _run(namespace, **params):
    node = CaptionNode(namespace=namespace, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    harness = Harness(namespace)
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    executor.add_node(harness.node)
    assert spin_until(executor, lambda: harness.pub.get_subscription_count() >= 1
                      and harness.node.count_publishers('caption') >= 1) or not node.active
    return node, harness, executor


def _close(node, harness, executor):
    executor.shutdown()
    node.destroy_node()
    harness.node.destroy_node()


@needs_llm
def test_publishes_verified_llm_captions_with_the_source_stamp():
    node, harness, ex = _run('/c1', timeout=120.0)
    try:
        assert node.active, node.last_error
        harness.publish(1_700_000_000_123_456_789)
        assert spin_until(ex, lambda: harness.captions, timeout=120)
        msg = harness.captions[0][1]
        assert conversions.stamp_to_ns(msg.header.stamp) == 1_700_000_000_123_456_789
        assert msg.header.frame_id == 'camera_optical_frame'
        assert msg.verified and msg.generator == 'llm' and msg.fallback_reason == ''
        assert msg.model.endswith('.gguf') and msg.latency > 0 and 'bus' in msg.text
        assert spin_until(ex, lambda: any(diagnostic_values(s).get('captions_verified') == '1'
                                          for s in harness.diagnostics), timeout=10)
    finally:
        _close(node, harness, ex)


def test_min_period_and_latest_graph_wins():
    # The template keeps this about the node's scheduling, not the LLM's speed.
    node, harness, ex = _run('/c2', generator='template', min_period=1.5)
    try:
        harness.publish(1)
        assert spin_until(ex, lambda: len(harness.captions) == 1, timeout=30)
        # All arrive within min_period: only the latest is captioned (the older ones are
        # replaced in the node's one-message slot, or already by the depth-1 subscription).
        for stamp in (2, 3, 4):
            harness.publish(stamp)
            ex.spin_once(timeout_sec=0.05)
        assert spin_until(ex, lambda: len(harness.captions) == 2, timeout=30)
        spin_until(ex, lambda: False, timeout=0.5)       # nothing else may follow
        stamps = [conversions.stamp_to_ns(m.header.stamp) for _, m in harness.captions]
        assert stamps == [1, 4]
        assert harness.captions[1][0] - harness.captions[0][0] >= 1.5 - 0.1
    finally:
        _close(node, harness, ex)


def test_only_on_change_skips_an_unchanged_scene():
    node, harness, ex = _run('/c3', generator='template', only_on_change=True)
    try:
        harness.publish(1)
        assert spin_until(ex, lambda: len(harness.captions) == 1, timeout=30)
        harness.publish(2)                                    # same scene
        assert spin_until(ex, lambda: node.skipped_unchanged == 1, timeout=30)
        harness.publish(3, people=2)                          # one person left
        assert spin_until(ex, lambda: len(harness.captions) == 2, timeout=30)
    finally:
        _close(node, harness, ex)


@needs_llm
def test_llm_timeout_falls_back_to_a_marked_template_caption(capfd):
    node, harness, ex = _run('/c4', timeout=0.001)
    try:
        assert node.active
        harness.publish(5)
        assert spin_until(ex, lambda: harness.captions, timeout=60)
        msg = harness.captions[0][1]
        assert msg.generator == 'template' and msg.verified and msg.model == ''
        assert msg.fallback_reason.startswith('timeout: no complete caption after 0.00 s')
        assert spin_until(ex, lambda: any(
            diagnostic_values(s).get('fallback.timeout') == '1'
            and s.level == DiagnosticStatus.WARN and '1 timeout' in s.message
            for s in harness.diagnostics), timeout=10)
        assert 'LLM failed, template caption published: timeout' in capfd.readouterr().err
    finally:
        _close(node, harness, ex)


def test_missing_model_file_template_captions_with_warn(tmp_path):
    node, harness, ex = _run('/c5', model=str(tmp_path / 'missing.gguf'))
    try:
        assert node.active
        harness.publish(6)
        assert spin_until(ex, lambda: harness.captions, timeout=30)
        msg = harness.captions[0][1]
        assert msg.generator == 'template' and msg.verified
        assert msg.fallback_reason.startswith('llm_unavailable')
        assert spin_until(ex, lambda: any(s.level == DiagnosticStatus.WARN
                                          for s in harness.diagnostics), timeout=10)
    finally:
        _close(node, harness, ex)


def test_missing_model_file_fails_configure_when_required(tmp_path):
    node = CaptionNode(namespace='/c6', parameter_overrides=[
        Parameter('model', value=str(tmp_path / 'missing.gguf')),
        Parameter('llm_required', value=True)])
    try:
        assert not node.active and node.config is None
        assert 'missing.gguf' in node.last_error
        assert node.diagnostic_status().level == DiagnosticStatus.ERROR
    finally:
        node.destroy_node()
