"""Spatial relations between objects, from their 2D boxes (shapely), depth and 3D positions.

All candidate pairs of a frame are evaluated at once with numpy (closed-form box overlaps,
shapely's vectorised distance for gaps), so a frame costs O(pairs), and the scene graph only
passes the k-nearest-neighbour pairs. For each unordered pair at most one fact per family is
produced:

- horizontal: left of / right of        (image plane, viewer's left)
- vertical:   above / below              (image plane; checked in 3D when both are metric)
- depth:      in front of / behind       (only beyond the combined depth uncertainty)
- contact:    inside | on | overlapping | next to | near   (the most specific one that holds;
              "inside" and "on" only where depth confirms the contact; "inside" also for what
              rises out of a container the knowledge says it is found in: flowers in a vase)

so the graph never holds both "A left of B" and "B left of A", and symmetric facts (next to,
near, overlapping) are stated once, subject = the smaller id. `resolve_conflicts` enforces the
same guarantees on any list of relations. docs/scene_graph.md states every rule and constant.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist

import numpy as np

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.scene_graph.geometry import (
    box_intersection_areas, box_polygons, boxes_array, gaps, interval_overlap)
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.params import param
from spatial_caption_ros.core.types import (
    ABOVE, BEHIND, BELOW, CONTAINS, CONVERSE, IN_FRONT_OF, INSIDE, LEFT_OF, NAN, NEAR, NEXT_TO,
    ON, OVERLAPPING, Relation, RIGHT_OF, SceneObject, SYMMETRIC)

# Boxes sharing less than this fraction of the smaller box's area are not "overlapping": detector
# boxes of touching objects typically bleed into each other by a few per cent of their size.
OVERLAP_MIN = 0.05
# "A inside B" needs A's box clearly smaller than B's: two boxes of nearly the same size are the
# same image region seen twice (e.g. a person and the backpack covering them), not containment.
INSIDE_MAX_AREA_RATIO = 0.8
# The supporting surface of B ("A on B") is looked for in the upper half of B's box: the top of a
# table, bed, bench or seat seen from the usual standing viewpoint lies there.
SUPPORT_BAND = 0.5


@dataclass(frozen=True)
class RelationConfig:
    """Thresholds of the spatial relations (part of the scene-graph node's parameters)."""

    direction_margin: float = param(
        0.25, "Left/right/above/below need the box centres apart by more than this fraction of "
        "the two boxes' mean size along that axis, so near-ties are not asserted.",
        minimum=0.0, maximum=5.0)
    inside_min_fraction: float = param(
        0.9, 'Share of A\'s box that must lie within B\'s box for "A inside B" (with depth that '
        'agrees and B able to contain things).', minimum=0.5, maximum=1.0)
    contact_tolerance: float = param(
        0.15, '"A on B": the bottom of A may sit this fraction of A\'s height above the top of '
        'B (box edges are only accurate to a few per cent).', minimum=0.0, maximum=1.0)
    next_to_max_gap: float = param(
        0.25, '"next to": largest gap between the two objects, as a fraction of their mean size '
        '(3D extents in metres when both are metric, else box sides in pixels).',
        minimum=0.0, maximum=5.0)
    near_max_gap: float = param(
        1.0, '"near": largest gap, as a fraction of the two objects\' mean size.',
        minimum=0.0, maximum=20.0)
    order_confidence: float = param(
        0.97, "In front of / behind is asserted only when, with the objects' stated (calibrated) "
        'depth uncertainties, the probability that the order is right is at least this: the '
        'log-depth gap ln(z_b / z_a) must exceed Phi^-1(order_confidence) standard deviations '
        'sqrt((sigma_a/z_a)^2 + (sigma_b/z_b)^2) (0.97: 1.88).', minimum=0.5, maximum=0.9999)
    depth_sigma_multiple: float = param(
        1.0, 'Margin of the 3D consistency checks, in combined standard deviations: above/below '
        'between metric objects needs their height difference beyond it, "on"/"inside" allow a '
        'depth gap up to the reach plus it. (In front of / behind: order_confidence.)',
        minimum=0.0, maximum=10.0)
    depth_default_rel_uncertainty: float = param(
        0.1, 'Relative depth uncertainty (1 sigma) assumed for objects whose depth source gives '
        'none.', minimum=0.0, maximum=1.0)

    def validate(self) -> None:
        """Cross-parameter checks."""
        if self.near_max_gap < self.next_to_max_gap:
            raise ConfigError('near_max_gap must be at least next_to_max_gap')


@dataclass
class ObjectArrays:
    """Per-object columns of one frame that the relation rules read (built once per frame)."""

    ids: np.ndarray            # (N,) int64 object ids
    boxes: np.ndarray          # (N, 4) x_min, y_min, x_max, y_max
    polygons: np.ndarray       # (N,) shapely boxes
    depth: np.ndarray          # (N,) NaN = unknown
    sigma: np.ndarray          # (N,) 1-sigma depth uncertainty (defaulted where missing)
    metric: np.ndarray         # (N,) bool: depth in metres
    position: np.ndarray       # (N, 3) camera optical frame, NaN rows = none
    radius: np.ndarray         # (N,) half the larger metric extent, NaN = unknown
    height_m: np.ndarray       # (N,) metric height, NaN = unknown
    reach: np.ndarray          # (N,) half the larger horizontal size (prior, else measured), m
    supports: np.ndarray       # (N,) bool: things can be on it (knowledge)
    contains: np.ndarray       # (N,) bool: things can be inside it (knowledge)
    class_names: tuple[str, ...] = ()
    knowledge: KnowledgeBase | None = None

    @classmethod
    def build(cls, objects: Sequence[SceneObject], knowledge: KnowledgeBase | None,
              config: RelationConfig) -> ObjectArrays:
        n = len(objects)
        boxes = boxes_array(objects)
        depth = np.array([o.depth for o in objects], dtype=np.float64).reshape(n)
        sigma = np.array([o.depth_uncertainty for o in objects], dtype=np.float64).reshape(n)
        missing = ~np.isfinite(sigma) | (sigma < 0)
        sigma[missing] = np.abs(depth[missing]) * config.depth_default_rel_uncertainty
        position = np.full((n, 3), NAN)
        radius = np.full(n, NAN)
        height_m = np.full(n, NAN)
        reach = np.full(n, NAN)
        supports = np.zeros(n, dtype=bool)
        contains = np.zeros(n, dtype=bool)
        for k, o in enumerate(objects):
            if o.position is not None and o.depth_metric:
                position[k] = o.position
                sides = [v for v in (o.metric_width, o.metric_height) if math.isfinite(v)]
                radius[k] = 0.5 * max(sides) if sides else NAN
                height_m[k] = o.metric_height
                reach[k] = radius[k]
            if knowledge is not None:
                supports[k] = knowledge.affords(o.class_name, 'support')
                contains[k] = knowledge.affords(o.class_name, 'contain')
                prior = knowledge.size_prior(o.class_name)
                if prior is not None:
                    reach[k] = 0.5 * max(prior.width, prior.length)
        metric = np.array([bool(o.depth_metric) for o in objects], dtype=bool).reshape(n)
        return cls(ids=np.array([o.id for o in objects], dtype=np.int64).reshape(n),
                   boxes=boxes, polygons=box_polygons(boxes), depth=depth, sigma=sigma,
                   metric=metric & np.isfinite(depth), position=position, radius=radius,
                   height_m=height_m, reach=reach, supports=supports, contains=contains,
                   class_names=tuple(o.class_name for o in objects), knowledge=knowledge)


@dataclass
class PairRelations:
    """Relations found for candidate pairs, as parallel arrays (indices into ObjectArrays)."""

    subject: np.ndarray     # object index
    predicate: np.ndarray   # str
    object: np.ndarray      # object index
    confidence: np.ndarray
    distance: np.ndarray    # metres between 3D centres, NaN unless both metric
    pair: np.ndarray        # index of the candidate pair

    def __len__(self) -> int:
        return len(self.subject)

    def to_relations(self, ids: np.ndarray, salience: np.ndarray | None = None,
                     order: np.ndarray | None = None) -> list[Relation]:
        """Relation objects (object ids, not indices), in `order` when given."""
        sal = salience if salience is not None else np.zeros(len(self))
        idx = order if order is not None else slice(None)
        columns = (ids[self.subject[idx]].tolist(), self.predicate[idx].tolist(),
                   ids[self.object[idx]].tolist(), self.distance[idx].tolist(),
                   self.confidence[idx].tolist(), np.asarray(sal)[idx].tolist())
        return list(map(Relation, *columns))


def order_sigma_multiple(confidence: float) -> float:
    """Standard deviations a depth gap must exceed for its order to be right with `confidence`.

    With honest Gaussian errors of the gap (order_gap), the order of a pair estimated g
    standard deviations apart is wrong with probability Phi(-g): P(right) >= c exactly when
    g > Phi^-1(c). Correlated errors of two objects of one frame would change the gap's
    variance by -2 rho sigma_a sigma_b. Measured on the dev data (make eval, `order_tradeoff`):
    the size-based errors are not linked (0.01 TUM, -0.08 KITTI); the surface cue links them
    positively (0.2 TUM: objects share the surface height), which makes the gap's variance
    smaller than the sum, so taking the sum errs on the safe side and nothing is subtracted.
    """
    return _NORMAL.inv_cdf(confidence)


def order_gap(z_a, sigma_a, z_b, sigma_b):
    """Depth gap of b behind a in standard deviations (> 0: a is nearer), in log depth.

    Depth from box size is a ratio (z = f H / h: a wrong size prior or a wrong class scale it),
    so its error is multiplicative and its stated sigma relative: ln z has the standard
    deviation sigma / z. In log depth a near object with a large relative sigma (a 0.3 m
    "cell phone" that is a monitor 1 m away) is not certain to be in front of one 1.2 m away,
    which the linear gap over sqrt(sigma_a^2 + sigma_b^2) would assert at 2.2 sigma. NaN when a
    depth is not positive; +-inf for exact depths (sigma 0).
    """
    with np.errstate(divide='ignore', invalid='ignore'):
        za, zb = np.asarray(z_a, dtype=float), np.asarray(z_b, dtype=float)
        positive = (za > 0) & (zb > 0)
        ratio = np.log(np.where(positive, zb, np.nan) / np.where(positive, za, np.nan))
        return ratio / np.hypot(np.asarray(sigma_a) / za, np.asarray(sigma_b) / zb)


_NORMAL = NormalDist()


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(x / math.sqrt(2.0)))


def _ramp(value: np.ndarray, start: float, full: float) -> np.ndarray:
    """Confidence 0.5 at `start` rising linearly to 1.0 at `full` (1.0 if full <= start)."""
    if full <= start:
        return np.ones_like(value)
    return 0.5 + 0.5 * np.clip((value - start) / (full - start), 0.0, 1.0)


def relate(arrays: ObjectArrays, i: np.ndarray, j: np.ndarray,
           config: RelationConfig) -> PairRelations:
    """Every relation between the candidate pairs (i[k], j[k]), i[k] != j[k]."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    out: list[tuple[np.ndarray, ...]] = []
    if len(i) == 0:
        return _collect(out, np.zeros(0))
    a, b = arrays.boxes[i], arrays.boxes[j]
    wa, ha = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    wb, hb = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    area_a, area_b = wa * ha, wb * hb
    with np.errstate(divide='ignore', invalid='ignore'):
        inter = box_intersection_areas(arrays.boxes, i, j)
        frac_a = np.where(area_a > 0, inter / area_a, 0.0)     # share of A inside B
        frac_b = np.where(area_b > 0, inter / area_b, 0.0)
        overlap = np.maximum(frac_a, frac_b)                    # = inter / smaller area

        # 3D: depth order and metric distance ------------------------------------------
        both_depth = np.isfinite(arrays.depth[i]) & np.isfinite(arrays.depth[j]) & (
            arrays.metric[i] == arrays.metric[j])
        dz = arrays.depth[j] - arrays.depth[i]                  # > 0: i is nearer
        gap = order_gap(arrays.depth[i], arrays.sigma[i], arrays.depth[j], arrays.sigma[j])
        separated = both_depth & (np.abs(np.nan_to_num(gap)) > order_sigma_multiple(
            config.order_confidence)) & (dz != 0)
        pa, pb = arrays.position[i], arrays.position[j]
        both_metric = np.isfinite(pa).all(axis=1) & np.isfinite(pb).all(axis=1)
        distance = np.where(both_metric, np.linalg.norm(pb - pa, axis=1), NAN)
        k = np.flatnonzero(separated)
        if len(k):
            # probability that the order is right (1.0 for exact depths)
            out.append((k, i[k], np.where(dz[k] > 0, IN_FRONT_OF, BEHIND), j[k],
                        _normal_cdf(np.minimum(np.abs(gap[k]), 40.0))))

        # horizontal and vertical order ---------------------------------------------------
        for lo, hi, first, second in ((0, 2, LEFT_OF, RIGHT_OF), (1, 3, ABOVE, BELOW)):
            mean_size = 0.5 * ((a[:, hi] - a[:, lo]) + (b[:, hi] - b[:, lo]))
            delta = 0.5 * (b[:, lo] + b[:, hi]) - 0.5 * (a[:, lo] + a[:, hi])
            sep = np.where(mean_size > 0, np.abs(delta) / mean_size, 0.0)
            nested = ((a[:, lo] >= b[:, lo]) & (a[:, hi] <= b[:, hi])) | (
                (b[:, lo] >= a[:, lo]) & (b[:, hi] <= a[:, hi]))
            asserted = (mean_size > 0) & (sep > config.direction_margin) & ~nested
            if first == ABOVE:
                asserted &= _vertical_agrees_in_3d(arrays, i, j, delta, both_metric, config)
            k = np.flatnonzero(asserted)
            if len(k):
                out.append((k, i[k], np.where(delta[k] > 0, first, second), j[k],
                            _ramp(sep[k], config.direction_margin, 1.0)))

        # contact family: inside > on > overlapping > next to > near ---------------------
        claimed = np.zeros(len(i), dtype=bool)
        for inner, outer, frac, area_in, area_out in ((i, j, frac_a, area_a, area_b),
                                                      (j, i, frac_b, area_b, area_a)):
            ok = (frac >= config.inside_min_fraction) & (
                area_in <= INSIDE_MAX_AREA_RATIO * area_out) & arrays.contains[outer] & ~claimed
            ok &= _contact_depth_agrees(arrays, inner, outer, both_depth, separated, config)
            k = np.flatnonzero(ok)
            if len(k):
                claimed[k] = True
                out.append((k, inner[k], np.full(len(k), INSIDE), outer[k], frac[k]))
        # A rising out of container B (in), then A resting on B (on); depth must allow contact
        for rule, predicate in ((_rises_out_of, INSIDE), (_on, ON)):
            for a_idx, b_idx in ((i, j), (j, i)):
                ok, conf = rule(arrays, a_idx, b_idx, config)
                ok &= ~claimed & _contact_depth_agrees(arrays, a_idx, b_idx, both_depth,
                                                       separated, config)
                k = np.flatnonzero(ok)
                if len(k):
                    claimed[k] = True
                    out.append((k, a_idx[k], np.full(len(k), predicate), b_idx[k], conf[k]))
        ok = (overlap >= OVERLAP_MIN) & ~claimed
        k = np.flatnonzero(ok)
        if len(k):
            claimed[k] = True
            s, o = _symmetric(arrays, i[k], j[k])
            out.append((k, s, OVERLAPPING, o, _ramp(overlap[k], OVERLAP_MIN, 2.0 * OVERLAP_MIN)))
        gap, in_3d = _normalised_gap(arrays, i, j, area_a, area_b, both_metric, distance)
        side_by_side = interval_overlap(a[:, 1], a[:, 3], b[:, 1], b[:, 3]) > 0
        next_to = (gap <= config.next_to_max_gap) & ~claimed & (side_by_side | in_3d)
        near = (gap <= config.near_max_gap) & ~claimed & ~next_to
        for mask, predicate, limit in ((next_to, NEXT_TO, config.next_to_max_gap),
                                       (near, NEAR, config.near_max_gap)):
            k = np.flatnonzero(mask)
            if len(k):
                conf = 1.0 - 0.5 * np.clip(gap[k] / limit, 0.0, 1.0) if limit > 0 else \
                    np.ones(len(k))
                s, o = _symmetric(arrays, i[k], j[k])
                out.append((k, s, predicate, o, conf))
    return _collect(out, distance)


def _symmetric(arrays: ObjectArrays, i: np.ndarray, j: np.ndarray):
    """(subject, object) of a symmetric fact: the smaller id is the subject."""
    swap = arrays.ids[i] > arrays.ids[j]
    return np.where(swap, j, i), np.where(swap, i, j)


def _collect(parts: list[tuple], distance: np.ndarray) -> PairRelations:
    rows = [(k, s, np.full(len(k), p) if isinstance(p, str) else p, o, c)
            for k, s, p, o, c in parts]
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return PairRelations(empty, np.zeros(0, dtype=object), empty, np.zeros(0), np.zeros(0),
                             empty)
    k = np.concatenate([r[0] for r in rows])
    return PairRelations(
        subject=np.concatenate([r[1] for r in rows]),
        predicate=np.concatenate([np.asarray(r[2], dtype=object) for r in rows]),
        object=np.concatenate([r[3] for r in rows]),
        confidence=np.clip(np.concatenate([np.asarray(r[4], dtype=float) for r in rows]),
                           0.0, 1.0),
        distance=distance[k], pair=k)


def _vertical_agrees_in_3d(arrays: ObjectArrays, i, j, delta_2d, both_metric,
                           config: RelationConfig) -> np.ndarray:
    """Above/below also hold in 3D when both positions are metric (else: image plane only).

    A far object appears higher in the image than a near one on the same floor; with metric
    positions the camera-frame heights (y down) must differ in the same direction by the same
    margin of the mean metric height plus `depth_sigma_multiple` times their combined
    uncertainty, so that is not called "above". A height y = (v - cy) z / fy inherits the depth's
    relative error: sigma_y = |y| sigma_z / z.
    """
    ok = np.ones(len(i), dtype=bool)
    if not both_metric.any():
        return ok
    y_a, y_b = arrays.position[i, 1], arrays.position[j, 1]
    h_mean = 0.5 * (arrays.height_m[i] + arrays.height_m[j])
    dy = y_b - y_a                                   # > 0: A is higher (y points down)
    with np.errstate(divide='ignore', invalid='ignore'):
        sigma_y = np.hypot(np.abs(y_a) * arrays.sigma[i] / arrays.depth[i],
                           np.abs(y_b) * arrays.sigma[j] / arrays.depth[j])
    sigma_y = np.nan_to_num(sigma_y, nan=0.0, posinf=0.0)
    known = both_metric & np.isfinite(h_mean)
    agrees = (np.sign(dy) == np.sign(delta_2d)) & (np.abs(dy) > config.direction_margin * h_mean
                                                   + config.depth_sigma_multiple * sigma_y)
    ok[known] = agrees[known]
    return ok


def _contact_depth_agrees(arrays: ObjectArrays, a, b, both_depth, separated,
                          config: RelationConfig) -> np.ndarray:
    """Depth allows contact between a and b ("a inside b", "a on b"); unknown depth does not.

    In the image alone an object standing behind b and hidden by it in part has the same box
    geometry as one resting on or inside it; only depth tells them apart. Metric: a's depth lies
    within b's reach (half its larger horizontal size) plus the combined uncertainty. Relative
    depth: the two are not separated in depth (no in front of / behind between them).
    """
    dz = np.abs(arrays.depth[a] - arrays.depth[b])
    sig = np.hypot(arrays.sigma[a], arrays.sigma[b])
    reach = np.nan_to_num(arrays.reach[b], nan=0.0)
    metric_ok = dz <= reach + config.depth_sigma_multiple * sig
    metric = arrays.metric[a] & arrays.metric[b]
    return both_depth & np.where(metric, metric_ok, ~separated)


def _on(arrays: ObjectArrays, top, bottom, config: RelationConfig):
    """Image part of 'top on bottom': the bottom edge of A rests on the upper part of B.

    The bottom edge of A lies from `contact_tolerance` x A's height above B's top edge down to
    SUPPORT_BAND of B's height below it; A reaches above B's top edge; the middle of A's bottom
    edge is over B; B can support things. Returns (holds, confidence); the confidence is 1.0
    when A's bottom is exactly on B's top edge and 0.5 at the ends of the contact band.
    """
    a, b = arrays.boxes[top], arrays.boxes[bottom]
    ha, hb = a[:, 3] - a[:, 1], b[:, 3] - b[:, 1]
    tolerance = config.contact_tolerance * ha
    contact = (a[:, 3] >= b[:, 1] - tolerance) & (a[:, 3] <= b[:, 1] + SUPPORT_BAND * hb)
    foot_x = 0.5 * (a[:, 0] + a[:, 2])
    ok = contact & (a[:, 1] < b[:, 1]) & (foot_x >= b[:, 0]) & (foot_x <= b[:, 2]) & (
        ha > 0) & (hb > 0) & arrays.supports[bottom]
    with np.errstate(divide='ignore', invalid='ignore'):
        span = np.where(a[:, 3] < b[:, 1], tolerance, SUPPORT_BAND * hb)
        off = np.abs(a[:, 3] - b[:, 1])
        conf = 1.0 - 0.5 * np.clip(np.where(span > 0, off / span, 0.0), 0.0, 1.0)
    return ok, conf


def _rises_out_of(arrays: ObjectArrays, inner, outer, config: RelationConfig):
    """Image and knowledge part of "A in B" for what sticks out of a container.

    Flowers in a vase, fruit in a bowl: A's box reaches above B's, but A's bottom edge lies
    within B's box (from `contact_tolerance` x A's height above B's top edge down to B's bottom
    edge, give or take `contact_tolerance` x B's height: a "potted plant" box often takes in
    its pot or vase, so both boxes end at the same line), the middle of A's bottom edge is
    over B, B can contain things, and the knowledge says A is found in B (an AtLocation fact
    naming B's class: potted plant -> vase, apple -> fruit bowl). The depth check is the
    caller's. Returns (holds, confidence): 1.0 when A's bottom edge is at B's top edge (the
    rim), 0.5 at B's bottom edge.
    """
    a, b = arrays.boxes[inner], arrays.boxes[outer]
    ha, hb = a[:, 3] - a[:, 1], b[:, 3] - b[:, 1]
    foot_x = 0.5 * (a[:, 0] + a[:, 2])
    ok = ((a[:, 3] >= b[:, 1] - config.contact_tolerance * ha)
          & (a[:, 3] <= b[:, 3] + config.contact_tolerance * hb)
          & (a[:, 1] < b[:, 1]) & (foot_x >= b[:, 0]) & (foot_x <= b[:, 2]) & (ha > 0)
          & (hb > 0) & arrays.contains[outer])
    if arrays.knowledge is not None:
        for k in np.flatnonzero(ok):
            ok[k] = arrays.knowledge.found_in(arrays.class_names[inner[k]],
                                              arrays.class_names[outer[k]])
    else:
        ok[:] = False
    with np.errstate(divide='ignore', invalid='ignore'):
        conf = 1.0 - 0.5 * np.clip(np.where(hb > 0, np.abs(a[:, 3] - b[:, 1]) / hb, 0.0),
                                   0.0, 1.0)
    return ok, conf


def _normalised_gap(arrays: ObjectArrays, i, j, area_a, area_b, both_metric,
                    distance) -> tuple[np.ndarray, np.ndarray]:
    """Gap between two objects / their mean size, and whether it was measured in 3D.

    Metric: (centre distance - both radii) / mean extent, radius = half the larger metric side.
    Image: shapely's box-to-box distance / mean box side (square root of the area).
    """
    with np.errstate(divide='ignore', invalid='ignore'):
        side = 0.5 * (np.sqrt(area_a) + np.sqrt(area_b))
        gap_2d = np.where(side > 0, gaps(arrays.polygons, i, j) / side, np.inf)
        ra, rb = arrays.radius[i], arrays.radius[j]
        metric_ok = both_metric & np.isfinite(ra) & np.isfinite(rb) & (ra + rb > 0)
        gap_3d = np.maximum(distance - ra - rb, 0.0) / (ra + rb)
    return np.where(metric_ok, gap_3d, gap_2d), metric_ok

# ---------------------------------------------------------------- one pair, conflicts


def relate_pair(a: SceneObject, b: SceneObject, config: RelationConfig | None = None,
                knowledge: KnowledgeBase | None = None) -> list[Relation]:
    """All relations between two objects (the same rules as for a whole frame)."""
    config = config or RelationConfig()
    arrays = ObjectArrays.build([a, b], knowledge, config)
    found = relate(arrays, np.array([0]), np.array([1]), config)
    return found.to_relations(arrays.ids)


# Family and orientation of each ordered predicate: two facts about one pair in the same family
# with opposite orientation contradict each other ("on" says the subject is the upper one).
_FAMILY = {
    LEFT_OF: ('horizontal', 1), RIGHT_OF: ('horizontal', -1),
    ABOVE: ('vertical', 1), BELOW: ('vertical', -1), ON: ('vertical', 1),
    IN_FRONT_OF: ('depth', 1), BEHIND: ('depth', -1),
    INSIDE: ('containment', 1), CONTAINS: ('containment', -1),
}


def canonical(rel: Relation) -> tuple[int, str, int]:
    """One spelling per fact: symmetric facts smaller id first, converse pairs merged."""
    s, p, o = rel.subject_id, rel.predicate, rel.object_id
    if p in SYMMETRIC:
        return (min(s, o), p, max(s, o))
    if p in CONVERSE and s > o:
        return (o, CONVERSE[p], s)
    return (s, p, o)


def resolve_conflicts(relations: Iterable[Relation]) -> list[Relation]:
    """Drop self-relations, repeated facts and contradictions from a list of relations.

    A fact stated twice (also as its converse, or a symmetric fact in both directions) is kept
    once, the more confident statement. When two facts of one pair contradict each other (same
    family, opposite orientation), the more confident one stays; on a tie both go, since there
    is nothing to choose by.
    """
    best: dict[tuple[int, str, int], Relation] = {}
    for rel in relations:
        if rel.subject_id == rel.object_id:
            continue
        key = canonical(rel)
        if key not in best or rel.confidence > best[key].confidence:
            best[key] = rel
    by_family: dict[tuple[int, int, str], list[tuple[int, Relation]]] = {}
    for rel in best.values():
        if rel.predicate not in _FAMILY:
            continue
        family, sign = _FAMILY[rel.predicate]
        lo, hi = sorted((rel.subject_id, rel.object_id))
        orientation = sign if rel.subject_id == lo else -sign
        by_family.setdefault((lo, hi, family), []).append((orientation, rel))
    dropped: set[int] = set()
    for claims in by_family.values():
        if len({o for o, _ in claims}) < 2:
            continue
        top = {o: max(r.confidence for oo, r in claims if oo == o) for o in (1, -1)}
        if top[1] == top[-1]:
            dropped.update(id(r) for _, r in claims)
        else:
            loser = 1 if top[1] < top[-1] else -1
            dropped.update(id(r) for o, r in claims if o == loser)
    return [r for r in best.values() if id(r) not in dropped]
