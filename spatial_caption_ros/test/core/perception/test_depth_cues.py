"""The depth cues of issue 12 on scenes with known answers: the gravity-aware geometric
estimate (pitch, roll, flat objects), cut and partly hidden boxes, the honest sigma terms, the
sensor's in-object statistic and the 16UC1 depth scale."""

import math

import numpy as np
import pytest

from spatial_caption_ros.core.inputs.image import raw_to_depth_metres
from spatial_caption_ros.core.perception.depth.geometric import (
    estimate_from_box, GEOMETRY_SIGMA_SCALE, gravity_from_pitch_roll, honest_sigma,
    level_rotation, MISCLASS_REL)
from spatial_caption_ros.core.perception.depth.statistics import BoxStatConfig, object_readings
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import BoundingBox, CameraIntrinsics, Detection

CAMERA = CameraIntrinsics(517.3, 516.5, 318.6, 255.3, 640, 480)     # TUM fr1 colour camera
KNOWLEDGE = KnowledgeBase.load()


def _camera_from_level(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation level -> camera for a camera pitched down and rolled (level: y down)."""
    p, r = -math.radians(pitch_deg), math.radians(roll_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return (rx @ rz).T


def _project(cls, centre_level, yaw_deg, pitch_deg, roll_deg):
    """Box of the class's cuboid (upright, turned by yaw) seen by the pitched, rolled camera;
    the true optical z of its centre and gravity in the optical frame."""
    prior = KNOWLEDGE.size_prior(cls)
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    rot = _camera_from_level(pitch_deg, roll_deg)
    us, vs = [], []
    for dx in (-prior.width / 2, prior.width / 2):
        for dz in (-prior.length / 2, prior.length / 2):
            for dy in (-prior.height / 2, prior.height / 2):
                p = rot @ (np.array(centre_level) + [dx * c + dz * s, dy, -dx * s + dz * c])
                us.append(CAMERA.fx * p[0] / p[2] + CAMERA.cx)
                vs.append(CAMERA.fy * p[1] / p[2] + CAMERA.cy)
    box = BoundingBox(min(us), min(vs), max(us), max(vs))
    assert 3 < box.x_min and box.x_max < 637 and 3 < box.y_min and box.y_max < 477
    return box, (rot @ np.array(centre_level))[2], rot @ np.array([0.0, 1.0, 0.0]), prior


# (class, centre in the level frame in metres, heading, pitch down, roll): desk scenes in view
SCENES = [('keyboard', (0.1, 0.6, 0.6), 30, 35, 0), ('keyboard', (0.1, 0.6, 0.6), 30, 35, 20),
          ('keyboard', (0.1, 0.6, 0.6), 30, 45, -40), ('keyboard', (0.0, 0.7, 0.5), 0, 60, 10),
          ('cup', (-0.2, 0.5, 0.8), 0, 35, 20), ('cup', (0.1, 0.7, 0.5), 0, 45, -40),
          ('laptop', (0.0, 0.5, 0.9), 60, 35, 0), ('laptop', (0.0, 0.5, 0.9), 60, 45, -40),
          ('chair', (0.3, 0.8, 1.6), 20, 35, 0)]


@pytest.mark.parametrize('cls, centre, yaw, pitch, roll', SCENES)
def test_gravity_removes_pitch_and_roll_from_the_geometric_estimate(cls, centre, yaw, pitch,
                                                                     roll):
    box, z_true, down, prior = _project(cls, centre, yaw, pitch, roll)
    level = estimate_from_box(box, prior, CAMERA)
    known = estimate_from_box(box, prior, CAMERA, down=down)
    assert known.basis == 'model' and abs(known.roll_deg) == pytest.approx(abs(roll), abs=1e-6)
    # the class's own cuboid: within 12 % whatever the heading (the box alone cannot tell it)
    assert abs(known.z - z_true) < 0.12 * z_true
    assert abs(known.z - z_true) < known.sigma
    if cls == 'keyboard':       # flat, seen from above: the level-axis formula reads it as tall
        assert abs(level.z - z_true) > 0.3 * z_true


def test_a_level_camera_gives_the_same_answer_either_way():
    box, z_true, down, prior = _project('person', (0.5, 0.0, 4.0), 0, 0, 0)
    assert down == pytest.approx([0, 1, 0])
    level = estimate_from_box(box, prior, CAMERA)
    known = estimate_from_box(box, prior, CAMERA, down=down)
    assert level.z == pytest.approx(z_true, rel=0.05) and known.z == pytest.approx(z_true,
                                                                                   rel=0.05)


def test_pitch_and_roll_parameters_give_gravity_in_the_optical_frame():
    for pitch, roll in ((35, 0), (35, 20), (45, -40), (0, 30)):
        # positive roll: the scene turned clockwise in the image (gravity leans to the left)
        assert gravity_from_pitch_roll(pitch, roll) == pytest.approx(
            _camera_from_level(pitch, -roll) @ np.array([0.0, 1.0, 0.0]))
    assert gravity_from_pitch_roll(0, 0) == pytest.approx([0, 1, 0])
    assert gravity_from_pitch_roll(0, 30)[0] < 0


def test_steep_views_keep_the_level_axis_formula():
    assert level_rotation(np.array([0.0, 0.2, 0.98])) is None           # 78 degrees down
    rot = level_rotation(np.array([0.0, 0.6, 0.8]))
    assert rot @ np.array([0.0, 0.6, 0.8]) == pytest.approx([0, 1, 0])
    assert rot @ rot.T == pytest.approx(np.eye(3))


def test_a_hidden_side_is_not_trusted_and_says_so():
    box, z_true, down, prior = _project('person', (0.3, 0.2, 4.0), 0, 5, 0)
    whole = estimate_from_box(box, prior, CAMERA, down=down)
    # the lower half hidden behind a desk: the height says 2x too far, the width does not
    hidden = BoundingBox(box.x_min, box.y_min, box.x_max, 0.5 * (box.y_min + box.y_max))
    part = estimate_from_box(hidden, prior, CAMERA, down=down)
    assert abs(part.z - z_true) < 0.2 * z_true
    assert part.sigma > 1.5 * whole.sigma
    # half of it out of view on the left: the visible width only bounds the distance
    cut = BoundingBox(0.0, box.y_min, 0.5 * box.width, box.y_max)
    bounded = estimate_from_box(cut, prior, CAMERA, down=down)
    assert bounded.known and abs(bounded.z - z_true) < 2.0 * bounded.sigma


def test_honest_sigma_adds_wrong_class_and_occlusion_terms():
    prior = KNOWLEDGE.size_prior('cup')
    near_box, far_box = BoundingBox(300, 200, 340, 250), BoundingBox(310, 215, 330, 240)
    near, far = (estimate_from_box(b, prior, CAMERA) for b in (near_box, far_box))
    dets = [Detection(near_box, 41, 'cup', 0.9), Detection(far_box, 41, 'cup', 0.4)]
    out = honest_sigma(dets, [near, far])
    assert out[0].sigma == pytest.approx(math.hypot(GEOMETRY_SIGMA_SCALE * near.sigma,
                                                    MISCLASS_REL * 0.1 * near.z))
    # the far cup lies wholly inside the near one's box: it may be hidden behind it
    hidden = math.hypot(far.sigma, 0.5 * far.z * 0.9)
    assert out[1].sigma == pytest.approx(math.hypot(GEOMETRY_SIGMA_SCALE * hidden,
                                                    MISCLASS_REL * 0.6 * far.z))
    assert out[1].z == far.z and out[0].z == near.z     # sigma only: the values stay


def test_object_readings_skip_holes_background_and_edges():
    depth = np.full((100, 100), 3.0, np.float32)         # background wall at 3 m
    depth[20:80, 30:70] = 1.0                             # the object at 1 m
    depth[20:80, 30:70][::3, ::3] = np.nan                # Kinect holes
    depth[40:42, 30:70] = 0.2                             # a thin occluding edge (speckle)
    st = object_readings(depth, BoundingBox(20, 10, 80, 90), BoxStatConfig(), band=0.5)
    assert st.value == pytest.approx(1.0) and st.spread < 0.01 and st.visible_range < 0.01
    slope = np.tile(np.linspace(1.0, 1.6, 100, dtype=np.float32)[:, None], (1, 100))
    table = object_readings(slope, BoundingBox(0, 0, 100, 100), BoxStatConfig(), band=1.6)
    assert table.value == pytest.approx(1.3, abs=0.02) and table.visible_range > 0.2
    empty = object_readings(np.full((50, 50), np.nan, np.float32), BoundingBox(0, 0, 50, 50),
                            BoxStatConfig(), band=0.5)
    assert not empty.known


def test_16uc1_depth_scale():
    raw = np.array([[5000, 0], [10000, 65535]], np.uint16)
    tum = raw_to_depth_metres(2, 2, '16UC1', 4, raw.tobytes(), scale=1 / 5000)
    assert tum[0, 0] == pytest.approx(1.0) and tum[1, 0] == pytest.approx(2.0)
    assert np.isnan(tum[0, 1])
    mm = raw_to_depth_metres(2, 2, '16UC1', 4, raw.tobytes())
    assert mm[0, 0] == pytest.approx(5.0)
    metres = raw_to_depth_metres(1, 1, '32FC1', 4, np.float32([2.5]).tobytes(), scale=1 / 5000)
    assert metres[0, 0] == pytest.approx(2.5)


# ---------------------------------------------------------------- same surface (issue 12)

DESK_Y, FLOOR_Y = 0.75, 1.45          # metres below the camera, along gravity


def _resting(cls, x, forward, surface_y, yaw=20, pitch=35, roll=10, detected_as=None,
             confidence=0.9):
    """A detection of `cls` resting on the surface at `surface_y`, and its true optical z."""
    prior = KNOWLEDGE.size_prior(cls)
    box, z_true, down, _ = _project(cls, (x, surface_y - prior.height / 2, forward), yaw, pitch,
                                    roll)
    return Detection(box, 0, detected_as or cls, confidence), z_true, down


def test_objects_on_one_desk_correct_each_other_and_a_floor_object_is_left_alone():
    from spatial_caption_ros.core.perception.depth.geometric import GeometricDepth
    scene = [_resting('keyboard', 0.0, 1.0, DESK_Y), _resting('laptop', -0.35, 1.2, DESK_Y),
             _resting('book', 0.35, 1.1, DESK_Y),
             # a cup the detector calls a wine glass (unsure, as such mistakes are): the wrong
             # size prior
             _resting('cup', 0.15, 1.3, DESK_Y, yaw=0, detected_as='wine glass',
                      confidence=0.4),
             _resting('chair', -0.6, 2.2, FLOOR_Y, yaw=0)]
    dets, truth, down = [s[0] for s in scene], [s[1] for s in scene], scene[0][2]
    alone = GeometricDepth(KNOWLEDGE, surface_consistency=False).estimates(
        dets, CAMERA, 640, 480, down)
    joint = GeometricDepth(KNOWLEDGE).estimates(dets, CAMERA, 640, 480, down)
    glass_before, glass_after = (abs(e[3].z - truth[3]) / truth[3] for e in (alone, joint))
    assert glass_before > 0.15 and glass_after < 0.5 * glass_before
    assert joint[3].basis.endswith('+surface') and abs(joint[3].z - truth[3]) < 2 * joint[3].sigma
    for k in range(3):        # the correct ones stay within their (smaller) sigma
        assert abs(joint[k].z - truth[k]) < 1.5 * joint[k].sigma < 1.5 * alone[k].sigma
    # the chair stands on the floor: no desk object agrees with its surface height
    assert joint[4] == alone[4]


def test_no_surface_cue_for_people_cut_bottoms_lone_pairs_or_without_gravity():
    from spatial_caption_ros.core.perception.depth.geometric import GeometricDepth
    source = GeometricDepth(KNOWLEDGE)
    (kb, _, down), (cup, _, _), (book, _, _) = (
        _resting('keyboard', 0.0, 1.0, DESK_Y), _resting('cup', 0.15, 1.3, DESK_Y, yaw=0),
        _resting('book', 0.35, 1.1, DESK_Y))
    person = Detection(BoundingBox(200, 100, 300, 300), 0, 'person', 0.9)
    cut = Detection(BoundingBox(book.box.x_min, book.box.y_min, book.box.x_max, 479.5), 0,
                    'book', 0.9)
    # one other object does not make a surface; a person and a box cut at the bottom do not
    # count as resting objects
    for dets in ([kb, cup], [kb, cup, person], [kb, cup, cut]):
        out = source.estimates(dets, CAMERA, 640, 480, down)
        assert not any(e.basis.endswith('+surface') for e in out), [e.basis for e in out]
    assert not any(e.basis.endswith('+surface')
                   for e in source.estimates([kb, cup, book], CAMERA, 640, 480, None))
    assert all(e.basis.endswith('+surface')
               for e in source.estimates([kb, cup, book], CAMERA, 640, 480, down))


def test_floor_contact_with_a_known_camera_height_and_its_false_cases():
    from spatial_caption_ros.core.perception.depth.geometric import GeometricDepth
    height = 1.65                       # KITTI's camera above the road

    def source(camera_height: float = 0.0) -> GeometricDepth:
        # KITTI's level mount: known to a degree (camera_tilt_uncertainty_deg)
        return GeometricDepth(KNOWLEDGE, camera_height_m=camera_height,
                              camera_tilt_uncertainty_deg=1.0)

    prior = KNOWLEDGE.size_prior('car')
    box, z_true, _, _ = _project('car', (1.0, height - prior.height / 2, 12.0), 0, 0, 0)
    # the top tenth hidden (behind another car's roof): the size says too far, the contact
    # of the box bottom with the road does not care
    hidden = Detection(BoundingBox(box.x_min, box.y_min + 0.1 * box.height, box.x_max,
                                   box.y_max), 2, 'car', 0.9)
    plain = source().estimates([hidden], CAMERA, 640, 480)[0]
    floor = source(height).estimates([hidden], CAMERA, 640, 480)[0]
    assert plain.z > 1.08 * z_true
    assert floor.basis.endswith('+surface') and abs(floor.z - z_true) < 0.5 * abs(
        plain.z - z_true) and abs(floor.z - z_true) < 2 * floor.sigma
    # a camera height the scene does not match (the car's own band excludes a 4 m floor),
    # an object above the horizon, and no height: left alone
    assert source(4.0).estimates([hidden], CAMERA, 640, 480)[0] == plain
    high = Detection(BoundingBox(300, 50, 340, 90), 5, 'kite', 0.9)
    assert source(height).estimates([high], CAMERA, 640, 480)[0] == source().estimates(
        [high], CAMERA, 640, 480)[0]
    # with the orientation unknown (the default tilt), the car's band holds far more heights:
    # taken as level, a floor 4 m below may be the one it stands on
    unknown = GeometricDepth(KNOWLEDGE, camera_height_m=4.0).estimates(
        [hidden], CAMERA, 640, 480)[0]
    assert unknown.sigma > 2 * plain.sigma
