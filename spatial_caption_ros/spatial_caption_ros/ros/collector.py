"""A node that gathers each frame's image, scene graph and caption (runner and tests).

It subscribes to the graph's outputs and calls `on_frame` once per source frame whose caption
arrived, with everything known about that frame matched by the source image stamp. It also
keeps what the image source said about unreadable files (`skipped`) and which graph nodes
report a failed configure on /diagnostics (`failed_nodes()`), so the runner can stop at once
instead of waiting for a graph that will never connect.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
import json
import threading
import time
from collections.abc import Callable, Collection

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import Image
from spatial_caption_interfaces.msg import Caption, SceneGraph
from std_msgs.msg import String, UInt32

from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.types import Caption as CoreCaption, SceneGraph as CoreGraph
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile

KEEP = 64          # frames remembered while waiting for their caption
GRAPH_WAIT_S = 2.0  # how long a caption waits for its scene graph before being reported


@dataclass
class FrameResult:
    """Everything the graph produced for one source frame."""

    stamp_ns: int
    name: str
    caption: CoreCaption
    graph: CoreGraph | None
    image: ColorImage | None
    caption_msg: Caption = field(repr=False, default=None)
    graph_msg: SceneGraph = field(repr=False, default=None)


class ResultCollector(Node):
    """Matches images, scene graphs and captions by stamp."""

    def __init__(self, on_frame: Callable[[FrameResult], None] | None = None,
                 keep_images: bool = True, source_node: str = 'image_source',
                 topics: dict[str, str] | None = None, image_qos: str = 'reliable',
                 expect_names: bool = False, graph_nodes: Collection[str] | None = None,
                 **kwargs) -> None:
        """expect_names: wait for each frame's name from the image source (batch runs).

        graph_nodes: the nodes of the graph being recorded; pipeline_connected() then waits for
        every one of their subscriptions and publishers (default: perception, scene graph and
        caption).
        """
        super().__init__('result_collector', **kwargs)
        self.expect_names = expect_names
        self.keep_images = keep_images
        self.graph_nodes = set(graph_nodes if graph_nodes is not None
                               else ('perception', 'scene_graph', 'caption'))
        topics = {'image': 'image', 'scene_graph': 'scene_graph', 'caption': 'caption',
                  **(topics or {})}
        self.on_frame = on_frame
        self._topics = topics
        self.results: list[FrameResult] = []
        self.total_frames: int | None = None
        self.skipped: list[dict[str, str]] = []     # unreadable files: {'name', 'reason'}
        self.source_ended = False                   # the image source's end message arrived
        self._failures: dict[str, str] = {}         # node name -> configure failure
        # False: captions are ignored (a live run records once every stage is connected, so no
        # early caption is recorded without its graph).
        self.recording = True
        self.ignored = 0
        # Live runs: captions of frames older than the first image or graph seen while
        # recording are ignored too (their graph may have gone out before this node matched).
        self.ignore_earlier_frames = False
        self._recording_since: int | None = None
        self._lock = threading.Lock()
        self._images: OrderedDict[int, ColorImage] = OrderedDict()
        self._graphs: OrderedDict[int, SceneGraph] = OrderedDict()
        self._names: OrderedDict[int, str] = OrderedDict()
        self._pending: dict[int, tuple[Caption, float]] = {}
        self.create_timer(0.5, self._flush_pending)
        reliable = qos_profile('reliable')
        if keep_images:   # image_qos: sensor_data for a live camera (often best effort)
            self.create_subscription(Image, topics['image'], self._on_image,
                                     qos_profile(image_qos))
        self.create_subscription(SceneGraph, topics['scene_graph'], self._on_graph, reliable)
        self.create_subscription(Caption, topics['caption'], self._on_caption, reliable)
        self.create_subscription(UInt32, f'/{source_node}/done', self._on_done,
                                 qos_profile('latched'))
        self.create_subscription(String, f'/{source_node}/frame_names', self._on_name, reliable)
        self._watched = self.graph_nodes | {source_node}
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)

    @staticmethod
    def _remember(store: OrderedDict, key: int, value) -> None:
        store[key] = value
        while len(store) > KEEP:
            store.popitem(last=False)

    def _on_image(self, msg: Image) -> None:
        try:
            image = conversions.image_msg_to_color(msg)
        except Exception:  # noqa: BLE001 - a bad image only loses its annotation
            return
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        self._mark_recording_start(stamp)
        with self._lock:
            # Copy: the message buffer is reused by rclpy once the callback returns.
            self._remember(self._images, stamp, ColorImage(image.pixels.copy(), image.order))

    def _mark_recording_start(self, stamp: int) -> None:
        if self.recording and self._recording_since is None:
            self._recording_since = stamp

    def _ready(self, stamp: int) -> bool:
        """Everything a caption waits for has arrived: its graph (and its frame name)."""
        return stamp in self._graphs and (not self.expect_names or stamp in self._names)

    def _release_if_ready(self, stamp: int) -> None:
        with self._lock:
            waiting = self._pending.pop(stamp, None) if self._ready(stamp) else None
        if waiting is not None:
            self._finish(waiting[0])

    def _on_graph(self, msg: SceneGraph) -> None:
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        self._mark_recording_start(stamp)
        with self._lock:
            self._remember(self._graphs, stamp, msg)
        self._release_if_ready(stamp)

    def _on_name(self, msg: String) -> None:
        try:
            item = json.loads(msg.data)
            if item.get('end'):
                self.skipped = [{'name': str(s['name']), 'reason': str(s['reason'])}
                                for s in item.get('skipped', [])]
                self.source_ended = True
                return
            if 'skipped' in item:       # one unreadable file, said when it was passed over
                entry = {'name': str(item['name']), 'reason': str(item['skipped'])}
                if entry not in self.skipped:
                    self.skipped.append(entry)
                return
            stamp, name = int(item['stamp_ns']), str(item['name'])
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        with self._lock:
            self._remember(self._names, stamp, name)
        self._release_if_ready(stamp)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            node = status.name.rsplit('/', 1)[-1]
            if node not in self._watched:
                continue
            if status.level == DiagnosticStatus.ERROR and \
                    status.message.startswith('configure failed'):
                last_error = next((kv.value for kv in status.values if kv.key == 'last_error'),
                                  '')
                self._failures[node] = (f'configure failed: {last_error}' if last_error
                                        else status.message)
            else:
                self._failures.pop(node, None)

    def failed_nodes(self) -> dict[str, str]:
        """Graph nodes whose last diagnostics report a failed configure: name -> message."""
        return dict(self._failures)

    def _on_done(self, msg: UInt32) -> None:
        self.total_frames = int(msg.data)

    def _on_caption(self, msg: Caption) -> None:
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        early = self.ignore_earlier_frames and (
            self._recording_since is None or stamp < self._recording_since)
        if not self.recording or early:
            self.ignored += 1
            return
        with self._lock:
            if not self._ready(stamp):
                # The caption overtook its graph or frame name (separate topics): finish it
                # when they arrive, or after GRAPH_WAIT_S without them.
                self._pending[stamp] = (msg, time.monotonic())
                return
        self._finish(msg)

    def _flush_pending(self, wait_s: float = GRAPH_WAIT_S) -> None:
        """Captions whose graph never came are reported without one after `wait_s`."""
        now = time.monotonic()
        with self._lock:
            late = [s for s, (_, t) in self._pending.items() if now - t >= wait_s]
            msgs = [self._pending.pop(s)[0] for s in late]
        for msg in msgs:
            self._finish(msg)

    def _finish(self, msg: Caption) -> None:
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        with self._lock:
            graph_msg = self._graphs.get(stamp)
            image = self._images.get(stamp)
            name = self._names.get(stamp, f'frame_{len(self.results):06d}')
        result = FrameResult(
            stamp_ns=stamp, name=name, caption=conversions.msg_to_caption(msg),
            graph=conversions.msg_to_scene_graph(graph_msg) if graph_msg is not None else None,
            image=image, caption_msg=msg, graph_msg=graph_msg)
        self.results.append(result)
        if self.on_frame is not None:
            self.on_frame(result)

    @property
    def pending(self) -> int:
        """Captions received whose graph (or frame name) has not arrived yet."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> None:
        """Report every caption still waiting for its graph (at the end of a run)."""
        self._flush_pending(0.0)

    def expected_endpoints(self) -> dict[tuple[str, str], int]:
        """(topic, 'subscribers' or 'publishers') -> how many the graph_nodes and this node have.

        Every endpoint is counted: a count met by others (the collector and the visualization
        node also read images and graphs) must not hide a stage that is not there yet.
        """
        nodes, mine = self.graph_nodes, 1
        return {
            (self._topics['image'], 'subscribers'):
                int(self.keep_images) + ('perception' in nodes) + ('visualization' in nodes),
            ('detections', 'publishers'): int('perception' in nodes),
            ('detections', 'subscribers'): int('scene_graph' in nodes),
            (self._topics['scene_graph'], 'publishers'): int('scene_graph' in nodes),
            (self._topics['scene_graph'], 'subscribers'):
                mine + ('caption' in nodes) + ('visualization' in nodes),
            (self._topics['caption'], 'publishers'): int('caption' in nodes),
            # the image source is not counted: batch runs configure it once this is true
            (self._topics['caption'], 'subscribers'): mine + ('visualization' in nodes),
        }

    def missing_endpoints(self) -> list[str]:
        """The expected endpoints not discovered yet, e.g. 'image subscribers 2/3'."""
        count = {'subscribers': self.count_subscribers, 'publishers': self.count_publishers}
        missing = []
        for (topic, kind), n in self.expected_endpoints().items():
            have = count[kind](topic)
            if have < n:
                missing.append(f'{topic} {kind} {have}/{n}')
        return missing

    def pipeline_connected(self) -> bool:
        """True when every stage's topics are matched (so no early frame is lost to discovery)."""
        return not self.missing_endpoints()

    @property
    def complete(self) -> bool:
        """True once the source said it is done and every frame it published has a caption.

        With expect_names, also its end message (every skipped file is known then).
        """
        return (self.total_frames is not None and len(self.results) >= self.total_frames
                and (self.source_ended or not self.expect_names))
