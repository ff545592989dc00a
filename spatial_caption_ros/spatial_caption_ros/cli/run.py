"""Run the whole spatial_caption_ros graph without a ROS install, from one parameter file.

Folder, image or video input: the image source node publishes every frame (paced by the caption
node, so none is skipped), each caption is printed, and annotated images, scene graphs (JSON) and
captions go to the output folder; the run ends by itself after the last frame.
Live input (--input topic:/camera/image_raw): the graph subscribes to that topic (camera_info
beside it unless --camera-info) and runs until Ctrl-C (or --max-frames).

Same graph as the launch files: the nodes of ros/graph.py with the same names, one parameter file
and the same camera remaps, as processes (--mode processes) or in one process. Ctrl-C or SIGTERM
stops every node cleanly within about 2 s (children first get SIGINT, as `ros2 launch` does),
keeping every output already written.

An unreadable input file (empty, truncated, not an image) is skipped, not the end of the batch:
it is named with its reason on stderr and in captions.jsonl ({"frame", "skipped"}). A node that
cannot configure (e.g. a missing model) ends the run at once with its reason.

Exit codes: 0 every frame captioned (or a live run stopped by Ctrl-C); 1 the run failed (a node
could not start or exited, timeout, frames without a caption); 2 bad command line, parameter
file, --set, input or output folder (nothing was run); 3 finished, but unreadable input files
were skipped; 130 / 143 a batch stopped by SIGINT / SIGTERM before its end (what was done is
written).

ROS traffic stays on this machine by default (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a
random ROS_DOMAIN_ID unless set); --discovery subnet lets a live camera on the network in.
Fast DDS gets the shipped large-image profile (config/fastdds_large_images.xml) unless
FASTDDS_DEFAULT_PROFILES_FILE or FASTDDS_BUILTIN_TRANSPORTS is already set, or --dds-profile none.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Any

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.inputs.sources import FrameSource
from spatial_caption_ros.core.perception.models import default_model_dir, shared_path
from spatial_caption_ros.core.runtime.outputs import make_output_folder
from spatial_caption_ros.params_file import (
    apply_sets, dump_params, load_params, parse_set, section)
from spatial_caption_ros.ros.graph import camera_remaps, prepare_environment

DEFAULT_OUTPUT = 'output'
# Seconds the runner keeps receiving after the end, for outputs already in flight; after
# Ctrl-C or SIGTERM only INTERRUPT_GRACE_S, so that the whole stop takes under 2 s.
SHUTDOWN_GRACE_S = 2.0
INTERRUPT_GRACE_S = 0.5
# Exit codes (module docstring, README).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 3


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
                   help='all nodes in one process (one executor thread, a worker thread per '
                        'node) or one process each')
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
    p.add_argument('--memory', action='store_true',
                   help='also run the memory node (objects remembered across frames, changes, '
                        'queries; its database goes to <output>/memory.sqlite unless set)')
    p.add_argument('--quiet', action='store_true',
                   help='print only the captions (and warnings and errors)')
    return p.parse_args(argv)


def build_params(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str], bool]:
    """The effective parameter file content, topic remaps, and whether the input is a topic."""
    params = load_params(args.config)
    if args.max_frames < 0:
        raise ConfigError(f'--max-frames {args.max_frames}: must be 0 (no limit) or more')
    if args.timeout <= 0:
        raise ConfigError(f'--timeout {args.timeout:g}: must be more than 0 seconds')

    remaps: dict[str, str] = {}
    live = bool(args.input) and args.input.startswith('topic:')
    if live:
        remaps = camera_remaps(args.input[len('topic:'):], args.camera_info, args.depth)
    else:
        if not args.input:
            raise ConfigError('no --input given and ../shared/data/images is not there')
        source = Path(args.input).expanduser().resolve()
        try:
            FrameSource(source)        # a folder with images, an image or a video file
        except ConfigError as exc:
            raise ConfigError(f'--input: {exc}') from None
        src = section(params, 'image_source')
        src['source'] = str(source)
        src['pace_on'] = 'caption'
        src['loop'] = False
        # Started by the runner once every stage is connected, so no frame is lost to discovery.
        src['autostart'] = False
        # ...and publishes each frame only once its own publisher has matched every image
        # reader: perception, visualization and the collector.
        src['min_subscribers'] = BATCH_IMAGE_READERS
        if args.rate is not None:       # checked as the parameter is (its range)
            try:
                _, _, src['rate'] = parse_set(f'image_source.rate={args.rate}')
            except ConfigError as exc:
                why = str(exc).rpartition('image_source.rate: ')[2]
                raise ConfigError(f'--rate {args.rate:g}: {why}') from None
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
        if not model_dir.is_dir():
            raise ConfigError(f'--model-dir {args.model_dir}: not a folder')
        section(params, 'perception')['model_dir'] = str(model_dir)
    apply_sets(params, args.set)
    if args.memory and section(params, 'memory').get('database', ':memory:') == ':memory:':
        section(params, 'memory')['database'] = str(Path(args.output).resolve() / 'memory.sqlite')
    return params, remaps, live


def memory_on_stills_warning(params: dict[str, Any], memory: bool,
                             source: FrameSource | None) -> str:
    """The warning for --memory over a folder of unrelated photos without a world frame.

    The memory fuses objects by position in `world_frame`; with it empty, positions are in the
    camera frame, as for one fixed camera. Photos of different places would then be fused
    where their objects happen to sit alike (the tracker starts anew per photo, the memory
    does not), so the run says so instead of leaving a misleading memory unexplained.
    `source`: the input's frames (None: a live camera).
    """
    if not memory or source is None or section(params, 'memory').get('world_frame'):
        return ''
    if not source.stills(bool(section(params, 'image_source').get('folder_is_sequence'))):
        return ''
    return ('[run] warning: --memory on a folder of still photos without memory.world_frame: '
            'the memory takes every photo as a view of one fixed camera, so objects of '
            'different photos at similar camera-frame positions are fused into one entry. '
            'For consecutive frames set image_source.folder_is_sequence=true; for a moving '
            'camera give /tf and memory.world_frame')


def _last_line(path: Path) -> str:
    """The last non-empty line of a node's log (why it stopped), '' when there is none."""
    try:
        lines = path.read_text(encoding='utf-8', errors='replace').splitlines()
    except OSError:
        return ''
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), '')[-300:]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output)
    params_file = out / 'params.yaml'
    try:
        params, remaps, live = build_params(args)
        make_output_folder(out)
        source = None if live else FrameSource(section(params, 'image_source')['source'])
    except ConfigError as exc:
        print(f'[run] error: {exc}', file=sys.stderr)
        return EXIT_USAGE
    warning = memory_on_stills_warning(params, args.memory, source)
    params_file.write_text(dump_params(params), encoding='utf-8')
    # files of an input folder that are not frames (a video, a .gif): named at the end
    ignored = source.ignored if source is not None else []
    env = prepare_environment(args.discovery, args.dds_profile)

    # Ctrl-C / SIGTERM end the run gracefully: rclpy's own handler would shut the context down
    # at once, losing the outputs still in flight (a caption whose graph is a moment behind).
    # Installed first: every wait below checks `stop`, so a signal ends any phase of the run.
    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum, _frame) -> None:
        signals.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    from spatial_caption_ros.core.runtime.outputs import FrameOutputWriter
    from spatial_caption_ros.ros.collector import FrameResult, ResultCollector
    from spatial_caption_ros.ros.spin import node_executor, spin_once
    from spatial_caption_ros.ros.graph import (
        create_nodes, GRAPH_NODES, GraphStartError, spawn_node, start_source_when_connected,
        stop_processes, wait_until_connected)

    names = [n for n in GRAPH_NODES if not (live and n == 'image_source')]
    names += ['memory'] if args.memory else []
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    if warning:
        print(warning, file=sys.stderr)
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

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    if args.quiet:      # the in-process nodes' INFO lines too (warnings and errors stay)
        for name in [*names, 'result_collector']:
            rclpy.logging.set_logger_level(name, rclpy.logging.LoggingSeverity.WARN)
    collector = ResultCollector(on_frame=on_frame, topics={'image': remaps.get('image', 'image')},
                                image_qos='sensor_data' if live else 'reliable',
                                expect_names=not live, graph_nodes=names)
    executor = node_executor()      # one thread, as each node process (ros/spin.py: why)
    executor.add_node(collector)
    nodes, procs, logs = [], [], []

    def stopped() -> bool:
        """Stop requested, or a node process died (the graph cannot complete any more)."""
        return stop.is_set() or any(p.poll() is not None for p in procs)

    code = EXIT_OK
    try:
        for name in names:
            if stop.is_set():
                break
            if args.mode == 'inprocess':
                nodes += create_nodes([name], params_file, remaps)
                executor.add_node(nodes[-1])
            else:
                logs.append(open(out / f'{name}.log', 'w', encoding='utf-8'))
                procs.append(spawn_node(name, params_file, remaps, env, logs[-1]))
        if stopped():
            pass
        elif live:
            collector.recording = False
            collector.ignore_earlier_frames = True
            if not wait_until_connected(executor, collector, args.timeout, stopped):
                if not stopped():
                    raise GraphStartError('the nodes did not connect within '
                                          f'{args.timeout:.0f} s: '
                                          f'{", ".join(collector.missing_endpoints())}')
            else:
                collector.recording = True
                log(f'[run] graph connected; recording captions of {remaps["image"]}')
        else:
            start_source_when_connected(executor, collector, args.timeout, stop=stopped)
        start = time.monotonic()
        while rclpy.ok() and not stopped():
            spin_once(executor, 0.1)
            if collector.complete and not live:
                break
            if args.max_frames and len(collector.results) >= args.max_frames:
                break
            failed = collector.failed_nodes()
            if failed:
                raise GraphStartError('; '.join(f'node {n}: {why}'
                                                for n, why in sorted(failed.items())))
            if time.monotonic() - start > args.timeout:
                print(f'[run] timed out after {args.timeout:.0f} s with '
                      f'{len(collector.results)} captions', file=sys.stderr)
                code = EXIT_FAILED
                break
        dead = [(name, p) for name, p in zip(names, procs, strict=False) if p.poll() is not None]
        if dead and not stop.is_set():
            print(f'[run] node {dead[0][0]} exited early (code {dead[0][1].returncode}); see '
                  f'{out}/{dead[0][0]}.log', file=sys.stderr)
            code = EXIT_FAILED
        if stop.is_set():
            log('[run] interrupted')
        # Let outputs already on their way arrive (graphs of captions received, late captions).
        grace_end = time.monotonic() + (INTERRUPT_GRACE_S if stop.is_set() else SHUTDOWN_GRACE_S)
        while rclpy.ok() and collector.pending and time.monotonic() < grace_end:
            spin_once(executor, 0.05)
    except GraphStartError as exc:
        print(f'[run] error: {exc}', file=sys.stderr)
        code = EXIT_FAILED
    except (KeyboardInterrupt, ExternalShutdownException):
        log('[run] interrupted')
        stop.set()
    finally:
        collector.flush()               # captions still waiting for their graph
        for item in collector.skipped:
            outputs.write_skipped(item['name'], item['reason'])
        outputs.close()
        statuses = stop_processes(procs)
        for f in logs:
            f.close()
        for name, status in zip(names, statuses, strict=False):
            if status != 0:
                print(f'[run] node {name} did not stop cleanly ({status}); its last log line: '
                      f'{_last_line(out / f"{name}.log")!r}; see {out}/{name}.log',
                      file=sys.stderr)
                code = code or EXIT_FAILED
        if not stop.is_set():
            # (interrupted: see the end of main; destroying a node joins its worker, and the
            # caption node's may be in the middle of an LLM generation)
            for node in nodes:
                executor.remove_node(node)
                node.destroy_node()
            collector.destroy_node()
        rclpy.try_shutdown()
    n = len(collector.results)
    no_image = [r.name for r in collector.results if r.graph is not None and r.image is None]
    log(f'[run] {n} captions; annotated images in {out / "annotated"}, scene graphs in '
        f'{out / "scene_graphs"}, captions in {out / "captions.jsonl"}')
    if no_image:
        log(f'[run] {len(no_image)} frames without an annotated image (camera image not '
            f'received): {", ".join(no_image)}')
    for item in collector.skipped:
        print(f'[run] skipped {item["name"]}: {item["reason"]}', file=sys.stderr)
    if collector.skipped:
        print(f'[run] {len(collector.skipped)} unreadable input files skipped (also in '
              f'{out / "captions.jsonl"})', file=sys.stderr)
    for name, why in ignored:
        print(f'[run] not an image, not captioned: {name} ({why})', file=sys.stderr)
    code = _exit_code(code, live, collector, signals)
    if stop.is_set():
        # Interrupted: every output is written and closed, the node processes are stopped. An
        # in-process caption node may be in the middle of an LLM generation, which llama.cpp
        # cannot abort; waiting for it (and for the interpreter to free the models) could take
        # seconds, so leave now: the run stops within 2 s as promised.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _exit_code(code: int, live: bool, collector, signals: list[int]) -> int:
    """The documented exit code of a run (module docstring)."""
    if code != EXIT_OK or live:
        return code
    if signals and not collector.complete:
        return 128 + signals[0]         # 130 SIGINT, 143 SIGTERM: the batch did not finish
    if collector.total_frames is not None and len(collector.results) < collector.total_frames:
        return EXIT_FAILED
    return EXIT_SKIPPED if collector.skipped else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
