"""The evaluation harness: the real pipeline over an evaluation folder, scored against labels.

Each image goes through the same code as the nodes: PerceptionPipeline (the real detector and the
configured depth source, KITTI calib P2 as CameraInfo) and SceneGraphBuilder. The graphs are
scored with core/evaluation/metrics.py; the report is a JSON-ready dict, rendered as a short
markdown table by `render_markdown`.

The ground-truth depth ORACLE (`oracle_depth`) replaces the depth of each detection matched to a
KITTI label by the labelled depth. It tests the harness and the relation logic with perfect depth;
it is labelled as such everywhere and is never the product's accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import datetime
import math
import os
from pathlib import Path
import platform
import statistics
import time
from typing import Any

from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.evaluation.dataset import EvalItem, load_items, SOURCES
from spatial_caption_ros.core.evaluation.metrics import (
    decide_statement, DepthScores, match_objects, RelationScores, score_depth, score_directions)
from spatial_caption_ros.core.scene_graph.geometry import metric_size, norm3, position_from_depth
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.params import config_values
from spatial_caption_ros.core.runtime.monitoring import percentile
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.inputs.sources import load_camera_info_file
from spatial_caption_ros.core.types import CameraIntrinsics, DetectionResult, FrameHeader

MODE_PRODUCT = 'product'
MODE_ORACLE = 'oracle_gt_depth'
ORACLE_BANNER = ('ORACLE MODE: labelled KITTI depths replaced the estimated depth of matched '
                 'detections. This checks the harness and the relation logic with perfect '
                 'depth; it is NOT the accuracy of any depth source.')
# Goals of the issue on the dev data (reported next to the figures, never used to tune).
GOALS = {'depth_order': 0.95, 'distance_error': 0.15, 'relation_precision': 0.98}


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate."""

    data_root: Path
    sources: tuple[str, ...] = SOURCES
    limit: int = 0                    # > 0: first `limit` items of each source
    oracle_depth: bool = False


def apply_oracle_depth(result: DetectionResult, truth, matches: dict[int, int],
                       intrinsics: CameraIntrinsics) -> None:
    """Give matched detections their labelled depth (exact: uncertainty 0), as perception would.

    3D position, distance and metric size follow from the box and the depth exactly as in
    PerceptionPipeline; unmatched detections get no depth.
    """
    matched = {o: t for t, o in matches.items()}
    for k, obj in enumerate(result.objects):
        t = matched.get(k)
        if t is None:
            obj.depth, obj.depth_uncertainty, obj.depth_metric = math.nan, math.nan, False
            obj.position, obj.distance = None, math.nan
            obj.metric_width = obj.metric_height = math.nan
            obj.depth_source = 'none'
            continue
        z = truth[t].depth
        obj.depth, obj.depth_uncertainty, obj.depth_metric = z, 0.0, True
        obj.depth_source = MODE_ORACLE
        obj.position = position_from_depth(obj.box, z, intrinsics)
        obj.distance = norm3(obj.position)
        obj.metric_width, obj.metric_height = metric_size(obj.box, z, intrinsics)
    result.depth_source = MODE_ORACLE
    result.depth_metric = all(o.depth_metric for o in result.objects)


class Harness:
    """Runs the pipeline over the items and accumulates the scores."""

    def __init__(self, perception: PerceptionConfig, graph: SceneGraphConfig,
                 options: EvalOptions) -> None:
        self.options = options
        self.perception_config = perception
        self.graph_config = graph
        self.pipeline = PerceptionPipeline(perception)
        self.builder = SceneGraphBuilder(graph)

    def close(self) -> None:
        self.pipeline.close()

    def run(self, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        items = load_items(self.options.data_root, self.options.sources, self.options.limit)
        depth, directions = DepthScores(), RelationScores()
        vsr: list[dict[str, Any]] = []
        frames: list[dict[str, Any]] = []
        times = {'perception_ms': [], 'graph_ms': []}
        for n, item in enumerate(items):
            t0 = time.perf_counter()
            # Each image is its own sequence: no track or depth scale carries over.
            self.pipeline.reset()
            header = FrameHeader((n + 1) * 1_000_000_000, item.id)
            try:
                frame = self._evaluate(item, header, depth, directions, vsr, times)
            except SpatialCaptionError as exc:
                # an unreadable image or calib file is reported, not fatal to the whole run
                frames.append({'id': item.id, 'source': item.source, 'error': str(exc)})
                if progress:
                    progress(f'{item.id}: FAILED: {exc}')
                continue
            frames.append(frame)
            if progress:
                progress(f'{item.id}: {frame["detections"]} detections, '
                         f'{frame["relations"]} relations ({(time.perf_counter() - t0):.2f} s)')
        return self._report(items, depth, directions, vsr, frames, times)

    def _evaluate(self, item: EvalItem, header: FrameHeader, depth: DepthScores,
                  directions: RelationScores, vsr: list[dict[str, Any]],
                  times: dict[str, list[float]]) -> dict[str, Any]:
        image = read_image_file(item.image_path)
        intrinsics = None
        if item.calib_path is not None:
            intrinsics = load_camera_info_file(item.calib_path, image.width, image.height)
        t0 = time.perf_counter()
        result = self.pipeline.process(image, header, intrinsics)
        times['perception_ms'].append((time.perf_counter() - t0) * 1e3)
        if self.options.oracle_depth and item.source == 'kitti' and intrinsics is not None:
            apply_oracle_depth(result, item.objects, match_objects(item.objects, result.objects),
                               intrinsics)
        t0 = time.perf_counter()
        graph = self.builder.build(result)
        times['graph_ms'].append((time.perf_counter() - t0) * 1e3)
        matches = match_objects(item.objects, graph.objects)
        frame: dict[str, Any] = {'id': item.id, 'source': item.source,
                                 'detections': len(graph.objects),
                                 'labelled': len(item.objects), 'matched': len(matches),
                                 'relations': len(graph.relations)}
        if item.source == 'kitti':
            scores = score_depth(item.objects, graph, matches)
            depth.add(scores)
            frame.update(pairs=scores.pairs, depth_decided=scores.graph_decided,
                         depth_correct=scores.graph_correct,
                         kendall_tau=_round(scores.frame_taus[0]) if scores.frame_taus else None)
        elif item.source == 'coco':
            scores = score_directions(item.objects, graph, matches)
            directions.add(scores)
            frame.update(directions_on_clear=sum(scores.on_clear.values()),
                         directions_correct=sum(scores.correct.values()))
        for statement in item.statements:
            verdict = decide_statement(graph, statement)
            vsr.append({'image': statement.image, 'statement': statement.caption,
                        'label': statement.label, 'verdict': verdict,
                        'correct': None if verdict is None else verdict == statement.label})
        return frame

    def _report(self, items: list[EvalItem], depth: DepthScores, directions: RelationScores,
                vsr: list[dict[str, Any]], frames: list[dict[str, Any]],
                times: dict[str, list[float]]) -> dict[str, Any]:
        counts = {s: sum(1 for i in items if i.source == s) for s in SOURCES}
        mode = MODE_ORACLE if self.options.oracle_depth else MODE_PRODUCT
        decided = [v for v in vsr if v['verdict'] is not None]
        report: dict[str, Any] = {
            'date': datetime.date.today().isoformat(),
            'machine': f'{platform.machine()}, {os.cpu_count()} cores, '
                       f'{platform.processor() or platform.system()}',
            'data': str(self.options.data_root), 'items': counts,
            'failed_items': [f['id'] for f in frames if 'error' in f], 'mode': mode,
            'depth_source': self.pipeline.depth.name,
            'detector': self.pipeline.describe().get('detector_model', ''),
            'parameters': {'perception': config_values(self.perception_config),
                           'scene_graph': config_values(self.graph_config)},
            'kitti': _depth_report(depth) if counts['kitti'] else None,
            'coco': _direction_report(directions) if counts['coco'] else None,
            'vsr': {'statements': len(vsr), 'decided': len(decided),
                    'correct': sum(1 for v in decided if v['correct']),
                    'accuracy': _ratio(sum(1 for v in decided if v['correct']), len(decided)),
                    'details': vsr},
            'timing_ms': {k: _round(statistics.mean(v), 2) if v else None
                          for k, v in times.items()},
            'frames': frames,
        }
        if mode == MODE_ORACLE:
            report['oracle_warning'] = ORACLE_BANNER
        return report


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _round(value: float, digits: int = 4) -> float | None:
    return round(float(value), digits) if value is not None and math.isfinite(value) else None


def _depth_report(s: DepthScores) -> dict[str, Any]:
    return {
        'objects': s.objects, 'objects_matched': s.objects_matched,
        'pairs': s.pairs, 'pairs_matched': s.pairs_matched,
        'graph_order': {'decided': s.graph_decided, 'correct': s.graph_correct,
                        'accuracy': _ratio(s.graph_correct, s.graph_decided),
                        'coverage': _ratio(s.graph_decided, s.pairs),
                        'coverage_of_detected': _ratio(s.graph_decided, s.pairs_matched)},
        'value_order': {'decided': s.values_decided, 'correct': s.values_correct,
                        'accuracy': _ratio(s.values_correct, s.values_decided),
                        'coverage': _ratio(s.values_decided, s.pairs)},
        'distance_rel_error': {'n': len(s.distance_errors),
                               'median': _round(statistics.median(s.distance_errors))
                               if s.distance_errors else None,
                               'p90': _round(percentile(s.distance_errors, 90))},
        'depth_rel_error': {'n': len(s.depth_errors),
                            'median': _round(statistics.median(s.depth_errors))
                            if s.depth_errors else None},
        'kendall_tau': {'frames': len(s.frame_taus),
                        'mean': _round(statistics.mean(s.frame_taus)) if s.frame_taus else None},
    }


def _direction_report(s: RelationScores) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, axes in (('left_right', ('x',)), ('above_below', ('y',)), ('all', ('x', 'y'))):
        total = {k: sum(getattr(s, k)[a] for a in axes) for k in s.__dataclass_fields__}
        out[name] = {
            'predicted': total['predicted'], 'on_clear_pairs': total['on_clear'],
            'correct': total['correct'],
            'precision': _ratio(total['correct'], total['on_clear']),
            'truth_clear_pairs': total['truth_clear'],
            'truth_clear_pairs_detected': total['truth_clear_matched'],
            'recalled': total['recalled'],
            'recall': _ratio(total['recalled'], total['truth_clear']),
            'recall_of_detected': _ratio(total['recalled'], total['truth_clear_matched']),
            'on_unclear_pairs': total['on_unclear'], 'contradicting_centres':
                total['contradicted'], 'with_unmatched_object': total['unmatched'],
        }
    return out

# ---------------------------------------------------------------- markdown


def _pct(value: float | None) -> str:
    return 'n/a' if value is None else f'{100.0 * value:.1f}%'


def render_markdown(report: dict[str, Any]) -> str:
    """A short markdown summary: one table, counts beside every figure."""
    lines = [f'### Evaluation on {report["data"]} ({report["date"]})', '']
    if report['mode'] == MODE_ORACLE:
        lines += [f'**{ORACLE_BANNER}**', '']
    items = report['items']
    lines += [f'Depth source: `{report["depth_source"]}`; detector: '
              f'`{Path(report["detector"]).name}`; items: {items["kitti"]} KITTI, '
              f'{items["coco"]} COCO, {items["vsr_only"]} VSR-only; machine: '
              f'{report["machine"]}.', '',
              '| metric | value | counts | goal |', '|---|---|---|---|']
    k = report.get('kitti')
    if k:
        g, v = k['graph_order'], k['value_order']
        lines += [
            f'| KITTI depth order, graph (in front of / behind), accuracy | {_pct(g["accuracy"])}'
            f' | {g["correct"]}/{g["decided"]} decided pairs | >= {_pct(GOALS["depth_order"])} |',
            f'| KITTI depth order, graph, coverage | {_pct(g["coverage"])} | '
            f'{g["decided"]}/{k["pairs"]} labelled pairs >10% apart '
            f'({_pct(g["coverage_of_detected"])} of the {k["pairs_matched"]} with both objects '
            f'detected) | |',
            f'| KITTI depth order, raw depth values, accuracy | {_pct(v["accuracy"])} | '
            f'{v["correct"]}/{v["decided"]} pairs | |',
            f'| KITTI distance, median relative error | '
            f'{_pct(k["distance_rel_error"]["median"])} | {k["distance_rel_error"]["n"]} '
            f'matched objects of {k["objects"]} labelled (p90 '
            f'{_pct(k["distance_rel_error"]["p90"])}) | <= {_pct(GOALS["distance_error"])} |',
            f'| KITTI Kendall tau per frame, mean | '
            f'{"n/a" if k["kendall_tau"]["mean"] is None else k["kendall_tau"]["mean"]} | '
            f'{k["kendall_tau"]["frames"]} frames | |']
    c = report.get('coco')
    if c:
        goal = f'>= {_pct(GOALS["relation_precision"])} precision'
        for name, label in (('left_right', 'left/right'), ('above_below', 'above/below'),
                            ('all', 'all four')):
            r = c[name]
            lines.append(
                f'| COCO {label}: precision / recall | {_pct(r["precision"])} / '
                f'{_pct(r["recall"])} | {r["correct"]}/{r["on_clear_pairs"]} on clearly '
                f'separated pairs; {r["recalled"]}/{r["truth_clear_pairs"]} labelled pairs '
                f'({r["truth_clear_pairs_detected"]} detected) | '
                f'{goal if name == "all" else ""} |')
        a = c['all']
        lines.append(f'| COCO predictions on not clearly separated pairs | '
                     f'{a["on_unclear_pairs"]} | {a["contradicting_centres"]} contradict the '
                     f'labelled centres; {a["with_unmatched_object"]} involve an unmatched '
                     f'detection | |')
    vs = report['vsr']
    lines.append(f'| VSR statements decided: accuracy | {_pct(vs["accuracy"])} | '
                 f'{vs["correct"]}/{vs["decided"]} decided of {vs["statements"]} | |')
    if report.get('failed_items'):
        lines.append(f'| items that failed (not scored) | {len(report["failed_items"])} | '
                     f'{", ".join(report["failed_items"])} | |')
    t = report['timing_ms']
    lines += ['', f'Mean time per image: perception {t["perception_ms"]} ms, scene graph '
                  f'{t["graph_ms"]} ms.']
    return '\n'.join(lines) + '\n'
