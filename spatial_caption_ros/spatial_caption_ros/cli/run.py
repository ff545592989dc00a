"""Run the whole spatial_caption_ros graph without a ROS install, from one parameter file.

Folder, image or video input: the image source node publishes every frame (paced by the caption
node, so none is skipped), each caption is printed, and annotated images, scene graphs (JSON) and
captions go to the output folder; the run ends by itself after the last frame.
Live input (--input topic:/camera/image_raw): the graph subscribes to that topic (camera_info
beside it unless --camera-info) and runs until Ctrl-C (or --max-frames).

Same graph as the launch files: the nodes of ros/graph.py with the same names, one parameter file
and the same camera remaps, as processes (--mode processes) or in one process. Ctrl-C stops every
node cleanly (children first get SIGINT, as `ros2 launch` does) and exits with 0.

ROS traffic stays on this machine by default (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a
random ROS_DOMAIN_ID unless set); --discovery subnet lets a live camera on the network in.
Fast DDS gets the shipped large-image profile (config/fastdds_large_images.xml) unless
FASTDDS_DEFAULT_PROFILES_FILE or FASTDDS_BUILTIN_TRANSPORTS is already set, or --dds-profile none.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Any

from spatial_caption_ros.core.perception.models import default_model_dir, shared_path
from spatial_caption_ros.params_file import apply_sets, dump_params, load_params, section
from spatial_caption_ros.ros.graph import camera_remaps, prepare_environment

DEFAULT_OUTPUT = 'output'
# Seconds the runner keeps receiving after Ctrl-C or the end, for outputs already in flight.
SHUTDOWN_GRACE_S = 2.0


# Image readers in a batch run: perception, visualization and the runner's collector.
BATCH_IMAGE_READERS = 3


def default_input() -> str | None:
    """../shared/data/images beside the repository, when present."""
    images = shared_path('data', 'images')
    return str(images) if images is not None else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='spatial-caption-run', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--input', default=default_input(),
                   help='folder of images, image file, video file, or topic:<image topic> '
                        '(default: ../shared/data/images when present)')
    p.add_argument('--camera-info', default=None, metavar='TOPIC',
                   help='CameraInfo topic of a live camera (default: camera_info beside the '
                        'image topic)')
    p.add_argument('--depth', default=None, metavar='TOPIC',
                   help='aligned depth image topic of a live camera (optional)')
    p.add_argument('--output', default=DEFAULT_OUTPUT, help='output folder (default: output)')
    p.add_argument('--config', default=None,
                   help='parameter file for every node (default: config/pipeline.yaml)')
    p.add_argument('--model-dir', default=None,
                   help=f'model folder (default: {default_model_dir()})')
    p.add_argument('--mode', choices=('inprocess', 'processes'), default='inprocess',
                   help='all nodes in one process (MultiThreadedExecutor) or one process each')
    p.add_argument('--rate', type=float, default=None,
                   help='frames per second from the image source (default: the config value)')
    p.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                   help='override one parameter, e.g. perception.confidence_threshold=0.4 '
                        '(value parsed as YAML)')
    p.add_argument('--max-frames', type=int, default=0, help='stop after this many captions')
    p.add_argument('--timeout', type=float, default=600.0,
                   help='give up after this many seconds without finishing (default 600)')
    p.add_argument('--discovery', choices=('localhost', 'subnet'), default='localhost',
                   help='ROS discovery range (default localhost: no traffic leaves the machine)')
    p.add_argument('--dds-profile', default=None, metavar='XML|none',
                   help='Fast DDS profile for every node (default: the shipped '
                        'config/fastdds_large_images.xml; none: Fast DDS defaults)')
    p.add_argument('--quiet', action='store_true', help='print only the captions')
    return p.parse_args(argv)


def build_params(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str], bool]:
    """The effective parameter file content, topic remaps, and whether the input is a topic."""
    params = load_params(args.config)

    remaps: dict[str, str] = {}
    live = bool(args.input) and args.input.startswith('topic:')
    if live:
        remaps = camera_remaps(args.input[len('topic:'):], args.camera_info, args.depth)
    else:
        if not args.input:
            raise SystemExit('no --input given and ../shared/data/images is not there')
        src = section(params, 'image_source')
        src['source'] = str(Path(args.input).expanduser().resolve())
        src['pace_on'] = 'caption'
        src['loop'] = False
        # Started by the runner once every stage is connected, so no frame is lost to discovery.
        src['autostart'] = False
        # ...and publishes each frame only once its own publisher has matched every image
        # reader: perception, visualization and the collector.
        src['min_subscribers'] = BATCH_IMAGE_READERS
        if args.rate:
            src['rate'] = float(args.rate)
        # Every published frame must reach the perception and visualization nodes in a batch
        # run. Discovery is not symmetric: the source may have matched a reader before that
        # reader has matched the source, and a volatile reader misses what came before. Latched
        # (reliable, transient local, newest one) closes that gap: the frame waits in the
        # source's history; the caption paces the source, so only one frame is ever in flight.
        src['output_qos'] = 'latched'
        section(params, 'perception')['input_qos'] = 'latched'
        section(params, 'visualization')['image_qos'] = 'latched'
    if args.model_dir:
        model_dir = Path(args.model_dir).expanduser().resolve()
        section(params, 'perception')['model_dir'] = str(model_dir)
    apply_sets(params, args.set)
    return params, remaps, live


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = prepare_environment(args.discovery, args.dds_profile)
    params, remaps, live = build_params(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    params_file = out / 'params.yaml'
    params_file.write_text(dump_params(params), encoding='utf-8')

    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from spatial_caption_ros.core.runtime.outputs import FrameOutputWriter
    from spatial_caption_ros.ros.collector import FrameResult, ResultCollector
    from spatial_caption_ros.ros.spin import spin_once
    from spatial_caption_ros.ros.graph import (
        create_nodes, GRAPH_NODES, spawn_node, start_source_when_connected, stop_processes,
        wait_until_connected)

    names = [n for n in GRAPH_NODES if not (live and n == 'image_source')]
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    log(f'[run] ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]} '
        f'discovery={env["ROS_AUTOMATIC_DISCOVERY_RANGE"]} mode={args.mode}')
    log(f'[run] input={args.input} output={out.resolve()} params={params_file}')
    outputs = FrameOutputWriter(out)

    def on_frame(result: FrameResult) -> None:
        outputs.write(len(collector.results) - 1, result.name, result.caption, result.graph,
                      result.image)
        if result.graph is not None and result.image is None:
            # a live best-effort camera image can miss the collector (under load, before its
            # reader matched, or undecodable): say so rather than leave a silent gap
            log(f'[run] {result.name}: no camera image with its stamp reached the '
                'collector; annotated image not written (scene graph and caption are)')
        tag = 'verified' if result.caption.verified else 'UNVERIFIED'
        print(f'{result.name}: {result.caption.text}  [{result.caption.generator}, {tag}]',
              flush=True)

    # Ctrl-C / SIGTERM end the run gracefully: rclpy's own handler would shut the context down
    # at once, losing the outputs still in flight (a caption whose graph is a moment behind).
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    collector = ResultCollector(on_frame=on_frame, topics={'image': remaps.get('image', 'image')},
                                image_qos='sensor_data' if live else 'reliable',
                                expect_names=not live, graph_nodes=names)
    executor = MultiThreadedExecutor()
    executor.add_node(collector)
    nodes, procs, logs = [], [], []
    code = 0
    try:
        if args.mode == 'inprocess':
            nodes = create_nodes(names, params_file, remaps)
            for node in nodes:
                executor.add_node(node)
        else:
            for name in names:
                logs.append(open(out / f'{name}.log', 'w', encoding='utf-8'))
                procs.append(spawn_node(name, params_file, remaps, env, logs[-1]))
        if live:
            collector.recording = False
            collector.ignore_earlier_frames = True
            if not wait_until_connected(executor, collector, args.timeout):
                raise RuntimeError('the nodes did not connect; see their logs')
            collector.recording = True
            log(f'[run] graph connected; recording captions of {remaps["image"]}')
        else:
            start_source_when_connected(executor, collector, args.timeout)
        start = time.monotonic()
        while rclpy.ok() and not stop.is_set():
            spin_once(executor, 0.1)
            if collector.complete and not live:
                break
            if args.max_frames and len(collector.results) >= args.max_frames:
                break
            if time.monotonic() - start > args.timeout:
                print(f'[run] timed out after {args.timeout:.0f} s with '
                      f'{len(collector.results)} captions', file=sys.stderr)
                code = 1
                break
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                print(f'[run] a node process exited early (code {dead[0].returncode}); see the '
                      f'logs in {out}', file=sys.stderr)
                code = 1
                break
        if stop.is_set():
            log('[run] interrupted')
        # Let outputs already on their way arrive (graphs of captions received, late captions).
        grace_end = time.monotonic() + SHUTDOWN_GRACE_S
        while rclpy.ok() and collector.pending and time.monotonic() < grace_end:
            spin_once(executor, 0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        log('[run] interrupted')
    finally:
        collector.flush()               # captions still waiting for their graph
        for name, status in zip(names, stop_processes(procs), strict=False):
            if status != 0:
                print(f'[run] node {name} did not stop cleanly ({status}); see {out}/{name}.log',
                      file=sys.stderr)
                code = 1
        for f in logs:
            f.close()
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        collector.destroy_node()
        rclpy.try_shutdown()
        outputs.close()
    n = len(collector.results)
    no_image = [r.name for r in collector.results if r.graph is not None and r.image is None]
    log(f'[run] {n} captions; annotated images in {out / "annotated"}, scene graphs in '
        f'{out / "scene_graphs"}, captions in {out / "captions.jsonl"}')
    if no_image:
        log(f'[run] {len(no_image)} frames without an annotated image (camera image not '
            f'received): {", ".join(no_image)}')
    if not live and collector.total_frames is not None and n < collector.total_frames:
        code = 1
    return code


if __name__ == '__main__':
    sys.exit(main())
