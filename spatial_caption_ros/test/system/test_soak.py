"""The soak script, run short: it starts the real graph, measures it and writes a full report.

The 10-minute run with its figures is `make soak` (README); this checks that the script works
and that its accounting holds: every camera frame a node received is processed, dropped as
stale, rejected or failed, apart from the few still in flight when the graph is stopped.
"""

import csv
import json
import os
import subprocess
import sys

import pytest

from support import needs_shared, REPO, SHARED

pytestmark = [needs_shared, pytest.mark.slow]

NODES = ('image_source', 'perception', 'scene_graph', 'caption', 'visualization')


def test_short_soak_reports_memory_age_and_accounts_for_every_frame(tmp_path):
    out = tmp_path / 'soak'
    env = dict(os.environ, PYTHONPATH=str(REPO / 'spatial_caption_ros'))
    proc = subprocess.run(
        [sys.executable, '-m', 'spatial_caption_ros.tools.soak', '--duration', '40',
         '--warmup', '15', '--rate', '15', '--input', str(SHARED / 'data' / 'images'),
         '--output', str(out), '--set', f'perception.model_dir={SHARED / "models"}'],
        env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / 'report.json').read_text())
    assert set(report['memory_mb']) == set(NODES)
    for name, mem in report['memory_mb'].items():
        assert 50 < mem['min'] <= mem['max'] < 4096, (name, mem)
    age = report['scene_graph_age_s']
    assert age['n'] > 5 and 0 < age['p50'] <= age['max']
    # a graph is never younger than the work that made it
    assert age['age_over_processing_p50'] >= 1.0
    with open(out / 'scene_graphs.csv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == age['n']
    nodes = {name.rsplit('/', 1)[-1]: values for name, values in report['nodes'].items()}
    assert set(NODES) <= set(nodes)
    for name in ('perception', 'scene_graph', 'caption', 'visualization'):
        values = nodes[name]
        assert values['state'] == 'active' and int(values['errors']) == 0, (name, values)
        # in flight at the end: the slot and the frame being processed, per input
        assert 0 <= values['in_flight_at_end'] <= 4, (name, values)
    assert int(nodes['perception']['processed']) > 5
    counts = report['counts']
    assert counts['captions'] > 0 and counts['captions_verified'] == counts['captions']
    assert sum(counts['captions_by_generator'].values()) == counts['captions']
    assert '[soak] memory growth after warm-up' in proc.stderr
