"""Weights-free metric depth from box size, camera intrinsics and typical class sizes.

An object of known physical height H seen by a pinhole camera spans about f*H/Z pixels, so its
depth is Z = f*H/h_px. Three refinements make this usable on real boxes:

1. Pose. An object's height does not change when it turns (people, cars, chairs stand upright);
   its visible width does (a car is 1.8 m wide from behind, 4.5 m long from the side). So the
   height is used whenever it is fully visible, the width only as a fallback.
2. Depth extent. A camera above (or below) an object sees its top (or bottom) face too, so the
   box spans more than the height: for a cuboid of height H and extent D along the line of sight,
   with the box's top and bottom edges at normalised image rows t = (v_top - cy)/fy and
   b = (v_bottom - cy)/fy (optical axis assumed level), the centre depth is
       Z = (H + D/2 * |t + b|) / (b - t)   when the camera is above or below the whole object,
       Z = H / (b - t) + D/2               when the object spans the camera's height.
   D is between the class's width and length; it is taken as (width + length - visible width),
   clipped to that range (exact when the object is seen square-on from either side).
3. Truncation. A box cut by the image border shows only part of the object and would place it
   too far; a cut dimension is never used (both cut: no estimate), and a box cut on the other
   axis gets a larger uncertainty (the hidden part may be the nearest, tallest-looking one).

The uncertainty combines the class's size spread (KnowledgeBase size_rel_std), the unknown depth
extent and the box-edge error. Without intrinsics nothing metric is claimed: the value is then
H/h_px (= Z/f), a relative depth that orders objects in one frame.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from spatial_caption_ros.core.perception.depth.base import DepthInput, DepthOutput, DepthSource
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase, SizePrior
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, DEPTH_GEOMETRIC, Detection, NAN, ObjectDepth)

# Standard deviation of one box edge in pixels: detector boxes are localised to about a pixel or
# two on the objects this source is used for (an assumption, not fitted to any data). Two edges
# make a size, so a size has sqrt(2) times this error.
BOX_EDGE_SIGMA_PX = 1.5
# A box side within this many pixels of the image border is taken as cut by the border (YOLO
# clips boxes to the image, so a cut box ends exactly there; 2 px allows sub-pixel rounding).
DEFAULT_BORDER_MARGIN_PX = 2.0
# Uniform distribution's standard deviation is its range / sqrt(12).
UNIFORM_SIGMA = 1.0 / math.sqrt(12.0)


@dataclass(frozen=True)
class GeometricEstimate:
    """Depth of one object from its box size, with what it was based on."""

    z: float = NAN                  # centre depth (metres with intrinsics, else Z/f)
    sigma: float = NAN              # one standard deviation, same unit
    extent: float = NAN             # depth extent D used (metres), NaN when unknown
    basis: str = ''                 # 'height', 'width', or why there is no estimate
    metric: bool = False

    @property
    def known(self) -> bool:
        return math.isfinite(self.z)

    @property
    def rel_sigma(self) -> float:
        return self.sigma / self.z if self.known and self.z > 0 else NAN


def truncation(box: BoundingBox, width: int, height: int,
               margin: float = DEFAULT_BORDER_MARGIN_PX) -> tuple[bool, bool]:
    """(horizontally cut, vertically cut) by the image border."""
    cut_x = box.x_min <= margin or box.x_max >= width - margin
    cut_y = box.y_min <= margin or box.y_max >= height - margin
    return cut_x, cut_y


def _extent_range(prior: SizePrior) -> tuple[float, float]:
    return min(prior.width, prior.length), max(prior.width, prior.length)


def _visible_width(prior: SizePrior) -> tuple[float, float]:
    """Mean visible width over all yaw angles, 2(w+l)/pi, and its relative spread.

    The visible width of a w x l footprint ranges from the narrower side to the diagonal.
    """
    d_min, _ = _extent_range(prior)
    diag = math.hypot(prior.width, prior.length)
    width_m = 2.0 * (prior.width + prior.length) / math.pi
    return width_m, (diag - d_min) * UNIFORM_SIGMA / width_m


def depth_extent(prior: SizePrior, box: BoundingBox, z: float,
                 intrinsics: CameraIntrinsics | None, margin: float = DEFAULT_BORDER_MARGIN_PX,
                 z_is_surface: bool = False) -> float:
    """Extent of an object along the line of sight (metres), seen in `box`.

    Seen square-on, the visible width is one side of the footprint and the extent the other, so
    extent = width + length - visible width, clipped to the footprint's sides. The visible width
    is measured at the near face: z is the depth of that face (`z_is_surface`) or of the centre,
    half an extent farther. Without intrinsics, or when the box is cut sideways, the mean of the
    two sides.
    """
    d_min, d_max = _extent_range(prior)
    if intrinsics is None or box.width <= 0 or not math.isfinite(z) or z <= 0 or \
            truncation(box, intrinsics.width, intrinsics.height, margin)[0]:
        return 0.5 * (d_min + d_max)
    b = box.width / intrinsics.fx          # visible width per metre of depth
    sides = prior.width + prior.length
    if z_is_surface:
        extent = sides - b * z
    else:
        # visible = b * (z - extent/2) and extent = sides - visible, solved for the extent
        extent = (sides - b * z) / (1.0 - 0.5 * b) if b < 2.0 else d_min
    return min(max(extent, d_min), d_max)


def _height_depth(top: float, bottom: float, height_m: float, extent: float) -> float:
    """Centre depth of a cuboid (height, extent along the ray) from normalised box rows."""
    span = bottom - top
    if top >= 0.0 or bottom <= 0.0:      # camera above (or below) the whole object
        return (height_m + 0.5 * extent * abs(top + bottom)) / span
    return height_m / span + 0.5 * extent


def estimate_from_box(box: BoundingBox, prior: SizePrior, intrinsics: CameraIntrinsics,
                      margin: float = DEFAULT_BORDER_MARGIN_PX) -> GeometricEstimate:
    """Metric centre depth of an object of class size `prior` seen in `box`."""
    cut_x, cut_y = truncation(box, intrinsics.width, intrinsics.height, margin)
    d_min, d_max = _extent_range(prior)
    edge_rel = math.sqrt(2.0) * BOX_EDGE_SIGMA_PX
    if not cut_y and box.height > 0:
        top = (box.y_min - intrinsics.cy) / intrinsics.fy
        bottom = (box.y_max - intrinsics.cy) / intrinsics.fy
        extent = 0.5 * (d_min + d_max)
        z = _height_depth(top, bottom, prior.height, extent)
        if not cut_x and box.width > 0:
            # The visible width tells which side faces the camera: refine the extent once.
            extent = depth_extent(prior, box, z, intrinsics, margin)
            z = _height_depth(top, bottom, prior.height, extent)
        # Sensitivity of z to the extent (d z / d D) times the extent's spread.
        same_side = top >= 0.0 or bottom <= 0.0
        dz_dd = 0.5 * abs(top + bottom) / (bottom - top) if same_side else 0.5
        sigma_extent = dz_dd * (d_max - d_min) * UNIFORM_SIGMA
        rel = math.hypot(prior.rel_std, edge_rel / box.height)
        sigma = math.hypot(z * rel, sigma_extent)
        if cut_x:
            # The object goes on out of view: its nearest part, which would look tallest, may be
            # the part cut off, so the centre can be up to about one extent nearer.
            sigma = math.hypot(sigma, d_max)
        return GeometricEstimate(z, sigma, extent, 'height', True)
    if not cut_x and box.width > 0:
        width_m, pose_rel = _visible_width(prior)
        extent = 0.5 * (d_min + d_max)
        z_face = intrinsics.fx * width_m / box.width
        z = z_face + 0.5 * extent
        rel = math.sqrt(prior.rel_std ** 2 + pose_rel ** 2 + (edge_rel / box.width) ** 2)
        sigma = math.hypot(z_face * rel, (d_max - d_min) * UNIFORM_SIGMA * 0.5)
        return GeometricEstimate(z, sigma, extent, 'width', True)
    return GeometricEstimate(basis='cut by the image border on both axes')


def relative_from_box(box: BoundingBox, prior: SizePrior, width: int, height: int,
                      margin: float = DEFAULT_BORDER_MARGIN_PX) -> GeometricEstimate:
    """Without intrinsics: H/h_px (= Z/f), a relative depth that orders objects in one frame."""
    cut_x, cut_y = truncation(box, width, height, margin)
    edge_rel = math.sqrt(2.0) * BOX_EDGE_SIGMA_PX
    if not cut_y and box.height > 0:
        z = prior.height / box.height
        return GeometricEstimate(z, z * math.hypot(prior.rel_std, edge_rel / box.height),
                                 basis='height')
    if not cut_x and box.width > 0:
        width_m, pose_rel = _visible_width(prior)
        z = width_m / box.width
        rel = math.sqrt(prior.rel_std ** 2 + pose_rel ** 2 + (edge_rel / box.width) ** 2)
        return GeometricEstimate(z, z * rel, basis='width')
    return GeometricEstimate(basis='cut by the image border on both axes')


class GeometricDepth(DepthSource):
    """Depth from box size and typical class size (needs CameraInfo for metres)."""

    name = DEPTH_GEOMETRIC
    needs_intrinsics = True

    def __init__(self, knowledge: KnowledgeBase,
                 border_margin_px: float = DEFAULT_BORDER_MARGIN_PX) -> None:
        self.knowledge = knowledge
        self.border_margin_px = border_margin_px

    def estimates(self, detections: list[Detection], intrinsics: CameraIntrinsics | None,
                  width: int, height: int) -> list[GeometricEstimate]:
        """One estimate per detection (unknown for classes without a size prior)."""
        out = []
        for det in detections:
            prior = self.knowledge.size_prior(det.class_name)
            if prior is None:
                out.append(GeometricEstimate(basis='no size prior for this class'))
            elif intrinsics is None:
                out.append(relative_from_box(det.box, prior, width, height,
                                             self.border_margin_px))
            else:
                out.append(estimate_from_box(det.box, prior, intrinsics, self.border_margin_px))
        return out

    def estimate(self, inp: DepthInput, prepared=None) -> DepthOutput:
        ests = self.estimates(inp.detections, inp.intrinsics, inp.image.width, inp.image.height)
        metric = inp.intrinsics is not None
        objects = [ObjectDepth(e.z, e.sigma, DEPTH_GEOMETRIC, metric, e.extent) if e.known
                   else ObjectDepth(source=DEPTH_GEOMETRIC) for e in ests]
        notes = []
        if not metric:
            notes.append('geometric depth without camera_info: relative only (size prior / box '
                         'height), no metres')
        cut = sum(1 for e in ests if e.basis.startswith('cut'))
        if cut:
            notes.append(f'geometric depth: {cut} object(s) cut by the image border on both '
                         'axes have no depth')
        missing = sorted({d.class_name for d, e in zip(inp.detections, ests, strict=True)
                          if e.basis == 'no size prior for this class'})
        if missing:
            notes.append('geometric depth: no size prior for ' + ', '.join(missing[:8]))
        return DepthOutput(objects=objects, metric=metric, notes=notes)
