"""Depth Anything V2 loading and pre/post-processing on generated models with the same contract.

No Depth Anything V2 weights exist here: the models are generated at test time (dav2_contract.py)
with the official input/output names, ranks and normalisation, and an output that is a known
function of the input, so every step (resize to multiples of 14, ImageNet normalisation, channel
order, letterbox crop, resize back, orientation) is checked against numbers.
"""

import math

import numpy as np
import pytest

from support.dav2_contract import expected_output, grey_for_output, make_contract_model
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.depth import create_depth_source, DepthConfig, DepthInput
from spatial_caption_ros.core.perception.depth.depth_anything import (
    dynamic_input_size, MAX_ANCHOR_REL_SIGMA, PATCH)
from spatial_caption_ros.core.errors import ConfigError, ModelError
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, DEPTH_ANYTHING_V2, Detection)
from support.scenes import project_cuboid

KB = KnowledgeBase.load()


def _quadrants(w=300, h=200):
    """Four coloured quadrants: top-left red, top-right green, bottom-left blue, bottom-right
    white (RGB)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:h // 2, :w // 2] = (255, 0, 0)
    img[:h // 2, w // 2:] = (0, 255, 0)
    img[h // 2:, :w // 2] = (0, 0, 255)
    img[h // 2:, w // 2:] = (255, 255, 255)
    return img


def _source(path, **values):
    """The DA-V2 source of `path` with these flat depth parameters (e.g. depth_input_size)."""
    values = {'depth_source': 'depth_anything_v2', **values}
    return create_depth_source('depth_anything_v2', build_config(DepthConfig, values),
                               knowledge=KB, model_path=path, backend='onnxruntime', threads=1)


@pytest.mark.parametrize('width,height,size,expected', [
    (640, 480, 518, (686, 518)),
    (480, 640, 518, (518, 686)),
    (518, 518, 518, (518, 518)),
    (1242, 375, 518, (1722, 518)),
    (1242, 375, 266, (882, 266)),
    (100, 99, 14, (14, 14)),
])
def test_dynamic_input_keeps_aspect_with_sides_multiple_of_14(width, height, size, expected):
    w, h = dynamic_input_size(width, height, size)
    assert (w, h) == expected
    assert w % PATCH == 0 and h % PATCH == 0 and min(w, h) == size
    assert (w / h) == pytest.approx(width / height, rel=PATCH / min(w, h) / 2 + 0.01)


def test_input_size_must_be_a_multiple_of_14():
    with pytest.raises(ConfigError, match='multiple of 14'):
        dynamic_input_size(640, 480, 500)


@pytest.mark.parametrize('input_name,output_name', [('image', 'depth'),
                                                    ('pixel_values', 'predicted_depth')])
@pytest.mark.parametrize('rank', [3, 4])
def test_official_contracts_normalise_resize_and_keep_orientation(tmp_path, input_name,
                                                                  output_name, rank):
    path = make_contract_model(tmp_path / 'm.onnx', input_name=input_name,
                               output_name=output_name, output_rank=rank)
    src = _source(path, depth_input_size=140)
    rgb = _quadrants()
    out = src.model.predict(ColorImage(rgb, 'rgb'))
    assert out.shape == (200, 300) and out.dtype == np.float32
    assert src.model.last_input_shape == (1, 3, 140, 210)        # 300x200 -> 210x140, x14
    # away from the quadrant borders (where resizing blends them) every pixel is exact
    for y, x in ((40, 60), (40, 240), (160, 60), (160, 240)):
        assert out[y, x] == pytest.approx(expected_output(rgb[y, x]), abs=1e-3), (y, x)
    # the same picture in BGR order gives the same map
    bgr = ColorImage(np.ascontiguousarray(rgb[..., ::-1]), 'bgr')
    assert np.allclose(src.model.predict(bgr), out, atol=1e-4)
    src.close()


def test_fixed_shape_model_is_letterboxed_and_the_padding_cropped(tmp_path):
    path = make_contract_model(tmp_path / 'fixed.onnx', fixed_hw=(70, 70), output_rank=4)
    src = _source(path)
    rgb = _quadrants(300, 150)                                   # 2:1 into a 70x70 input
    out = src.model.predict(ColorImage(rgb, 'rgb'))
    assert src.model.last_input_shape == (1, 3, 70, 70)
    p = src.model.placement(300, 150)
    assert (p.w, p.h, p.x, p.y) == (70, 35, 0, 17)
    # the top and bottom rows hold image content, not the padding (whose output is 3.0)
    for y, x in ((5, 40), (5, 260), (145, 40), (145, 260)):
        assert out[y, x] == pytest.approx(expected_output(rgb[y, x]), abs=0.02), (y, x)
    src.close()


def test_models_with_a_wrong_contract_are_refused_with_a_reason(tmp_path):
    import onnx
    from onnx import helper, TensorProto
    x = helper.make_tensor_value_info('a', TensorProto.FLOAT, [1, 3, 28, 28])
    y = helper.make_tensor_value_info('b', TensorProto.FLOAT, [1, 3, 28, 28])
    z = helper.make_tensor_value_info('c', TensorProto.FLOAT, [1, 3, 28, 28])
    graph = helper.make_graph([helper.make_node('Identity', ['a'], ['b']),
                               helper.make_node('Identity', ['a'], ['c'])], 'g', [x], [y, z])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / 'two_outputs.onnx'))
    with pytest.raises(ModelError, match='depth or predicted_depth'):
        _source(tmp_path / 'two_outputs.onnx')
    path = make_contract_model(tmp_path / 'odd.onnx', fixed_hw=(30, 30))
    with pytest.raises(ModelError, match='multiples of 14'):
        _source(path)
    with pytest.raises(ModelError, match='does not exist'):
        _source(tmp_path / 'missing.onnx')


def test_metric_model_gives_metres_per_object(tmp_path):
    path = make_contract_model(tmp_path / 'metric.onnx', gain=2.0, offset=6.0)
    src = _source(path, depth_model_output='metric', depth_input_size=112)
    img = np.full((240, 320, 3), grey_for_output(9.0, 2.0, 6.0), np.uint8)   # background ~9 m
    near = grey_for_output(4.0, 2.0, 6.0)
    img[60:180, 40:140] = near                                   # something at ~4 m
    img[100:220, 200:260] = near
    thing = Detection(BoundingBox(40, 60, 140, 180), 99, 'unknown thing', 0.9)
    chair = Detection(BoundingBox(200, 100, 260, 220), 56, 'chair', 0.9)
    out = src.estimate(DepthInput(ColorImage(img, 'rgb'), [thing, chair], None))
    metres = float(expected_output(np.array([near] * 3), 2.0, 6.0))
    assert out.metric and out.depth_map.shape == (240, 320)
    assert out.objects[0].value == pytest.approx(metres, abs=0.02) and out.objects[0].metric
    # a chair's centre is half its depth extent (0.5 m) behind its visible front
    assert out.objects[1].value == pytest.approx(metres + 0.25, abs=0.03)
    assert all(o.source == DEPTH_ANYTHING_V2 for o in out.objects)
    src.close()


def _street_scene(cam, persons):
    """Persons (x, z) drawn as boxes whose grey level gives a disparity of 1/z."""
    person = KB.size_prior('person')
    img = np.full((cam.height, cam.width, 3), grey_for_output(3.05), np.uint8)  # far background
    dets, truth = [], []
    for x, z in sorted(persons, key=lambda p: -p[1]):          # far ones first, near on top
        box = project_cuboid(x, z, person.height, person.width, person.length, 1.2, cam)
        surface = z - person.length / 2
        grey = grey_for_output(3.0 + 2.0 / surface)             # disparity = 3 + 2/surface
        img[int(box.y_min):int(box.y_max), int(box.x_min):int(box.x_max)] = grey
        dets.append(Detection(box, 0, 'person', 0.9))
        truth.append(z)
    return img, dets, truth


def test_relative_model_made_metric_from_geometric_anchors(tmp_path):
    cam = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    img, dets, truth = _street_scene(cam, [(-2.0, 4.0), (0.5, 7.0), (2.5, 11.0), (-4.0, 15.0)])
    src = _source(make_contract_model(tmp_path / 'rel.onnx'), depth_input_size=224)
    out = src.estimate(DepthInput(ColorImage(img, 'rgb'), dets, cam))
    assert out.metric, out.notes
    fit = src.last_fit
    assert fit.anchors == 4 and fit.inliers >= 3
    # the true model: 1/surface = (disparity - 3) / 2, i.e. scale 0.5, shift -1.5
    assert fit.scale == pytest.approx(0.5, rel=0.15)
    for obj, z in zip(out.objects, truth, strict=True):
        assert obj.metric and obj.value == pytest.approx(z, rel=0.1)
        assert math.isfinite(obj.uncertainty) and obj.uncertainty > 0
    assert any('inliers' in n for n in out.notes)
    assert np.nanmax(out.depth_map) > 15.0                       # the background is far
    assert MAX_ANCHOR_REL_SIGMA >= 0.1 + 0.05                    # persons qualify as anchors


def test_relative_model_without_camera_info_stays_relative(tmp_path):
    cam = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    img, dets, truth = _street_scene(cam, [(-2.0, 4.0), (1.5, 9.0)])
    src = _source(make_contract_model(tmp_path / 'rel.onnx'), depth_input_size=224)
    out = src.estimate(DepthInput(ColorImage(img, 'rgb'), dets, None))
    assert not out.metric and not any(o.metric for o in out.objects)
    values = [o.value for o in out.objects]
    near, far = (values[1], values[0]) if truth[1] < truth[0] else values
    assert near < far                                           # larger = farther
    assert any('relative depth only' in n and 'camera_info' in n for n in out.notes)
    none = _source(make_contract_model(tmp_path / 'rel2.onnx'), depth_input_size=224,
                   depth_scale_source='none')
    assert not none.estimate(DepthInput(ColorImage(img, 'rgb'), dets, cam)).metric


def test_relative_model_made_metric_from_sensor_depth(tmp_path):
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    true_depth = 2.0 + 6.0 * xx / w                              # a wall receding to the right
    disparity = 3.0 + 2.0 / true_depth
    levels = expected_output(np.stack([np.arange(256)] * 3, axis=-1))
    img = np.repeat(np.interp(disparity, levels, np.arange(256)).round().astype(np.uint8)[
        ..., None], 3, axis=2)
    actual_disp = expected_output(img)
    sensor = (2.0 / (actual_disp - 3.0)).astype(np.float32)      # consistent with the pixels
    sensor[::5] = np.nan                                         # holes
    sensor[:20, :20] = 50.0                                      # a patch of wrong readings
    src = _source(make_contract_model(tmp_path / 'rel.onnx'), depth_input_size=112,
                  depth_scale_source='sensor')
    box = BoundingBox(200, 80, 260, 160)
    out = src.estimate(DepthInput(ColorImage(img, 'rgb'), [Detection(box, 99, 'thing', 0.9)],
                                  None, sensor))
    assert out.metric and src.last_fit.inliers > 0.8 * src.last_fit.anchors
    assert src.last_fit.scale == pytest.approx(0.5, rel=0.05)
    expected = float(np.nanpercentile(sensor[100:140, 215:245], 30))
    assert out.objects[0].value == pytest.approx(expected, rel=0.05)
    missing = src.estimate(DepthInput(ColorImage(img, 'rgb'), [], None, None))
    assert missing.metric                                        # the previous fit carries on
    assert any('frame(s) ago' in n for n in missing.notes)
