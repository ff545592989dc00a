"""The main job never loses input and never hangs (issue 15 part 2), run as a user runs it.

- A bad command line, parameter override, parameter file or input: one line, exit code 2, no
  traceback, nothing started.
- A folder with unreadable files (empty, truncated, not an image): every readable file is
  captioned, each unreadable one is named with its reason (stderr and captions.jsonl), exit 3.
- A missing detector model: the run ends within seconds with the reason, exit 1.
- SIGTERM / SIGINT during a batch: the runner and every node process stop, what was written
  stays whole, exit 128 + signal. The stop time is printed (goal 2 s); the assertion only
  bounds it loosely, since the machine is shared.
"""

import json
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from support import BUS, IMAGES, MODELS, needs_shared, runner_env

FAST = ['--set', 'caption.generator=template']     # captions are not what these tests check


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'spatial_caption_ros.cli.run', *args],
                          env=runner_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize('args,expected', [
    (['--set', 'perception.nonexistent=1'],
     'unknown parameters for perception: nonexistent (did you mean'),
    (['--set', 'perception.confidence_treshold=0.4'], 'did you mean: confidence_threshold'),
    (['--set', 'perception.confidence_threshold=abc'], 'expected a number'),
    (['--set', 'perceptoin.confidence_threshold=0.4'], "unknown node 'perceptoin'"),
    (['--input', '/nonexistent'], "--input: image source '/nonexistent' does not exist"),
    (['--config', '/nonexistent.yaml'], 'cannot read the parameter file /nonexistent.yaml'),
    (['--model-dir', '/nonexistent'], '--model-dir /nonexistent: not a folder'),
    (['--rate', '-1'], '--rate -1: -1.0 is below the minimum 0.01'),
    (['--rate', '0'], '--rate 0: 0.0 is below the minimum 0.01'),
    (['--max-frames', '-1'], '--max-frames -1: must be 0 (no limit) or more'),
    (['--timeout', '0'], '--timeout 0: must be more than 0 seconds'),
    (['--output', '/proc/spatial_caption_out'],
     '--output /proc/spatial_caption_out: cannot create the folder'),
])
def test_bad_arguments_end_in_one_line_and_exit_2(tmp_path, args, expected):
    done = _run('--output', str(tmp_path / 'out'), *args, timeout=60)
    assert done.returncode == 2, done.stderr
    assert 'Traceback' not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('[run] error: ') and expected in lines[0], \
        done.stderr


@needs_shared
@pytest.mark.slow
def test_unreadable_files_are_skipped_named_and_the_batch_goes_on(tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    shutil.copy(BUS, folder / 'a_bus.jpg')
    (folder / 'b_empty.jpg').write_bytes(b'')
    (folder / 'c_truncated.jpg').write_bytes(BUS.read_bytes()[:20000])
    (folder / 'd_text.png').write_text('not an image')
    shutil.copy(IMAGES / 'zidane.jpg', folder / 'e_zidane.jpg')
    (folder / 'f_clip.mp4').write_bytes(b'\x00' * 64)     # not a frame of a folder: named
    out = tmp_path / 'out'
    done = _run('--input', str(folder), '--output', str(out), '--model-dir', str(MODELS),
                *FAST)
    assert done.returncode == 3, done.stderr[-3000:]
    assert '[run] not an image, not captioned: f_clip.mp4 (a video' in done.stderr
    records = [json.loads(line) for line in (out / 'captions.jsonl').read_text().splitlines()]
    captioned = {r['frame'] for r in records if 'text' in r}
    skipped = {r['frame']: r['skipped'] for r in records if 'skipped' in r}
    assert captioned == {'a_bus', 'e_zidane'}                # files after the bad ones too
    assert set(skipped) == {'b_empty.jpg', 'c_truncated.jpg', 'd_text.png'}
    assert 'empty file' in skipped['b_empty.jpg']
    assert 'truncated JPEG' in skipped['c_truncated.jpg']
    assert 'not a readable image' in skipped['d_text.png']
    for name, reason in skipped.items():
        assert f'[run] skipped {name}: {reason}' in done.stderr
    assert '3 unreadable input files skipped' in done.stderr


@needs_shared
@pytest.mark.slow
def test_quiet_prints_the_captions_and_no_node_info_lines(tmp_path):
    """--quiet: 'print only the captions'; the in-process nodes still logged every INFO line
    (configured: ..., active, source exhausted) on stderr."""
    folder = tmp_path / 'in'
    folder.mkdir()
    shutil.copy(BUS, folder / 'bus.jpg')
    done = _run('--input', str(folder), '--output', str(tmp_path / 'out'), '--quiet', *FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith('bus: ') and len(done.stdout.splitlines()) == 1, done.stdout
    assert '[INFO]' not in done.stderr and '[run] ROS_DOMAIN_ID' not in done.stderr, done.stderr
    assert 'Traceback' not in done.stderr


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize('mode', ['inprocess', 'processes'])
def test_missing_detector_model_ends_the_run_at_once_with_the_reason(tmp_path, mode):
    empty = tmp_path / 'models'
    empty.mkdir()
    t0 = time.monotonic()
    done = _run('--output', str(tmp_path / 'out'), '--model-dir', str(empty), '--mode', mode,
                '--timeout', '600', *FAST)
    elapsed = time.monotonic() - t0
    print(f'\n[missing model, {mode}] run ended after {elapsed:.1f} s')
    assert done.returncode == 1, done.stderr[-3000:]
    error = [line for line in done.stderr.splitlines() if line.startswith('[run] error:')]
    assert len(error) == 1 and 'node perception: configure failed' in error[0]
    assert 'yolo11n.onnx' in error[0] and str(empty) in error[0]
    assert elapsed < 120, 'the runner waited for a graph that could never connect'


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize('signum,mode', [(signal.SIGTERM, 'inprocess'),
                                         (signal.SIGINT, 'processes')])
def test_sigterm_and_sigint_stop_a_batch_and_keep_what_was_written(tmp_path, signum, mode):
    # a broken file first: a stopped run still names it (before, only the image source's end
    # message named skipped files, and a stopped run never gets it)
    folder = tmp_path / 'photos'
    folder.mkdir()
    (folder / 'a_broken.jpg').write_bytes(BUS.read_bytes()[:5000])
    for photo in sorted(IMAGES.glob('*.jpg')):
        shutil.copy(photo, folder / f'b_{photo.name}')
    out = tmp_path / 'out'
    runner = subprocess.Popen(
        [sys.executable, '-m', 'spatial_caption_ros.cli.run', '--input', str(folder),
         '--output', str(out), '--model-dir', str(MODELS), '--mode', mode, *FAST],
        env=runner_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    captions = out / 'captions.jsonl'
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and runner.poll() is None and not (
                captions.exists() and '"text"' in captions.read_text()):
            time.sleep(0.1)
        assert runner.poll() is None, runner.communicate()
        children = psutil.Process(runner.pid).children(recursive=True)
        t0 = time.monotonic()
        runner.send_signal(signum)
        stdout, stderr = runner.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    print(f'\n[{signal.Signals(signum).name}, {mode}] runner stopped {elapsed:.2f} s after '
          'the signal (goal 2 s)')
    assert runner.returncode == 128 + signum, stderr[-3000:]
    assert elapsed < 10, f'stopping took {elapsed:.1f} s'
    assert '[run] interrupted' in stderr and 'Traceback' not in stderr
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f'node processes left running: {alive}'
    records = [json.loads(line) for line in captions.read_text().splitlines()]
    skipped = [r for r in records if 'skipped' in r]
    records = [r for r in records if 'skipped' not in r]
    assert records and all(r.get('text') for r in records)
    assert len(records) < len(list(folder.iterdir())) - 1, 'meant to stop before the end'
    assert [r['frame'] for r in skipped] == ['a_broken.jpg'], skipped
    assert 'truncated JPEG' in skipped[0]['skipped'] and '[run] skipped a_broken.jpg' in stderr
    printed = [line for line in stdout.splitlines() if ': ' in line and '[' in line]
    assert len(printed) == len(records)
