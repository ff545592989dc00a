"""Image source node: publishes a folder of images or a video as a camera would.

For demos, simulation stand-ins and tests. With `pace_on` it waits for a stage's output for each
frame before publishing the next, so a batch run processes every frame. Rate, stamps and
pace_timeout run on the node clock: with use_sim_time they follow /clock.

Publishes:   image (sensor_msgs/Image, bgr8), camera_info (sensor_msgs/CameraInfo: from
             camera_info_url / camera_info_file, else the photo's EXIF focal length, else an
             assumed field of view marked by distortion_model "assumed_pinhole"), ~/done
             (std_msgs/UInt32, latched: frames published, sent once the source is exhausted),
             ~/frame_names (std_msgs/String, JSON {"stamp_ns", "name"}: which file or video
             frame each image came from; {"name", "skipped"} for an unreadable file when it
             is passed over; once the source is exhausted {"end": true, "published",
             "skipped": [{"name", "reason"}]})

An unreadable file (empty, truncated, not an image) does not end a folder: it is rejected
(counted, logged with its reason), named in the end message, and the next file follows.

Each file of a folder is a still photo of its own (unless folder_is_sequence): before
publishing it the node calls new_sequence_service (the perception node's ~/new_sequence) and
waits for the answer (at most NEW_SEQUENCE_WAIT_S), so the tracker never takes objects of two
unrelated photos for one. A video, one image file and a camera are one sequence.
Subscribes:  detections | scene_graph | caption (only with pace_on)
Calls:       new_sequence_service (std_srvs/Trigger; folders of still photos)
"""

from __future__ import annotations

import json
import threading

from sensor_msgs.msg import CameraInfo, Image
from spatial_caption_interfaces.msg import Caption, DetectionArray, SceneGraph
from std_msgs.msg import String, UInt32
from std_srvs.srv import Trigger

from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.inputs.sources import (
    FrameSource,
    ImageSourceConfig,
    IntrinsicsResolver,
)
from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.managed_node import ManagedNode
from spatial_caption_ros.ros.qos import qos_profile
from spatial_caption_ros.ros.spin import run_node

_PACE_TYPES = {'detections': DetectionArray, 'scene_graph': SceneGraph, 'caption': Caption}


# Decoded frames kept for looping (a folder of 100 full-HD frames is about 600 MB).
LOOP_CACHE_BYTES = 512 * 2**20
# Seconds a still photo waits for new_sequence_service to answer; then it is published anyway
# (logged and counted: the tracker downstream may then link it to the previous photo).
NEW_SEQUENCE_WAIT_S = 2.0


class ImageSourceNode(ManagedNode):
    """Publishes frames from a FrameSource at a fixed rate (or paced by a downstream stage)."""

    CONFIG = ImageSourceConfig
    IO_DEFAULTS = {'output_qos': 'reliable', 'input_qos': 'reliable'}

    def __init__(self, **kwargs) -> None:
        self.source: FrameSource | None = None
        self._frames = None
        self._decoded: list | None = None
        self._timer = None
        self._pending_stamp: int | None = None
        self._pending_since = 0.0
        self._pending_name = ''
        self.published = 0
        self.skipped: list[dict[str, str]] = []
        self.finished = False
        self._resolver: IntrinsicsResolver | None = None
        self.intrinsics_kinds: dict[str, int] = {}
        self._sequence_client = None
        # a still photo waiting for the new-sequence answer: (frame, since_s, future)
        self._held: tuple | None = None
        self._unsent = None         # a photo answered while the node was inactive
        self._held_lock = threading.Lock()
        self._sequence_unanswered_logged = False
        self.sequences_started = 0
        super().__init__('image_source', **kwargs)

    def configure_stage(self, config: ImageSourceConfig) -> None:
        self.source = FrameSource(config.source)
        if self.source.ignored:
            self.get_logger().warning(
                f'{len(self.source.ignored)} files of {self.source.path} are not frames and are '
                'not published: ' + '; '.join(f'{n} ({why})' for n, why in self.source.ignored))
        self._frames = (self._first_pass() if config.loop
                        else self.source.frames(self._skip_file))
        self._resolver = IntrinsicsResolver(config)
        self.intrinsics_kinds = {}
        self.published = 0
        self.skipped = []
        self.finished = False
        self.image_pub = self.publisher(Image, 'image')
        self.info_pub = self.publisher(CameraInfo, 'camera_info')
        self.done_pub = self.publisher(UInt32, '~/done', qos_profile('latched'))
        self.names_pub = self.publisher(String, '~/frame_names', qos_profile('reliable'))
        self._held = self._unsent = None
        self.sequences_started = 0
        if config.new_sequence_service and self.source.stills(config.folder_is_sequence):
            self._sequence_client = self.create_client(Trigger, config.new_sequence_service)
        if self._resolver.calibration is None and config.assumed_hfov_deg:
            self.get_logger().warning(
                f'no calibration: frames without an EXIF focal length get CameraInfo of an '
                f'ASSUMED camera ({config.assumed_hfov_deg:.0f} deg horizontal field of view, '
                f'marked as assumed): their distances are rough')

    def describe(self) -> dict[str, str]:
        if self.source is None:
            return {}
        out = {'source': str(self.source.path), 'kind': self.source.kind,
               'frames_published': str(self.published), 'files_skipped': str(len(self.skipped))}
        if self._sequence_client is not None:
            out['new_sequences'] = (f'{self.sequences_started} of {self.published} photos '
                                    f'({self._sequence_client.srv_name})')
        out.update({f'intrinsics.{k}': str(v) for k, v in sorted(self.intrinsics_kinds.items())})
        return out

    def create_inputs(self) -> None:
        self._start_timer(self.config.rate)
        if self.config.pace_on:
            self.subscribe(_PACE_TYPES[self.config.pace_on], self.config.pace_on,
                           self._on_paced_output, qos_profile('reliable'))

    def _start_timer(self, rate: float) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
        self._timer = self.create_timer(1.0 / rate, self._tick)

    def on_deactivate(self, state):
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        return super().on_deactivate(state)

    def apply_live(self, config: ImageSourceConfig) -> None:
        if self._timer is not None:
            self._start_timer(config.rate)

    def release_stage(self) -> None:
        if self._sequence_client is not None:
            self.destroy_client(self._sequence_client)
            self._sequence_client = None
        self._held = self._unsent = None
        self.source = None
        self._frames = None
        self._decoded = None
        self._resolver = None

    def _first_pass(self):
        """Frames of the source, kept decoded for the next loops when they fit LOOP_CACHE_BYTES.

        A camera does not decode files: without this a looped folder at 30 Hz spends a good
        part of a core on JPEG decoding, taken from the nodes under test.
        """
        self._decoded, kept, size = None, [], 0
        for name, image in self.source.frames(self._skip_file):
            size += image.pixels.nbytes
            if kept is not None and size <= LOOP_CACHE_BYTES:
                kept.append((name, image))
            else:
                kept = None
            yield name, image
        self._decoded = kept

    def _skip_file(self, name: str, reason: str) -> None:
        """An unreadable file: counted as a rejected input, logged, named at the end."""
        self.counters.received += 1
        self.reject('invalid_image', reason)
        self.skipped.append({'name': name, 'reason': reason})
        # at once, not only in the end message: a run stopped before the end still knows it
        self.names_pub.publish(String(data=json.dumps({'name': name, 'skipped': reason})))

    def _on_paced_output(self, msg) -> None:
        if self._pending_stamp is not None and \
                conversions.stamp_to_ns(msg.header.stamp) == self._pending_stamp:
            self._pending_stamp = None

    def _intrinsics_for(self, name: str, width: int, height: int) -> CameraIntrinsics | None:
        intrinsics = self._resolver.for_frame(width, height, self.source.file_of(name))
        kind = self._resolver.kind(intrinsics)
        self.intrinsics_kinds[kind] = self.intrinsics_kinds.get(kind, 0) + 1
        return intrinsics

    def _subscribers_matched(self) -> bool:
        """With min_subscribers, hold frames back until enough subscribers are matched."""
        wanted = self.config.min_subscribers
        if wanted <= 0 or self.image_pub.get_subscription_count() >= wanted:
            self._waiting_logged = False
            return True
        if not getattr(self, '_waiting_logged', False):
            self._waiting_logged = True
            self.get_logger().info(
                f'waiting for {wanted} subscribers on {self.image_pub.topic_name} '
                f'({self.image_pub.get_subscription_count()} matched) before publishing')
        return False

    def _next_frame(self):
        """(name, image) of the next frame; None once the source is exhausted.

        Looping, the source starts over within the same tick, so the rate holds across the wrap
        (it used to skip one period there).
        """
        try:
            return next(self._frames)
        except StopIteration:
            if not (self.config.loop and self.published):
                return None
        self._frames = iter(self._decoded) if self._decoded is not None else self._first_pass()
        return next(self._frames, None)

    def _tick(self) -> None:
        if not self.active or self.finished:
            return
        if self._held is not None:
            if self._clock_s() - self._held[1] >= NEW_SEQUENCE_WAIT_S:
                self._release_held(None)
            return
        if self._unsent is not None:
            frame, self._unsent = self._unsent, None
            self._publish(*frame)
            return
        if self._pending_stamp is not None:
            if self._clock_s() - self._pending_since < self.config.pace_timeout:
                return
            self.counters.error('pace_timeout', main_input=False)
            self.get_logger().warning(
                f'no {self.config.pace_on} output for frame {self._pending_name!r} within '
                f'{self.config.pace_timeout:.0f} s; publishing the next frame')
            self._pending_stamp = None
        if not self._subscribers_matched():
            return
        frame = self._next_frame()
        if frame is None:
            if self.config.loop and self.published:
                return
            self.finished = True
            # the end message follows every frame name on the same topic, so a reader that
            # has it has every name and every skipped file
            self.names_pub.publish(String(data=json.dumps(
                {'end': True, 'published': self.published, 'skipped': self.skipped})))
            self.done_pub.publish(UInt32(data=self.published))
            skipped = f', {len(self.skipped)} unreadable files skipped' if self.skipped else ''
            self.get_logger().info(f'source exhausted after {self.published} frames{skipped}')
            return
        if self._sequence_client is not None and self._ask_new_sequence(frame):
            return
        self._publish(*frame)

    def _clock_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _ask_new_sequence(self, frame) -> bool:
        """Call new_sequence_service before a still photo; True: the photo awaits the answer.

        Without the service (no perception node, another name) the photo is published at once;
        after the first photo that is said once in the log.
        """
        if not self._sequence_client.service_is_ready():
            if self.published and not self._sequence_unanswered_logged:
                self._sequence_unanswered_logged = True
                self.get_logger().warning(
                    f'new_sequence_service {self._sequence_client.srv_name} is not available: '
                    'the photos go out as one stream and a tracker downstream may take objects '
                    'of two photos for one (set new_sequence_service, or empty to silence this)')
            return False
        future = self._sequence_client.call_async(Trigger.Request())
        self._held = (frame, self._clock_s(), future)
        future.add_done_callback(self._release_held)
        return True

    def _release_held(self, future) -> None:
        """Publish the photo that waited for `future` (None: waited too long)."""
        with self._held_lock:
            held = self._held
            if held is None or (future is not None and held[2] is not future):
                return
            self._held = None
        if future is None:
            self.counters.error('new_sequence_timeout', main_input=False)
            self.get_logger().warning(
                f'{self._sequence_client.srv_name} did not answer within '
                f'{NEW_SEQUENCE_WAIT_S:.0f} s: photo {held[0][0]!r} is published without a new '
                'sequence', throttle_duration_sec=30.0)
        else:
            self.sequences_started += 1
        if self.active:
            self._publish(*held[0])
        else:           # deactivated meanwhile: the photo goes out first after activation
            self._unsent = held[0]

    def _publish(self, name: str, image) -> None:
        """Publish one frame: CameraInfo, its name, then the image, all with one header."""
        self.counters.received += 1
        try:
            intrinsics = self._intrinsics_for(name, image.width, image.height)
        except SpatialCaptionError as exc:
            self.get_logger().error(f'camera calibration unusable: {exc}',
                                    throttle_duration_sec=30.0)
            intrinsics = None
        stamp_ns = self.get_clock().now().nanoseconds
        header = FrameHeader(stamp_ns=stamp_ns, frame_id=self.config.frame_id)
        if intrinsics is not None:   # before the image, so it is there when the image is
            self.info_pub.publish(conversions.intrinsics_to_camera_info(intrinsics, header))
        self.names_pub.publish(String(data=json.dumps({'stamp_ns': stamp_ns, 'name': name})))
        self.image_pub.publish(conversions.color_to_image_msg(image, header))
        self.published += 1
        self.counters.processed += 1
        self.input_rate.tick()
        if self.config.pace_on:
            self._pending_stamp, self._pending_since, self._pending_name = (
                stamp_ns, stamp_ns / 1e9, name)

def main(args=None) -> None:
    run_node(ImageSourceNode, args)


if __name__ == '__main__':
    main()
