"""Salience: how useful an object or a relation is to mention in a caption (0..1).

Object salience follows what predicts which objects people mention when they describe an image
(Berg et al., "Understanding and Predicting Importance in Images", CVPR 2012: size and position
in the frame matter most), plus the detector's confidence and, where depth is known, nearness to
the camera (what a robot most needs to know about). Relation salience combines the salience of
its two objects, the relation's confidence, how specific the predicate is, and the k-NN edge
weight of the pair (close objects relate most strongly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spatial_caption_ros.core.types import (
    ABOVE, BEHIND, BELOW, CONTAINS, IN_FRONT_OF, INSIDE, LEFT_OF, NEAR, NEXT_TO, ON, OVERLAPPING,
    RIGHT_OF, SceneObject)

# Weights of the object terms (sum 1). Size first (the strongest predictor of being mentioned in
# Berg et al. 2012), then confidence (a wrong detection is worse than an unmentioned one), then
# nearness and centrality. Without depth, nearness is left out and the others are rescaled.
OBJECT_WEIGHTS = {'size': 0.35, 'confidence': 0.25, 'nearness': 0.2, 'centrality': 0.2}
# An object whose box covers this fraction of the image gets the full size term; the term grows
# with the square root of the area (the object's linear size in the image).
SIZE_SATURATION = 0.25
# How informative each predicate is when cited: contact and depth facts say more than "near".
PREDICATE_INFORMATIVENESS = {
    ON: 1.0, INSIDE: 1.0, CONTAINS: 1.0, IN_FRONT_OF: 0.9, BEHIND: 0.9, NEXT_TO: 0.85,
    LEFT_OF: 0.8, RIGHT_OF: 0.8, ABOVE: 0.8, BELOW: 0.8, OVERLAPPING: 0.6, NEAR: 0.6,
}


def object_salience(objects: Sequence[SceneObject], width: int, height: int) -> np.ndarray:
    """Salience of each object in 0..1 (size, confidence, nearness rank, centrality)."""
    n = len(objects)
    if n == 0:
        return np.zeros(0)
    boxes = np.array([o.box.as_tuple() for o in objects], dtype=np.float64)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    rel_area = area / float(max(1, width * height))
    size = np.minimum(1.0, np.sqrt(rel_area / SIZE_SATURATION))
    confidence = np.clip(np.array([o.confidence for o in objects], dtype=np.float64), 0.0, 1.0)
    centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    half_diagonal = 0.5 * float(np.hypot(width, height)) or 1.0
    offset = np.hypot(centre[:, 0] - width / 2, centre[:, 1] - height / 2) / half_diagonal
    centrality = 1.0 - np.clip(offset, 0.0, 1.0)
    depth = np.array([o.depth for o in objects], dtype=np.float64)
    known = np.isfinite(depth)
    nearness = np.zeros(n)
    if known.sum() == 1:
        nearness[known] = 1.0
    elif known.sum() > 1:
        # rank among the objects with depth: nearest 1, farthest 0 (works for relative depth)
        order = np.argsort(np.argsort(depth[known], kind='stable'), kind='stable')
        nearness[known] = 1.0 - order / (known.sum() - 1)
    w = OBJECT_WEIGHTS
    total = w['size'] * size + w['confidence'] * confidence + w['centrality'] * centrality
    with_depth = (total + w['nearness'] * nearness)
    without_depth = total / (1.0 - w['nearness'])
    return np.clip(np.where(known, with_depth, without_depth), 0.0, 1.0)


def relation_salience(predicates: np.ndarray, confidence: np.ndarray, subject_salience:
                      np.ndarray, object_salience_: np.ndarray, edge_weight: np.ndarray
                      ) -> np.ndarray:
    """Salience of each relation in 0..1.

    confidence x mean salience of its two objects x predicate informativeness x
    (0.5 + 0.5 x k-NN edge weight): the edge weight modulates, it never silences a relation.
    """
    informative = np.array([PREDICATE_INFORMATIVENESS.get(p, 0.5) for p in predicates],
                           dtype=np.float64)
    mean_object = 0.5 * (subject_salience + object_salience_)
    return np.clip(confidence * mean_object * informative * (0.5 + 0.5 * edge_weight), 0.0, 1.0)
