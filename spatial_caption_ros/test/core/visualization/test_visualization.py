"""Core visualisation: rviz marker descriptions and the annotated image (saved as PNG files)."""

import math

import cv2
import numpy as np
import pytest

from support import BUS, needs_shared
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.types import (
    BoundingBox, FrameHeader, Relation, SceneGraph, SceneObject)
from spatial_caption_ros.core.visualization.render import (
    annotate, depth_inset, marker_label, object_label, POINT_DIAMETER_M, scene_markers)
from support.synthetic_scene import bus_scene, save_artifact


def _obj(i, name, position=None, size=(float('nan'), float('nan')), metric=True):
    obj = SceneObject(id=i, class_name=name, class_id=i, confidence=0.9,
                      box=BoundingBox(10 * i, 10, 10 * i + 5, 20), depth_metric=metric)
    if position is not None:
        obj.position = position
        obj.distance = math.sqrt(sum(v * v for v in position))
        obj.depth = position[2]
    obj.metric_width, obj.metric_height = size
    return obj


def _graph(objects, relations=()):
    return SceneGraph(header=FrameHeader(5, 'cam'), image_width=640, image_height=480,
                      objects=list(objects), relations=list(relations), depth_metric=True)


def test_objects_with_3d_positions_get_a_box_and_a_distance_label():
    graph = _graph([_obj(1, 'chair', (0.5, 0.2, 2.25), (0.5, 0.9))])
    markers = scene_markers(graph)
    kinds = {(m.ns, m.kind) for m in markers}
    assert kinds == {('objects', 'cube'), ('labels', 'text')}
    cube = next(m for m in markers if m.kind == 'cube')
    assert cube.position == pytest.approx((0.5, 0.2, 2.25))
    assert cube.scale[:2] == pytest.approx((0.5, 0.9))       # the measured front face
    label = next(m for m in markers if m.kind == 'text')
    assert label.text == 'chair 2.3 m'
    assert label.position[1] < cube.position[1] - 0.45        # above it (optical frame: -y up)


def test_image_labels_show_the_distance_with_its_precision():
    car = _obj(1, 'car', position=(0.0, 0.0, 12.3))
    car.depth_uncertainty = 1.5
    assert object_label(car) == 'car 0.90 12.3+-1.5 m'          # one sigma
    assert object_label(car, assumed=True) == 'car 0.90 ~12 m'  # assumed intrinsics: rough
    near = _obj(2, 'cup', position=(0.0, 0.0, 2.34))
    assert object_label(near, assumed=True) == 'cup 0.90 ~2.3 m'
    assert object_label(near) == 'cup 0.90 2.3 m'               # no uncertainty known
    assert object_label(_obj(3, 'dog', metric=False)) == 'dog 0.90'


def test_unknown_metric_size_gives_a_small_sphere_not_an_invented_box():
    markers = scene_markers(_graph([_obj(1, 'cup', (0.0, 0.0, 1.0))]))
    sphere = next(m for m in markers if m.ns == 'objects')
    assert sphere.kind == 'sphere' and sphere.scale == (POINT_DIAMETER_M,) * 3


def test_2d_only_objects_are_put_nowhere():
    graph = _graph([_obj(1, 'person'), _obj(2, 'dog', (float('nan'), 0.0, 1.0))],
                   [Relation(1, 'left of', 2, salience=0.9)])
    assert scene_markers(graph) == []
    assert marker_label(_obj(3, 'person', metric=False)) == 'person'


def test_relation_lines_only_between_placed_objects_most_salient_first():
    objs = [_obj(1, 'a', (0, 0, 1)), _obj(2, 'b', (1, 0, 2)), _obj(3, 'c', (2, 0, 3)),
            _obj(4, 'd')]
    rels = [Relation(1, 'left of', 2, salience=0.2), Relation(2, 'left of', 3, salience=0.8),
            Relation(1, 'near', 4, salience=1.0)]           # 4 has no position: no line
    markers = scene_markers(_graph(objs, rels), max_relation_lines=1)
    lines = [m for m in markers if m.kind == 'lines']
    assert len(lines) == 1 and lines[0].points == [(1, 0, 2), (2, 0, 3)]
    labels = [m for m in markers if m.ns == 'relation_labels']
    assert [m.text for m in labels] == ['left of']
    assert len([m for m in scene_markers(_graph(objs, rels), 5) if m.kind == 'lines']) == 2


def test_depth_inset_colours_valid_pixels_and_states_units():
    depth = np.full((120, 320), np.nan, np.float32)
    depth[:, 160:] = np.linspace(1.0, 5.0, 160, dtype=np.float32)[None, :]
    inset = depth_inset(depth, 160, metric=True)
    assert inset.shape == (60, 160, 3)
    assert inset[20, 30].sum() == 0                # no reading: black
    assert inset[20, 120].sum() > 0                # a reading: coloured
    relative = depth_inset(depth, 160, metric=False)
    assert not np.array_equal(inset, relative)     # the label differs: m vs (relative)
    empty = depth_inset(np.full((10, 10), np.nan, np.float32), 40, metric=True)
    assert empty.shape[1] == 40


@needs_shared
def test_annotated_bus_image_with_depth_inset_and_caption(tmp_path):
    image, depth, graph, caption = bus_scene()
    assert any(o.class_name == 'bus' for o in graph.objects)
    canvas = annotate(image, graph, caption, depth=depth)
    assert canvas.shape == (image.height, image.width, 3)
    plain = annotate(image, graph)
    h, w = canvas.shape[:2]
    # the inset (top right) and the caption band (bottom) are drawn; the source is untouched
    assert not np.array_equal(canvas[:h // 8, -w // 8:], plain[:h // 8, -w // 8:])
    assert not np.array_equal(canvas[-10:], plain[-10:])
    assert np.array_equal(image.bgr(), cv2.imread(str(BUS)))
    paths = save_artifact(canvas, 'annotated_bus.png', tmp_path)
    for path in paths:
        reread = cv2.imread(str(path))
        assert reread is not None and reread.shape == canvas.shape
    bus = next(o for o in graph.objects if o.class_name == 'bus')
    assert math.isfinite(bus.distance) and marker_label(bus).endswith(' m')


def test_annotate_does_not_modify_the_input():
    pixels = np.zeros((50, 60, 3), np.uint8)
    graph = _graph([_obj(1, 'cup', (0.0, 0.0, 1.0), (0.1, 0.1))])
    annotate(ColorImage(pixels, 'bgr'), graph, 'A cup.', depth=np.ones((50, 60), np.float32))
    assert not pixels.any()
