"""Weights-free metric depth from box size, camera intrinsics and typical class sizes.

An object of known physical height H seen by a pinhole camera spans about f*H/Z pixels, so its
depth is Z = f*H/h_px. Four refinements make this usable on real boxes:

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

4. Gravity. When the gravity direction in the camera frame is known (a pitched, rolled camera
   indoors), the class cuboid is projected instead (_model_estimates): distances matching the
   box's height and width per heading, headings weighted by the box's aspect, a hidden or cut
   side taken as a bound.
5. Unknown orientation. Without gravity the optical axis is taken as level, but the camera may
   be pitched or rolled: the same projection at a fixed set of tilts (tilt_spread) says how far
   the depth would move, and that spread is added to the uncertainty.

The uncertainty combines the class's size spread (KnowledgeBase size_rel_std), the unknown depth
extent and the box-edge error, then honest_sigma's terms (occlusion by a nearer box, a wrong
class by the detector's confidence) with the calibration measured on the dev data. Without
intrinsics nothing metric is claimed: the value is then H/h_px (= Z/f), a relative depth that
orders objects in one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import functools
import math

import numpy as np

from spatial_caption_ros.core.perception.depth.base import DepthInput, DepthOutput, DepthSource
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase, SizePrior
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, DEPTH_GEOMETRIC, Detection, NAN, ObjectDepth)

# Standard deviation of one box edge in pixels: detector boxes are localised to about a pixel or
# two on the objects this source is used for (an assumption, not fitted to any data). Two edges
# make a size, so a size has sqrt(2) times this error.
BOX_EDGE_SIGMA_PX = 1.5
# A box side within this many pixels of the image border is taken as cut by the border, in
# pixels of the detector's input (YOLO's standard 640 px side, DETECTOR_INPUT_PX): a larger
# image is seen downscaled (KITTI's 1242 px: 1.94 image px per detector px), so the margin in
# image pixels grows with it (truncation). YOLO clips boxes to the image, but a box of an object
# that goes on out of view does not end exactly there: each edge is regressed to about a
# detector pixel and JPEG blurs it by about another, so 2. On the KITTI dev frames (labels of
# others), 12 of the 13 labelled sides that touch the border end 0-3.7 image px (up to 1.9
# detector px) short of it in the matched detections, while the nearest side that does not
# touch it ends 8.3 px away: 2 x 1.94 = 3.9 px takes the first as cut and not the second. The
# old 2 image px missed a pedestrian ending 2.5 px short of the bottom (docs/depth.md).
DEFAULT_BORDER_MARGIN_PX = 2.0
DETECTOR_INPUT_PX = 640.0
# Uniform distribution's standard deviation is its range / sqrt(12).
UNIFORM_SIGMA = 1.0 / math.sqrt(12.0)
# With gravity known, the level-frame formula needs rays that go forward of the camera; a camera
# looking down steeper than this (or up) sees upright objects from above, where the box height no
# longer measures the object height: the estimate then keeps the level-axis formula.
MAX_PITCH_DEG = 75.0
# Share of a box that another detection's box covers above which the object may be partly hidden
# behind it: its box then shows less than the whole object, which places it too far by up to
# 1 / (1 - covered share); that range, as a uniform spread, is added to the uncertainty.
OCCLUSION_MIN_SHARE = 0.05
# Calibration of the stated uncertainty (honest_sigma), measured once on the pooled dev data
# (62 KITTI objects against their 3D labels, 263 TUM fr1_rpy objects against the Kinect; the
# same two constants for every class and both datasets, nothing per item): the geometric
# terms scaled by 0.6 and a wrong-class term of 0.5 (1 - confidence) z put 75 % of the errors
# within 1 sigma and 96 % within 2 (73 / 96 % on TUM, 85 / 97 % on KITTI); unscaled and
# without the class term it was 84 / 94 %: too wide for the typical object, too narrow for
# the misdetected ones.
GEOMETRY_SIGMA_SCALE = 0.6
MISCLASS_REL = 0.5


@dataclass(frozen=True)
class GeometricEstimate:
    """Depth of one object from its box size, with what it was based on."""

    z: float = NAN                  # centre depth (metres with intrinsics, else Z/f)
    sigma: float = NAN              # one standard deviation, same unit
    extent: float = NAN             # depth extent D used (metres), NaN when unknown
    basis: str = ''                 # 'height', 'width', or why there is no estimate
    metric: bool = False
    roll_deg: float = NAN           # camera roll at the box (gravity known), degrees
    tilt_sigma: float = 0.0         # spread over the unknown camera tilt (same unit as z)

    @property
    def known(self) -> bool:
        return math.isfinite(self.z)

    @property
    def rel_sigma(self) -> float:
        return self.sigma / self.z if self.known and self.z > 0 else NAN


def truncation(box: BoundingBox, width: int, height: int,
               margin: float = DEFAULT_BORDER_MARGIN_PX) -> tuple[bool, bool]:
    """(horizontally cut, vertically cut) by the image border.

    `margin` is in detector-input pixels: images larger than DETECTOR_INPUT_PX are downscaled
    for the detector, so its box edges are that much coarser in image pixels.
    """
    margin *= max(1.0, max(width, height) / DETECTOR_INPUT_PX)
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


def gravity_from_pitch_roll(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Gravity ("down") in the optical frame of a pitched and rolled camera.

    `pitch_deg`: optical axis below the horizontal; `roll_deg`: about the optical axis,
    positive turning the scene clockwise in the image. Level and unrolled: (0, 1, 0).
    """
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    # level -> camera: roll about the optical axis after the pitch about the camera x axis
    return np.array([-math.sin(r) * math.cos(p), math.cos(r) * math.cos(p), math.sin(p)])


def level_rotation(down: np.ndarray) -> np.ndarray | None:
    """Rotation camera optical frame -> level frame, from gravity in the optical frame.

    Rows: x right, y down along gravity, z forward horizontal. None when the camera looks
    steeper than MAX_PITCH_DEG (no forward direction worth the name).
    """
    d = np.asarray(down, dtype=float)
    d = d / np.linalg.norm(d)
    if abs(d[2]) > math.sin(math.radians(MAX_PITCH_DEG)):
        return None
    forward = np.array([0.0, 0.0, 1.0]) - d[2] * d
    forward /= np.linalg.norm(forward)
    return np.stack([np.cross(d, forward), d, forward])


# Headings sampled when the object's yaw is unknown (a cuboid looks the same turned by 180
# degrees, so [0, 180) covers every pose); 12 steps of 15 degrees keep the box size of any
# heading within about 2 % of a sampled one.
YAW_SAMPLES = np.radians(np.arange(0.0, 180.0, 15.0))
# Corrections after the first step (box size ~ 1/distance): perspective makes near, large
# objects converge slower; two corrections bring every dev object within 1 % of the fixed point.
MODEL_REFINEMENTS = 2
_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
# The box's height and width give the same distance for some heading when the object is whole
# and of the class's shape; they may differ by the class's size spread (relative sizes vary
# independently: sqrt(2) x size_rel_std in log distance). Beyond this many of those spreads
# for every heading the box does not show the whole object (see _model_estimates).
SHAPE_SIGMAS = 2.0


def _projected_boxes(sizes: np.ndarray, rays: np.ndarray, rotation: np.ndarray,
                     distance: np.ndarray, intrinsics: CameraIntrinsics,
                     yaws: np.ndarray = YAW_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Image box width and height (pixels) of upright cuboids, one per object and heading.

    sizes (n, 3): width, height, length; rays (n, 3): level-frame directions of the box
    centres (z = 1); rotation: camera -> level frame, (3, 3) for all or (n, 3, 3) per object;
    distance (n, Y): level-forward distances of the centres, one per heading of `yaws`.
    """
    c, s = np.cos(yaws), np.sin(yaws)
    # corners first (8, n, Y): the min / max over the corners are then element-wise
    corners = _CORNERS[:, None, None, :] * sizes[None, :, None, :]         # (8, n, 1, 3)
    centre = rays[:, None, :] * distance[:, :, None]                        # (n, Y, 3)
    level = (centre[None, :, :, 0] + corners[..., 0] * c + corners[..., 2] * s,
             centre[None, :, :, 1] + corners[..., 1],
             centre[None, :, :, 2] - corners[..., 0] * s + corners[..., 2] * c)
    # rows of `rotation` are the level axes in camera coordinates: cam_j = sum_i level_i R_ij
    r = rotation if rotation.ndim == 2 else rotation[:, None, :, :]         # (n, 1, 3, 3)
    cam = [level[0] * r[..., 0, j] + level[1] * r[..., 1, j] + level[2] * r[..., 2, j]
           for j in range(3)]
    depth = np.maximum(cam[2], 1e-3)
    u = cam[0] / depth
    v = cam[1] / depth
    return (intrinsics.fx * (u.max(axis=0) - u.min(axis=0)),
            intrinsics.fy * (v.max(axis=0) - v.min(axis=0)))


def _model_depths(boxes: list[BoundingBox], priors: list[SizePrior],
                  intrinsics: CameraIntrinsics, rotation: np.ndarray,
                  cuts: list[tuple[bool, bool]], yaws: np.ndarray = YAW_SAMPLES,
                  refinements: int = MODEL_REFINEMENTS
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre depths with gravity known, all objects of a frame at once.

    Returns the depths, their sigmas (before the cut-side extent), whether each object could
    be placed, and whether it is cut by the border.

    `rotation`: camera -> level frame (level_rotation), one (3, 3) for every object or (n, 3, 3),
    one per object (tilt_spread: each object under several assumed tilts).

    Each class cuboid, upright on its box-centre ray, is placed at the distance where its
    projected box matches the detected one.

    For each heading the distance that matches the box height and the one that matches the
    width are found (the box size scales as 1/distance up to perspective: one step from a
    common start, one correction); a side cut by the image border is not matched, it bounds
    the distance. Headings whose two distances disagree more than the class's size spread
    allows are unlikely, so the headings are weighted by that agreement (the box's aspect says
    how the object is turned). The estimate is the weighted mean over headings, its
    uncertainty the weighted spread plus the class's size spread and the box-edge error. No
    level camera is assumed: pitch and roll are in the projection, and a flat object seen from
    above (a keyboard) is matched by the footprint it shows, not by a height it does not.
    All objects of a frame go through three vectorised projections.
    """
    n = len(boxes)
    rotations = np.broadcast_to(rotation, (n, 3, 3))
    centres = np.array([b.center for b in boxes])
    rays = np.stack([(centres[:, 0] - intrinsics.cx) / intrinsics.fx,
                     (centres[:, 1] - intrinsics.cy) / intrinsics.fy, np.ones(n)], axis=1)
    rays = np.einsum('nij,nj->ni', rotations, rays)
    forward = rays[:, 2] > 0.05
    rays = rays / np.where(forward, rays[:, 2], 1.0)[:, None]
    sizes = np.array([[p.width, p.height, p.length] for p in priors])
    observed = np.array([[b.width, b.height] for b in boxes])
    start = np.full((n, len(yaws)), 1.0) * (
        sizes.max(axis=1) * intrinsics.fy / np.maximum(observed.max(axis=1), 1.0))[:, None]
    w0, h0 = _projected_boxes(sizes, rays, rotation, start, intrinsics, yaws)
    with np.errstate(divide='ignore', invalid='ignore'):
        d_w = start * w0 / observed[:, 0:1]
        d_h = start * h0 / observed[:, 1:2]
    d_h = np.where(np.isfinite(d_h), d_h, start)
    d_w = np.where(np.isfinite(d_w), d_w, start)
    for _ in range(refinements):
        h1 = _projected_boxes(sizes, rays, rotation, d_h, intrinsics, yaws)[1]
        w1 = _projected_boxes(sizes, rays, rotation, d_w, intrinsics, yaws)[0]
        d_h = d_h * h1 / np.maximum(observed[:, 1:2], 1e-9)
        d_w = d_w * w1 / np.maximum(observed[:, 0:1], 1e-9)
    # optical z of a centre per metre of level-forward distance along its ray
    z_opt = np.einsum('ni,ni->n', rays, rotations[:, :, 2])[:, None]
    cuts_a = np.array(cuts, dtype=bool).reshape(n, 2)
    cut_x, cut_y = cuts_a[:, 0], cuts_a[:, 1]
    use_h = ~cut_y & (observed[:, 1] > 0)
    use_w = ~cut_x & (observed[:, 0] > 0)
    both = use_h & use_w
    rel_std = np.array([p.rel_std for p in priors])
    spread = (math.sqrt(2.0) * np.maximum(rel_std, 0.02))[:, None]
    disagreement = np.abs(np.log(d_h / d_w))
    consistent = both & (disagreement.min(axis=1) <= SHAPE_SIGMAS * spread[:, 0])
    # Consistent: the headings that give the box's aspect are the likely ones. Inconsistent (no
    # heading gives it): one side shows less than the object (hidden behind something, or a
    # posture the prior does not describe, e.g. a person seated behind a desk); hiding only
    # shrinks a side, so the nearer distance is trusted and the farther one bounds the error.
    weight = np.where(consistent[:, None], np.exp(-0.5 * (disagreement / spread) ** 2), 1.0)
    distance = np.where(consistent[:, None], np.sqrt(d_h * d_w),
                        np.where(both[:, None], np.minimum(d_h, d_w),
                                 np.where(use_h[:, None], d_h, d_w)))
    shape_sigma = np.where(both & ~consistent,
                           0.5 * np.mean(np.abs(d_h - d_w) * z_opt, axis=1), 0.0)
    # A side cut by the border shows at most the object's extent there: the object is at least
    # that large in the image, so at most that far (a bound, not an estimate). Where the bound
    # binds, the uncut side shows less than the object too; how much nearer stays unknown:
    # half the bound is added.
    bound_sigma = np.zeros(n)
    for bound, cut in ((d_h, cut_y), (d_w, cut_x)):
        binds = cut & np.any(bound < distance, axis=1)
        bound_sigma = np.where(binds, np.maximum(bound_sigma, 0.5 * np.mean(
            np.minimum(bound, distance) * z_opt, axis=1)), bound_sigma)
        distance = np.where(binds[:, None], np.minimum(distance, bound), distance)
    weight = weight / weight.sum(axis=1, keepdims=True)
    z_each = distance * z_opt
    z = np.sum(weight * z_each, axis=1)
    yaw_sigma = np.sqrt(np.sum(weight * (z_each - z[:, None]) ** 2, axis=1))
    size_px = np.where(both, np.hypot(observed[:, 0], observed[:, 1]),
                       np.where(use_h, observed[:, 1], observed[:, 0]))
    edge_rel = math.sqrt(2.0) * BOX_EDGE_SIGMA_PX / np.maximum(size_px, 1e-9)
    sigma = np.sqrt(yaw_sigma ** 2 + (z * rel_std) ** 2 + (z * edge_rel) ** 2 + shape_sigma ** 2
                    + bound_sigma ** 2)
    return z, sigma, forward & (use_h | use_w), cut_x | cut_y


def _model_estimates(boxes: list[BoundingBox], priors: list[SizePrior],
                     intrinsics: CameraIntrinsics, rotation: np.ndarray,
                     cuts: list[tuple[bool, bool]]) -> list[GeometricEstimate | None]:
    """Centre depths with gravity known, all objects of a frame at once (_model_depths)."""
    z, sigma, placed, cut = _model_depths(boxes, priors, intrinsics, rotation, cuts)
    rotations = np.broadcast_to(rotation, (len(boxes), 3, 3))
    roll = np.degrees(np.arctan2(rotations[:, 1, 0], rotations[:, 1, 1]))
    out: list[GeometricEstimate | None] = []
    for k, prior in enumerate(priors):
        if not placed[k]:
            out.append(None)
            continue
        d_min, d_max = _extent_range(prior)
        # Cut by the border: the object goes on out of view; its nearest part, which would
        # look largest, may be the part cut off, so the centre can be one extent nearer.
        sd = math.hypot(sigma[k], d_max) if cut[k] else float(sigma[k])
        out.append(GeometricEstimate(float(z[k]), sd, 0.5 * (d_min + d_max), 'model', True,
                                     float(roll[k])))
    return out


# Unknown camera orientation (camera_orientation: unknown, no /tf): the optical axis is taken as
# level, while the camera may be pitched and rolled. Pitch and roll are taken as independent,
# zero-mean and normal with this standard deviation in degrees, a property of the cameras the
# product targets, not of any data set: a hand-held camera or phone is held within about 20
# degrees of level most of the time, and a robot's navigation or head camera is mounted level
# to 20-30 degrees down; a robot that knows its camera's pose publishes it (/tf,
# gravity_frame), and a fixed mount states it (camera_orientation: parameters).
DEFAULT_TILT_UNCERTAINTY_DEG = 20.0
# The tilt prior's points (unscented transform for two normal variables, kappa = 1): the level
# camera and pitch or roll at +-sqrt(3) standard deviations, weights 1/3 and 1/6 each. They give
# the mean and variance of the depth over the prior exactly where the depth varies with the
# tilt as a polynomial of degree 3 or less, at five projections per object.
_TILT_POINTS = math.sqrt(3.0) * np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0],
                                          [0.0, -1.0]])
_TILT_WEIGHTS = np.array([1.0 / 3.0] + [1.0 / 6.0] * 4)
# sqrt(3) x the largest tilt stays below MAX_PITCH_DEG (every point has a forward direction)
MAX_TILT_UNCERTAINTY_DEG = 40.0
# The tilt spread is coarser than the placement itself (30 % of its cost, within the depth
# stage's 2 ms): headings 30 degrees apart keep any heading's box size within about 7 % of a
# sampled one, and one correction brings the distances within a few per cent of the fixed
# point, while the spread they measure is tens of per cent (pitch and roll of +-35 degrees).
TILT_YAW_SAMPLES = np.radians(np.arange(0.0, 180.0, 30.0))
TILT_REFINEMENTS = 1


@functools.lru_cache(maxsize=8)
def _tilt_rotations(tilt_deg: float) -> np.ndarray:
    """Camera -> level rotations of the tilt prior's points (_TILT_POINTS x tilt_deg)."""
    out = np.stack([level_rotation(gravity_from_pitch_roll(p * tilt_deg, r * tilt_deg))
                    for p, r in _TILT_POINTS])
    out.flags.writeable = False
    return out


def tilt_spread(boxes: list[BoundingBox], priors: list[SizePrior],
                intrinsics: CameraIntrinsics, cuts: list[tuple[bool, bool]],
                tilt_deg: float, stated: np.ndarray) -> np.ndarray:
    """Depth error of each object from a camera tilt that is not known (one sigma).

    The gravity-aware cuboid projection (_model_estimates) places each object under every
    point of the tilt prior (_TILT_POINTS x `tilt_deg`): where the object is if the camera is
    so tilted. The root of the weighted mean squared difference from the `stated` depth (the
    level-axis one) is the error of stating it: the spread over the tilts and the shift of
    their mean from it. All objects and tilts of a frame go through one batch of projections;
    tilts under which the model cannot place an object are left out.
    """
    n, s = len(boxes), len(_TILT_POINTS)
    if n == 0 or tilt_deg <= 0:
        return np.zeros(n)
    tilt_deg = min(tilt_deg, MAX_TILT_UNCERTAINTY_DEG)
    z, _, placed, _ = _model_depths([b for b in boxes for _ in range(s)],
                                    [p for p in priors for _ in range(s)], intrinsics,
                                    np.tile(_tilt_rotations(tilt_deg), (n, 1, 1)),
                                    [c for c in cuts for _ in range(s)], TILT_YAW_SAMPLES,
                                    TILT_REFINEMENTS)
    z = np.where(placed, z, NAN).reshape(n, s)
    diff = z - np.asarray(stated, dtype=float)[:, None]
    valid = np.isfinite(diff)
    weight = np.where(valid, _TILT_WEIGHTS[None, :], 0.0)
    total = weight.sum(axis=1)
    mean_sq = np.sum(weight * np.where(valid, diff, 0.0) ** 2, axis=1) / np.maximum(total, 1e-12)
    return np.where(total > 0, np.sqrt(mean_sq), 0.0)


def estimate_from_box(box: BoundingBox, prior: SizePrior, intrinsics: CameraIntrinsics,
                      margin: float = DEFAULT_BORDER_MARGIN_PX,
                      down: np.ndarray | None = None) -> GeometricEstimate:
    """Metric centre depth of an object of class size `prior` seen in `box`.

    `down`: the gravity direction in the camera optical frame when known (from /tf, a fixed
    mount's pitch and roll, or an IMU); the upright extent is then measured along gravity,
    which removes the camera's pitch and roll from the estimate.
    """
    cut_x, cut_y = truncation(box, intrinsics.width, intrinsics.height, margin)
    if down is not None:
        rotation = level_rotation(down)
        if rotation is not None:
            found = _model_estimates([box], [prior], intrinsics, rotation, [(cut_x, cut_y)])[0]
            if found is not None:
                return found
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
        if box.height > 0:
            # The cut top or bottom shows at most the object's height, so the object is at most
            # as far as that height places it: a bound, as in the gravity-aware model. Where it
            # binds, the width showed less than the object too (a stride, a hidden side), and
            # how much nearer it is stays unknown: half the bound. Where it does not, the box
            # cannot tell whether much of the height is cut (the width is right) or the width
            # shows more than the prior (a walking person's stride and arms: the bound is near
            # the truth): both ends are consistent with it, so half their difference is added
            # (the "hidden side" rule of the gravity-aware model).
            top = (box.y_min - intrinsics.cy) / intrinsics.fy
            bottom = (box.y_max - intrinsics.cy) / intrinsics.fy
            bound = _height_depth(top, bottom, prior.height, extent)
            if bound < z:
                z, sigma = bound, math.hypot(sigma, 0.5 * bound)
            else:
                sigma = math.hypot(sigma, 0.5 * (bound - z))
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


def honest_sigma(detections: list[Detection],
                 estimates: list[GeometricEstimate]) -> list[GeometricEstimate]:
    """The stated uncertainty of each estimate, with what the box alone cannot tell.

    Occlusion: a box covered by another box whose object is placed nearer (or has no depth) may
    show only part of its object, which places it too far: by up to 1/(1 - f) for a covered
    share f, so the true depth lies between z (1 - f) and z. Half that range is added.

    Calibration: the geometric terms (size spread, heading, extent, edges, cut sides,
    occlusion) are each taken at their widest plausible range and added as if independent; on
    the dev data they overstate the error, so they are scaled by GEOMETRY_SIGMA_SCALE (below).
    The unknown tilt's term (`tilt_sigma`, tilt_spread) is a standard deviation of a stated
    prior, not a widest range: it is added unscaled.

    Class: the size prior is only the object's if the class is right. The detector's
    confidence c is about the chance that it is, so MISCLASS_REL (1 - c) z is added: with
    1 - c the size belongs to another class, and the classes a detector confuses indoors (a
    monitor called a phone, a box called a book) differ in size by a factor of two or more.
    """
    if not estimates:
        return []
    boxes = np.array([[d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max] for d in detections])
    z = np.array([e.z for e in estimates])
    w = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0],
                                                                      boxes[None, :, 0])
    h = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1],
                                                                      boxes[None, :, 1])
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
    share = np.clip(w, 0, None) * np.clip(h, 0, None) / area[:, None]    # of row i's box
    # j may hide i when j is placed nearer or has no depth
    may_hide = ~(np.isfinite(z)[None, :] & (z[None, :] >= z[:, None]))
    np.fill_diagonal(may_hide, False)
    covered = np.max(np.where(may_hide, share, 0.0), axis=1)
    out = list(estimates)
    for i, (det, est) in enumerate(zip(detections, estimates, strict=True)):
        if not est.known:
            continue
        geometry = est.sigma
        if covered[i] > OCCLUSION_MIN_SHARE:
            geometry = math.hypot(geometry, 0.5 * est.z * min(float(covered[i]), 0.9))
        wrong_class = MISCLASS_REL * (1.0 - min(max(det.confidence, 0.0), 1.0)) * est.z
        out[i] = replace(est, sigma=math.hypot(GEOMETRY_SIGMA_SCALE * geometry, wrong_class,
                                               est.tilt_sigma))
    return out


# Two objects rest on the same surface when the heights below the camera at which their box
# bottoms meet the ground agree within this many combined standard deviations (the two-sided
# 95 % band: objects on one desk agree, a cup on the desk and a chair on the floor do not).
SAME_SURFACE_SIGMAS = 2.0
# Classes whose box bottom is not where they rest: a seated or standing person's lowest visible
# part is often hidden behind a desk, and a person sits or stands on another surface than the
# things on the table; a monitor or TV is detected by its screen, which a stand or a wall
# mount holds above the surface.
NOT_RESTING = frozenset({'person', 'tv'})
# A surface is taken as found when at least this many other objects agree on its height: one
# other object with a wide band agrees with almost anything (a cup on the desk with a chair on
# the floor), two that also agree with each other's mean rarely do by chance.
MIN_SURFACE_OTHERS = 2
# Floor contact: the floor under an object is not exactly level with the camera's own support
# (a road's grade changes, a car pitches when it brakes or is loaded, a camera's mount is set
# to a degree or so): one degree, an assumption, not fitted.
FLOOR_TILT_SIGMA_DEG = 1.0


def surface_consistency(detections: list[Detection], estimates: list[GeometricEstimate],
                        intrinsics: CameraIntrinsics, rotation: np.ndarray | None,
                        margin: float, floor_height: float = 0.0,
                        tilt_deg: float = 0.0) -> list[GeometricEstimate]:
    """Objects resting on one surface share its height: a second, independent depth for each.

    With gravity known, the ray through the bottom centre of an object's box meets the
    surface it rests on at the object's near bottom edge. Each object's own estimate places
    that edge, and so the surface, at a height h_k below the camera. For each object the
    other objects whose heights agree with its own (SAME_SURFACE_SIGMAS) give, as their
    inverse-variance mean, the surface height without its own estimate; its bottom ray meets
    that height at a distance that depends on the box bottom and the others' sizes, not its
    own size prior or class. Dev data: the errors of objects of one frame are independent
    (make eval: error link 0.01 on TUM), so the two depths are combined by inverse variance.
    Left out: boxes cut at the bottom or whose bottom lies in the box of a nearer object
    (the bottom is hidden), NOT_RESTING classes, and objects with fewer than
    MIN_SURFACE_OTHERS others on their surface.

    Floor contact: with the camera's height above the floor known (`floor_height`, a
    parameter: KITTI's 1.65 m), an object whose own height band holds the floor stands on it,
    and the floor's height replaces the others' mean (its uncertainty: the tilt of the floor
    under the object, FLOOR_TILT_SIGMA_DEG, through the bottom ray's slope). Without gravity
    (rotation None) the camera is taken as level, the camera's unknown tilt (`tilt_deg`,
    camera_tilt_uncertainty_deg) joins the floor's, and only the floor is used.
    """
    n = len(estimates)
    known_gravity = rotation is not None
    usable = np.array([
        e.known and d.class_name not in NOT_RESTING
        and d.box.y_max < intrinsics.height - margin * max(
            1.0, max(intrinsics.width, intrinsics.height) / DETECTOR_INPUT_PX)
        for d, e in zip(detections, estimates, strict=True)])
    if usable.sum() <= (MIN_SURFACE_OTHERS if floor_height <= 0 else 0):
        return estimates
    if rotation is None:
        rotation = np.eye(3)
    z = np.array([e.z if e.known else 1.0 for e in estimates])
    sigma = np.array([e.sigma if e.known else 1.0 for e in estimates])
    extent = np.array([e.extent if math.isfinite(e.extent) else 0.0 for e in estimates])
    boxes = np.array([[d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max] for d in detections])
    u = 0.5 * (boxes[:, 0] + boxes[:, 2])
    # a bottom inside the box of a nearer object is hidden behind it
    inside = ((u[:, None] > boxes[None, :, 0]) & (u[:, None] < boxes[None, :, 2])
              & (boxes[:, None, 3] > boxes[None, :, 1]) & (boxes[:, None, 3] < boxes[None, :, 3])
              & (z[None, :] < z[:, None]))
    np.fill_diagonal(inside, False)
    usable &= ~inside.any(axis=1)

    def level(v: np.ndarray) -> np.ndarray:
        rays = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy,
                         np.ones(n)], axis=1)
        return rays @ rotation.T

    centre = level(0.5 * (boxes[:, 1] + boxes[:, 3]))
    bottom = level(boxes[:, 3])
    # slope of the bottom ray: metres below the camera per metre forward, and its change for
    # the box-edge error
    slope = bottom[:, 1] / np.maximum(bottom[:, 2], 1e-6)
    edge = level(boxes[:, 3] + BOX_EDGE_SIGMA_PX)
    slope_sigma = np.abs(edge[:, 1] / np.maximum(edge[:, 2], 1e-6) - slope)
    usable &= (slope > 0.05) & (bottom[:, 2] > 0.05) & (centre[:, 2] > 0.05)
    # level-forward distance of the centre; the near bottom edge is half the extent nearer
    forward = z * centre[:, 2]
    near = np.maximum(forward - 0.5 * extent, 1e-3)
    height = near * slope
    height_sigma = np.hypot(sigma * centre[:, 2] * slope, near * slope_sigma)
    # for each object, the others on its surface (leave-one-out, inverse-variance mean)
    agree = (usable[:, None] & usable[None, :]
             & (np.abs(height[:, None] - height[None, :]) <= SAME_SURFACE_SIGMAS * np.hypot(
                 height_sigma[:, None], height_sigma[None, :])))
    np.fill_diagonal(agree, False)
    if not known_gravity:
        agree[:] = False
    w = np.where(usable, 1.0 / np.maximum(height_sigma, 1e-9) ** 2, 0.0)
    total = agree @ w
    has = total > 0
    h = np.where(has, (agree @ (w * height)) / np.where(has, total, 1.0), 1.0)
    # An uncertain object agrees with any surface; it belongs to this one only if the surface
    # height found lies within its own band too (else a chair on the floor or a misdetected
    # thing drags the desk height): one pass of that check, then the mean again.
    agree &= np.abs(height[None, :] - h[:, None]) <= SAME_SURFACE_SIGMAS * height_sigma[None, :]
    total = agree @ w
    has = agree.sum(axis=1) >= MIN_SURFACE_OTHERS
    h = np.where(has, (agree @ (w * height)) / np.where(has, total, 1.0), 1.0)
    h_sigma = 1.0 / np.sqrt(np.where(has, total, 1.0))
    if floor_height > 0:
        on_floor = usable & (np.abs(height - floor_height) <= SAME_SURFACE_SIGMAS * height_sigma)
        h = np.where(on_floor, floor_height, h)
        h_sigma = np.where(on_floor, 0.0, h_sigma)
        # the floor under the object tilted against the camera's level: the slope changes by
        # the tilt (radians) times d slope / d angle = 1 + slope^2
        tilt = math.hypot(FLOOR_TILT_SIGMA_DEG, 0.0 if known_gravity else tilt_deg)
        slope_sigma = np.where(on_floor, np.hypot(slope_sigma, math.radians(tilt) * (
            1.0 + slope ** 2)), slope_sigma)
        has = has | on_floor
    near_contact = h / np.maximum(slope, 1e-6)
    z_contact = (near_contact + 0.5 * extent) / np.maximum(centre[:, 2], 1e-6)
    rel = np.hypot(h_sigma / h, slope_sigma / np.maximum(slope, 1e-6))
    sigma_contact = np.hypot(near_contact * rel, 0.5 * extent * UNIFORM_SIGMA) / np.maximum(
        centre[:, 2], 1e-6)
    w_own, w_contact = 1.0 / sigma ** 2, 1.0 / sigma_contact ** 2
    fused = (w_own * z + w_contact * z_contact) / (w_own + w_contact)
    # Two depths further apart than their sigmas allow mean one of the assumptions failed
    # (a box bottom above the surface: a book on a stack, a thing held in the air): the
    # combined sigma is scaled by their disagreement (the Particle Data Group's scale factor
    # for inconsistent measurements).
    scale = np.maximum(1.0, np.abs(z - z_contact) / np.hypot(sigma, sigma_contact))
    fused_sigma = scale / np.sqrt(w_own + w_contact)
    out = list(estimates)
    for k in np.flatnonzero(has):
        out[k] = replace(estimates[k], z=float(fused[k]), sigma=float(fused_sigma[k]),
                         basis=estimates[k].basis + '+surface')
    return out


# Things a person wears or holds: inside that person's box they are at the person's depth, within
# arm's reach. Two-way: the item's size gives a second, independent depth of the person too.
CARRIED = frozenset({'tie', 'backpack', 'handbag', 'cell phone', 'umbrella', 'baseball glove',
                     'baseball bat', 'tennis racket'})
CARRIER = 'person'
# Least share of an item's box inside the person's box for it to be taken as that person's.
CARRIED_MIN_INSIDE = 0.8
# Where a worn or held item is along the line of sight, against the person's centre: from a
# backpack about 0.3 m behind it to a phone held out about 0.7 m in front (arm's reach: an
# assumption, not fitted), as a uniform spread.
CARRIED_RANGE_M = 1.0


def carried_consistency(detections: list[Detection],
                        estimates: list[GeometricEstimate]) -> list[GeometricEstimate]:
    """A person and what they wear or hold share one depth: each item's depth joins the person's.

    The person's box height gives one depth, a tie's or a bag's box size another; inside the
    person's box (CARRIED_MIN_INSIDE) and agreeing within SAME_SURFACE_SIGMAS combined sigmas
    (with the item's place against the body, CARRIED_RANGE_M), they are two measurements of
    nearly one distance, combined by inverse variance: the person with all their items, each
    item with the person's own estimate. Without this a cut-off person and their tie were placed
    1.8 m apart (zidane.jpg). An item further off than its band allows stays as it was: it may
    lie behind the person (a bag on a chair), not on them. Metric estimates only.
    """
    attach = CARRIED_RANGE_M * UNIFORM_SIGMA
    people = [k for k, (d, e) in enumerate(zip(detections, estimates, strict=True))
              if d.class_name == CARRIER and e.known and e.metric]
    if not people:
        return estimates
    owner: dict[int, int] = {}
    for i, (det, est) in enumerate(zip(detections, estimates, strict=True)):
        if det.class_name not in CARRIED or not (est.known and est.metric):
            continue
        area = max(det.box.area, 1e-9)
        best, best_gap = None, SAME_SURFACE_SIGMAS
        for k in people:
            pe = estimates[k]
            inside = det.box.intersection(detections[k].box) / area
            gap = abs(est.z - pe.z) / math.sqrt(est.sigma ** 2 + pe.sigma ** 2 + attach ** 2)
            if inside >= CARRIED_MIN_INSIDE and gap <= best_gap:
                best, best_gap = k, gap
        if best is not None:
            owner[i] = best
    out = list(estimates)
    for k in set(owner.values()):
        person = estimates[k]
        items = [i for i, o in owner.items() if o == k]
        zs = [person.z] + [estimates[i].z for i in items]
        sigmas = [person.sigma] + [math.hypot(estimates[i].sigma, attach) for i in items]
        out[k] = replace(person, basis=person.basis + '+carried',
                         **_combined(np.array(zs), np.array(sigmas)))
        for i in items:
            item = estimates[i]
            out[i] = replace(item, basis=item.basis + '+carrier', **_combined(
                np.array([item.z, person.z]),
                np.array([item.sigma, math.hypot(person.sigma, attach)])))
    return out


def _combined(z: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """Inverse-variance mean of independent depths; its sigma scaled by their disagreement.

    The scale is the Particle Data Group's for inconsistent measurements, as in
    surface_consistency: sqrt(chi^2 / (n - 1)) when above 1.
    """
    w = 1.0 / np.maximum(sigma, 1e-9) ** 2
    mean = float(np.sum(w * z) / np.sum(w))
    chi2 = float(np.sum(w * (z - mean) ** 2))
    scale = max(1.0, math.sqrt(chi2 / max(len(z) - 1, 1)))
    return {'z': mean, 'sigma': scale / math.sqrt(float(np.sum(w)))}


class GeometricDepth(DepthSource):
    """Depth from box size and typical class size (needs CameraInfo for metres)."""

    name = DEPTH_GEOMETRIC
    needs_intrinsics = True

    def __init__(self, knowledge: KnowledgeBase,
                 border_margin_px: float = DEFAULT_BORDER_MARGIN_PX,
                 surface_consistency: bool = True, camera_height_m: float = 0.0,
                 camera_tilt_uncertainty_deg: float = DEFAULT_TILT_UNCERTAINTY_DEG) -> None:
        self.knowledge = knowledge
        self.camera_tilt_uncertainty_deg = camera_tilt_uncertainty_deg
        self.border_margin_px = border_margin_px
        self.surface_consistency = surface_consistency
        self.camera_height_m = camera_height_m

    def estimates(self, detections: list[Detection], intrinsics: CameraIntrinsics | None,
                  width: int, height: int,
                  down: np.ndarray | None = None) -> list[GeometricEstimate]:
        """One estimate per detection (unknown for classes without a size prior)."""
        priors = [self.knowledge.size_prior(d.class_name) for d in detections]
        modelled: dict[int, GeometricEstimate | None] = {}
        rotation = level_rotation(down) if down is not None and intrinsics is not None else None
        if rotation is not None:
            # every object of the frame through the gravity-aware model at once
            index = [k for k, p in enumerate(priors) if p is not None]
            found = _model_estimates(
                [detections[k].box for k in index], [priors[k] for k in index], intrinsics,
                rotation, [truncation(detections[k].box, intrinsics.width, intrinsics.height,
                                      self.border_margin_px) for k in index]) if index else []
            modelled = dict(zip(index, found, strict=True))
        out = []
        for k, (det, prior) in enumerate(zip(detections, priors, strict=True)):
            if prior is None:
                out.append(GeometricEstimate(basis='no size prior for this class'))
            elif intrinsics is None:
                out.append(relative_from_box(det.box, prior, width, height,
                                             self.border_margin_px))
            elif modelled.get(k) is not None:
                out.append(modelled[k])
            else:
                out.append(estimate_from_box(det.box, prior, intrinsics, self.border_margin_px))
        if down is None and intrinsics is not None and self.camera_tilt_uncertainty_deg > 0:
            out = self._with_tilt(detections, priors, out, intrinsics)
        out = honest_sigma(detections, out)
        if intrinsics is not None and self.surface_consistency and (
                rotation is not None or (down is None and self.camera_height_m > 0)):
            out = surface_consistency(detections, out, intrinsics, rotation,
                                      self.border_margin_px, self.camera_height_m,
                                      self.camera_tilt_uncertainty_deg)
        if intrinsics is not None and self.surface_consistency:
            out = carried_consistency(detections, out)
        return out

    def _with_tilt(self, detections: list[Detection], priors: list[SizePrior | None],
                   estimates: list[GeometricEstimate],
                   intrinsics: CameraIntrinsics) -> list[GeometricEstimate]:
        """The unknown tilt's spread (tilt_spread) on each estimate of a level-axis frame."""
        index = [k for k, e in enumerate(estimates) if e.known and priors[k] is not None]
        if not index:
            return estimates
        spread = tilt_spread(
            [detections[k].box for k in index], [priors[k] for k in index], intrinsics,
            [truncation(detections[k].box, intrinsics.width, intrinsics.height,
                        self.border_margin_px) for k in index], self.camera_tilt_uncertainty_deg,
            np.array([estimates[k].z for k in index]))
        out = list(estimates)
        for k, sd in zip(index, spread, strict=True):
            out[k] = replace(estimates[k], tilt_sigma=float(sd))
        return out

    def estimate(self, inp: DepthInput, prepared=None) -> DepthOutput:
        ests = self.estimates(inp.detections, inp.intrinsics, inp.image.width, inp.image.height,
                              inp.gravity)
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
