"""Shared test support: DDS on loopback with a per-run domain, paths to ../shared, rclpy helpers.

Imported by conftest.py before any test module, so the DDS settings are in place before rclpy is
imported anywhere. Rigs and generators used by several test files live beside it in this package.
"""

from __future__ import annotations

import os
from pathlib import Path
import random
import time

import pytest

# Required on these machines (../shared/docs/ENVIRONMENT.md): no DDS traffic off loopback, and a
# domain of our own per run. Set before rclpy is imported anywhere.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 200)))
# Large best-effort images between processes need the shipped Fast DDS profile (see
# docs/ros_interface.md); the runner and the launch files set it the same way.
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(
    Path(__file__).resolve().parents[2] / 'config' / 'fastdds_large_images.xml'))
os.environ.setdefault('PYTHONUNBUFFERED', '1')

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / 'shared'
MODELS = SHARED / 'models'
IMAGES = SHARED / 'data' / 'images'
EVAL = SHARED / 'eval'
YOLO = MODELS / 'yolo11n.onnx'
YOLO_INT8_320 = MODELS / 'yolo11n_int8_320_upstream.onnx'
BUS = IMAGES / 'bus.jpg'



def runner_env() -> dict[str, str]:
    """The environment of a runner subprocess that talks to no node of this test process.

    A domain of its own (still loopback only): nodes a previous test destroyed in this process
    (the same names, /image_source ...) can linger in the DDS graph for a moment, and a runner
    that finds their stale services would talk to them.
    """
    mine = int(os.environ['ROS_DOMAIN_ID'])
    domain = random.choice([d for d in range(1, 201) if d != mine])
    return dict(os.environ, PYTHONPATH=str(REPO / 'spatial_caption_ros'),
                ROS_DOMAIN_ID=str(domain))


needs_shared = pytest.mark.skipif(
    not YOLO.is_file() or not BUS.is_file(),
    reason='../shared/models/yolo11n.onnx and ../shared/data/images/bus.jpg are needed')


def one_line_error(capsys) -> str:
    """The stderr of a command that refused its arguments: one line, no traceback (asserted)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


def spin_until(executor, predicate, timeout: float = 20.0, step: float = 0.05) -> bool:
    """Spin `executor` until predicate() is true or `timeout` seconds pass."""
    from spatial_caption_ros.ros.spin import spin_once   # after the DDS settings above
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        spin_once(executor, step)
    return predicate()
