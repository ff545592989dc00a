"""Optional JSON mirror of the scene graph on a std_msgs/String topic (off by default).

For consumers that cannot build the package's messages: LLM agents, rosbridge/web dashboards,
scripts. The JSON is exactly core/inputs/serialization.py's `graph_to_dict` (unknown numbers are
null), the same content as the runner's output/scene_graphs/*.json "scene_graph" entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from std_msgs.msg import String

from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.types import SceneGraph
from spatial_caption_ros.ros import conversions

JSON_TOPIC = 'scene_graph/json'


@dataclass(frozen=True)
class JsonMirrorConfig:
    """Parameters of the JSON mirror (declared by the scene-graph node)."""

    publish_json: bool = param(
        False, 'Also publish every scene graph as JSON (std_msgs/String on `scene_graph/json`) '
        'for LLM agents and web bridges.', when=CONFIGURE)


class JsonMirror:
    """Publishes graphs as JSON when enabled; created in configure_stage, a no-op when off."""

    def __init__(self, node, topic: str = JSON_TOPIC) -> None:
        enabled = node.extra(JsonMirrorConfig).publish_json
        self._pub = node.publisher(String, topic) if enabled else None

    @property
    def enabled(self) -> bool:
        return self._pub is not None

    def publish(self, graph: SceneGraph) -> None:
        if self._pub is not None:
            self._pub.publish(conversions.graph_to_json_msg(graph))
