"""Visualization node: scene graph (+ image, depth, caption) -> rviz markers, annotated image.

Subscribes:  scene_graph (spatial_caption_interfaces/SceneGraph),
             image (sensor_msgs/Image) or image/compressed (sensor_msgs/CompressedImage),
             caption (spatial_caption_interfaces/Caption),
             depth (sensor_msgs/Image 16UC1 mm / 32FC1, only with show_depth_inset)
Publishes:   markers (visualization_msgs/MarkerArray, camera optical frame of the source image),
             annotated_image (sensor_msgs/Image, bgr8)

Every output carries the header (stamp and frame_id) of the source image the scene graph was
computed from. The drawing is in core/visualization/render.py; this file only wires topics.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
import threading

from sensor_msgs.msg import CompressedImage, Image
from spatial_caption_interfaces.msg import Caption, SceneGraph
from visualization_msgs.msg import MarkerArray

from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.visualization.render import annotate, scene_markers
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.managed_node import LOG_THROTTLE_S, ManagedNode
from spatial_caption_ros.ros.qos import QOS_NAMES, qos_profile
from spatial_caption_ros.ros.spin import run_node

# A depth image is paired with the scene graph whose stamp is nearest, if within this many
# seconds: RGB-D drivers stamp aligned depth with the colour stamp or within one frame
# (33 ms at 30 Hz); 50 ms accepts that and never pairs frames two periods apart.
DEPTH_MATCH_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class VisualizationConfig:
    """Parameters of the visualization node (all read by the node; the drawing takes values)."""

    image_format: str = param(
        'raw', 'Camera images to draw on: raw (sensor_msgs/Image on `image`) or compressed '
        '(sensor_msgs/CompressedImage on `image/compressed`).', choices=('raw', 'compressed'),
        when=CONFIGURE)
    image_qos: str = param(
        'sensor_data', 'QoS of the camera image (and depth) subscriptions: sensor_data, '
        'reliable, reliable_latest or latched.',
        choices=QOS_NAMES, when=CONFIGURE)
    image_buffer_size: int = param(
        30, 'Most camera images kept to find the one a scene graph was computed from (by stamp); '
        'images up to the drawn graph are dropped at once. Must cover camera rate x perception '
        'latency (30: 1 s at 30 Hz).', minimum=1, maximum=600, when=CONFIGURE)
    publish_markers: bool = param(
        True, 'Publish visualization_msgs/MarkerArray on `markers` (camera optical frame).')
    publish_annotated_image: bool = param(
        True, 'Publish the annotated image (boxes, labels, distances, depth inset, caption) on '
        '`annotated_image`.')
    max_relation_lines: int = param(
        5, 'Most relations drawn as lines between 3D object centres (highest salience first; '
        'both objects need a 3D position).', minimum=0, maximum=100)
    text_size: float = param(
        0.15, 'Height in metres of the marker labels.', minimum=0.01, maximum=5.0)
    marker_lifetime: float = param(
        2.0, 'Seconds rviz keeps markers that were not refreshed (0: until replaced); they are '
        'replaced on every scene graph.', minimum=0.0, maximum=3600.0)
    show_depth_inset: bool = param(
        True, 'Subscribe to `depth` (sensor_msgs/Image, 16UC1 mm or 32FC1) and draw the depth '
        'map with the same stamp as an inset.', when=CONFIGURE)
    depth_inset_width: float = param(
        0.25, 'Width of the depth inset as a fraction of the image width.', minimum=0.05,
        maximum=0.5)
    show_caption: bool = param(True, 'Draw the latest caption at the bottom of the image.')


class VisualizationNode(ManagedNode):
    """Draws each scene graph as markers and on the camera image it was computed from."""

    CONFIG = VisualizationConfig
    IO_DEFAULTS = {'input_qos': 'reliable_latest'}

    def __init__(self, **kwargs) -> None:
        self._lock = threading.Lock()
        self._images: OrderedDict[int, Image | CompressedImage] = OrderedDict()
        self._depths: OrderedDict[int, Image] = OrderedDict()
        self._caption = ''
        self._counts = {'markers_published': 0, 'annotated_published': 0,
                        'no_matching_image': 0, 'depth_insets': 0}
        super().__init__('visualization', **kwargs)

    def configure_stage(self, config: VisualizationConfig) -> None:
        self._clear()
        self.markers_pub = self.publisher(MarkerArray, 'markers')
        self.annotated_pub = self.publisher(Image, 'annotated_image')

    def create_inputs(self) -> None:
        image_qos = qos_profile(self.config.image_qos)
        if self.config.image_format == 'compressed':
            self.subscribe(CompressedImage, 'image/compressed', self._on_image, image_qos)
        else:
            self.subscribe(Image, 'image', self._on_image, image_qos)
        if self.config.show_depth_inset:
            self.subscribe(Image, 'depth', self._on_depth, image_qos)
        self.subscribe(Caption, 'caption', self._on_caption, qos_profile('reliable'))
        self.subscribe_latest(SceneGraph, 'scene_graph',
                              precheck=conversions.check_scene_graph_msg)

    def release_stage(self) -> None:
        self._clear()

    def describe(self) -> dict[str, str]:
        return {'image_format': self.config.image_format,
                'depth_inset': str(self.config.show_depth_inset).lower()}

    def diagnostic_values(self) -> dict[str, str]:
        with self._lock:
            values = {f'visualization.{k}': str(v) for k, v in self._counts.items()}
            values['visualization.images_buffered'] = str(len(self._images))
        return values

    # ----------------------------------------------------------- inputs (executor threads)

    def _clear(self) -> None:
        with self._lock:
            self._images.clear()
            self._depths.clear()
            self._caption = ''

    def _remember(self, store: OrderedDict, msg) -> None:
        with self._lock:
            store[conversions.stamp_to_ns(msg.header.stamp)] = msg
            while len(store) > self.config.image_buffer_size:
                store.popitem(last=False)

    def _on_image(self, msg) -> None:
        self._remember(self._images, msg)

    def _on_depth(self, msg: Image) -> None:
        self._remember(self._depths, msg)

    def _on_caption(self, msg: Caption) -> None:
        with self._lock:
            self._caption = msg.text

    # ----------------------------------------------------------- worker thread

    def _take_inputs(self, stamp_ns: int):
        """The image, depth and caption for a graph; drops what no later graph can need.

        Graphs come in stamp order (the perception worker takes the newest image), so images
        and depth maps up to this stamp are never needed again: the buffers hold only the
        images taken during one perception latency, image_buffer_size is just the upper bound.
        """
        tolerance_ns = DEPTH_MATCH_TOLERANCE_S * 1e9
        with self._lock:
            image = self._images.get(stamp_ns)
            depth = None
            if self._depths:
                nearest = min(self._depths, key=lambda s: abs(s - stamp_ns))
                if abs(nearest - stamp_ns) <= tolerance_ns:
                    depth = self._depths[nearest]
            for store, horizon in ((self._images, stamp_ns),
                                   (self._depths, stamp_ns - tolerance_ns)):
                for old in [s for s in store if s <= horizon]:
                    del store[old]
            return image, depth, self._caption

    def process(self, msg: SceneGraph) -> None:
        t0 = self.now_s()
        graph = conversions.msg_to_scene_graph(msg)
        timings = {}
        if self.config.publish_markers:
            specs = scene_markers(graph, self.config.max_relation_lines, self.config.text_size)
            self.markers_pub.publish(
                conversions.markers_to_msg(specs, graph.header, self.config.marker_lifetime))
            self._count('markers_published')
            timings['markers'] = (self.now_s() - t0) * 1e3
        if not self.config.publish_annotated_image:
            self.record_timings(timings)
            return
        t1 = self.now_s()
        image_msg, depth_msg, caption = self._take_inputs(graph.header.stamp_ns)
        if image_msg is None:
            self._count('no_matching_image')
            self.get_logger().warning(
                'no camera image with the stamp of the scene graph: is `image` the perception '
                'input, and does image_buffer_size cover the perception latency?',
                throttle_duration_sec=LOG_THROTTLE_S)
            self.record_timings(timings)
            return
        image = self._decode(image_msg)
        depth = conversions.depth_msg_to_metres(depth_msg) if depth_msg is not None else None
        canvas = annotate(image, graph, caption if self.config.show_caption else None,
                          depth=depth, depth_inset_width=self.config.depth_inset_width)
        self.annotated_pub.publish(conversions.array_to_image_msg(canvas, msg.header, 'bgr8'))
        self._count('annotated_published')
        if depth is not None:
            self._count('depth_insets')
        timings['annotate'] = (self.now_s() - t1) * 1e3
        self.record_timings(timings)

    @staticmethod
    def _decode(msg) -> ColorImage:
        if isinstance(msg, CompressedImage):
            return conversions.compressed_msg_to_color(msg)
        return conversions.image_msg_to_color(msg)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1


def main(args=None) -> None:
    run_node(VisualizationNode, args)


if __name__ == '__main__':
    main()
