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
])
def test_bad_arguments_end_in_one_line_and_exit_2(argv, expected, capsys, tmp_path):
    code = evaluate.main(argv + ['--output', str(tmp_path), '--quiet'])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err
    assert len(err.splitlines()) == 1 and 'Traceback' not in err
