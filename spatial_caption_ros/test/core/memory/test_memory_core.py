"""Scene memory core: transforms, association and fusion, changes with evidence, queries, facts,
keyframe retrieval and SQLite storage (including a corrupt file and a kill -9 mid-write)."""

import math
from collections import deque
import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.facts import check_fact, memory_facts, STILL_THERE
from spatial_caption_ros.core.memory.keyframes import (
    graph_signature, KeyframeIndex, OrbExtractor, signature_similarity, verified_inliers)
from spatial_caption_ros.core.memory.scene_memory import SceneMemory
from spatial_caption_ros.core.memory.storage import MemoryDatabase
from spatial_caption_ros.core.memory.store import (
    APPEARED, GONE, MemoryObject, MOVED, ObjectMemory, PRESENT, TENTATIVE)
from spatial_caption_ros.core.memory.transforms import (
    StampedTransform, Transform, TransformBuffer, TransformMissingError, TransformStaleError)
from spatial_caption_ros.core.params import build_config
from support.memory_scene import CAM, graph, obj_at, S, yaw



def config(**values) -> MemoryConfig:
    return build_config(MemoryConfig, values)


# ---------------------------------------------------------------- transforms


def test_transform_buffer_composes_interpolates_and_refuses_stale_or_missing():
    buf = TransformBuffer(cache_s=10.0, tolerance_s=0.1)
    # odom -> base_link moves along x at 1 m/s; base_link -> camera is a static mount 0.5 m up
    for k in range(3):
        buf.set_transform(StampedTransform('odom', 'base_link', k * S, (float(k), 0, 0),
                                           (0, 0, 0, 1)))
    q90 = (0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4))    # 90 deg about z
    buf.set_transform(StampedTransform('base_link', 'camera', 0, (0, 0, 0.5), q90), static=True)
    tf = buf.lookup('odom', 'camera', int(1.5 * S))
    np.testing.assert_allclose(tf.apply(np.array([1.0, 0, 0])), [1.5, 1.0, 0.5], atol=1e-9)
    back = buf.lookup('camera', 'odom', int(1.5 * S))
    np.testing.assert_allclose(back.apply(tf.apply(np.array([0.3, -2, 4]))), [0.3, -2, 4],
                               atol=1e-9)
    buf.lookup('odom', 'camera', int(2.05 * S))        # within the tolerance of the newest
    with pytest.raises(TransformStaleError, match='stale'):
        buf.lookup('odom', 'camera', 3 * S)
    with pytest.raises(TransformMissingError, match='does not exist'):
        buf.lookup('map', 'camera', S)
    buf.set_transform(StampedTransform('world', 'other', 0, (0, 0, 0), (0, 0, 0, 1)),
                      static=True)
    with pytest.raises(TransformMissingError, match='not connected'):
        buf.lookup('world', 'camera', S)


def test_transform_quaternion_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        tf = Transform.from_quaternion((1, 2, 3), q)
        back = Transform.from_quaternion((1, 2, 3), tf.quaternion)
        np.testing.assert_allclose(back.rotation, tf.rotation, atol=1e-9)

# ---------------------------------------------------------------- association and fusion


def test_same_object_from_two_viewpoints_is_one_entry_with_shrinking_uncertainty():
    mem = ObjectMemory(config())
    world_cup = np.array([0.0, 0.0, 2.0])
    # frame 1 from the origin; frame 2 the camera moved 1 m right and turned to keep the cup in
    # view: the box is elsewhere in the image, the world position is the same
    mem.update(graph(0.0, obj_at(1, 'cup', (0.0, 0.0, 2.0))), yaw(0), CAM)
    pose2 = yaw(-26.565, (1.0, 0, 0))
    p_cam = pose2.inverse().apply(world_cup)
    mem.update(graph(1.0, obj_at(7, 'cup', tuple(p_cam + [0.0, 0.0, 0.04]))), pose2, CAM)
    assert len(mem.objects) == 1
    cup = next(iter(mem.objects.values()))
    assert cup.state == PRESENT and cup.times_seen == 2
    assert np.linalg.norm(cup.position - world_cup) < 0.05
    single = ObjectMemory(config())
    single.update(graph(0.0, obj_at(1, 'cup', (0.0, 0.0, 2.0))), yaw(0), CAM)
    assert cup.uncertainty < next(iter(single.objects.values())).uncertainty
    assert [c.kind for c in mem.changes] == [APPEARED]


def test_association_is_by_class_and_gated_by_position():
    mem = ObjectMemory(config())
    for t in (0.0, 0.2):
        mem.update(graph(t, obj_at(1, 'cup', (0, 0, 2.0)), obj_at(2, 'book', (0.5, 0, 2.0))),
                   yaw(0), CAM)
    # a bottle right beside the cup: another class, another entry; a cup 1.5 m away while the
    # first is still seen: another cup
    mem.update(graph(0.4, obj_at(1, 'cup', (0, 0, 2.0)), obj_at(4, 'bottle', (0.05, 0, 2.0)),
                     obj_at(3, 'cup', (-1.5, 0, 2.0))), yaw(0), CAM)
    classes = sorted(o.class_name for o in mem.objects.values())
    assert classes == ['book', 'bottle', 'cup', 'cup']
    assert sum(1 for o in mem.objects.values() if o.state == TENTATIVE) == 2


def test_uncertain_depth_joins_along_the_ray_but_not_across_it():
    mem = ObjectMemory(config(move_radius=0.0))      # association alone, no move detection
    for t in (0.0, 0.2):
        mem.update(graph(t, obj_at(1, 'chair', (0, 0, 3.0), size=0.5, sigma=0.05)), yaw(0), CAM)
    # 0.4 m farther along the line of sight with a 0.3 m depth sigma: the same chair
    mem.update(graph(0.4, obj_at(1, 'chair', (0, 0, 3.4), size=0.5, sigma=0.3)), yaw(0), CAM)
    assert len(mem.objects) == 1
    # 0.5 m to the side: the depth sigma does not help, another chair
    mem.update(graph(0.6, obj_at(2, 'chair', (0.5, 0, 3.0), size=0.5, sigma=0.3)), yaw(0), CAM)
    assert len(mem.objects) == 2

# ---------------------------------------------------------------- changes


# A desk seen from 2 m: a cup, a book and a keyboard (boxes of 50 to 100 px, well inside the
# image). Frames 0.2 s apart unless a test says otherwise.
DESK = {'cup': (-0.5, 0.0, 2.0, 0.2), 'book': (0.0, 0.0, 2.0, 0.3),
        'keyboard': (0.5, 0.0, 2.0, 0.4)}


def desk(t: float, missing=(), moved=None, pose_deg: float = 0.0):
    """The desk's detections at t; `missing` classes not detected; moved: (class, dx)."""
    objects = []
    for i, (name, (x, y, z, size)) in enumerate(DESK.items()):
        if name in missing:
            continue
        if moved and moved[0] == name:
            x += moved[1]
        p = yaw(pose_deg).inverse().apply(np.array([x, y, z]))
        objects.append(obj_at(i + 1, name, tuple(p), size=size))
    return graph(t, *objects)


def learned_desk(mem: ObjectMemory, frames: int = 10) -> dict[str, int]:
    """The desk seen `frames` times: ids by class, every object confirmed and in view."""
    for k in range(frames):
        mem.update(desk(k * 0.2), yaw(0), CAM)
    return {o.class_name: o.id for o in mem.objects.values()}


def run_frames(mem: ObjectMemory, t0: float, n: int, step: float = 0.2, **kw) -> list[str]:
    """n more frames of the desk (kw as for desk()); the change kinds reported."""
    before = len(mem.changes)
    for k in range(n):
        mem.update(desk(t0 + k * step, kw.get('missing', ()), kw.get('moved')), yaw(0), CAM)
    return [c.kind for c in list(mem.changes)[before:]]


def test_gone_needs_negative_evidence_in_view():
    mem = ObjectMemory(config())
    ids = learned_desk(mem)
    cup = ids['cup']
    # camera turned away: the cup is out of view, missing it says nothing
    for k in range(10):
        mem.update(graph(2 + k * 0.2), yaw(90), CAM)
    assert mem.objects[cup].state == PRESENT
    # occluded by a nearer person covering its projection: still nothing
    for k in range(10):
        mem.update(graph(4 + k * 0.2, *desk(0, missing=('cup',)).objects,
                         obj_at(5, 'person', (-0.5, 0, 1.0), size=0.6)), yaw(0), CAM)
    assert mem.objects[cup].state == PRESENT
    # no intrinsics: nothing can be checked
    for k in range(10):
        mem.update(desk(6 + k * 0.2, missing=('cup',)), yaw(0), None)
    assert mem.objects[cup].state == PRESENT and mem.unusable_frames['no camera_info'] == 10
    # in view, in range, nothing in front, the others detected: gone, not before 1 s of misses
    states = []
    for k in range(10):
        mem.update(desk(8 + k * 0.2, missing=('cup',)), yaw(0), CAM)
        states.append(mem.objects[cup].state)
    assert states[:5] == [PRESENT] * 5 and GONE in states
    gone = [c for c in mem.changes if c.kind == GONE]
    assert [c.object.id for c in gone] == [cup] and 'usable frames' in gone[0].evidence
    # seen again: appeared again
    mem.update(desk(11), yaw(0), CAM)
    assert mem.objects[cup].state == PRESENT and mem.changes[-1].kind == APPEARED


def test_no_gone_when_the_detector_misses_everything():
    mem = ObjectMemory(config())
    ids = learned_desk(mem)
    # dark or blurred frames: nothing detected at all, for 4 s
    kinds = run_frames(mem, 2, 20, missing=tuple(DESK))
    assert kinds == [] and all(mem.objects[i].state == PRESENT for i in ids.values())
    assert mem.unusable_frames['detector'] == 20
    # the same misses of the cup while the detector finds the book and the keyboard: gone
    assert GONE in run_frames(mem, 6, 20, missing=('cup',))


def test_the_detector_counts_as_working_by_what_it_usually_finds():
    # a cup and a book it always finds, three bottles it finds one frame in five
    bottles = [obj_at(10 + i, 'bottle', (x, 0.4, 2.0), size=0.2) for i, x in
               enumerate((-0.4, 0.0, 0.4))]
    cup, book = obj_at(1, 'cup', (-0.5, -0.4, 2.0)), obj_at(2, 'book', (0.5, -0.4, 2.0))

    def frame(k: int, with_cup: bool):
        return graph(k * 0.2, *((cup,) if with_cup else ()), book,
                     *(bottles if k % 5 == 0 else ()))
    mem = ObjectMemory(config())
    for k in range(40):
        mem.update(frame(k, True), yaw(0), CAM)
    rates = sorted(round(o.detection_rate, 1) for o in mem.objects.values())
    assert rates == [0.2, 0.2, 0.2, 1.0, 1.0]
    # the cup is removed: only the book is found in most frames, but that is what the
    # detector usually finds here (1.6 objects expected of 4 others), so the misses count
    for k in range(40, 60):
        mem.update(frame(k, False), yaw(0), CAM)
    assert [c.kind for c in mem.changes if c.kind == GONE] == [GONE]


def test_no_gone_while_the_camera_turns_fast():
    fast, slow = ObjectMemory(config()), ObjectMemory(config())
    for mem in (fast, slow):
        learned_desk(mem)
    # the camera swings 20 deg every 0.2 s (100 deg/s: 17 px of blur at 20 ms, more than a
    # tenth of every box) while only the cup is missed: no evidence against it
    for k in range(20):
        fast.update(desk(2 + k * 0.2, missing=('cup',), pose_deg=10 * (-1) ** k),
                    yaw(10 * (-1) ** k), CAM)
    assert not any(c.kind == GONE for c in fast.changes)
    assert fast.unusable_frames['motion blur'] == 19      # the first swing is half as far
    # turning 0.5 deg each way (5 deg/s, under 1 px of blur): the same misses count
    for k in range(20):
        slow.update(desk(2 + k * 0.2, missing=('cup',), pose_deg=0.25 * (-1) ** k),
                    yaw(0.25 * (-1) ** k), CAM)
    assert [c.kind for c in slow.changes if c.kind == GONE] == [GONE]


def test_too_small_or_cut_by_the_border_gives_no_evidence():
    # a cup 6 m away is 17 px wide (under min_box_px): missing it says nothing
    far = ObjectMemory(config())
    for k in range(30):
        cup = () if k >= 10 else (obj_at(9, 'cup', (0.0, 0.0, 6.0), size=0.2),)
        far.update(graph(k * 0.2, *desk(0).objects, *cup), yaw(0), CAM)
    assert not any(c.kind == GONE for c in far.changes)
    # a cup whose box crosses the right border (view_margin_px)
    edge = ObjectMemory(config())
    for k in range(30):
        cup = () if k >= 10 else (obj_at(9, 'cup', (1.28, 0.0, 2.0), size=0.2),)
        edge.update(graph(k * 0.2, *desk(0).objects, *cup), yaw(0), CAM)
    assert not any(c.kind == GONE for c in edge.changes)
    # the same cup well inside and big enough: gone
    inside = ObjectMemory(config())
    for k in range(30):
        cup = () if k >= 10 else (obj_at(9, 'cup', (0.0, 0.3, 2.0), size=0.2),)
        inside.update(graph(k * 0.2, *desk(0).objects, *cup), yaw(0), CAM)
    assert [c.kind for c in inside.changes if c.kind == GONE] == [GONE]


def test_misses_must_span_a_minimum_time():
    mem = ObjectMemory(config())
    ids = learned_desk(mem)
    # 18 misses in 0.85 s (20 Hz): many frames, too short a time
    assert run_frames(mem, 2, 18, step=0.05, missing=('cup',)) == []
    # continued past gone_after_seconds: gone
    assert run_frames(mem, 2.9, 4, step=0.05, missing=('cup',)) == [GONE]
    assert mem.objects[ids['cup']].state == GONE


def test_an_often_missed_object_needs_more_misses_before_gone():
    reliable, flaky = ObjectMemory(config()), ObjectMemory(config())
    learned_desk(reliable, 20)
    cup = learned_desk(flaky, 4)['cup']
    # the flaky cup was missed in view every other frame
    for k in range(8):
        flaky.update(desk(1 + k * 0.4, missing=('cup',)), yaw(0), CAM)
        flaky.update(desk(1.2 + k * 0.4), yaw(0), CAM)

    def misses_until_gone(mem, t0):
        for k in range(60):
            mem.update(desk(t0 + k * 0.2, missing=('cup',)), yaw(0), CAM)
            if any(c.kind == GONE for c in mem.changes):
                return k + 1
        return None
    assert misses_until_gone(reliable, 5) < misses_until_gone(flaky, 5)
    assert flaky.objects[cup].state == GONE


def test_moved_only_once_the_old_place_has_negative_evidence():
    mem = ObjectMemory(config())
    ids = learned_desk(mem)
    # the cup now 0.8 m to the right, where nothing was: not a move yet (no evidence that
    # the old place is empty), the new sighting is a new entry
    first = run_frames(mem, 2, 3, moved=('cup', 0.8))
    assert MOVED not in first and GONE not in first
    kinds = run_frames(mem, 2.6, 10, moved=('cup', 0.8))
    assert kinds.count(MOVED) == 1 and GONE not in kinds
    move = next(c for c in mem.changes if c.kind == MOVED)
    assert move.object.id == ids['cup'] and abs(move.distance - 0.8) < 0.05
    assert 'usable frames' in move.evidence
    cups = [o for o in mem.objects.values() if o.class_name == 'cup']
    assert len(cups) == 1 and abs(cups[0].position[0] - 0.3) < 0.05


def test_not_moved_while_the_old_one_is_still_seen_or_within_the_gate():
    # a second cup 0.8 m away while the first is still detected: two cups, no move
    mem = ObjectMemory(config())
    learned_desk(mem)
    for k in range(15):
        mem.update(graph(2 + k * 0.2, *desk(0).objects,
                         obj_at(7, 'cup', (0.3, 0.0, 2.0), size=0.2)), yaw(0), CAM)
    assert not any(c.kind in (MOVED, GONE) for c in mem.changes)
    assert sum(o.class_name == 'cup' for o in mem.objects.values()) == 2
    # the cup seen 3 cm off (inside its uncertainty): the same cup, no move
    near = ObjectMemory(config())
    learned_desk(near)
    assert run_frames(near, 2, 15, moved=('cup', 0.03)) == []
    assert sum(o.class_name == 'cup' for o in near.objects.values()) == 1


def test_not_moved_when_old_place_is_out_of_view():
    mem = ObjectMemory(config())
    learned_desk(mem)
    # camera turned 90 deg; a cup (and a chair) in view, the old place outside the image
    pose = yaw(90)
    for k in range(15):
        cup, chair = pose.inverse().apply(np.array([[2.0, 0, 0.3], [2.5, 0, -0.3]]))
        mem.update(graph(2 + k * 0.2, obj_at(2, 'cup', tuple(cup), size=0.2),
                         obj_at(3, 'chair', tuple(chair), size=0.5)), pose, CAM)
    assert sum(o.class_name == 'cup' for o in mem.objects.values()) == 2
    assert not any(c.kind in (MOVED, GONE) for c in mem.changes)


def test_a_gone_object_seen_elsewhere_later_has_moved():
    mem = ObjectMemory(config())
    ids = learned_desk(mem)
    assert GONE in run_frames(mem, 2, 12, missing=('cup',))
    kinds = run_frames(mem, 5, 3, moved=('cup', 0.8))
    assert kinds == [MOVED] and mem.changes[-1].object.id == ids['cup']
    assert mem.objects[ids['cup']].state == PRESENT


def _entry(oid: int, name: str, x: float, stamps, state=PRESENT) -> MemoryObject:
    return MemoryObject(oid, {name: 1.0}, np.array([x, 0.0, 2.0]), np.eye(3) * 0.05 ** 2,
                        stamps[0], stamps[-1], times_seen=len(stamps), state=state,
                        frames=deque(stamps, maxlen=20), size=0.2, size_n=len(stamps))


@pytest.mark.parametrize('second_stamps, second_class, merged', [
    ((3 * S, 4 * S), 'cup', True),          # never seen together, consistent: one cup
    ((2 * S, 4 * S), 'cup', False),         # both detected at 2 s: two cups side by side
    ((3 * S, 4 * S), 'bowl', False),        # another class
])
def test_entries_whose_positions_become_consistent_merge_unless_seen_together(
        second_stamps, second_class, merged):
    mem = ObjectMemory(config())
    mem.put(_entry(1, 'cup', 0.0, (S, 2 * S)))
    mem.put(_entry(2, second_class, 0.1, second_stamps, TENTATIVE))
    # a sighting of the second entry at 5 s touches it; the two are 0.1 m apart with 5 cm
    # standard deviations each (chi-square 2.3, inside the 11.34 gate)
    result = mem.update(graph(5.0, obj_at(4, second_class, (0.1, 0.0, 2.0))), yaw(0), CAM)
    assert (2 not in mem.objects) == merged
    if merged:
        assert result.merged == {2: 1} and result.associations == [(0, 1)]
        cup = mem.objects[1]
        assert cup.times_seen == 5 and 0.0 < cup.position[0] < 0.1
        assert np.linalg.det(cup.covariance) < (0.05 ** 2) ** 3
    else:
        assert result.merged == {}

# ---------------------------------------------------------------- queries, bounds, facts


def test_queries_answer_class_radius_object_and_time():
    mem = ObjectMemory(config())
    for t in (0.0, 0.2):
        mem.update(graph(t, obj_at(1, 'cup', (0, 0, 2.0)), obj_at(2, 'book', (0.4, 0, 2.0)),
                         obj_at(3, 'cup', (-1.2, 0, 2.5))), yaw(0), CAM)
    mem.update(graph(5.0, obj_at(2, 'book', (0.4, 0, 2.0))), yaw(0), CAM)
    cups = mem.query(class_name='cup')
    assert len(cups) == 2 and {c.class_name for c in cups} == {'cup'}
    near = mem.query(point=(0, 0, 2.0), radius=0.5)
    assert [o.class_name for o in near] == ['cup', 'book']          # nearest first
    book = next(o for o in near if o.class_name == 'book')
    around = mem.query(near_object=book.id, radius=0.6)
    assert [o.class_name for o in around] == ['cup'] and book.id not in {o.id for o in around}
    assert [o.id for o in mem.query(since_ns=4 * S)] == [book.id]
    assert mem.last_seen(class_name='book').last_seen_ns == 5 * S
    assert mem.last_seen(object_id=book.id).id == book.id
    assert mem.last_seen(object_id=999) is None
    with pytest.raises(KeyError):
        mem.query(near_object=999)
    assert [c.kind for c in mem.changes_since(0)] == [APPEARED] * 3
    assert mem.changes_since(1 * S) == []


def test_bounds_forget_old_and_excess_objects():
    mem = ObjectMemory(config(max_objects=10, max_age=100.0, tentative_timeout=1.0))
    for k in range(12):
        for t in (0.0, 0.1):
            mem.update(graph(k + t, obj_at(1, 'cup', (0.3 * k - 2, 0, 3.0))), yaw(0), None)
    assert len(mem.objects) == 10 and mem.forgotten == 2
    mem.update(graph(50, obj_at(1, 'kite', (0, 0, 3.0))), yaw(0), None)
    mem.update(graph(52), yaw(0), None)
    assert mem.discarded_tentative == 1          # a single sighting does not stay
    mem.update(graph(200), yaw(0), None)
    assert not mem.objects


def test_facts_are_backed_by_the_memory():
    mem = ObjectMemory(config())
    cup = learned_desk(mem)['cup']
    result = mem.update(graph(10.0, obj_at(1, 'cup', DESK['cup'][:3], size=0.2)), yaw(0), CAM)
    facts = memory_facts(mem, result, max_age_s=60.0)
    assert [f.kind for f in facts] == [STILL_THERE]
    assert facts[0].text == 'the cup first seen 10 s ago is still there'
    assert check_fact(mem, facts[0])
    for k in range(20):       # now it is gone: the old fact no longer holds
        gone = mem.update(desk(11 + k * 0.2, missing=('cup',)), yaw(0), CAM)
        if gone.changes:
            break
    assert not check_fact(mem, facts[0])
    gone_facts = memory_facts(mem, gone, max_age_s=60.0)
    assert gone_facts[0].text == 'a cup that was here is gone' and check_fact(mem, gone_facts[0])
    assert mem.objects[cup].state == GONE

# ---------------------------------------------------------------- keyframes


def _textured(seed: int, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((480, 640), np.uint8)
    for _ in range(120):
        x, y = rng.integers(0, 640), rng.integers(0, 480)
        cv2.rectangle(img, (int(x), int(y)), (int(x) + int(rng.integers(5, 40)),
                                              int(y) + int(rng.integers(5, 40))),
                      int(rng.integers(40, 255)), -1)
    return np.roll(img, shift, axis=1)


def test_geometric_verification_separates_places_that_signatures_cannot():
    cfg = config(retrieval_min_age=1.0, min_inliers=20)
    index = KeyframeIndex(cfg)
    orb = OrbExtractor(cfg.orb_features)
    same = {'cup': 1, 'book': 2}
    index.add(0, orb(_textured(1)), same)                # place A
    index.add(1 * S, orb(_textured(2)), same)            # place B, same objects
    found = index.retrieve(5 * S, orb(_textured(1, shift=30)), same)
    assert found.baseline.id == 2                        # the baseline takes the newer tie
    assert found.verified is not None and found.verified.id == 1 and found.inliers >= 20
    assert index.retrieve(S // 2, orb(_textured(1)), same).verified is None   # too recent
    assert verified_inliers(orb(_textured(3)), orb(_textured(4)), 'homography') < 20
    assert signature_similarity({'cup': 1}, {'cup': 2}) == pytest.approx(1.0)
    assert signature_similarity({}, {'cup': 1}) == 0.0
    assert graph_signature(graph(0, obj_at(1, 'cup', (0, 0, 2)), obj_at(2, 'cup', (1, 0, 2)))) \
        == {'cup': 2}

# ---------------------------------------------------------------- storage


def test_scene_memory_persists_and_reloads(tmp_path):
    path = str(tmp_path / 'm.sqlite')
    cfg = config(database=path)
    memory = SceneMemory(cfg)
    image = _textured(5)
    for t in (0.0, 0.6):
        memory.update(graph(t, obj_at(1, 'cup', (0, 0, 2.0))), yaw(0), CAM, image)
    memory.close()
    assert sqlite3.connect(path).execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    again = SceneMemory(cfg)
    assert [o.class_name for o in again.objects.remembered()] == ['cup']
    assert len(again.keyframes.keyframes) == 2 and again.objects.changes[0].kind == APPEARED
    kf = again.keyframes.keyframes[0]
    assert kf.features.descriptors.shape[1] == 32 and len(kf.pose) == 7
    out = again.update(graph(1.2, obj_at(1, 'cup', (0, 0, 2.0))), yaw(0), CAM, image)
    assert len(again.objects.objects) == 1 and out.timings_ms['storage'] >= 0
    again.close()


def test_evidence_state_survives_a_restart_and_a_version_1_file_is_upgraded(tmp_path):
    path = str(tmp_path / 'm.sqlite')
    memory = SceneMemory(config(database=path, keyframes=False))
    for k in range(6):
        memory.update(desk(k * 0.2), yaw(0), CAM)
    memory.update(desk(1.2, missing=('cup',)), yaw(0), CAM)
    before = {o.class_name: o for o in memory.objects.objects.values()}
    memory.close()
    again = SceneMemory(config(database=path, keyframes=False))
    after = {o.class_name: o for o in again.objects.objects.values()}
    for name in ('cup', 'book'):
        a, b = before[name], after[name]
        assert (b.size, b.seen_in_view, b.missed_in_view, b.miss_since_ns) == (
            a.size, a.seen_in_view, a.missed_in_view, a.miss_since_ns)
    assert after['cup'].missed_in_view == 1 and after['book'].size == pytest.approx(0.3)
    again.close()
    # a file written by schema version 1 (no evidence column) opens with the column added
    old = str(tmp_path / 'v1.sqlite')
    conn = sqlite3.connect(old)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE objects (
          id INTEGER PRIMARY KEY, votes TEXT NOT NULL, position BLOB NOT NULL,
          covariance BLOB NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
          times_seen INTEGER NOT NULL, state TEXT NOT NULL, frames TEXT NOT NULL,
          missed_in_view INTEGER NOT NULL, misses_total INTEGER NOT NULL);""")
    conn.execute('INSERT INTO objects VALUES (1, ?, ?, ?, 0, 5, 2, ?, ?, 0, 0)',
                 ('{"cup": 1.6}', np.zeros(3).tobytes(), np.eye(3).tobytes(), 'present',
                  '[0, 5]'))
    conn.commit()
    conn.close()
    db = MemoryDatabase(old)
    assert not db.recovered_from
    objects, _, _ = db.load(20)
    assert objects[1].class_name == 'cup' and objects[1].size == 0.0
    assert db.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == '2'
    db.close()


def test_corrupt_database_is_moved_aside_and_a_fresh_one_started(tmp_path):
    path = tmp_path / 'memory.sqlite'
    path.write_bytes(b'this is not a database' * 100)
    db = MemoryDatabase(str(path))
    assert 'moved to' in db.recovered_from and 'corrupt' in db.recovered_from
    aside = list(tmp_path.glob('memory.sqlite.corrupt-*'))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b'this is not a database')
    assert db.counts() == {'objects': 0, 'changes': 0, 'keyframes': 0}
    db.close()
    assert MemoryDatabase(str(path)).recovered_from == ''     # the fresh one opens cleanly


WRITER = """
import sys, time
sys.path.insert(0, {pkg!r})
from spatial_caption_ros.core.memory.storage import MemoryDatabase
from spatial_caption_ros.core.memory.store import MemoryObject, Change, ObjectSnapshot
import numpy as np
db = MemoryDatabase({path!r})
k = 0
while True:
    k += 1
    objs = [MemoryObject(k * 1000 + j, {{'cup': 1.0}}, np.full(3, float(k)), np.eye(3), k, k)
            for j in range(50)]
    db.write(objs, set(), [Change('appeared', k, ObjectSnapshot.of(objs[0]))])
    if k == 3:
        print('writing', flush=True)
"""


def test_kill_9_mid_write_leaves_a_consistent_database(tmp_path):
    path = str(tmp_path / 'crash.sqlite')
    pkg = str(Path(__file__).resolve().parents[3])
    proc = subprocess.Popen([sys.executable, '-c', WRITER.format(pkg=pkg, path=path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'writing'
        time.sleep(1.0)                    # hundreds of transactions in flight
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    db = MemoryDatabase(path)
    assert db.recovered_from == ''                       # opens, integrity check passes
    counts = db.counts()
    # every committed update wrote 50 objects and 1 change together: never half of one
    assert counts['changes'] >= 3 and counts['objects'] == 50 * counts['changes']
    objects, changes, _ = db.load(20)
    last = max(c.stamp_ns for c in changes)
    assert sorted({int(o.position[0]) for o in objects.values()}) == list(range(1, last + 1))
    db.close()

# ---------------------------------------------------------------- evaluation criteria


def test_fragmentation_and_spread_follow_the_issue_criteria():
    from spatial_caption_ros.core.memory.evaluation import fragmentation, world_spread
    mem = ObjectMemory(config(move_radius=0.0))
    # two cup entries 0.2 m apart (one physical cup, fragmented), a book, a person (not static)
    for t in (0.0, 0.2):
        mem.update(graph(t, obj_at(1, 'cup', (0, 0, 2.0)), obj_at(2, 'book', (1.0, 0, 2.0)),
                         obj_at(3, 'person', (-1.0, 0, 2.0), size=0.5)), yaw(0), CAM)
    for t in (0.4, 0.6):
        mem.update(graph(t, obj_at(4, 'cup', (0.2, 0, 2.0), sigma=0.01)), yaw(0), CAM)
    assert sorted(o.class_name for o in mem.remembered()) == ['book', 'cup', 'cup', 'person']
    f = fragmentation(mem)
    assert f == {'entries_per_object': 1.5, 'n': 2, 'entries': 3}
    cup = next(o for o in mem.remembered() if o.class_name == 'cup')
    observed = {cup.id: [cup.position + [0.03, 0, 0], cup.position - [0, 0.05, 0]]}
    spread = world_spread(mem, observed)
    assert spread['median'] == pytest.approx(0.04) and spread['n'] == 2 and spread['objects'] == 1


def test_tum_frames_carry_ground_truth_poses_as_transforms():
    from support import EVAL
    from spatial_caption_ros.core.evaluation.tum import read_tum_sequence
    from spatial_caption_ros.core.memory.evaluation import posed_frames
    folder = EVAL / 'tum_fr1_rpy'
    if not folder.is_dir():
        pytest.skip('../shared/eval/tum_fr1_rpy is needed')
    frames = posed_frames(read_tum_sequence(folder))
    assert len(frames) == 87
    assert all(np.allclose(f.pose.rotation @ f.pose.rotation.T, np.eye(3), atol=1e-6)
               for f in frames)
    assert frames[0].stamp_ns == 1305031229528748000
