"""The evaluate command refuses bad arguments in one line with exit code 2 (issue 15.2)."""

import pytest

from spatial_caption_ros.cli import evaluate


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
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err
    assert len(err.splitlines()) == 1 and 'Traceback' not in err


def test_an_output_folder_that_cannot_be_made_is_refused_before_the_evaluation(capsys):
    """Checked first: it used to end in a traceback after the whole evaluation had run."""
    code = evaluate.main(['--output', '/proc/spatial_caption_eval', '--quiet'])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith('--output /proc/spatial_caption_eval: cannot create the folder')
    assert len(err.splitlines()) == 1 and 'Traceback' not in err
