"""Checks of detections and scene graphs received from other processes (untrusted input).

A stage never assumes its input came from our own nodes: a graph with a relation to an object
that does not exist, a NaN box or ten thousand objects is refused with a reason
(InvalidInputError), counted by the node, and the node keeps running. All checks are O(number of
objects + relations) and cheap enough for a subscription callback.
"""

from __future__ import annotations

import math

from spatial_caption_ros.core.errors import InvalidInputError
from spatial_caption_ros.core.inputs.image import MAX_SIDE
from spatial_caption_ros.core.types import DetectionResult, PREDICATES, SceneGraph, SceneObject

# More objects than any detector configuration here produces (max_detections is at most 1000):
# a message with more is corrupt or hostile, and relating them would cost O(N*k) anyway.
MAX_OBJECTS = 1000
# Relations per graph: k-NN selection keeps about N*k; allow generous headroom over 1000*5*4.
MAX_RELATIONS = 20000
# Boxes may reach a little outside the image (detectors pad), not arbitrarily far.
BOX_SLACK = 0.5


def check_image_size(width: int, height: int, what: str) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise InvalidInputError(f'{what} has an invalid image size {width}x{height}')


def check_objects(objects: list[SceneObject], width: int, height: int, what: str) -> None:
    """Unique ids, finite ordered boxes near the image, confidences in 0..1, bounded count."""
    check_image_size(width, height, what)
    if len(objects) > MAX_OBJECTS:
        raise InvalidInputError(f'{what} has {len(objects)} objects (limit {MAX_OBJECTS})')
    seen: set[int] = set()
    lo_x, hi_x = -BOX_SLACK * width, (1 + BOX_SLACK) * width
    lo_y, hi_y = -BOX_SLACK * height, (1 + BOX_SLACK) * height
    for o in objects:
        if o.id in seen:
            raise InvalidInputError(f'{what}: object id {o.id} appears twice; ids must be '
                                    'unique within a frame (track ids when tracking)')
        seen.add(o.id)
        b = o.box
        coords = b.as_tuple()
        if not all(math.isfinite(v) for v in coords) or b.x_max < b.x_min or \
                b.y_max < b.y_min:
            raise InvalidInputError(f'{what}: object {o.id} ({o.class_name}) has an invalid box '
                                    f'{tuple(round(v, 1) for v in coords)}')
        if b.x_min < lo_x or b.x_max > hi_x or b.y_min < lo_y or b.y_max > hi_y:
            raise InvalidInputError(f'{what}: object {o.id} box {tuple(round(v) for v in coords)}'
                                    f' lies far outside the {width}x{height} image')
        if not (math.isfinite(o.confidence) and 0.0 <= o.confidence <= 1.0):
            raise InvalidInputError(f'{what}: object {o.id} has confidence {o.confidence}')
        if o.position is not None and not all(math.isfinite(v) for v in o.position):
            raise InvalidInputError(f'{what}: object {o.id} has a non-finite 3D position')
        if o.depth_metric and math.isfinite(o.depth) and o.depth <= 0.0:
            raise InvalidInputError(f'{what}: object {o.id} has metric depth {o.depth} <= 0')


def check_detections(result: DetectionResult) -> None:
    """A DetectionArray usable by the scene-graph stage."""
    check_objects(result.objects, result.image_width, result.image_height, 'detections')


def check_scene_graph(graph: SceneGraph) -> None:
    """A SceneGraph usable by the caption and visualisation stages."""
    check_objects(graph.objects, graph.image_width, graph.image_height, 'scene graph')
    if len(graph.relations) > MAX_RELATIONS:
        raise InvalidInputError(f'scene graph has {len(graph.relations)} relations '
                                f'(limit {MAX_RELATIONS})')
    ids = {o.id for o in graph.objects}
    for r in graph.relations:
        if r.predicate not in PREDICATES:
            shown = r.predicate[:40]
            raise InvalidInputError(f'scene graph: unknown predicate {shown!r}')
        if r.subject_id not in ids or r.object_id not in ids:
            raise InvalidInputError(f'scene graph: relation {r.subject_id} {r.predicate} '
                                    f'{r.object_id} names an object that is not in the graph')
        if r.subject_id == r.object_id:
            raise InvalidInputError(f'scene graph: object {r.subject_id} related to itself')
        if not (math.isfinite(r.confidence) and 0.0 <= r.confidence <= 1.0):
            raise InvalidInputError(f'scene graph: relation confidence {r.confidence}')
        if not (math.isnan(r.distance) or (math.isfinite(r.distance) and r.distance >= 0.0)):
            raise InvalidInputError(f'scene graph: relation distance {r.distance}')
