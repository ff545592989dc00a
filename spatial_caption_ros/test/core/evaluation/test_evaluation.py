"""The evaluation harness: metrics on hand-made graphs, a synthetic folder in the format of
../shared/eval run through the real pipeline, and a real run on a few ../shared/eval items."""

import json
import math
import shutil

import pytest

from support import BUS, EVAL, MODELS, needs_shared
from spatial_caption_ros.cli import evaluate
from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.evaluation.dataset import GroundTruthObject, load_items
from spatial_caption_ros.core.evaluation.kitti import KITTI_TO_COCO, read_kitti_labels
from spatial_caption_ros.core.evaluation.vsr import read_vsr_statements, VsrStatement
from spatial_caption_ros.core.evaluation.harness import (
    EvalOptions, Harness, MODE_ORACLE, render_markdown)
from spatial_caption_ros.core.evaluation.metrics import (
    clear_direction, decide_statement, kendall_tau_b, match_objects, score_depth,
    score_directions)
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.scene_graph.builder import SceneGraphConfig
from spatial_caption_ros.core.types import (
    BEHIND, BoundingBox, CameraIntrinsics, FrameHeader, IN_FRONT_OF, LEFT_OF, ON, Relation,
    RIGHT_OF, SceneGraph, SceneObject)


def gt(label, classes, box, depth=math.nan, distance=math.nan):
    return GroundTruthObject(label, frozenset(classes), BoundingBox(*box), depth, distance)


def det(i, name, box, depth=math.nan, metric=False, distance=math.nan):
    return SceneObject(id=i, class_name=name, class_id=0, confidence=0.9, box=BoundingBox(*box),
                       depth=depth, depth_metric=metric, distance=distance)


def graph_of(objects, relations):
    return SceneGraph(FrameHeader(), 1000, 500, objects, relations)

# ---------------------------------------------------------------- metrics


def test_kendall_tau_b():
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: x has one tied pair -> tau-b = (4 - 1) / sqrt(5 * 6)
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 3, 0]) == pytest.approx(
        (2 - 3) / math.sqrt(5 * 6))
    assert math.isnan(kendall_tau_b([1], [2])) and math.isnan(kendall_tau_b([1, 1], [1, 2]))


def test_matching_is_one_to_one_by_class_and_iou():
    truth = [gt('Van', {'car', 'truck'}, (0, 0, 100, 100)), gt('Car', {'car'}, (200, 0, 300, 90)),
             gt('Car', {'car'}, (205, 0, 305, 90))]
    objects = [det(0, 'truck', (0, 0, 100, 95)), det(1, 'car', (200, 0, 300, 90)),
               det(2, 'person', (200, 0, 300, 90))]
    # the van is matched by the truck detection; the one car detection goes to the label it
    # overlaps most (IoU 1.0), the other car label stays unmatched; a person never matches a car
    assert match_objects(truth, objects) == {0: 0, 1: 1}
    assert match_objects(truth, [det(0, 'car', (60, 0, 160, 100))]) == {}     # IoU 0.25


def test_kitti_labels(tmp_path):
    path = tmp_path / '000001.txt'
    path.write_text(
        'Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57\n'
        'DontCare -1 -1 -10 800.38 163.67 825.45 184.07 -1 -1 -1 -1000 -1000 -1000 -10\n'
        'Cyclist 0.00 0 -1.65 676.60 163.95 688.98 193.93 1.86 0.60 2.02 4.59 1.32 45.84 -1.55\n')
    objects = read_kitti_labels(path)
    assert [o.type for o in objects] == ['Car', 'Cyclist']
    assert KITTI_TO_COCO[objects[1].type] == ('person', 'bicycle')
    assert objects[0].depth == 58.49 and objects[0].truncated == 0.0 and objects[0].moderate
    assert objects[0].distance == pytest.approx(math.sqrt(16.53 ** 2 + (2.39 - 1.67 / 2) ** 2 +
                                                          58.49 ** 2))
    path.write_text('Car 0 0\n')
    with pytest.raises(ConfigError, match='15 fields'):
        read_kitti_labels(path)


def test_depth_scores_count_pairs_order_distance_and_tau():
    truth = [gt('Car', {'car'}, (0, 0, 100, 100), 10.0, 10.5),
             gt('Car', {'car'}, (200, 0, 300, 100), 20.0, 20.2),
             gt('Car', {'car'}, (400, 0, 500, 100), 21.0, 21.0),      # within 10 % of 20
             gt('Car', {'car'}, (600, 0, 700, 100), 40.0, 40.0)]      # not detected
    objects = [det(0, 'car', (0, 0, 100, 100), 11.0, True, 11.55),
               det(1, 'car', (200, 0, 300, 100), 18.0, True, 18.18),
               det(2, 'car', (400, 0, 500, 100), 9.0, True, 9.0)]
    relations = [Relation(0, IN_FRONT_OF, 1), Relation(0, BEHIND, 2)]
    matches = match_objects(truth, objects)
    s = score_depth(truth, graph_of(objects, relations), matches)
    # eligible: (0,1) (0,2) (0,3) (1,3) (2,3); (1,2) is 5 % apart
    assert (s.pairs, s.pairs_matched) == (5, 2)
    assert (s.graph_decided, s.graph_correct) == (2, 1)    # 0 before 1 right; 0 behind 2 wrong
    assert (s.values_decided, s.values_correct) == (2, 1)
    assert sorted(s.distance_errors) == pytest.approx([0.1, 0.1, 9 / 21 * 0 + 12 / 21])
    assert s.frame_taus == [pytest.approx(kendall_tau_b([11, 18, 9], [10, 20, 21]))]


def test_clear_direction():
    a, b = BoundingBox(0, 0, 10, 10), BoundingBox(10, 5, 20, 15)
    assert clear_direction(a, b, 'x') == 1 and clear_direction(b, a, 'x') == -1
    assert clear_direction(a, b, 'y') == 0             # vertical projections overlap
    assert clear_direction(a, BoundingBox(9, 20, 20, 30), 'x') == 0
    assert clear_direction(a, BoundingBox(9, 20, 20, 30), 'y') == 1


def test_direction_scores_precision_recall_and_unclear_pairs():
    truth = [gt('cup', {'cup'}, (0, 0, 10, 10)), gt('cup', {'cup'}, (20, 0, 30, 10)),
             gt('cup', {'cup'}, (5, 20, 15, 30)), gt('cup', {'cup'}, (100, 100, 110, 110))]
    objects = [det(0, 'cup', (0, 0, 10, 10)), det(1, 'cup', (20, 0, 30, 10)),
               det(2, 'cup', (5, 20, 15, 30)), det(3, 'cup', (300, 300, 310, 310))]
    relations = [Relation(0, LEFT_OF, 1),            # clear, right
                 Relation(2, RIGHT_OF, 1),           # clear on x: 2 is left of 1 -> wrong
                 Relation(0, RIGHT_OF, 2),           # x overlaps: unclear, centres say left
                 Relation(3, LEFT_OF, 0)]            # 3 matches nothing
    s = score_directions(truth, graph_of(objects, relations), match_objects(truth, objects))
    assert s.predicted['x'] == 4
    assert (s.on_clear['x'], s.correct['x']) == (2, 1)
    assert (s.on_unclear['x'], s.contradicted['x'], s.unmatched['x']) == (1, 1, 1)
    # clear x pairs among labels: (0,1) (0,3) (1,2) (1,3) (2,3); recalled: (0,1) only
    assert (s.truth_clear['x'], s.truth_clear_matched['x'], s.recalled['x']) == (5, 2, 1)


def test_vsr_statements_decided_only_when_the_graph_says_so():
    objects = [det(0, 'book', (0, 0, 10, 10)), det(1, 'wine glass', (50, 0, 60, 10)),
               det(2, 'bowl', (0, 50, 10, 60)), det(3, 'oven', (0, 60, 40, 100)),
               det(4, 'person', (100, 0, 110, 10)), det(5, 'person', (200, 0, 210, 10)),
               det(6, 'dog', (150, 0, 160, 10))]
    relations = [Relation(1, RIGHT_OF, 0), Relation(2, ON, 3), Relation(4, LEFT_OF, 6),
                 Relation(6, LEFT_OF, 5)]
    graph = graph_of(objects, relations)

    def say(s, r, o):
        return decide_statement(graph, VsrStatement('x.jpg', s, r, o, True, ''))
    assert say('book', 'at the left side of', 'wine glass') is True     # via the converse
    assert say('book', 'right of', 'wine glass') is False
    assert say('bowl', 'on top of', 'oven') is True
    assert say('oven', 'on', 'bowl') is False                           # B on A denies A on B
    assert say('bowl', 'touching', 'oven') is True and say('oven', 'touching', 'bowl') is True
    assert say('book', 'touching', 'wine glass') is None                # absence is no denial
    assert say('book', 'across from', 'wine glass') is None             # not a graph relation
    assert say('person', 'left of', 'dog') is None                      # two people disagree
    assert say('cat', 'left of', 'dog') is None                         # no cat detected


def test_vsr_file_parsing(tmp_path):
    path = tmp_path / 'vsr.jsonl'
    path.write_text('\n'.join(json.dumps(r) for r in [
        {'image': 'a.jpg', 'caption': 'The book is at the left side of the wine glass.',
         'relation': 'at the left side of', 'label': 1},
        {'image': 'a.jpg', 'caption': 'The cat is touching the dining table.',
         'relation': 'touching', 'label': 0},
        {'image': 'a.jpg', 'caption': 'Something else.', 'relation': 'near', 'label': 1}]))
    got = read_vsr_statements(path)
    assert [(s.subject, s.relation, s.object, s.label) for s in got] == [
        ('book', 'at the left side of', 'wine glass', True),
        ('cat', 'touching', 'dining table', False)]

# ---------------------------------------------------------------- the harness, end to end


@pytest.fixture(scope='module')
def synthetic_eval(tmp_path_factory):
    """A folder in the ../shared/eval format built around bus.jpg.

    The labels are the real detector's own boxes (so every detection matches), with depths
    chosen here; the calib is an ideal 60 degree camera. What the harness must report on it is
    then known exactly.
    """
    if not BUS.is_file() or not (MODELS / 'yolo11n.onnx').is_file():
        pytest.skip('../shared/data/images/bus.jpg and ../shared/models/yolo11n.onnx needed')
    root = tmp_path_factory.mktemp('eval')
    image = read_image_file(BUS)
    pipeline = PerceptionPipeline(build_config(PerceptionConfig, {'model_dir': str(MODELS)}))
    found = pipeline.process(image, FrameHeader()).objects
    pipeline.close()
    people = [o for o in found if o.class_name == 'person'][:4]
    others = [o for o in found if o.class_name != 'person']
    assert len(people) == 4
    camera = CameraIntrinsics.from_horizontal_fov(60.0, image.width, image.height)
    for sub in ('kitti/image_2', 'kitti/label_2', 'kitti/calib', 'coco/images/val2017',
                'coco/annotations', 'vsr'):
        (root / sub).mkdir(parents=True)
    shutil.copy(BUS, root / 'kitti/image_2/000001.jpeg')
    shutil.copy(BUS, root / 'coco/images/val2017/000000000001.jpg')
    lines = []
    for k, o in enumerate(people):
        z, h = 5.0 + 2.0 * k, 1.7                   # all pairs > 10 % apart
        u, v = o.box.center
        x, y_centre, _ = camera.backproject(u, v, z)
        lines.append(f'Pedestrian 0.00 0 0.0 {o.box.x_min:.2f} {o.box.y_min:.2f} '
                     f'{o.box.x_max:.2f} {o.box.y_max:.2f} {h} 0.5 0.5 {x:.4f} '
                     f'{y_centre + h / 2:.4f} {z:.2f} 0.0')
    lines.append('DontCare -1 -1 -10 0 0 10 10 -1 -1 -1 -1000 -1000 -1000 -10')
    (root / 'kitti/label_2/000001.txt').write_text('\n'.join(lines) + '\n')
    p2 = [camera.fx, 0, camera.cx, 0, 0, camera.fy, camera.cy, 0, 0, 0, 1, 0]
    (root / 'kitti/calib/000001.txt').write_text(
        'P0: ' + ' '.join(['0'] * 12) + '\nP2: ' + ' '.join(f'{v:.6e}' for v in p2) + '\n')
    categories = [{'id': 1, 'name': 'person'}, {'id': 6, 'name': 'bus'}]
    cat_id = {'person': 1, 'bus': 6}
    annotations = [{'id': k + 1, 'image_id': 1, 'category_id': cat_id[o.class_name],
                    'iscrowd': 0, 'area': o.box.area,
                    'bbox': [o.box.x_min, o.box.y_min, o.box.width, o.box.height]}
                   for k, o in enumerate(people + [o for o in others if o.class_name == 'bus'])]
    annotations.append({'id': 99, 'image_id': 1, 'category_id': 1, 'iscrowd': 1, 'area': 1,
                        'bbox': [0, 0, 5, 5]})
    (root / 'coco/annotations/instances_val2017.json').write_text(json.dumps({
        'images': [{'id': 1, 'file_name': '000000000001.jpg', 'width': image.width,
                    'height': image.height}],
        'annotations': annotations, 'categories': categories}))
    (root / 'vsr/vsr_statements.jsonl').write_text(json.dumps({
        'image': '000000000001.jpg', 'caption': 'The bus is across from the person.',
        'relation': 'across from', 'label': 1}) + '\n')
    index = [
        {'id': 'kitti_000001', 'source': 'kitti', 'image': 'kitti/image_2/000001.jpeg',
         'width': image.width, 'height': image.height, 'labels': 'kitti/label_2/000001.txt',
         'calib': 'kitti/calib/000001.txt', 'n_objects_mapped_classes': 4},
        {'id': 'coco_000000000001', 'source': 'coco', 'coco_image_id': 1,
         'image': 'coco/images/val2017/000000000001.jpg', 'width': image.width,
         'height': image.height, 'instances': 'coco/annotations/instances_val2017.json',
         'vsr_statements': 1}]
    (root / 'index.jsonl').write_text('\n'.join(json.dumps(r) for r in index) + '\n')
    return root, len(annotations) - 1


def _harness(root, oracle, **graph):
    perception = {'model_dir': str(MODELS), 'depth_source': 'none'}
    return Harness(build_config(PerceptionConfig, perception),
                   build_config(SceneGraphConfig, graph),
                   EvalOptions(root, oracle_depth=oracle))


def test_dataset_reader_on_the_synthetic_folder(synthetic_eval):
    root, n_coco = synthetic_eval
    items = load_items(root)
    kitti, coco = items
    assert kitti.source == 'kitti' and len(kitti.objects) == 4 and kitti.calib_path.is_file()
    assert [o.depth for o in kitti.objects] == [5.0, 7.0, 9.0, 11.0]
    assert coco.source == 'coco' and len(coco.objects) == n_coco     # the crowd box is skipped
    assert len(coco.statements) == 1 and kitti.statements == []
    assert load_items(root, sources=('coco',))[0].id == 'coco_000000000001'
    with pytest.raises(ConfigError, match='index.jsonl'):
        load_items(root / 'kitti')


def test_harness_oracle_mode_scores_perfect_depth_exactly(synthetic_eval):
    root, _ = synthetic_eval
    harness = _harness(root, oracle=True)
    try:
        report = harness.run()
    finally:
        harness.close()
    assert report['mode'] == MODE_ORACLE and 'NOT the accuracy' in report['oracle_warning']
    k = report['kitti']
    assert (k['objects'], k['objects_matched'], k['pairs'], k['pairs_matched']) == (4, 4, 6, 6)
    assert k['value_order'] == {'decided': 6, 'correct': 6, 'accuracy': 1.0, 'coverage': 1.0}
    assert k['graph_order']['decided'] >= 1 and k['graph_order']['accuracy'] == 1.0
    assert k['distance_rel_error']['n'] == 4 and k['distance_rel_error']['median'] < 1e-3
    assert k['kendall_tau'] == {'frames': 1, 'mean': 1.0}
    c = report['coco']['all']
    assert c['precision'] == 1.0 and c['recall_of_detected'] == 1.0 and c['on_clear_pairs'] > 0
    assert report['vsr']['statements'] == 1 and report['vsr']['decided'] == 0
    text = render_markdown(report)
    assert 'ORACLE MODE' in text and '| KITTI depth order, graph' in text


def test_harness_without_depth_reports_zero_depth_coverage(synthetic_eval):
    root, _ = synthetic_eval
    harness = _harness(root, oracle=False)
    try:
        report = harness.run()
    finally:
        harness.close()
    k = report['kitti']
    assert report['mode'] == 'product' and report['depth_source'] == 'none'
    assert k['graph_order'] == {'decided': 0, 'correct': 0, 'accuracy': None, 'coverage': 0.0,
                                'coverage_of_detected': 0.0}
    assert k['distance_rel_error']['n'] == 0 and k['kendall_tau']['frames'] == 0
    assert 'ORACLE' not in render_markdown(report)


def test_an_unreadable_item_is_reported_and_the_run_goes_on(synthetic_eval, tmp_path):
    root, _ = synthetic_eval
    broken = tmp_path / 'eval'
    shutil.copytree(root, broken)
    (broken / 'kitti/image_2/000001.jpeg').write_bytes(b'not a jpeg')
    harness = _harness(broken, oracle=False)
    try:
        report = harness.run()
    finally:
        harness.close()
    assert report['failed_items'] == ['kitti_000001']
    assert report['coco']['all']['predicted'] > 0
    assert 'items that failed' in render_markdown(report)


def test_evaluate_command_writes_json_and_markdown(synthetic_eval, tmp_path, capsys):
    root, _ = synthetic_eval
    out = tmp_path / 'out'
    code = evaluate.main(['--data', str(root), '--output', str(out), '--model-dir', str(MODELS),
                          '--oracle-depth', '--quiet', '--set', 'scene_graph.knn_k=2'])
    assert code == 0
    report = json.loads((out / 'results.json').read_text())
    assert report['parameters']['scene_graph']['knn_k'] == 2
    assert (out / 'results.md').read_text() == capsys.readouterr().out.rstrip('\n') + '\n'
    assert evaluate.main(['--data', str(root), '--output', str(out), '--set', 'bad']) == 2
    assert evaluate.main(['--data', str(root), '--output', str(out),
                          '--depth-source', 'nonexistent']) == 2


@needs_shared
@pytest.mark.parametrize('depth_source', ['none', 'geometric'])
def test_real_run_on_a_few_shared_eval_items(depth_source):
    if not (EVAL / 'index.jsonl').is_file():
        pytest.skip('../shared/eval is needed')
    perception = {'model_dir': str(MODELS), 'depth_source': depth_source}
    harness = Harness(build_config(PerceptionConfig, perception),
                      SceneGraphConfig(), EvalOptions(EVAL, limit=2))
    try:
        report = harness.run()
    finally:
        harness.close()
    assert report['items'] == {'kitti': 2, 'coco': 2, 'vsr_only': 2, 'tum': 2}
    assert report['failed_items'] == [] and report['depth_source'] == depth_source
    k = report['kitti']
    assert k['objects'] >= 4 and k['objects_matched'] >= 2
    assert k['graph_order']['decided'] <= k['pairs_matched'] <= k['pairs']
    if depth_source == 'none':
        assert k['distance_rel_error']['n'] == 0 and k['graph_order']['decided'] == 0
    else:      # KITTI has calib: geometric depth is metric, so distances can be scored
        assert k['distance_rel_error']['n'] >= 1
        assert k['value_order']['decided'] >= 1
    assert report['coco']['all']['predicted'] > 0
    assert sum(f['detections'] for f in report['frames']) > 0
    # the TUM RGB-D section with exactly the keys of issue 12, and KITTI's within_25
    tum = report['tum']
    assert set(tum['graph_order']) >= {'decided', 'correct', 'accuracy', 'coverage'}
    assert set(tum['depth_rel_error']) == {'n', 'median', 'within_25'}
    assert set(tum['sigma_coverage']) >= {'one', 'two'}
    assert 'within_25' in k['distance_rel_error']
    assert tum['frames'] == 2 and tum['objects_with_reference'] >= 1
    if depth_source == 'none':
        assert tum['depth_rel_error']['n'] == 0 and tum['graph_order']['decided'] == 0
    else:          # the Kinect's intrinsics and the poses' gravity: metric on every object
        assert tum['depth_rel_error']['n'] >= 1
        assert 0.0 <= tum['depth_rel_error']['within_25'] <= 1.0
