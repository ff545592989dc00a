"""Build a depth-enhanced scene graph from the perception stage's objects."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import time

from spatial_caption_ros.core.geometry import region_of, relative_size
from spatial_caption_ros.core.knowledge import KnowledgeBase
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.relations import pairwise_relations
from spatial_caption_ros.core.types import DetectionResult, SceneGraph


@dataclass(frozen=True)
class SceneGraphConfig:
    """Parameters of the scene-graph node."""

    direction_margin: float = param(
        0.25, "Left/right/above/below need the box centres apart by more than this fraction of "
        "the two boxes' mean size along that axis, so near-ties are not asserted.",
        minimum=0.0, maximum=5.0)
    attach_knowledge: bool = param(
        True, 'Attach commonsense facts about each class to its objects.')
    knowledge_files: tuple[str, ...] = param(
        (), 'Extra knowledge YAML files merged over the shipped one.', kind='str_list',
        when=CONFIGURE)


class SceneGraphBuilder:
    """Adds attributes, relations and knowledge to detected objects."""

    def __init__(self, config: SceneGraphConfig, knowledge: KnowledgeBase | None = None) -> None:
        self.config = config
        self.knowledge = knowledge or KnowledgeBase.load(config.knowledge_files)

    def build(self, detections: DetectionResult) -> SceneGraph:
        """The scene graph of one frame."""
        t0 = time.perf_counter()
        w, h = detections.image_width, detections.image_height
        objects = [o for o in detections.objects]
        counts = Counter(o.class_name for o in objects)
        for obj in objects:
            obj.region = region_of(obj.box, w, h)
            obj.relative_size = relative_size(obj.box, w, h)
            obj.class_count = counts[obj.class_name]
            obj.salience = min(1.0, obj.confidence * (0.5 + 2.0 * obj.relative_size))
            if self.config.attach_knowledge:
                obj.knowledge = list(self.knowledge.facts(obj.class_name))
        relations = pairwise_relations(objects, self.config.direction_margin)
        latency = detections.processing_latency + (time.perf_counter() - t0)
        return SceneGraph(
            header=detections.header, image_width=w, image_height=h, objects=objects,
            relations=relations, depth_source=detections.depth_source,
            depth_metric=detections.depth_metric, has_camera_info=detections.has_camera_info,
            notes=list(detections.notes), processing_latency=latency)
