"""The whole TUM slice as a recording, and the Ray path (slow)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from spatial_caption_ros.cli.bag import main
from support import needs_shared
from support.recordings import tum_frames, write_tum_recording

pytestmark = [needs_shared, pytest.mark.slow]
RAY = 'ray==2.60.0'


def results(out, name) -> list[tuple[dict, dict]]:
    """(caption, scene graph) of every frame, without the measured latencies."""
    frames = []
    for path in sorted((out / name / 'scene_graphs').glob('*.json')):
        doc = json.loads(path.read_text())
        doc['caption'].pop('latency')
        doc['scene_graph'].pop('processing_latency')
        frames.append((doc['caption'], doc['scene_graph']))
    return frames


def test_whole_tum_slice_in_both_storages(tmp_path):
    """Every frame of the slice, LLM captions on the MCAP one; sensor depth for every frame
    whose depth image is within perception.depth_stamp_tolerance (15 ms) of it."""
    frames = tum_frames()
    total = len(frames)
    # TUM's own association pairs 5 of the 87 frames with a depth image 15.7 to 16.9 ms away
    near = [abs(f.depth_stamp - f.rgb_stamp) <= 0.015 for f in frames]
    recs = [write_tum_recording(tmp_path / f'tum_{s}', s) for s in ('mcap', 'sqlite3')]
    out = tmp_path / 'out'
    assert main([str(recs[0]), '--output', str(out), '--quiet']) == 0
    assert main([str(recs[1]), '--output', str(out), '--quiet', '--set',
                 'caption.generator=template']) == 0
    for name in ('tum_mcap', 'tum_sqlite3'):
        s = json.loads((out / name / 'summary.json').read_text())
        assert (s['processed'], s['skipped'], s['problems']) == (total, [], []), name
        assert s['output_topics']['/spatial_caption/scene_graph'] == total
        metas = [json.loads(p.read_text()) for p in sorted((out / name / 'frames').glob('*.json'))]
        assert [m['sensor_depth'] for m in metas] == near, name
        # depth_source auto: the sensor measures the frames it can, geometry places the others
        assert [m['depth_source'] for m in metas] == [
            'sensor' if n else 'geometric' for n in near], name
        assert all('no depth frame within 15 ms' in ' '.join(m['notes'])
                   for m in metas if not m['sensor_depth']), name
    # the graphs do not depend on the storage format (nor on who words the captions)
    mcap, sqlite = results(out, 'tum_mcap'), results(out, 'tum_sqlite3')
    assert [g for _, g in mcap] == [g for _, g in sqlite]
    llm = [c for c, _ in mcap]
    assert all(c['verified'] for c in llm)
    assert sum(c['generator'] != 'template' for c in llm) > 0      # the LLM worded some


def _ray_available() -> None:
    if importlib.util.find_spec('ray') is not None:
        return
    done = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                           '--disable-pip-version-check', RAY], capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        pytest.skip(f'Ray could not be installed ({RAY}): {done.stderr.strip()[-300:]}')


def test_ray_gives_the_same_results_as_the_local_run(tmp_path):
    """Two recordings, one in chunks: Ray tasks (2 workers) produce exactly the local outputs."""
    _ray_available()
    recs = [write_tum_recording(tmp_path / 'tum_a', 'mcap', 8),
            write_tum_recording(tmp_path / 'tum_b', 'sqlite3', 5, colour='bgr8')]
    common = [*(str(r) for r in recs), '--chunk-frames', '3', '--quiet']
    assert main([*common, '--output', str(tmp_path / 'local')]) == 0
    assert main([*common, '--output', str(tmp_path / 'ray'), '--ray', 'local',
                 '--workers', '2']) == 0
    for name, frames in (('tum_a', 8), ('tum_b', 5)):
        local, ray = results(tmp_path / 'local', name), results(tmp_path / 'ray', name)
        assert len(local) == frames and local == ray, name
        lines = [(tmp_path / d / name / 'captions.jsonl').read_text().splitlines()
                 for d in ('local', 'ray')]
        assert [json.loads(x)['text'] for x in lines[0]] == \
            [json.loads(x)['text'] for x in lines[1]]
        s = json.loads((tmp_path / 'ray' / name / 'summary.json').read_text())
        assert s['chunks'] == -(-frames // 3) and s['processed'] == frames
