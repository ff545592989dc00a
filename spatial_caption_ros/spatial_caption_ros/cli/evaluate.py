"""Evaluate the scene graph against external labels: the real pipeline over an evaluation folder.

Runs PerceptionPipeline (the real detector, the configured depth source, KITTI calib P2 as
intrinsics) and SceneGraphBuilder over a folder in the format of ../shared/eval, and writes
results.json (every count, per-frame details, VSR verdicts) and results.md (a short table):
KITTI depth order, distance error and Kendall tau; COCO left/right/above/below precision and
recall; VSR statements decided by the graph; the TUM RGB-D sequence (tum_fr1_rpy: per-object
depth and sigma against the Kinect, the graph's in front of / behind against the Kinect order).

`--depth-check` adds the KITTI depth check: every labelled object matched to a detection with its
labelled and estimated depth, sigma, truncation and occlusion, and the median errors by subset
(all, KITTI moderate, cars, vans, people) with the share within 1 and 2 sigma.

`--memory` adds the `memory` section (core/memory/evaluation.py): the scene memory over the
tum_fr1_rpy sequence with its ground-truth poses, with sensor and with geometric depth: world
spread, fragmentation, place retrieval against its baseline.

`--oracle-depth` replaces the depth of detections matched to KITTI labels by the labelled depth:
a self-check of the harness and the relation logic, labelled ORACLE in every output, never the
accuracy of a depth source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from spatial_caption_ros.params_file import apply_sets, load_params, stage_values
from spatial_caption_ros.core.errors import ConfigError, SpatialCaptionError
from spatial_caption_ros.core.evaluation.harness import (
    ALL_SOURCES, EvalOptions, Harness, render_markdown)
from spatial_caption_ros.core.memory.config import MemoryConfig
from spatial_caption_ros.core.memory.evaluation import evaluate_memory, render_memory_markdown
from spatial_caption_ros.core.perception.models import repository_root
from spatial_caption_ros.core.runtime.outputs import make_output_folder
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig
from spatial_caption_ros.core.scene_graph.builder import SceneGraphConfig

DEFAULT_OUTPUT = 'output/eval'


def default_data() -> str | None:
    """../shared/eval beside the repository, when present."""
    root = repository_root()
    if root is not None and (root.parent / 'shared' / 'eval' / 'index.jsonl').is_file():
        return str(root.parent / 'shared' / 'eval')
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='spatial-caption-evaluate',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default=default_data(),
                   help='evaluation folder with index.jsonl (default: ../shared/eval)')
    p.add_argument('--output', default=DEFAULT_OUTPUT,
                   help=f'folder for results.json and results.md (default: {DEFAULT_OUTPUT})')
    p.add_argument('--config', default=None,
                   help='parameter file whose perception and scene_graph sections are used '
                        '(default: config/pipeline.yaml)')
    p.add_argument('--depth-source', default=None,
                   help="perception depth_source (default: the parameter file's value)")
    p.add_argument('--model-dir', default=None, help='perception model_dir')
    p.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                   help='override a perception or scene_graph parameter (value parsed as YAML)')
    p.add_argument('--sources', default=','.join(ALL_SOURCES),
                   help=f'comma-separated subset of {",".join(ALL_SOURCES)} (tum: the '
                        'tum_fr1_rpy RGB-D sequence against its Kinect depth)')
    p.add_argument('--limit', type=int, default=0,
                   help='first N items of each source only (default 0: every item)')
    p.add_argument('--oracle-depth', action='store_true',
                   help='KITTI: replace estimated depth by the labelled depth (harness '
                        'self-check, reported as ORACLE)')
    p.add_argument('--depth-check', action='store_true',
                   help='KITTI: list every matched object (labelled vs estimated depth, sigma, '
                        'truncation, occlusion) and the errors by subset')
    p.add_argument('--no-gravity', action='store_true',
                   help='TUM: do not give the pipeline gravity from the ground-truth poses, '
                        "KITTI: do not state its rig's level mount (a camera of unknown "
                        'orientation: the geometric cues take the optical axis as level, with '
                        'camera_tilt_uncertainty_deg in their uncertainty)')
    p.add_argument('--memory', action='store_true',
                   help='add the memory section: scene memory on tum_fr1_rpy with sensor and '
                        'geometric depth (world spread, fragmentation, false changes, '
                        'synthetic changes, place retrieval)')
    p.add_argument('--quiet', action='store_true', help='print only the table')
    return p.parse_args(argv)


def depth_check_table(objects: list[dict]) -> str:
    """One line per matched KITTI object: what the depth check lists."""
    def num(v, fmt):
        return format(v, fmt) if v is not None else 'n/a'

    lines = [f'{"frame":13} {"KITTI":14} {"detected":8} {"trunc":>5} {"occl":>4} '
             f'{"label z":>8} {"pred z":>7} {"sigma":>6} {"rel err":>8} {"label d":>8} '
             f'{"pred d":>7}']
    for o in objects:
        err = (f'{100 * (o["depth"] - o["label_z"]) / o["label_z"]:+7.1f}%'
               if o['depth'] is not None else '     n/a')
        lines.append(f'{o["frame"]:13} {o["type"]:14} {o["detected"]:8} {o["truncated"]:5.2f} '
                     f'{o["occluded"]:4d} {o["label_z"]:8.2f} {num(o["depth"], "7.2f"):>7} '
                     f'{num(o["sigma"], "6.2f"):>6} {err} {num(o["label_distance"], "8.2f"):>8}'
                     f' {num(o["distance"], "7.2f"):>7}')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data:
        print('no --data given and ../shared/eval is not there', file=sys.stderr)
        return 2
    if not Path(args.data).is_dir():
        print(f'--data {args.data}: no such folder', file=sys.stderr)
        return 2
    if args.limit < 0:
        print(f'--limit {args.limit}: must be 0 (every item) or more', file=sys.stderr)
        return 2
    out = Path(args.output)
    try:                # before the evaluation, which can take many minutes
        make_output_folder(out)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        params = apply_sets(load_params(args.config), args.set,
                            nodes=('perception', 'scene_graph', 'memory'))
    except SpatialCaptionError as exc:
        print(exc, file=sys.stderr)
        return 2
    perception = stage_values(params, 'perception', PerceptionConfig)
    graph = stage_values(params, 'scene_graph', SceneGraphConfig)
    memory = stage_values(params, 'memory', MemoryConfig)
    if args.depth_source:
        perception['depth_source'] = args.depth_source
    if args.model_dir:
        perception['model_dir'] = str(Path(args.model_dir).expanduser().resolve())
    sources = tuple(s.strip() for s in args.sources.split(',') if s.strip())
    unknown = sorted(set(sources) - set(ALL_SOURCES))
    if unknown:
        print(f'unknown sources {unknown}; known: {", ".join(ALL_SOURCES)}', file=sys.stderr)
        return 2
    try:
        harness = Harness(build_config(PerceptionConfig, perception),
                          build_config(SceneGraphConfig, graph),
                          EvalOptions(Path(args.data), sources, args.limit, args.oracle_depth,
                                      args.depth_check, not args.no_gravity))
    except SpatialCaptionError as exc:
        print(f'cannot start the evaluation: {exc}', file=sys.stderr)
        return 2
    log = (lambda _m: None) if args.quiet else (lambda m: print(f'[eval] {m}', file=sys.stderr))
    try:
        report = harness.run(log)
    finally:
        harness.close()
    table = render_markdown(report)
    if args.memory:
        try:
            report['memory'] = evaluate_memory(Path(args.data), perception,
                                               build_config(SceneGraphConfig, graph),
                                               build_config(MemoryConfig, memory), log,
                                               limit=args.limit)
        except SpatialCaptionError as exc:
            print(f'memory evaluation failed: {exc}', file=sys.stderr)
            return 2
        table += '\n' + render_memory_markdown(report['memory'])
    (out / 'results.json').write_text(json.dumps(report, indent=1), encoding='utf-8')
    (out / 'results.md').write_text(table, encoding='utf-8')
    if args.depth_check and report.get('kitti'):
        print(depth_check_table(report['kitti']['depth_check']['objects']))
    print(table)
    log(f'wrote {out / "results.json"} and {out / "results.md"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
