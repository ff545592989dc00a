"""A ROS user's path: both packages in a colcon workspace, `colcon build`, source, `ros2 launch`.

The two packages are copied into `src/` of a temporary workspace as after a clone, built with
the colcon that set-up installs (the ROS 2 Kilted wheels in the venv are the underlay), and
spatial_caption.launch.py runs from `install/` after sourcing `install/setup.bash`. The run uses
use_sim_time with a /clock that this test publishes: stamps come from it and the nodes' timers
stop while it is paused.
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

import pytest

from spatial_caption_ros.ros.graph import PIPELINE_NODES
from support import BUS, MODELS, needs_shared, REPO
from support.ros2_cli import (
    active_line, Launch, node_diagnostics, probe, ros2, ros2_env, SIM_START_S, stamp_s)

PACKAGES = ('spatial_caption_interfaces', 'spatial_caption_ros')
BUILD_TIMEOUT_S = 600


def _sourced_env(setup: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment after `source install/setup.bash` in a shell with `base`."""
    out = subprocess.run(['bash', '-c', 'source "$0" >/dev/null && env -0', str(setup)],
                         env=base, capture_output=True, check=True, timeout=60).stdout
    return dict(item.split('=', 1) for item in out.decode().split('\0') if '=' in item)


@pytest.mark.slow
@needs_shared
def test_colcon_build_then_ros2_launch_from_the_install_with_sim_time(rclpy_context, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from spatial_caption_interfaces.msg import Caption

    from spatial_caption_ros.core.inputs.image import read_image_file
    from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader
    from spatial_caption_ros.ros import conversions
    from spatial_caption_ros.ros.qos import qos_profile

    ws = tmp_path / 'ws'
    for name in PACKAGES:
        shutil.copytree(REPO / name, ws / 'src' / name,
                        ignore=shutil.ignore_patterns('__pycache__', '*.egg-info', 'build'))
    venv = Path(sys.prefix)
    env = ros2_env({'CMAKE_PREFIX_PATH': str(venv), 'AMENT_PREFIX_PATH': str(venv)})
    build = subprocess.run(
        ['colcon', 'build', '--event-handlers', 'console_direct-',
         '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF'],
        cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=BUILD_TIMEOUT_S, check=False)
    assert build.returncode == 0, build.stdout[-4000:]
    for name in PACKAGES:
        assert f'Finished <<< {name}' in build.stdout, build.stdout[-2000:]

    install = ws / 'install'
    env = _sourced_env(install / 'setup.bash', env)
    env['SPATIAL_CAPTION_MODEL_DIR'] = str(MODELS)   # an install has no ../shared beside it
    prefix = ros2('pkg', 'prefix', 'spatial_caption_ros', env=env)
    assert prefix.stdout.strip() == str(install / 'spatial_caption_ros'), prefix.stdout

    ns, cam = '/colcon', '/colconcam'
    image = read_image_file(BUS)
    intrinsics = CameraIntrinsics.from_horizontal_fov(60.0, image.width, image.height)
    with probe('colcon_probe') as p:
        p.run_clock(sim_per_wall=1.0)
        captions = p.record(Caption, f'{ns}/caption')
        diagnostics = p.record(DiagnosticArray, '/diagnostics')
        image_pub = p.node.create_publisher(Image, f'{cam}/image', qos_profile('reliable'))
        info_pub = p.node.create_publisher(CameraInfo, f'{cam}/camera_info',
                                           qos_profile('reliable'))
        with Launch('spatial_caption.launch.py', f'namespace:={ns}', f'image:={cam}/image',
                    f'camera_info:={cam}/camera_info', 'use_sim_time:=true', env=env) as launch:
            for node in PIPELINE_NODES:
                assert launch.wait_for(active_line(node), 180), (node, launch.output)
            # the nodes run the installed executables
            pids = [int(m.group(1)) for m in launch.wait_for(
                r'process started with pid \[(\d+)\]', 0, count=len(PIPELINE_NODES))]
            for pid in pids:
                cmdline = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
                assert any(a.decode().startswith(str(install)) for a in cmdline), cmdline

            sent: set[float] = set()
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not captions:
                header = FrameHeader(p.sim_ns, 'camera_optical_frame')
                info_pub.publish(conversions.intrinsics_to_camera_info(intrinsics, header))
                image_pub.publish(conversions.color_to_image_msg(image, header))
                sent.add(p.sim_ns / 1e9)
                p.wait(lambda: bool(captions), 1.0)
            assert captions, launch.output
            assert {stamp_s(m) for _, m in captions} <= sent

            # pause the simulation: the nodes' diagnostics timers (1 s of sim time) stop
            p.sim_step_ns = 0
            time.sleep(1.5)
            paused_at = len(diagnostics)
            time.sleep(4.0)
            ours = [m for _, m in diagnostics[paused_at:]
                    if any(s.name.startswith(f'spatial_caption: {ns}/') for s in m.status)]
            assert not ours, 'diagnostics while the sim clock was paused'
            p.sim_step_ns = int(0.05e9)
            for node in PIPELINE_NODES:
                assert p.wait(lambda node=node: node_diagnostics(
                    diagnostics[paused_at:], f'{ns}/{node}'), 30), node
            sim_now = p.sim_ns / 1e9
            code = launch.stop()
    assert code == 0 and 'process has died' not in launch.output, launch.output
    for node in PIPELINE_NODES:
        stamps = node_diagnostics(diagnostics, f'{ns}/{node}')
        assert stamps and all(SIM_START_S <= s <= sim_now for s in stamps), (node, stamps)
    assert os.path.isdir(install / 'spatial_caption_ros' / 'share' / 'spatial_caption_ros' /
                         'launch')
