"""Truth conditions of caption statements against a scene graph.

The planner states only facts these functions accept, and the verifier checks every parsed claim
with them, so "what may be said" and "what is checked" cannot drift apart. The parsed form of a
claim (`NounPhrase`, `Claim`) is defined here: verify.py reads it from text, `GraphIndex.judge`
decides it. Tolerances:
- distances: exactly the precision the caption states (language.stated): "5.8 m" within its last
  digit, "about 12 m" within 10 %, "8 to 10 m" within the range, "roughly 30 m" within 50 %;
  between two objects, "3 to 6 m behind B" is the gap in depth, "(centres 3 m apart)" the
  distance between the 3D centres;
- counts: "three people" exactly three; "at least three people" three or more; "several
  people" at least three (language.SEVERAL_MIN);
- scene context: "looks like a kitchen" when context.infer_place names that place for the
  graph's classes;
- "nearest": the nearest object's depth must be smaller than the next one's by more than their
  combined uncertainty (one standard deviation each, added in quadrature), and by at least
  NEAREST_MIN_GAP of its depth when the graph gives no uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from spatial_caption_ros.core.captioning.context import default_knowledge, place_supported
from spatial_caption_ros.core.captioning.language import (
    ENTAILED_BY, region_matches, StatedDistance, SYMMETRIC_CLAIMS)
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import CONVERSE, Relation, SceneGraph, SceneObject, SYMMETRIC

NEAREST_MIN_GAP = 0.05
# Robot-frame distances ("12 m ahead, 2 m to the left"): camera optical frame, z ahead, x right.
AHEAD, LEFT, RIGHT = 'ahead', 'left', 'right'


def distance_agrees(said: StatedDistance, metres: float) -> bool:
    """A stated distance holds for `metres` within the precision it states."""
    return said.holds(metres)


@dataclass(frozen=True)
class NounPhrase:
    """A parsed reference to objects: determiner, class, number, grid or depth restriction."""

    mode: str                     # unique | all | exists | exactly | at_least
    class_name: str
    count: int                    # 1 for singular; N for "N Xs" / "at least N Xs"; 0 for "the Xs"
    plural: bool
    exact: bool                   # False: a hyponym ("man" for person)
    cell: tuple[int | None, int | None] | None = None
    nearest: bool = False
    text: str = ''


@dataclass
class Claim:
    """One checkable statement of a clause."""

    kind: str                     # count | place | relation | distance | nearest | scene | empty
    text: str
    subject: NounPhrase | None = None
    predicate: str | None = None
    object: NounPhrase | None = None
    cell: tuple[int | None, int | None] | None = None
    distance: StatedDistance | None = None
    supported: bool = False
    reason: str = ''
    place: str = ''                # scene: "looks like a <place>"
    axis: str = ''                 # distance in the robot frame: ahead | left | right; '' range
    depth_gap: bool = False        # relation: `distance` is the gap in depth ("3 m behind B"),
    #                                else the distance between the centres ("centres 3 m apart")


class GraphIndex:
    """Fast look-ups over one scene graph: relations by pair, objects by class."""

    def __init__(self, graph: SceneGraph, knowledge: KnowledgeBase | None = None) -> None:
        self.graph = graph
        self._knowledge = knowledge
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
        if predicate in SYMMETRIC_CLAIMS:
            return any(self._holds(a, pred, b) for pred in ENTAILED_BY[predicate]
                       for a, b in ((subject, obj), (obj, subject)))
        return self._holds(subject, predicate, obj)

    def _holds(self, subject: int, predicate: str, obj: int) -> bool:
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

    def depth_gap(self, a: int, b: int) -> float:
        """Metres between two objects along the optical axis (their metric depths)."""
        oa, ob = self.by_id.get(a), self.by_id.get(b)
        if oa is None or ob is None or not (oa.depth_metric and ob.depth_metric):
            return math.nan
        return abs(ob.depth - oa.depth)

    def camera_distance(self, obj_id: int, axis: str = '') -> float:
        """Metres from the camera ('' axis), ahead, or to the left / right (nan: other side)."""
        obj = self.by_id.get(obj_id)
        if obj is None or not obj.depth_metric:
            return math.nan
        return axis_distance(obj.distance, obj.position, axis)

    def in_region(self, obj_id: int, cell: tuple[int | None, int | None]) -> bool:
        obj = self.by_id.get(obj_id)
        return obj is not None and region_matches(obj.region, cell)

    # ------------------------------------------------------------ truth of claims

    def referents(self, np: NounPhrase) -> tuple[list[SceneObject], str]:
        """Objects the phrase may refer to, or [] and why not."""
        if not np.exact:
            return [], 'unverifiable_word'
        objs = self.by_class.get(np.class_name, [])
        if not objs:
            return [], 'object_not_in_graph'
        if np.cell is not None:
            objs = [o for o in objs if self.in_region(o.id, np.cell)]
        if np.nearest:
            closest = nearest(objs)
            objs = [closest] if closest is not None else []
            if not objs:
                return [], 'wrong_nearest'
        if np.mode == 'unique' and len(objs) != 1:
            return [], 'ambiguous_reference' if objs else 'wrong_region'
        if np.mode == 'all' and (len(objs) < 2 or (np.count and len(objs) != np.count)):
            return [], 'wrong_count'
        if not objs:
            return [], 'wrong_region'
        return objs, ''

    def judge(self, claim: Claim) -> tuple[bool, str]:
        """(true?, why not: '' when true) of one parsed claim against the graph."""
        ok, why = self._truth(claim)
        return ok, '' if ok else why

    def _truth(self, claim: Claim) -> tuple[bool, str]:
        if claim.kind == 'empty':
            return (not self.graph.objects), 'objects_in_graph'
        if claim.kind == 'scene':
            knowledge = self._knowledge or default_knowledge()
            return place_supported(claim.place, self.by_class, knowledge), 'unsupported_place'
        s = claim.subject
        if claim.kind == 'count':
            if not s.exact:
                return False, 'unverifiable_word'
            objs = self.by_class.get(s.class_name, [])
            if not objs:
                return False, 'object_not_in_graph'
            if s.cell is not None:
                objs = [o for o in objs if self.in_region(o.id, s.cell)]
            if s.mode == 'at_least':
                return len(objs) >= s.count, 'wrong_count'
            return len(objs) == s.count, 'wrong_count'
        subjects, why = self.referents(s)
        if not subjects:
            return False, why
        if claim.kind == 'place':
            hits = sum(self.in_region(o.id, claim.cell) for o in subjects)
            return quantified(s, hits, len(subjects)), 'wrong_region'
        if claim.kind == 'distance':
            if s.mode not in ('unique', 'exists'):
                return False, 'ambiguous_reference'
            actual = [self.camera_distance(o.id, claim.axis) for o in subjects]
            if not any(math.isfinite(a) for a in actual):
                return False, 'wrong_side' if claim.axis in (LEFT, RIGHT) else 'no_metric_distance'
            # "the bus is 12 m away": that bus; "a car is 12 m away": at least one car
            return any(distance_agrees(claim.distance, a) for a in actual), 'wrong_distance'
        if claim.kind == 'nearest':
            closest = nearest(self.graph.objects)
            if closest is None or s.mode not in ('unique', 'exists'):
                return False, 'wrong_nearest'
            if closest.id not in {o.id for o in subjects}:
                return False, 'wrong_nearest'
            if claim.distance is not None:
                actual = self.camera_distance(closest.id)
                if not math.isfinite(actual):
                    return False, 'no_metric_distance'
                return distance_agrees(claim.distance, actual), 'wrong_distance'
            return True, ''
        objects, why = self.referents(claim.object)
        if not objects:
            return False, why
        reasons = set()

        def pair_ok(a: SceneObject, b: SceneObject) -> bool:
            if a.id == b.id:
                return False
            if claim.predicate and not self.holds(a.id, claim.predicate, b.id):
                reasons.add('relation_not_in_graph')
                return False
            if claim.distance is not None:
                actual = (self.depth_gap(a.id, b.id) if claim.depth_gap
                          else self.pair_distance(a.id, b.id))
                if not math.isfinite(actual):
                    reasons.add('no_metric_distance')
                    return False
                if not distance_agrees(claim.distance, actual):
                    reasons.add('wrong_distance')
                    return False
            return True

        def subject_ok(a: SceneObject) -> bool:
            oks = [pair_ok(a, b) for b in objects]
            return all(oks) if claim.object.mode == 'all' else any(oks)

        hits = sum(subject_ok(a) for a in subjects)
        ok = quantified(s, hits, len(subjects))
        for reason in ('no_metric_distance', 'wrong_distance', 'relation_not_in_graph'):
            if reason in reasons:
                return ok, reason
        return ok, 'relation_not_in_graph'


def axis_distance(distance: float, position: tuple | None, axis: str) -> float:
    """The range ('' axis) or a robot-frame part of a camera-frame position.

    nan when the position is unknown or lies on the other side than `axis` says.
    """
    if not axis:
        return distance
    if position is None:
        return math.nan
    x, z = position[0], position[2]
    if axis == AHEAD:
        return z
    if (axis == LEFT and x < 0) or (axis == RIGHT and x > 0):
        return abs(x)
    return math.nan


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


def quantified(np: NounPhrase, hits: int, total: int) -> bool:
    """A quantified phrase holds for `hits` of its `total` referents."""
    if np.mode == 'exists':
        return hits >= 1
    if np.mode == 'exactly':
        return hits == np.count
    return hits == total           # unique (total 1) or all
