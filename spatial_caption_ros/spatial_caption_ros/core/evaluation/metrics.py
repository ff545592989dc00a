"""Scoring a scene graph against labels: matching, depth order, distances, 2D relations, VSR.

The rules of what the labels can decide live here, once, for every evaluation (graphs, captions,
depth check): `clear_direction` (clearly left of / above) and `clear_depth_order` (clearly
nearer). Every function works on one image and returns counts, so results add up over a dataset
without averaging averages (except the per-frame Kendall tau, which is per frame by definition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from spatial_caption_ros.core.evaluation.dataset import GroundTruthObject
from spatial_caption_ros.core.evaluation.vsr import VsrStatement
from spatial_caption_ros.core.scene_graph.relations import order_gap, order_sigma_multiple
from spatial_caption_ros.core.types import (
    ABOVE, BEHIND, BELOW, BoundingBox, CONTAINS, CONVERSE, IN_FRONT_OF, INSIDE, LEFT_OF, NEAR,
    NEXT_TO, ON, OVERLAPPING, RIGHT_OF, SceneGraph, SceneObject)

# A detection matches a labelled object when their boxes overlap with IoU >= 0.5 (the PASCAL VOC
# / COCO AP50 criterion) and the detector's class is one the label maps to.
MATCH_IOU = 0.5
# KITTI pairs are scored only when their labelled depths differ by more than 10% of the nearer
# one: closer pairs have no order a person could vouch for (labels are accurate to ~0.1-0.5 m).
DEPTH_ORDER_MIN_REL_DIFF = 0.10
# "Clearly separated" along an axis (COCO ground truth for left/right/above/below): the two
# labelled boxes' projections on that axis overlap by at most this fraction of the shorter
# projection. 0 means the whole of A lies left of the whole of B: every reader agrees whatever
# part of each object they look at; with any overlap the answer depends on where one looks.
CLEAR_SEPARATION_MAX_OVERLAP = 0.0


def clear_depth_order(za: float, zb: float) -> int:
    """+1 when depth za is clearly nearer than zb, -1 when clearly farther, 0 otherwise.

    Clearly: the depths differ by more than DEPTH_ORDER_MIN_REL_DIFF of the nearer one.
    """
    if not abs(za - zb) > DEPTH_ORDER_MIN_REL_DIFF * min(za, zb):
        return 0
    return 1 if za < zb else -1


def sigma_coverage(records: Sequence[tuple[float, float, float]]) -> dict[str, float | None]:
    """Share of (estimate, reference, sigma) whose error is within 1 and 2 sigma.

    Honest normal uncertainties cover about 68 % and 95 %. Records with a NaN are left out.
    """
    known = [(e, r, s) for e, r, s in records
             if math.isfinite(e) and math.isfinite(r) and math.isfinite(s)]
    n = len(known)
    return {'n': n,
            'one': round(sum(abs(e - r) <= s for e, r, s in known) / n, 4) if n else None,
            'two': round(sum(abs(e - r) <= 2.0 * s for e, r, s in known) / n, 4) if n else None}


# Target confidences of the order trade-off table: the multiple of the combined sigma each one
# asks for under honest Gaussian errors (1.0, 1.28, 1.64, 1.88, 2.33 sigma).
ORDER_CONFIDENCES = (0.84, 0.90, 0.95, 0.97, 0.99)


@dataclass(frozen=True)
class OrderRecord:
    """One reference pair clearly apart, as the graph's order rule sees it.

    agreement: the estimated depth gap in standard deviations (relations.order_gap), + when
    the estimate orders the pair as the reference does (so |agreement| > m is "asserted at m
    sigma", and it is right when agreement > 0); linear_agreement: the same with the linear
    gap over sqrt(sigma_a^2 + sigma_b^2) (the rule before the log-depth one, for comparison).
    error_a, error_b: each object's error over its own sigma, (z - reference) / sigma: their
    product over many pairs measures how errors of objects of one frame go together.
    """

    agreement: float
    linear_agreement: float
    error_a: float
    error_b: float


def order_record(za: float, sa: float, ref_a: float, zb: float, sb: float,
                 ref_b: float) -> OrderRecord | None:
    """The pair's OrderRecord, None unless both estimates and sigmas are finite and positive."""
    values = (za, sa, ref_a, zb, sb, ref_b)
    if not all(math.isfinite(v) for v in values) or sa <= 0 or sb <= 0:
        return None
    order = clear_depth_order(ref_a, ref_b)
    if not order:
        return None
    gap = float(order_gap(za, sa, zb, sb)) * order
    if not math.isfinite(gap):
        return None
    return OrderRecord(gap, (zb - za) * order / math.hypot(sa, sb), (za - ref_a) / sa,
                       (zb - ref_b) / sb)


def order_tradeoff(records: Sequence[OrderRecord], pairs: int,
                   confidences: Sequence[float] = ORDER_CONFIDENCES) -> dict[str, Any]:
    """Accuracy and coverage of the order rule at each target confidence, and the error link.

    Per confidence c the rule asserts a pair when its gap exceeds Phi^-1(c) standard deviations
    (relations.order_sigma_multiple): decided, correct, accuracy, coverage of `pairs` (all
    reference pairs clearly apart, as graph_order counts them), for the log-depth gap (the
    rule) and, prefixed linear_, the linear one. `error_correlation`: the mean
    of error_a * error_b over the pairs of one frame, over the mean of the squares (about 0
    when objects err independently, > 0 when one frame's objects err together, which makes
    their order safer than the combined sigma says).
    """
    rows = []
    for c in confidences:
        m = order_sigma_multiple(c)
        row: dict[str, Any] = {'confidence': c, 'sigma_multiple': round(m, 3)}
        for prefix, values in (('', [r.agreement for r in records]),
                               ('linear_', [r.linear_agreement for r in records])):
            decided = [v for v in values if abs(v) > m]
            correct = sum(1 for v in decided if v > 0)
            row.update({prefix + 'decided': len(decided), prefix + 'correct': correct,
                        prefix + 'accuracy': round(correct / len(decided), 4) if decided
                        else None,
                        prefix + 'coverage': round(len(decided) / pairs, 4) if pairs else None})
        rows.append(row)
    squares = sum(0.5 * (r.error_a ** 2 + r.error_b ** 2) for r in records)
    link = sum(r.error_a * r.error_b for r in records)
    return {'pairs_with_estimates': len(records), 'rows': rows,
            'error_correlation': round(link / squares, 4) if squares > 0 else None}


def match_objects(truth: Sequence[GroundTruthObject], objects: Sequence[SceneObject],
                  iou_min: float = MATCH_IOU) -> dict[int, int]:
    """Greedy one-to-one matching, highest IoU first: truth index -> object index."""
    candidates = []
    for t, gt in enumerate(truth):
        for o, obj in enumerate(objects):
            if obj.class_name in gt.classes:
                iou = gt.box.iou(obj.box)
                if iou >= iou_min:
                    candidates.append((iou, t, o))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    matched: dict[int, int] = {}
    used: set[int] = set()
    for _, t, o in candidates:
        if t not in matched and o not in used:
            matched[t] = o
            used.add(o)
    return matched


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b rank correlation (ties handled); NaN with fewer than 2 untied values."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        return math.nan
    i, j = np.triu_indices(n, 1)
    sx, sy = np.sign(x[j] - x[i]), np.sign(y[j] - y[i])
    concordance = float(np.sum(sx * sy))
    n_x, n_y = float(np.sum(sx != 0)), float(np.sum(sy != 0))
    if n_x == 0 or n_y == 0:
        return math.nan
    return concordance / math.sqrt(n_x * n_y)


def relation_index(graph: SceneGraph) -> dict[tuple[int, int], set[str]]:
    """(subject id, object id) -> predicates, with every fact also stored in its converse form."""
    out: dict[tuple[int, int], set[str]] = {}
    for rel in graph.relations:
        out.setdefault((rel.subject_id, rel.object_id), set()).add(rel.predicate)
        back = CONVERSE.get(rel.predicate, rel.predicate if rel.predicate in (
            NEAR, NEXT_TO, OVERLAPPING) else None)
        if back is not None:
            out.setdefault((rel.object_id, rel.subject_id), set()).add(back)
    return out

# ---------------------------------------------------------------- KITTI: depth


@dataclass
class DepthScores:
    """Depth-order and distance counts of one or more KITTI frames."""

    pairs: int = 0                  # labelled pairs whose depths differ by > 10%
    pairs_matched: int = 0          # ... whose two objects were both detected
    graph_decided: int = 0          # ... with in front of / behind between them in the graph
    graph_correct: int = 0
    values_decided: int = 0         # ... where both detections have a depth value
    values_correct: int = 0         # ... and the nearer value is the nearer object
    objects: int = 0
    objects_matched: int = 0
    distance_errors: list[float] = field(default_factory=list)   # |d - d_gt| / d_gt
    depth_errors: list[float] = field(default_factory=list)      # |z - z_gt| / z_gt
    frame_taus: list[float] = field(default_factory=list)
    order_records: list[OrderRecord] = field(default_factory=list)

    def add(self, other: DepthScores) -> None:
        for name in ('pairs', 'pairs_matched', 'graph_decided', 'graph_correct',
                     'values_decided', 'values_correct', 'objects', 'objects_matched'):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.distance_errors += other.distance_errors
        self.depth_errors += other.depth_errors
        self.frame_taus += other.frame_taus
        self.order_records += other.order_records


def score_depth(truth: Sequence[GroundTruthObject], graph: SceneGraph,
                matches: dict[int, int]) -> DepthScores:
    """Depth order (graph relations and raw values), distance errors and Kendall tau."""
    s = DepthScores(objects=len(truth), objects_matched=len(matches))
    index = relation_index(graph)
    objs = graph.objects
    for a, b in itertools.combinations(range(len(truth)), 2):
        order = clear_depth_order(truth[a].depth, truth[b].depth)
        if not order:
            continue
        s.pairs += 1
        if a not in matches or b not in matches:
            continue
        s.pairs_matched += 1
        oa, ob = objs[matches[a]], objs[matches[b]]
        a_nearer = order > 0
        said = index.get((oa.id, ob.id), set())
        if IN_FRONT_OF in said or BEHIND in said:
            s.graph_decided += 1
            s.graph_correct += int((IN_FRONT_OF in said) == a_nearer)
        if oa.depth_metric and ob.depth_metric:
            record = order_record(oa.depth, oa.depth_uncertainty, truth[a].depth, ob.depth,
                                  ob.depth_uncertainty, truth[b].depth)
            if record is not None:
                s.order_records.append(record)
        if math.isfinite(oa.depth) and math.isfinite(ob.depth) and oa.depth != ob.depth:
            s.values_decided += 1
            s.values_correct += int((oa.depth < ob.depth) == a_nearer)
    pred, gt = [], []
    for t, o in matches.items():
        obj = objs[o]
        if math.isfinite(obj.distance) and obj.depth_metric:
            s.distance_errors.append(abs(obj.distance - truth[t].distance) / truth[t].distance)
        if math.isfinite(obj.depth) and obj.depth_metric:
            s.depth_errors.append(abs(obj.depth - truth[t].depth) / truth[t].depth)
        if math.isfinite(obj.depth):
            pred.append(obj.depth)
            gt.append(truth[t].depth)
    tau = kendall_tau_b(pred, gt)
    if math.isfinite(tau):
        s.frame_taus.append(tau)
    return s

# ---------------------------------------------------------------- COCO: 2D relations


# Directional predicates: (axis, +1 when the subject has the smaller coordinate).
_DIRECTIONS = {LEFT_OF: ('x', 1), RIGHT_OF: ('x', -1), ABOVE: ('y', 1), BELOW: ('y', -1)}


def clear_direction(a: BoundingBox, b: BoundingBox, axis: str) -> int:
    """+1 when a is clearly before b along axis (left / above), -1 when after, 0 otherwise."""
    a_lo, a_hi, b_lo, b_hi = ((a.x_min, a.x_max, b.x_min, b.x_max) if axis == 'x' else
                              (a.y_min, a.y_max, b.y_min, b.y_max))
    shorter = max(min(a_hi - a_lo, b_hi - b_lo), 1e-9)
    overlap = min(a_hi, b_hi) - max(a_lo, b_lo)
    if overlap > CLEAR_SEPARATION_MAX_OVERLAP * shorter:
        return 0
    return 1 if a_hi <= b_hi else -1


def centre_direction(a: BoundingBox, b: BoundingBox, axis: str) -> int:
    """Sign of the centre order along axis (+1: a's centre first), 0 on a tie."""
    k = 0 if axis == 'x' else 1
    return int(np.sign(b.center[k] - a.center[k]))


@dataclass
class RelationScores:
    """Left/right/above/below counts of one or more COCO images, per axis ('x', 'y')."""

    predicted: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    on_clear: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    correct: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    on_unclear: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    contradicted: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    unmatched: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    truth_clear: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    truth_clear_matched: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})
    recalled: dict[str, int] = field(default_factory=lambda: {'x': 0, 'y': 0})

    def add(self, other: RelationScores) -> None:
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            for axis in mine:
                mine[axis] += theirs[axis]


def score_directions(truth: Sequence[GroundTruthObject], graph: SceneGraph,
                     matches: dict[int, int]) -> RelationScores:
    """Precision and recall of the graph's left/right/above/below against labelled boxes.

    Precision counts predictions between two matched detections whose labelled boxes are clearly
    separated on that axis; predictions on pairs that are not clearly separated are counted
    apart, with how many of them contradict the labelled centres' order.
    """
    s = RelationScores()
    truth_of = {o: t for t, o in matches.items()}
    id_to_index = {obj.id: k for k, obj in enumerate(graph.objects)}
    said: dict[tuple[int, int, str], int] = {}     # (truth a, truth b, axis), a < b -> sign
    for rel in graph.relations:
        if rel.predicate not in _DIRECTIONS:
            continue
        axis, sign = _DIRECTIONS[rel.predicate]
        s.predicted[axis] += 1
        ta = truth_of.get(id_to_index.get(rel.subject_id, -1))
        tb = truth_of.get(id_to_index.get(rel.object_id, -1))
        if ta is None or tb is None:
            s.unmatched[axis] += 1
            continue
        if ta > tb:
            ta, tb, sign = tb, ta, -sign
        said[(ta, tb, axis)] = sign
        clear = clear_direction(truth[ta].box, truth[tb].box, axis)
        if clear:
            s.on_clear[axis] += 1
            s.correct[axis] += int(clear == sign)
        else:
            s.on_unclear[axis] += 1
            s.contradicted[axis] += int(centre_direction(truth[ta].box, truth[tb].box,
                                                         axis) != sign)
    for a, b in itertools.combinations(range(len(truth)), 2):
        for axis in ('x', 'y'):
            clear = clear_direction(truth[a].box, truth[b].box, axis)
            if not clear:
                continue
            s.truth_clear[axis] += 1
            if a in matches and b in matches:
                s.truth_clear_matched[axis] += 1
                s.recalled[axis] += int(said.get((a, b, axis)) == clear)
    return s

# ---------------------------------------------------------------- VSR


# VSR relation phrases -> graph predicates. Only phrases with one clear meaning in the image or
# in depth; the other VSR relations (touching aside) cannot be decided by this graph.
VSR_PREDICATES = {
    'left of': LEFT_OF, 'at the left side of': LEFT_OF, 'right of': RIGHT_OF,
    'at the right side of': RIGHT_OF, 'above': ABOVE, 'below': BELOW, 'beneath': BELOW,
    'on top of': ON, 'on': ON, 'in front of': IN_FRONT_OF, 'behind': BEHIND, 'inside': INSIDE,
    'contains': CONTAINS, 'next to': NEXT_TO, 'beside': NEXT_TO, 'near': NEAR,
    'close to': NEAR,
}
TOUCHING = 'touching'
# Predicates that are each other's negation when stated about the same ordered pair.
_OPPOSITE = {LEFT_OF: RIGHT_OF, RIGHT_OF: LEFT_OF, ABOVE: BELOW, BELOW: ABOVE,
             IN_FRONT_OF: BEHIND, BEHIND: IN_FRONT_OF, ON: BELOW, INSIDE: CONTAINS,
             CONTAINS: INSIDE}


def pair_verdict(index: dict[tuple[int, int], set[str]], subject_id: int, predicate: str,
                 object_id: int) -> bool | None:
    """True when the graph states the fact, False when it states its opposite, else None.

    Absence of a fact is never taken as its negation (the graph only states what it measured).
    "touching" is true when the graph states contact ("on"); it is never decided false.
    """
    said = index.get((subject_id, object_id), set())
    if predicate == TOUCHING:
        back = index.get((object_id, subject_id), set())
        return True if ON in said or ON in back else None
    if predicate in said:
        return True
    opposite = _OPPOSITE.get(predicate)
    if opposite is not None and opposite in said:
        return False
    if predicate in (ON, INSIDE) and predicate in index.get((object_id, subject_id), set()):
        return False       # "B on A" (or B inside A) denies "A on B"
    return None


def decide_statement(graph: SceneGraph, statement: VsrStatement) -> bool | None:
    """The graph's verdict on a VSR statement, or None when it cannot decide.

    Every detected (subject, object) pair of the two classes must give the same verdict: the
    statement names classes, not instances, so a split verdict is no verdict.
    """
    predicate = VSR_PREDICATES.get(statement.relation)
    if predicate is None and statement.relation != TOUCHING:
        return None
    predicate = predicate or TOUCHING
    subjects = [o for o in graph.objects if o.class_name == statement.subject]
    objects_ = [o for o in graph.objects if o.class_name == statement.object]
    if not subjects or not objects_:
        return None
    index = relation_index(graph)
    verdicts = {pair_verdict(index, s.id, predicate, o.id)
                for s in subjects for o in objects_ if s.id != o.id}
    if len(verdicts) != 1 or None in verdicts:
        return None
    return verdicts.pop()

