"""Process a recording's frames with the same core stages as the nodes, in-process, no DDS.

Raw CDR bytes from the recording are deserialized into the real message classes
(rclpy.serialization), converted by ros/conversions.py, and run through PerceptionPipeline,
SceneGraphBuilder and Captioner exactly as the perception, scene-graph and caption nodes do; the
outputs are serialized back into the nodes' message types. One message-conversion layer for
nodes and recordings alike.

A recording is first planned (which colour messages are frames to process, the camera_info, tf
and depth it has), then processed in chunks of frames; every chunk starts a new sequence (fresh
tracker), so a chunk gives the same results wherever it runs (locally or as a Ray task).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
import copy
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
import time
from typing import Any

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from spatial_caption_ros.bag.reader import (
    CAMERA_INFO, CameraTopics, COMPRESSED, DEPTH_UNIT_KEY, find_topics, open_recording,
    RawMessage)
from spatial_caption_ros.core.captioning.captioner import CaptionConfig, Captioner
from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.inputs.serialization import caption_to_dict
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.runtime.outputs import annotated_jpeg
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import (
    Caption, CameraIntrinsics, SceneGraph)
from spatial_caption_ros.core.visualization.render import scene_markers
from spatial_caption_ros.nodes.perception_node import PerceptionNodeConfig
from spatial_caption_ros.nodes.visualization_node import VisualizationConfig
from spatial_caption_ros.params_file import section, stage_values
from spatial_caption_ros.ros import conversions

OUTPUT_NAMESPACE = '/spatial_caption'
DETECTIONS = (f'{OUTPUT_NAMESPACE}/detections', 'spatial_caption_interfaces/msg/DetectionArray')
SCENE_GRAPH = (f'{OUTPUT_NAMESPACE}/scene_graph', 'spatial_caption_interfaces/msg/SceneGraph')
CAPTION = (f'{OUTPUT_NAMESPACE}/caption', 'spatial_caption_interfaces/msg/Caption')
MARKERS = (f'{OUTPUT_NAMESPACE}/markers', 'visualization_msgs/msg/MarkerArray')
ANNOTATED = (f'{OUTPUT_NAMESPACE}/annotated_image/compressed', COMPRESSED)
# A colour frame waits this long (log time) for a depth frame recorded after it.
LOOKAHEAD_NS = 500_000_000
# Depth frames kept for matching (30 Hz x LOOKAHEAD is 15).
DEPTH_BUFFER = 64
# Offline, the LLM is given as long as it takes (the largest caption.timeout), so that a caption
# never depends on the load of the machine.
OFFLINE_CAPTION_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RunOptions:
    """How a recording is processed (the same on every worker)."""

    image_topic: str | None = None
    depth_topic: str | None = None
    camera_info_topic: str | None = None
    every: int = 1                     # every Nth colour frame
    rate: float = 0.0                  # at most this many frames per second (log time); 0: all
    chunk_frames: int = 0              # frames per chunk (0: the whole recording is one)
    # metres per 16UC1 step: given explicitly (--set perception.depth_image_scale), else 0: the
    # recording's metadata (custom_data depth_unit_m), else the parameter's value
    depth_unit_m: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)   # a parameter file's content


@dataclass
class Plan:
    """What will be processed in one recording, decided before any frame is."""

    path: str
    name: str
    storage: str
    topics: CameraTopics
    frame_times: list[int]             # log time of every colour message, in reading order
    selected: list[int]                # indices into frame_times of the frames to process
    chunks: list[list[int]]
    camera_infos: list[tuple[int, bytes]]       # (log time, CDR) of valid CameraInfo messages
    # camera_info and tf (topic, type, log time, CDR, definition), copied to the output
    passthrough: list[tuple[str, str, int, bytes, str]]
    depth_unit_m: float
    problems: list[str]
    warnings: list[str]
    skipped: list[dict[str, Any]]
    message_counts: dict[str, int]

    @property
    def sorted_times(self) -> bool:
        return all(a <= b for a, b in zip(self.frame_times, self.frame_times[1:], strict=False))


@dataclass
class FrameRecord:
    """Everything one frame produced (or why it produced nothing): picklable for Ray."""

    ordinal: int                       # index among the recording's colour messages
    log_time_ns: int
    name: str = ''
    stamp_ns: int = 0
    caption: Caption | None = None
    graph: SceneGraph | None = None
    jpeg: bytes | None = None
    messages: list[tuple[str, str, int, bytes]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    skipped: str = ''


def select_frames(frame_times: list[int], every: int, rate: float) -> list[int]:
    """Indices of the frames to process: every Nth, then at most `rate` per second of log time."""
    chosen = [i for i in range(len(frame_times)) if i % max(1, every) == 0]
    if rate <= 0:
        return chosen
    period, last, out = int(1e9 / rate), None, []
    for i in chosen:
        if last is None or frame_times[i] - last >= period:
            out.append(i)
            last = frame_times[i]
    return out


def plan_recording(path: str, options: RunOptions) -> Plan:
    """Open a recording, find its topics and decide the frames and chunks (RecordingError)."""
    rec = open_recording(path)
    topics = find_topics(rec, options.image_topic, options.depth_topic,
                         options.camera_info_topic)
    wanted = set(topics.tf) | ({topics.camera_info} if topics.camera_info else set())
    frame_times = rec.log_times(topics.image)
    infos, passthrough, skipped = [], [], []
    counts: Counter[str] = Counter({topics.image: len(frame_times)})
    msgdefs = {name: info.msgdef for name, info in rec.topics.items()}
    for msg in rec.messages(wanted):
        counts[msg.topic] += 1
        if msg.topic == topics.camera_info:
            problem = _check_camera_info(msg)
            if problem:
                skipped.append({'topic': msg.topic, 'log_time_ns': msg.log_time_ns,
                                'reason': problem})
                continue
            infos.append((msg.log_time_ns, bytes(msg.data)))
        passthrough.append((msg.topic, msg.msgtype, msg.log_time_ns, bytes(msg.data),
                            msgdefs.get(msg.topic, '')))
    infos.sort(key=lambda info: info[0])        # a salvaged file is read in file order
    warnings = list(topics.notes)
    if topics.camera_info and not infos:
        warnings.append(f'{topics.camera_info}: no valid CameraInfo message; processed without '
                        'intrinsics')
    param_unit = build_config(PerceptionNodeConfig, stage_values(
        options.params, 'perception', PerceptionNodeConfig)).depth_image_scale
    depth_unit = options.depth_unit_m or float(rec.custom.get(DEPTH_UNIT_KEY, 0) or 0) \
        or param_unit
    selected = select_frames(frame_times, options.every, options.rate)
    size = options.chunk_frames or max(1, len(selected))
    chunks = [selected[i:i + size] for i in range(0, len(selected), size)]
    return Plan(str(path), rec.name, rec.storage, topics, frame_times, selected, chunks, infos,
                passthrough, depth_unit, list(rec.problems), warnings, skipped, dict(counts))


def _check_camera_info(msg: RawMessage) -> str:
    try:
        conversions.camera_info_to_intrinsics(deserialize_message(msg.data, CameraInfo))
    except SpatialCaptionError as exc:
        return f'invalid camera_info: {exc}'
    except Exception as exc:   # noqa: BLE001 - corrupt bytes raise whatever the CDR reader does
        return f'corrupt {CAMERA_INFO} message: {type(exc).__name__}: {exc}'
    return ''


def effective_params(params: dict[str, Any],
                     explicit: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The run's parameters for offline processing of one recording.

    caption.timeout is a real-time bound: offline, a caption that depended on how busy the
    machine was would make two runs differ, so it becomes OFFLINE_CAPTION_TIMEOUT_S unless
    given explicitly (`explicit`: 'node.param' names). (The depth source needs nothing: auto,
    the default, measures every frame that has a depth image with the sensor source.)
    """
    out = copy.deepcopy(params)
    if 'caption.timeout' not in explicit:
        section(out, 'caption')['timeout'] = OFFLINE_CAPTION_TIMEOUT_S
    return out


class Stages:
    """The core stages of the node graph, loaded once per process and reused for every chunk."""

    def __init__(self, params: dict[str, Any]) -> None:
        """params: a parameter file's content ({node: {ros__parameters: {...}}})."""
        self.params = params
        self.perception_config = build_config(
            PerceptionConfig, stage_values(params, 'perception', PerceptionConfig))
        self.builder = SceneGraphBuilder(build_config(
            SceneGraphConfig, stage_values(params, 'scene_graph', SceneGraphConfig)))
        self.captioner = Captioner(build_config(
            CaptionConfig, stage_values(params, 'caption', CaptionConfig)))
        self.visualization = build_config(
            VisualizationConfig, stage_values(params, 'visualization', VisualizationConfig))
        # the perception node's own parameters (depth matching) apply to recordings alike
        self.matching = build_config(
            PerceptionNodeConfig, stage_values(params, 'perception', PerceptionNodeConfig))
        self.perception = PerceptionPipeline(self.perception_config)

    def new_sequence(self) -> None:
        """Fresh per-sequence state: chunks never share any.

        A new perception pipeline (tracker, depth scale) and an LLM without a cached prompt.
        """
        self.captioner.new_sequence()
        if self.perception.frames:
            self.perception.close()
            self.perception = PerceptionPipeline(self.perception_config)

    def describe(self) -> dict[str, str]:
        return {**self.perception.describe(), **self.captioner.describe()}

    def close(self) -> None:
        self.perception.close()
        self.captioner.close()


def process_chunk(plan: Plan, chunk: list[int], stages: Stages,
                  skip: set[int] | None = None) -> Iterator[FrameRecord]:
    """The records of one chunk's frames (those in `skip` are finished already), in order."""
    todo = [i for i in chunk if not skip or i not in skip]
    if not todo:
        return
    stages.new_sequence()
    rec = open_recording(plan.path)
    wanted = {plan.topics.image} | ({plan.topics.depth} if plan.topics.depth else set())
    start = stop = None
    ordinal = 0
    if plan.sorted_times:     # read only the chunk's span (plus the depth lookahead)
        start = max(0, plan.frame_times[todo[0]] - LOOKAHEAD_NS)
        stop = plan.frame_times[todo[-1]] + LOOKAHEAD_NS + 1
        ordinal = bisect_left(plan.frame_times, start)
    todo_set = set(todo)
    pending: deque[tuple[int, RawMessage]] = deque()
    depth: OrderedDict[int, Image] = OrderedDict()
    use_depth = stages.perception.config.uses_sensor_depth and plan.topics.depth is not None
    last = todo[-1]
    for msg in rec.messages(wanted, start, stop):
        while pending and msg.log_time_ns > pending[0][1].log_time_ns + LOOKAHEAD_NS:
            yield _frame(plan, stages, *pending.popleft(), depth if use_depth else None)
        if msg.topic == plan.topics.image:
            if ordinal in todo_set:
                pending.append((ordinal, msg))
            ordinal += 1
        elif use_depth:
            _buffer_depth(msg, depth, plan)
        if ordinal > last and not pending:
            break
    while pending:
        yield _frame(plan, stages, *pending.popleft(), depth if use_depth else None)
    if ordinal <= last:
        for i in todo:
            if i >= ordinal:
                yield FrameRecord(i, plan.frame_times[i], skipped='the recording could not be '
                                  'read this far (see its problems)')
    plan.problems.extend(p for p in rec.problems if p not in plan.problems)


def _buffer_depth(msg: RawMessage, depth: OrderedDict[int, Image], plan: Plan) -> None:
    try:
        image = deserialize_message(msg.data, Image)
        conversions.check_image_msg(image, depth=True)
    except Exception as exc:   # noqa: BLE001 - a corrupt depth frame: note it, keep reading
        plan.skipped.append({'topic': msg.topic, 'log_time_ns': msg.log_time_ns,
                             'reason': f'depth frame not usable: {type(exc).__name__}: {exc}'})
        return
    depth[conversions.stamp_to_ns(image.header.stamp)] = image
    while len(depth) > DEPTH_BUFFER:
        depth.popitem(last=False)


def _intrinsics(plan: Plan, log_time_ns: int) -> CameraIntrinsics | None:
    """The latest valid camera_info recorded up to the frame (else the first one recorded)."""
    if not plan.camera_infos:
        return None
    i = bisect_right(plan.camera_infos, (log_time_ns + LOOKAHEAD_NS, b'\xff'))
    data = plan.camera_infos[max(0, i - 1)][1]
    return conversions.camera_info_to_intrinsics(deserialize_message(data, CameraInfo))


def _frame(plan: Plan, stages: Stages, ordinal: int, raw: RawMessage,
           depth: OrderedDict[int, Image] | None) -> FrameRecord:
    """One frame through perception, scene graph, caption and drawing; never raises."""
    record = FrameRecord(ordinal, raw.log_time_ns)
    try:
        _process(plan, stages, raw, depth, record)
    except Exception as exc:   # noqa: BLE001 - a bad frame is reported, the rest goes on
        record.skipped = f'{type(exc).__name__}: {exc}'
    return record


def _process(plan: Plan, stages: Stages, raw: RawMessage, depth: OrderedDict[int, Image] | None,
             record: FrameRecord) -> None:
    t0 = time.perf_counter()
    compressed = raw.msgtype == COMPRESSED
    msg = deserialize_message(raw.data, CompressedImage if compressed else Image)
    header = conversions.header_to_core(msg.header)
    record.stamp_ns = header.stamp_ns
    record.name = f'{header.stamp_ns // 1_000_000_000}.{header.stamp_ns % 1_000_000_000:09d}'
    if compressed:
        conversions.check_compressed_msg(msg)
        image = conversions.compressed_msg_to_color(msg)
    else:
        conversions.check_image_msg(msg)
        image = conversions.image_msg_to_color(msg)
    intrinsics = _intrinsics(plan, raw.log_time_ns)
    sensor_depth, depth_note = None, ''
    if depth is not None:
        tolerance = int(stages.matching.depth_stamp_tolerance * 1e9)
        nearest = min(depth, key=lambda s: abs(s - header.stamp_ns), default=None)
        if nearest is not None and abs(nearest - header.stamp_ns) <= tolerance:
            sensor_depth = conversions.depth_msg_to_metres(depth[nearest], plan.depth_unit_m)
        else:
            depth_note = ('no depth frame within '
                          f'{stages.matching.depth_stamp_tolerance * 1e3:.0f} ms of the '
                          'colour frame: no sensor depth for it')
    decode_ms = (time.perf_counter() - t0) * 1e3
    result = stages.perception.process(image, header, intrinsics, sensor_depth)
    if depth_note:
        result.notes.append(depth_note)
    result.stage_times_ms['decode'] = decode_ms
    t1 = time.perf_counter()
    graph = stages.builder.build(result)
    build_ms = (time.perf_counter() - t1) * 1e3
    caption = stages.captioner.caption(graph)
    t2 = time.perf_counter()
    vis = stages.visualization
    jpeg = annotated_jpeg(image, graph, caption.text if vis.show_caption else '')
    specs = scene_markers(graph, vis.max_relation_lines, vis.text_size)
    annotated = CompressedImage(header=msg.header, format='jpeg', data=jpeg or b'')
    stamp = header.stamp_ns
    record.messages = [
        (*DETECTIONS, stamp, serialize_message(conversions.detections_to_msg(result))),
        (*SCENE_GRAPH, stamp, serialize_message(conversions.scene_graph_to_msg(graph))),
        (*CAPTION, stamp, serialize_message(conversions.caption_to_msg(caption))),
        (*MARKERS, stamp, serialize_message(conversions.markers_to_msg(
            specs, graph.header, vis.marker_lifetime)))]
    if jpeg is not None:
        record.messages.append((*ANNOTATED, stamp, serialize_message(annotated)))
    output_ms = (time.perf_counter() - t2) * 1e3
    record.caption, record.graph, record.jpeg = caption, graph, jpeg
    record.meta = {
        'ordinal': record.ordinal, 'name': record.name, 'stamp_ns': stamp,
        'log_time_ns': record.log_time_ns, 'depth_source': graph.depth_source,
        'depth_metric': graph.depth_metric, 'sensor_depth': sensor_depth is not None,
        'objects': dict(Counter(o.class_name for o in graph.objects)),
        'times_ms': {'decode': round(decode_ms, 3),
                     'perception': round(result.processing_latency * 1e3, 3),
                     'scene_graph': round(build_ms, 3),
                     'caption': round(caption.latency * 1e3, 3),
                     'output': round(output_ms, 3),
                     'total': round((time.perf_counter() - t0) * 1e3, 3)},
        'notes': list(graph.notes), 'caption': caption_to_dict(caption)}
