"""Recordings shared by the bag tests: the first TUM fr1_rpy frames in both storage formats."""

from __future__ import annotations

import pytest

from support.recordings import TUM, write_tum_recording

QUICK_FRAMES = 3

needs_tum = pytest.mark.skipif(not (TUM / 'associations.txt').is_file(),
                               reason='../shared/eval/tum_fr1_rpy is needed')


@pytest.fixture(scope='session')
def tum_recordings(tmp_path_factory) -> dict:
    """storage -> rosbag2 folder of the first QUICK_FRAMES frames (colour, depth, info, tf)."""
    if not (TUM / 'associations.txt').is_file():
        pytest.skip('../shared/eval/tum_fr1_rpy is needed')
    root = tmp_path_factory.mktemp('tum')
    return {storage: write_tum_recording(root / f'tum_{storage}', storage, QUICK_FRAMES)
            for storage in ('mcap', 'sqlite3')}
