"""Build a depth-enhanced scene graph from the perception stage's objects.

Objects keep everything perception measured (class, confidence, box, depth with its uncertainty
and source, 3D position, distance, metric size) and their ids: the graph does not track; when
perception runs a tracker, SceneObject.id is its track id and is used as is. The builder adds the
per-frame attributes (class count, 3x3 region, relative size, salience, commonsense knowledge)
and the relations of each object with its k nearest neighbours (plus every pair among the most
salient objects), evaluated together in numpy (core/scene_graph/relations.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import math
import time

import numpy as np

from spatial_caption_ros.core.scene_graph.geometry import (
    gaussian_weights, knn_pairs, region_of, relative_size)
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.params import CONFIGURE, group, param
from spatial_caption_ros.core.scene_graph.relations import ObjectArrays, relate, RelationConfig
from spatial_caption_ros.core.scene_graph.salience import object_salience, relation_salience
from spatial_caption_ros.core.types import DetectionResult, Relation, SceneGraph, SceneObject
from spatial_caption_ros.core.scene_graph.validation import check_objects


@dataclass(frozen=True)
class SceneGraphConfig:
    """Parameters of the scene-graph stage: the relation thresholds (a group), pairs, knowledge."""

    relations: RelationConfig = group(RelationConfig)
    knn_k: int = param(
        5, 'Each object is related to its k nearest neighbours (3D centres when every object '
        'is metric, else box centres in the image); 0 relates every pair (N^2).',
        minimum=0, maximum=100)
    always_relate_top: int = param(
        4, 'Also relate every pair among this many most salient objects, so captions can '
        'compare the main objects even when they are not neighbours.', minimum=0, maximum=20)
    attach_knowledge: bool = param(
        True, 'Attach commonsense facts about each class to its objects.')
    max_facts_per_object: int = param(
        8, 'Most commonsense facts attached to one object (the first ones of its class).',
        minimum=0, maximum=32)
    knowledge_files: tuple[str, ...] = param(
        (), 'Extra knowledge YAML files merged over the shipped one.', kind='str_list',
        when=CONFIGURE)
    conceptnet_file: str = param(
        '', 'Optional local ConceptNet 5 assertions CSV (.csv or .csv.gz) whose English facts '
        'about the known classes are added to the knowledge; empty: none.', when=CONFIGURE)


class SceneGraphBuilder:
    """Adds attributes, relations and knowledge to detected objects."""

    def __init__(self, config: SceneGraphConfig, knowledge: KnowledgeBase | None = None) -> None:
        self.config = config
        self.knowledge = knowledge or KnowledgeBase.load(
            config.knowledge_files, conceptnet_file=config.conceptnet_file)

    def build(self, detections: DetectionResult) -> SceneGraph:
        """The scene graph of one frame (raises InvalidInputError on unusable input)."""
        t0 = time.perf_counter()
        w, h = detections.image_width, detections.image_height
        objects = list(detections.objects)
        check_objects(objects, w, h, 'detections')
        cfg = self.config
        counts = Counter(o.class_name for o in objects)
        for obj in objects:
            obj.region = region_of(obj.box, w, h)
            obj.relative_size = relative_size(obj.box, w, h)
            obj.class_count = counts[obj.class_name]
            obj.knowledge = list(self.knowledge.facts(obj.class_name)[
                :cfg.max_facts_per_object]) if cfg.attach_knowledge else []
        salience = object_salience(objects, w, h)
        for obj, s in zip(objects, salience, strict=True):
            obj.salience = float(s)
        relations = self._relations(objects, salience, w, h)
        notes = list(detections.notes)
        if objects and not any(math.isfinite(o.depth) for o in objects):
            notes.append('no depth: no in front of / behind, and no "on" or "inside" (contact '
                         'needs depth)')
        elif objects and not any(o.position is not None for o in objects):
            notes.append('no metric 3D positions: proximity judged in the image, no distances')
        latency = detections.processing_latency + (time.perf_counter() - t0)
        return SceneGraph(
            header=detections.header, image_width=w, image_height=h, objects=objects,
            relations=relations, depth_source=detections.depth_source,
            depth_metric=detections.depth_metric, has_camera_info=detections.has_camera_info,
            notes=notes, processing_latency=latency,
            intrinsics_assumed=detections.intrinsics_assumed)

    def candidate_pairs(self, objects: list[SceneObject], salience: np.ndarray, width: int,
                        height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs to relate (i < j) and their Gaussian k-NN edge weights.

        k-NN in 3D (metres) when every object has a metric position, else on box centres in
        image-diagonal units; sigma of the Gaussian = the median k-NN distance of the frame, so
        the weights do not depend on units or image size.
        """
        n = len(objects)
        if n < 2:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        if all(o.position is not None and o.depth_metric for o in objects):
            points = np.array([o.position for o in objects], dtype=np.float64)
        else:
            centres = np.array([o.box.center for o in objects], dtype=np.float64)
            points = centres / max(1.0, math.hypot(width, height))
        k = self.config.knn_k if self.config.knn_k > 0 else n - 1
        i, j, d = knn_pairs(points, k)
        sigma = float(np.median(d)) if len(d) else 1.0
        top = min(self.config.always_relate_top, n)
        if top >= 2:
            best = np.argsort(-salience, kind='stable')[:top]
            ti, tj = np.triu_indices(top, 1)
            extra_i = np.minimum(best[ti], best[tj])
            extra_j = np.maximum(best[ti], best[tj])
            keys = np.unique(np.concatenate([i * n + j, extra_i * n + extra_j]))
            i, j = keys // n, keys % n
            d = np.linalg.norm(points[i] - points[j], axis=1)
        return i, j, gaussian_weights(d, sigma)

    def _relations(self, objects: list[SceneObject], salience: np.ndarray, width: int,
                   height: int) -> list[Relation]:
        i, j, weight = self.candidate_pairs(objects, salience, width, height)
        if len(i) == 0:
            return []
        arrays = ObjectArrays.build(objects, self.knowledge, self.config.relations)
        found = relate(arrays, i, j, self.config.relations)
        rel_salience = relation_salience(found.predicate, found.confidence,
                                         salience[found.subject], salience[found.object],
                                         weight[found.pair])
        # Most salient first; ties in a fixed order (subject id, object id).
        order = np.lexsort((arrays.ids[found.object], arrays.ids[found.subject], -rel_salience))
        # relate() gives at most one fact per family per pair and each pair once, so the list
        # is already free of repeats and contradictions (resolve_conflicts would return it
        # unchanged; the tests check that on random frames).
        return found.to_relations(arrays.ids, rel_salience, order)


