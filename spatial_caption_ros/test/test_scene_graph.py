import pytest

from spatial_caption_ros.core.geometry import region_of, relative_size
from spatial_caption_ros.core.relations import directional_relations, overlap_relation
from spatial_caption_ros.core.scene_graph import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import (
    BoundingBox, DetectionResult, FrameHeader, LEFT_OF, OVERLAPPING, RIGHT_OF, SceneObject)


def obj(i, name, box, conf=0.9):
    return SceneObject(id=i, class_name=name, class_id=0, confidence=conf, box=BoundingBox(*box))


@pytest.mark.parametrize('box,region', [
    ((0, 0, 10, 10), 'top-left'), ((140, 140, 160, 160), 'center'),
    ((290, 290, 300, 300), 'bottom-right'), ((140, 0, 160, 10), 'top'),
    ((0, 140, 10, 160), 'left'),
])
def test_regions(box, region):
    assert region_of(BoundingBox(*box), 300, 300) == region


def test_relative_size():
    assert relative_size(BoundingBox(0, 0, 150, 300), 300, 300) == pytest.approx(0.5)


def test_left_of_needs_a_clear_margin():
    a, b = obj(0, 'cup', (0, 0, 10, 10)), obj(1, 'cup', (20, 0, 30, 10))
    rels = directional_relations(a, b, margin=0.25)
    assert [r.predicate for r in rels] == [LEFT_OF]
    near_tie = obj(2, 'cup', (1, 0, 11, 10))
    assert directional_relations(a, near_tie, margin=0.25) == []
    assert [r.predicate for r in directional_relations(b, a, 0.25)] == [RIGHT_OF]


def test_overlap_is_symmetric_and_stated_once():
    a, b = obj(3, 'cup', (0, 0, 10, 10)), obj(1, 'cup', (5, 5, 15, 15))
    rel = overlap_relation(a, b)
    assert rel.predicate == OVERLAPPING and (rel.subject_id, rel.object_id) == (1, 3)
    assert overlap_relation(a, obj(4, 'cup', (20, 20, 30, 30))) is None


def _result(objects, w=640, h=480):
    return DetectionResult(header=FrameHeader(5, 'cam'), image_width=w, image_height=h,
                           objects=objects)


def test_builder_fills_attributes_and_never_states_both_directions():
    objects = [obj(0, 'person', (10, 200, 110, 470)), obj(1, 'person', (500, 200, 600, 470)),
               obj(2, 'bus', (150, 50, 480, 400))]
    graph = SceneGraphBuilder(SceneGraphConfig()).build(_result(objects))
    assert graph.header.stamp_ns == 5 and graph.header.frame_id == 'cam'
    persons = [o for o in graph.objects if o.class_name == 'person']
    assert all(o.class_count == 2 for o in persons)
    assert graph.object_by_id(0).region == 'bottom-left'
    facts = set()
    for r in graph.relations:
        key = frozenset((r.subject_id, r.object_id))
        assert (key, r.predicate) not in facts
        facts.add((key, r.predicate))
    pairs = {(r.subject_id, r.predicate, r.object_id) for r in graph.relations}
    for s, p, o in pairs:
        assert (o, p, s) not in pairs


