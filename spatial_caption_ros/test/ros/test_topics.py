"""Real rclpy: the topics every node really creates, camera remaps, raw and compressed input, and
the source image's stamp and frame_id carried to every output of the whole graph."""

import json

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from spatial_caption_interfaces.msg import Caption, DetectionArray, SceneGraph
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray
import yaml

from support import BUS, IMAGES, MODELS, needs_shared, spin_until
from spatial_caption_ros.params_file import load_params
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.graph import (
    ALL_NODES, camera_remaps, create_nodes, node_class, PIPELINE_NODES)
from spatial_caption_ros.ros.interface import (
    INFRASTRUCTURE_SUFFIXES, INFRASTRUCTURE_TOPICS, node_topics)
from spatial_caption_ros.ros.qos import qos_profile

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]

CAMERA = '/cam/color/image_raw'
FRAME = 'front_camera_color_optical_frame'
STAMP = 1_800_000_000_000_000_042

# Parameter variations that switch conditional topics on or off.
VARIANTS = {
    'image_source': [{}, {'pace_on': 'caption'}],
    'perception': [{}, {'image_format': 'compressed'}, {'depth_source': 'sensor'}],
    'scene_graph': [{}, {'publish_json': True}],
    'caption': [{}, {'memory_facts': True}],
    'visualization': [{}, {'image_format': 'compressed', 'show_depth_inset': False}],
    'memory': [{}, {'world_frame': 'odom', 'keyframes': False}],
}


def _resolve(name: str, ns: str, node: str) -> str:
    if name.startswith('/'):
        return name
    if name.startswith('~/'):
        return f'{ns}/{node}/{name[2:]}'
    return f'{ns}/{name}'


def _endpoints(node, publishers: bool) -> set[tuple[str, str]]:
    get = node.get_publisher_names_and_types_by_node if publishers else \
        node.get_subscriber_names_and_types_by_node
    out = set()
    for topic, types in get(node.get_name(), node.get_namespace()):
        if topic in INFRASTRUCTURE_TOPICS or topic.endswith(INFRASTRUCTURE_SUFFIXES):
            continue
        out |= {(topic, t) for t in types}
    return out


@pytest.mark.parametrize('name,index', [(n, i) for n in ALL_NODES
                                        for i in range(len(VARIANTS[n]))])
def test_each_node_creates_exactly_the_documented_topics(name, index):
    variant = VARIANTS[name][index]
    ns = f'/ifc_{name}_{index}'      # one namespace per node instance: no stale graph entries
    params = {'model_dir': str(MODELS)} if name == 'perception' else {}
    if name == 'image_source':
        params['source'] = str(IMAGES)
    params.update(variant)
    node = node_class(name)(namespace=ns, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    try:
        if name == 'image_source':         # its inputs exist only while active
            assert node.active or node.trigger_activate()
        assert node.active, node.last_error
        values = {n: p.value for n, p in node._parameters.items()}
        specs = node_topics(name, values)
        want_pub = {(_resolve(t.name, ns, name), t.msg_type) for t in specs
                    if t.direction == 'out'}
        want_sub = {(_resolve(t.name, ns, name), t.msg_type) for t in specs
                    if t.direction == 'in'}
        ok = spin_until(ex, lambda: _endpoints(node, True) == want_pub and
                        _endpoints(node, False) == want_sub, timeout=5)
        assert ok, (f'{name} {variant}: publishes {sorted(_endpoints(node, True))}, subscribes '
                    f'{sorted(_endpoints(node, False))}; ros/interface.py documents '
                    f'{sorted(want_pub)} and {sorted(want_sub)}')
    finally:
        ex.shutdown()
        node.destroy_node()


class Recorder:
    """Subscribes to every output of the graph in namespace `ns` and keeps the messages."""

    TOPICS = {'detections': DetectionArray, 'scene_graph': SceneGraph,
              'scene_graph/json': String, 'caption': Caption, 'markers': MarkerArray,
              'annotated_image': Image}

    def __init__(self, ns: str):
        self.node = rclpy.create_node('recorder', namespace=ns)
        self.msgs = {t: [] for t in self.TOPICS}
        for topic, msg_type in self.TOPICS.items():
            self.node.create_subscription(msg_type, topic, self.msgs[topic].append,
                                          qos_profile('reliable'))
        self.diagnostics = []
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append,
                                      50)
        reliable = qos_profile('reliable')
        self.image_pub = self.node.create_publisher(Image, CAMERA, reliable)
        self.jpeg_pub = self.node.create_publisher(CompressedImage, CAMERA + '/compressed',
                                                   reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, '/cam/color/camera_info',
                                                   reliable)

    def complete(self) -> bool:
        return all(self.msgs.values())


def _graph(ns, params_update, tmp_path):
    params = load_params()
    params['perception']['ros__parameters']['model_dir'] = str(MODELS)
    for node, values in params_update.items():
        params[node]['ros__parameters'].update(values)
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({f'/**/{k}': v for k, v in params.items()}))
    recorder = Recorder(ns)
    nodes = []
    for name in PIPELINE_NODES:
        cls = node_class(name)
        nodes.append(cls(namespace=ns, cli_args=['--ros-args', '--params-file', str(path)] + [
            a for src, dst in camera_remaps(CAMERA).items() for a in ('-r', f'{src}:={dst}')],
            use_global_arguments=False))
    ex = MultiThreadedExecutor()
    for n in nodes + [recorder.node]:
        ex.add_node(n)
    return nodes, recorder, ex


def _close(nodes, recorder, ex):
    ex.shutdown()
    for n in nodes + [recorder.node]:
        n.destroy_node()


def test_remapped_camera_topics_and_the_source_header_on_every_output(tmp_path):
    ns = '/hdr'
    nodes, rec, ex = _graph(ns, {'scene_graph': {'publish_json': True}}, tmp_path)
    try:
        assert all(n.active for n in nodes), [n.last_error for n in nodes]
        # the camera topics are remapped onto /cam/...: perception and visualization listen
        # there and nothing listens on the relative names
        assert spin_until(ex, lambda: rec.image_pub.get_subscription_count() == 2 and
                          rec.info_pub.get_subscription_count() == 1 and
                          rec.node.count_publishers(f'{ns}/markers') == 1 and
                          rec.node.count_publishers(f'{ns}/scene_graph/json') == 1)
        assert rec.node.count_subscribers(f'{ns}/image') == 0
        image = read_image_file(BUS)
        header = FrameHeader(STAMP, FRAME)
        intr = CameraIntrinsics.from_horizontal_fov(60.0, image.width, image.height)
        rec.info_pub.publish(conversions.intrinsics_to_camera_info(intr, header))
        assert spin_until(ex, lambda: nodes[0]._camera_info is not None)
        rec.image_pub.publish(conversions.color_to_image_msg(image, header))
        assert spin_until(ex, rec.complete, timeout=60), {k: len(v) for k, v in rec.msgs.items()}

        stamped = [rec.msgs['detections'][0], rec.msgs['scene_graph'][0],
                   rec.msgs['caption'][0], rec.msgs['annotated_image'][0]]
        stamped += rec.msgs['markers'][0].markers
        for msg in stamped:
            assert msg.header.frame_id == FRAME, type(msg)
            assert conversions.stamp_to_ns(msg.header.stamp) == STAMP, type(msg)
        mirror = json.loads(rec.msgs['scene_graph/json'][0].data)
        assert mirror['stamp_ns'] == STAMP and mirror['frame_id'] == FRAME
        graph = conversions.msg_to_scene_graph(rec.msgs['scene_graph'][0])
        assert [o['class_name'] for o in mirror['objects']] == \
            [o.class_name for o in graph.objects]
        assert len(mirror['relations']) == len(graph.relations)

        def diagnostics_complete():
            seen = {}
            for d in rec.diagnostics:
                for s in d.status:
                    seen[s.name] = {kv.key: kv.value for kv in s.values}
            names = [f'spatial_caption: {ns}/{n}' for n in PIPELINE_NODES]
            return all(n in seen and seen[n].get('processed') == '1' for n in names) and seen
        seen = None
        assert spin_until(ex, lambda: bool(diagnostics_complete()), timeout=10)
        seen = diagnostics_complete()
        perception = seen[f'spatial_caption: {ns}/perception']
        # depth_source auto, no Depth Anything V2 weights here: geometric, and it says why
        assert perception['backend'] == 'onnxruntime'
        assert perception['depth_source'] == 'geometric'
        assert 'was not found' in perception['depth_source_choice']
        assert any(k.startswith('time_ms.inference') for k in perception)
        for name in PIPELINE_NODES:
            values = seen[f'spatial_caption: {ns}/{name}']
            assert values['state'] == 'active'
            assert {'input_rate_hz', 'received', 'dropped_stale', 'rejected'} <= set(values)
        assert seen[f'spatial_caption: {ns}/visualization'][
            'visualization.annotated_published'] == '1'
    finally:
        _close(nodes, rec, ex)


def test_compressed_camera_input(tmp_path):
    ns = '/jpeg'
    compressed = {'image_format': 'compressed'}
    nodes, rec, ex = _graph(ns, {'perception': compressed, 'visualization': compressed},
                            tmp_path)
    try:
        assert all(n.active for n in nodes), [n.last_error for n in nodes]
        assert spin_until(ex, lambda: rec.jpeg_pub.get_subscription_count() == 2 and
                          rec.node.count_publishers(f'{ns}/annotated_image') == 1)
        assert rec.image_pub.get_subscription_count() == 0
        msg = CompressedImage(format='jpeg', data=cv2.imencode('.jpg', cv2.imread(str(BUS)))[1]
                              .tobytes())
        msg.header = conversions.core_to_header(FrameHeader(STAMP, FRAME))
        rec.jpeg_pub.publish(msg)
        assert spin_until(ex, lambda: rec.msgs['detections'] and rec.msgs['annotated_image'],
                          timeout=60)
        det = rec.msgs['detections'][0]
        assert [o.class_name for o in det.objects].count('bus') == 1
        for out in (det, rec.msgs['annotated_image'][0]):
            assert out.header.frame_id == FRAME
            assert conversions.stamp_to_ns(out.header.stamp) == STAMP
    finally:
        _close(nodes, rec, ex)


def test_runner_and_graph_use_the_same_remaps():
    remaps = camera_remaps('/cam/color/image_raw')
    assert remaps == {'image': '/cam/color/image_raw',
                      'image/compressed': '/cam/color/image_raw/compressed',
                      'camera_info': '/cam/color/camera_info'}
    assert camera_remaps('/x/image', '/y/info', '/x/depth')['depth'] == '/x/depth'
    nodes = create_nodes(['scene_graph'], None, remaps={'scene_graph': '/elsewhere'})
    try:
        assert nodes[0].resolve_topic_name('scene_graph') == '/elsewhere'
    finally:
        for n in nodes:
            n.destroy_node()
