#!/usr/bin/env python3
"""KITTI spot-check of metric depth: the real YOLO11n + a depth source vs the KITTI 3D labels.

Runs PerceptionPipeline.process (the same entry point as the node) on every frame of a KITTI-style
folder (image_2/*.jpeg|png, calib/*.txt with P2, label_2/*.txt), matches each labelled object to a
detection of a compatible class with IoU >= 0.5, and prints predicted vs labelled depth (z of the
object centre) and distance, then the median relative errors. Nothing is tuned here: the class
mapping is the one suggested in ../shared/eval/README.md.

    scripts/env.sh .venv/bin/python scripts/kitti_depth_check.py [--kitti DIR] [--depth-source S]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import math
from pathlib import Path
import statistics
import sys

from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.perception.models import repository_root
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.inputs.sources import load_camera_info_file
from spatial_caption_ros.core.types import BoundingBox, FrameHeader

# KITTI type -> detector classes that count as a match (../shared/eval/README.md; a van may be
# called car or truck by a COCO detector, a cyclist is detected as a person).
CLASS_MAP = {
    'Car': {'car', 'truck'}, 'Van': {'car', 'truck'}, 'Truck': {'truck', 'car'},
    'Pedestrian': {'person'}, 'Person_sitting': {'person'}, 'Cyclist': {'person'},
    'Tram': {'train', 'bus'},
}
MIN_IOU = 0.5          # the evaluation's match criterion (issue 4)
# KITTI's own "moderate" difficulty: at most 30 % truncated and at most partly occluded.
MODERATE_TRUNCATION = 0.3
MODERATE_OCCLUSION = 1


@dataclass
class Match:
    """One labelled object and the detection matched to it."""

    frame: str
    kitti_type: str
    detected: str
    truncated: float
    occluded: int
    label_z: float
    label_distance: float
    depth: float
    sigma: float
    distance: float

    @property
    def rel_error(self) -> float:
        return (self.depth - self.label_z) / self.label_z

    @property
    def rel_distance_error(self) -> float:
        return (self.distance - self.label_distance) / self.label_distance

    @property
    def moderate(self) -> bool:
        return self.truncated <= MODERATE_TRUNCATION and self.occluded <= MODERATE_OCCLUSION


def read_labels(path: Path) -> list[dict]:
    """KITTI label_2 objects of mapped classes (DontCare and Misc are skipped)."""
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) < 15 or f[0] not in CLASS_MAP:
            continue
        h, x, y, z = float(f[8]), float(f[11]), float(f[12]), float(f[13])
        out.append({'type': f[0], 'truncated': float(f[1]), 'occluded': int(f[2]),
                    'box': BoundingBox(*map(float, f[4:8])), 'z': z,
                    # the label's X Y Z is the bottom centre: the centre is h/2 higher (y down)
                    'distance': math.sqrt(x * x + (y - h / 2) ** 2 + z * z)})
    return out


def run(kitti: Path, depth_source: str = 'geometric', model_dir: str = '',
        extra: dict | None = None) -> list[Match]:
    """Run the pipeline over the folder; the matched objects."""
    values = {'depth_source': depth_source, 'model_dir': model_dir, 'tracking': False}
    values.update(extra or {})
    pipe = PerceptionPipeline(build_config(PerceptionConfig, values))
    matches: list[Match] = []
    try:
        images = sorted(p for p in (kitti / 'image_2').iterdir()
                        if p.suffix.lower() in ('.png', '.jpeg', '.jpg'))
        for index, path in enumerate(images):
            image = read_image_file(path)
            intrinsics = load_camera_info_file(kitti / 'calib' / f'{path.stem}.txt',
                                               image.width, image.height)
            result = pipe.process(image, FrameHeader(index, 'kitti_cam2'), intrinsics)
            used: set[int] = set()
            for label in read_labels(kitti / 'label_2' / f'{path.stem}.txt'):
                best, best_iou = None, MIN_IOU
                for i, obj in enumerate(result.objects):
                    if i in used or obj.class_name not in CLASS_MAP[label['type']]:
                        continue
                    iou = label['box'].iou(obj.box)
                    if iou >= best_iou:
                        best, best_iou = i, iou
                if best is None:
                    continue
                used.add(best)
                obj = result.objects[best]
                matches.append(Match(path.stem, label['type'], obj.class_name,
                                     label['truncated'], label['occluded'], label['z'],
                                     label['distance'], obj.depth, obj.depth_uncertainty,
                                     obj.distance))
    finally:
        pipe.close()
    return matches


def median_abs(values: list[float]) -> float:
    finite = [abs(v) for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def coverage(matches: list[Match], sigmas: float) -> float:
    """Fraction of objects whose depth error is within `sigmas` of their stated uncertainty."""
    known = [m for m in matches if math.isfinite(m.depth) and math.isfinite(m.sigma)]
    if not known:
        return math.nan
    return sum(abs(m.depth - m.label_z) <= sigmas * m.sigma for m in known) / len(known)


def depth_order(matches: list[Match], min_ratio: float = 0.10) -> tuple[int, int]:
    """(correctly ordered, compared) pairs of matched objects of one frame.

    Only pairs whose labelled depths differ by more than `min_ratio` count (issue 4's criterion).
    """
    right = total = 0
    by_frame: dict[str, list[Match]] = {}
    for m in matches:
        if math.isfinite(m.depth):
            by_frame.setdefault(m.frame, []).append(m)
    for group in by_frame.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if abs(a.label_z - b.label_z) <= min_ratio * min(a.label_z, b.label_z):
                    continue
                total += 1
                right += (a.depth < b.depth) == (a.label_z < b.label_z)
    return right, total


def summary(matches: list[Match]) -> list[tuple[str, int, int, float, float]]:
    """(subset, matched, with depth, median |rel. depth error|, median |rel. distance error|)."""
    groups = [('all matched', matches),
              ('moderate (trunc <= 0.3, occl <= 1)', [m for m in matches if m.moderate]),
              ('cars (Car)', [m for m in matches if m.kitti_type == 'Car']),
              ('vans (Van)', [m for m in matches if m.kitti_type == 'Van']),
              ('people (Pedestrian, Cyclist, Person_sitting)',
               [m for m in matches if m.kitti_type in ('Pedestrian', 'Cyclist',
                                                      'Person_sitting')])]
    rows = []
    for name, group in groups:
        known = [m for m in group if math.isfinite(m.depth)]
        rows.append((name, len(group), len(known), median_abs([m.rel_error for m in known]),
                     median_abs([m.rel_distance_error for m in known])))
    return rows


def main(argv: list[str] | None = None) -> int:
    root = repository_root()
    default = (root.parent / 'shared' / 'eval' / 'kitti') if root else Path('kitti')
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kitti', type=Path, default=default, help='KITTI-style folder')
    parser.add_argument('--depth-source', default='geometric')
    parser.add_argument('--model-dir', default='')
    args = parser.parse_args(argv)
    if not (args.kitti / 'image_2').is_dir():
        print(f'no KITTI folder at {args.kitti} (needs image_2, calib, label_2)', file=sys.stderr)
        return 2
    matches = run(args.kitti, args.depth_source, args.model_dir)
    print(f'{"frame":6} {"KITTI":10} {"detected":8} {"trunc":>5} {"occl":>4} {"label z":>8} '
          f'{"pred z":>7} {"sigma":>6} {"rel err":>8} {"label d":>8} {"pred d":>7}')
    for m in matches:
        print(f'{m.frame:6} {m.kitti_type:10} {m.detected:8} {m.truncated:5.2f} {m.occluded:4d} '
              f'{m.label_z:8.2f} {m.depth:7.2f} {m.sigma:6.2f} {100 * m.rel_error:+7.1f}% '
              f'{m.label_distance:8.2f} {m.distance:7.2f}')
    print()
    print('| subset | matched | with depth | median abs. rel. error of z | of distance |')
    print('|---|---|---|---|---|')
    for name, n, known, err_z, err_d in summary(matches):
        print(f'| {name} | {n} | {known} | {100 * err_z:.1f} % | {100 * err_d:.1f} % |')
    print()
    right, total = depth_order(matches)
    print(f'depth order of matched pairs whose labelled depths differ by > 10 %: {right}/{total}'
          f' = {100 * right / max(total, 1):.1f} %')
    print(f'errors within 1 sigma: {100 * coverage(matches, 1.0):.0f} % (normal: 68 %), within '
          f'2 sigma: {100 * coverage(matches, 2.0):.0f} % (normal: 95 %)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
