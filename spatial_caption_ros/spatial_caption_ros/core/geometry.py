"""Per-object geometry: 3x3 image region, relative size, 3D position and metric size."""

from __future__ import annotations

import math

from spatial_caption_ros.core.types import BoundingBox, CameraIntrinsics, REGIONS


def region_of(box: BoundingBox, width: int, height: int) -> str:
    """The 3x3 grid cell (top-left ... center ... bottom-right) that holds the box centre."""
    cx, cy = box.center
    col = min(2, max(0, int(3.0 * cx / width)))
    row = min(2, max(0, int(3.0 * cy / height)))
    return REGIONS[row * 3 + col]


def relative_size(box: BoundingBox, width: int, height: int) -> float:
    """Box area as a fraction of the image area (0..1)."""
    return min(1.0, box.area / float(width * height)) if width > 0 and height > 0 else 0.0


def position_from_depth(box: BoundingBox, z: float,
                        intrinsics: CameraIntrinsics) -> tuple[float, float, float]:
    """3D centre (camera optical frame, metres) of an object at depth z seen in `box`."""
    u, v = box.center
    return intrinsics.backproject(u, v, z)


def metric_size(box: BoundingBox, z: float, intrinsics: CameraIntrinsics) -> tuple[float, float]:
    """Width and height in metres of the box's extent at depth z (pinhole model)."""
    return box.width * z / intrinsics.fx, box.height * z / intrinsics.fy


def norm3(p: tuple[float, float, float]) -> float:
    return math.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2])
