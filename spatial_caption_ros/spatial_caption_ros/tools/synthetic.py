"""Seeded synthetic detection frames, for the scene-graph benchmark and the tests.

Random but reproducible: objects of the given classes with boxes spread over a 1280x720 image,
and (with_depth) metric depth with uncertainty and 3D positions as the geometric source gives
them. No image, no model.
"""

from __future__ import annotations

import numpy as np

from spatial_caption_ros.core.scene_graph.geometry import metric_size, norm3, position_from_depth
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, DEPTH_GEOMETRIC, DetectionResult, FrameHeader, SceneObject)

WIDTH, HEIGHT = 1280, 720


def synthetic_frame(n: int, seed: int, with_depth: bool,
                    classes: list[str]) -> DetectionResult:
    """A frame of n random objects (same n and seed: same frame)."""
    rng = np.random.default_rng(seed)
    intrinsics = CameraIntrinsics.from_horizontal_fov(70.0, WIDTH, HEIGHT)
    objects = []
    for k in range(n):
        w, h = rng.uniform(20, 300), rng.uniform(20, 300)
        x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        box = BoundingBox(x, y, x + w, y + h)
        obj = SceneObject(id=k, class_name=classes[int(rng.integers(len(classes)))], class_id=0,
                          confidence=float(rng.uniform(0.25, 0.95)), box=box)
        if with_depth:
            z = float(rng.uniform(1.0, 30.0))
            obj.depth, obj.depth_uncertainty = z, 0.1 * z
            obj.depth_source, obj.depth_metric = DEPTH_GEOMETRIC, True
            obj.position = position_from_depth(box, z, intrinsics)
            obj.distance = norm3(obj.position)
            obj.metric_width, obj.metric_height = metric_size(box, z, intrinsics)
        objects.append(obj)
    return DetectionResult(header=FrameHeader(0, 'camera'), image_width=WIDTH,
                           image_height=HEIGHT, objects=objects, depth_metric=with_depth,
                           has_camera_info=True)
