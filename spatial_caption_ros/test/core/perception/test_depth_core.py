"""Depth building blocks without models: box statistic, scale recovery, geometric depth, stamp
matching of sensor depth, and the IoU tracker."""

import math
import threading
import time

import numpy as np
import pytest

from support.scenes import CAM, project_cuboid
from spatial_caption_ros.core.perception.depth import create_depth_source, DepthInput
from spatial_caption_ros.core.perception.depth.geometric import (
    estimate_from_box, GeometricDepth, relative_from_box, truncation)
from spatial_caption_ros.core.perception.depth.scale import (
    fit_inverse_depth,
    ScaleFit,
    ScaleTracker,
)
from spatial_caption_ros.core.perception.depth.sensor import (
    align_to_image,
    SensorDepth,
    StampBuffer,
)
from spatial_caption_ros.core.perception.depth.statistics import box_depth, BoxStatConfig
from spatial_caption_ros.core.inputs.image import ColorImage, raw_to_depth_metres
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase, SizePrior
from spatial_caption_ros.core.perception.tracker import IouTracker
from spatial_caption_ros.core.types import (
    BoundingBox, DEPTH_GEOMETRIC, DEPTH_SENSOR, Detection, ObjectDepth)

KB = KnowledgeBase.load()


def _image(w=1280, h=720):
    return ColorImage(np.zeros((h, w, 3), np.uint8), 'rgb')


# ----------------------------------------------------------------- robust box statistic

def test_box_statistic_ignores_background_and_near_outliers():
    rng = np.random.default_rng(1)
    depth = np.full((200, 200), 20.0, np.float32)               # background at 20 m
    inner = depth[50:150, 50:150]
    inner[:] = rng.normal(4.0, 0.05, inner.shape)               # the object at 4 m
    depth[50:150, 50:120][rng.random((100, 70)) < 0.5] = 20.0   # half of it shows background
    speckle = rng.random((200, 200)) < 0.05
    depth[speckle] = 0.3                                        # 5 % too-near speckle
    box = BoundingBox(40, 40, 160, 160)
    st = box_depth(depth, box, BoxStatConfig())
    assert st.value == pytest.approx(4.0, abs=0.15)
    assert float(np.mean(depth[70:130, 70:130])) > 8.0          # a plain mean is far off
    assert 0.0 < st.spread < 1.0


def test_box_statistic_skips_nan_zero_and_inf_and_reports_no_data():
    depth = np.full((100, 100), 3.0, np.float32)
    depth[::2] = np.nan
    depth[1::4] = 0.0
    depth[3::8] = np.inf
    st = box_depth(depth, BoundingBox(10, 10, 90, 90), BoxStatConfig())
    assert st.value == pytest.approx(3.0) and st.valid_fraction < 0.5
    holes = np.full((100, 100), np.nan, np.float32)
    holes[50, 50] = 2.0                                          # one lonely reading
    st = box_depth(holes, BoundingBox(10, 10, 90, 90), BoxStatConfig())
    assert not st.known and st.valid == 1


def test_box_statistic_on_disparity_picks_the_same_point_as_on_depth():
    rng = np.random.default_rng(2)
    depth = rng.uniform(2.0, 10.0, (120, 160)).astype(np.float32)
    box = BoundingBox(20, 10, 140, 110)
    cfg = BoxStatConfig(inner_fraction=0.6, percentile=25.0)
    on_depth = box_depth(depth, box, cfg)
    on_disp = box_depth(1.0 / depth, box, cfg, larger_is_nearer=True)
    assert 1.0 / on_disp.value == pytest.approx(on_depth.value, rel=0.02)


def test_box_statistic_clips_boxes_outside_the_map():
    depth = np.full((50, 50), 7.0, np.float32)
    st = box_depth(depth, BoundingBox(-30, -30, 10, 10), BoxStatConfig(inner_fraction=1.0))
    assert st.value == pytest.approx(7.0)

# ----------------------------------------------------------------- scale and shift recovery


def _synthetic_anchors(n, scale, shift, outliers, rng):
    z = rng.uniform(2.0, 40.0, n)
    d = (1.0 / z - shift) / scale
    d *= rng.normal(1.0, 0.01, n)                                # 1 % model noise
    bad = rng.random(n) < outliers
    z_obs = np.where(bad, z * rng.uniform(0.3, 3.0, n), z)     # wrong anchors
    return d, z_obs, z, bad


def test_scale_and_shift_recovered_despite_outliers():
    rng = np.random.default_rng(3)
    d, z_obs, z, bad = _synthetic_anchors(40, 0.05, 0.01, 0.3, rng)
    fit = fit_inverse_depth(d, z_obs, np.full(40, 0.05), rng)
    assert fit is not None and fit.kind == 'affine'
    assert fit.scale == pytest.approx(0.05, rel=0.03)
    assert fit.shift == pytest.approx(0.01, abs=0.002)
    assert fit.inliers >= (~bad).sum() - 2 and fit.anchors == 40
    assert np.median(np.abs(fit.depth(d[~bad]) / z[~bad] - 1)) < 0.02
    # the fit is never claimed better than its anchors allow (0.05 / sqrt(inliers))
    assert fit.rel_sigma >= 0.05 / math.sqrt(fit.inliers) - 1e-9
    assert np.allclose(fit.depth_map(d.astype(np.float32)), fit.depth(d), rtol=1e-5)
    # a plain least-squares fit is pulled away by the outliers
    a = np.stack([d, np.ones_like(d)], axis=1)
    (s_ls, _), *_ = np.linalg.lstsq(a, 1.0 / z_obs, rcond=None)
    assert abs(s_ls / 0.05 - 1) > abs(fit.scale / 0.05 - 1)


def test_many_sensor_anchors_use_sampled_pairs():
    rng = np.random.default_rng(4)
    d, z_obs, _, _ = _synthetic_anchors(2000, 0.2, -0.002, 0.2, rng)
    fit = fit_inverse_depth(d, z_obs, np.full(2000, 0.02), rng)
    assert fit.scale == pytest.approx(0.2, rel=0.03) and fit.inliers > 1400


def test_few_anchors_give_a_scale_only_fit_and_none_without_agreement():
    fit = fit_inverse_depth([0.5], [4.0], [0.1])
    assert fit.kind == 'scale-only' and fit.depth(0.5) == pytest.approx(4.0)
    fit = fit_inverse_depth([0.5, 0.25], [4.0, 8.2], [0.1, 0.1])
    assert fit.kind == 'scale-only' and fit.inliers == 2
    assert fit_inverse_depth([0.5, 0.25], [4.0, 30.0], [0.05, 0.05]) is None
    assert fit_inverse_depth([], [], []) is None
    assert fit_inverse_depth([0.5, np.nan, -1.0], [np.nan, 3.0, 3.0]) is None


def test_inconsistent_anchors_never_give_a_negative_scale():
    # farther objects with larger disparity: no positive scale explains them
    fit = fit_inverse_depth([0.1, 0.2, 0.3, 0.4], [2.0, 4.0, 8.0, 16.0], [0.05] * 4)
    assert fit is None or fit.scale > 0


def test_scale_tracker_smooths_and_ages_out():
    tracker = ScaleTracker(smoothing=0.5, max_age_frames=2)
    first, note = tracker.update(ScaleFit(1.0, 0.0, 5, 5, 0.02, 'affine'))
    assert first.scale == 1.0 and 'smoothed' not in note
    second, note = tracker.update(ScaleFit(2.0, 0.2, 5, 4, 0.03, 'affine'))
    assert second.scale == pytest.approx(1.5) and second.shift == pytest.approx(0.1)
    assert 'smoothed' in note and '4 inliers' in note
    kept, note = tracker.update(None)
    assert kept is second and '1 frame(s) ago' in note
    tracker.update(None)
    gone, note = tracker.update(None)
    assert gone is None and note == 'no fit'
    fresh, _ = tracker.update(ScaleFit(3.0, 0.0, 2, 2, 0.0, 'scale-only'))
    assert fresh.scale == 3.0                 # nothing left to smooth with

# ----------------------------------------------------------------- geometric depth


@pytest.mark.parametrize('z', [3.0, 8.0, 25.0])
def test_geometric_depth_of_a_person_from_a_synthetic_box(z):
    person = KB.size_prior('person')
    box = project_cuboid(0.5, z, person.height, person.width, person.length, camera_height=1.2)
    est = estimate_from_box(box, person, CAM)
    assert est.basis == 'height' and est.metric
    assert est.z == pytest.approx(z, rel=0.02)
    assert est.sigma / est.z == pytest.approx(0.10, abs=0.03)   # the class's 10 % size spread


@pytest.mark.parametrize('z', [6.0, 15.0, 40.0])
def test_geometric_depth_of_a_car_seen_from_behind_corrects_for_its_length(z):
    car = KB.size_prior('car')
    box = project_cuboid(-1.0, z, car.height, car.width, car.length, camera_height=1.65)
    est = estimate_from_box(box, car, CAM)
    assert est.z == pytest.approx(z, rel=0.03)
    naive = CAM.fy * car.height / box.height                    # plain pinhole: too near
    assert abs(naive / z - 1) > abs(est.z / z - 1)


def test_truncated_boxes_use_the_uncut_dimension_or_nothing():
    person = KB.size_prior('person')
    full = project_cuboid(0.0, 1.6, person.height, person.width, person.length, 1.2)
    assert full.y_max > CAM.height                               # the legs leave the image
    cut_bottom = BoundingBox(full.x_min, full.y_min, full.x_max, CAM.height)
    assert truncation(cut_bottom, CAM.width, CAM.height) == (False, True)
    est = estimate_from_box(cut_bottom, person, CAM)
    assert est.basis == 'width'
    assert CAM.fy * person.height / cut_bottom.height > 1.6 * 1.2   # the cut height: too far
    assert est.z == pytest.approx(1.6, rel=0.35) and est.rel_sigma > 0.15
    seen = project_cuboid(0.0, 4.0, person.height, person.width, person.length, 1.2)
    cut_side = BoundingBox(0.0, seen.y_min, seen.x_max - seen.x_min, seen.y_max)
    side = estimate_from_box(cut_side, person, CAM)
    assert side.basis == 'height'
    assert side.sigma > estimate_from_box(seen, person, CAM).sigma
    corner = BoundingBox(0.0, 0.0, 100.0, CAM.height)
    none = estimate_from_box(corner, person, CAM)
    assert not none.known and 'cut' in none.basis


def test_geometric_source_without_camera_info_gives_only_relative_order():
    person = KB.size_prior('person')
    near = project_cuboid(-1.0, 3.0, person.height, person.width, person.length, 1.2)
    far = project_cuboid(1.0, 9.0, person.height, person.width, person.length, 1.2)
    dets = [Detection(near, 0, 'person', 0.9), Detection(far, 0, 'person', 0.9),
            Detection(BoundingBox(10, 10, 50, 50), 99, 'unknown thing', 0.9)]
    src = create_depth_source('geometric', knowledge=KB)
    out = src.estimate(DepthInput(_image(), dets, None))
    assert not out.metric and not any(o.metric for o in out.objects)
    assert out.objects[0].value < out.objects[1].value           # order kept
    assert out.objects[1].value / out.objects[0].value == pytest.approx(3.0, rel=0.1)
    assert not out.objects[2].known
    assert any('relative only' in n for n in out.notes)
    assert any('unknown thing' in n for n in out.notes)
    metric = src.estimate(DepthInput(_image(), dets, CAM))
    assert metric.metric and metric.objects[0].source == DEPTH_GEOMETRIC
    assert metric.objects[0].value == pytest.approx(3.0, rel=0.03)
    rel = relative_from_box(near, person, CAM.width, CAM.height)
    assert rel.z == pytest.approx(person.height / near.height) and not rel.metric


def test_geometric_uncertainty_grows_with_the_class_size_spread():
    tight = SizePrior(1.0, 0.5, 0.5, 0.05)
    loose = SizePrior(1.0, 0.5, 0.5, 0.40)
    box = project_cuboid(0.0, 10.0, 1.0, 0.5, 0.5, 1.2)
    assert estimate_from_box(box, loose, CAM).rel_sigma > \
        3 * estimate_from_box(box, tight, CAM).rel_sigma

# ----------------------------------------------------------------- sensor depth


def test_stamp_buffer_matches_nearest_within_tolerance():
    buf = StampBuffer(capacity=3)
    for stamp in (100, 200, 300, 400):
        buf.put(stamp * 1_000_000, f'd{stamp}')
    assert len(buf) == 3                                         # the oldest was dropped
    m = buf.match(305_000_000, 10_000_000)
    assert m.matched and m.item == 'd300' and m.offset_ns == -5_000_000
    miss = buf.match(350_000_000, 10_000_000)
    assert not miss.matched and abs(miss.offset_ns) == 50_000_000
    assert not buf.match(100_000_000, 10_000_000).matched       # dropped, never a wrong frame
    assert not StampBuffer().match(1, 10).matched


def test_stamp_buffer_waits_for_a_late_depth_frame():
    buf = StampBuffer()
    buf.put(1_000, 'old')
    timer = threading.Timer(0.05, lambda: buf.put(5_000_000_000, 'late'))
    timer.start()
    t0 = time.monotonic()
    m = buf.match(5_000_000_000, 1_000_000, wait_s=2.0)
    timer.join()
    assert m.item == 'late' and time.monotonic() - t0 < 1.5
    # a frame newer than the colour frame has come: the matching one is not coming any more
    t0 = time.monotonic()
    assert not buf.match(3_000_000_000, 1_000_000, wait_s=2.0).matched
    assert time.monotonic() - t0 < 0.5


def test_sensor_source_reads_depth_with_holes():
    depth_mm = np.full((720, 1280), 2500, np.uint16)
    depth_mm[::3, ::3] = 0                                       # no-reading pixels
    metres = raw_to_depth_metres(1280, 720, '16UC1', 2560, depth_mm.tobytes())
    assert np.isnan(metres[0, 0]) and metres[1, 1] == pytest.approx(2.5)
    chair = BoundingBox(600, 300, 700, 500)
    dets = [Detection(chair, 56, 'chair', 0.8), Detection(BoundingBox(0, 0, 10, 10), 0,
                                                           'person', 0.5)]
    metres[0:10, 0:10] = np.nan                                  # no readings at all there
    src = SensorDepth(KB)
    out = src.estimate(DepthInput(_image(), dets, CAM, metres))
    chair_obj, person_obj = out.objects
    assert out.metric and chair_obj.source == DEPTH_SENSOR and chair_obj.metric
    # the middle of what the sensor sees of it (a flat surface: no depth extent seen)
    assert chair_obj.value == pytest.approx(2.5, abs=0.01) and chair_obj.extent == 0.0
    assert chair_obj.uncertainty == pytest.approx(0.025, abs=0.01)
    assert not person_obj.known and any('too few valid' in n for n in out.notes)
    nothing = src.estimate(DepthInput(_image(), dets, CAM, None))
    assert not nothing.metric and not any(o.known for o in nothing.objects)
    assert any('no depth frame' in n for n in nothing.notes)


def test_sensor_depth_of_another_size_is_resized_only_when_aligned():
    half = np.full((360, 640), 3.0, np.float32)
    assert align_to_image(half, 1280, 720).shape == (720, 1280)
    assert align_to_image(np.ones((480, 640), np.float32), 1280, 720) is None
    out = SensorDepth(KB).estimate(DepthInput(_image(), [Detection(
        BoundingBox(100, 100, 200, 200), 99, 'unknown thing', 0.9)], CAM,
        np.ones((480, 640), np.float32)))
    assert not out.objects[0].known and 'aspect ratio' in out.notes[0]

# ----------------------------------------------------------------- tracker


def _det(x, y, w=50, h=100, name='person'):
    return Detection(BoundingBox(x, y, x + w, y + h), 0, name, 0.9)


def test_tracker_keeps_ids_while_objects_move_and_gives_new_ids_to_new_objects():
    tracker = IouTracker(iou_threshold=0.3, max_missed=2)
    ids = [t.id for t in tracker.update([_det(0, 0), _det(300, 0)])]
    for step in range(1, 6):
        tracks = tracker.update([_det(300 + 5 * step, 0), _det(10 * step, 2 * step)])
        assert [t.id for t in tracks] == ids[::-1]               # order follows the detections
    tracks = tracker.update([_det(10 * 6, 12), _det(330, 0), _det(600, 300)])
    assert tracks[0].id == ids[0] and tracks[1].id == ids[1]
    assert tracks[2].id not in ids and tracks[0].age(tracker.frame) == 6


def test_tracker_needs_the_same_class_and_forgets_lost_tracks():
    tracker = IouTracker(iou_threshold=0.3, max_missed=1)
    first = tracker.update([_det(0, 0)])[0].id
    assert tracker.update([_det(0, 0, name='dog')])[0].id != first
    tracker.update([])
    tracker.update([])
    assert tracker.update([_det(0, 0)])[0].id != first           # lost, new track


def test_tracker_carries_depth_rescaled_by_box_height():
    tracker = IouTracker()
    track = tracker.update([_det(0, 0, h=100)])[0]
    track.depth, track.depth_box = ObjectDepth(6.0, 0.3, 'x', True), track.box
    nearer = tracker.update([_det(0, 0, h=120)])[0]
    carried = nearer.carried_depth(nearer.box, tracker.frame, height_cut=False)
    assert nearer is track and carried.value == pytest.approx(5.0) and carried.metric
    assert carried.uncertainty > 0.3 * 100 / 120
    same = nearer.carried_depth(nearer.box, tracker.frame, height_cut=True)
    assert same.value == pytest.approx(6.0)


def test_geometric_estimates_match_their_source_wrapper():
    dets = [_det(600, 300, 40, 120)]
    src = GeometricDepth(KB)
    est = src.estimates(dets, CAM, CAM.width, CAM.height)[0]
    out = src.estimate(DepthInput(_image(), dets, CAM))
    assert out.objects[0].value == pytest.approx(est.z) and math.isfinite(est.sigma)
