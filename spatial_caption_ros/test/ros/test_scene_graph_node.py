"""Real rclpy: the scene-graph node turns DetectionArray messages into SceneGraph messages."""

import math

import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from spatial_caption_interfaces.msg import DetectionArray, SceneGraph, SpatialRelation

from support import spin_until
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, CONVERSE, DetectionResult, FrameHeader, SceneObject)
from spatial_caption_ros.nodes.scene_graph_node import SceneGraphNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile

pytestmark = pytest.mark.usefixtures('rclpy_context')
CAMERA = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)


def metric(i, name, box, z, sigma):
    o = SceneObject(id=i, class_name=name, class_id=0, confidence=0.8, box=BoundingBox(*box),
                    depth=z, depth_uncertainty=sigma, depth_source='geometric',
                    depth_metric=True)
    u, v = o.box.center
    o.position = CAMERA.backproject(u, v, z)
    o.distance = math.sqrt(sum(c * c for c in o.position))
    o.metric_width, o.metric_height = o.box.width * z / 500.0, o.box.height * z / 500.0
    return o


def kitchen(stamp_ns: int, duplicate_ids: bool = False) -> DetectionArray:
    """A cup on a table, a person left of it and in front, a far tv; track ids 11, 12, 13, 14."""
    objects = [metric(11, 'cup', (300, 200, 330, 240), 3.0, 0.2),
               metric(12, 'dining table', (200, 230, 520, 400), 3.1, 0.2),
               metric(13, 'person', (20, 100, 150, 470), 1.5, 0.1),
               metric(14 if not duplicate_ids else 11, 'tv', (400, 40, 520, 120), 6.0, 0.4)]
    result = DetectionResult(header=FrameHeader(stamp_ns, 'camera_optical_frame'),
                             image_width=640, image_height=480, objects=objects,
                             depth_source='geometric', depth_metric=True, has_camera_info=True)
    return conversions.detections_to_msg(result)


class Probe:
    """Publishes detections and records scene graphs, like the caption node would."""

    def __init__(self, namespace):
        import rclpy
        self.node = rclpy.create_node('probe', namespace=namespace)
        self.pub = self.node.create_publisher(DetectionArray, 'detections',
                                              qos_profile('reliable'))
        self.graphs = []
        self.node.create_subscription(SceneGraph, 'scene_graph', self.graphs.append,
                                      qos_profile('reliable'))


def _setup(namespace, **params):
    node = SceneGraphNode(namespace=namespace, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    probe = Probe(namespace)
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(probe.node)
    assert spin_until(ex, lambda: probe.pub.get_subscription_count() >= 1 and
                      probe.node.count_publishers('scene_graph') >= 1)
    return node, probe, ex


def _teardown(node, probe, ex):
    ex.shutdown()
    node.destroy_node()
    probe.node.destroy_node()


def test_node_publishes_graphs_with_depth_enhanced_relations():
    node, probe, ex = _setup('/sg1')
    try:
        assert node.active, node.last_error
        probe.pub.publish(kitchen(1_000_000_123))
        assert spin_until(ex, lambda: probe.graphs, timeout=20)
        msg = probe.graphs[0]
        assert conversions.stamp_to_ns(msg.header.stamp) == 1_000_000_123
        assert msg.header.frame_id == 'camera_optical_frame'
        assert msg.depth_metric and msg.depth_source == 'geometric'
        assert [o.id for o in msg.objects] == [11, 12, 13, 14]        # track ids kept
        names = {o.id: o.class_name for o in msg.objects}
        facts = set()        # each fact in both spellings ("A left of B" = "B right of A")
        for r in msg.relations:
            facts.add((names[r.subject_id], r.predicate, names[r.object_id]))
            if r.predicate in CONVERSE:
                facts.add((names[r.object_id], CONVERSE[r.predicate], names[r.subject_id]))
        assert ('cup', SpatialRelation.ON, 'dining table') in facts
        assert ('person', SpatialRelation.LEFT_OF, 'dining table') in facts
        assert ('person', SpatialRelation.IN_FRONT_OF, 'dining table') in facts
        assert ('tv', SpatialRelation.BEHIND, 'dining table') in facts
        # each fact is published in one spelling only
        assert len(msg.relations) == len({(r.subject_id, r.predicate, r.object_id)
                                          for r in msg.relations})
        # metric distances on relations between metric objects, salience-ordered relations
        assert all(math.isfinite(r.distance) and r.distance > 0 for r in msg.relations)
        saliences = [r.salience for r in msg.relations]
        assert saliences == sorted(saliences, reverse=True)
        cup = msg.objects[0]
        assert cup.class_count == 1 and cup.region == 'center' and 0 < cup.salience <= 1
        assert any(kv.key == 'UsedFor' for kv in cup.knowledge)
        assert cup.has_position and cup.metric_width > 0
    finally:
        _teardown(node, probe, ex)


def test_bad_detections_are_rejected_counted_and_the_node_keeps_going():
    node, probe, ex = _setup('/sg2')
    try:
        probe.pub.publish(kitchen(1, duplicate_ids=True))
        assert spin_until(ex, lambda: node.counters.snapshot()['rejected'] == 1)
        bad = kitchen(2)
        bad.objects[0].x_max = float('nan')
        probe.pub.publish(bad)
        assert spin_until(ex, lambda: node.counters.snapshot()['rejected'] == 2)
        assert probe.graphs == []
        probe.pub.publish(kitchen(3))
        assert spin_until(ex, lambda: probe.graphs, timeout=20)
        assert conversions.stamp_to_ns(probe.graphs[0].header.stamp) == 3
        snap = node.counters.snapshot()
        assert snap['rejected.invalid_input'] == 2 and snap['processed'] >= 1
    finally:
        _teardown(node, probe, ex)


def test_live_parameters_are_validated_and_applied():
    node, probe, ex = _setup('/sg3', knn_k=1, always_relate_top=0)
    try:
        bad = node.set_parameters([Parameter('near_max_gap', value=0.1)])[0]
        assert not bad.successful and 'near_max_gap' in bad.reason
        bad = node.set_parameters([Parameter('knowledge_files', value=['x.yaml'])])[0]
        assert not bad.successful and 'not active' in bad.reason
        probe.pub.publish(kitchen(1))
        assert spin_until(ex, lambda: len(probe.graphs) == 1, timeout=20)
        few = len(probe.graphs[0].relations)
        assert node.set_parameters([Parameter('knn_k', value=0)])[0].successful
        assert node.builder.config.knn_k == 0
        probe.pub.publish(kitchen(2))
        assert spin_until(ex, lambda: len(probe.graphs) == 2, timeout=20)
        assert len(probe.graphs[1].relations) > few           # every pair now
        assert node.describe()['knowledge_classes'] == '80'
    finally:
        _teardown(node, probe, ex)
