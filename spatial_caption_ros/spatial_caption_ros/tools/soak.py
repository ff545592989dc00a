"""Soak test: a camera at a fixed rate through the real node graph for a long time, measured.

Starts the graph as separate processes (so each node's resident memory can be sampled), feeds it
frames from a folder in a loop at --rate (free running: the stages must keep up or drop stale
frames), and reports what a robot team wants to know after hours in the field:

- resident memory of every node after warm-up and at the end (growth in %),
- the age of each published scene graph (receipt time - source image stamp) against the frame
  processing time (perception + scene graph),
- how many frames were published, processed, dropped as stale, rejected or failed, per node,
- queue bound: with latest-only inputs the backlog can never exceed one frame per stage.

`spatial-caption-soak --duration 600 --rate 30` is the 10-minute run of the README.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import signal
import statistics
import sys
import threading
import time

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.inputs.sources import FrameSource
from spatial_caption_ros.core.perception.models import shared_path
from spatial_caption_ros.core.runtime.monitoring import percentile
from spatial_caption_ros.params_file import apply_sets, dump_params, load_params, section
from spatial_caption_ros.ros.graph import prepare_environment

SAMPLE_PERIOD_S = 5.0
MEMORY_WINDOW_S = 60.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='spatial-caption-soak', description=__doc__.split('\n\n')[0])
    p.add_argument('--duration', type=float, default=600.0, help='seconds of load (default 600)')
    p.add_argument('--warmup', type=float, default=60.0,
                   help='seconds before the memory baseline is taken (default 60)')
    p.add_argument('--rate', type=float, default=30.0, help='camera frames per second (30)')
    p.add_argument('--input', default=shared_path('data', 'images'),
                   help='folder of images, played in a loop (default ../shared/data/images)')
    p.add_argument('--config', default=None, help='parameter file (default config/pipeline.yaml)')
    p.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE')
    p.add_argument('--output', default='output/soak', help='report folder (default output/soak)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.config)
        FrameSource(Path(args.input or '').resolve())    # a folder with images (or a video)
        section(params, 'image_source').update(source=str(Path(args.input).resolve()),
                                               rate=args.rate, loop=True, pace_on='')
        apply_sets(params, args.set)
    except ConfigError as exc:
        print(f'[soak] error: {exc}', file=sys.stderr)
        return 2
    env = prepare_environment('localhost')
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    params_file = out / 'params.yaml'
    params_file.write_text(dump_params(params), encoding='utf-8')

    import psutil
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from spatial_caption_interfaces.msg import Caption, DetectionArray, SceneGraph

    from spatial_caption_ros.ros.conversions import stamp_to_ns
    from spatial_caption_ros.ros.graph import GRAPH_NODES, spawn_node, stop_processes
    from spatial_caption_ros.ros.qos import qos_profile

    # Ctrl-C and SIGTERM end the load and still write the report (the node processes run in
    # sessions of their own: without this a SIGTERM would leave them running).
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('soak_monitor')
    stats = {'detections': 0, 'graphs': 0, 'captions': 0, 'captions_verified': 0}
    generators: dict[str, int] = {}
    ages: list[float] = []          # seconds, scene graph receipt - image stamp
    processing: list[float] = []    # seconds, perception + scene graph processing per graph
    received_at: list[float] = []   # seconds since the start
    diagnostics: dict[str, dict[str, str]] = {}
    failures: dict[str, str] = {}       # node -> why its configure failed
    started = time.time()

    def on_graph(msg: SceneGraph) -> None:
        stats['graphs'] += 1
        if time.time() - started > args.warmup:
            now = time.time()
            ages.append(now - stamp_to_ns(msg.header.stamp) / 1e9)
            processing.append(float(msg.processing_latency))
            received_at.append(now - started)

    input_age: dict[str, list[tuple[float, float]]] = {}   # node -> (mean, max) per message

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            diagnostics[status.name] = values
            if status.level == status.ERROR and status.message.startswith('configure failed'):
                failures[status.name] = values.get('last_error', status.message)
            age = values.get('time_ms.input_age', '').split()
            if len(age) == 6 and time.time() - started > args.warmup:   # last X mean Y max Z
                input_age.setdefault(status.name.rsplit('/', 1)[-1], []).append(
                    (float(age[3]), float(age[5])))

    def count(key: str):
        def callback(_msg) -> None:
            stats[key] += 1
        return callback

    # Camera frames are counted from the image source's diagnostics, not by subscribing here:
    # deserialising 30 images a second in this process would take CPU from the nodes measured.
    node.create_subscription(DetectionArray, 'detections', count('detections'),
                             qos_profile('reliable'))
    node.create_subscription(SceneGraph, 'scene_graph', on_graph, qos_profile('reliable'))
    def on_caption(msg: Caption) -> None:
        stats['captions'] += 1
        stats['captions_verified'] += bool(msg.verified)
        generators[msg.generator] = generators.get(msg.generator, 0) + 1

    node.create_subscription(Caption, 'caption', on_caption, qos_profile('reliable'))
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)

    logs = [open(out / f'{name}.log', 'w', encoding='utf-8') for name in GRAPH_NODES]
    procs = {name: spawn_node(name, params_file, None, env, log)
             for name, log in zip(GRAPH_NODES, logs, strict=True)}
    memory: dict[str, list[tuple[float, float]]] = {name: [] for name in GRAPH_NODES}
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    print(f'[soak] {args.duration:.0f} s at {args.rate:.0f} Hz from {args.input}; '
          f'ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]}; report in {out}', file=sys.stderr)
    next_sample = time.time()
    try:
        while time.time() - started < args.duration and not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
            if failures:
                raise RuntimeError('; '.join(f'{name}: configure failed: {why}'
                                             for name, why in sorted(failures.items())))
            if time.time() >= next_sample:
                next_sample += SAMPLE_PERIOD_S
                t = time.time() - started
                for name, p in procs.items():
                    if p.poll() is not None:
                        raise RuntimeError(f'node {name} exited with code {p.returncode}')
                    rss = psutil.Process(p.pid).memory_info().rss / 2**20
                    memory[name].append((t, rss))
                camera = next((v.get('processed', '?') for k, v in diagnostics.items()
                               if k.endswith('/image_source')), '?')
                print(f'[soak] t={t:5.0f} s images={camera} graphs={stats["graphs"]} '
                      f'captions={stats["captions"]} rss(MB)=' + ' '.join(
                          f'{n}:{memory[n][-1][1]:.0f}' for n in GRAPH_NODES), file=sys.stderr)
    except RuntimeError as exc:
        print(f'[soak] FAILED: {exc}', file=sys.stderr)
        code = 1
    finally:
        if stop.is_set():
            print('[soak] interrupted: reporting what was measured', file=sys.stderr)
        stop_processes(list(procs.values()))
        for log in logs:
            log.close()
        node.destroy_node()
        rclpy.try_shutdown()

    elapsed = time.time() - started
    stats['captions_by_generator'] = generators
    report = {'duration_s': round(elapsed, 1), 'rate_hz': args.rate, 'counts': stats,
              'memory_mb': {}, 'scene_graph_age_s': {}, 'nodes': {}}
    for name, samples in memory.items():
        after = [(t, rss) for t, rss in samples if t >= args.warmup]
        if len(after) >= 2:
            # RSS swings by a few % from frame to frame (image buffers come and go): compare the
            # median of the first minute after warm-up with the median of the last minute
            first = [rss for t, rss in after if t < after[0][0] + MEMORY_WINDOW_S]
            last = [rss for t, rss in after if t > after[-1][0] - MEMORY_WINDOW_S]
            start, end = statistics.median(first), statistics.median(last)
            report['memory_mb'][name] = {
                'first_minute_median': round(start, 1), 'last_minute_median': round(end, 1),
                'min': round(min(r for _, r in after), 1),
                'max': round(max(r for _, r in after), 1),
                'growth_pct': round(100.0 * (end - start) / start, 2)}
    if ages:
        # each graph's age against its own processing time (perception + scene graph, from the
        # message): the backlog a latest-only design allows is under one camera period
        ratios = [a / p for a, p in zip(ages, processing, strict=True) if p > 0]
        excess = [a - p for a, p in zip(ages, processing, strict=True)]
        report['scene_graph_age_s'] = {
            'n': len(ages), 'p50': round(percentile(ages, 50), 4),
            'p95': round(percentile(ages, 95), 4), 'max': round(max(ages), 4),
            'processing_time_p50': round(percentile(processing, 50), 4),
            'processing_time_mean': round(statistics.fmean(processing), 4),
            'age_over_processing_p50': round(percentile(ratios, 50), 2),
            'age_over_processing_p95': round(percentile(ratios, 95), 2),
            'age_over_processing_p99': round(percentile(ratios, 99), 2),
            'age_over_processing_max': round(max(ratios), 2),
            'graphs_over_2x': sum(r >= 2.0 for r in ratios),
            # what the age holds besides processing: the wait for the worker (at most one camera
            # period with a latest-only slot), transport and scheduling
            'age_minus_processing_ms_p50': round(1e3 * percentile(excess, 50), 1),
            'age_minus_processing_ms_p95': round(1e3 * percentile(excess, 95), 1),
            'camera_period_ms': round(1e3 / args.rate, 1)}
    for name, values in diagnostics.items():
        report['nodes'][name] = {k: v for k, v in values.items()
                                 if k.split('.')[0] in ('received', 'processed', 'dropped_stale',
                                                        'rejected', 'errors', 'superseded',
                                                        'in_flight',
                                                        'input_rate_hz', 'published',
                                                        'state', 'backend', 'depth_source')}
    # how old each node's inputs were when their processing started (its diagnostics, windows
    # of the last 100 inputs): where the age of a scene graph beyond its processing comes from
    report['input_age_at_processing_start_ms'] = {
        name: {'mean': round(statistics.fmean(m for m, _ in v), 1),
               'max': round(max(x for _, x in v), 1)}
        for name, v in sorted(input_age.items())}
    for values in report['nodes'].values():
        # every input received was processed, dropped as stale, rejected or failed; the rest
        # is in flight (StageCounters.in_flight: the slot and the frame being processed)
        if 'in_flight' in values:
            values['in_flight_at_end'] = int(values.pop('in_flight'))
    with open(out / 'scene_graphs.csv', 'w', encoding='utf-8') as f:
        f.write('t_s,age_s,processing_s\n')
        f.writelines(f'{t:.3f},{a:.4f},{p:.4f}\n'
                     for t, a, p in zip(received_at, ages, processing, strict=True))
    (out / 'report.json').write_text(json.dumps(report, indent=1), encoding='utf-8')
    print(json.dumps(report, indent=1))
    growth_ok = all(m['growth_pct'] < 5.0 for m in report['memory_mb'].values())
    age = report['scene_graph_age_s']
    age_ok = bool(age) and age['graphs_over_2x'] == 0
    print('[soak] memory growth after warm-up: ' + ', '.join(
        f'{n} {m["growth_pct"]:+.2f} %' for n, m in report['memory_mb'].items())
        + f' (< 5 %: {"yes" if growth_ok else "NO"})', file=sys.stderr)
    if age:
        print(f'[soak] scene graph age / its processing time: p50 {age["age_over_processing_p50"]}'
              f', p95 {age["age_over_processing_p95"]}, max {age["age_over_processing_max"]}; '
              f'{age["graphs_over_2x"]} of {age["n"]} graphs at 2x or more '
              f'(< 2x: {"yes" if age_ok else "NO"})', file=sys.stderr)
    return code


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    sys.exit(main())
