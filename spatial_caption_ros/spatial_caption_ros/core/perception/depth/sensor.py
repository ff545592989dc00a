"""Depth from an aligned depth image (RGB-D camera or simulator), matched to the colour frame.

The depth image must be registered to the colour image (same viewpoint; `aligned_depth_to_color`
in RealSense terms) and is decoded to float32 metres with NaN where there is no reading
(core/inputs/image.py: 16UC1 millimetres, 32FC1 metres). Colour and depth frames travel on two
topics and arrive in either order, so depth frames wait in a small stamp-keyed buffer; the colour
frame takes the depth frame nearest in time within a tolerance, and nothing otherwise: a frame
from another moment would put objects at the wrong depth.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
import math
import threading
import time
from typing import Any, Generic, TypeVar

import cv2
import numpy as np

from spatial_caption_ros.core.perception.depth.base import DepthInput, DepthOutput, DepthSource
from spatial_caption_ros.core.perception.depth.geometric import (
    DEFAULT_BORDER_MARGIN_PX, GeometricDepth)
from spatial_caption_ros.core.perception.depth.statistics import BoxStatConfig, object_readings
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import DEPTH_GEOMETRIC, DEPTH_SENSOR, ObjectDepth

T = TypeVar('T')

# Relative error floor of one sensor reading: RGB-D cameras are accurate to about 1 % of the
# range at a few metres (stereo and time-of-flight alike), and worse farther away, which the
# spread of the box's readings then shows.
SENSOR_REL_FLOOR = 0.01
# Standard error of a median of n normal readings: 1.2533 sigma / sqrt(n) (sqrt(pi / 2)).
MEDIAN_STANDARD_ERROR = math.sqrt(math.pi / 2.0)
# Objects without a size prior: readings within this many metres of the object's near side are
# taken as its own (a person-sized object; background is usually farther than that).
DEFAULT_BAND_M = 0.5
# Depth and colour sizes may differ (a 640x480 depth stream registered to a 1280x960 colour
# stream); they are used together only when their aspect ratios agree to this fraction.
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class StampMatch(Generic[T]):
    """The buffered item nearest to a stamp, and how far it was."""

    item: T | None
    offset_ns: int | None      # item stamp - wanted stamp (None when the buffer is empty)

    @property
    def matched(self) -> bool:
        return self.item is not None


class StampBuffer(Generic[T]):
    """The last few items by stamp (nanoseconds); thread-safe; waits for late items."""

    def __init__(self, capacity: int = 10) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, T] = OrderedDict()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, stamp_ns: int, item: T) -> None:
        with self._cond:
            self._items[stamp_ns] = item
            self._items.move_to_end(stamp_ns)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def _nearest(self, stamp_ns: int) -> tuple[int | None, T | None]:
        if not self._items:
            return None, None
        best = min(self._items, key=lambda s: abs(s - stamp_ns))
        return best, self._items[best]

    def match(self, stamp_ns: int, tolerance_ns: int, wait_s: float = 0.0) -> StampMatch[T]:
        """The item nearest to `stamp_ns` within the tolerance.

        When none matches yet and no item newer than the stamp has arrived (its frame may still be
        on the way), wait up to `wait_s` for one.
        """
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                best, item = self._nearest(stamp_ns)
                if best is not None and abs(best - stamp_ns) <= tolerance_ns:
                    return StampMatch(item, best - stamp_ns)
                newest = next(reversed(self._items)) if self._items else None
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (newest is not None and newest > stamp_ns + tolerance_ns):
                    return StampMatch(None, None if best is None else best - stamp_ns)
                self._cond.wait(remaining)


def align_to_image(depth: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Depth resized to the image size; None when the aspect ratios differ (not the same view).

    Nearest-neighbour resizing never blends a near and a far reading into a depth in between.
    """
    h, w = depth.shape[:2]
    if (w, h) == (width, height):
        return depth
    if abs((w / h) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        return None
    return cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)


class SensorDepth(DepthSource):
    """Per-object depth read from an aligned metric depth image."""

    name = DEPTH_SENSOR
    needs_sensor_depth = True

    def __init__(self, knowledge: KnowledgeBase, box_stats: BoxStatConfig | None = None,
                 border_margin_px: float = DEFAULT_BORDER_MARGIN_PX) -> None:
        self.knowledge = knowledge
        self.box_stats = box_stats or BoxStatConfig()
        # objects in a sensor hole (dark, shiny or too near for the camera) are placed by box
        # size instead, with that source's (larger) uncertainty, and named in a note
        self.geometric = GeometricDepth(knowledge, border_margin_px)

    def estimate(self, inp: DepthInput, prepared: Any = None) -> DepthOutput:
        if inp.sensor_depth is None:
            return DepthOutput(objects=[ObjectDepth(source=DEPTH_SENSOR) for _ in inp.detections],
                               metric=False,
                               notes=['sensor depth: no depth frame for this image, no depth'])
        depth = align_to_image(inp.sensor_depth, inp.image.width, inp.image.height)
        if depth is None:
            h, w = inp.sensor_depth.shape[:2]
            return DepthOutput(
                objects=[ObjectDepth(source=DEPTH_SENSOR) for _ in inp.detections], metric=False,
                notes=[f'sensor depth: {w}x{h} depth image does not have the aspect ratio of the '
                       f'{inp.image.width}x{inp.image.height} colour image (not aligned): no '
                       'depth'])
        objects, unknown = [], 0
        for det in inp.detections:
            prior = self.knowledge.size_prior(det.class_name)
            band = (max(prior.width, prior.length, prior.height) if prior is not None
                    else DEFAULT_BAND_M)
            st = object_readings(depth, det.box, self.box_stats, band)
            if not st.known:
                objects.append(ObjectDepth(source=DEPTH_SENSOR))
                unknown += 1
                continue
            # The object's position is the middle of what the sensor sees of it (as point-cloud
            # pipelines take the centroid of an object's points); the hidden back is not
            # guessed from a size prior: a sensor measures, and a prior would add its error.
            # Its uncertainty: the median's standard error over the object's readings (their
            # spread is the object's own depth, not an error) and the camera's 1 % floor.
            sigma = math.hypot(MEDIAN_STANDARD_ERROR * st.spread / math.sqrt(st.valid),
                               SENSOR_REL_FLOOR * st.value)
            objects.append(ObjectDepth(st.value, sigma, DEPTH_SENSOR, True, st.visible_range))
        notes = []
        if unknown:
            filled = 0
            if inp.intrinsics is not None:
                estimates = self.geometric.estimates(inp.detections, inp.intrinsics,
                                                     inp.image.width, inp.image.height,
                                                     inp.gravity)
                for k, (od, est) in enumerate(zip(objects, estimates, strict=True)):
                    if not od.known and est.known:
                        objects[k] = ObjectDepth(est.z, est.sigma, DEPTH_GEOMETRIC, True,
                                                 est.extent)
                        filled += 1
            notes.append(f'sensor depth: {unknown} object(s) have too few valid depth readings'
                         + (f'; {filled} placed by geometric depth instead' if filled else ''))
        return DepthOutput(objects=objects, metric=True, depth_map=depth, notes=notes)
