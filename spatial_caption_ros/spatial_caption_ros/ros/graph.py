"""The node graph: which nodes exist, how to start them in one process or as processes.

The runner (cli/run.py) and the launch files (launch/*.launch.py through ros/launch_builder.py)
both take the node names, executables, parameter file and camera remaps from here, so the two
start the same graph.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
import random
import subprocess
import sys

from spatial_caption_ros.core.runtime.resources import package_file

PACKAGE = 'spatial_caption_ros'
GRAPH_NODES = ('image_source', 'perception', 'scene_graph', 'caption', 'visualization')
# The nodes that process a camera stream (everything but the demo image source).
PIPELINE_NODES = ('perception', 'scene_graph', 'caption', 'visualization')
# Nodes that are off unless asked for (runner --memory, launch argument use_memory:=true).
OPTIONAL_NODES = ('memory',)
ALL_NODES = GRAPH_NODES + OPTIONAL_NODES
NODE_MODULES = {
    'image_source': 'spatial_caption_ros.nodes.image_source_node',
    'perception': 'spatial_caption_ros.nodes.perception_node',
    'scene_graph': 'spatial_caption_ros.nodes.scene_graph_node',
    'caption': 'spatial_caption_ros.nodes.caption_node',
    'visualization': 'spatial_caption_ros.nodes.visualization_node',
    'memory': 'spatial_caption_ros.nodes.memory_node',
}
NODE_CLASSES = {
    'image_source': 'ImageSourceNode', 'perception': 'PerceptionNode',
    'scene_graph': 'SceneGraphNode', 'caption': 'CaptionNode',
    'visualization': 'VisualizationNode', 'memory': 'MemoryNode',
}
# console_scripts entry point of each node (setup.py), used by the launch files.
EXECUTABLES = {name: f'{name}_node' for name in ALL_NODES}
# The shipped parameter file and Fast DDS profile (paths relative to the package share folder).
PARAMS_FILE = 'config/pipeline.yaml'
DDS_PROFILE_FILE = 'config/fastdds_large_images.xml'
RVIZ_CONFIG_FILE = 'config/spatial_caption.rviz'
# Relative camera topic names of the nodes (remapped onto a camera's topics).
CAMERA_TOPICS = ('image', 'image/compressed', 'camera_info', 'depth')
COMPRESSED_SUFFIX = '/compressed'   # image_transport: <image>/compressed


def camera_info_beside(image_topic: str) -> str:
    """The camera_info topic beside an image topic (image_transport convention)."""
    head, _, _ = image_topic.rstrip('/').rpartition('/')
    return f'{head}/camera_info' if head else 'camera_info'


def camera_remaps(image: str, camera_info: str | None = None,
                  depth: str | None = None) -> dict[str, str]:
    """Remaps of the nodes' camera topics onto a camera's topics (runner and launch files).

    `image/compressed` follows image_transport: <image>/compressed.
    """
    remaps = {'image': image, 'image/compressed': image.rstrip('/') + COMPRESSED_SUFFIX,
              'camera_info': camera_info or camera_info_beside(image)}
    if depth:
        remaps['depth'] = depth
    return remaps


def prepare_environment(discovery: str, dds_profile: str | None = None) -> dict[str, str]:
    """Set the DDS environment for this process and its children before rclpy starts.

    Large best-effort images between processes are lost with Fast DDS's default transports;
    the shipped profile fixes that (figures in docs/ros_interface.md). A user's own Fast DDS
    configuration (profile file or builtin transports) is left alone.
    """
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE',
                          'LOCALHOST' if discovery == 'localhost' else 'SUBNET')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 200)))
    os.environ.setdefault('PYTHONUNBUFFERED', '1')     # node logs reach their files at once
    if dds_profile is not None and dds_profile.lower() != 'none':
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(Path(dds_profile).resolve())
    elif dds_profile is None and not any(
            k in os.environ for k in ('FASTDDS_DEFAULT_PROFILES_FILE',
                                      'FASTDDS_BUILTIN_TRANSPORTS')):
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(package_file(DDS_PROFILE_FILE))
    return dict(os.environ)


def node_class(name: str) -> type:
    """The node class of a graph node name (imported on demand)."""
    import importlib
    return getattr(importlib.import_module(NODE_MODULES[name]), NODE_CLASSES[name])


def ros_args(params_file: str | Path | None, remaps: dict[str, str] | None = None) -> list[str]:
    """--ros-args for one node: the parameter file and topic remappings."""
    args = ['--ros-args']
    if params_file:
        args += ['--params-file', str(params_file)]
    for src, dst in (remaps or {}).items():
        args += ['-r', f'{src}:={dst}']
    return args


def create_nodes(names: list[str] | tuple[str, ...], params_file: str | Path | None,
                 remaps: dict[str, str] | None = None, context=None) -> list:
    """Instantiate graph nodes in this process (after rclpy.init)."""
    nodes = []
    for name in names:
        cls = node_class(name)
        nodes.append(cls(cli_args=ros_args(params_file, remaps), use_global_arguments=False,
                         context=context))
    return nodes


def spawn_node(name: str, params_file: str | Path | None, remaps: dict[str, str] | None = None,
               env: dict[str, str] | None = None, log_file=None) -> subprocess.Popen:
    """Start one graph node as its own process (same Python, same environment)."""
    cmd = [sys.executable, '-m', NODE_MODULES[name]] + ros_args(params_file, remaps)
    return subprocess.Popen(cmd, env=env or dict(os.environ), stdout=log_file,
                            stderr=subprocess.STDOUT if log_file else None,
                            start_new_session=True)


def stop_processes(procs: list[subprocess.Popen], timeout: float = 10.0) -> list[int | str]:
    """SIGINT every process (as `ros2 launch` does), then SIGTERM/SIGKILL what did not exit.

    Returns per process its exit code, or how it had to be stopped ('SIGTERM', 'SIGKILL').
    """
    import signal
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    status: list[int | str] = []
    for p in procs:
        try:
            status.append(p.wait(timeout))
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(3)
                status.append('SIGTERM')
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                status.append('SIGKILL')
    return status


class GraphStartError(RuntimeError):
    """A node of the graph could not start; the text says which and why."""


def _never() -> bool:
    return False


def wait_until_connected(executor, collector, timeout: float,
                         stop: Callable[[], bool] = _never) -> bool:
    """Spin until every stage's topics are matched (collector.pipeline_connected()).

    Returns False after `timeout` or as soon as stop() is true; raises GraphStartError as soon
    as a node reports a failed configure (it would never connect: no reason to wait).
    """
    import time

    from spatial_caption_ros.ros.spin import spin_once
    deadline = time.monotonic() + timeout
    while not collector.pipeline_connected() and time.monotonic() < deadline and not stop():
        failed = collector.failed_nodes()
        if failed:
            raise GraphStartError('; '.join(f'node {name}: {why}'
                                            for name, why in sorted(failed.items())))
        spin_once(executor, 0.05)
    return collector.pipeline_connected()


def start_source_when_connected(executor, collector, timeout: float,
                                source: str = '/image_source',
                                stop: Callable[[], bool] = _never) -> bool:
    """Wait until every stage's topics are matched, then configure and activate the source.

    The image source is started with autostart=false; starting it only once the graph is
    connected means no early frame is lost to discovery. Uses the standard lifecycle services,
    so it works the same for nodes in this process and in other processes. Returns False when
    stop() became true first; raises GraphStartError when a node cannot start.
    """
    import time

    from spatial_caption_ros.ros.lifecycle_client import LifecycleClient
    from spatial_caption_ros.ros.spin import spin_once

    deadline = time.monotonic() + timeout
    if not wait_until_connected(executor, collector, timeout, stop):
        if stop():
            return False
        collector.get_logger().warning(
            f'starting the source although the graph is not fully connected after {timeout:.0f} '
            f's: {", ".join(collector.missing_endpoints())}')
    client = LifecycleClient(collector, source, spin=lambda: spin_once(executor, 0.05))
    if not client.wait_for_services(max(1.0, deadline - time.monotonic())):
        raise GraphStartError(f'the image source node {source} did not come up')
    for transition in ('configure', 'activate'):
        try:
            done = client.change_state(transition, timeout=max(10.0, timeout))
        except TimeoutError as exc:
            raise GraphStartError(f'the image source {source} did not answer: {exc}') from None
        if not done:
            why = collector.failed_nodes().get(source.rsplit('/', 1)[-1], 'see its log')
            raise GraphStartError(f'the image source {source} failed to {transition}: {why}')
    return True
