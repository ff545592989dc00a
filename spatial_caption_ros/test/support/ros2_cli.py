"""`ros2 launch` and the `ros2` CLI as a ROS user runs them, for the launch and colcon tests.

Each command runs as its own process with this test run's DDS settings (loopback discovery, the
run's ROS_DOMAIN_ID), the venv first on PATH and the venv in AMENT_PREFIX_PATH, so the `ros2`
found is the one set-up installed (or a ROS install's, when it provides one). Verbs that look at
the graph run with --no-daemon (no ros2 daemon is left running after a test) and a discovery
time of GRAPH_SPIN_S.
"""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

VENV_BIN = Path(sys.executable).parent
# Where the simulated clock of Probe starts: far from the wall clock, so stamps show which one
# a node used.
SIM_START_S = 1000.0
# Seconds a `ros2` verb without the daemon spends discovering the graph (default 0.5 s). On a
# loaded 2-core machine discovery sometimes takes longer ("Node not found"): the verb is then
# run again, up to GRAPH_ATTEMPTS times, as a user would.
GRAPH_SPIN_S = 1.5
GRAPH_ATTEMPTS = 4
NOT_DISCOVERED = ('Node not found', 'Unable to find node', 'not a lifecycle node')
GRAPH_VERBS = {('node', 'list'), ('topic', 'list'), ('topic', 'echo'), ('lifecycle', 'get'),
               ('lifecycle', 'set'), ('param', 'set'), ('param', 'get')}


def ros2_env(extra: dict[str, str] | None = None, prefix: Path | None = None) -> dict[str, str]:
    """Environment of this run for ros2 processes (`prefix`: an install space to put first)."""
    env = dict(os.environ)
    env['PATH'] = f'{VENV_BIN}{os.pathsep}{env.get("PATH", "")}'
    paths = [str(Path(sys.prefix))] + [p for p in env.get('AMENT_PREFIX_PATH', '').split(
        os.pathsep) if p and p != sys.prefix]
    if prefix is not None:
        paths.insert(0, str(prefix))
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(paths)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    env.update(extra or {})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST' and env.get('ROS_DOMAIN_ID')
    return env


def ros2(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0,
         expect: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `ros2 ARGS` to the end; stdout and stderr together in .stdout.

    A graph verb runs again while it did not discover the node, or while its output lacks one of
    `expect` (at most GRAPH_ATTEMPTS times; the last result is returned either way).
    """
    graph = tuple(args[:2]) in GRAPH_VERBS
    if graph:
        args = (*args, '--no-daemon', '--spin-time', str(GRAPH_SPIN_S))
    for _ in range(GRAPH_ATTEMPTS if graph else 1):
        result = subprocess.run(['ros2', *args], env=env or ros2_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=timeout,
                                check=False)
        if not any(text in result.stdout for text in NOT_DISCOVERED) and \
                all(text in result.stdout for text in expect):
            break
    return result


class Launch:
    """`ros2 launch spatial_caption_ros FILE ARGS...` in the background, its console collected."""

    def __init__(self, launch_file: str, *arguments: str, env: dict[str, str] | None = None,
                 package: str = 'spatial_caption_ros') -> None:
        self.command = ['ros2', 'launch', package, launch_file, *arguments]
        self.proc = subprocess.Popen(self.command, env=env or ros2_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip('\n'))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return '\n'.join(self.lines)

    def wait_for(self, pattern: str, timeout: float, count: int = 1) -> list[re.Match]:
        """Wait until `count` console lines match `pattern`; their matches (fewer on timeout)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count or self.proc.poll() is not None and \
                        not self._reader.is_alive():
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return found
                self._cond.wait(min(left, 0.5))

    def stop(self, timeout: float = 20.0) -> int | str:
        """Ctrl-C as in a terminal (SIGINT to the process group); escalate if it hangs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code: int | str = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            code = 'SIGKILL'
        self._reader.join(5)
        return code

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def active_line(node: str) -> str:
    """Console line of `ros2 launch` saying that `node` went active."""
    return rf'\[{node}_node-\d+\] \[INFO\] \[[\d.]+\] \[[\w.]*{node}\]: active'



class Probe:
    """A test node: publishes /clock (sim time) and records what arrives on topics."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rosgraph_msgs.msg import Clock
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}
        self.sim_ns = int(SIM_START_S * 1e9)
        self.sim_step_ns = 0
        self._clock_pub = self.node.create_publisher(Clock, '/clock', 10)
        self._clock_timer = None
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from spatial_caption_ros.ros.spin import spin_once
        while self.executor.context.ok() and not getattr(self, 'closed', False):
            spin_once(self.executor, 0.05)

    def run_clock(self, sim_per_wall: float, period: float = 0.05) -> None:
        """Publish /clock every `period` wall seconds, advancing sim_per_wall * period."""
        self.sim_step_ns = int(sim_per_wall * period * 1e9)
        if self._clock_timer is None:
            self._clock_timer = self.node.create_timer(period, self._tick)

    def _tick(self) -> None:
        from rosgraph_msgs.msg import Clock
        from spatial_caption_ros.ros import conversions
        self.sim_ns += self.sim_step_ns
        self._clock_pub.publish(Clock(clock=conversions.ns_to_stamp(self.sim_ns)))

    def record(self, msg_type, topic: str, qos: str = 'reliable') -> list:
        from spatial_caption_ros.ros.qos import qos_profile
        messages = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, lambda m: messages.append(
            (time.monotonic(), m)), qos_profile(qos))
        return messages

    def wait(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.closed = True
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()


@contextmanager
def probe(name: str):
    p = Probe(name)
    try:
        yield p
    finally:
        p.close()


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec / 1e9


def node_diagnostics(messages: list, fqn: str) -> list[float]:
    """Stamps (s) of /diagnostics messages whose status names node `fqn`."""
    return [stamp_s(m) for _, m in messages
            if any(s.name == f'spatial_caption: {fqn}' for s in m.status)]
