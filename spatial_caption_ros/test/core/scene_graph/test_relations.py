"""Edge cases of every spatial relation (core/scene_graph/relations.py), one rule at a time."""

import math

import numpy as np
import pytest
import shapely

from spatial_caption_ros.core.scene_graph.geometry import (
    box_intersection_areas, box_polygons, gaps, intersection_areas, knn_pairs)
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.scene_graph.relations import (
    canonical, relate_pair, RelationConfig, resolve_conflicts)
from spatial_caption_ros.core.types import (
    ABOVE, BEHIND, BELOW, BoundingBox, CameraIntrinsics, CONTAINS, IN_FRONT_OF, INSIDE, LEFT_OF,
    NEAR, NEXT_TO, ON, OVERLAPPING, Relation, RIGHT_OF, SceneObject)

KB = KnowledgeBase.load()
CAMERA = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)


def obj(i, name, box, conf=0.9, depth=None, sigma=None, metric=False):
    """A scene object; with metric depth it also gets a 3D position and metric size."""
    o = SceneObject(id=i, class_name=name, class_id=0, confidence=conf, box=BoundingBox(*box))
    if depth is not None:
        o.depth = depth
        o.depth_uncertainty = math.nan if sigma is None else sigma
        o.depth_metric = metric
        o.depth_source = 'geometric' if metric else 'depth_anything_v2'
    if metric and depth is not None:
        u, v = o.box.center
        o.position = CAMERA.backproject(u, v, depth)
        o.distance = math.sqrt(sum(c * c for c in o.position))
        o.metric_width = o.box.width * depth / CAMERA.fx
        o.metric_height = o.box.height * depth / CAMERA.fy
    return o


def facts(a, b, config=None):
    return {(r.subject_id, r.predicate, r.object_id) for r in relate_pair(a, b, config, KB)}


def predicates(a, b, config=None):
    return {p for _, p, _ in facts(a, b, config)}

# ---------------------------------------------------------------- left / right / above / below


def test_left_of_needs_a_clear_margin_and_near_ties_are_not_asserted():
    a, b = obj(0, 'cup', (0, 0, 10, 10)), obj(1, 'cup', (20, 0, 30, 10))
    assert (0, LEFT_OF, 1) in facts(a, b)
    assert (1, RIGHT_OF, 0) in facts(b, a)
    near_tie = obj(2, 'cup', (1, 0, 11, 10))          # centres 1 px apart: 0.1 of the width
    assert not predicates(a, near_tie) & {LEFT_OF, RIGHT_OF}
    at_margin = obj(3, 'cup', (2.5, 0, 12.5, 10))     # exactly 0.25: not beyond the margin
    assert not predicates(a, at_margin) & {LEFT_OF, RIGHT_OF}
    beyond = obj(4, 'cup', (2.6, 0, 12.6, 10))
    assert LEFT_OF in predicates(a, beyond)


def test_direction_confidence_grows_with_separation_and_is_full_when_disjoint():
    a = obj(0, 'cup', (0, 0, 10, 10))
    conf = {r.predicate: r.confidence for r in relate_pair(a, obj(1, 'cup', (5, 0, 15, 10)))}
    assert 0.5 < conf[LEFT_OF] < 1.0
    conf = {r.predicate: r.confidence for r in relate_pair(a, obj(1, 'cup', (30, 0, 40, 10)))}
    assert conf[LEFT_OF] == pytest.approx(1.0)


def test_nested_extent_gives_no_direction_even_with_offset_centres():
    # a person standing in front of the left part of a wide bus is not "left of" the bus
    person = obj(0, 'person', (20, 100, 80, 300))
    bus = obj(1, 'bus', (0, 50, 600, 280))
    assert not predicates(person, bus) & {LEFT_OF, RIGHT_OF}


def test_above_below_in_the_image_without_depth():
    lamp, table = obj(0, 'clock', (100, 0, 150, 50)), obj(1, 'dining table', (80, 200, 300, 300))
    assert (0, ABOVE, 1) in facts(lamp, table)
    assert (1, BELOW, 0) in facts(table, lamp)


def test_above_is_checked_in_3d_when_metric():
    # two 1.5 m cars on a road seen from 2 m up (centres 1.25 m below the camera, y down):
    # the far one (30 m) appears higher in the image than the near one (8 m) but is not above
    near_box, far_box = (200, 271.1, 440, 364.9), (300, 248.3, 360, 273.3)
    near = obj(0, 'car', near_box, depth=8.0, sigma=0.5, metric=True)
    far = obj(1, 'car', far_box, depth=30.0, sigma=2.0, metric=True)
    assert near.position[1] == pytest.approx(far.position[1], abs=0.01)
    assert not predicates(near, far) & {ABOVE, BELOW}
    # without metric positions the image-plane relation stands
    assert BELOW in predicates(obj(0, 'car', near_box), obj(1, 'car', far_box))
    # 0.75 m higher in 3D (beyond the 0.375 m margin): "above" when the depths are precise,
    # unsaid when the near car's depth is so uncertain (4 m) that its height is too (0.6 m)
    higher = obj(1, 'car', far_box, depth=30.0, sigma=2.0, metric=True)
    higher.position = (higher.position[0], 0.5, 30.0)
    assert (1, ABOVE, 0) in facts(higher, near)
    vague = obj(0, 'car', near_box, depth=8.0, sigma=4.0, metric=True)
    assert not predicates(higher, vague) & {ABOVE, BELOW}
    # a clock on the wall above a table at the same depth is above it in 3D too
    clock = obj(2, 'clock', (300, 20, 340, 60), depth=4.0, sigma=0.2, metric=True)
    table = obj(3, 'dining table', (200, 300, 440, 420), depth=4.0, sigma=0.2, metric=True)
    assert (2, ABOVE, 3) in facts(clock, table)


def test_zero_size_boxes_do_not_crash_or_assert_directions():
    a, b = obj(0, 'cup', (5, 5, 5, 5)), obj(1, 'cup', (5, 5, 5, 5))
    assert relate_pair(a, b, knowledge=KB) == []

# ---------------------------------------------------------------- overlap, touching, containment


def test_touching_boxes_are_next_to_not_overlapping():
    a, b = obj(0, 'cup', (0, 0, 10, 10)), obj(1, 'cup', (10, 0, 20, 10))
    got = predicates(a, b)
    assert NEXT_TO in got and OVERLAPPING not in got


def test_a_sliver_of_overlap_is_not_overlapping_but_real_overlap_is():
    a = obj(0, 'cup', (0, 0, 100, 100))
    assert OVERLAPPING not in predicates(a, obj(1, 'cup', (98, 0, 198, 100)))   # 2 %
    got = facts(a, obj(1, 'cup', (50, 50, 150, 150)))                           # 25 %
    assert (0, OVERLAPPING, 1) in got


def test_symmetric_relations_are_stated_once_with_the_smaller_id_first():
    a, b = obj(7, 'cup', (0, 0, 10, 10)), obj(3, 'cup', (5, 5, 15, 15))
    for pair in ((a, b), (b, a)):
        rel = [r for r in relate_pair(*pair, knowledge=KB) if r.predicate == OVERLAPPING]
        assert [(r.subject_id, r.object_id) for r in rel] == [(3, 7)]


def test_containment_needs_depth_that_agrees():
    cup = (120, 120, 160, 160)
    bowl = (100, 100, 200, 200)
    # image only: a box inside a box may be an object in front: no "inside", only overlapping
    got = predicates(obj(0, 'cup', cup), obj(1, 'bowl', bowl))
    assert INSIDE not in got and CONTAINS not in got and OVERLAPPING in got
    # relative depth that does not separate them: inside
    got = facts(obj(0, 'cup', cup, depth=2.0, sigma=0.2), obj(1, 'bowl', bowl, depth=2.1,
                                                               sigma=0.2))
    assert (0, INSIDE, 1) in got and not {p for _, p, _ in got} & {OVERLAPPING, CONTAINS}
    # the same stated with the container first is still "cup inside bowl", once
    got = facts(obj(1, 'bowl', bowl, depth=2.1, sigma=0.2),
                obj(0, 'cup', cup, depth=2.0, sigma=0.2))
    assert (0, INSIDE, 1) in got


def test_object_in_front_of_a_container_is_not_inside_it():
    person = obj(0, 'person', (200, 150, 260, 330), depth=4.0, sigma=0.3, metric=True)
    bus = obj(1, 'bus', (100, 100, 500, 340), depth=20.0, sigma=2.0, metric=True)
    got = facts(person, bus)
    assert (0, IN_FRONT_OF, 1) in got
    assert not {p for _, p, _ in got} & {INSIDE, CONTAINS}
    # a passenger at the bus's depth (within its reach) is inside
    passenger = obj(2, 'person', (200, 150, 260, 300), depth=19.0, sigma=1.0, metric=True)
    assert (2, INSIDE, 1) in facts(passenger, bus)


def test_what_rises_out_of_a_container_is_in_it_where_the_knowledge_agrees():
    vase = (100, 200, 160, 300)
    plant = (70, 60, 190, 215)               # leaves above and wider than the vase, stems in it
    got = facts(obj(0, 'potted plant', plant, depth=1.5, sigma=0.2),
                obj(1, 'vase', vase, depth=1.5, sigma=0.2))
    assert (0, INSIDE, 1) in got and OVERLAPPING not in {p for _, p, _ in got}
    assert KB.found_in('potted plant', 'vase') and KB.found_in('apple', 'bowl')  # fruit bowl
    # a "potted plant" box that takes in its vase (both end at one line): in it too
    got = facts(obj(0, 'potted plant', (60, 30, 200, 301), depth=1.2, sigma=0.5, metric=True),
                obj(1, 'vase', vase, depth=0.9, sigma=0.3, metric=True))
    assert (0, INSIDE, 1) in got
    # no knowledge that a person is found in a vase: overlapping only
    got = predicates(obj(0, 'person', plant, depth=1.5, sigma=0.2),
                     obj(1, 'vase', vase, depth=1.5, sigma=0.2))
    assert INSIDE not in got and OVERLAPPING in got
    # depth that separates them (the plant on a shelf far behind the vase): not in it
    got = predicates(obj(0, 'potted plant', plant, depth=1.5, sigma=0.1, metric=True),
                     obj(1, 'vase', vase, depth=4.0, sigma=0.2, metric=True))
    assert INSIDE not in got
    # the plant's bottom far above the vase's rim: not in it
    got = predicates(obj(0, 'potted plant', (70, 20, 190, 120), depth=1.5, sigma=0.2),
                     obj(1, 'vase', vase, depth=1.5, sigma=0.2))
    assert INSIDE not in got
    # without knowledge nothing is "in" by this rule
    assert INSIDE not in {r.predicate for r in relate_pair(
        obj(0, 'potted plant', plant, depth=1.5, sigma=0.2),
        obj(1, 'vase', vase, depth=1.5, sigma=0.2))}


def test_inside_needs_a_container_and_a_clearly_smaller_box():
    tie, person = (140, 120, 160, 200), (100, 50, 200, 400)
    assert INSIDE not in predicates(obj(0, 'tie', tie, depth=3.0, sigma=0.3),
                                    obj(1, 'person', person, depth=3.0, sigma=0.3))
    same = (100, 100, 200, 200)
    assert INSIDE not in predicates(obj(0, 'cup', (102, 102, 198, 198), depth=2.0, sigma=0.2),
                                    obj(1, 'bowl', same, depth=2.0, sigma=0.2))

# ---------------------------------------------------------------- on


CUP_ON_TABLE = ((200, 150, 240, 210), (100, 180, 500, 400))   # cup bottom in the table's top


def test_on_with_depth_that_agrees():
    cup, table = CUP_ON_TABLE
    got = facts(obj(0, 'cup', cup, depth=3.0, sigma=0.3), obj(1, 'dining table', table,
                                                               depth=3.2, sigma=0.3))
    assert (0, ON, 1) in got
    assert OVERLAPPING not in {p for _, p, _ in got}     # the more specific fact wins
    rel = [r for r in relate_pair(obj(0, 'cup', cup, depth=3.0, sigma=0.3),
                                  obj(1, 'dining table', table, depth=3.2, sigma=0.3),
                                  knowledge=KB) if r.predicate == ON][0]
    assert 0.5 <= rel.confidence <= 1.0


def test_no_on_from_the_image_alone_or_when_depth_separates_them():
    cup, table = CUP_ON_TABLE
    assert ON not in predicates(obj(0, 'cup', cup), obj(1, 'dining table', table))
    # metric: the cup is 4 m behind the table, beyond its reach: occlusion, not support
    got = predicates(obj(0, 'cup', cup, depth=7.5, sigma=0.3, metric=True),
                     obj(1, 'dining table', table, depth=3.0, sigma=0.3, metric=True))
    assert ON not in got and BEHIND in got
    got = predicates(obj(0, 'cup', cup, depth=3.0, sigma=0.3, metric=True),
                     obj(1, 'dining table', table, depth=3.3, sigma=0.3, metric=True))
    assert ON in got


def test_on_needs_a_support_class_and_contact():
    cup, table = CUP_ON_TABLE
    assert ON not in predicates(obj(0, 'cup', cup, depth=3.0, sigma=0.3),
                                obj(1, 'tv', table, depth=3.0, sigma=0.3))
    floating = (200, 50, 240, 100)      # far above the table top: no contact
    assert ON not in predicates(obj(0, 'cup', floating, depth=3.0, sigma=0.3),
                                obj(1, 'dining table', table, depth=3.0, sigma=0.3))
    beside = (520, 150, 560, 210)       # bottom at the right height but not over the table
    assert ON not in predicates(obj(0, 'cup', beside, depth=3.0, sigma=0.3),
                                obj(1, 'dining table', table, depth=3.0, sigma=0.3))

# ---------------------------------------------------------------- depth


def test_in_front_only_beyond_the_combined_uncertainty():
    a, b = (0, 0, 10, 10), (100, 0, 110, 10)
    # log-depth gap ln(11/10) / sqrt(0.03^2 + (0.3/11)^2) = 2.35 sigma > Phi^-1(0.97) = 1.88
    got = relate_pair(obj(0, 'car', a, depth=10.0, sigma=0.3),
                      obj(1, 'car', b, depth=11.0, sigma=0.3), knowledge=KB)
    rel = [r for r in got if r.predicate in (IN_FRONT_OF, BEHIND)]
    assert [(r.subject_id, r.predicate, r.object_id) for r in rel] == [(0, IN_FRONT_OF, 1)]
    # confidence: probability the order is right under Gaussian errors of ln z, Phi(2.35)
    gap = math.log(1.1) / math.hypot(0.03, 0.3 / 11.0)
    assert rel[0].confidence == pytest.approx(0.5 * (1 + math.erf(gap / 2 ** 0.5)), abs=1e-6)
    # 10 vs 10.5: 1.18 sigma, right with probability 0.88 < 0.97: left unsaid ...
    assert not predicates(obj(0, 'car', a, depth=10.0, sigma=0.3),
                          obj(1, 'car', b, depth=10.5, sigma=0.3)) & {IN_FRONT_OF, BEHIND}
    # ... unless 0.85 is enough
    lax = build_config(RelationConfig, {'order_confidence': 0.85})
    assert IN_FRONT_OF in predicates(obj(0, 'car', a, depth=10.0, sigma=0.3),
                                     obj(1, 'car', b, depth=10.5, sigma=0.3), lax)
    # a stricter confidence (0.995: 2.58 sigma) drops the 10 vs 11 pair too
    strict = build_config(RelationConfig, {'order_confidence': 0.995})
    assert not predicates(obj(0, 'car', a, depth=10.0, sigma=0.3),
                          obj(1, 'car', b, depth=11.0, sigma=0.3), strict) & {IN_FRONT_OF,
                                                                              BEHIND}


def test_behind_is_the_converse_and_missing_depth_decides_nothing():
    a, b = (0, 0, 10, 10), (100, 0, 110, 10)
    assert (0, BEHIND, 1) in facts(obj(0, 'car', a, depth=20.0, sigma=0.5),
                                   obj(1, 'car', b, depth=10.0, sigma=0.5))
    assert not predicates(obj(0, 'car', a, depth=20.0, sigma=0.5),
                          obj(1, 'car', b)) & {IN_FRONT_OF, BEHIND}
    # metric and relative depths are not comparable
    assert not predicates(obj(0, 'car', a, depth=20.0, sigma=0.5, metric=True),
                          obj(1, 'car', b, depth=1.0, sigma=0.1)) & {IN_FRONT_OF, BEHIND}


def test_missing_uncertainty_uses_the_default_relative_uncertainty():
    a, b = (0, 0, 10, 10), (100, 0, 110, 10)
    # no sigma: 10 % of each depth -> combined sqrt(1^2 + 1.05^2) = 1.45 > difference 0.5
    assert not predicates(obj(0, 'car', a, depth=10.0), obj(1, 'car', b, depth=10.5)) & {
        IN_FRONT_OF, BEHIND}
    assert IN_FRONT_OF in predicates(obj(0, 'car', a, depth=10.0), obj(1, 'car', b, depth=15.0))


def test_exact_depth_with_zero_uncertainty_orders_any_difference():
    got = relate_pair(obj(0, 'car', (0, 0, 10, 10), depth=10.0, sigma=0.0),
                      obj(1, 'car', (100, 0, 110, 10), depth=10.1, sigma=0.0), knowledge=KB)
    rel = [r for r in got if r.predicate == IN_FRONT_OF]
    assert rel and rel[0].confidence == 1.0
    equal = relate_pair(obj(0, 'car', (0, 0, 10, 10), depth=10.0, sigma=0.0),
                        obj(1, 'car', (100, 0, 110, 10), depth=10.0, sigma=0.0), knowledge=KB)
    assert not {r.predicate for r in equal} & {IN_FRONT_OF, BEHIND}

# ---------------------------------------------------------------- proximity and distances


def test_metric_distance_only_between_two_metric_positions():
    a = obj(0, 'person', (100, 100, 150, 300), depth=5.0, sigma=0.5, metric=True)
    b = obj(1, 'person', (300, 100, 350, 300), depth=5.0, sigma=0.5, metric=True)
    rels = relate_pair(a, b, knowledge=KB)
    expected = math.dist(a.position, b.position)
    assert rels and all(r.distance == pytest.approx(expected) for r in rels)
    # no CameraInfo: depth but no positions -> no metres anywhere
    c = obj(0, 'person', (100, 100, 150, 300), depth=5.0, sigma=0.5)
    d = obj(1, 'person', (300, 100, 350, 300), depth=5.0, sigma=0.5)
    assert all(math.isnan(r.distance) for r in relate_pair(c, d, knowledge=KB))


def test_adjacent_in_the_image_but_far_apart_in_3d_is_not_near():
    image_a, image_b = (100, 100, 200, 300), (205, 100, 305, 300)
    assert NEXT_TO in predicates(obj(0, 'person', image_a), obj(1, 'person', image_b))
    far = predicates(obj(0, 'person', image_a, depth=3.0, sigma=0.2, metric=True),
                     obj(1, 'person', image_b, depth=12.0, sigma=0.5, metric=True))
    assert not far & {NEXT_TO, NEAR}
    same_depth = predicates(obj(0, 'person', image_a, depth=3.0, sigma=0.2, metric=True),
                            obj(1, 'person', image_b, depth=3.0, sigma=0.2, metric=True))
    assert NEXT_TO in same_depth


def test_near_is_between_next_to_and_unrelated():
    a = obj(0, 'cup', (0, 0, 10, 10))
    assert NEAR in predicates(a, obj(1, 'cup', (15, 0, 25, 10)))       # gap 0.5 sizes
    assert not predicates(a, obj(1, 'cup', (40, 0, 50, 10))) & {NEAR, NEXT_TO}   # gap 3
    # stacked vertically (not side by side): near, not "next to"
    assert predicates(a, obj(1, 'cup', (0, 11, 10, 21))) & {NEAR, NEXT_TO} == {NEAR}


def test_config_rejects_near_smaller_than_next_to():
    from spatial_caption_ros.core.errors import ConfigError
    from spatial_caption_ros.core.params import build_config
    with pytest.raises(ConfigError, match='near_max_gap'):
        build_config(RelationConfig, {'near_max_gap': 0.1, 'next_to_max_gap': 0.5})

# ---------------------------------------------------------------- conflicts


def rel(s, p, o, c=0.8):
    return Relation(s, p, o, confidence=c)


def test_contradictory_candidates_keep_the_more_confident():
    out = resolve_conflicts([rel(1, LEFT_OF, 2, 0.9), rel(2, LEFT_OF, 1, 0.6)])
    assert [(r.subject_id, r.predicate, r.object_id) for r in out] == [(1, LEFT_OF, 2)]
    out = resolve_conflicts([rel(1, IN_FRONT_OF, 2, 0.6), rel(1, BEHIND, 2, 0.7)])
    assert [(r.subject_id, r.predicate, r.object_id) for r in out] == [(1, BEHIND, 2)]
    # "on" says the subject is the upper one: it contradicts "A below B"
    out = resolve_conflicts([rel(1, ON, 2, 0.9), rel(1, BELOW, 2, 0.5)])
    assert [r.predicate for r in out] == [ON]
    out = resolve_conflicts([rel(1, INSIDE, 2, 0.9), rel(2, INSIDE, 1, 0.5)])
    assert [(r.subject_id, r.object_id) for r in out] == [(1, 2)]


def test_equally_confident_contradictions_are_both_dropped():
    assert resolve_conflicts([rel(1, ABOVE, 2, 0.7), rel(2, ABOVE, 1, 0.7)]) == []


def test_repeats_and_converse_forms_are_stated_once():
    out = resolve_conflicts([rel(1, LEFT_OF, 2, 0.6), rel(2, RIGHT_OF, 1, 0.9),
                             rel(3, NEAR, 4), rel(4, NEAR, 3), rel(5, CONTAINS, 6),
                             rel(6, INSIDE, 5), rel(7, LEFT_OF, 7)])
    keys = sorted(canonical(r) for r in out)
    assert keys == [(1, LEFT_OF, 2), (3, NEAR, 4), (5, CONTAINS, 6)]
    kept = [r for r in out if canonical(r) == (1, LEFT_OF, 2)][0]
    assert kept.confidence == 0.9


def test_independent_families_do_not_conflict():
    out = resolve_conflicts([rel(1, LEFT_OF, 2), rel(1, ABOVE, 2), rel(1, BEHIND, 2),
                             rel(1, NEXT_TO, 2)])
    assert len(out) == 4

# ---------------------------------------------------------------- geometry helpers


def test_closed_form_box_overlaps_equal_shapely():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (40, 2))
    boxes = np.hstack([xy, xy + rng.uniform(0, 40, (40, 2))])
    i, j = np.triu_indices(40, 1)
    polygons = box_polygons(boxes)
    np.testing.assert_allclose(box_intersection_areas(boxes, i, j),
                               intersection_areas(polygons, i, j), atol=1e-9)
    assert np.all(gaps(polygons, i, j) >= 0)
    assert shapely.distance(polygons[0], polygons[0]) == 0


def test_knn_pairs_are_the_k_nearest_and_unique():
    points = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0], [10, 0]])
    i, j, d = knn_pairs(points, 1)
    pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    # each point's nearest neighbour; (3, 4) because 3 is 4's nearest
    assert pairs == {(0, 1), (1, 2), (2, 3), (3, 4)} or pairs == {(0, 1), (1, 2), (3, 4),
                                                                 (2, 3)}
    assert all(a < b for a, b in pairs)
    np.testing.assert_allclose(d, np.linalg.norm(points[i] - points[j], axis=1))
    i, j, _ = knn_pairs(points, 10)            # k >= N-1: every pair once
    assert len(i) == 10
    assert len(knn_pairs(points[:1], 5)[0]) == 0
