"""Scene-graph node: detections -> depth-enhanced scene graph.

Subscribes:  detections (spatial_caption_interfaces/DetectionArray)
Publishes:   scene_graph (spatial_caption_interfaces/SceneGraph),
             scene_graph/json (std_msgs/String, only with publish_json)

All logic is in core/scene_graph/builder.py (attributes, k-NN relations, salience, knowledge).
Object ids are used as perception sends them (track ids when its tracker is on); detections with
repeated ids or invalid boxes are rejected and counted, and the node keeps running.
"""

from __future__ import annotations

import time

from spatial_caption_interfaces.msg import DetectionArray, SceneGraph

from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.scene_graph.validation import check_detections
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.json_mirror import JsonMirror, JsonMirrorConfig
from spatial_caption_ros.ros.managed_node import ManagedNode
from spatial_caption_ros.ros.spin import run_node


class SceneGraphNode(ManagedNode):
    """Runs the core SceneGraphBuilder on the newest detections."""

    CONFIG = SceneGraphConfig
    EXTRA_CONFIGS = (JsonMirrorConfig,)
    IO_DEFAULTS = {'input_qos': 'reliable_latest'}

    def __init__(self, **kwargs) -> None:
        self.builder: SceneGraphBuilder | None = None
        super().__init__('scene_graph', **kwargs)

    def configure_stage(self, config: SceneGraphConfig) -> None:
        self.builder = SceneGraphBuilder(config)
        self.graph_pub = self.publisher(SceneGraph, 'scene_graph')
        self.json_mirror = JsonMirror(self)

    def create_inputs(self) -> None:
        self.subscribe_latest(DetectionArray, 'detections', precheck=self._precheck)

    @staticmethod
    def _precheck(msg: DetectionArray) -> None:
        check_detections(conversions.msg_to_detections(msg))

    def describe(self) -> dict[str, str]:
        if self.builder is None:
            return {}
        return {'knowledge_classes': str(len(self.builder.knowledge)),
                'knn_k': str(self.config.knn_k),
                'conceptnet_file': self.config.conceptnet_file or 'none'}

    def apply_live(self, config: SceneGraphConfig) -> None:
        if self.builder is not None:
            self.builder.config = config

    def release_stage(self) -> None:
        self.builder = None

    def process(self, msg: DetectionArray) -> None:
        t0 = time.perf_counter()
        graph = self.builder.build(conversions.msg_to_detections(msg))
        self.graph_pub.publish(conversions.scene_graph_to_msg(graph))
        self.json_mirror.publish(graph)
        self.record_timings({'build': (time.perf_counter() - t0) * 1e3})


def main(args=None) -> None:
    run_node(SceneGraphNode, args)


if __name__ == '__main__':
    main()
