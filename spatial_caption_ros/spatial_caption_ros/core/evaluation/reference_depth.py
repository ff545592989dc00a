"""Scoring per-object depth against a dense reference depth image (the TUM RGB-D Kinect).

Reference of an object: the median of the valid reference readings in the central half of its
box (each side), as in issue 12's probe; an object counts only when at least
MIN_VALID_FRACTION of that region has readings (otherwise the median describes a minority of
the object: a Kinect has no readings on dark, shiny or too-near surfaces). The reference is
itself noisy at edges and on such surfaces; it is what the sequence can offer.

Scored, with counts: the relative depth error of every metric estimate (median, share within
+-25 %), the stated sigma's coverage (share of errors within 1 and 2 sigma), the graph's
in front of / behind relations against the reference order of pairs clearly apart
(metrics.clear_depth_order), and the median error by class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import itertools
import math
import statistics
from typing import Any

import numpy as np

from spatial_caption_ros.core.evaluation.metrics import (
    clear_depth_order, order_record, order_tradeoff, OrderRecord, relation_index,
    sigma_coverage)
from spatial_caption_ros.core.types import BEHIND, BoundingBox, IN_FRONT_OF, SceneGraph

INNER_FRACTION = 0.5
MIN_VALID_FRACTION = 0.5


def reference_depth(depth: np.ndarray, box: BoundingBox) -> float:
    """Median valid reading of the box's central half; NaN when under MIN_VALID_FRACTION."""
    h, w = depth.shape[:2]
    cx, cy = box.center
    hw, hh = 0.5 * INNER_FRACTION * box.width, 0.5 * INNER_FRACTION * box.height
    x0, x1 = max(0, int(cx - hw)), min(w, int(math.ceil(cx + hw)))
    y0, y1 = max(0, int(cy - hh)), min(h, int(math.ceil(cy + hh)))
    region = depth[y0:y1, x0:x1]
    valid = region[np.isfinite(region) & (region > 0)]
    if region.size == 0 or valid.size < MIN_VALID_FRACTION * region.size:
        return math.nan
    return float(np.median(valid))


@dataclass
class ReferenceDepthScores:
    """Counts of one or more frames scored against a reference depth image."""

    objects: int = 0                 # detections
    with_reference: int = 0          # ... with enough valid reference readings
    pairs: int = 0                   # reference pairs clearly apart (both with reference)
    graph_decided: int = 0
    graph_correct: int = 0
    errors: list[float] = field(default_factory=list)            # |z - ref| / ref (metric)
    sigma_records: list[tuple[float, float, float]] = field(default_factory=list)
    by_class: dict[str, list[float]] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)        # objects per depth source
    order_records: list[OrderRecord] = field(default_factory=list)

    def add(self, other: ReferenceDepthScores) -> None:
        for name in ('objects', 'with_reference', 'pairs', 'graph_decided', 'graph_correct'):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.sigma_records += other.sigma_records
        self.order_records += other.order_records
        for k, v in other.by_class.items():
            self.by_class.setdefault(k, []).extend(v)
        for k, n in other.sources.items():
            self.sources[k] = self.sources.get(k, 0) + n


def score_reference_depth(graph: SceneGraph, reference: np.ndarray) -> ReferenceDepthScores:
    """Depth errors, sigma coverage and graph depth order of one frame against `reference`."""
    s = ReferenceDepthScores(objects=len(graph.objects))
    for o in graph.objects:
        s.sources[o.depth_source] = s.sources.get(o.depth_source, 0) + 1
    refs = [reference_depth(reference, o.box) for o in graph.objects]
    for obj, ref in zip(graph.objects, refs, strict=True):
        if not math.isfinite(ref):
            continue
        s.with_reference += 1
        if obj.depth_metric and math.isfinite(obj.depth):
            err = abs(obj.depth - ref) / ref
            s.errors.append(err)
            s.by_class.setdefault(obj.class_name, []).append(err)
            s.sigma_records.append((obj.depth, ref, obj.depth_uncertainty))
    index = relation_index(graph)
    for a, b in itertools.combinations(range(len(graph.objects)), 2):
        if not (math.isfinite(refs[a]) and math.isfinite(refs[b])):
            continue
        order = clear_depth_order(refs[a], refs[b])
        if not order:
            continue
        s.pairs += 1
        oa, ob = graph.objects[a], graph.objects[b]
        if oa.depth_metric and ob.depth_metric:
            record = order_record(oa.depth, oa.depth_uncertainty, refs[a], ob.depth,
                                  ob.depth_uncertainty, refs[b])
            if record is not None:
                s.order_records.append(record)
        said = index.get((graph.objects[a].id, graph.objects[b].id), set())
        if IN_FRONT_OF in said or BEHIND in said:
            s.graph_decided += 1
            s.graph_correct += int((IN_FRONT_OF in said) == (order > 0))
    return s


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def reference_report(s: ReferenceDepthScores, frames: int) -> dict[str, Any]:
    """The `tum` section of results.json (keys as issue 12 names them, plus counts)."""
    return {
        'frames': frames, 'objects': s.objects, 'objects_with_reference': s.with_reference,
        'depth_sources': dict(sorted(s.sources.items(), key=lambda kv: -kv[1])),
        'graph_order': {'decided': s.graph_decided, 'correct': s.graph_correct,
                        'accuracy': _ratio(s.graph_correct, s.graph_decided),
                        'coverage': _ratio(s.graph_decided, s.pairs), 'pairs': s.pairs},
        'depth_rel_error': {'n': len(s.errors),
                            'median': round(statistics.median(s.errors), 4) if s.errors
                            else None,
                            'within_25': _ratio(sum(e <= 0.25 for e in s.errors),
                                                len(s.errors))},
        'sigma_coverage': sigma_coverage(s.sigma_records),
        'order_tradeoff': order_tradeoff(s.order_records, s.pairs),
        'per_class': {k: {'n': len(v), 'median': round(statistics.median(v), 4)}
                      for k, v in sorted(s.by_class.items(), key=lambda kv: -len(kv[1]))},
    }
