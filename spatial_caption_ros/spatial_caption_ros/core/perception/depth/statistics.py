"""A robust depth statistic of one object from a dense depth map and its detection box.

A box holds the object and some of what is behind it (and sometimes something in front of it).
A plain mean mixes all three; instead:
- only the central `inner_fraction` of the box is read (objects fill their box centre more than
  its corners, where the background shows);
- only valid readings count (finite, > 0: sensors write 0 or NaN where they have no reading);
- the estimate is a low percentile on the near side: background is farther than the object, so
  a near-side percentile ignores background leaking into the box, while it still ignores a few
  too-near readings (an occluding edge, sensor speckle) up to that percentile.
The spread of the readings around the estimate (between two percentiles either side of it,
converted to a standard deviation as if they were normal) is its uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from statistics import NormalDist
from typing import ClassVar

import numpy as np

from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.types import BoundingBox, NAN

# Boxes are read on a grid of at most this many samples (a stride over big boxes): the
# percentile of 4096 samples is within a fraction of a percentile point of the full box's, and
# the cost no longer grows with the box size (a 1242x375 box would be 465k pixels).
MAX_SAMPLES = 4096
# Fewer valid readings than this give no estimate: a percentile of a handful of pixels is noise.
MIN_VALID_SAMPLES = 8
# The spread is measured between the estimate's percentile minus and plus this many percentile
# points (clipped to 2..98): wide enough to be stable, narrow enough to stay on the object when
# background fills the far half of the readings.
SPREAD_HALF_WIDTH = 20.0


@dataclass(frozen=True)
class BoxStatConfig:
    """How a box's depth is read from a dense map (DepthConfig.box; ROS names `box_*`)."""

    PARAM_PREFIX: ClassVar[str] = 'box_'

    inner_fraction: float = param(
        0.5, 'Central fraction of each box side read for the object depth statistic.',
        minimum=0.05, maximum=1.0, when=CONFIGURE)
    percentile: float = param(
        30.0, 'Near-side percentile of the depth readings in a box taken as the object depth '
        '(50 = median; lower ignores more background).', minimum=1.0, maximum=99.0,
        when=CONFIGURE, name='box_depth_percentile')
    min_valid_fraction: float = 0.05  # fewer valid readings of the inner region: no estimate


@dataclass(frozen=True)
class BoxDepth:
    """The statistic of one box: value and spread in the map's unit, and how much was valid."""

    value: float = NAN
    spread: float = NAN
    valid: int = 0
    valid_fraction: float = 0.0

    @property
    def known(self) -> bool:
        return math.isfinite(self.value)


def inner_region(box: BoundingBox, width: int, height: int,
                 inner_fraction: float) -> tuple[int, int, int, int]:
    """Pixel rows/columns (x0, y0, x1, y1; end exclusive) of the box's central part."""
    cx, cy = box.center
    half_w = 0.5 * box.width * inner_fraction
    half_h = 0.5 * box.height * inner_fraction
    x0 = min(max(int(math.floor(cx - half_w)), 0), width - 1)
    y0 = min(max(int(math.floor(cy - half_h)), 0), height - 1)
    x1 = min(max(int(math.ceil(cx + half_w)), x0 + 1), width)
    y1 = min(max(int(math.ceil(cy + half_h)), y0 + 1), height)
    return x0, y0, x1, y1


def _spread_percentiles(centre: float) -> tuple[float, float, float]:
    """Percentiles (low, high) around `centre` and the normal z-span between them."""
    lo_p = max(2.0, centre - SPREAD_HALF_WIDTH)
    hi_p = min(98.0, centre + SPREAD_HALF_WIDTH)
    normal = NormalDist()
    return lo_p, hi_p, normal.inv_cdf(hi_p / 100.0) - normal.inv_cdf(lo_p / 100.0)


def box_depth(depth: np.ndarray, box: BoundingBox, config: BoxStatConfig,
              larger_is_nearer: bool = False) -> BoxDepth:
    """Robust depth of the object in `box` from an HxW map (NaN, inf and <= 0 are no reading).

    `larger_is_nearer` is for inverse-depth (disparity) maps: the near side is then the high
    percentile. Percentiles commute with monotonic maps, so the statistic of a disparity map is
    the same object point as the statistic of the depth map it stands for.
    """
    height, width = depth.shape[:2]
    x0, y0, x1, y1 = inner_region(box, width, height, config.inner_fraction)
    area = (x1 - x0) * (y1 - y0)
    stride = max(1, int(math.ceil(math.sqrt(area / MAX_SAMPLES))))
    region = depth[y0:y1:stride, x0:x1:stride]
    samples = region[np.isfinite(region) & (region > 0)]
    total = region.size
    fraction = samples.size / total if total else 0.0
    if samples.size < MIN_VALID_SAMPLES and samples.size < total:
        return BoxDepth(valid=int(samples.size), valid_fraction=fraction)
    if samples.size == 0 or fraction < config.min_valid_fraction:
        return BoxDepth(valid=int(samples.size), valid_fraction=fraction)
    centre = 100.0 - config.percentile if larger_is_nearer else config.percentile
    lo_p, hi_p, z_span = _spread_percentiles(centre)
    lo, value, hi = np.percentile(samples, [lo_p, centre, hi_p])   # one partial sort
    return BoxDepth(value=float(value), spread=float((hi - lo) / z_span),
                    valid=int(samples.size), valid_fraction=fraction)


@dataclass(frozen=True)
class ObjectReadings:
    """The readings of a box that belong to its object (sensor depth, metres)."""

    value: float = NAN          # median of the object's readings (its visible surface)
    spread: float = NAN         # their robust standard deviation
    visible_range: float = NAN  # depth range the visible surface spans (10th to 90th pct.)
    valid: int = 0
    valid_fraction: float = 0.0

    @property
    def known(self) -> bool:
        return math.isfinite(self.value)


# Sensor readings per object: a percentile of 1024 samples is within about 1.5 percentile points
# of the whole box's, and the one sort they need stays far under a millisecond for 20 objects.
OBJECT_MAX_SAMPLES = 1024
_OWN_PERCENTILES = np.array([0.10, 0.25, 0.50, 0.75, 0.90])
# Robust standard deviation from the interquartile range of a normal distribution.
IQR_TO_SIGMA = 1.0 / (NormalDist().inv_cdf(0.75) - NormalDist().inv_cdf(0.25))


def object_readings(depth: np.ndarray, box: BoundingBox, config: BoxStatConfig,
                    band: float) -> ObjectReadings:
    """The object's own readings in its box: holes, background and edges left out.

    The near-side percentile of the inner region's valid readings (as box_depth) finds the
    object; the readings within `band` metres of it (the object's largest extent: an object
    cannot reach farther than its own size from that point) are its own, the rest is background
    or an occluder. Their median is the visible surface, robust to the speckle and the depth
    edges a Kinect has at object borders; their 10th-90th percentile range is how deep the
    visible surface is; their interquartile range, as a normal standard deviation, the
    reading's spread. One sort of at most OBJECT_MAX_SAMPLES readings per object.
    """
    height, width = depth.shape[:2]
    x0, y0, x1, y1 = inner_region(box, width, height, config.inner_fraction)
    stride = max(1, int(math.ceil(math.sqrt((x1 - x0) * (y1 - y0) / OBJECT_MAX_SAMPLES))))
    region = depth[y0:y1:stride, x0:x1:stride]
    samples = region[np.isfinite(region) & (region > 0)]
    fraction = samples.size / region.size if region.size else 0.0
    if samples.size < min(MIN_VALID_SAMPLES, region.size) or samples.size == 0 \
            or fraction < config.min_valid_fraction:
        return ObjectReadings(valid=int(samples.size), valid_fraction=fraction)
    samples.sort()
    near = samples[int(config.percentile / 100.0 * (samples.size - 1))]
    lo, hi = np.searchsorted(samples, (near - band, near + band))
    own = samples[lo:hi]
    if own.size < min(MIN_VALID_SAMPLES, samples.size):
        return ObjectReadings(valid=int(own.size), valid_fraction=fraction)
    p10, p25, p50, p75, p90 = own[(_OWN_PERCENTILES * (own.size - 1)).astype(int)]
    return ObjectReadings(value=float(p50), spread=float((p75 - p25) * IQR_TO_SIGMA),
                          visible_range=float(p90 - p10), valid=int(own.size),
                          valid_fraction=fraction)
