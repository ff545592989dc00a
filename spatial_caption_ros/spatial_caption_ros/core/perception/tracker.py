"""A simple IoU tracker: stable object ids across frames, depth carried between depth frames.

Each frame's detections are matched to the existing tracks of the same class greedily by box
overlap (highest IoU first, at least `iou_threshold`); unmatched detections start new tracks and
tracks unmatched for more than `max_missed` frames end. This is the classic IoU tracker
(Bochinski et al., AVSS 2017): cheap, and good enough for ids when the frame rate is high enough
for an object's boxes in consecutive frames to overlap.

Depth carried by a track is rescaled by the change of the box height since it was measured (a
pinhole camera sees an object's size inversely proportional to its depth), so an object walking
towards the camera between two depth frames gets nearer too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
import math

import numpy as np

from spatial_caption_ros.core.params import param
from spatial_caption_ros.core.types import BoundingBox, Detection, ObjectDepth

# Standard deviation of a box edge in pixels, as in the geometric depth source: the rescaling by
# the ratio of two box heights adds this error to carried depth.
BOX_EDGE_SIGMA_PX = 1.5


@dataclass(frozen=True)
class TrackingConfig:
    """The tracker's parameters (PerceptionConfig.tracking; ROS names `tracking`, `track_*`)."""

    PARAM_PREFIX: ClassVar[str] = 'track_'

    enabled: bool = param(
        True, 'Track objects across frames by box overlap: SceneObject.id is then the track id, '
        'stable while the object stays in view.', name='tracking')
    iou_threshold: float = param(
        0.3, 'Least box overlap (IoU) that continues a track.', minimum=0.01, maximum=1.0)
    max_missed: int = param(
        5, 'Frames a track survives without a matching detection.', minimum=0, maximum=1000)


@dataclass
class Track:
    """One tracked object."""

    id: int
    class_name: str
    box: BoundingBox
    first_frame: int
    last_frame: int
    hits: int = 1
    missed: int = 0
    depth: ObjectDepth | None = None     # last measured depth of the object
    depth_box: BoundingBox | None = None  # its box when the depth was measured
    depth_frame: int = -1

    def age(self, frame: int) -> int:
        """Frames since the track started."""
        return frame - self.first_frame

    def carried_depth(self, box: BoundingBox, frame: int, height_cut: bool) -> ObjectDepth | None:
        """The last measured depth moved to the present box (None when there is none)."""
        if self.depth is None or not self.depth.known or self.depth_box is None:
            return None
        d = self.depth
        ratio = 1.0
        if not height_cut and box.height > 0 and self.depth_box.height > 0:
            ratio = self.depth_box.height / box.height
        value = d.value * ratio
        edge = math.sqrt(2.0) * BOX_EDGE_SIGMA_PX
        rel_ratio = (math.hypot(edge / box.height, edge / self.depth_box.height)
                     if ratio != 1.0 else 0.0)
        sigma = math.hypot(d.uncertainty * ratio if math.isfinite(d.uncertainty) else 0.0,
                           value * rel_ratio)
        return ObjectDepth(value, sigma if sigma > 0 else d.uncertainty, d.source, d.metric,
                           d.extent)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a (Nx4 x1,y1,x2,y2) with every box of b (Mx4)."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0],
                                                                      b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1],
                                                                      b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class IouTracker:
    """Greedy IoU matching of detections to tracks, per class."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 0

    @classmethod
    def from_config(cls, config: TrackingConfig) -> IouTracker:
        return cls(config.iou_threshold, config.max_missed)

    def apply_live(self, config: TrackingConfig) -> None:
        """Apply changed thresholds (they may change while running)."""
        self.iou_threshold = config.iou_threshold
        self.max_missed = config.max_missed

    def reset(self) -> None:
        """Forget every track (ids keep counting up, so old ids are never reused)."""
        self.tracks = []

    def update(self, detections: list[Detection]) -> list[Track]:
        """Advance one frame; returns the track of each detection, in the detections' order."""
        self.frame += 1
        boxes = np.array([d.box.as_tuple() for d in detections], dtype=np.float64).reshape(-1, 4)
        track_boxes = np.array([t.box.as_tuple() for t in self.tracks],
                               dtype=np.float64).reshape(-1, 4)
        iou = iou_matrix(track_boxes, boxes)
        if iou.size:
            same = np.array([[t.class_name == d.class_name for d in detections]
                             for t in self.tracks])
            iou = np.where(same, iou, 0.0)
        assigned: list[Track | None] = [None] * len(detections)
        used_tracks: set[int] = set()
        if iou.size:
            order = np.argsort(-iou, axis=None, kind='stable')
            for flat in order:
                ti, di = divmod(int(flat), iou.shape[1])
                if iou[ti, di] < self.iou_threshold:
                    break
                if ti in used_tracks or assigned[di] is not None:
                    continue
                track = self.tracks[ti]
                track.box, track.last_frame = detections[di].box, self.frame
                track.hits += 1
                track.missed = 0
                assigned[di] = track
                used_tracks.add(ti)
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for di, det in enumerate(detections):
            if assigned[di] is None:
                track = Track(self._next_id, det.class_name, det.box, self.frame, self.frame)
                self._next_id = (self._next_id + 1) % (1 << 32)   # ids are uint32 in messages
                self.tracks.append(track)
                assigned[di] = track
        return [t for t in assigned if t is not None]
