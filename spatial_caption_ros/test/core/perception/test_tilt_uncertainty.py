"""Geometric depth with the camera's orientation unknown (issue 12): the level-axis estimate's
uncertainty gains the depth spread over the tilts the camera may have (tilt_spread,
camera_tilt_uncertainty_deg). Synthetic boxes: cuboids of the class size priors projected by a
pinhole camera of known pitch and roll, so the truth is exact."""

import math

import numpy as np
import pytest

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.depth import DepthConfig, create_depth_source
from spatial_caption_ros.core.perception.depth.geometric import (
    DEFAULT_TILT_UNCERTAINTY_DEG, GeometricDepth, gravity_from_pitch_roll, level_rotation,
    tilt_spread, truncation)
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.scene_graph.relations import order_sigma_multiple
from spatial_caption_ros.core.types import BoundingBox, CameraIntrinsics, Detection

# TUM fr1's published colour intrinsics (640x480)
K = CameraIntrinsics(fx=517.3, fy=516.5, cx=318.6, cy=255.3, width=640, height=480)
KNOWLEDGE = KnowledgeBase.load()


def seen_box(cls: str, forward: float, right: float, below: float, pitch: float,
             roll: float = 0.0, yaw_deg: float = 0.0) -> BoundingBox:
    """Box of the class's cuboid (upright, centre `below` m under the camera, `forward` m ahead
    and `right` m to the side, level frame) seen by a camera pitched and rolled by the angles."""
    p = KNOWLEDGE.size_prior(cls)
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5)
                        for z in (-0.5, 0.5)]) * [p.width, p.height, p.length]
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    corners = corners @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
    level = corners + [right, below, forward]
    cam = level @ level_rotation(gravity_from_pitch_roll(pitch, roll))
    u = K.fx * cam[:, 0] / cam[:, 2] + K.cx
    v = K.fy * cam[:, 1] / cam[:, 2] + K.cy
    return BoundingBox(u.min(), v.min(), u.max(), v.max())


def centre_depth(forward: float, right: float, below: float, pitch: float,
                 roll: float = 0.0) -> float:
    """Optical-axis depth of a level-frame point seen by the pitched and rolled camera."""
    return float((np.array([right, below, forward])
                  @ level_rotation(gravity_from_pitch_roll(pitch, roll)))[2])


def detection(cls: str, box: BoundingBox, confidence: float = 0.9) -> Detection:
    return Detection(box, 0, cls, confidence)


def desk_scene(pitch: float, roll: float = 0.0) -> tuple[list[Detection], list[float]]:
    """A desk seen from a hand-held camera: a keyboard, a cup and a laptop 0.7 m below it."""
    placed = [('keyboard', 0.9, 0.0, 0.7, 10.0), ('cup', 1.3, 0.35, 0.65, 0.0),
              ('laptop', 1.6, -0.4, 0.6, 30.0)]
    dets = [detection(cls, seen_box(cls, f, r, b, pitch, roll, yaw))
            for cls, f, r, b, yaw in placed]
    truth = [centre_depth(f, r, b, pitch, roll) for _, f, r, b, _ in placed]
    return dets, truth


def test_a_pitched_camera_taken_as_level_misplaces_objects_beyond_the_old_sigma_not_the_new():
    """Looking 35 degrees down at a desk, the level-axis formula reads the keyboard's footprint
    as height: without the tilt term the errors lie far outside the stated sigma, with it
    within 2 sigma."""
    dets, truth = desk_scene(pitch=35.0)
    without = GeometricDepth(KNOWLEDGE, camera_tilt_uncertainty_deg=0.0).estimates(
        dets, K, K.width, K.height)
    with_tilt = GeometricDepth(KNOWLEDGE).estimates(dets, K, K.width, K.height)
    z_old = np.array([e.z for e in without])
    z_new = np.array([e.z for e in with_tilt])
    np.testing.assert_allclose(z_new, z_old)          # the stated depth is the level one
    err = np.abs(z_old - truth)
    assert np.any(err > 2.0 * np.array([e.sigma for e in without]))
    assert np.all(err <= 2.0 * np.array([e.sigma for e in with_tilt]))
    assert all(e.tilt_sigma > 0.1 * e.z for e in with_tilt)
    assert all(e.tilt_sigma == 0.0 for e in without)


def test_gravity_known_gets_no_tilt_term_whatever_the_parameter():
    dets, truth = desk_scene(pitch=35.0)
    down = gravity_from_pitch_roll(35.0, 0.0)
    a = GeometricDepth(KNOWLEDGE, camera_tilt_uncertainty_deg=0.0).estimates(
        dets, K, K.width, K.height, down)
    b = GeometricDepth(KNOWLEDGE, camera_tilt_uncertainty_deg=30.0).estimates(
        dets, K, K.width, K.height, down)
    assert [(e.z, e.sigma) for e in a] == [(e.z, e.sigma) for e in b]
    assert all(e.tilt_sigma == 0.0 for e in b)
    # and with gravity the model places them within its (smaller) sigma
    assert all(abs(e.z - t) <= 2.0 * e.sigma for e, t in zip(b, truth, strict=True))


def test_no_intrinsics_gets_no_tilt_term():
    dets, _ = desk_scene(pitch=35.0)
    rel = GeometricDepth(KNOWLEDGE).estimates(dets, None, K.width, K.height)
    assert all(e.known and not e.metric and e.tilt_sigma == 0.0 for e in rel)


def test_tilt_spread_is_zero_without_tilt_and_grows_with_it():
    dets, _ = desk_scene(pitch=0.0)
    boxes = [d.box for d in dets]
    priors = [KNOWLEDGE.size_prior(d.class_name) for d in dets]
    cuts = [truncation(b, K.width, K.height) for b in boxes]
    level = np.array([e.z for e in GeometricDepth(KNOWLEDGE).estimates(
        dets, K, K.width, K.height, gravity_from_pitch_roll(0.0, 0.0))])
    assert np.all(tilt_spread(boxes, priors, K, cuts, 0.0, level) == 0.0)
    small, large = (tilt_spread(boxes, priors, K, cuts, t, level) for t in (5.0, 20.0))
    assert np.all(small > 0) and np.all(large > 1.4 * small)
    # beyond MAX_TILT_UNCERTAINTY_DEG every tilt point would look steeper than the model allows:
    # the spread is taken at the largest tilt instead of failing
    assert np.all(np.isfinite(tilt_spread(boxes, priors, K, cuts, 90.0, level)))
    assert tilt_spread([], [], K, [], 20.0, np.zeros(0)).shape == (0,)


def test_a_rolled_camera_taken_as_level_is_covered_too():
    """Roll 30 degrees (a hand-held camera turned): a tall object's box is wider and shorter."""
    box = seen_box('chair', 2.0, 0.3, 0.3, 0.0, 30.0)
    truth = centre_depth(2.0, 0.3, 0.3, 0.0, 30.0)
    old = GeometricDepth(KNOWLEDGE, camera_tilt_uncertainty_deg=0.0).estimates(
        [detection('chair', box)], K, K.width, K.height)[0]
    new = GeometricDepth(KNOWLEDGE).estimates([detection('chair', box)], K, K.width, K.height)[0]
    assert new.sigma > old.sigma
    assert abs(new.z - truth) <= 2.0 * new.sigma


def test_the_order_a_level_assumption_would_assert_wrongly_is_no_longer_asserted():
    """Camera 30 degrees down over a desk, two confident detections: a keyboard 1.2 m and a cup
    1.0 m ahead. Taken as level, the keyboard's footprint reads as height and places it in front
    of the cup, beyond the order rule's 1.88 sd without the tilt term; with it the gap is well
    below the rule's threshold, so the graph abstains instead of asserting a wrong order."""
    pitch = 30.0
    dets = [detection('keyboard', seen_box('keyboard', 1.2, -0.2, 0.7, pitch), 0.97),
            detection('cup', seen_box('cup', 1.0, 0.25, 0.65, pitch), 0.97)]
    truth = [centre_depth(1.2, -0.2, 0.7, pitch), centre_depth(1.0, 0.25, 0.65, pitch)]
    assert truth[0] > 1.1 * truth[1]                    # the keyboard is behind the cup

    def gap_sd(estimates) -> float:
        k, c = estimates
        return math.log(c.z / k.z) / math.hypot(k.sigma / k.z, c.sigma / c.z)

    old = GeometricDepth(KNOWLEDGE, camera_tilt_uncertainty_deg=0.0).estimates(
        dets, K, K.width, K.height)
    new = GeometricDepth(KNOWLEDGE).estimates(dets, K, K.width, K.height)
    threshold = order_sigma_multiple(0.97)
    assert old[0].z < old[1].z and gap_sd(old) > threshold     # wrong, and asserted
    assert gap_sd(new) < 0.5 * threshold                        # not asserted any more


def test_the_parameter_reaches_the_source_and_is_checked():
    assert DEFAULT_TILT_UNCERTAINTY_DEG == DepthConfig().camera_tilt_uncertainty_deg
    config = build_config(DepthConfig, {'camera_tilt_uncertainty_deg': 7.5})
    source = create_depth_source('geometric', config, knowledge=KNOWLEDGE)
    assert source.camera_tilt_uncertainty_deg == 7.5
    with pytest.raises(ConfigError, match='camera_tilt_uncertainty_deg'):
        build_config(DepthConfig, {'camera_tilt_uncertainty_deg': 50.0})
