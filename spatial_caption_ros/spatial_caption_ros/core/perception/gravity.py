"""The camera's gravity direction from the transform tree (/tf), for the geometric depth cues.

A robot publishes where its camera points: the transform from the camera's optical frame to a
world-fixed frame whose z axis points up (REP 103: `map`, `odom`, or `base_footprint` of a
ground robot). The geometric depth source needs only "down" in the camera frame:
R^T (0, 0, -1) with R the rotation camera -> world. The perception node feeds this buffer from
/tf and /tf_static and asks it at each image's stamp; a missing or stale transform gives no
gravity and a note saying why (the pipeline then falls back to the fixed-mount parameters,
`camera_orientation: parameters`, or to a level camera), and is counted for /diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_caption_ros.core.memory.transforms import (
    StampedTransform, TransformBuffer, TransformError, TransformStaleError)

_WORLD_DOWN = np.array([0.0, 0.0, -1.0])


@dataclass
class GravityCounts:
    """Frames by what the transform tree gave them (reported in /diagnostics)."""

    from_tf: int = 0
    missing: int = 0
    stale: int = 0


class GravityFromTransforms:
    """Gravity in the camera optical frame from the transform camera -> `world_frame` (z up)."""

    def __init__(self, world_frame: str, tolerance_s: float, cache_s: float = 10.0) -> None:
        self.world_frame = world_frame
        self.buffer = TransformBuffer(cache_s=cache_s, tolerance_s=tolerance_s)
        self.counts = GravityCounts()
        self.last_problem = ''

    def set_tolerance(self, tolerance_s: float) -> None:
        """Live change of how far a lookup may lie beyond the newest transform sample."""
        self.buffer.tolerance_ns = int(tolerance_s * 1e9)

    def add(self, transforms: list[StampedTransform], static: bool) -> list[str]:
        """Feed /tf (static False) or /tf_static samples; returns why any were refused."""
        refused = []
        for tf in transforms:
            try:
                self.buffer.set_transform(tf, static)
            except TransformError as exc:
                refused.append(str(exc))
        return refused

    def down(self, camera_frame: str, stamp_ns: int) -> tuple[np.ndarray | None, str]:
        """("down" in the camera frame, '') or (None, why there is none) at `stamp_ns`."""
        try:
            if not camera_frame:
                raise TransformError('the image has no frame_id')
            pose = self.buffer.lookup(self.world_frame, camera_frame, stamp_ns)
        except TransformError as exc:
            if isinstance(exc, TransformStaleError):
                self.counts.stale += 1
            else:
                self.counts.missing += 1
            self.last_problem = str(exc)
            return None, f'no camera orientation from /tf ({self.world_frame} <- ' \
                         f'{camera_frame or "?"}): {exc}'
        self.counts.from_tf += 1
        return pose.rotation.T @ _WORLD_DOWN, ''
