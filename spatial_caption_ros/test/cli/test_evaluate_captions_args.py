"""The caption evaluation refuses bad arguments in one line with exit code 2 (issues 11.5, 15.2).

Its `--set` and `--pipeline-set` go through the one parameter-file library (params_file.py):
names, types and ranges are checked before minutes of graph building, as in every command.
"""

import json

import pytest

from spatial_caption_ros.cli import evaluate_captions
from support import needs_shared, one_line_error


@pytest.mark.parametrize('argv,expected', [
    (['--config', '/missing.yaml'], 'cannot read the parameter file /missing.yaml'),
    (['--set', 'unknown=1'], 'unknown parameters for caption: unknown'),
    (['--set', 'n_threads=-3'], 'caption.n_threads: -3 is below the minimum 0'),
    (['--set', 'caption.timeout=soon'], 'expected a number'),
    (['--pipeline-set', 'perception.nope=1'], 'unknown parameters for perception: nope'),
    (['--pipeline-set', 'caption.style=short'], "unknown node 'caption'"),
    (['--runs', 'template/short,llm/poem'], '--runs: unknown llm/poem'),
    (['--limit', '-1'], '--limit -1: must be 0 (every image) or more'),
    (['--eval-dir', '/nonexistent'], '--eval-dir /nonexistent: no index.jsonl'),
])
def test_bad_arguments_end_in_one_line_and_exit_2(argv, expected, capsys, tmp_path):
    code = evaluate_captions.main(argv + ['--output', str(tmp_path / 'x.json'), '--quiet'])
    err = one_line_error(capsys)
    assert code == 2
    assert expected in err, err


@needs_shared
def test_checked_overrides_reach_the_run(tmp_path, capsys):
    """A bare PARAM=VALUE is a caption parameter; NODE.PARAM=VALUE reaches the pipeline."""
    out = tmp_path / 'eval.json'
    code = evaluate_captions.main([
        '--runs', 'template/short', '--limit', '1', '--no-coco-metrics', '--quiet',
        '--set', 'min_confidence=0.6', '--pipeline-set', 'perception.depth_source=geometric',
        '--output', str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc['caption_parameters']['min_confidence'] == 0.6
    assert doc['pipeline_overrides'] == ['perception.depth_source=geometric']
    assert doc['images'] == 1 and doc['results'][0]['run'] == 'template/short'
