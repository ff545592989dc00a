"""spatial-caption-bag on the real TUM recording: outputs, MCAP, depth, broken input, resume.

Real YOLO11n, the real LLM where captions are the subject; the other tests use template captions
(no model) to stay quick, which the caption stage supports as a configuration of its own.
"""

from __future__ import annotations

from collections import Counter
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import cv2
import numpy as np

from spatial_caption_ros.cli.bag import main
from support import needs_shared
from support.recordings import (
    broken_recordings, COLOR, DEPTH_UNIT_M, frame_stamp_ns, INFO, tum_frames,
    write_tum_recording)

TEMPLATE = ['--set', 'caption.generator=template', '--quiet']
OUTPUT_TOPICS = ('/spatial_caption/detections', '/spatial_caption/scene_graph',
                 '/spatial_caption/caption', '/spatial_caption/markers',
                 '/spatial_caption/annotated_image/compressed')

pytestmark = needs_shared


def decoded_mcap(folder: Path) -> list[tuple[str, int, object]]:
    """(topic, log time, message) of every message, decoded by mcap-ros2-support from the
    definitions stored in the file (as Foxglove does): an independent CDR implementation."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    (path,) = folder.glob('*.mcap')
    with open(path, 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(channel.topic, message.log_time, decoded)
                for _, channel, message, decoded in reader.iter_decoded_messages()]


def summary(out: Path, name: str) -> dict:
    return json.loads((out / name / 'summary.json').read_text())


def captions(out: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in
            (out / name / 'captions.jsonl').read_text().splitlines()]


def test_tum_recording_gives_runner_files_and_a_readable_mcap_with_llm_captions(
        tum_recordings, tmp_path):
    out = tmp_path / 'out'
    assert main([str(tum_recordings['mcap']), '--output', str(out), '--quiet']) == 0
    rec = out / 'tum_mcap'
    stamps = [frame_stamp_ns(f) for f in tum_frames(3)]
    lines = captions(out, 'tum_mcap')
    assert [line['stamp_ns'] for line in lines] == stamps
    # the caption stage loaded the real LLM: each caption is its words or says why not
    assert all(line['verified'] for line in lines)
    assert all(line['generator'] != 'template' or line['fallback_reason'] and
               not line['fallback_reason'].startswith('unavailable') for line in lines)
    assert len(list((rec / 'scene_graphs').glob('*.json'))) == 3
    assert len(list((rec / 'annotated').glob('*.jpg'))) == 3
    s = summary(out, 'tum_mcap')
    assert (s['processed'], s['skipped_frames'], s['skipped']) == (3, 0, [])
    messages = decoded_mcap(rec / 'captioned')
    counts = Counter(topic for topic, *_ in messages)
    assert all(counts[t] == 3 for t in OUTPUT_TOPICS) and counts[INFO] == 3
    assert counts['/tf'] == s['message_counts']['/tf'] > 0
    for topic, log_time, msg in messages:
        if topic in OUTPUT_TOPICS[:3]:
            # stamped with the source stamps, in the header and as the log time
            assert log_time == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            assert log_time in stamps
        if topic == '/spatial_caption/caption':
            assert msg.text == lines[stamps.index(log_time)]['text']
        if topic == '/spatial_caption/annotated_image/compressed':
            image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (480, 640, 3)
    graphs = [m for t, _, m in messages if t == '/spatial_caption/scene_graph']
    assert all(g.depth_source == 'sensor' for g in graphs)
    assert sum(len(g.objects) for g in graphs) > 0
    assert (out / 'report.html').is_file()


def test_both_storage_formats_give_the_same_results(tum_recordings, tmp_path):
    out = tmp_path / 'out'
    assert main([str(tum_recordings['mcap']), str(tum_recordings['sqlite3']),
                 '--output', str(out), *TEMPLATE]) == 0
    timeless = [[{k: v for k, v in line.items() if k != 'latency'} for line in captions(out, n)]
                for n in ('tum_mcap', 'tum_sqlite3')]
    assert timeless[0] == timeless[1] and len(timeless[0]) == 3
    graphs = {name: sorted((out / name / 'scene_graphs').glob('*.json'))
              for name in ('tum_mcap', 'tum_sqlite3')}
    assert len(graphs['tum_mcap']) == 3
    for a, b in zip(graphs['tum_mcap'], graphs['tum_sqlite3'], strict=True):
        ga, gb = (json.loads(p.read_text())['scene_graph'] for p in (a, b))
        ga.pop('processing_latency'), gb.pop('processing_latency')
        assert ga == gb


def test_sensor_depth_uses_the_recordings_depth_unit(tum_recordings, tmp_path):
    """Object depths agree with the Kinect depth inside the box (1/5000 m per step)."""
    out = tmp_path / 'out'
    assert main([str(tum_recordings['mcap']), '--output', str(out), *TEMPLATE]) == 0
    checked = 0
    for frame, path in zip(tum_frames(3),
                           sorted((out / 'tum_mcap' / 'scene_graphs').glob('*.json')),
                           strict=True):
        graph = json.loads(path.read_text())['scene_graph']
        assert graph['stamp_ns'] == frame_stamp_ns(frame)
        depth = cv2.imread(str(frame.depth_path), cv2.IMREAD_UNCHANGED).astype(np.float64)
        for obj in graph['objects']:
            if obj['depth'] is None or obj['depth_source'] != 'sensor':
                continue
            x1, y1, x2, y2 = (int(v) for v in obj['box'])
            inner = depth[y1 + (y2 - y1) // 4:y2 - (y2 - y1) // 4,
                          x1 + (x2 - x1) // 4:x2 - (x2 - x1) // 4]
            inner = inner[inner > 0] * DEPTH_UNIT_M
            if inner.size < 50:
                continue
            # the object's centre: its visible surface in the box plus half its depth extent
            # (a class size prior, at most about 1.5 m for the classes on a desk)
            assert np.percentile(inner, 5) * 0.9 <= obj['depth'] <= np.percentile(inner, 95) + 1.5
            checked += 1
    assert checked >= 2
    # the same recording read with the REP 118 millimetre unit puts everything 5x farther
    out_mm = tmp_path / 'mm'
    assert main([str(tum_recordings['mcap']), '--output', str(out_mm), '--set',
                 'perception.depth_image_scale=0.001', *TEMPLATE]) == 0
    a = json.loads(sorted((out / 'tum_mcap' / 'scene_graphs').glob('*.json'))[0].read_text())
    b = json.loads(sorted((out_mm / 'tum_mcap' / 'scene_graphs').glob('*.json'))[0].read_text())
    pairs = [(x['depth'], y['depth']) for x, y in zip(a['scene_graph']['objects'],
                                                      b['scene_graph']['objects'], strict=True)
             if x['depth'] is not None and x['depth_source'] == 'sensor']
    assert pairs and all(y > 2 * x for x, y in pairs)


def test_without_a_depth_topic_the_depth_is_geometric(tmp_path):
    rec = write_tum_recording(tmp_path / 'no_depth', 'mcap', 2, depth=False, colour='bgr8')
    out = tmp_path / 'out'
    assert main([str(rec), '--output', str(out), '--every', '2', *TEMPLATE]) == 0
    s = summary(out, 'no_depth')
    assert s['topics']['depth'] is None and (s['selected'], s['processed']) == (1, 1)
    graph = json.loads(next((out / 'no_depth' / 'scene_graphs').glob('*.json')).read_text())
    assert graph['scene_graph']['depth_source'] == 'geometric'


def _said(s: dict) -> str:
    return '\n'.join(s['problems'] + s['warnings'] + [
        f'{k.get("topic")} frame {k.get("frame")}: {k["reason"]}' for k in s['skipped']])


def test_broken_recordings_never_crash_and_lose_nothing_processable(tmp_path, capsys):
    broken = broken_recordings(tmp_path / 'broken')
    good = write_tum_recording(tmp_path / 'good', 'sqlite3', 2)
    out = tmp_path / 'out'
    # every broken recording and a good one in one run: the good one is still processed
    code = main([*(str(b.path) for b in broken.values()), str(good), '--output', str(out),
                 *TEMPLATE])
    assert code == 1                      # some recordings could not be processed at all
    err = capsys.readouterr().err
    assert len(broken) >= 10
    assert summary(out, 'good')['processed'] == 2
    for name, b in broken.items():
        if b.error:
            assert b.error in err and str(b.path) in err, name
            assert not (out / name / 'summary.json').exists(), name
            continue
        s = summary(out, name)
        assert s['processed'] == b.processed, (name, s)
        assert s['processed'] + s['skipped_frames'] == s['colour_messages'], name
        assert b.said in _said(s), (name, _said(s))
        assert len(captions(out, name)) == b.processed, name
    report = (out / 'report.html').read_text()
    assert 'InvalidImageError: empty image: 0x0' in report        # the report lists skips
    assert 'no colour image topic' in report


def test_an_interrupted_run_resumes_without_redoing_or_duplicating(tmp_path):
    rec = write_tum_recording(tmp_path / 'tum12', 'mcap', 12, tf=False)
    out = tmp_path / 'out'
    cmd = [sys.executable, '-m', 'spatial_caption_ros.cli.bag', str(rec), '--output', str(out),
           *TEMPLATE]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    frames = out / 'tum12' / 'frames'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(frames.glob('*.json'))) < 2:
        assert proc.poll() is None, 'finished before it could be interrupted'
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)        # a crash: nothing gets to clean up
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in (out / 'tum12' / 'annotated').glob('*')}
    done = len(list(frames.glob('*.json')))
    assert 2 <= done < 12
    subprocess.run(cmd, check=True, timeout=300)
    s = summary(out, 'tum12')
    assert (s['processed'], s['resumed_frames']) == (12, done)
    # finished frames were not redone
    after = {p.name: p.stat().st_mtime_ns for p in (out / 'tum12' / 'annotated').glob('*')}
    assert all(after[name] == mtime for name, mtime in first.items()
               if (frames / f'{int(name[:4]):06d}.json').exists())
    lines = captions(out, 'tum12')
    assert [line['stamp_ns'] for line in lines] == [frame_stamp_ns(f) for f in tum_frames(12)]
    counts = Counter(t for t, *_ in decoded_mcap(out / 'tum12' / 'captioned'))
    assert counts['/spatial_caption/caption'] == 12 and counts[COLOR] == 0


def test_bad_set_and_an_output_that_cannot_be_made_end_in_one_line_and_exit_2(
        tum_recordings, tmp_path, capsys):
    """Bad command line: one line saying what, exit 2 (as spatial-caption-run), no traceback."""
    rec = str(tum_recordings['mcap'])
    assert main([rec, '--output', str(tmp_path / 'out'), '--set', 'perception.nope=1']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('[bag] error: ') and 'nope' in err[0], err
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    assert main([rec, '--output', str(blocker / 'out')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('[bag] error: --output ') and \
        str(blocker / 'out') in err[0], err


def test_a_recording_without_camera_info_is_warned_about_on_stderr(tmp_path, capsys):
    rec = write_tum_recording(tmp_path / 'no_info', 'mcap', 1, camera_info=False)
    assert main([str(rec), '--output', str(tmp_path / 'out'), *TEMPLATE]) == 0
    err = capsys.readouterr().err
    assert '[bag] no_info: no camera_info topic: no 3D positions' in err, err
    assert 'no camera_info topic' in summary(tmp_path / 'out', 'no_info')['warnings'][0]
