"""Memory node: scene graphs -> objects remembered in a world frame, changes, queries, places.

Subscribes:  scene_graph (spatial_caption_interfaces/SceneGraph), camera_info (projection for
             the "gone" evidence), image (keyframes, matched by stamp; with `keyframes`),
             /tf and /tf_static (tf2_msgs/TFMessage; through tf2_ros when it is importable)
Publishes:   memory/changes (MemoryChange: appeared, moved, gone, with evidence),
             memory/facts (MemoryFacts: statements a caption may make)
Services:    ~/query_objects (QueryObjects), ~/last_seen (LastSeen),
             ~/changes_since (ChangesSince)

All logic is in core/memory/ (scene_memory.py and what it uses). The camera pose comes from tf:
`world_frame <- scene graph frame_id` at the graph's stamp. A missing or stale transform skips
the graph with a counted, logged reason (diagnostics `tf_status`); with `world_frame` empty the
memory works in the camera frame and says so with a WARN diagnostic.
"""

from __future__ import annotations

from collections import deque
import math
import threading

from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import CameraInfo, Image
from spatial_caption_interfaces.msg import MemoryChange, MemoryFacts, SceneGraph
from spatial_caption_interfaces.srv import ChangesSince, LastSeen, QueryObjects

from spatial_caption_ros.core.errors import InvalidInputError
from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.scene_memory import SceneMemory
from spatial_caption_ros.core.memory.store import CHANGE_KINDS, GONE, TENTATIVE
from spatial_caption_ros.core.memory.transforms import (
    Transform, TransformBuffer, TransformError, TransformMissingError, TransformStaleError)
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.managed_node import ManagedNode
from spatial_caption_ros.ros.qos import qos_profile, TF_QOS, TF_STATIC_QOS
from spatial_caption_ros.ros.spin import run_node

try:   # a ROS install has tf2_ros; the PyPI wheels do not
    import tf2_ros
except ImportError:
    tf2_ros = None
try:   # built into the venv by scripts/build_tf2_msgs.sh
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

# Images kept for matching a scene graph's stamp (the graph arrives after its image).
IMAGE_BUFFER = 8


class MemoryNode(ManagedNode):
    """Runs the core SceneMemory on the newest scene graph and answers queries from it."""

    CONFIG = MemoryConfig
    IO_DEFAULTS = {'input_qos': 'reliable_latest'}

    def __init__(self, **kwargs) -> None:
        self.memory: SceneMemory | None = None
        self.tf_buffer = None
        self._tf_listener = None
        self._services: list = []
        self._images: deque = deque(maxlen=IMAGE_BUFFER)
        self._images_lock = threading.Lock()
        self._intrinsics_msg: CameraInfo | None = None
        self.tf_status = 'no graph yet'
        self.tf_mode = ''
        self.published_changes = 0
        self.objects_without_position = 0
        super().__init__('memory', **kwargs)

    # ------------------------------------------------------------ lifecycle

    def configure_stage(self, config: MemoryConfig) -> None:
        self.memory = SceneMemory(config)
        if self.memory.db.recovered_from:
            self.get_logger().error(f'memory database: {self.memory.db.recovered_from}')
        self.change_pub = self.publisher(MemoryChange, 'memory/changes')
        self.facts_pub = self.publisher(MemoryFacts, 'memory/facts')
        self._services = [
            self.create_service(QueryObjects, '~/query_objects', self._query_objects),
            self.create_service(LastSeen, '~/last_seen', self._last_seen),
            self.create_service(ChangesSince, '~/changes_since', self._changes_since)]
        if not config.world_frame:
            self.tf_mode = 'none: world_frame is empty, positions in the camera frame'
        elif tf2_ros is not None:
            self.tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self.tf_buffer, self)
            self.tf_mode = 'tf2_ros'
        elif TFMessage is not None:
            self.tf_buffer = TransformBuffer(tolerance_s=config.transform_tolerance)
            self.tf_mode = 'own buffer (tf2_ros not importable)'
        else:
            self.tf_mode = 'unavailable: neither tf2_ros nor tf2_msgs importable'
            self.get_logger().error(f'{self.tf_mode}; every graph is refused until world_frame '
                                    'is empty or tf2_msgs is built (scripts/build_tf2_msgs.sh)')

    def create_inputs(self) -> None:
        self.subscribe_latest(SceneGraph, 'scene_graph',
                              precheck=conversions.check_scene_graph_msg)
        self.subscribe(CameraInfo, 'camera_info', self._on_camera_info,
                       qos_profile('sensor_data'))
        if self.config.keyframes:
            self.subscribe(Image, 'image', self._on_image, qos_profile('sensor_data'))
        if isinstance(self.tf_buffer, TransformBuffer):
            self.subscribe(TFMessage, '/tf', lambda m: self._on_tf(m, False), TF_QOS)
            self.subscribe(TFMessage, '/tf_static', lambda m: self._on_tf(m, True),
                           TF_STATIC_QOS)

    def apply_live(self, config: MemoryConfig) -> None:
        if self.memory is not None:
            self.memory.set_config(config)
        if isinstance(self.tf_buffer, TransformBuffer):
            self.tf_buffer.tolerance_ns = int(config.transform_tolerance * 1e9)

    def release_stage(self) -> None:
        for srv in self._services:
            self.destroy_service(srv)
        self._services = []
        self._tf_listener = None
        self.tf_buffer = None
        if self.memory is not None:
            self.memory.close()
            self.memory = None

    def destroy_node(self) -> None:
        super().destroy_node()
        if self.memory is not None:
            self.memory.close()
            self.memory = None

    # ------------------------------------------------------------ inputs

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._intrinsics_msg = msg

    def _on_image(self, msg: Image) -> None:
        with self._images_lock:
            self._images.append(msg)

    def _on_tf(self, msg, static: bool) -> None:
        for tf in conversions.tf_message_to_transforms(msg):
            try:
                self.tf_buffer.set_transform(tf, static)
            except TransformError as exc:
                self.reject('invalid_transform', str(exc))

    def _image_for(self, stamp_ns: int):
        """The buffered image of this stamp as a grayscale or BGR array, or None."""
        with self._images_lock:
            match = next((m for m in self._images
                          if conversions.stamp_to_ns(m.header.stamp) == stamp_ns), None)
        if match is None:
            return None
        try:
            return conversions.image_msg_to_color(match).bgr()
        except InvalidInputError as exc:
            self.reject('invalid_image', str(exc))
            return None

    def _camera_pose(self, frame: str, stamp_ns: int) -> Transform:
        """The graph's camera frame in the world frame at the stamp (raises TransformError)."""
        world = self.config.world_frame
        if not world:
            return Transform.identity()
        if not frame:
            raise TransformMissingError('the scene graph has no frame_id')
        if isinstance(self.tf_buffer, TransformBuffer):
            return self.tf_buffer.lookup(world, frame, stamp_ns)
        if self.tf_buffer is None:
            raise TransformMissingError(self.tf_mode)
        from rclpy.time import Time
        try:
            t = self.tf_buffer.lookup_transform(world, frame, Time(nanoseconds=stamp_ns))
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException,
                tf2_ros.ExtrapolationException) as exc:
            raise TransformMissingError(f'tf2: {exc}') from exc
        return conversions.transform_msg_to_core(t.transform)

    def process(self, msg: SceneGraph) -> None:
        graph = conversions.msg_to_scene_graph(msg)
        frame = graph.header.frame_id.lstrip('/')
        stamp = graph.header.stamp_ns
        try:
            pose = self._camera_pose(frame, stamp)
        except TransformError as exc:
            self.tf_status = str(exc)
            kind = 'transform_stale' if isinstance(exc, TransformStaleError) else \
                'transform_missing'
            self.reject(kind, f'scene graph at {stamp / 1e9:.3f} s not remembered: {exc}')
            return
        self.tf_status = 'ok' if self.config.world_frame else 'camera frame (world_frame empty)'
        intrinsics = None
        if self._intrinsics_msg is not None:
            try:
                intrinsics = conversions.camera_info_to_intrinsics(self._intrinsics_msg)
                if (intrinsics.width, intrinsics.height) != (graph.image_width,
                                                             graph.image_height):
                    intrinsics = intrinsics.scaled_to(graph.image_width, graph.image_height)
            except InvalidInputError as exc:
                self.reject('invalid_camera_info', str(exc))
        image = self._image_for(stamp) if self.config.keyframes else None
        update = self.memory.update(graph, pose, intrinsics, image)
        if update.result.skipped:
            self.objects_without_position += update.result.skipped
            self._throttled_log(
                'warning', 'no_position', f'{update.result.skipped} of {len(graph.objects)} '
                'objects have no metric 3D position (no camera_info, or relative depth): the '
                'memory cannot place them and skips them')
        world = self.config.world_frame or frame
        for change in update.result.changes:
            self.change_pub.publish(conversions.memory_change_to_msg(change, world))
            self.published_changes += 1
        self.facts_pub.publish(conversions.memory_facts_to_msg(update.facts, graph.header))
        self.record_timings(update.timings_ms)

    # ------------------------------------------------------------ services

    def _frame(self) -> str:
        return (self.config.world_frame if self.config is not None else '') or 'camera'

    def _query_objects(self, request, response):
        memory = self.memory
        if memory is None:
            response.success, response.message = False, 'memory not configured'
            return response
        point = None
        if request.use_point:
            p = request.point
            point = (p.x, p.y, p.z)
            if not all(math.isfinite(v) for v in point):
                response.success, response.message = False, 'point has NaN or inf'
                return response
        try:
            with memory.lock:
                found = memory.objects.query(
                    request.class_name.strip(), point, max(0.0, request.radius),
                    int(request.near_object_id), conversions.stamp_to_ns(request.since),
                    bool(request.include_gone), int(request.max_results))
                if request.near_object_id:
                    point = tuple(memory.objects.objects[request.near_object_id].position)
        except KeyError as exc:
            response.success, response.message = False, str(exc.args[0])
            return response
        frame = self._frame()
        response.success = True
        response.message = f'{len(found)} objects'
        response.frame_id = frame
        response.objects = [conversions.memory_object_to_msg(o, frame) for o in found]
        response.distances = [
            math.dist(o.position, point) if point is not None else math.nan for o in found]
        return response

    def _last_seen(self, request, response):
        memory = self.memory
        if memory is None:
            response.found, response.message = False, 'memory not configured'
            return response
        with memory.lock:
            obj = memory.objects.last_seen(int(request.object_id), request.class_name.strip())
        if obj is None:
            what = f'id {request.object_id}' if request.object_id else \
                f'class {request.class_name!r}'
            response.found, response.message = False, f'nothing remembered for {what}'
            return response
        response.found = True
        response.message = f'{obj.class_name} {obj.id} last seen at {obj.last_seen_ns / 1e9:.3f}'
        response.object = conversions.memory_object_to_msg(obj, self._frame())
        return response

    def _changes_since(self, request, response):
        memory = self.memory
        kind = request.kind.strip()
        if memory is None or (kind and kind not in CHANGE_KINDS):
            response.success = False
            response.message = 'memory not configured' if memory is None else \
                f'kind must be one of {", ".join(CHANGE_KINDS)} or empty'
            return response
        with memory.lock:
            changes = memory.objects.changes_since(conversions.stamp_to_ns(request.since), kind)
        frame = self._frame()
        response.success, response.message = True, f'{len(changes)} changes'
        response.changes = [conversions.memory_change_to_msg(c, frame) for c in changes]
        return response

    # ------------------------------------------------------------ diagnostics

    def describe(self) -> dict[str, str]:
        if self.memory is None:
            return {}
        return {'world_frame': self.config.world_frame or '(camera frame)', 'tf': self.tf_mode,
                'database': self.config.database}

    def diagnostic_values(self) -> dict[str, str]:
        memory = self.memory
        if memory is None:
            return {}
        with memory.lock:
            objs = list(memory.objects.objects.values())
            values = {
                'objects_present': sum(1 for o in objs if o.state not in (TENTATIVE, GONE)),
                'objects_gone': sum(1 for o in objs if o.state == GONE),
                'objects_tentative': sum(1 for o in objs if o.state == TENTATIVE),
                'tentative_discarded': memory.objects.discarded_tentative,
                'forgotten': memory.objects.forgotten,
                'entries_merged': memory.objects.merges,
                # frames that could not show anything missing, and why (camera turning fast,
                # the detector missing most objects, no camera_info)
                'frames_without_evidence': ', '.join(
                    f'{k} {n}' for k, n in sorted(memory.objects.unusable_frames.items()))
                or 'none',
                'changes_published': self.published_changes,
                'objects_without_position': self.objects_without_position,
                'keyframes': len(memory.keyframes.keyframes)}
        values['tf_status'] = self.tf_status
        if memory.db.recovered_from:
            values['database_error'] = memory.db.recovered_from
        return {k: str(v) for k, v in values.items()}

    def diagnostic_status(self) -> DiagnosticStatus:
        """WARN without a world frame (camera-frame positions) or after a database recovery."""
        status = super().diagnostic_status()
        if self.memory is None or status.level != DiagnosticStatus.OK:
            return status
        if not self.config.world_frame:
            status.level = DiagnosticStatus.WARN
            status.message = f'{status.message}; no world_frame: positions in the camera frame'
        elif self.memory.db.recovered_from:
            status.level = DiagnosticStatus.WARN
            status.message = f'{status.message}; database was corrupt, started a fresh one'
        return status


def main(args=None) -> None:
    run_node(MemoryNode, args)


if __name__ == '__main__':
    main()
