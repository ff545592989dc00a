"""use_sim_time: the nodes' timeouts and periods follow /clock, not the wall clock.

Real rclpy nodes in this process with use_sim_time and a /clock that this test publishes while
the wall clock runs much faster than the simulation. The launch tests (test_launch_files.py,
test_colcon_workspace.py) check stamps, rates and timers of every node through `ros2 launch`.
"""

from __future__ import annotations

import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from spatial_caption_interfaces.msg import Caption, SceneGraph

from spatial_caption_ros.core.types import FrameHeader
from spatial_caption_ros.nodes.caption_node import CaptionNode
from spatial_caption_ros.nodes.image_source_node import ImageSourceNode
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile
from support import BUS, needs_shared
from support.scenes import street

pytestmark = pytest.mark.usefixtures('rclpy_context')
SIM_START_NS = 100 * 10**9
# The simulation advances SIM_STEP_NS per WALL_STEP_S of wall clock: half as fast.
SIM_STEP_NS = 10**8
WALL_STEP_S = 0.2


def _run_slow_clock(ex, clock_pub, done, on_step=None, timeout: float = 60.0) -> int:
    """Publish a /clock running at half the wall rate until done(); the last simulated time."""
    sim_ns = SIM_START_NS
    wall_end = time.monotonic() + timeout
    while not done() and time.monotonic() < wall_end:
        sim_ns += SIM_STEP_NS
        clock_pub.publish(Clock(clock=conversions.ns_to_stamp(sim_ns)))
        if on_step is not None:
            on_step(sim_ns)
        step_end = time.monotonic() + WALL_STEP_S
        while time.monotonic() < step_end:
            ex.spin_once(timeout_sec=0.02)
    return sim_ns


@needs_shared
def test_pace_timeout_runs_on_simulated_time():
    """Paced on captions that never come: the next frame waits pace_timeout SIMULATED seconds.

    The simulation advances 0.1 s per 0.2 s of wall clock: a wall-clock timeout of 1 s would
    release the next frame after 0.5 simulated seconds.
    """
    node = ImageSourceNode(namespace='/simpace', parameter_overrides=[
        Parameter('use_sim_time', value=True), Parameter('source', value=str(BUS)),
        Parameter('loop', value=True), Parameter('rate', value=10.0),
        Parameter('pace_on', value='caption'), Parameter('pace_timeout', value=1.0)])
    driver = rclpy.create_node('sim_driver', namespace='/simpace')
    clock_pub = driver.create_publisher(Clock, '/clock', 10)
    stamps: list[int] = []
    driver.create_subscription(Image, 'image', lambda m: stamps.append(
        conversions.stamp_to_ns(m.header.stamp)), qos_profile('reliable'))
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(driver)
    try:
        assert node.active, node.last_error
        _run_slow_clock(ex, clock_pub, lambda: len(stamps) >= 2)
        assert len(stamps) >= 2, stamps
        assert stamps[0] >= SIM_START_NS          # stamped with simulated time
        waited_s = (stamps[1] - stamps[0]) / 1e9
        assert 1.0 <= waited_s <= 1.25, waited_s  # pace_timeout in simulated seconds
        assert node.counters.snapshot()['errors.pace_timeout'] == 1
    finally:
        ex.shutdown()
        node.destroy_node()
        driver.destroy_node()


def test_caption_min_period_runs_on_simulated_time():
    """min_period 1 s: captions are 1 SIMULATED second apart (2 s of wall clock here)."""
    node = CaptionNode(namespace='/simcap', parameter_overrides=[
        Parameter('use_sim_time', value=True), Parameter('generator', value='template'),
        Parameter('min_period', value=1.0)])
    driver = rclpy.create_node('sim_driver', namespace='/simcap')
    clock_pub = driver.create_publisher(Clock, '/clock', 10)
    graph_pub = driver.create_publisher(SceneGraph, 'scene_graph', qos_profile('reliable'))
    captions: list[tuple[float, int]] = []
    driver.create_subscription(Caption, 'caption', lambda m: captions.append(
        (time.monotonic(), conversions.stamp_to_ns(m.header.stamp))), qos_profile('reliable'))

    def publish_graph(sim_ns: int) -> None:   # a new graph every step, stamped in sim time
        graph = street(True)
        graph.header = FrameHeader(sim_ns, 'camera_optical_frame')
        graph_pub.publish(conversions.scene_graph_to_msg(graph))
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(driver)
    try:
        assert node.active, node.last_error
        _run_slow_clock(ex, clock_pub, lambda: len(captions) >= 3, publish_graph)
        assert len(captions) >= 3, captions
        sim_gaps = [(b[1] - a[1]) / 1e9 for a, b in zip(captions[1:], captions[2:], strict=False)]
        wall_gaps = [b[0] - a[0] for a, b in zip(captions[1:], captions[2:], strict=False)]
        assert all(0.9 <= g <= 1.3 for g in sim_gaps), sim_gaps
        assert all(g >= 1.6 for g in wall_gaps), wall_gaps    # the wall clock ran twice as fast
    finally:
        ex.shutdown()
        node.destroy_node()
        driver.destroy_node()


@needs_shared
def test_a_looped_source_keeps_its_rate_across_the_wrap(tmp_path):
    """Two images looped at 10 Hz of simulated time: every frame 0.1 s after the previous one.

    The clock advances one period per step, so each timer tick publishes one frame; the source
    used to spend the tick at the end of the folder starting over (a 0.2 s gap at each wrap).
    """
    folder = tmp_path / 'frames'
    folder.mkdir()
    for name in ('a.jpg', 'b.jpg'):
        (folder / name).write_bytes(BUS.read_bytes())
    node = ImageSourceNode(namespace='/simloop', parameter_overrides=[
        Parameter('use_sim_time', value=True), Parameter('source', value=str(folder)),
        Parameter('loop', value=True), Parameter('rate', value=10.0)])
    driver = rclpy.create_node('sim_driver', namespace='/simloop')
    clock_pub = driver.create_publisher(Clock, '/clock', 10)
    stamps: list[int] = []
    driver.create_subscription(Image, 'image', lambda m: stamps.append(
        conversions.stamp_to_ns(m.header.stamp)), qos_profile('reliable'))
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(driver)
    try:
        assert node.active, node.last_error
        _run_slow_clock(ex, clock_pub, lambda: len(stamps) >= 7)
        gaps = [(b - a) / 1e9 for a, b in zip(stamps, stamps[1:], strict=False)]
        assert len(gaps) >= 6 and all(g == pytest.approx(0.1, abs=0.01) for g in gaps), gaps
    finally:
        ex.shutdown()
        node.destroy_node()
        driver.destroy_node()
