"""The output folder of one recording: per-frame results as they finish, then MCAP and report.

Layout of <output>/<recording>/:
  captions.jsonl, scene_graphs/, annotated/   the runner's files (core/runtime/outputs.py)
  frames/<n>.json (+ <n>.cdr)                 each finished frame: summary, serialized outputs
  captioned/                                  rosbag2 (MCAP) of the outputs, written at the end
  summary.json, report.html                   the run's figures and the visual report

A frame counts as finished once its frames/<n>.json exists (written last, atomically), so an
interrupted run resumes with the frames that have none, and nothing is written twice: the caption
lines of unfinished frames are dropped on resume, and the MCAP is written from frames/ at the end.
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path
import shutil
from typing import Any

from spatial_caption_ros.bag.processor import FrameRecord, Plan
from spatial_caption_ros.bag.writer import McapOutput
from spatial_caption_ros.core.runtime.outputs import (
    ANNOTATED_DIR, FrameOutputWriter, frame_stem)

FRAMES_DIR = 'frames'
MCAP_DIR = 'captioned'
SUMMARY_FILE = 'summary.json'
REPORT_FILE = 'report.html'
# Annotated keyframes inlined in the report.
KEYFRAMES = 12


class RecordingOutput:
    """Collects the records of one recording's frames; resumable."""

    def __init__(self, folder: Path, plan: Plan, resume: bool) -> None:
        self.dir = Path(folder)
        self.plan = plan
        self.frames_dir = self.dir / FRAMES_DIR
        if not resume and self.frames_dir.exists():
            shutil.rmtree(self.frames_dir)
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.frames_dir.glob('*.tmp'):      # cut by an interruption
            tmp.unlink()
        self.done: dict[int, dict[str, Any]] = {}
        for path in sorted(self.frames_dir.glob('*.json')):
            try:
                meta = json.loads(path.read_text(encoding='utf-8'))
                self.done[int(meta['ordinal'])] = meta
            except (ValueError, KeyError, TypeError):
                path.unlink()                         # unreadable: the frame is redone
        self.resumed = len(self.done)
        self.writer = FrameOutputWriter(self.dir, resume=resume)
        if resume:
            self.writer.keep_only(self._names())

    def _names(self) -> list[str]:
        return [m['name'] for _, m in sorted(self.done.items()) if not m.get('skipped')]

    def add(self, record: FrameRecord) -> None:
        """Store one frame's results; the frame is finished when this returns."""
        stem = self.frames_dir / f'{record.ordinal:06d}'
        meta = dict(record.meta) or {'ordinal': record.ordinal, 'name': record.name,
                                     'log_time_ns': record.log_time_ns,
                                     'stamp_ns': record.stamp_ns}
        if record.skipped:
            meta['skipped'] = record.skipped
        else:
            self.writer.write(record.ordinal, record.name, record.caption, record.graph,
                              jpeg=record.jpeg)
            entries, offset = [], 0
            with open(stem.with_suffix('.cdr'), 'wb') as f:
                for topic, msgtype, stamp, data in record.messages:
                    f.write(data)
                    entries.append([topic, msgtype, stamp, offset, len(data)])
                    offset += len(data)
            meta['messages'] = entries
        tmp = stem.with_suffix('.tmp')
        tmp.write_text(json.dumps(meta), encoding='utf-8')
        tmp.replace(stem.with_suffix('.json'))
        self.done[record.ordinal] = meta

    def _frame_messages(self):
        for ordinal, meta in sorted(self.done.items()):
            if meta.get('skipped'):
                continue
            data = (self.frames_dir / f'{ordinal:06d}.cdr').read_bytes()
            for topic, msgtype, stamp, offset, size in meta['messages']:
                yield stamp, topic, msgtype, data[offset:offset + size], ''

    def finish(self) -> dict[str, Any]:
        """Write the MCAP of the outputs; returns the recording's summary (also summary.json)."""
        self.writer.keep_only(self._names())
        self.writer.close()
        plan = self.plan
        out = McapOutput(self.dir / MCAP_DIR, custom={'source': plan.path})
        passthrough = sorted(((t, topic, kind, data, msgdef)
                              for topic, kind, t, data, msgdef in plan.passthrough),
                             key=lambda m: m[0])
        for stamp, topic, kind, data, msgdef in heapq.merge(
                passthrough, self._frame_messages(), key=lambda m: m[0]):
            out.write(topic, kind, stamp, data, msgdef)
        out.close()
        frames = [m for _, m in sorted(self.done.items())]
        processed = [m for m in frames if not m.get('skipped')]
        skipped = [{'topic': plan.topics.image, 'log_time_ns': m['log_time_ns'],
                    'frame': m['ordinal'], 'reason': m['skipped']}
                   for m in frames if m.get('skipped')] + plan.skipped
        summary = {
            'recording': plan.path, 'name': plan.name, 'storage': plan.storage,
            'topics': {'image': plan.topics.image, 'image_type': plan.topics.image_type,
                       'camera_info': plan.topics.camera_info, 'depth': plan.topics.depth,
                       'tf': list(plan.topics.tf)},
            'message_counts': plan.message_counts, 'depth_unit_m': plan.depth_unit_m,
            'colour_messages': len(plan.frame_times), 'selected': len(plan.selected),
            'processed': len(processed), 'skipped_frames': len(frames) - len(processed),
            'resumed_frames': self.resumed, 'chunks': len(plan.chunks),
            'problems': plan.problems, 'warnings': plan.warnings, 'skipped': skipped,
            'output_mcap': str(self.dir / MCAP_DIR), 'output_topics': out.counts}
        (self.dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1), encoding='utf-8')
        return summary

    def keyframes(self, count: int = KEYFRAMES) -> list[tuple[dict[str, Any], bytes]]:
        """Up to `count` annotated frames spread evenly over the recording (meta, JPEG)."""
        processed = [m for _, m in sorted(self.done.items()) if not m.get('skipped')]
        if not processed:
            return []
        step = max(1, len(processed) / count)
        picks = sorted({int(i * step) for i in range(min(count, len(processed)))})
        out = []
        for i in picks:
            meta = processed[i]
            path = self.dir / ANNOTATED_DIR / f'{frame_stem(meta["ordinal"], meta["name"])}.jpg'
            if path.exists():
                out.append((meta, path.read_bytes()))
        return out

    def frame_metas(self) -> list[dict[str, Any]]:
        return [m for _, m in sorted(self.done.items())]
