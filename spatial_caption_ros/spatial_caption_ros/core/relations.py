"""Spatial relations between pairs of objects, from their 2D boxes (shapely) and depth.

Directional relations are asserted only when the separation clearly exceeds a margin, so that
near-ties are left unsaid rather than guessed.
"""

from __future__ import annotations

from shapely.geometry import box as shapely_box

from spatial_caption_ros.core.types import (
    ABOVE, BELOW, LEFT_OF, OVERLAPPING, Relation, RIGHT_OF, SceneObject)


def directional_relations(a: SceneObject, b: SceneObject, margin: float) -> list[Relation]:
    """Left of / right of / above / below of a relative to b (at most one per axis).

    The box centres must be apart by more than `margin` times the two boxes' mean size along
    that axis; the confidence grows with the separation.
    """
    out = []
    (ax, ay), (bx, by) = a.box.center, b.box.center
    mean_w = 0.5 * (a.box.width + b.box.width)
    mean_h = 0.5 * (a.box.height + b.box.height)
    dx, dy = bx - ax, by - ay
    if mean_w > 0 and abs(dx) > margin * mean_w:
        confidence = min(1.0, abs(dx) / (mean_w * (margin + 1.0)))
        out.append(Relation(a.id, LEFT_OF if dx > 0 else RIGHT_OF, b.id, confidence=confidence))
    if mean_h > 0 and abs(dy) > margin * mean_h:
        confidence = min(1.0, abs(dy) / (mean_h * (margin + 1.0)))
        out.append(Relation(a.id, ABOVE if dy > 0 else BELOW, b.id, confidence=confidence))
    return out


def overlap_relation(a: SceneObject, b: SceneObject) -> Relation | None:
    """'overlapping' (stated once, symmetric) when the boxes share area."""
    pa = shapely_box(*a.box.as_tuple())
    pb = shapely_box(*b.box.as_tuple())
    inter = pa.intersection(pb).area
    if inter <= 0.0:
        return None
    confidence = inter / min(pa.area, pb.area) if min(pa.area, pb.area) > 0 else 0.0
    return Relation(min(a.id, b.id), OVERLAPPING, max(a.id, b.id), confidence=confidence)


def pairwise_relations(objects: list[SceneObject], margin: float) -> list[Relation]:
    """Relations of every unordered pair, each fact stated in one direction only."""
    out: list[Relation] = []
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            out.extend(directional_relations(a, b, margin))
            rel = overlap_relation(a, b)
            if rel is not None:
                out.append(rel)
    return out
