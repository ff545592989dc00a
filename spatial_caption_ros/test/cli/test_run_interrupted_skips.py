"""A batch stopped by SIGTERM still names the unreadable file it had passed over (real runner).

Before, the image source named skipped files only in its end message, which a stopped run never
gets: captions.jsonl and the summary then lacked the broken file though it had been read.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from support import IMAGES, MODELS, needs_shared, REPO

ENV = dict(os.environ, PYTHONPATH=str(REPO / 'spatial_caption_ros'))


@needs_shared
@pytest.mark.slow
def test_sigterm_after_a_broken_file_keeps_it_named(tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    (folder / 'a_broken.jpg').write_bytes((IMAGES / 'bus.jpg').read_bytes()[:5000])
    for photo in sorted(IMAGES.glob('*.jpg')):
        shutil.copy(photo, folder / f'b_{photo.name}')
    out = tmp_path / 'out'
    runner = subprocess.Popen(
        [sys.executable, '-m', 'spatial_caption_ros.cli.run', '--input', str(folder),
         '--output', str(out), '--model-dir', str(MODELS), '--set',
         'caption.generator=template'],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    captions = out / 'captions.jsonl'
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and runner.poll() is None and not (
                captions.exists() and '"text"' in captions.read_text()):
            time.sleep(0.1)
        assert runner.poll() is None, runner.communicate()
        runner.send_signal(signal.SIGTERM)
        _, stderr = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    records = [json.loads(line) for line in captions.read_text().splitlines()]
    assert len(records) < 11, 'the batch was meant to be stopped before its end'
    skipped = [r for r in records if 'skipped' in r]
    assert [r['frame'] for r in skipped] == ['a_broken.jpg'], records
    assert 'truncated JPEG' in skipped[0]['skipped']
    assert '[run] skipped a_broken.jpg' in stderr
