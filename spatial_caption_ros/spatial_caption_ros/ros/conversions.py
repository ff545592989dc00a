"""The one place where ROS messages and core types are converted into each other.

Nodes call these functions and nothing else touches message fields. Image buffers are viewed,
not copied, wherever the layout allows (see core/inputs/image.py).
"""

from __future__ import annotations

import array
from dataclasses import replace
import json
import math

from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import Point, Vector3
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from spatial_caption_interfaces.msg import (
    Caption as CaptionMsg, DetectionArray, SceneGraph as SceneGraphMsg,
    SceneObject as SceneObjectMsg, SpatialRelation)
from spatial_caption_interfaces.msg import (
    MemoryChange as MemoryChangeMsg, MemoryFacts as MemoryFactsMsg,
    MemoryObject as MemoryObjectMsg)
from std_msgs.msg import ColorRGBA, Header, String
from visualization_msgs.msg import Marker, MarkerArray

from spatial_caption_ros.core.inputs.image import (
    check_compressed, check_raw_image, ColorImage, compressed_to_color, raw_to_color,
    raw_to_depth_metres)
from spatial_caption_ros.core.inputs.serialization import graph_to_dict
from spatial_caption_ros.core.memory.facts import MemoryFact
from spatial_caption_ros.core.memory.store import Change, ObjectSnapshot
from spatial_caption_ros.core.memory.transforms import StampedTransform, Transform
from spatial_caption_ros.core.runtime.text import sanitize_label, sanitize_text
from spatial_caption_ros.core.scene_graph.validation import check_scene_graph
from spatial_caption_ros.core.types import (
    BoundingBox, Caption, CameraIntrinsics, DetectionResult, FrameHeader, NAN, REGIONS,
    Relation, SceneGraph, SceneObject)
from spatial_caption_ros.core.visualization.render import MarkerSpec

# ---------------------------------------------------------------- headers


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def header_to_core(header: Header) -> FrameHeader:
    return FrameHeader(stamp_ns=stamp_to_ns(header.stamp), frame_id=header.frame_id)


def core_to_header(header: FrameHeader) -> Header:
    return Header(stamp=ns_to_stamp(header.stamp_ns), frame_id=header.frame_id)

# ---------------------------------------------------------------- images


def image_msg_to_color(msg: Image) -> ColorImage:
    """sensor_msgs/Image -> colour image (a view of msg.data when the encoding allows)."""
    return raw_to_color(msg.width, msg.height, msg.encoding, msg.step, msg.data,
                        bool(msg.is_bigendian))


def check_image_msg(msg: Image, depth: bool = False) -> None:
    """Refuse a malformed sensor_msgs/Image from its header alone (no pixel is read)."""
    check_raw_image(msg.width, msg.height, msg.encoding, msg.step, len(msg.data), depth)


def check_compressed_msg(msg: CompressedImage) -> None:
    """Refuse an empty or unrecognisable sensor_msgs/CompressedImage from its first bytes."""
    check_compressed(msg.format, msg.data)


def compressed_msg_to_color(msg: CompressedImage) -> ColorImage:
    return compressed_to_color(msg.format, msg.data)


def depth_msg_to_metres(msg: Image, scale: float = 0.001) -> np.ndarray:
    """Aligned depth image -> float32 metres, NaN = none.

    16UC1 values times `scale` metres per unit (REP 118 millimetres by default); 32FC1 metres.
    """
    return raw_to_depth_metres(msg.width, msg.height, msg.encoding, msg.step, msg.data,
                               bool(msg.is_bigendian), scale)


def array_to_image_msg(pixels: np.ndarray, header: FrameHeader | Header,
                       encoding: str) -> Image:
    """An HxW or HxWxC array -> sensor_msgs/Image (one copy into the message buffer)."""
    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    msg.header = header if isinstance(header, Header) else core_to_header(header)
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    buf = array.array('B')
    buf.frombytes(pixels.reshape(-1).view(np.uint8))
    msg.data = buf
    return msg


def color_to_image_msg(image: ColorImage, header: FrameHeader | Header) -> Image:
    return array_to_image_msg(image.pixels, header, 'rgb8' if image.order == 'rgb' else 'bgr8')

# ---------------------------------------------------------------- camera info


# CameraInfo has no field saying "not calibrated": an image source that publishes an ASSUMED
# field of view (no calibration, no EXIF) names this distortion model (no distortion, D empty).
ASSUMED_CAMERA_MODEL = 'assumed_pinhole'


def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """Intrinsics from CameraInfo: K, or P when K is all zero (raises InvalidCameraInfoError)."""
    k = np.asarray(msg.k, dtype=np.float64)
    if not np.any(k):
        p = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
        k = p[:, :3].reshape(-1)
    intrinsics = CameraIntrinsics.from_k(k, msg.width, msg.height)
    if msg.distortion_model == ASSUMED_CAMERA_MODEL:
        return replace(intrinsics, assumed=True)
    return intrinsics


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, header: FrameHeader | Header
                              ) -> CameraInfo:
    msg = CameraInfo()
    msg.header = header if isinstance(header, Header) else core_to_header(header)
    msg.width, msg.height = intrinsics.width, intrinsics.height
    msg.distortion_model = ASSUMED_CAMERA_MODEL if intrinsics.assumed else 'plumb_bob'
    msg.d = [] if intrinsics.assumed else [0.0] * 5
    msg.k = intrinsics.k()
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, 0.0, intrinsics.fy, intrinsics.cy, 0.0,
             0.0, 0.0, 1.0, 0.0]
    return msg

# ---------------------------------------------------------------- scene objects and relations


def _kv(pairs) -> list[KeyValue]:
    return [KeyValue(key=str(k), value=str(v)) for k, v in pairs]


def object_to_msg(obj: SceneObject) -> SceneObjectMsg:
    m = SceneObjectMsg()
    m.id = int(obj.id)
    m.class_name = obj.class_name
    m.class_id = int(obj.class_id)
    m.confidence = float(obj.confidence)
    m.class_count = int(obj.class_count)
    m.x_min, m.y_min, m.x_max, m.y_max = (float(v) for v in obj.box.as_tuple())
    m.region = obj.region
    m.relative_size = float(obj.relative_size)
    m.depth = float(obj.depth)
    m.depth_uncertainty = float(obj.depth_uncertainty)
    m.depth_source = obj.depth_source
    m.depth_metric = bool(obj.depth_metric)
    m.has_position = obj.position is not None
    if obj.position is not None:
        m.position = Point(x=float(obj.position[0]), y=float(obj.position[1]),
                           z=float(obj.position[2]))
    else:
        m.position = Point(x=NAN, y=NAN, z=NAN)
    m.distance = float(obj.distance)
    m.metric_width = float(obj.metric_width)
    m.metric_height = float(obj.metric_height)
    m.salience = float(obj.salience)
    m.attributes = _kv(obj.attributes.items())
    m.knowledge = _kv(obj.knowledge)
    return m


# Bounds on free text read from messages (another process may send anything).
MAX_PAIRS = 64            # attributes / knowledge entries kept per object
MAX_KEY = 32
MAX_VALUE = 256
MAX_NOTES = 32


def _pairs(items) -> list[tuple[str, str]]:
    return [(sanitize_text(kv.key, MAX_KEY), sanitize_text(kv.value, MAX_VALUE))
            for kv in list(items)[:MAX_PAIRS]]


def _notes(notes) -> list[str]:
    return [sanitize_text(n, MAX_VALUE) for n in list(notes)[:MAX_NOTES]]


def msg_to_object(m: SceneObjectMsg) -> SceneObject:
    """Message -> core object; every string is sanitised and bounded here, once, for all."""
    position = None
    if m.has_position and all(math.isfinite(v) for v in (m.position.x, m.position.y,
                                                         m.position.z)):
        position = (m.position.x, m.position.y, m.position.z)
    return SceneObject(
        id=m.id, class_name=sanitize_label(m.class_name), class_id=m.class_id,
        confidence=m.confidence, box=BoundingBox(m.x_min, m.y_min, m.x_max, m.y_max),
        class_count=m.class_count, region=m.region if m.region in REGIONS else '',
        relative_size=m.relative_size, depth=m.depth, depth_uncertainty=m.depth_uncertainty,
        depth_source=sanitize_label(m.depth_source, MAX_KEY), depth_metric=m.depth_metric,
        position=position, distance=m.distance, metric_width=m.metric_width,
        metric_height=m.metric_height, salience=m.salience,
        attributes=dict(_pairs(m.attributes)), knowledge=_pairs(m.knowledge))


def relation_to_msg(rel: Relation) -> SpatialRelation:
    return SpatialRelation(subject_id=int(rel.subject_id), predicate=rel.predicate,
                           object_id=int(rel.object_id), distance=float(rel.distance),
                           confidence=float(rel.confidence), salience=float(rel.salience))


def msg_to_relation(m: SpatialRelation) -> Relation:
    return Relation(subject_id=m.subject_id, predicate=m.predicate[:MAX_KEY],
                    object_id=m.object_id,
                    distance=m.distance, confidence=m.confidence, salience=m.salience)

# ---------------------------------------------------------------- detections, graphs, captions


def detections_to_msg(result: DetectionResult) -> DetectionArray:
    m = DetectionArray()
    m.header = core_to_header(result.header)
    m.image_width, m.image_height = result.image_width, result.image_height
    m.depth_source = result.depth_source
    m.depth_metric = bool(result.depth_metric)
    m.has_camera_info = bool(result.has_camera_info)
    m.objects = [object_to_msg(o) for o in result.objects]
    m.stage_times = _kv((k, f'{v:.3f}') for k, v in result.stage_times_ms.items())
    m.notes = list(result.notes)
    m.processing_latency = float(result.processing_latency)
    m.intrinsics_assumed = bool(result.intrinsics_assumed)
    return m


def msg_to_detections(m: DetectionArray) -> DetectionResult:
    times = {}
    for kv in m.stage_times:
        try:
            times[kv.key] = float(kv.value)
        except ValueError:
            continue
    return DetectionResult(
        header=header_to_core(m.header), image_width=m.image_width,
        image_height=m.image_height, objects=[msg_to_object(o) for o in m.objects],
        depth_source=sanitize_label(m.depth_source, MAX_KEY), depth_metric=m.depth_metric,
        has_camera_info=m.has_camera_info, stage_times_ms=times, notes=_notes(m.notes),
        processing_latency=m.processing_latency, intrinsics_assumed=m.intrinsics_assumed)


def scene_graph_to_msg(graph: SceneGraph) -> SceneGraphMsg:
    m = SceneGraphMsg()
    m.header = core_to_header(graph.header)
    m.image_width, m.image_height = graph.image_width, graph.image_height
    m.depth_source = graph.depth_source
    m.depth_metric = bool(graph.depth_metric)
    m.has_camera_info = bool(graph.has_camera_info)
    m.objects = [object_to_msg(o) for o in graph.objects]
    m.relations = [relation_to_msg(r) for r in graph.relations]
    m.notes = list(graph.notes)
    m.processing_latency = float(graph.processing_latency)
    m.intrinsics_assumed = bool(graph.intrinsics_assumed)
    return m


def msg_to_scene_graph(m: SceneGraphMsg) -> SceneGraph:
    return SceneGraph(
        header=header_to_core(m.header), image_width=m.image_width,
        image_height=m.image_height, objects=[msg_to_object(o) for o in m.objects],
        relations=[msg_to_relation(r) for r in m.relations],
        depth_source=sanitize_label(m.depth_source, MAX_KEY),
        depth_metric=m.depth_metric, has_camera_info=m.has_camera_info, notes=_notes(m.notes),
        processing_latency=m.processing_latency, intrinsics_assumed=m.intrinsics_assumed)


def check_scene_graph_msg(m: SceneGraphMsg) -> None:
    """Refuse a scene graph a caption or visualisation stage cannot use (InvalidInputError)."""
    check_scene_graph(msg_to_scene_graph(m))


def caption_to_msg(caption: Caption) -> CaptionMsg:
    return CaptionMsg(header=core_to_header(caption.header), text=caption.text,
                      style=caption.style, verified=bool(caption.verified),
                      generator=caption.generator, model=caption.model,
                      fallback_reason=caption.fallback_reason, latency=float(caption.latency),
                      intrinsics_assumed=bool(caption.intrinsics_assumed))


def msg_to_caption(m: CaptionMsg) -> Caption:
    return Caption(header=header_to_core(m.header), text=m.text, style=m.style,
                   verified=m.verified, generator=m.generator, model=m.model,
                   fallback_reason=m.fallback_reason, latency=m.latency,
                   intrinsics_assumed=m.intrinsics_assumed)


def graph_to_json_msg(graph: SceneGraph) -> String:
    """The scene graph as compact JSON (core/inputs/serialization.py) in a std_msgs/String."""
    return String(data=json.dumps(graph_to_dict(graph), separators=(',', ':')))

# ---------------------------------------------------------------- markers


_MARKER_TYPES = {'cube': Marker.CUBE, 'sphere': Marker.SPHERE, 'text': Marker.TEXT_VIEW_FACING,
                 'lines': Marker.LINE_LIST}


def _duration(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def markers_to_msg(specs: list[MarkerSpec], header: FrameHeader,
                   lifetime_s: float = 0.0) -> MarkerArray:
    """A MarkerArray that first deletes the previous markers, then adds `specs`.

    Every marker carries the source image's header, so rviz places it in that camera frame at
    that time.
    """
    ros_header = core_to_header(header)
    clear = Marker(header=ros_header, action=Marker.DELETEALL)
    markers = [clear]
    for spec in specs:
        m = Marker(header=ros_header, ns=spec.ns, id=int(spec.id), type=_MARKER_TYPES[spec.kind],
                   action=Marker.ADD, lifetime=_duration(lifetime_s), frame_locked=False)
        m.pose.position = Point(x=float(spec.position[0]), y=float(spec.position[1]),
                                z=float(spec.position[2]))
        m.pose.orientation.w = 1.0
        m.scale = Vector3(x=float(spec.scale[0]), y=float(spec.scale[1]),
                          z=float(spec.scale[2]))
        m.color = ColorRGBA(r=float(spec.color[0]), g=float(spec.color[1]),
                            b=float(spec.color[2]), a=float(spec.color[3]))
        m.text = spec.text
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in spec.points]
        markers.append(m)
    return MarkerArray(markers=markers)

# ---------------------------------------------------------------- scene memory


def tf_message_to_transforms(msg) -> list[StampedTransform]:
    """tf2_msgs/TFMessage (from /tf or /tf_static) -> core transforms (fields read, no copy)."""
    out = []
    for t in msg.transforms:
        tr, q = t.transform.translation, t.transform.rotation
        out.append(StampedTransform(
            sanitize_text(t.header.frame_id.lstrip('/'), MAX_VALUE),
            sanitize_text(t.child_frame_id.lstrip('/'), MAX_VALUE),
            stamp_to_ns(t.header.stamp), (tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w)))
    return out


def transform_msg_to_core(t) -> Transform:
    """geometry_msgs/Transform (e.g. from tf2_ros lookup_transform) -> core Transform."""
    tr, q = t.translation, t.rotation
    return Transform.from_quaternion((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def memory_object_to_msg(obj: ObjectSnapshot, frame_id: str) -> MemoryObjectMsg:
    return MemoryObjectMsg(
        id=int(obj.id), class_name=obj.class_name, class_confidence=float(obj.class_confidence),
        frame_id=frame_id, position=_point(obj.position),
        covariance=[float(v) for v in obj.covariance], uncertainty=float(obj.uncertainty),
        first_seen=ns_to_stamp(obj.first_seen_ns), last_seen=ns_to_stamp(obj.last_seen_ns),
        times_seen=int(obj.times_seen), state=obj.state,
        frames=[ns_to_stamp(s) for s in obj.frames])


def memory_change_to_msg(change: Change, frame_id: str) -> MemoryChangeMsg:
    m = MemoryChangeMsg(header=Header(stamp=ns_to_stamp(change.stamp_ns), frame_id=frame_id),
                        kind=change.kind, object=memory_object_to_msg(change.object, frame_id),
                        distance=float(change.distance), evidence=change.evidence)
    m.has_previous_position = change.previous_position is not None
    m.previous_position = _point(change.previous_position) if m.has_previous_position else \
        Point(x=NAN, y=NAN, z=NAN)
    return m


def memory_facts_to_msg(facts: list[MemoryFact], header: FrameHeader) -> MemoryFactsMsg:
    return MemoryFactsMsg(header=core_to_header(header), kinds=[f.kind for f in facts],
                          statements=[f.text for f in facts],
                          object_ids=[int(f.object_id) for f in facts])


def msg_to_memory_statements(m: MemoryFactsMsg) -> tuple[int, list[str]]:
    """MemoryFacts -> (stamp ns, sanitised statements) for a caption."""
    return stamp_to_ns(m.header.stamp), [sanitize_text(s, MAX_VALUE)
                                         for s in list(m.statements)[:MAX_NOTES]]
