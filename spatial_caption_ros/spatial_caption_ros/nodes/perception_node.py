"""Perception node: image (+ camera_info) -> detections with depth and 3D positions.

Subscribes:  image (sensor_msgs/Image) or image/compressed (sensor_msgs/CompressedImage),
             camera_info (sensor_msgs/CameraInfo),
             depth (sensor_msgs/Image, 16UC1 x depth_image_scale or 32FC1 m, aligned to the
             colour image; with depth_source sensor or auto, or sensor scale anchors),
             /tf and /tf_static (tf2_msgs/TFMessage; with gravity_frame set: the camera's
             orientation for the geometric depth cues)
Publishes:   detections (spatial_caption_interfaces/DetectionArray)
Services:    ~/new_sequence (std_srvs/Trigger): the frames that follow are a new sequence
             (tracks, carried depth and the smoothed depth scale start afresh): called by the
             image source before each still photo of a folder, or by a user after a relocation
"""

from __future__ import annotations

from dataclasses import dataclass
import time

from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from spatial_caption_interfaces.msg import DetectionArray
from std_srvs.srv import Trigger

from spatial_caption_ros.core.perception.depth.sensor import StampBuffer
from spatial_caption_ros.core.perception.gravity import GravityFromTransforms
from spatial_caption_ros.core.errors import (
    InvalidCameraInfoError, InvalidImageError, OutOfOrderError)
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.types import DEPTH_AUTO
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.managed_node import ManagedNode
from spatial_caption_ros.ros.qos import qos_profile, TF_QOS, TF_STATIC_QOS
from spatial_caption_ros.ros.spin import run_node

try:   # every ROS install has it; the PyPI wheels get it from scripts/build_tf2_msgs.sh
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

# Right after activation, wait up to this long for a first CameraInfo before processing an image
# without one (only during the first STARTUP_WINDOW_S seconds; never later).
FIRST_CAMERA_INFO_WAIT_S = 0.25
STARTUP_WINDOW_S = 5.0
# Depth frames kept for stamp matching: a third of a second at 30 Hz, far more than the skew
# between a colour frame and its depth frame that matching within the tolerance allows.
DEPTH_BUFFER_FRAMES = 10


@dataclass(frozen=True)
class PerceptionNodeConfig:
    """Parameters only the node reads: which input topic, depth matching, stamp order."""

    image_format: str = param(
        'raw', 'Input images: raw (sensor_msgs/Image on `image`) or compressed '
        '(sensor_msgs/CompressedImage on `image/compressed`).', choices=('raw', 'compressed'),
        when=CONFIGURE)
    depth_stamp_tolerance: float = param(
        0.015, 'Seconds a depth frame stamp may differ from the colour frame stamp and still be '
        'used (sensor depth); keep it under half the frame period.', minimum=0.0, maximum=1.0)
    depth_wait: float = param(
        0.05, 'Seconds the node waits for the depth frame of a colour frame that arrived first '
        '(sensor depth).', minimum=0.0, maximum=1.0)
    depth_image_scale: float = param(
        0.001, 'Metres per unit of a 16UC1 depth image on `depth`: 0.001 for the millimetre '
        'convention (REP 118: RealSense, Azure Kinect, OpenNI2 drivers), 0.0002 for TUM RGB-D '
        'recordings (1/5000). 32FC1 images are metres and ignore it.', minimum=1e-6,
        maximum=1.0)
    stamp_jump_back_reset: float = param(
        1.0, 'A frame stamped earlier than the newest accepted frame is rejected as out of '
        'order, unless it is earlier by more than this many seconds: then the camera restarted '
        'or a bag looped, and a new sequence starts (tracks and depth scale reset).',
        minimum=0.0, maximum=86400.0)
    gravity_frame: str = param(
        '', 'World-fixed frame with z up (REP 103: map, odom, base_footprint) whose transform '
        "from the image's frame_id on /tf gives the camera's pitch and roll to the geometric "
        'depth cues, per frame at its stamp. Empty: /tf is not read. When the transform is '
        'missing or stale the frame gets a note and the fixed-mount parameters '
        '(camera_orientation) apply.', when=CONFIGURE)
    gravity_tf_tolerance: float = param(
        0.1, 'Seconds an image stamp may lie beyond the newest (or before the oldest) /tf sample '
        "of the camera's transform chain; beyond it the transform is stale and not used.",
        minimum=0.0, maximum=10.0)


class PerceptionNode(ManagedNode):
    """Runs the core PerceptionPipeline on the newest image."""

    CONFIG = PerceptionConfig
    EXTRA_CONFIGS = (PerceptionNodeConfig,)
    IO_DEFAULTS = {'input_qos': 'sensor_data'}

    def __init__(self, **kwargs) -> None:
        self.pipeline: PerceptionPipeline | None = None
        self._camera_info: CameraInfo | None = None
        self._activated_at = 0.0
        self._newest_stamp_ns: int | None = None
        self._depth_frames: StampBuffer[Image] = StampBuffer(DEPTH_BUFFER_FRAMES)
        self.depth_matched = 0
        self.depth_unmatched = 0
        self._depth_seen = False
        self.depth_unregistered = 0
        self.gravity: GravityFromTransforms | None = None
        self.gravity_mode = ''
        self._newest_received_ns: int | None = None
        # ~/new_sequence asked for: the first frame stamped after this (None: any) starts it
        self._sequence_pending = False
        self._sequence_after_ns: int | None = None
        self.sequences_requested = 0
        self._new_sequence_srv = None
        super().__init__('perception', **kwargs)

    def configure_stage(self, config: PerceptionConfig) -> None:
        self.pipeline = PerceptionPipeline(config)
        self.detections_pub = self.publisher(DetectionArray, 'detections')
        self._sequence_pending = False
        self._new_sequence_srv = self.create_service(Trigger, '~/new_sequence',
                                                     self._on_new_sequence)
        node_config = self.extra(PerceptionNodeConfig)
        self.gravity = None
        fallback = ('camera_pitch_deg/camera_roll_deg'
                    if config.depth.camera_orientation == 'parameters' else 'level camera')
        if not node_config.gravity_frame:
            self.gravity_mode = f'parameters ({fallback}); gravity_frame empty, /tf not read'
        elif TFMessage is None:
            self.gravity_mode = (f'parameters ({fallback}): tf2_msgs is not importable, /tf '
                                 'cannot be read (scripts/build_tf2_msgs.sh)')
            self.get_logger().error(f'gravity_frame {node_config.gravity_frame!r}: '
                                    f'{self.gravity_mode}')
        else:
            self.gravity = GravityFromTransforms(node_config.gravity_frame,
                                                 node_config.gravity_tf_tolerance)
            self.gravity_mode = f'/tf ({node_config.gravity_frame}), else {fallback}'

    def create_inputs(self) -> None:
        self._newest_stamp_ns = None
        if self.extra(PerceptionNodeConfig).image_format == 'compressed':
            self.subscribe_latest(CompressedImage, 'image/compressed',
                                  precheck=self._precheck_compressed)
        else:
            self.subscribe_latest(Image, 'image', precheck=self._precheck_image)
        self.subscribe(CameraInfo, 'camera_info', self._on_camera_info,
                       qos_profile('sensor_data'))
        if self.config.uses_sensor_depth:
            self._depth_frames.clear()
            self._depth_seen = False
            self.subscribe(Image, 'depth', self._on_depth, qos_profile(self.io.input_qos))
        if self.gravity is not None:
            self.subscribe(TFMessage, '/tf', lambda m: self._on_tf(m, False), TF_QOS)
            self.subscribe(TFMessage, '/tf_static', lambda m: self._on_tf(m, True),
                           TF_STATIC_QOS)

    # Subscription callbacks: header checks only, nothing slow (the worker decodes).

    def _precheck_image(self, msg: Image) -> None:
        conversions.check_image_msg(msg)
        self._check_stamp_order(msg)

    def _precheck_compressed(self, msg: CompressedImage) -> None:
        conversions.check_compressed_msg(msg)
        self._check_stamp_order(msg)

    def _check_stamp_order(self, msg) -> None:
        """Refuse frames older than the newest processed one, unless the camera restarted.

        Only processed frames move the mark, so a corrupt frame with a wild stamp cannot lock
        good frames out; a jump back of more than stamp_jump_back_reset starts a new sequence.
        """
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        newest = self._newest_stamp_ns
        if newest is not None and stamp < newest:
            back_s = (newest - stamp) / 1e9
            if back_s <= self.extra(PerceptionNodeConfig).stamp_jump_back_reset:
                raise OutOfOrderError(
                    f'frame stamped {back_s * 1e3:.1f} ms before the newest processed frame '
                    '(late or reordered delivery): dropped')
            self._throttled_log('info', 'restart',
                                f'image stamps went back {back_s:.1f} s: camera restarted or bag '
                                'looped; starting a new sequence')
        if self._newest_received_ns is None or stamp > self._newest_received_ns:
            self._newest_received_ns = stamp

    def _on_new_sequence(self, request: Trigger.Request,
                         response: Trigger.Response) -> Trigger.Response:
        """Frames stamped after every image received so far start a new sequence.

        Not a reset on the spot: the frame in the worker's hands (or waiting for it) still
        belongs to the old sequence; the caller publishes the new sequence's first frame after
        the response, so its stamp is later than any received before.
        """
        self._sequence_after_ns = self._newest_received_ns
        self._sequence_pending = True
        self.sequences_requested += 1
        response.success = True
        response.message = ('the next frame starts a new sequence'
                            if self._sequence_after_ns is None else
                            f'the first frame stamped after {self._sequence_after_ns / 1e9:.3f} '
                            's starts a new sequence')
        return response

    def _start_sequence_if_asked(self, stamp_ns: int) -> None:
        """Reset tracks and depth smoothing for the first frame of a requested new sequence."""
        after = self._sequence_after_ns
        if self._sequence_pending and (after is None or stamp_ns > after):
            self._sequence_pending = False
            self.pipeline.reset()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            conversions.camera_info_to_intrinsics(msg)
        except InvalidCameraInfoError as exc:
            self.reject('invalid_camera_info', f'{exc} (the last valid CameraInfo stays in use)',
                        main_input=False)
            return
        self._camera_info = msg

    def _on_depth(self, msg: Image) -> None:
        """Only buffers the message; it is decoded if and when a colour frame matches it."""
        try:
            conversions.check_image_msg(msg, depth=True)
        except InvalidImageError as exc:
            self.reject('invalid_depth', str(exc), main_input=False)
            return
        self._depth_seen = True
        self._depth_frames.put(conversions.stamp_to_ns(msg.header.stamp), msg)

    def _on_tf(self, msg, static: bool) -> None:
        for problem in self.gravity.add(conversions.tf_message_to_transforms(msg), static):
            self.reject('invalid_transform', problem, main_input=False)

    def _gravity(self, frame_id: str, stamp_ns: int) -> tuple[object, str | None]:
        """Gravity in the camera frame from /tf, or None and a note saying what applies."""
        if self.gravity is None:
            return None, None
        self.gravity.set_tolerance(self.extra(PerceptionNodeConfig).gravity_tf_tolerance)
        down, problem = self.gravity.down(frame_id.lstrip('/'), stamp_ns)
        if down is not None:
            return down, None
        fallback = ('the fixed-mount camera_pitch_deg/camera_roll_deg apply'
                    if self.config.depth.camera_orientation == 'parameters'
                    else 'the optical axis is taken as level')
        self._throttled_log('warning', 'gravity', f'{problem}; {fallback}')
        return None, f'{problem}; {fallback}'

    def _matched_depth(self, stamp_ns: int, frame_id: str) -> tuple[object, str | None]:
        """The aligned depth (metres) of the colour frame at `stamp_ns`, or None and why."""
        if self.config.depth.source == DEPTH_AUTO and not self._depth_seen:
            return None, None        # auto without a depth camera: monocular, nothing to wait for
        node_config = self.extra(PerceptionNodeConfig)
        tolerance_ns = int(node_config.depth_stamp_tolerance * 1e9)
        match = self._depth_frames.match(stamp_ns, tolerance_ns, node_config.depth_wait)
        if not match.matched:
            self.depth_unmatched += 1
            nearest = ('no depth frame received' if match.offset_ns is None
                       else f'nearest {match.offset_ns / 1e6:+.0f} ms')
            return None, (f'no depth frame within {1e3 * node_config.depth_stamp_tolerance:.0f} '
                          f'ms of the colour frame ({nearest}): no sensor depth for it')
        # its header was checked on arrival
        depth = conversions.depth_msg_to_metres(match.item, node_config.depth_image_scale)
        self.depth_matched += 1
        depth_frame = match.item.header.frame_id
        if depth_frame and frame_id and depth_frame != frame_id:
            # A registered ("aligned to colour") depth image carries the colour camera's frame;
            # one in another frame was taken from another viewpoint and would put objects at
            # the depth of what lies beside them.
            self.depth_unregistered += 1
            return depth, (f'depth frame_id {depth_frame!r} is not the colour frame_id '
                           f'{frame_id!r}: the depth image may not be registered to the colour '
                           "image (use the driver's aligned/registered depth topic)")
        return depth, None

    def on_activate(self, state):
        self._activated_at = time.monotonic()
        return super().on_activate(state)

    def _wait_for_first_camera_info(self) -> CameraInfo | None:
        """Latest CameraInfo; just after activation, wait briefly for the first one to arrive.

        Image and camera_info travel on separate topics; the first image can overtake the first
        camera_info. Later frames use the latest CameraInfo without waiting.
        """
        deadline = time.monotonic() + FIRST_CAMERA_INFO_WAIT_S
        while (self._camera_info is None and self.active
               and time.monotonic() - self._activated_at < STARTUP_WINDOW_S
               and time.monotonic() < deadline):
            time.sleep(0.005)
        return self._camera_info

    def apply_live(self, config: PerceptionConfig) -> None:
        if self.pipeline is not None:
            self.pipeline.update_live(config)

    def release_stage(self) -> None:
        if self._new_sequence_srv is not None:
            self.destroy_service(self._new_sequence_srv)
            self._new_sequence_srv = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    def describe(self) -> dict[str, str]:
        out = self.pipeline.describe() if self.pipeline is not None else {}
        if self.config is not None and self.config.uses_sensor_depth:
            out['depth_frames_matched'] = str(self.depth_matched)
            out['depth_frames_unmatched'] = str(self.depth_unmatched)
            out['depth_frames_unregistered'] = str(self.depth_unregistered)
        out['gravity_source'] = self.gravity_mode
        out['new_sequences_requested'] = str(self.sequences_requested)
        if self.gravity is not None:
            counts = self.gravity.counts
            out['gravity_frames_from_tf'] = str(counts.from_tf)
            out['gravity_tf_missing'] = str(counts.missing)
            out['gravity_tf_stale'] = str(counts.stale)
            if self.gravity.last_problem:
                out['gravity_tf_last_problem'] = self.gravity.last_problem
        return out

    def process(self, msg) -> None:
        t0 = time.perf_counter()
        if isinstance(msg, CompressedImage):
            image = conversions.compressed_msg_to_color(msg)
        else:
            image = conversions.image_msg_to_color(msg)
        decode_ms = (time.perf_counter() - t0) * 1e3
        intrinsics = None
        info = self._wait_for_first_camera_info()
        if info is not None:   # checked when it arrived: only usable ones are kept
            intrinsics = conversions.camera_info_to_intrinsics(info)
        else:
            self.get_logger().warning(
                'no camera_info received: depth stays relative and no 3D positions are given',
                throttle_duration_sec=30.0)
        header = conversions.header_to_core(msg.header)
        self._newest_stamp_ns = header.stamp_ns
        sensor_depth, depth_note, match_ms = None, None, 0.0
        if self.config.uses_sensor_depth:
            t1 = time.perf_counter()
            sensor_depth, depth_note = self._matched_depth(header.stamp_ns, header.frame_id)
            match_ms = (time.perf_counter() - t1) * 1e3
        gravity, gravity_note = self._gravity(header.frame_id, header.stamp_ns)
        self._start_sequence_if_asked(header.stamp_ns)
        result = self.pipeline.process(image, header, intrinsics, sensor_depth, gravity)
        if gravity_note:
            result.notes.append(gravity_note)
        result.stage_times_ms['decode'] = decode_ms
        if self.config.uses_sensor_depth:
            result.stage_times_ms['depth_match'] = match_ms
        result.processing_latency += (decode_ms + match_ms) / 1e3
        if depth_note:
            result.notes.append(depth_note)
        self.detections_pub.publish(conversions.detections_to_msg(result))
        self.record_timings(result.stage_times_ms)


def main(args=None) -> None:
    run_node(PerceptionNode, args)


if __name__ == '__main__':
    main()
