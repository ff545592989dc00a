"""The whole node graph on bus.jpg: in one process and as separate processes, real rclpy."""

import json
from pathlib import Path
import shutil
import subprocess
import sys

import pytest
from rclpy.executors import MultiThreadedExecutor
import yaml

from support import BUS, MODELS, needs_shared, runner_env, spin_until
from spatial_caption_ros.params_file import load_params
from spatial_caption_ros.cli.run import BATCH_IMAGE_READERS
from spatial_caption_ros.ros.collector import ResultCollector
from spatial_caption_ros.ros.graph import (
    create_nodes, GRAPH_NODES, start_source_when_connected)

pytestmark = needs_shared


def _check_bus_result(graph_objects, caption_text):
    names = [o['class_name'] if isinstance(o, dict) else o.class_name for o in graph_objects]
    assert names.count('bus') == 1
    assert names.count('person') >= 4
    text = caption_text.lower()
    assert 'bus' in text and 'people' in text
    assert any(w in text for w in ('left of', 'right of', 'above', 'below', 'on the left',
                                   'on the right', 'in the center'))


@pytest.fixture
def one_image(tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    shutil.copy(BUS, folder / 'bus.jpg')
    return folder


def _params_file(tmp_path, folder):
    params = load_params()
    src = params['image_source']['ros__parameters']
    # as the runner sets a batch run up (cli/run.py build_params)
    src.update(source=str(folder), pace_on='caption', rate=5.0, autostart=False,
               min_subscribers=BATCH_IMAGE_READERS, output_qos='latched')
    params['perception']['ros__parameters'].update(model_dir=str(MODELS), input_qos='latched')
    params['visualization']['ros__parameters'].update(image_qos='latched')
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(params))
    return path


def test_whole_graph_in_one_process(rclpy_context, tmp_path, one_image):
    params_file = _params_file(tmp_path, one_image)
    # the collector joins first, so it sees every message from the first frame on
    collector = ResultCollector(expect_names=True, graph_nodes=GRAPH_NODES)
    nodes = create_nodes(GRAPH_NODES, params_file, remaps=None)
    executor = MultiThreadedExecutor()
    for n in nodes + [collector]:
        executor.add_node(n)
    try:
        assert all(n.active for n in nodes[1:]), [n.last_error for n in nodes]
        start_source_when_connected(executor, collector, timeout=30)
        # every endpoint the collector waits for exists (none missing, none miscounted)
        assert collector.missing_endpoints() == []
        assert collector.expected_endpoints()[('image', 'subscribers')] == 3
        assert nodes[0].active
        assert spin_until(executor, lambda: collector.total_frames == 1 and collector.results,
                          timeout=60)
        result = collector.results[0]
        assert result.name == 'bus'
        assert result.graph is not None and result.caption.verified
        _check_bus_result(result.graph.objects, result.caption.text)
        assert result.graph.header.stamp_ns == result.caption.header.stamp_ns
        assert result.graph.header.frame_id == 'camera_optical_frame'
    finally:
        executor.shutdown()
        for n in nodes + [collector]:
            n.destroy_node()


def test_runner_with_separate_processes(tmp_path, one_image):
    out = tmp_path / 'out'
    env = runner_env()                 # not the domain of the in-process graph test before
    proc = subprocess.run(
        [sys.executable, '-m', 'spatial_caption_ros.cli.run', '--input', str(one_image),
         '--output', str(out), '--mode', 'processes', '--model-dir', str(MODELS),
         '--timeout', '120'],
        env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith('bus: ')
    lines = (out / 'captions.jsonl').read_text().splitlines()
    assert len(lines) == 1
    caption = json.loads(lines[0])
    graph_file = next((out / 'scene_graphs').glob('*bus.json'))
    graph = json.loads(graph_file.read_text())['scene_graph']
    _check_bus_result(graph['objects'], caption['text'])
    assert next((out / 'annotated').glob('*bus.jpg')).stat().st_size > 10_000
    for node in GRAPH_NODES:
        assert (out / f'{node}.log').is_file()
    assert Path(out / 'params.yaml').is_file()
