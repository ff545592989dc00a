"""Keyframes and place retrieval: ORB features + graph signature, geometric re-ranking.

A keyframe keeps what is needed to recognise a place again without the image: ORB keypoints and
descriptors (OpenCV), the graph signature (how many objects of each class), the camera pose in
the world frame and the ids of the remembered objects seen in it.

Retrieval of a query frame has two stages:
1. the baseline: keyframes at least `retrieval_min_age` older than the query ranked by the cosine
   similarity of their graph signatures (ties: the newer keyframe first);
2. re-ranking: the best `retrieval_candidates` of them by the RANSAC inliers of their ORB matches
   (Lowe ratio test, then a fundamental matrix or homography); only keyframes with at least
   `min_inliers` inliers are verified.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import math

import cv2
import numpy as np

from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.types import SceneGraph

# Lowe's ratio test for ORB matches (his paper's 0.8).
RATIO = 0.8
# RANSAC reprojection threshold in pixels and confidence.
RANSAC_PX = 2.0
RANSAC_CONFIDENCE = 0.99


@dataclass
class Features:
    """ORB keypoints (N, 2) float32 and descriptors (N, 32) uint8 of one image."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass
class Keyframe:
    """A stored view of a place."""

    id: int
    stamp_ns: int
    features: Features
    signature: dict[str, int]
    pose: tuple[float, ...] = ()           # x y z qx qy qz qw of the camera in the world frame
    object_ids: tuple[int, ...] = ()


@dataclass
class Retrieval:
    """The answer for one query frame: the baseline's best and the verified best."""

    baseline: Keyframe | None
    verified: Keyframe | None
    inliers: int = 0
    candidates: int = 0
    scores: list[tuple[int, float, int]] = field(default_factory=list)  # (id, similarity, inl.)


class OrbExtractor:
    """ORB features of grayscale or BGR images (one cv2.ORB, reused)."""

    def __init__(self, n_features: int) -> None:
        self.orb = cv2.ORB_create(nfeatures=n_features)

    def __call__(self, image: np.ndarray) -> Features:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        keypoints, descriptors = self.orb.detectAndCompute(gray, None)
        if descriptors is None or not keypoints:
            return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        points = np.array([k.pt for k in keypoints], dtype=np.float32)
        return Features(points, descriptors)


def graph_signature(graph: SceneGraph) -> dict[str, int]:
    """Objects per class: the place's content, independent of where the camera stands."""
    return dict(Counter(o.class_name for o in graph.objects))


def signature_similarity(a: dict[str, int], b: dict[str, int]) -> float:
    """Cosine similarity of two class-count vectors (0 when either is empty)."""
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na > 0 and nb > 0 else 0.0


_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


def verified_inliers(a: Features, b: Features, method: str) -> int:
    """RANSAC inliers of the ratio-tested ORB matches of two views (0 when too few)."""
    if len(a) < 8 or len(b) < 8:
        return 0
    knn = _MATCHER.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < 8:
        return 0
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    if method == 'homography':
        _, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX,
                                     confidence=RANSAC_CONFIDENCE)
    else:
        _, mask = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, RANSAC_PX, RANSAC_CONFIDENCE)
    return int(mask.sum()) if mask is not None else 0


class KeyframeIndex:
    """Keyframes in memory, bounded, with the two-stage retrieval."""

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.keyframes: list[Keyframe] = []
        self.next_id = 1

    def due(self, stamp_ns: int) -> bool:
        """Whether a frame at this stamp should become a keyframe (keyframe_interval)."""
        if not self.keyframes:
            return True
        return stamp_ns - self.keyframes[-1].stamp_ns >= self.config.keyframe_interval * 1e9

    def add(self, stamp_ns: int, features: Features, signature: dict[str, int],
            pose: tuple[float, ...] = (), object_ids: tuple[int, ...] = ()) -> tuple[
                Keyframe, list[Keyframe]]:
        """Store a keyframe; returns it and the keyframes dropped by max_keyframes."""
        kf = Keyframe(self.next_id, stamp_ns, features, dict(signature), tuple(pose),
                      tuple(object_ids))
        self.next_id += 1
        self.keyframes.append(kf)
        dropped = []
        while len(self.keyframes) > self.config.max_keyframes:
            dropped.append(self.keyframes.pop(0))
        return kf, dropped

    def retrieve(self, stamp_ns: int, features: Features,
                 signature: dict[str, int]) -> Retrieval:
        """Earlier keyframes of this place: the signature baseline, then ORB re-ranked."""
        horizon = stamp_ns - int(self.config.retrieval_min_age * 1e9)
        eligible = [k for k in self.keyframes if k.stamp_ns <= horizon]
        if not eligible:
            return Retrieval(None, None)
        ranked = sorted(eligible, key=lambda k: (-signature_similarity(signature, k.signature),
                                                 -k.stamp_ns))
        candidates = ranked[:self.config.retrieval_candidates]
        scores = []
        best, best_inliers = None, 0
        for kf in candidates:
            inliers = verified_inliers(features, kf.features, self.config.verification)
            scores.append((kf.id, signature_similarity(signature, kf.signature), inliers))
            if inliers > best_inliers:
                best, best_inliers = kf, inliers
        if best_inliers < self.config.min_inliers:
            best = None
        return Retrieval(ranked[0], best, best_inliers, len(candidates), scores)
