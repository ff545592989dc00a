"""Scene memory core: transforms, association and fusion, changes with evidence, queries, facts,
keyframe retrieval and SQLite storage (including a corrupt file and a kill -9 mid-write)."""

import math
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
    APPEARED, GONE, MOVED, ObjectMemory, PRESENT, TENTATIVE)
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


def _confirmed_cup(mem: ObjectMemory) -> int:
    for t in (0.0, 0.2, 0.4):
        mem.update(graph(t, obj_at(1, 'cup', (0, 0, 2.0))), yaw(0), CAM)
    return next(iter(mem.objects))


def test_gone_needs_negative_evidence_in_view():
    mem = ObjectMemory(config(gone_after_frames=3))
    cup = _confirmed_cup(mem)
    # camera turned away: the cup is out of view, missing it says nothing
    for k in range(10):
        mem.update(graph(1 + k * 0.2), yaw(90), CAM)
    assert mem.objects[cup].state == PRESENT
    # occluded by a nearer person covering its projection: still nothing
    for k in range(10):
        mem.update(graph(3 + k * 0.2, obj_at(5, 'person', (0, 0, 1.0), size=0.6)), yaw(0), CAM)
    assert mem.objects[cup].state == PRESENT
    # no intrinsics: nothing can be checked
    for k in range(10):
        mem.update(graph(5 + k * 0.2), yaw(0), None)
    assert mem.objects[cup].state == PRESENT
    # in view, in range, nothing in front: gone after enough misses
    states = []
    for k in range(6):
        mem.update(graph(7 + k * 0.2), yaw(0), CAM)
        states.append(mem.objects[cup].state)
    assert GONE in states and states[:2] == [PRESENT] * 2
    gone = [c for c in mem.changes if c.kind == GONE and c.object.id == cup]
    assert len(gone) == 1 and 'not detected' in gone[0].evidence
    # seen again: appeared again
    mem.update(graph(9, obj_at(1, 'cup', (0, 0, 2.0))), yaw(0), CAM)
    assert mem.objects[cup].state == PRESENT and mem.changes[-1].kind == APPEARED


def test_an_often_missed_object_needs_more_misses_before_gone():
    reliable, flaky = ObjectMemory(config(gone_after_frames=2)), \
        ObjectMemory(config(gone_after_frames=2))
    _confirmed_cup(reliable)
    cup = _confirmed_cup(flaky)
    # the flaky one was missed in view every other frame before
    for k in range(4):
        flaky.update(graph(1 + k * 0.4), yaw(0), CAM)
        flaky.update(graph(1.2 + k * 0.4, obj_at(1, 'cup', (0, 0, 2.0))), yaw(0), CAM)

    def misses_until_gone(mem, t0):
        for k in range(40):
            mem.update(graph(t0 + k * 0.2), yaw(0), CAM)
            if any(c.kind == GONE for c in mem.changes):
                return k + 1
        return None
    assert misses_until_gone(reliable, 5) < misses_until_gone(flaky, 5)
    assert flaky.objects[cup].state == GONE


def test_moved_when_seen_elsewhere_and_old_place_is_empty():
    mem = ObjectMemory(config())
    cup = _confirmed_cup(mem)
    mem.update(graph(1.0, obj_at(1, 'cup', (0.8, 0, 2.0))), yaw(0), CAM)
    assert len(mem.objects) == 1
    moved = [c for c in mem.changes if c.kind == MOVED]
    assert len(moved) == 1 and moved[0].object.id == cup
    assert abs(moved[0].distance - 0.8) < 1e-6
    np.testing.assert_allclose(mem.objects[cup].position, [0.8, 0, 2.0])


def test_not_moved_when_old_place_is_out_of_view():
    mem = ObjectMemory(config())
    _confirmed_cup(mem)
    # camera turned 40 deg; a cup appears in view, the old place is outside the image
    pose = yaw(40)
    p = pose.inverse().apply(np.array([1.6, 0, 1.5]))
    mem.update(graph(1.0, obj_at(2, 'cup', tuple(p))), pose, CAM)
    assert len(mem.objects) == 2 and not any(c.kind == MOVED for c in mem.changes)

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
    cup = _confirmed_cup(mem)
    result = mem.update(graph(10.0, obj_at(1, 'cup', (0, 0, 2.0))), yaw(0), CAM)
    facts = memory_facts(mem, result, max_age_s=60.0)
    assert [f.kind for f in facts] == [STILL_THERE]
    assert facts[0].text == 'the cup first seen 10 s ago is still there'
    assert check_fact(mem, facts[0])
    for k in range(8):        # now it is gone: the old fact no longer holds
        gone = mem.update(graph(11 + k * 0.2), yaw(0), CAM)
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
