"""Real rclpy: the visualization node draws markers and the annotated image of each scene graph."""

import numpy as np
import pytest
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import Image
from spatial_caption_interfaces.msg import Caption, SceneGraph
from visualization_msgs.msg import Marker, MarkerArray

from support import needs_shared, spin_until
from support.rig import Harness
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.visualization_node import VisualizationNode
from spatial_caption_ros.ros import conversions
from support.synthetic_scene import bus_scene, FRAME_ID, save_artifact

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]
STAMP = 1_700_000_000_123_456_789


@pytest.fixture
def setup():
    node = VisualizationNode(namespace='/viz')
    harness = Harness('/viz', {'image': Image, 'depth': Image, 'caption': Caption,
                                'scene_graph': SceneGraph},
                      {'markers': MarkerArray, 'annotated_image': Image}, 'viz_harness')
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    ex.add_node(harness.node)
    assert node.active, node.last_error
    assert spin_until(ex, harness.connected)
    yield node, harness, ex
    ex.shutdown()
    node.destroy_node()
    harness.node.destroy_node()


def test_markers_and_annotated_image_in_the_source_frame(setup, tmp_path):
    node, harness, ex = setup
    image, depth, graph, caption = bus_scene(STAMP)
    header = FrameHeader(STAMP, FRAME_ID)
    harness.pubs['image'].publish(conversions.color_to_image_msg(image, header))
    harness.pubs['depth'].publish(conversions.array_to_image_msg(depth, header, '32FC1'))
    harness.pubs['caption'].publish(conversions.caption_to_msg(_caption(caption, STAMP - 1)))
    assert spin_until(ex, lambda: STAMP in node._images and node._depths and node._caption)
    harness.pubs['scene_graph'].publish(conversions.scene_graph_to_msg(graph))
    assert spin_until(ex, lambda: harness.out['markers'] and harness.out['annotated_image'],
                      timeout=30)

    markers = harness.out['markers'][0].markers
    assert markers[0].action == Marker.DELETEALL
    for m in markers:
        assert m.header.frame_id == FRAME_ID
        assert conversions.stamp_to_ns(m.header.stamp) == STAMP
    placed = [o for o in graph.objects if o.position is not None]
    bodies = [m for m in markers if m.ns == 'objects']
    assert len(bodies) == len(placed) >= 5 and all(m.type == Marker.CUBE for m in bodies)
    labels = {m.text for m in markers if m.ns == 'labels'}
    bus = next(o for o in graph.objects if o.class_name == 'bus')
    assert f'bus {bus.distance:.1f} m' in labels
    lines = [m for m in markers if m.type == Marker.LINE_LIST]
    assert 1 <= len(lines) <= node.config.max_relation_lines
    assert all(len(m.points) == 2 for m in lines)

    out = harness.out['annotated_image'][0]
    assert out.header.frame_id == FRAME_ID
    assert conversions.stamp_to_ns(out.header.stamp) == STAMP
    assert (out.width, out.height, out.encoding) == (image.width, image.height, 'bgr8')
    drawn = conversions.image_msg_to_color(out).bgr()
    assert not np.array_equal(drawn, image.bgr())
    save_artifact(np.ascontiguousarray(drawn), 'annotated_image_topic.png', tmp_path)
    assert node._counts['depth_insets'] == 1 and node._counts['annotated_published'] == 1
    assert STAMP not in node._images              # used images are dropped, not kept to the cap


def test_a_graph_without_its_image_still_gets_markers_and_is_counted(setup):
    node, harness, ex = setup
    _, _, graph, _ = bus_scene(STAMP + 7)
    harness.pubs['scene_graph'].publish(conversions.scene_graph_to_msg(graph))
    assert spin_until(ex, lambda: harness.out['markers'], timeout=30)
    assert not harness.out['annotated_image']
    assert node._counts['no_matching_image'] == 1
    values = node.diagnostic_values()
    assert values['visualization.no_matching_image'] == '1'


def test_2d_only_graph_clears_markers_and_adds_none(setup):
    node, harness, ex = setup
    _, _, graph, _ = bus_scene(STAMP + 9)
    for obj in graph.objects:
        obj.position = None
    harness.pubs['scene_graph'].publish(conversions.scene_graph_to_msg(graph))
    assert spin_until(ex, lambda: harness.out['markers'], timeout=30)
    markers = harness.out['markers'][0].markers
    assert [m.action for m in markers] == [Marker.DELETEALL]


def _caption(text, stamp):
    from spatial_caption_ros.core.types import Caption as CoreCaption
    return CoreCaption(header=FrameHeader(stamp, FRAME_ID), text=text, verified=True)
