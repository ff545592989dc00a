"""The ROS interface of every node: topics, message types, directions, QoS (one table, no drift).

docs/ros_interface.md is generated from this (tools/interface_docs.py), the launch-file tests check
remaps against it, and test/ros/test_topics.py starts every node and compares the topics it
really creates with this table, so a node that gains a topic fails the tests until it is listed
here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    """One topic of one node.

    name: as the node creates it (relative names resolve in the node's namespace and are meant
    to be remapped; `~/x` is private to the node).
    qos: a QoS name of ros/qos.py, or the parameter that chooses it.
    when: (parameter, values) under which the topic exists; empty: always (while active).
    or_when: a second (parameter, values) that also makes it exist.
    unless: (parameter, values) under which it does not exist, whatever `when` says.
    """

    name: str
    msg_type: str
    direction: str            # 'in' or 'out'
    qos: str
    description: str
    when: tuple[str, tuple] = ()
    or_when: tuple[str, tuple] = ()
    unless: tuple[str, tuple] = ()

    def exists_with(self, params: dict) -> bool:
        """Whether the node creates this topic with these parameter values."""
        if self.unless and params.get(self.unless[0]) in self.unless[1]:
            return False
        if not self.when:
            return True
        return any(params.get(cond[0]) in cond[1] for cond in (self.when, self.or_when) if cond)


IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
DETECTIONS = 'spatial_caption_interfaces/msg/DetectionArray'
SCENE_GRAPH = 'spatial_caption_interfaces/msg/SceneGraph'
CAPTION = 'spatial_caption_interfaces/msg/Caption'
STRING = 'std_msgs/msg/String'
UINT32 = 'std_msgs/msg/UInt32'
MARKERS = 'visualization_msgs/msg/MarkerArray'
DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'
TF = 'tf2_msgs/msg/TFMessage'
MEMORY_CHANGE = 'spatial_caption_interfaces/msg/MemoryChange'
MEMORY_FACTS = 'spatial_caption_interfaces/msg/MemoryFacts'

NODE_TOPICS: dict[str, tuple[TopicSpec, ...]] = {
    'image_source': (
        TopicSpec('image', IMAGE, 'out', 'output_qos',
                  'Frames of the folder/video (bgr8), stamped now, frame_id from `frame_id`.'),
        TopicSpec('camera_info', CAMERA_INFO, 'out', 'output_qos',
                  'Intrinsics from `camera_info_file` or `assumed_hfov_deg` (else none), '
                  'published just before each image with the same header.'),
        TopicSpec('~/done', UINT32, 'out', 'latched',
                  'Number of frames published, once the source is exhausted.'),
        TopicSpec('~/frame_names', STRING, 'out', 'reliable',
                  'JSON {"stamp_ns", "name"}: which file or video frame each image is; '
                  '{"name", "skipped"}: an unreadable file and why, when it is passed over; '
                  'once the source is exhausted {"end": true, "published", "skipped": '
                  '[{"name", "reason"}]}: every unreadable file and why.'),
        TopicSpec('detections', DETECTIONS, 'in', 'reliable',
                  'Pacing: the next frame waits for this output.',
                  when=('pace_on', ('detections',))),
        TopicSpec('scene_graph', SCENE_GRAPH, 'in', 'reliable',
                  'Pacing: the next frame waits for this output.',
                  when=('pace_on', ('scene_graph',))),
        TopicSpec('caption', CAPTION, 'in', 'reliable',
                  'Pacing: the next frame waits for this output.',
                  when=('pace_on', ('caption',))),
    ),
    'perception': (
        TopicSpec('image', IMAGE, 'in', 'input_qos', 'Camera image (rgb8, bgr8, mono8, ...).',
                  when=('image_format', ('raw',))),
        TopicSpec('image/compressed', COMPRESSED, 'in', 'input_qos',
                  'Camera image, JPEG or PNG.', when=('image_format', ('compressed',))),
        TopicSpec('camera_info', CAMERA_INFO, 'in', 'sensor_data',
                  'Intrinsics for 3D positions and metric sizes (the latest one is used).'),
        TopicSpec('depth', IMAGE, 'in', 'input_qos',
                  'Depth image aligned to the colour image (16UC1 mm or 32FC1 m), matched to '
                  'each colour frame by stamp within `depth_stamp_tolerance`. `auto` subscribes '
                  'too: frames that arrive with one use it, others estimate depth.',
                  when=('depth_source', ('sensor', 'auto')),
                  or_when=('depth_scale_source', ('sensor',))),
        TopicSpec('detections', DETECTIONS, 'out', 'output_qos',
                  'Objects with depth and 3D position; header of the source image.'),
    ),
    'scene_graph': (
        TopicSpec('detections', DETECTIONS, 'in', 'input_qos', 'Output of perception.'),
        TopicSpec('scene_graph', SCENE_GRAPH, 'out', 'output_qos',
                  'Objects, attributes, relations, knowledge; header of the source image.'),
        TopicSpec('scene_graph/json', STRING, 'out', 'output_qos',
                  'The same graph as JSON (core/inputs/serialization.py), for agents and web '
                  'bridges.',
                  when=('publish_json', (True,))),
    ),
    'caption': (
        TopicSpec('scene_graph', SCENE_GRAPH, 'in', 'input_qos', 'Output of scene_graph.'),
        TopicSpec('caption', CAPTION, 'out', 'output_qos',
                  'Caption with provenance (verified, generator, model, latency); header of the '
                  'source image.'),
        TopicSpec('caption/text', STRING, 'out', 'output_qos', 'The caption text alone.'),
        TopicSpec('memory/facts', MEMORY_FACTS, 'in', 'reliable',
                  "The memory node's statements, appended to the caption of the same frame.",
                  when=('memory_facts', (True,))),
    ),
    'visualization': (
        TopicSpec('scene_graph', SCENE_GRAPH, 'in', 'input_qos', 'Graph to draw.'),
        TopicSpec('image', IMAGE, 'in', 'image_qos',
                  'Camera image the graphs were computed from (matched by stamp).',
                  when=('image_format', ('raw',))),
        TopicSpec('image/compressed', COMPRESSED, 'in', 'image_qos',
                  'Camera image, JPEG or PNG.', when=('image_format', ('compressed',))),
        TopicSpec('depth', IMAGE, 'in', 'image_qos',
                  'Depth map for the inset (16UC1 mm or 32FC1), matched by stamp.',
                  when=('show_depth_inset', (True,))),
        TopicSpec('caption', CAPTION, 'in', 'reliable', 'Latest caption, drawn on the image.'),
        TopicSpec('markers', MARKERS, 'out', 'output_qos',
                  'Per object with a 3D position: a box (metric size) or sphere and a '
                  '"chair 2.3 m" label; lines for the main relations. Source image header.'),
        TopicSpec('annotated_image', IMAGE, 'out', 'output_qos',
                  'bgr8: boxes, labels, distances, depth inset, latest caption. Source image '
                  'header.'),
    ),
    'memory': (
        TopicSpec('scene_graph', SCENE_GRAPH, 'in', 'input_qos',
                  'Graphs to remember (objects with a metric 3D position are used).'),
        TopicSpec('camera_info', CAMERA_INFO, 'in', 'sensor_data',
                  'Intrinsics: which remembered objects are in view (evidence for "gone").'),
        TopicSpec('image', IMAGE, 'in', 'sensor_data',
                  'Camera image of the graphs (matched by stamp): ORB keyframes for place '
                  'retrieval.', when=('keyframes', (True,))),
        TopicSpec('/tf', TF, 'in', 'reliable (depth 100)',
                  'Transforms to `world_frame` (own buffer when tf2_ros is not importable; '
                  'tf2_ros creates its own listener otherwise).', unless=('world_frame', ('',))),
        TopicSpec('/tf_static', TF, 'in', 'transient local (depth 100)',
                  'Static transforms (camera mounting).', unless=('world_frame', ('',))),
        TopicSpec('memory/changes', MEMORY_CHANGE, 'out', 'output_qos',
                  'appeared / moved / gone, with the object, its uncertainty and the evidence.'),
        TopicSpec('memory/facts', MEMORY_FACTS, 'out', 'output_qos',
                  'Statements a caption may make from memory, per scene graph (its header).'),
    ),
}



@dataclass(frozen=True)
class ServiceSpec:
    """One service of one node (name as the node creates it; `~/x` is private to the node)."""

    name: str
    srv_type: str
    description: str
    example: str = ''


NODE_SERVICES: dict[str, tuple[ServiceSpec, ...]] = {
    'perception': (
        ServiceSpec('~/new_sequence', 'std_srvs/srv/Trigger',
                    'The frames that follow are a new sequence: tracks (new ids), carried depth '
                    'and the smoothed depth scale start afresh. The image source calls it before '
                    'each still photo of a folder (`new_sequence_service`); call it after '
                    'relocating a camera.', '"{}"'),
    ),
    'memory': (
        ServiceSpec('~/query_objects', 'spatial_caption_interfaces/srv/QueryObjects',
                    'Remembered objects of a class, near a point or another object within a '
                    'radius, seen since a time (every condition optional).',
                    '"{class_name: cup, use_point: true, point: {x: 1.0, y: 0.0, z: 0.8}, '
                    'radius: 1.5}"'),
        ServiceSpec('~/last_seen', 'spatial_caption_interfaces/srv/LastSeen',
                    'Where and when an object (by memory id, or the latest of a class) was last '
                    'seen, with its uncertainty.', '"{class_name: cup}"'),
        ServiceSpec('~/changes_since', 'spatial_caption_interfaces/srv/ChangesSince',
                    'What appeared, moved or went since a time, with the evidence.',
                    '"{since: {sec: 0}, kind: gone}"'),
    ),
}

# Every managed node also publishes these.
COMMON_TOPICS = (
    TopicSpec('/diagnostics', DIAGNOSTICS, 'out', 'reliable (depth 10)',
              'State, backend, depth source, input rate, per-stage times, counters.'),
)

# Topics every rclpy (lifecycle) node creates by itself; not part of this package's interface.
INFRASTRUCTURE_TOPICS = frozenset({'/rosout', '/parameter_events'})
INFRASTRUCTURE_SUFFIXES = ('/transition_event',)


def node_topics(node: str, params: dict | None = None) -> list[TopicSpec]:
    """The topics `node` creates with these parameter values (all of them when params is None)."""
    specs = NODE_TOPICS[node] + COMMON_TOPICS
    return [t for t in specs if params is None or t.exists_with(params)]
