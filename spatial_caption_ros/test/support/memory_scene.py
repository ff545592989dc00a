"""Synthetic scenes for the scene memory: objects placed at camera-frame points, camera poses."""

from __future__ import annotations

import math

import numpy as np

from spatial_caption_ros.core.memory.transforms import Transform
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, FrameHeader, SceneGraph, SceneObject)

CAM = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
S = 1_000_000_000


def obj_at(i: int, name: str, p_cam, size: float = 0.2, sigma: float = 0.03,
           conf: float = 0.8) -> SceneObject:
    """A detected object whose centre is at camera-frame point p_cam, its box from its size."""
    x, y, z = p_cam
    u, v = CAM.fx * x / z + CAM.cx, CAM.fy * y / z + CAM.cy
    half = 0.5 * size * CAM.fx / z
    return SceneObject(id=i, class_name=name, class_id=0, confidence=conf,
                       box=BoundingBox(u - half, v - half, u + half, v + half), depth=z,
                       depth_uncertainty=sigma, depth_source='sensor', depth_metric=True,
                       position=(x, y, z), distance=math.dist((0, 0, 0), p_cam),
                       metric_width=size, metric_height=size)


def graph(stamp_s: float, *objects: SceneObject, frame: str = 'cam') -> SceneGraph:
    """A scene graph of these objects (no relations) at stamp_s seconds."""
    return SceneGraph(FrameHeader(int(round(stamp_s * S)), frame), CAM.width, CAM.height,
                      list(objects), [], 'sensor', True, True)


def yaw(deg: float, t=(0.0, 0.0, 0.0)) -> Transform:
    """Camera rotated about its own y axis (looking left/right), placed at t."""
    a = math.radians(deg)
    r = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    return Transform(r, np.asarray(t, dtype=float))
