"""Real rclpy: the memory node. Across the real nodes on real TUM RGB-D frames with the
ground-truth poses as /tf; transforms missing, stale and absent; the typed services; a kill -9 of
the node process while it writes its database."""

import os
from pathlib import Path
import signal
import sqlite3
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from spatial_caption_interfaces.msg import MemoryChange, MemoryFacts, SceneGraph
from spatial_caption_interfaces.srv import ChangesSince, LastSeen, QueryObjects
from geometry_msgs.msg import TransformStamped
from tf2_msgs.msg import TFMessage

from support import EVAL, MODELS, needs_shared, spin_until
from support.memory_scene import CAM, graph, obj_at, S
from spatial_caption_ros.params_file import dump_params
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.evaluation.tum import read_tum_sequence
from spatial_caption_ros.core.memory.evaluation import posed_frames
from spatial_caption_ros.core.memory.storage import MemoryDatabase
from spatial_caption_ros.core.memory.store import ObjectMemory
from spatial_caption_ros.core.memory.transforms import Transform
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.memory_node import MemoryNode
from spatial_caption_ros.nodes.perception_node import PerceptionNode
from spatial_caption_ros.nodes.scene_graph_node import SceneGraphNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.graph import spawn_node, stop_processes
from spatial_caption_ros.ros.qos import qos_profile

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]
TUM = EVAL / 'tum_fr1_rpy'
OPTICAL = 'kinect_rgb_optical_frame'


def tf_msg(parent: str, child: str, stamp_ns: int, pose: Transform) -> TFMessage:
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = parent, child
    t.header.stamp = conversions.ns_to_stamp(stamp_ns)
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
        float(v) for v in pose.translation)
    q = pose.quaternion
    t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, \
        t.transform.rotation.w = q
    return TFMessage(transforms=[t])


class Robot:
    """Publishes what a robot would (camera, depth, /tf) and calls the memory's services."""

    def __init__(self, namespace: str):
        self.node = rclpy.create_node('robot', namespace=namespace)
        reliable = qos_profile('reliable')
        self.image = self.node.create_publisher(Image, 'image', reliable)
        self.depth = self.node.create_publisher(Image, 'depth', reliable)
        self.info = self.node.create_publisher(CameraInfo, 'camera_info', reliable)
        self.graph = self.node.create_publisher(SceneGraph, 'scene_graph', reliable)
        self.tf = self.node.create_publisher(TFMessage, '/tf', qos_profile('reliable'))
        self.changes, self.facts = [], []
        self.node.create_subscription(MemoryChange, 'memory/changes', self.changes.append,
                                      reliable)
        self.node.create_subscription(MemoryFacts, 'memory/facts', self.facts.append, reliable)
        prefix = f'{namespace}/memory'
        self.query = self.node.create_client(QueryObjects, f'{prefix}/query_objects')
        self.last_seen = self.node.create_client(LastSeen, f'{prefix}/last_seen')
        self.changes_since = self.node.create_client(ChangesSince, f'{prefix}/changes_since')

    def call(self, ex, client, request):
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(request)
        assert spin_until(ex, future.done, timeout=10)
        return future.result()


def _executor(*nodes) -> MultiThreadedExecutor:
    ex = MultiThreadedExecutor()
    for n in nodes:
        ex.add_node(n)
    return ex


def _memory(namespace: str, **params) -> MemoryNode:
    return MemoryNode(namespace=namespace, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])

# ---------------------------------------------------------------- the real graph on TUM


@pytest.mark.slow
def test_memory_across_the_real_nodes_on_tum_frames_with_ground_truth_tf(tmp_path):
    sequence = read_tum_sequence(TUM)
    intrinsics = sequence.intrinsics
    frames = posed_frames(sequence)[:30:2]      # 15 real frames over 4 s of the sequence
    ns = '/mem_tum'
    perception = PerceptionNode(namespace=ns, parameter_overrides=[
        Parameter('model_dir', value=str(MODELS)), Parameter('depth_source', value='sensor'),
        Parameter('input_qos', value='reliable'), Parameter('depth_wait', value=1.0)])
    scene_graph = SceneGraphNode(namespace=ns)
    memory = _memory(ns, world_frame='world', database=str(tmp_path / 'memory.sqlite'),
                     keyframe_interval=0.0)
    robot = Robot(ns)
    ex = _executor(perception, scene_graph, memory, robot.node)
    try:
        assert memory.active and perception.active, (memory.last_error, perception.last_error)
        assert memory.tf_mode.startswith('own buffer')       # the wheels have no tf2_ros
        assert spin_until(ex, lambda: robot.image.get_subscription_count() >= 2 and
                          robot.tf.get_subscription_count() >= 1 and
                          robot.node.count_publishers('memory/facts') >= 1)
        for frame in frames:
            header = FrameHeader(frame.stamp_ns, OPTICAL)
            n = len(robot.facts)
            robot.tf.publish(tf_msg('world', OPTICAL, frame.stamp_ns, frame.pose))
            robot.info.publish(conversions.intrinsics_to_camera_info(intrinsics, header))
            depth = sequence.read_depth(frame.frame)
            robot.depth.publish(conversions.array_to_image_msg(depth, header, '32FC1'))
            robot.image.publish(conversions.color_to_image_msg(
                read_image_file(frame.frame.rgb_path), header))
            assert spin_until(ex, lambda n=n: len(robot.facts) > n, timeout=60), \
                f'no memory update for {frame.frame.name}'
        # the same frames through the core with the poses given directly: the node's world
        # positions (through /tf and its own transform buffer) are the same
        pipeline = PerceptionPipeline(build_config(PerceptionConfig, {
            'model_dir': str(MODELS), 'depth_source': 'sensor'}))
        builder = SceneGraphBuilder(build_config(SceneGraphConfig, {}))
        expected = ObjectMemory(build_config(MemoryConfig, {}))
        for frame in frames:
            result = pipeline.process(read_image_file(frame.frame.rgb_path),
                                      FrameHeader(frame.stamp_ns, OPTICAL), intrinsics,
                                      sequence.read_depth(frame.frame))
            expected.update(builder.build(result), frame.pose, intrinsics)
        pipeline.close()
        want = sorted((o.class_name, tuple(np.round(o.position, 3)))
                      for o in expected.remembered())
        assert want, 'the real frames should leave remembered objects'
        reply = robot.call(ex, robot.query, QueryObjects.Request(include_gone=True))
        assert reply.success and reply.frame_id == 'world'
        got = sorted((o.class_name, (round(o.position.x, 3), round(o.position.y, 3),
                                     round(o.position.z, 3))) for o in reply.objects)
        assert [g[0] for g in got] == [w[0] for w in want]
        np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], atol=2e-3)
        # where and when: the most recent object of the first class
        first = reply.objects[0]
        seen = robot.call(ex, robot.last_seen, LastSeen.Request(class_name=first.class_name))
        assert seen.found and seen.object.class_name == first.class_name
        assert conversions.stamp_to_ns(seen.object.last_seen) in {f.stamp_ns for f in frames}
        assert seen.object.uncertainty > 0 and seen.object.frame_id == 'world'
        # the change events on the topic are those the service returns
        since = robot.call(ex, robot.changes_since, ChangesSince.Request())
        assert since.success and len(since.changes) == len(robot.changes) > 0
        assert {c.kind for c in robot.changes} <= {'appeared', 'moved', 'gone'}
        assert all(c.header.frame_id == 'world' for c in robot.changes)
        # keyframes came from the image topic (matched by stamp) and were stored
        assert len(memory.memory.keyframes.keyframes) >= len(frames) - 2
        values = {kv.key: kv.value for kv in memory.diagnostic_status().values}
        assert values['tf_status'] == 'ok' and values['rejected'] == '0', values
    finally:
        ex.shutdown()
        for n in (perception, scene_graph, memory, robot.node):
            n.destroy_node()
    stored = MemoryDatabase(str(tmp_path / 'memory.sqlite'))
    assert stored.counts()['objects'] >= len(want)
    stored.close()

# ---------------------------------------------------------------- transforms and services


def test_missing_stale_and_absent_transforms_are_diagnostics_not_crashes():
    ns = '/mem_tf'
    memory = _memory(ns, world_frame='map', keyframes=False, transform_tolerance=0.1)
    robot = Robot(ns)
    ex = _executor(memory, robot.node)

    def send(stamp_s, *objects):
        n = memory.counters.processed
        robot.graph.publish(conversions.scene_graph_to_msg(graph(stamp_s, *objects)))
        assert spin_until(ex, lambda: memory.counters.processed > n)
    try:
        assert memory.active, memory.last_error
        robot.info.publish(conversions.intrinsics_to_camera_info(CAM, FrameHeader(0, 'cam')))
        assert spin_until(ex, lambda: robot.graph.get_subscription_count() >= 1 and
                          robot.tf.get_subscription_count() >= 1)
        cup = obj_at(1, 'cup', (0.0, 0.0, 2.0))
        send(1.0, cup)                                       # no /tf at all yet
        values = {kv.key: kv.value for kv in memory.diagnostic_status().values}
        assert "'map' does not exist" in values['tf_status']
        assert values['rejected.transform_missing'] == '1'
        robot.tf.publish(tf_msg('map', 'cam', 2 * S, Transform.identity()))
        robot.tf.publish(tf_msg('map', 'cam', 3 * S, Transform.identity()))
        assert spin_until(ex, lambda: memory.tf_buffer.frames() >= {'map', 'cam'})
        send(2.5, cup)
        send(3.0, cup)
        assert spin_until(ex, lambda: [c.kind for c in robot.changes] == ['appeared'])
        assert robot.changes[0].object.frame_id == 'map'
        send(9.0, cup)                                       # 6 s after the newest transform
        values = {kv.key: kv.value for kv in memory.diagnostic_status().values}
        assert 'stale' in values['tf_status'] and values['rejected.transform_stale'] == '1'
        assert memory.active
        # services: typed answers, errors in the response, never an exception
        reply = robot.call(ex, robot.query, QueryObjects.Request(
            class_name='cup', use_point=True, radius=3.0))
        assert reply.success and [o.class_name for o in reply.objects] == ['cup']
        assert reply.distances[0] == pytest.approx(2.0, abs=1e-6)
        assert not robot.call(ex, robot.query, QueryObjects.Request(near_object_id=77)).success
        assert not robot.call(ex, robot.last_seen, LastSeen.Request(class_name='kite')).found
        bad = robot.call(ex, robot.changes_since, ChangesSince.Request(kind='exploded'))
        assert not bad.success and 'appeared' in bad.message
    finally:
        ex.shutdown()
        memory.destroy_node()
        robot.node.destroy_node()


def test_without_world_frame_the_camera_frame_is_used_with_a_warning():
    from diagnostic_msgs.msg import DiagnosticStatus
    memory = _memory('/mem_cam', keyframes=False)
    try:
        assert memory.active
        status = memory.diagnostic_status()
        assert status.level == DiagnosticStatus.WARN and 'camera frame' in status.message
    finally:
        memory.destroy_node()

def test_captions_state_the_memory_facts_of_their_frame():
    from spatial_caption_interfaces.msg import Caption
    from spatial_caption_ros.nodes.caption_node import CaptionNode
    ns = '/mem_caption'
    memory = _memory(ns, keyframes=False)
    # the caption node reads its graphs from `caption_in`, so the test hands it each graph only
    # once the memory has published its facts (in a running graph the LLM takes longer anyway)
    caption = CaptionNode(namespace=ns, cli_args=['--ros-args', '-r', 'scene_graph:=caption_in'],
                          parameter_overrides=[Parameter('generator', value='template'),
                                               Parameter('memory_facts', value=True),
                                               Parameter('input_qos', value='reliable')])
    robot = Robot(ns)
    to_caption = robot.node.create_publisher(SceneGraph, 'caption_in', qos_profile('reliable'))
    captions = []
    robot.node.create_subscription(Caption, 'caption', captions.append, qos_profile('reliable'))
    ex = _executor(memory, caption, robot.node)
    try:
        assert memory.active and caption.active, caption.last_error
        assert spin_until(ex, lambda: robot.graph.get_subscription_count() >= 1 and
                          to_caption.get_subscription_count() >= 1 and
                          robot.node.count_publishers('caption') >= 1 and
                          caption.count_publishers('memory/facts') >= 1)
        for stamp in (0.0, 0.5, 12.0):
            msg = conversions.scene_graph_to_msg(graph(stamp, obj_at(1, 'cup', (0, 0, 2.0))))
            n, m = len(robot.facts), len(captions)
            robot.graph.publish(msg)
            assert spin_until(ex, lambda n=n: len(robot.facts) > n)
            to_caption.publish(msg)
            assert spin_until(ex, lambda m=m: len(captions) > m)
        assert list(robot.facts[-1].statements) == ['the cup first seen 12 s ago is still there']
        assert captions[-1].text.endswith(
            'From memory: The cup first seen 12 s ago is still there.'), captions[-1].text
        assert 'From memory' not in captions[0].text      # nothing remembered yet
    finally:
        ex.shutdown()
        for n in (memory, caption, robot.node):
            n.destroy_node()

# ---------------------------------------------------------------- kill -9 while writing


@pytest.mark.slow
def test_kill_9_of_the_memory_node_mid_write_then_reopen(tmp_path):
    db = tmp_path / 'memory.sqlite'
    params = tmp_path / 'params.yaml'
    params.write_text(dump_params({'memory': {'ros__parameters': {
        'database': str(db), 'keyframes': False, 'input_qos': 'reliable'}}}))
    ns = '/mem_kill'
    proc = spawn_node('memory', params, {'__ns': ns})
    robot = Robot(ns)
    ex = _executor(robot.node)
    try:
        assert spin_until(ex, lambda: robot.graph.get_subscription_count() >= 1, timeout=30)

        def stored() -> int:
            if not db.exists():
                return 0
            with sqlite3.connect(f'file:{db}?mode=ro', uri=True) as c:
                return c.execute('SELECT COUNT(*) FROM objects').fetchone()[0]
        k = 0
        deadline = time.monotonic() + 60
        while stored() < 200 and time.monotonic() < deadline:
            k += 1     # 40 objects that move every frame: every update rewrites rows
            objects = [obj_at(j, 'cup', (0.05 * j - 1.0, 0.01 * (k % 7), 2.0 + j % 3))
                       for j in range(40)]
            robot.graph.publish(conversions.scene_graph_to_msg(graph(k * 0.05, *objects)))
            spin_until(ex, lambda: False, timeout=0.02)
        assert stored() >= 40
        os.kill(proc.pid, signal.SIGKILL)     # while graphs are still arriving and written
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        stop_processes([proc])
        ex.shutdown()
        robot.node.destroy_node()
    reopened = MemoryDatabase(str(db))
    assert reopened.recovered_from == ''          # integrity check passed, nothing moved aside
    objects, changes, _ = reopened.load(20)
    assert len(objects) >= 40 and all(np.all(np.isfinite(o.position)) for o in objects.values())
    assert all(c.object.id in objects or c.kind == 'appeared' for c in changes)
    reopened.close()
    assert not list(Path(tmp_path).glob('*.corrupt-*'))
