"""Measure the captioner on external labels: claim accuracy, hallucination, COCO metrics, latency.

Runs the real pipeline (YOLO11n + depth source + scene graph, parameters from the pipeline
file) over every image of an eval folder in the ../shared/eval format, captions each graph in
several configurations, and prints one table row per configuration:
- verified: published captions that passed the verifier against their graph (goal 100 %);
- llm ok: LLM outputs that verified as generated (the rest were repaired or fell back), and the
  fallback reasons;
- spatial claims true: claims of the published captions the external labels decide, and the
  share true (goal >= 95 %); counts are reported apart (not spatial);
- CHAIR-i: object mentions absent from the image's labels / all decidable mentions (goal <= 2 %);
  CHAIR-s: captions with at least one;
- distances: claims stating a distance per caption, captions of metric graphs (with objects)
  that state at least one, and of the distances the labels decide (KITTI 3D centres) the share
  within +-25 % (SpatialRGPT-Bench's criterion: SpatialRGPT-7B 41.2 %, MM-Spatial-3B 59.5 % on
  direct distances) and the median relative error;
- VSR: of the VSR statements about the images, those a relation claim of the caption decides
  (implies, "on" implies "touching", or excludes, "left of" excludes "right of"), and the share
  of those decided right by the VSR label;
- BLEU-4, METEOR, CIDEr against the 5 COCO references (pycocoevalcap; needs java);
- latency per caption (p50, p90).
No thresholds are tuned here: the figures are printed as measured.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import time
from typing import Any

from spatial_caption_ros.params_file import apply_sets, load_params, stage_values
from spatial_caption_ros.core.captioning.captioner import CaptionConfig, Captioner
from spatial_caption_ros.core.captioning.evaluation import chair, judge_caption, vsr_decisions
from spatial_caption_ros.core.captioning.language import NounLexicon
from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.evaluation.dataset import load_items
from spatial_caption_ros.core.evaluation.ground_truth import caption_ground_truth
from spatial_caption_ros.core.evaluation.harness import EvalOptions, Harness
from spatial_caption_ros.core.perception.models import repository_root
from spatial_caption_ros.core.runtime.monitoring import percentile
from spatial_caption_ros.core.runtime.outputs import make_output_folder
from spatial_caption_ros.core.params import build_config, CONFIGURE, param_fields
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig
from spatial_caption_ros.core.scene_graph.builder import SceneGraphConfig
from spatial_caption_ros.core.types import STYLE_JSON

# name -> (caption parameters over the pipeline file's, style)
RUNS: dict[str, tuple[dict[str, Any], str]] = {
    'template/short': ({'generator': 'template'}, 'short'),
    'llm/short': ({}, 'short'),
    'llm/detailed': ({}, 'detailed'),
    'llm/json': ({}, 'json'),
    'llm-hybrid/short': ({'decoding': 'hybrid'}, 'short'),
    'llm-beam/short': ({'decoding': 'beam'}, 'short'),
    'llm-2threads/short': ({'n_threads': 2}, 'short'),
    'llm-vocabulary/short': ({'constraint': 'vocabulary'}, 'short'),
    'llm-free/short': ({'constraint': 'none'}, 'short'),
    # the compared model of issue 13: SmolLM2-135M-Instruct (chat template from its GGUF)
    'smollm2/short': ({'model': 'smollm2_135m_instruct_q4_1'}, 'short'),
}
DEFAULT_RUNS = ('template/short', 'llm/short', 'smollm2/short', 'llm/detailed', 'llm/json',
                'llm-vocabulary/short', 'llm-free/short')


def default_eval_dir() -> Path | None:
    root = repository_root()
    return root.parent / 'shared' / 'eval' if root is not None else None


def build_graphs(eval_dir: Path, params: dict, model_dir: str | None, limit: int,
                 log) -> list[dict]:
    """Run perception + scene graph on every eval image; ground truth beside each graph.

    The loop, the readers and the ground truth are the evaluation package's (the same as
    `make eval`): core/evaluation/harness.py, dataset.py, ground_truth.py.
    """
    pconf = stage_values(params, 'perception', PerceptionConfig)
    if model_dir:
        pconf['model_dir'] = model_dir
    harness = Harness(build_config(PerceptionConfig, pconf),
                      build_config(SceneGraphConfig,
                                   stage_values(params, 'scene_graph', SceneGraphConfig)),
                      EvalOptions(eval_dir))
    items = load_items(eval_dir)[:limit or None]
    out = []
    try:
        for n, frame in enumerate(harness.frames(items)):
            if frame.error:
                log(f'[eval] graph {n + 1}/{len(items)} {frame.item.id}: FAILED: {frame.error}')
                continue
            out.append({'item': frame.item.record, 'graph': frame.graph,
                        'gt': caption_ground_truth(frame.item),
                        'references': frame.item.references})
            log(f'[eval] graph {n + 1}/{len(items)} {frame.item.id}: '
                f'{len(frame.graph.objects)} objects')
    finally:
        harness.close()
    return out


def coco_references(frames: list[dict]) -> dict[int, list[str]]:
    """The COCO reference captions of the frames' images (read by the evaluation package)."""
    return {f['item']['coco_image_id']: f['references'] for f in frames if f['references']}


def coco_metrics(refs: dict[int, list[str]], texts: dict[int, str]) -> dict[str, float]:
    """BLEU-4, METEOR and CIDEr (pycocoevalcap; PTB tokenizer and METEOR run on java)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    ids = sorted(set(refs) & set(texts))
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{'caption': c} for c in refs[i]] for i in ids})
    res = tokenizer.tokenize({i: [{'caption': texts[i]}] for i in ids})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor, _ = Meteor().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {'images': len(ids), 'bleu4': bleu[3], 'meteor': meteor, 'cider': cider}


def evaluate_run(name: str, captioner: Captioner, style: str, frames: list[dict],
                 refs: dict[int, list[str]], with_coco: bool, log) -> dict[str, Any]:
    records, texts = [], {}
    spatial = {'decided': 0, 'true': 0}
    counts = {'decided': 0, 'true': 0}
    by_kind: dict[str, list[int]] = {}
    mentions = hallucinated = captions_with_hallucination = chair_captions = 0
    distance_errors: list[float] = []
    distance_claims = metric_captions = metric_with_distance = 0
    vsr = {'statements': 0, 'decided': 0, 'right': 0}
    for frame in frames:
        graph, gt, item = frame['graph'], frame['gt'], frame['item']
        caption = captioner.caption(graph, style)
        text = json.loads(caption.text)['text'] if style == STYLE_JSON else caption.text
        view = captioner.view(graph)
        judgements = judge_caption(text, view, gt)
        decided = vsr_decisions(text, view, gt)
        vsr['statements'] += len(gt.vsr)
        vsr['decided'] += len(decided)
        vsr['right'] += sum(decided.values())
        stated = sum(j.kind == 'distance' for j in judgements)
        distance_claims += stated
        if view.depth_metric and view.objects:
            metric_captions += 1
            metric_with_distance += int(stated > 0)
        distance_errors += [j.error for j in judgements
                            if j.kind == 'distance' and j.decided and j.error is not None]
        for j in judgements:
            bucket = spatial if j.spatial else counts
            if j.decided:
                bucket['decided'] += 1
                bucket['true'] += int(j.true)
                by_kind.setdefault(j.kind, [0, 0])
                by_kind[j.kind][0] += 1
                by_kind[j.kind][1] += int(j.true)
        if gt.decidable_classes != set():
            lexicon = NounLexicon({o.class_name for o in graph.objects})  # names, not counts
            m, h = chair(text, gt, lexicon)
            mentions, hallucinated = mentions + m, hallucinated + h
            chair_captions += 1
            captions_with_hallucination += int(h > 0)
        if 'coco_image_id' in item:
            texts[item['coco_image_id']] = text
        records.append({'id': item['id'], 'text': caption.text, 'verified': caption.verified,
                        'generator': caption.generator,
                        'fallback_reason': caption.fallback_reason,
                        'latency_s': round(caption.latency, 4),
                        'claims': [j.__dict__ for j in judgements]})
    stats = captioner.stats.snapshot()
    latencies = [r['latency_s'] for r in records]
    result = {
        'run': name, 'style': style, 'captions': len(records),
        'verified': sum(r['verified'] for r in records),
        'llm_attempts': stats['llm_attempts'], 'llm_verified': stats['llm_verified'],
        'generators': {k.split('.', 1)[1]: v for k, v in stats.items()
                       if k.startswith('generator.')},
        'fallback': {k.split('.', 1)[1]: v for k, v in stats.items()
                     if k.startswith('fallback.')},
        'spatial_claims': spatial, 'count_claims': counts, 'claims_by_kind': by_kind,
        'distance_claims': distance_claims,
        'distance_claims_per_caption': distance_claims / len(records) if records else
        float('nan'),
        'metric_captions': {'captions': metric_captions, 'with_distance': metric_with_distance},
        'distance_within_25': {
            'decided': len(distance_errors), 'within': sum(e <= 0.25 for e in distance_errors),
            'share': (sum(e <= 0.25 for e in distance_errors) / len(distance_errors)
                      if distance_errors else float('nan'))},
        'distance_median_error': statistics.median(distance_errors) if distance_errors else
        float('nan'),
        'vsr': vsr,
        'chair_i': hallucinated / mentions if mentions else float('nan'),
        'chair_s': captions_with_hallucination / chair_captions if chair_captions else
        float('nan'), 'mentions': mentions,
        'latency_p50_s': percentile(latencies, 50),
        'latency_p90_s': percentile(latencies, 90),
        'latency_mean_s': statistics.fmean(latencies) if latencies else float('nan'),
        'records': records,
    }
    if with_coco and texts:
        try:
            result['coco'] = coco_metrics(refs, texts)
        except (OSError, ImportError, RuntimeError, ValueError) as exc:
            result['coco'] = {'error': str(exc)}
    log(f'[eval] {name}: done')
    return result


def _pct(a: int, b: int) -> str:
    return f'{100.0 * a / b:.1f}% ({a}/{b})' if b else 'n/a (0)'


def _distances(r: dict) -> str:
    d, m = r['distance_within_25'], r['metric_captions']
    return (f"{r['distance_claims_per_caption']:.2f} | "
            f"{_pct(m['with_distance'], m['captions'])} | {_pct(d['within'], d['decided'])}, "
            f"median {100 * r['distance_median_error']:.0f} %")


def table(results: list[dict]) -> str:
    head = ('| run | verified | llm ok | fallbacks | spatial claims true | count claims true '
            '| CHAIR-i | CHAIR-s | BLEU-4 | METEOR | CIDEr | latency p50 / p90 '
            '| distances per caption | metric captions with a distance '
            '| distances within 25 % | VSR statements decided | VSR decided right |')
    lines = [head, '|' + '---|' * 17]
    for r in results:
        coco = r.get('coco') or {}
        fallbacks = ', '.join(f'{k} {v}' for k, v in sorted(r['fallback'].items())) or '-'
        lines.append(
            f"| {r['run']} | {_pct(r['verified'], r['captions'])} "
            f"| {_pct(r['llm_verified'], r['llm_attempts']) if r['llm_attempts'] else '-'} "
            f"| {fallbacks} "
            f"| {_pct(r['spatial_claims']['true'], r['spatial_claims']['decided'])} "
            f"| {_pct(r['count_claims']['true'], r['count_claims']['decided'])} "
            f"| {100 * r['chair_i']:.1f}% of {r['mentions']} | {100 * r['chair_s']:.1f}% "
            f"| {coco.get('bleu4', float('nan')):.3f} | {coco.get('meteor', float('nan')):.3f} "
            f"| {coco.get('cider', float('nan')):.3f} "
            f"| {r['latency_p50_s']:.2f} / {r['latency_p90_s']:.2f} s | {_distances(r)} "
            f"| {_pct(r['vsr']['decided'], r['vsr']['statements'])} "
            f"| {_pct(r['vsr']['right'], r['vsr']['decided'])} |")
    return '\n'.join(lines)


def _check_args(args: argparse.Namespace, eval_dir: Path) -> str:
    """Why these arguments cannot run (one line), or ''."""
    if not (eval_dir / 'index.jsonl').is_file():
        where = str(eval_dir) if str(eval_dir) not in ('', '.') else '(no ../shared/eval)'
        return f'--eval-dir {where}: no index.jsonl'
    if args.limit < 0:
        return f'--limit {args.limit}: must be 0 (every image) or more'
    unknown = [r for r in args.runs.split(',') if r not in RUNS]
    if unknown:
        return f'--runs: unknown {", ".join(unknown)}; known: {", ".join(RUNS)}'
    return ''


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='spatial-caption-eval-captions',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('--eval-dir', default=str(default_eval_dir() or ''),
                   help='folder in the ../shared/eval format (default: ../shared/eval)')
    p.add_argument('--config', default=None, help='parameter file (default: config/pipeline.yaml)')
    p.add_argument('--model-dir', default=None, help='detector model folder')
    p.add_argument('--runs', default=','.join(DEFAULT_RUNS),
                   help=f'comma-separated runs out of: {", ".join(RUNS)}')
    p.add_argument('--set', action='append', default=[], metavar='PARAM=VALUE',
                   help='caption parameter for every run, e.g. n_threads=1 or caption.n_threads=1 '
                        '(YAML value, checked)')
    p.add_argument('--pipeline-set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                   help='perception or scene_graph parameter, e.g. perception.depth_source='
                        'geometric (YAML value, checked)')
    p.add_argument('--limit', type=int, default=0, help='only the first N images')
    p.add_argument('--no-coco-metrics', action='store_true', help='skip pycocoevalcap (java)')
    p.add_argument('--output', default='output/caption_eval.json', help='JSON results file')
    p.add_argument('--quiet', action='store_true')
    args = p.parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    eval_dir = Path(args.eval_dir)
    problem = _check_args(args, eval_dir)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:        # every override checked (names, types, ranges) before minutes of work
        params = apply_sets(load_params(args.config), args.set, nodes=('caption',),
                            default_node='caption')
        params = apply_sets(params, args.pipeline_set, nodes=('perception', 'scene_graph'))
        base = stage_values(params, 'caption', CaptionConfig)
        build_config(CaptionConfig, base)
        make_output_folder(Path(args.output).parent)
    except SpatialCaptionError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        frames = build_graphs(eval_dir, params, args.model_dir, args.limit, log)
    except SpatialCaptionError as exc:
        print(f'cannot build the scene graphs: {exc}', file=sys.stderr)
        return 2
    refs = coco_references(frames)
    results: list[dict] = []
    out = Path(args.output)

    def save() -> None:
        summary = {
            'date': time.strftime('%Y-%m-%d'), 'eval_dir': str(eval_dir), 'images': len(frames),
            'cpu_count': os.cpu_count(), 'load_average': os.getloadavg(),
            'caption_parameters': base, 'pipeline_overrides': args.pipeline_set,
            'results': results,
        }
        out.write_text(json.dumps(summary, indent=1, default=str), encoding='utf-8')

    loaded: dict[tuple, Captioner] = {}      # one model per set of configure-time parameters
    for name in args.runs.split(','):
        overrides, style = RUNS[name]
        config = build_config(CaptionConfig, {**base, **overrides})
        key = tuple(getattr(config, f.name) for f, info in param_fields(CaptionConfig)
                    if info.when == CONFIGURE)
        if key not in loaded:
            t0 = time.perf_counter()
            loaded[key] = Captioner(config)
            log(f'[eval] captioner ready in {time.perf_counter() - t0:.2f} s: '
                f'{loaded[key].describe()}')
        captioner = loaded[key]
        captioner.config = config
        captioner.stats = type(captioner.stats)()
        results.append(evaluate_run(name, captioner, style, frames, refs,
                                    not args.no_coco_metrics and style != STYLE_JSON, log))
        save()                       # partial results survive an interrupted run
    for captioner in loaded.values():
        captioner.close()
    depth = frames[0]['graph'].depth_source if frames else '?'
    print(f'{len(frames)} images from {eval_dir}; depth source {depth}; load average at the '
          f'end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
    print(table(results))
    log(f'[eval] details in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
