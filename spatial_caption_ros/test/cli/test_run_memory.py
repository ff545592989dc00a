"""The runner with --memory: the memory node runs in the graph and leaves its database."""

import shutil
import subprocess
import sys

import pytest

from support import BUS, needs_shared
from spatial_caption_ros.core.memory.storage import MemoryDatabase

pytestmark = needs_shared


@pytest.mark.slow
def test_runner_with_memory_remembers_the_objects_seen_twice(tmp_path):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for name in ('a.jpg', 'b.jpg'):          # the same scene twice: objects confirmed
        shutil.copy(BUS, folder / name)
    out = tmp_path / 'out'
    run = subprocess.run(
        [sys.executable, '-m', 'spatial_caption_ros.cli.run', '--input', str(folder),
         '--output', str(out), '--memory', '--quiet', '--timeout', '240',
         '--set', 'caption.generator=template', '--set', 'image_source.assumed_hfov_deg=60.0'],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    db = MemoryDatabase(str(out / 'memory.sqlite'))
    objects, changes, keyframes = db.load(20)
    db.close()
    classes = sorted(o.class_name for o in objects.values() if o.state == 'present')
    assert 'bus' in classes and 'person' in classes, classes
    assert all(o.times_seen == 2 for o in objects.values() if o.state == 'present')
    assert {c.kind for c in changes} == {'appeared'}
