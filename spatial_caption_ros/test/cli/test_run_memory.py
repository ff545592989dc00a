"""The runner with --memory: the memory node runs in the graph and leaves its database."""

import shutil
import subprocess
import sys

import pytest

from support import BUS, needs_shared
from spatial_caption_ros.cli.run import memory_on_stills_warning
from spatial_caption_ros.core.inputs.sources import FrameSource
from spatial_caption_ros.core.memory.storage import MemoryDatabase

pytestmark = needs_shared


@pytest.mark.slow
def test_runner_with_memory_remembers_the_objects_seen_twice(tmp_path):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for name in ('a.jpg', 'b.jpg'):          # the same scene twice: objects confirmed
        shutil.copy(BUS, folder / name)      # (two frames of one sequence, as a camera's)
    out = tmp_path / 'out'
    run = subprocess.run(
        [sys.executable, '-m', 'spatial_caption_ros.cli.run', '--input', str(folder),
         '--output', str(out), '--memory', '--quiet', '--timeout', '240',
         '--set', 'caption.generator=template', '--set', 'image_source.assumed_hfov_deg=60.0',
         '--set', 'image_source.folder_is_sequence=true'],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'warning' not in run.stderr, run.stderr
    db = MemoryDatabase(str(out / 'memory.sqlite'))
    objects, changes, keyframes = db.load(20)
    db.close()
    classes = sorted(o.class_name for o in objects.values() if o.state == 'present')
    assert 'bus' in classes and 'person' in classes, classes
    assert all(o.times_seen == 2 for o in objects.values() if o.state == 'present')
    assert {c.kind for c in changes} == {'appeared'}


def test_memory_over_unrelated_photos_without_a_world_frame_is_warned_about(tmp_path):
    """Without world_frame the memory fuses by camera-frame position, as for one fixed camera:
    over a folder of unrelated photos (each a new tracker sequence) the runner says so."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    shutil.copy(BUS, folder / 'a.jpg')

    def params(**source):
        return {'image_source': {'ros__parameters': {'source': str(folder), **source}},
                'memory': {'ros__parameters': {}}}

    photos = FrameSource(folder)
    warning = memory_on_stills_warning(params(), True, photos)
    assert 'fused into one entry' in warning and 'folder_is_sequence' in warning
    assert memory_on_stills_warning(params(), False, photos) == ''
    assert memory_on_stills_warning(params(), True, None) == ''             # a live camera
    assert memory_on_stills_warning(params(folder_is_sequence=True), True, photos) == ''
    with_world = params()
    with_world['memory']['ros__parameters']['world_frame'] = 'map'
    assert memory_on_stills_warning(with_world, True, photos) == ''
    one_file = FrameSource(folder / 'a.jpg')
    assert memory_on_stills_warning(params(), True, one_file) == ''     # one photo: no fusing
