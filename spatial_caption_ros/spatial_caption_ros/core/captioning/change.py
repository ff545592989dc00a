"""Decide whether the scene changed enough to be worth a new caption (only_on_change).

Changed when: the class counts differ; the set of (subject class, predicate, object class)
relations differs; or an object moved, i.e. matched to the nearest object of its class in the
previous graph, its box centre moved by more than `threshold` times the image diagonal.
"""

from __future__ import annotations

from collections import Counter
import math

from spatial_caption_ros.core.types import SceneGraph


def relation_signature(graph: SceneGraph) -> Counter:
    by_id = {o.id: o.class_name for o in graph.objects}
    return Counter((by_id.get(r.subject_id), r.predicate, by_id.get(r.object_id))
                   for r in graph.relations)


def scene_change(previous: SceneGraph | None, current: SceneGraph, threshold: float) -> str:
    """Why the scene changed ('first', 'counts', 'relations', 'positions'), or '' if it did not."""
    if previous is None:
        return 'first'
    if Counter(o.class_name for o in previous.objects) != Counter(
            o.class_name for o in current.objects):
        return 'counts'
    if relation_signature(previous) != relation_signature(current):
        return 'relations'
    diagonal = math.hypot(current.image_width, current.image_height) or 1.0
    unmatched = list(previous.objects)
    for obj in current.objects:
        same = [p for p in unmatched if p.class_name == obj.class_name]
        if not same:
            return 'counts'
        cx, cy = obj.box.center
        match = min(same, key=lambda p: math.dist(p.box.center, (cx, cy)))
        unmatched.remove(match)
        if math.dist(match.box.center, (cx, cy)) > threshold * diagonal:
            return 'positions'
    return ''
