"""Opening recordings and finding their topics (no models)."""

from __future__ import annotations

import pytest

from spatial_caption_ros.bag.processor import select_frames
from spatial_caption_ros.bag.reader import find_topics, open_recording, RecordingError
from support.recordings import COLOR, DEPTH, INFO, TF


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_topics_are_found_by_type_in_both_storages(tum_recordings, storage):
    rec = open_recording(tum_recordings[storage])
    assert rec.storage == storage and not rec.problems
    assert rec.custom['depth_unit_m'] == repr(1 / 5000)
    topics = find_topics(rec)
    assert (topics.image, topics.depth, topics.camera_info, topics.tf) == (
        COLOR, DEPTH, INFO, (TF,))
    colour = [m for m in rec.messages({COLOR})]
    assert len(colour) == 3 and all(m.msgtype == 'sensor_msgs/msg/Image' for m in colour)
    assert [m.log_time_ns for m in colour] == sorted(m.log_time_ns for m in colour)


def test_a_topic_asked_for_by_name_must_exist_and_have_a_usable_type(tum_recordings):
    rec = open_recording(tum_recordings['mcap'])
    with pytest.raises(RecordingError, match='/camera/nothing is not in the recording'):
        find_topics(rec, image='/camera/nothing')
    with pytest.raises(RecordingError, match='has message type sensor_msgs/msg/CameraInfo'):
        find_topics(rec, image=INFO)
    assert find_topics(rec, depth=DEPTH, camera_info=INFO).image == COLOR


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(RecordingError, match='no such file or folder'):
        open_recording(tmp_path / 'nothing')


def test_frame_selection_every_nth_and_rate_is_deterministic():
    times = [int(i * 1e9 / 30) for i in range(30)]       # 1 s at 30 Hz
    assert select_frames(times, 1, 0) == list(range(30))
    assert select_frames(times, 10, 0) == [0, 10, 20]
    assert select_frames(times, 1, 5.0) == [0, 6, 12, 18, 24]
    assert select_frames(times, 2, 5.0) == select_frames(times, 2, 5.0) == [0, 6, 12, 18, 24]


def test_progress_bar_shows_count_rate_and_eta(monkeypatch):
    import io

    from spatial_caption_ros.cli import bag
    clock = iter([100.0, 102.0, 104.0])
    monkeypatch.setattr(bag.time, 'monotonic', lambda: next(clock))
    stream = io.StringIO()
    progress = bag.Progress(4, stream)        # not a terminal: a line per 10 %
    progress.update()
    progress.update()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith('1/4 frames (25%) 0.50 frames/s ETA 00:00:06')
    assert lines[1].endswith('2/4 frames (50%) 0.50 frames/s ETA 00:00:04')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_cut_storage_file_keeps_the_depth_unit_of_its_metadata(tum_recordings, storage,
                                                                  tmp_path):
    """A cut storage file beside an intact metadata.yaml: the recording is scanned, and its
    custom_data (the depth unit: TUM's 1/5000 m) still applies; read as the 1 mm default the
    depth of every object would be 5 times too far."""
    import shutil

    from support.recordings import _cut
    cut = shutil.copytree(tum_recordings[storage], tmp_path / 'cut')
    _cut(cut, '.mcap' if storage == 'mcap' else '.db3', 0.8)
    rec = open_recording(cut)
    assert any('damaged' in p for p in rec.problems), rec.problems
    assert rec.custom['depth_unit_m'] == repr(1 / 5000)
