"""Real rclpy: the caption node with the real LLM, real publishers and subscriptions."""

from diagnostic_msgs.msg import DiagnosticStatus
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from spatial_caption_interfaces.msg import Caption, SceneGraph

from support import spin_until
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.caption_node import CaptionNode
from spatial_caption_ros.ros import conversions
from support.llm import needs_llm
from support.rig import diagnostic_values, Harness
from support.scenes import street

pytestmark = pytest.mark.usefixtures('rclpy_context')


def _publish(harness, stamp_ns: int, metric: bool = True, people: int = 3):
    """The street graph with the first `people` people, stamped `stamp_ns`."""
    graph = street(metric)
    graph.objects = graph.objects[:1 + people]
    kept = {o.id for o in graph.objects}
    graph.relations = [r for r in graph.relations
                       if r.subject_id in kept and r.object_id in kept]
    graph.header = FrameHeader(stamp_ns, 'camera_optical_frame')
    harness.pubs['scene_graph'].publish(conversions.scene_graph_to_msg(graph))


def _run(namespace, **params):
    node = CaptionNode(namespace=namespace, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    harness = Harness(namespace, {'scene_graph': SceneGraph}, {'caption': Caption},
                      'caption_harness')
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    executor.add_node(harness.node)
    assert spin_until(executor, lambda: harness.pubs['scene_graph'].get_subscription_count() >= 1
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
        _publish(harness, 1_700_000_000_123_456_789)
        assert spin_until(ex, lambda: harness.out['caption'], timeout=120)
        msg = harness.out['caption'][0]
        assert conversions.stamp_to_ns(msg.header.stamp) == 1_700_000_000_123_456_789
        assert msg.header.frame_id == 'camera_optical_frame'
        assert msg.verified and msg.generator == 'llm' and msg.fallback_reason == ''
        assert msg.model.endswith('.gguf') and msg.latency > 0 and 'bus' in msg.text
        assert spin_until(ex, lambda: any(diagnostic_values(s).get('captions_verified') == '1'
                                          for s in harness.statuses('caption')), timeout=10)
    finally:
        _close(node, harness, ex)


def test_min_period_and_latest_graph_wins():
    # The template keeps this about the node's scheduling, not the LLM's speed.
    node, harness, ex = _run('/c2', generator='template', min_period=1.5)
    try:
        _publish(harness, 1)
        assert spin_until(ex, lambda: len(harness.out['caption']) == 1, timeout=30)
        # All arrive within min_period: only the latest is captioned (the older ones are
        # replaced in the node's one-message slot, or already by the depth-1 subscription).
        for stamp in (2, 3, 4):
            _publish(harness, stamp)
            ex.spin_once(timeout_sec=0.05)
        assert spin_until(ex, lambda: len(harness.out['caption']) == 2, timeout=30)
        spin_until(ex, lambda: False, timeout=0.5)       # nothing else may follow
        stamps = harness.stamps('caption')
        assert stamps == [1, 4]
        assert harness.arrived['caption'][1] - harness.arrived['caption'][0] >= 1.5 - 0.1
    finally:
        _close(node, harness, ex)


def test_only_on_change_skips_an_unchanged_scene():
    node, harness, ex = _run('/c3', generator='template', only_on_change=True)
    try:
        _publish(harness, 1)
        assert spin_until(ex, lambda: len(harness.out['caption']) == 1, timeout=30)
        _publish(harness, 2)                                    # same scene
        assert spin_until(ex, lambda: node.skipped_unchanged == 1, timeout=30)
        _publish(harness, 3, people=2)                          # one person left
        assert spin_until(ex, lambda: len(harness.out['caption']) == 2, timeout=30)
    finally:
        _close(node, harness, ex)


@needs_llm
def test_llm_timeout_falls_back_to_a_marked_template_caption(capfd):
    node, harness, ex = _run('/c4', timeout=0.001)
    try:
        assert node.active
        _publish(harness, 5)
        assert spin_until(ex, lambda: harness.out['caption'], timeout=60)
        msg = harness.out['caption'][0]
        assert msg.generator == 'template' and msg.verified and msg.model == ''
        assert msg.fallback_reason.startswith('timeout: no complete caption after 0.00 s')
        assert spin_until(ex, lambda: any(
            diagnostic_values(s).get('fallback.timeout') == '1'
            and s.level == DiagnosticStatus.WARN and '1 timeout' in s.message
            for s in harness.statuses('caption')), timeout=10)
        assert 'LLM failed, template caption published: timeout' in capfd.readouterr().err
    finally:
        _close(node, harness, ex)


def test_missing_model_file_template_captions_with_warn(tmp_path):
    node, harness, ex = _run('/c5', model=str(tmp_path / 'missing.gguf'))
    try:
        assert node.active
        _publish(harness, 6)
        assert spin_until(ex, lambda: harness.out['caption'], timeout=30)
        msg = harness.out['caption'][0]
        assert msg.generator == 'template' and msg.verified
        assert msg.fallback_reason.startswith('llm_unavailable')
        assert spin_until(ex, lambda: any(s.level == DiagnosticStatus.WARN
                                          for s in harness.statuses('caption')), timeout=10)
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
