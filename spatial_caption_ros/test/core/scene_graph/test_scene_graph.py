"""The scene-graph builder: attributes, k-NN selection, salience, knowledge, input checks."""

import copy
import math

import numpy as np
import pytest

from spatial_caption_ros.tools.synthetic import synthetic_frame
from spatial_caption_ros.core.errors import InvalidInputError
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.scene_graph.geometry import region_of, relative_size
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.scene_graph.relations import canonical, resolve_conflicts
from spatial_caption_ros.core.scene_graph.salience import object_salience
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, CONVERSE, DetectionResult, FrameHeader, IN_FRONT_OF, LEFT_OF,
    SceneObject, SYMMETRIC)

KB = KnowledgeBase.load()


def obj(i, name, box, conf=0.9, depth=math.nan):
    return SceneObject(id=i, class_name=name, class_id=0, confidence=conf, box=BoundingBox(*box),
                       depth=depth)


def result(objects, w=640, h=480):
    return DetectionResult(header=FrameHeader(5, 'cam'), image_width=w, image_height=h,
                           objects=objects)


def build(objects, w=640, h=480, **config):
    builder = SceneGraphBuilder(build_config(SceneGraphConfig, config), KB)
    return builder.build(result(objects, w, h))


@pytest.mark.parametrize('box,region', [
    ((0, 0, 10, 10), 'top-left'), ((140, 140, 160, 160), 'center'),
    ((290, 290, 300, 300), 'bottom-right'), ((140, 0, 160, 10), 'top'),
    ((0, 140, 10, 160), 'left'),
])
def test_regions(box, region):
    assert region_of(BoundingBox(*box), 300, 300) == region


def test_relative_size():
    assert relative_size(BoundingBox(0, 0, 150, 300), 300, 300) == pytest.approx(0.5)


def test_builder_fills_attributes_and_keeps_what_perception_measured():
    person = obj(17, 'person', (10, 200, 110, 470), depth=4.0)     # a track id, not an index
    person.depth_uncertainty, person.depth_metric, person.depth_source = 0.4, True, 'geometric'
    person.position, person.distance = (-2.0, 0.5, 4.0), 4.5
    person.metric_width, person.metric_height = 0.8, 1.7
    objects = [person, obj(42, 'person', (500, 200, 600, 470)), obj(3, 'bus', (150, 50, 480, 400))]
    graph = build(objects)
    assert graph.header.stamp_ns == 5 and graph.header.frame_id == 'cam'
    assert [o.id for o in graph.objects] == [17, 42, 3]
    p = graph.object_by_id(17)
    assert (p.class_count, p.region) == (2, 'bottom-left')
    assert p.relative_size == pytest.approx(100 * 270 / (640 * 480))
    assert (p.depth, p.depth_uncertainty, p.depth_source, p.depth_metric) == (
        4.0, 0.4, 'geometric', True)
    assert p.position == (-2.0, 0.5, 4.0) and p.distance == 4.5
    assert (p.metric_width, p.metric_height) == (0.8, 1.7)
    assert graph.object_by_id(3).class_count == 1
    ids = {o.id for o in graph.objects}
    assert all(r.subject_id in ids and r.object_id in ids for r in graph.relations)


def test_knowledge_is_attached_capped_and_optional():
    graph = build([obj(0, 'cup', (0, 0, 10, 10)), obj(1, 'forklift', (50, 0, 60, 10))],
                  max_facts_per_object=3)
    cup = graph.object_by_id(0)
    assert len(cup.knowledge) == 3 and cup.knowledge == list(KB.facts('cup')[:3])
    assert graph.object_by_id(1).knowledge == []          # unknown class: no facts, no error
    graph = build([obj(0, 'cup', (0, 0, 10, 10))], attach_knowledge=False)
    assert graph.objects[0].knowledge == []


def test_never_contradictory_and_symmetric_facts_once_on_random_frames():
    builder = SceneGraphBuilder(SceneGraphConfig(), KB)
    classes = KB.class_names()
    for seed, with_depth in ((1, True), (2, False), (3, True)):
        frame = synthetic_frame(40, seed, with_depth, classes)
        graph = builder.build(frame)
        keys = [canonical(r) for r in graph.relations]
        assert len(keys) == len(set(keys)), 'a fact is stated twice'
        assert sorted(map(canonical, resolve_conflicts(graph.relations))) == sorted(keys)
        stated = {(r.subject_id, r.predicate, r.object_id) for r in graph.relations}
        for s, p, o in stated:
            assert (o, p, s) not in stated
            if p in CONVERSE:
                assert (s, CONVERSE[p], o) not in stated
            if p in SYMMETRIC:
                assert s < o


def test_knn_selection_bounds_the_pairs():
    # ten objects in a row: with k=2 only near neighbours are related
    row = [obj(i, 'cup', (60 * i, 100, 60 * i + 20, 120)) for i in range(10)]
    builder = SceneGraphBuilder(SceneGraphConfig(knn_k=2, always_relate_top=0), KB)
    sal = object_salience(row, 640, 480)
    i, j, w = builder.candidate_pairs(row, sal, 640, 480)
    # each object's two nearest are its neighbours on both sides; the ends reach two along
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == {
        (a, a + 1) for a in range(9)} | {(0, 2), (7, 9)}
    assert np.all(w > 0) and np.all(w <= 1)
    # weights decay with distance: adjacent pairs weigh more than pairs two apart
    adjacent = w[(j - i) == 1].min()
    assert adjacent > w[(j - i) == 2].max()
    graph = builder.build(result(copy.deepcopy(row)))
    assert all(abs(r.subject_id - r.object_id) <= 2 for r in graph.relations)
    # k=0 relates every pair
    every = SceneGraphBuilder(SceneGraphConfig(knn_k=0), KB)
    i, _, _ = every.candidate_pairs(row, sal, 640, 480)
    assert len(i) == 45
    # the most salient objects are related even when they are not neighbours
    big = [obj(0, 'bus', (0, 0, 200, 200))] + [obj(k, 'cup', (250 + 10 * k, 300, 255 + 10 * k,
                                                               305)) for k in range(1, 9)] + [
        obj(9, 'truck', (440, 0, 640, 200))]
    top = SceneGraphBuilder(SceneGraphConfig(knn_k=1, always_relate_top=2), KB)
    i, j, _ = top.candidate_pairs(big, object_salience(big, 640, 480), 640, 480)
    assert (0, 9) in set(zip(i.tolist(), j.tolist(), strict=True))


def test_knn_uses_3d_when_every_object_is_metric():
    # left and right are near in the image but 20 m apart in depth; middle is close in 3D
    objects = []
    for i, (u, z) in enumerate(((300, 5.0), (340, 25.0), (200, 5.5))):
        o = obj(i, 'person', (u - 10, 200, u + 10, 260), depth=z)
        o.depth_metric, o.depth_uncertainty = True, 0.1
        o.position = CameraIntrinsics(500, 500, 320, 240, 640, 480).backproject(u, 230, z)
        objects.append(o)
    builder = SceneGraphBuilder(SceneGraphConfig(knn_k=1, always_relate_top=0), KB)
    i, j, _ = builder.candidate_pairs(objects, object_salience(objects, 640, 480), 640, 480)
    pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    assert (0, 2) in pairs and (0, 1) not in pairs


def test_salience_orders_size_confidence_centrality_and_nearness():
    big = obj(0, 'bus', (170, 90, 470, 390))
    small = obj(1, 'cup', (170, 90, 200, 120))
    sal = object_salience([big, small], 640, 480)
    assert sal[0] > sal[1]
    sure, unsure = obj(0, 'cup', (300, 220, 340, 260), 0.9), obj(1, 'cup', (300, 220, 340,
                                                                           260), 0.3)
    sal = object_salience([sure, unsure], 640, 480)
    assert sal[0] > sal[1]
    central, corner = obj(0, 'cup', (300, 220, 340, 260)), obj(1, 'cup', (0, 0, 40, 40))
    sal = object_salience([central, corner], 640, 480)
    assert sal[0] > sal[1]
    near, far = obj(0, 'cup', (100, 220, 140, 260), depth=1.0), obj(1, 'cup', (500, 220, 540,
                                                                                260), depth=9.0)
    sal = object_salience([near, far], 640, 480)
    assert sal[0] > sal[1] and np.all((sal >= 0) & (sal <= 1))
    assert object_salience([], 640, 480).shape == (0,)


def test_relations_are_ordered_by_salience():
    graph = build([obj(0, 'person', (10, 200, 110, 470)), obj(1, 'bus', (150, 50, 480, 400)),
                   obj(2, 'cup', (600, 10, 610, 20), 0.3)])
    values = [r.salience for r in graph.relations]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    top = graph.relations[0]
    assert {top.subject_id, top.object_id} == {0, 1}


def test_depth_relations_and_notes():
    near, far = obj(0, 'car', (0, 100, 100, 200), depth=5.0), obj(1, 'car', (300, 100, 400,
                                                                             200), depth=20.0)
    graph = build([near, far])
    assert (0, IN_FRONT_OF, 1) in {(r.subject_id, r.predicate, r.object_id)
                                   for r in graph.relations}
    assert any('no metric 3D positions' in n for n in graph.notes)
    graph = build([obj(0, 'car', (0, 100, 100, 200)), obj(1, 'car', (300, 100, 400, 200))])
    assert any('no depth' in n for n in graph.notes)
    assert (0, LEFT_OF, 1) in {(r.subject_id, r.predicate, r.object_id) for r in graph.relations}


@pytest.mark.parametrize('objects,width,match', [
    ([obj(1, 'cup', (0, 0, 10, 10)), obj(1, 'cup', (20, 0, 30, 10))], 640, 'appears twice'),
    ([obj(0, 'cup', (0, 0, math.nan, 10))], 640, 'invalid box'),
    ([obj(0, 'cup', (10, 0, 0, 10))], 640, 'invalid box'),
    ([obj(0, 'cup', (0, 0, 10, 10))], 0, 'image size'),
])
def test_unusable_input_is_an_invalid_input_error(objects, width, match):
    with pytest.raises(InvalidInputError, match=match):
        build(objects, w=width)


def test_empty_and_single_object_frames():
    assert build([]).relations == [] and build([]).objects == []
    graph = build([obj(0, 'cup', (0, 0, 10, 10))])
    assert graph.relations == [] and graph.objects[0].salience > 0
