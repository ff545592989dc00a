"""The memory evaluation's change measures on synthetic frames with known answers: false
changes on a static scene, recall and delay of synthetic removals and moves, the table."""

import numpy as np
import pytest

from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.evaluation import (
    false_changes, FrameGraph, PosedFrame, render_memory_markdown, run_memory, true_changes)
from spatial_caption_ros.core.params import build_config
from support.memory_scene import CAM, graph, obj_at, S, yaw

# a cup, a book and a keyboard 2 m in front of a still camera
DESK = (('cup', (-0.5, 0.0, 2.0), 0.2), ('book', (0.0, 0.0, 2.0), 0.3),
        ('keyboard', (0.5, 0.0, 2.0), 0.4))


def sequence(frames: int, missing=lambda k, name: False, swing=lambda k: 0.0) -> list:
    """Frames 0.2 s apart; missing(k, name): not detected; swing(k): camera yaw in degrees."""
    out = []
    for k in range(frames):
        pose = yaw(swing(k))
        objects = [obj_at(i + 1, name, tuple(pose.inverse().apply(np.array(p))), size=size)
                   for i, (name, p, size) in enumerate(DESK) if not missing(k, name)]
        out.append(FrameGraph(PosedFrame(int(k * 0.2 * S), None, pose),
                              graph(k * 0.2, *objects)))
    return out


def test_false_changes_count_gone_moved_and_appeared_where_it_was_in_view():
    cfg = build_config(MemoryConfig, {})
    # the detector loses the cup for 4 s, but only while the camera swings 100 deg/s (blur):
    # nothing is false; the book is first detected at frame 30 though it was in view all along
    blurred = sequence(60, missing=lambda k, n: (n == 'cup' and 10 <= k < 30) or (
        n == 'book' and k < 30), swing=lambda k: 10.0 * (-1) ** k if 10 <= k < 30 else 0.0)
    run = run_memory(blurred, cfg, CAM)
    assert false_changes(run, blurred, CAM) == {'gone': 0, 'moved': 0,
                                                'appeared_after_warmup': 1}
    # the same misses of the cup with a still camera: a false gone (and its return)
    still = sequence(60, missing=lambda k, n: n == 'cup' and 10 <= k < 30)
    run = run_memory(still, cfg, CAM)
    assert false_changes(run, still, CAM) == {'gone': 1, 'moved': 0,
                                              'appeared_after_warmup': 1}


def test_true_changes_find_every_synthetic_removal_and_move_with_their_delay():
    cfg = build_config(MemoryConfig, {})
    frames = sequence(40)
    out = true_changes(run_memory(frames, cfg, CAM), frames, cfg, CAM)
    assert out['change_frame'] == 20 and out['shift_m'] == 0.5
    for kind in ('gone', 'moved'):
        assert out[kind]['n'] == 3 and out[kind]['recall'] == 1.0
        # at least gone_after_frames misses spanning gone_after_seconds (1 s = 5 frames)
        assert 5 <= out[kind]['delay_frames_median'] <= 10
        assert out[kind]['delay_s_median'] == pytest.approx(
            0.2 * out[kind]['delay_frames_median'])
    # the detector misses everything after the change: no evidence, nothing found
    blind = sequence(40, missing=lambda k, n: k >= 20)
    out = true_changes(run_memory(blind, cfg, CAM), blind, cfg, CAM)
    assert out['gone']['n'] == 0 and out['gone']['recall'] is None


def test_markdown_table_shows_the_change_measures_with_counts():
    cfg = build_config(MemoryConfig, {})
    frames = sequence(40)
    run = run_memory(frames, cfg, CAM)
    counts = false_changes(run, frames, CAM)
    truth = true_changes(run, frames, cfg, CAM)
    side = {'median': 0.03, 'n': 10, 'objects': 3, 'p90': 0.05}
    section = {'data': 'synthetic', 'frames': 40, 'world_spread': {'sensor': side},
               'fragmentation': {'sensor': {'entries_per_object': 1.0, 'n': 3, 'entries': 3}},
               'false_changes': {'sensor': counts}, 'true_changes': {'sensor': truth},
               'details': {'sensor': {'frames': 40, 'changes': {'appeared': 3, 'moved': 0,
                                                                'gone': 0}}}}
    # only the sensor rows exist here: the renderer takes the sources that are there
    table = render_memory_markdown(section)
    assert '| false changes on the static scene, sensor depth' in table and '| 0 / 0 / 0 |' \
        in table
    assert 'synthetic gone from frame 20, sensor depth: recall, median delay | 1.0' in table
    assert '3 of 3 objects shifted 0.5 m' in table
