"""The launch files, run for real with `ros2 launch` and driven with the `ros2` CLI.

Set-up installs launch, launch_ros, ros2launch and the ros2 CLI verbs into the venv (or uses a
ROS install's) and puts the editable package into the ament index (scripts/ros_tools.sh), so
these tests run the commands a ROS user types. Every launch file is started once: the nodes
start and go active, topics flow through the remapped camera topics, captions arrive and show on
the console, `ros2 lifecycle set`, `ros2 param set` and `ros2 topic echo` act on the running
nodes, and with use_sim_time every node follows a /clock that this test publishes. The colcon
workspace test (test_colcon_workspace.py) runs spatial_caption.launch.py from a colcon install.
The quick smoke test starts the lightest launch file; the others are slow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import re
import shutil
import time

import pytest
import yaml

from spatial_caption_ros.core.inputs.sources import ImageSourceConfig
from spatial_caption_ros.ros.graph import EXECUTABLES, OPTIONAL_NODES, PIPELINE_NODES
from spatial_caption_ros.ros.interface import node_topics
from spatial_caption_ros.ros.launch_builder import LAUNCH_FILES
from support import BUS, IMAGES, needs_shared
from support.ros2_cli import (
    active_line, Launch, node_diagnostics, probe, ros2, SIM_START_S, stamp_s)

PKG = Path(__file__).resolve().parents[2]
LAUNCH_DIR = PKG / 'launch'
# Start-up of five node processes (models, the LLM) on a loaded 2-core machine, then the first
# caption: generous, the tests end as soon as what they wait for arrived.
START_S = 120.0


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def _images(tmp_path: Path, names: tuple[str, ...]) -> Path:
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in names:
        shutil.copy(IMAGES / name, folder / name)
    return folder


# ------------------------------------------------------------------ descriptions (no processes)

def test_every_launch_file_declares_its_documented_arguments():
    """Each file loads with the real launch library; arguments match docs/ros_interface.md."""
    from launch import LaunchContext
    from launch.utilities import perform_substitutions
    assert sorted(p.name for p in LAUNCH_DIR.glob('*.launch.py')) == sorted(LAUNCH_FILES)
    for name, documented in LAUNCH_FILES.items():
        declared = _load(LAUNCH_DIR / name).get_launch_arguments()
        assert [a.name for a in declared] == [a.name for a in documented], name
        for arg in declared:
            assert arg.description
            if arg.name in ('config', 'dds_profile', 'rviz_config'):
                path = perform_substitutions(LaunchContext(), arg.default_value)
                assert Path(path).is_file(), (name, path)


def _executables(desc, optional: bool) -> list[str]:
    """Executables of the description's nodes that start always (or only on a condition)."""
    from launch_ros.actions import Node
    return [e.node_executable for e in desc.entities
            if isinstance(e, Node) and (e.condition is not None) == optional]


def test_launch_files_start_the_runner_graph():
    """Same nodes as the runner (ros/graph.py); optional nodes and rviz only on their argument."""
    pipeline = _load(LAUNCH_DIR / 'spatial_caption.launch.py')
    assert _executables(pipeline, False) == [EXECUTABLES[n] for n in PIPELINE_NODES]
    assert _executables(pipeline, True) == [EXECUTABLES[n] for n in OPTIONAL_NODES] + ['rviz2']
    demo = _load(LAUNCH_DIR / 'demo.launch.py')
    assert _executables(demo, False) == [EXECUTABLES[n]
                                         for n in ('image_source',) + PIPELINE_NODES]
    for name in PIPELINE_NODES + OPTIONAL_NODES:
        assert _executables(_load(LAUNCH_DIR / f'{name}.launch.py'), False) == [EXECUTABLES[name]]


def test_setup_installs_launch_and_config_files():
    text = (PKG / 'setup.py').read_text()
    assert "files('launch/*.py')" in text and "files('config/*')" in text


def test_shipped_rviz_config_shows_the_image_annotated_image_and_markers():
    config = yaml.safe_load((PKG / 'config' / 'spatial_caption.rviz').read_text())
    manager = config['Visualization Manager']
    displays = {d['Class']: d for d in manager['Displays']
                if d['Class'] != 'rviz_default_plugins/Image'}
    images = [d for d in manager['Displays'] if d['Class'] == 'rviz_default_plugins/Image']
    viz_out = {'/' + t.name for t in node_topics('visualization') if t.direction == 'out'}
    assert displays['rviz_default_plugins/MarkerArray']['Topic']['Value'] in viz_out
    assert {d['Topic']['Value'] for d in images} == {'/annotated_image', '/camera/image_raw'}
    assert '/annotated_image' in viz_out
    camera = next(d for d in images if d['Topic']['Value'] == '/camera/image_raw')
    assert camera['Topic']['Reliability Policy'] == 'Best Effort'    # sensor-data cameras
    assert manager['Global Options']['Fixed Frame'] == ImageSourceConfig().frame_id


# ------------------------------------------------------------------ quick smoke test

def test_ros2_launch_finds_the_package_and_the_node_goes_active():
    """`ros2 launch spatial_caption_ros scene_graph.launch.py` from the dev venv (quick)."""
    prefix = ros2('pkg', 'prefix', 'spatial_caption_ros')
    assert prefix.returncode == 0, prefix.stdout
    with Launch('scene_graph.launch.py', 'namespace:=/smoke') as launch:
        assert launch.wait_for(active_line('scene_graph'), START_S), launch.output
        state = ros2('lifecycle', 'get', '/smoke/scene_graph')
        assert state.stdout.strip() == 'active [3]', state.stdout
        code = launch.stop()
    assert code == 0, launch.output
    assert 'process has died' not in launch.output, launch.output


# ------------------------------------------------------------------ slow: the demo, for real

@pytest.mark.slow
@needs_shared
def test_demo_launch_with_sim_time_remaps_cli_and_console_captions(rclpy_context, tmp_path):
    """demo.launch.py: five nodes, camera remaps, a namespace, sim time, the ros2 CLI verbs."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from spatial_caption_interfaces.msg import Caption
    ns, cam = '/demo', '/democam'
    with probe('demo_probe') as p:
        p.run_clock(sim_per_wall=2.0)      # sim time runs twice as fast as the wall clock
        images = p.record(Image, f'{cam}/image')
        captions = p.record(Caption, f'{ns}/caption')
        diagnostics = p.record(DiagnosticArray, '/diagnostics')
        folder = _images(tmp_path, ('bus.jpg', 'zidane.jpg'))
        with Launch('demo.launch.py', f'source:={folder}', 'rate:=1.0', f'namespace:={ns}',
                    f'image:={cam}/image', f'camera_info:={cam}/camera_info',
                    'use_sim_time:=true') as launch:
            console = launch.wait_for(r'\[[\w.]*caption\]: caption \[(\w+)\]: (.+)', START_S)
            assert console, launch.output
            for node in ('image_source',) + PIPELINE_NODES:
                assert launch.wait_for(active_line(node), 5), (node, launch.output)

            # the CLI sees the nodes in the namespace and the remapped camera topics
            expected = tuple(f'{ns}/{n}\n' for n in ('image_source',) + PIPELINE_NODES)
            nodes = ros2('node', 'list', expect=expected).stdout
            assert all(n in nodes for n in expected), nodes
            topics = ros2('topic', 'list', expect=(f'{cam}/image\n',)).stdout.split()
            assert f'{cam}/image' in topics and f'{ns}/image' not in topics, topics
            echo = ros2('topic', 'echo', '--once', f'{ns}/caption/text',
                        'std_msgs/msg/String')
            assert echo.returncode == 0 and re.search(r'data: .+\w', echo.stdout), echo.stdout

            # a live parameter: the console echo stops, captions keep coming on the topic
            result = ros2('param', 'set', f'{ns}/caption', 'log_captions', 'false')
            assert 'Set parameter successful' in result.stdout, result.stdout
            logged, published = len(launch.wait_for(r'\]: caption \[', 0)), len(captions)
            assert p.wait(lambda: len(captions) >= published + 2, START_S), launch.output
            assert len(launch.wait_for(r'\]: caption \[', 0)) <= logged + 1, launch.output
            refused = ros2('param', 'set', f'{ns}/perception',
                           'confidence_threshold', '7.0')
            assert 'Setting parameter failed' in refused.stdout, refused.stdout

            # lifecycle: deactivate stops captions, activate brings them back
            result = ros2('lifecycle', 'set', f'{ns}/caption', 'deactivate')
            assert 'Transitioning successful' in result.stdout, result.stdout
            state = ros2('lifecycle', 'get', f'{ns}/caption').stdout.strip()
            assert state == 'inactive [2]', state
            time.sleep(1.0)        # a caption in flight when deactivated may still land
            during = len(captions)
            time.sleep(3.0)
            assert len(captions) == during, 'captions while the caption node was inactive'
            result = ros2('lifecycle', 'set', f'{ns}/caption', 'activate')
            assert 'Transitioning successful' in result.stdout, result.stdout
            assert p.wait(lambda: len(captions) > during, START_S), launch.output
            sim_now = p.sim_ns / 1e9
            code = launch.stop()
        assert 'process has died' not in launch.output, launch.output
        assert code == 0, launch.output
        assert 'memory_node' not in launch.output      # optional: only with use_memory:=true

        # sim time: stamps come from /clock (not the wall clock), the rate follows it
        stamps = [stamp_s(m) for _, m in images]
        assert len(stamps) >= 4 and all(SIM_START_S <= s <= sim_now for s in stamps), stamps
        steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        # rate:=1.0 -> one frame per SIMULATED second (sim runs 2x: ~0.5 s of wall clock)
        assert sorted(steps)[len(steps) // 2] == pytest.approx(1.0, abs=0.15), steps
        assert {stamp_s(m) for _, m in captions} <= set(stamps)
        for node in ('image_source',) + PIPELINE_NODES:
            diag = node_diagnostics(diagnostics, f'{ns}/{node}')
            assert diag and all(SIM_START_S <= s <= sim_now for s in diag), (node, diag)


# ------------------------------------------------------------------ slow: each node alone

@pytest.mark.slow
@needs_shared
def test_single_node_launch_files_chain_into_the_pipeline(rclpy_context):
    """perception/scene_graph/caption/visualization/memory.launch.py, each started on its own.

    Together in one namespace they form the pipeline: an image published by this test on the
    remapped camera topic comes out as detections, a scene graph, a caption and an annotated
    image, and the memory node goes active beside them. log_level:=warn on one of them silences
    its INFO lines.
    """
    from sensor_msgs.msg import CameraInfo, Image
    from spatial_caption_interfaces.msg import Caption, DetectionArray, SceneGraph

    from spatial_caption_ros.core.inputs.image import read_image_file
    from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader
    from spatial_caption_ros.ros import conversions
    from spatial_caption_ros.ros.qos import qos_profile
    ns, cam = '/single', '/singlecam'
    common = (f'namespace:={ns}', f'image:={cam}/image', f'camera_info:={cam}/camera_info')
    singles = PIPELINE_NODES + OPTIONAL_NODES
    launches = [Launch(f'{node}.launch.py', *common,
                       *(['log_level:=warn'] if node == 'scene_graph' else []))
                for node in singles]
    try:
        with probe('single_probe') as p:
            outputs = {'detections': p.record(DetectionArray, f'{ns}/detections'),
                       'scene_graph': p.record(SceneGraph, f'{ns}/scene_graph'),
                       'caption': p.record(Caption, f'{ns}/caption'),
                       'annotated_image': p.record(Image, f'{ns}/annotated_image')}
            for launch, node in zip(launches, singles, strict=True):
                if node != 'scene_graph':
                    assert launch.wait_for(active_line(node), START_S), launch.output
            image_pub = p.node.create_publisher(Image, f'{cam}/image', qos_profile('reliable'))
            info_pub = p.node.create_publisher(CameraInfo, f'{cam}/camera_info',
                                               qos_profile('reliable'))
            image = read_image_file(BUS)
            intrinsics = CameraIntrinsics.from_horizontal_fov(60.0, image.width, image.height)
            deadline = time.monotonic() + START_S
            sent = 0
            while time.monotonic() < deadline and not all(outputs.values()):
                header = FrameHeader(int(time.time() * 1e9), 'camera_optical_frame')
                info_pub.publish(conversions.intrinsics_to_camera_info(intrinsics, header))
                image_pub.publish(conversions.color_to_image_msg(image, header))
                sent += 1
                p.wait(lambda: False, 1.0)
            assert all(outputs.values()), {k: len(v) for k, v in outputs.items()}
            detections = outputs['detections'][0][1]
            assert any(d.class_name == 'bus' for d in detections.objects)
            assert not any(re.search(r'\[scene_graph\]: ', line) and '[INFO]' in line
                           for line in launches[1].lines), launches[1].output
    finally:
        codes = [launch.stop() for launch in launches]
    for launch, code in zip(launches, codes, strict=True):
        assert code == 0 and 'process has died' not in launch.output, launch.output


@pytest.mark.slow
def test_rviz_launch_says_rviz2_is_missing_when_it_is():
    """rviz.launch.py starts rviz2; without one (no ROS desktop install here) it says so."""
    if shutil.which('rviz2'):
        pytest.skip('rviz2 is installed: the rviz launch would open a window')
    with Launch('rviz.launch.py') as launch:
        launch.proc.wait(60)
    assert launch.proc.returncode != 0
    assert re.search(r"package 'rviz2' not found|executable 'rviz2' not found", launch.output), \
        launch.output
