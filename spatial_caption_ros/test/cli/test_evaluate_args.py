"""The evaluate command refuses bad arguments in one line with exit code 2 (issue 15.2)."""

import json

import pytest

from spatial_caption_ros.cli import evaluate
from support import needs_shared, one_line_error


@pytest.mark.parametrize('argv,expected', [
    (['--data', '/nonexistent'], 'no such folder'),
    (['--config', '/missing.yaml'], 'cannot read the parameter file /missing.yaml'),
    (['--set', 'perception.nonexistent=1'], 'did you mean'),
    (['--set', 'perception.confidence_threshold=abc'], 'expected a number'),
    (['--set', 'caption.style=short'], "unknown node 'caption'"),
    (['--sources', 'kitti,lidar'], "unknown sources ['lidar']"),
    (['--limit', '-1'], '--limit -1: must be 0 (every item) or more'),
])
def test_bad_arguments_end_in_one_line_and_exit_2(argv, expected, capsys, tmp_path):
    code = evaluate.main(argv + ['--output', str(tmp_path), '--quiet'])
    err = one_line_error(capsys)
    assert code == 2
    assert expected in err


def test_an_output_folder_that_cannot_be_made_is_refused_before_the_evaluation(capsys):
    """Checked first: it used to end in a traceback after the whole evaluation had run."""
    code = evaluate.main(['--output', '/proc/spatial_caption_eval', '--quiet'])
    err = one_line_error(capsys)
    assert code == 2, err
    assert err.startswith('--output /proc/spatial_caption_eval: cannot create the folder')


@needs_shared
def test_limit_also_limits_the_memory_evaluation_and_the_tables_say_n_a(tmp_path, capsys):
    """--limit N is 'the first N items of each source': the memory section ran all 87 TUM
    frames whatever the limit, and figures with nothing to measure were printed as 'None'."""
    code = evaluate.main(['--sources', 'tum', '--memory', '--limit', '3',
                          '--output', str(tmp_path), '--quiet'])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / 'results.json').read_text())
    assert report['memory']['frames'] == 3
    table = (tmp_path / 'results.md').read_text()
    assert 'None' not in table and 'n/a' in table, table
