"""ros/spin.py: an executor step survives an entity destroyed while its wait set was built.

The race itself (a lifecycle cleanup in one executor thread destroying QoS event handlers that
another thread is adding to its wait set, ros2/rclpy#760/#1206) depends on timing. Here a real
waitable plays the destroyed entity: its first add_to_wait_set raises rclpy's InvalidHandle, as a
destroyed event handler does, and it leaves the node, as destroy_subscription makes it.
"""

import pytest
import rclpy
from rclpy._rclpy_pybind11 import InvalidHandle
from rclpy.executors import MultiThreadedExecutor
from rclpy.waitable import NumberOfEntities, Waitable

from spatial_caption_ros.ros.spin import spin_once

pytestmark = pytest.mark.usefixtures('rclpy_context')


class DestroyedMeanwhile(Waitable):
    """A waitable whose handle was destroyed after the executor listed it."""

    def __init__(self, node):
        super().__init__(node.default_callback_group)
        self.node = node

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None

    def get_num_entities(self):
        return NumberOfEntities()

    def add_to_wait_set(self, wait_set):
        self.node.remove_waitable(self)
        raise InvalidHandle('cannot use Destroyable because destruction was requested')

    def is_ready(self, wait_set):
        return False

    def take_data(self):
        return None

    async def execute(self, taken_data):
        return None


def test_an_entity_destroyed_during_the_wait_does_not_end_spinning():
    node = rclpy.create_node('spin_race')
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(1))
    node.add_waitable(DestroyedMeanwhile(node))
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        with pytest.raises(InvalidHandle):        # what ends executor.spin() and the node
            executor.spin_once(timeout_sec=0.1)
        node.add_waitable(DestroyedMeanwhile(node))
        for _ in range(50):                       # the helper repeats the step instead
            spin_once(executor, 0.05)
            if len(ticks) >= 3:
                break
        assert len(ticks) >= 3                    # and the node's other work goes on
    finally:
        executor.shutdown()
        node.destroy_node()


def _started_node_process(namespace: str):
    """A scene_graph node process (run_node), once it logged that it is active."""
    import os
    import subprocess
    import sys
    import time
    proc = subprocess.Popen(
        [sys.executable, '-m', 'spatial_caption_ros.nodes.scene_graph_node', '--ros-args',
         '-r', f'__ns:={namespace}'], env=dict(os.environ), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if line.rstrip().endswith(': active') or time.monotonic() > deadline:
            break
    return proc


@pytest.mark.parametrize('gap_s', [0.0, 0.002, 0.02])
def test_a_node_process_exits_0_on_a_second_sigint_during_its_shutdown(gap_s):
    """Ctrl-C in a terminal: SIGINT to the process group, then `ros2 launch` sends another.

    The second one used to raise KeyboardInterrupt in the node's clean-up: exit code -2, and
    launch reported "process has died".
    """
    import signal
    import time
    proc = _started_node_process(f'/sigint{int(gap_s * 1000)}')
    proc.send_signal(signal.SIGINT)
    time.sleep(gap_s)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
