"""The `memory` section of the evaluation: world spread, fragmentation, place retrieval.

On a real RGB-D sequence with ground-truth camera poses (../shared/eval/tum_fr1_rpy), each frame
goes through the same code as the nodes (PerceptionPipeline, SceneGraphBuilder, ObjectMemory,
KeyframeIndex), with the ground-truth pose as the camera's transform into the world frame:
- world_spread: for remembered static objects (every class but person), the median distance of
  their associated observations from the final fused position;
- fragmentation: remembered objects per physical object, a physical object being a group of
  same-class entries whose fused positions lie within 0.3 m of each other (single link);
- place_retrieval: for frames that revisit an earlier keyframe's viewpoint (viewing directions
  within 20 degrees, positions within 0.5 m, at least 2 s apart, from the poses), precision@1 of
  the ORB-verified keyframe against the signature baseline without re-ranking.
The criteria are the issue's (#14); no constant here was fitted to the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import dataclasses
from dataclasses import dataclass
import math
from pathlib import Path
import statistics
import time
from typing import Any

import numpy as np

from spatial_caption_ros.core.evaluation.dataset import TUM_FOLDER
from spatial_caption_ros.core.evaluation.tum import read_tum_sequence, TumFrame, TumSequence
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.keyframes import graph_signature, KeyframeIndex, \
    OrbExtractor
from spatial_caption_ros.core.memory.store import ObjectMemory
from spatial_caption_ros.core.memory.transforms import Transform
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import FrameHeader

# The criteria.
SAME_OBJECT_RADIUS = 0.3        # m: same-class entries this close are one physical object
REVISIT_ANGLE_DEG = 20.0
REVISIT_DISTANCE = 0.5          # m
REVISIT_MIN_GAP_S = 2.0
# Classes that are not static furniture or objects (excluded from world_spread/fragmentation).
NON_STATIC = frozenset({'person'})
GOALS = {'world_spread_sensor': 0.10, 'fragmentation': 1.1, 'place_retrieval': 0.9}


@dataclass
class PosedFrame:
    """A frame of the sequence with its stamp and ground-truth camera pose as a Transform."""

    stamp_ns: int
    frame: TumFrame
    pose: Transform        # camera optical frame -> motion-capture world


def posed_frames(sequence: TumSequence) -> list[PosedFrame]:
    """The sequence's frames that have a ground-truth pose (core/evaluation/tum.py reads it)."""
    # TUM stamps have microsecond digits; rounding there keeps float noise out of the ns
    return [PosedFrame(int(round(f.rgb_stamp * 1e6)) * 1000, f,
                       Transform(f.pose[:3, :3].copy(), f.pose[:3, 3].copy()))
            for f in sequence.frames if f.pose is not None]


def _median(values: list[float]) -> float | None:
    return round(float(statistics.median(values)), 4) if values else None


def world_spread(memory: ObjectMemory, observed: dict[int, list[np.ndarray]]) -> dict[str, Any]:
    """Median distance of the observations of remembered static objects from their fusion."""
    distances = []
    objects = 0
    for obj in memory.remembered():
        if obj.class_name in NON_STATIC or len(observed.get(obj.id, ())) < 2:
            continue
        objects += 1
        distances += [float(np.linalg.norm(p - obj.position)) for p in observed[obj.id]]
    return {'median': _median(distances), 'n': len(distances), 'objects': objects,
            'p90': round(float(np.percentile(distances, 90)), 4) if distances else None}


def fragmentation(memory: ObjectMemory) -> dict[str, Any]:
    """Remembered entries per physical object (same class, single-link within 0.3 m)."""
    entries = [o for o in memory.remembered() if o.class_name not in NON_STATIC]
    parent = list(range(len(entries)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i, a in enumerate(entries):
        for j in range(i + 1, len(entries)):
            b = entries[j]
            if a.class_name == b.class_name and np.linalg.norm(
                    a.position - b.position) <= SAME_OBJECT_RADIUS:
                parent[root(i)] = root(j)
    groups = len({root(i) for i in range(len(entries))})
    return {'entries_per_object': round(len(entries) / groups, 4) if groups else None,
            'n': groups, 'entries': len(entries)}


def _revisits(query: PosedFrame, keyframe_pose: Transform, gap_ns: int) -> bool:
    if gap_ns < REVISIT_MIN_GAP_S * 1e9:
        return False
    a, b = query.pose.rotation[:, 2], keyframe_pose.rotation[:, 2]
    angle = math.degrees(math.acos(float(np.clip(np.dot(a, b), -1.0, 1.0))))
    return angle <= REVISIT_ANGLE_DEG and float(
        np.linalg.norm(query.pose.translation - keyframe_pose.translation)) <= REVISIT_DISTANCE


class MemoryEvaluation:
    """Runs perception, scene graph and memory over a TUM sequence for one depth source."""

    def __init__(self, perception: PerceptionConfig, graph: SceneGraphConfig,
                 memory: MemoryConfig) -> None:
        self.pipeline = PerceptionPipeline(perception)
        self.builder = SceneGraphBuilder(graph)
        self.memory_config = memory
        self.sensor = perception.uses_sensor_depth

    def close(self) -> None:
        self.pipeline.close()

    def run(self, sequence: TumSequence, progress: Callable[[str], None] | None = None,
            with_retrieval: bool = False) -> dict[str, Any]:
        memory = ObjectMemory(self.memory_config)
        keyframes = KeyframeIndex(self.memory_config)
        orb = OrbExtractor(self.memory_config.orb_features)
        observed: dict[int, list[np.ndarray]] = {}
        poses: dict[int, Transform] = {}
        queries, correct, baseline_correct, answered = 0, 0, 0, 0
        update_ms: list[float] = []
        frames = posed_frames(sequence)
        for n, (frame, image, graph) in enumerate(self._graphs(sequence, frames)):
            t0 = time.perf_counter()
            result = memory.update(graph, frame.pose, sequence.intrinsics)
            update_ms.append((time.perf_counter() - t0) * 1e3)
            for obs in result.observations:
                oid = dict(result.associations).get(obs.index)
                if oid is not None:
                    observed.setdefault(oid, []).append(obs.position)
            if with_retrieval:
                features = orb(image.bgr())
                signature = graph_signature(graph)
                relevant = {k.id for k in keyframes.keyframes
                            if _revisits(frame, poses[k.id], frame.stamp_ns - k.stamp_ns)}
                if relevant:
                    found = keyframes.retrieve(frame.stamp_ns, features, signature)
                    queries += 1
                    baseline_correct += found.baseline is not None and \
                        found.baseline.id in relevant
                    answered += found.verified is not None
                    correct += found.verified is not None and found.verified.id in relevant
                if keyframes.due(frame.stamp_ns) and len(features):
                    kf, dropped = keyframes.add(frame.stamp_ns, features, signature)
                    poses[kf.id] = frame.pose
                    for old in dropped:
                        poses.pop(old.id, None)
            if progress and (n + 1) % 10 == 0:
                progress(f'{n + 1}/{len(frames)} frames, {len(memory.remembered())} objects '
                         'remembered')
        out: dict[str, Any] = {
            'world_spread': world_spread(memory, observed),
            'fragmentation': fragmentation(memory),
            'frames': len(frames), 'frames_without_pose': len(sequence.frames) - len(frames),
            'changes': {k: sum(1 for c in memory.changes if c.kind == k)
                        for k in ('appeared', 'moved', 'gone')},
            'update_ms_mean': round(statistics.mean(update_ms), 3) if update_ms else None}
        if with_retrieval:
            out['place_retrieval'] = {
                'precision_at_1': round(correct / queries, 4) if queries else None,
                'baseline_precision_at_1': round(baseline_correct / queries, 4)
                if queries else None,
                'n': queries, 'correct': correct, 'baseline_correct': baseline_correct,
                'answered': answered, 'keyframes': len(keyframes.keyframes)}
        return out

    def _graphs(self, sequence: TumSequence, frames: list[PosedFrame]) -> Iterator:
        self.pipeline.reset()
        for frame in frames:
            image = read_image_file(frame.frame.rgb_path)
            depth = sequence.read_depth(frame.frame) if self.sensor else None
            result = self.pipeline.process(image, FrameHeader(frame.stamp_ns, 'camera'),
                                           sequence.intrinsics, depth)
            yield frame, image, self.builder.build(result)


def evaluate_memory(data_root: Path, perception: dict[str, Any], graph: SceneGraphConfig,
                    memory: MemoryConfig, progress: Callable[[str], None] | None = None,
                    limit: int = 0) -> dict[str, Any]:
    """The `memory` section: both depth sources over tum_fr1_rpy (perception: flat values)."""
    from spatial_caption_ros.core.params import build_config
    sequence = read_tum_sequence(Path(data_root) / TUM_FOLDER)
    if limit > 0:
        sequence = dataclasses.replace(sequence, frames=sequence.frames[:limit])
    section: dict[str, Any] = {'data': str(sequence.root), 'frames': len(sequence.frames),
                               'goals': GOALS, 'world_spread': {}, 'fragmentation': {},
                               'details': {}}
    for source in ('sensor', 'geometric'):
        values = dict(perception, depth_source=source)
        if source != 'sensor' and values.get('depth_scale_source') == 'sensor':
            values['depth_scale_source'] = 'geometric'
        evaluation = MemoryEvaluation(build_config(PerceptionConfig, values), graph, memory)
        try:
            log = (lambda m, s=source: progress(f'memory ({s} depth): {m}')) if progress else None
            out = evaluation.run(sequence, log, with_retrieval=source == 'sensor')
        finally:
            evaluation.close()
        section['world_spread'][source] = out.pop('world_spread')
        section['fragmentation'][source] = out.pop('fragmentation')
        if 'place_retrieval' in out:
            section['place_retrieval'] = out.pop('place_retrieval')
        section['details'][source] = out
    return section


def render_memory_markdown(section: dict[str, Any]) -> str:
    """The memory section as a short markdown table, counts beside every figure."""
    ws, fr = section['world_spread'], section['fragmentation']
    pr = section.get('place_retrieval') or {}
    lines = [f'### Scene memory on {section["data"]} ({section["frames"]} frames, ground-truth '
             'poses as the camera pose)', '', '| metric | value | counts | goal |',
             '|---|---|---|---|']
    for source in ('sensor', 'geometric'):
        w, f = ws[source], fr[source]
        goal = f'<= {GOALS["world_spread_sensor"]:.2f} m' if source == 'sensor' else ''
        lines.append(f'| world spread, {source} depth: median distance of observations from '
                     f'the fused position | {w["median"]} m | {w["n"]} observations of '
                     f'{w["objects"]} static objects (p90 {w["p90"]} m) | {goal} |')
        lines.append(f'| fragmentation, {source} depth: entries per physical object | '
                     f'{f["entries_per_object"]} | {f["entries"]} entries, {f["n"]} objects '
                     f'(same class within {SAME_OBJECT_RADIUS} m) | <= {GOALS["fragmentation"]} |')
    if pr:
        lines.append(f'| place retrieval precision@1, ORB re-ranked / signature baseline | '
                     f'{pr["precision_at_1"]} / {pr["baseline_precision_at_1"]} | '
                     f'{pr["correct"]} / {pr["baseline_correct"]} of {pr["n"]} revisiting frames, '
                     f'{pr["keyframes"]} keyframes | >= {GOALS["place_retrieval"]} |')
    for source, d in section['details'].items():
        counts = ', '.join(f'{n} {kind}' for kind, n in d['changes'].items())
        lines.append(f'| change events, {source} depth (static scene: moved and gone are false '
                     f'alarms) | {counts} | {d["frames"]} frames | |')
    return '\n'.join(lines) + '\n'
