"""The benchmark command measures the real pipeline and the real node; figures are printed, never
asserted (the machine is shared): these tests check what is measured and reported."""

import json
import math

import pytest

from support import BUS, needs_shared
from spatial_caption_ros.tools import bench_perception as bench
from spatial_caption_ros.core.perception.models import cache_dir

pytestmark = needs_shared
TIMING_MODEL = cache_dir() / 'models' / 'depth_anything_v2_vits_timing_518.onnx'


def test_pipeline_bench_reports_stages_raw_run_and_ratio():
    pipe = bench.bench_pipeline({'threads': 1}, BUS, frames=2, warmup=1)
    stages = pipe['stages_ms']
    assert {'decode', 'preprocess', 'inference', 'postprocess', 'depth',
            'detection stage'} <= set(stages)
    assert stages['detection stage'] == pytest.approx(
        stages['preprocess'] + stages['inference'] + stages['postprocess'], rel=0.2)
    assert list(pipe['raw_ms']) == ['raw detector session.run']
    assert math.isfinite(pipe['ratio_detection_stage_to_raw'])
    assert pipe['ratio_detection_stage_to_raw'] > 0 and pipe['objects'] >= 5
    assert pipe['describe']['device'] == 'CPUExecutionProvider'
    report = bench.format_report(pipe, None, 2)
    assert 'ratio detection stage / raw detector run' in report and 'frames/s' in report


def test_command_line_values_and_json_output(tmp_path, capsys):
    args = bench.parse_args(['--backend', 'onnxruntime', '--threads', '1', '--depth-source',
                             'none', '--set', 'confidence_threshold=0.5', '--set',
                             'classes=[bus]'])
    assert bench.perception_values(args) == {
        'backend': 'onnxruntime', 'threads': 1, 'depth_source': 'none',
        'confidence_threshold': 0.5, 'classes': ['bus']}
    out = tmp_path / 'bench.json'
    assert bench.main(['--frames', '1', '--warmup', '0', '--node-frames', '0', '--set',
                       'classes=[bus]', '--json', str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc['pipeline']['objects'] == 1 and doc['node'] is None
    assert 'raw detector session.run' in capsys.readouterr().out


@pytest.mark.skipif(not TIMING_MODEL.is_file(),
                    reason='Depth Anything V2-S timing model not built (make dav2-timing-model)')
def test_depth_model_is_timed_raw_beside_the_stage():
    pipe = bench.bench_pipeline({'threads': 1, 'depth_model': str(TIMING_MODEL)}, BUS,
                                frames=1, warmup=0)
    assert any('raw depth session.run' in k for k in pipe['raw_ms'])


def test_unknown_node_mode_is_one_clear_line_and_exit_code_2(capsys):
    assert bench.main(['--node-modes', 'in-process,threads']) == 2
    assert capsys.readouterr().err.strip() == (
        'error: --node-modes: unknown threads; use in-process and/or processes')


@pytest.mark.slow
def test_node_paths_through_the_real_perception_node_in_and_across_processes():
    node = bench.bench_node_paths({'threads': 1}, BUS, frames=3, warmup=1)
    assert node['frames'] == 3 and node['executor'] == 'SingleThreadedExecutor'
    assert set(node['median_ms']) == {'process()', 'in-process', 'processes'}
    assert all(v > 0 for v in node['median_ms'].values())
    assert node['ratio_of_medians_in_process'] == pytest.approx(
        node['median_ms']['in-process'] / node['median_ms']['process()'])
    assert node['ratio_in_process'] > 0 and math.isfinite(node['processes_overhead_ms'])
    assert {'decode', 'preprocess', 'inference', 'postprocess'} <= set(node['node_stage_ms'])
    report = '\n'.join(bench.format_node_paths(node))
    assert 'ratio to process()' in report and 'node in its own process' in report


@pytest.mark.skipif(not TIMING_MODEL.is_file(),
                    reason='Depth Anything V2-S timing model not built (make dav2-timing-model)')
def test_timing_model_has_the_official_contract_and_size():
    from spatial_caption_ros.core.perception.backends import create_backend
    backend = create_backend(TIMING_MODEL)
    assert [(t.name, t.shape) for t in backend.inputs] == [('pixel_values', (1, 3, 518, 518))]
    assert [(t.name, t.shape) for t in backend.outputs] == [('predicted_depth', (1, 518, 518))]
    # 24.8 M fp32 parameters, as Depth Anything V2 Small
    assert 95e6 < TIMING_MODEL.stat().st_size < 103e6
