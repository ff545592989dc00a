"""Truth conditions of caption statements against a scene graph.

The planner states only facts these functions accept, and the verifier checks every parsed claim
with them, so "what may be said" and "what is checked" cannot drift apart. Tolerances:
- distances: |said - graph| <= max(DISTANCE_ABS_TOL_M, DISTANCE_REL_TOL * graph), which covers the
  rounding of format_distance (0.05 m below 10 m, 0.5 m above) and nothing more than 10 %;
- "nearest": the nearest object's depth must be smaller than the next one's by more than their
  combined uncertainty (one standard deviation each, added in quadrature), and by at least
  NEAREST_MIN_GAP of its depth when the graph gives no uncertainty.
"""

from __future__ import annotations

import math

from spatial_caption_ros.core.captioning.language import ENTAILED_BY, region_matches
from spatial_caption_ros.core.types import CONVERSE, Relation, SceneGraph, SceneObject, SYMMETRIC

DISTANCE_ABS_TOL_M = 0.1
DISTANCE_REL_TOL = 0.10
NEAREST_MIN_GAP = 0.05


def distance_agrees(said: float, graph_value: float) -> bool:
    """A stated distance agrees with the graph's within the stated tolerance."""
    if not (math.isfinite(said) and math.isfinite(graph_value)):
        return False
    return abs(said - graph_value) <= max(DISTANCE_ABS_TOL_M, DISTANCE_REL_TOL * graph_value)


class GraphIndex:
    """Fast look-ups over one scene graph: relations by pair, objects by class."""

    def __init__(self, graph: SceneGraph) -> None:
        self.graph = graph
        self.by_id = {o.id: o for o in graph.objects}
        self.by_class: dict[str, list[SceneObject]] = {}
        for obj in graph.objects:
            self.by_class.setdefault(obj.class_name, []).append(obj)
        self.pairs: dict[tuple[int, int], list[Relation]] = {}
        for rel in graph.relations:
            self.pairs.setdefault((rel.subject_id, rel.object_id), []).append(rel)

    def count(self, class_name: str) -> int:
        return len(self.by_class.get(class_name, []))

    def holds(self, subject: int, predicate: str, obj: int) -> bool:
        """The graph states `subject predicate obj` (directly, as its converse, or implied)."""
        if subject == obj:
            return False
        for pred in (predicate, *ENTAILED_BY.get(predicate, ())):
            if any(r.predicate == pred for r in self.pairs.get((subject, obj), ())):
                return True
            back = pred if pred in SYMMETRIC else CONVERSE.get(pred)
            if back and any(r.predicate == back for r in self.pairs.get((obj, subject), ())):
                return True
        return False

    def pair_distance(self, a: int, b: int) -> float:
        """Metric distance between two objects from the graph (relation or 3D positions)."""
        for key in ((a, b), (b, a)):
            for rel in self.pairs.get(key, ()):
                if math.isfinite(rel.distance):
                    return rel.distance
        oa, ob = self.by_id.get(a), self.by_id.get(b)
        if (oa is not None and ob is not None and oa.position is not None
                and ob.position is not None and oa.depth_metric and ob.depth_metric):
            return math.dist(oa.position, ob.position)
        return math.nan

    def camera_distance(self, obj_id: int) -> float:
        obj = self.by_id.get(obj_id)
        if obj is None or not obj.depth_metric:
            return math.nan
        return obj.distance

    def in_region(self, obj_id: int, cell: tuple[int | None, int | None]) -> bool:
        obj = self.by_id.get(obj_id)
        return obj is not None and region_matches(obj.region, cell)


def nearest(objects: list[SceneObject]) -> SceneObject | None:
    """The clearly nearest of `objects` (by depth), or None when depth is missing or tied."""
    if not objects or any(not math.isfinite(o.depth) for o in objects):
        return None
    ordered = sorted(objects, key=lambda o: o.depth)
    if len(ordered) == 1:
        return ordered[0]
    first, second = ordered[0], ordered[1]
    u1 = first.depth_uncertainty if math.isfinite(first.depth_uncertainty) else 0.0
    u2 = second.depth_uncertainty if math.isfinite(second.depth_uncertainty) else 0.0
    gap = max(math.hypot(u1, u2), NEAREST_MIN_GAP * abs(first.depth))
    return first if second.depth - first.depth > gap else None
