"""Benchmark LLM caption latency: configurations side by side, interleaved, on the eval graphs.

Builds the scene graphs of ../shared/eval once (the caption evaluation's pipeline), then
captions every graph with every configuration, one after another per graph (the order rotates
from graph to graph), so all configurations see the same machine load. Each configuration has
its own model and context, so its prompt-prefix cache holds the previous graph's prompt, as in a
node (the first graph's caption warms each up, untimed). Printed per configuration: caption
latency p50 / p90 / mean over the graphs with objects to caption (Caption.latency: plan, LLM,
verifier), llama_decode calls and tokens evaluated (prompt after the cached prefix, fed and
generated tokens) per caption, captions the LLM wrote that verified, all verified captions,
and captions whose text differs from the first configuration's. Figures are this machine's,
measured now; nothing is asserted.

  python -m spatial_caption_ros.tools.bench_captions --limit 30 unforced forced
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import statistics
import sys
import time

from spatial_caption_ros.cli.evaluate_captions import build_graphs, default_eval_dir
from spatial_caption_ros.core.captioning.captioner import CaptionConfig, Captioner
from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.runtime.monitoring import percentile
from spatial_caption_ros.core.types import GENERATOR_LLM
from spatial_caption_ros.params_file import apply_sets, load_params, stage_values

# name -> (caption parameters, LlamaModel attributes)
CONFIGURATIONS: dict[str, tuple[dict, dict]] = {
    'forced': ({}, {}),                                   # the default
    'unforced': ({}, {'force_spans': False}),             # one decode step per token
    'beam': ({'decoding': 'beam'}, {}),
    'hybrid': ({'decoding': 'hybrid'}, {}),
    'template': ({'generator': 'template'}, {}),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='bench_captions', description=__doc__.split('\n\n')[0])
    p.add_argument('configurations', nargs='*', default=['unforced', 'forced'],
                   help=f'out of: {", ".join(CONFIGURATIONS)} (default: unforced forced)')
    p.add_argument('--eval-dir', default=str(default_eval_dir() or ''))
    p.add_argument('--style', default='short', choices=('short', 'detailed', 'json'))
    p.add_argument('--limit', type=int, default=0, help='only the first N eval images')
    p.add_argument('--set', action='append', default=['n_threads=1'], metavar='PARAM=VALUE',
                   help='caption parameter for every configuration (default n_threads=1)')
    args = p.parse_args(argv)
    unknown = [c for c in args.configurations if c not in CONFIGURATIONS]
    if unknown or not args.configurations:
        print(f'unknown configuration {unknown}; out of {", ".join(CONFIGURATIONS)}',
              file=sys.stderr)
        return 2
    try:
        params = apply_sets(load_params(None), args.set, nodes=('caption',),
                            default_node='caption')
        base = stage_values(params, 'caption', CaptionConfig)
        print(f'[bench] building the scene graphs of {args.eval_dir}', file=sys.stderr)
        frames = build_graphs(Path(args.eval_dir), params, None, args.limit, lambda *a: None)
    except SpatialCaptionError as exc:
        print(exc, file=sys.stderr)
        return 2
    captioners: dict[str, Captioner] = {}
    for name in args.configurations:
        overrides, attributes = CONFIGURATIONS[name]
        captioners[name] = Captioner(build_config(CaptionConfig, {**base, **overrides}))
        if captioners[name].llm is not None:
            for key, value in attributes.items():
                setattr(captioners[name].llm, key, value)
    names = list(captioners)
    warm = next((f['graph'] for f in frames if captioners[names[0]].view(f['graph']).objects),
                None)
    for captioner in captioners.values():      # the one-off first prompt is not timed
        if warm is not None:
            captioner.caption(warm, args.style)
    work = {n: (c.llm.decodes, c.llm.tokens_evaluated) if c.llm else (0, 0)
            for n, c in captioners.items()}
    load_start = os.getloadavg()
    latency = {n: [] for n in names}
    llm_ok = dict.fromkeys(names, 0)
    verified = dict.fromkeys(names, 0)
    differs = dict.fromkeys(names, 0)
    worded = 0
    t0 = time.perf_counter()
    for k, frame in enumerate(frames):
        texts = {}
        for name in names[k % len(names):] + names[:k % len(names)]:
            caption = captioners[name].caption(frame['graph'], args.style)
            texts[name] = caption.text
            verified[name] += caption.verified
            if captioners[name].view(frame['graph']).objects:     # the LLM had words to write
                latency[name].append(caption.latency)
                llm_ok[name] += caption.generator == GENERATOR_LLM
        worded += bool(captioners[names[0]].view(frame['graph']).objects)
        for name in names:
            differs[name] += texts[name] != texts[names[0]]
        print(f'[bench] {k + 1}/{len(frames)}', file=sys.stderr, end='\r')
    for name, captioner in captioners.items():
        if captioner.llm is not None:
            work[name] = (captioner.llm.decodes - work[name][0],
                          captioner.llm.tokens_evaluated - work[name][1])
        captioner.close()
    print(f'{len(frames)} eval graphs ({worded} with objects to caption), style {args.style}, '
          f'{", ".join(args.set)}; {time.strftime("%Y-%m-%d %H:%M")}; {os.cpu_count()} cores, '
          f'load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end '
          f'({time.perf_counter() - t0:.0f} s)')
    print('| configuration | p50 s | p90 s | mean s | decodes / caption | tokens evaluated / '
          f'caption | LLM verified | all verified | text differs from {names[0]} |')
    print('|---|---|---|---|---|---|---|---|---|')
    for name in names:
        lat = latency[name]
        print(f'| {name} | {percentile(lat, 50):.3f} | {percentile(lat, 90):.3f} | '
              f'{statistics.fmean(lat) if lat else float("nan"):.3f} | '
              f'{work[name][0] / max(worded, 1):.1f} | {work[name][1] / max(worded, 1):.1f} | '
              f'{llm_ok[name]}/{worded} | '
              f'{verified[name]}/{len(frames)} | {differs[name]}/{len(frames)} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
