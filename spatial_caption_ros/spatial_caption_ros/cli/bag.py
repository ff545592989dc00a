"""Caption rosbag2 recordings (sqlite3 or MCAP) offline, without a ROS install or DDS.

Each recording's colour, depth, camera_info and tf topics are found by type (or given by name),
its frames run through the same core stages as the nodes (perception, scene graph, caption), and
<output>/<recording>/ gets the runner's files (captions.jsonl, scene_graphs/, annotated/), an
MCAP recording of the outputs (captioned/: scene graphs, captions, markers, annotated images,
camera_info and tf, stamped with the source stamps) and summary.json; <output>/report.html is a
self-contained report of the run.

Running the same command again resumes an interrupted run: finished frames are kept, the rest
are processed. --ray local|ADDRESS spreads recordings (and --chunk-frames chunks) over Ray.

Exit codes: 0 every recording processed (frames skipped for bad data and damage read around
are named on stderr, in summary.json and the report); 1 a recording could not be opened or
gave no frame, or the pipeline could not start; 2 bad command line, parameter file, --set or
--output (one line says what, nothing was run); 130 interrupted (run again to resume).
"""

from __future__ import annotations

import argparse
from datetime import datetime, UTC
import hashlib
import json
from pathlib import Path
import sys
import time
from typing import Any, TextIO

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.runtime.outputs import make_output_folder
from spatial_caption_ros.params_file import (
    apply_sets, dump_params, load_params, parse_set, section)

RUN_FILE = 'run.json'          # <output>/: frames and timings of the last run
RESUME_FILE = 'options.json'   # <output>/<recording>/: what its results were made with
# Exit codes (module docstring, docs/recordings.md).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Progress:
    """A progress bar with rate and ETA on a terminal; a line every 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.total, self.done, self.stream, self.quiet = total, 0, stream, quiet
        self.start = time.monotonic()
        self.tty = stream.isatty()
        self._last_decile = -1

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float('nan')
        eta = time.strftime('%H:%M:%S', time.gmtime(left)) if left == left else '--:--:--'
        share = self.done / self.total if self.total else 1.0
        bar = '#' * int(30 * share)
        return (f'[bag] [{bar:<30}] {self.done}/{self.total} frames ({100 * share:.0f}%) '
                f'{rate:.2f} frames/s ETA {eta}')

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.quiet:
            return
        if self.tty:
            self.stream.write('\r' + self.line())
            self.stream.flush()
        elif int(10 * self.done / max(1, self.total)) != self._last_decile:
            self._last_decile = int(10 * self.done / max(1, self.total))
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write('\n')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='spatial-caption-bag', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('inputs', nargs='+', metavar='INPUT',
                   help='rosbag2 folder (metadata.yaml + .db3/.mcap) or a single .mcap/.db3 file')
    p.add_argument('--output', required=True, help='output folder')
    p.add_argument('--config', default=None,
                   help='parameter file of the nodes (default: config/pipeline.yaml)')
    p.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                   help='override one parameter, e.g. perception.confidence_threshold=0.4')
    p.add_argument('--model-dir', default=None, help='model folder for perception and caption')
    p.add_argument('--image-topic', default=None,
                   help='colour topic (Image or CompressedImage; default: found by type)')
    p.add_argument('--depth-topic', default=None,
                   help='aligned depth Image topic (default: an Image topic named *depth*)')
    p.add_argument('--camera-info-topic', default=None,
                   help='CameraInfo topic (default: the one beside the colour topic)')
    p.add_argument('--every', type=int, default=1, metavar='N',
                   help='process every Nth colour frame (default: every frame)')
    p.add_argument('--rate', type=float, default=0.0, metavar='HZ',
                   help='process at most this many frames per second of recording (default: all)')
    p.add_argument('--chunk-frames', type=int, default=0, metavar='N',
                   help='split recordings into chunks of N processed frames, each a new '
                        'sequence (fresh tracker) and, with --ray, a task of its own '
                        '(default 0: a recording is one chunk)')
    p.add_argument('--restart', action='store_true',
                   help='discard the results of an earlier run in --output instead of resuming')
    p.add_argument('--ray', default=None, metavar='local|ADDRESS',
                   help='run chunks as Ray tasks: local (a Ray started here) or the address '
                        'of a running Ray cluster (needs `pip install ray`)')
    p.add_argument('--workers', type=int, default=2,
                   help='CPUs of the local Ray (--ray local; default 2)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    args = p.parse_args(argv)
    if args.every < 1 or args.rate < 0 or args.chunk_frames < 0 or args.workers < 1:
        p.error('--every and --workers must be >= 1; --rate and --chunk-frames >= 0')
    return args


def build_params(args: argparse.Namespace) -> tuple[dict[str, Any], frozenset[str]]:
    """The parameter file's content with --model-dir and the --set overrides (checked).

    Also returns the 'node.param' names that --set gave. Raises ConfigError saying what is wrong.
    """
    params = load_params(args.config)
    if args.model_dir:
        folder = str(Path(args.model_dir).expanduser().resolve())
        section(params, 'perception')['model_dir'] = folder
        section(params, 'caption')['model_dir'] = folder
    apply_sets(params, args.set)
    return params, frozenset(f'{node}.{name}' for node, name, _ in map(parse_set, args.set))


def _fingerprint(options: Any, params: dict[str, Any]) -> str:
    text = json.dumps({'options': {k: v for k, v in vars(options).items() if k != 'params'},
                       'params': params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _folders(paths: list[str]) -> list[str]:
    """A distinct output sub-folder name per input (name, name_2, ...)."""
    seen: dict[str, int] = {}
    out = []
    for path in paths:
        p = Path(path)
        name = p.stem if p.is_file() else p.name
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f'{name}_{seen[name]}')
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output)
    try:
        params, explicit = build_params(args)
        make_output_folder(out)
    except ConfigError as exc:
        print(f'[bag] error: {exc}', file=sys.stderr)
        return EXIT_USAGE
    from spatial_caption_ros.bag.processor import (
        effective_params, plan_recording, process_chunk, RunOptions, Stages)
    from spatial_caption_ros.bag.reader import RecordingError
    from spatial_caption_ros.bag.session import RecordingOutput, REPORT_FILE
    from spatial_caption_ros.core.errors import SpatialCaptionError
    from spatial_caption_ros.core.visualization.report import recording_section, render_report

    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    # 16UC1 depth unit: --set perception.depth_image_scale wins over the recording's metadata
    unit = (float(section(params, 'perception')['depth_image_scale'])
            if 'perception.depth_image_scale' in explicit else 0.0)
    options = RunOptions(args.image_topic, args.depth_topic, args.camera_info_topic, args.every,
                         args.rate, args.chunk_frames, unit, params)
    failed: list[str] = []
    jobs = []            # (plan, output, effective params)
    # wall and CPU seconds (CPU: every thread of this process, the models' included)
    timing = {'plan_s': 0.0, 'load_s': 0.0, 'process_s': 0.0, 'finish_s': 0.0}
    cpu = dict(timing)
    t_plan, c_plan = time.perf_counter(), time.process_time()
    for path, folder in zip(args.inputs, _folders(args.inputs), strict=True):
        try:
            plan = plan_recording(path, options)
        except RecordingError as exc:
            failed.append(str(exc))
            print(f'[bag] {exc}', file=sys.stderr)
            continue
        eff = effective_params(params, explicit)
        folder_path = out / folder
        folder_path.mkdir(parents=True, exist_ok=True)
        fingerprint = _fingerprint(options, eff)
        run_file = folder_path / RESUME_FILE
        previous = json.loads(run_file.read_text()) if run_file.exists() else {}
        resume = not args.restart and previous.get('fingerprint') == fingerprint
        if previous and not resume and not args.restart:
            plan.warnings.append('results of an earlier run with other options or parameters '
                                 'were discarded')
        run_file.write_text(json.dumps({'fingerprint': fingerprint, 'recording': path}))
        output = RecordingOutput(folder_path, plan, resume)
        if output.resumed:
            log(f'[bag] {plan.name}: resuming, {output.resumed} frames already finished')
        for problem in [*plan.problems, *plan.warnings]:
            print(f'[bag] {plan.name}: {problem}', file=sys.stderr)
        log(f'[bag] {plan.name} ({plan.storage}): {len(plan.selected)} of '
            f'{len(plan.frame_times)} frames from {plan.topics.image}; depth '
            f'{plan.topics.depth or "none"}; camera_info {plan.topics.camera_info or "none"}')
        jobs.append((plan, output, eff))
    timing['plan_s'], cpu['plan_s'] = (time.perf_counter() - t_plan,
                                       time.process_time() - c_plan)
    total = sum(len(p.selected) - len(o.done) for p, o, _ in jobs)
    progress = Progress(total, quiet=args.quiet)
    t0, c0 = time.perf_counter(), time.process_time()
    outputs = {id(plan): output for plan, output, _ in jobs}
    describe: dict[str, str] = {}
    try:
        if args.ray:
            from spatial_caption_ros.bag.distributed import ray_init, run_on_ray
            ray = ray_init(args.ray, args.workers)
            timing['load_s'] = time.perf_counter() - t0     # Ray start (models load in tasks)
            cpu['load_s'] = time.process_time() - c0
            tasks = [(plan, chunk, eff, set(output.done))
                     for plan, output, eff in jobs for chunk in plan.chunks
                     if set(chunk) - set(output.done)]

            def on_record(plan, record) -> None:
                outputs[id(plan)].add(record)
                progress.update()
            run_on_ray(ray, tasks, on_record)
            ray.shutdown()
        else:
            stages: dict[str, Stages] = {}
            for plan, output, eff in jobs:
                if not set(plan.selected) - set(output.done):
                    continue                  # finished in an earlier run: nothing to load
                key = json.dumps(eff, sort_keys=True)
                if key not in stages:
                    t_load, c_load = time.perf_counter(), time.process_time()
                    stages[key] = Stages(eff)
                    timing['load_s'] += time.perf_counter() - t_load
                    cpu['load_s'] += time.process_time() - c_load
                describe = stages[key].describe()
                for chunk in plan.chunks:
                    for record in process_chunk(plan, chunk, stages[key], set(output.done)):
                        output.add(record)
                        progress.update()
            for s in stages.values():
                s.close()
    except KeyboardInterrupt:
        progress.close()
        print(f'\n[bag] interrupted; run the same command again to resume ({progress.done} '
              'frames of this run are kept)', file=sys.stderr)
        return EXIT_INTERRUPTED
    except SpatialCaptionError as exc:
        progress.close()
        print(f'[bag] cannot run the pipeline: {exc}', file=sys.stderr)
        return EXIT_FAILED
    progress.close()
    elapsed = time.perf_counter() - t0
    timing['process_s'] = elapsed - timing['load_s']
    cpu['process_s'] = time.process_time() - c0 - cpu['load_s']
    t_finish, c_finish = time.perf_counter(), time.process_time()
    sections, code = [], EXIT_FAILED if failed else EXIT_OK
    for plan, output, _ in jobs:
        summary = output.finish()
        sections.append(recording_section(summary, output.frame_metas(), output.keyframes()))
        if not summary['processed']:
            code = EXIT_FAILED
        log(f'[bag] {plan.name}: {summary["processed"]} frames processed, '
            f'{summary["skipped_frames"]} skipped, {len(summary["skipped"])} items skipped in '
            f'all; {output.dir}')
    info = {'date (UTC)': datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S'),
            'command': ' '.join(['spatial-caption-bag', *(argv if argv is not None
                                                          else sys.argv[1:])]),
            'recordings': f'{len(jobs)} processed, {len(failed)} could not be opened',
            'frames this run': f'{progress.done} in {elapsed:.1f} s (models or Ray started in '
                               f'{timing["load_s"]:.1f} s of it)',
            'executor': f'ray {args.ray} ({args.workers} workers)' if args.ray else 'local'}
    info.update({f'pipeline: {k}': v for k, v in describe.items()})
    report = render_report({'info': info, 'warnings': failed, 'params': dump_params(params)},
                           sections)
    (out / REPORT_FILE).write_text(report, encoding='utf-8')
    timing['finish_s'] = time.perf_counter() - t_finish
    cpu['finish_s'] = time.process_time() - c_finish
    (out / RUN_FILE).write_text(json.dumps({'frames': progress.done, 'timing_s': timing,
                                            'cpu_s': cpu, 'failed': failed}, indent=1),
                                encoding='utf-8')
    log(f'[bag] report: {out / REPORT_FILE}')
    return code


if __name__ == '__main__':
    sys.exit(main())
