"""Spinning that survives rclpy's destroyed-entity race; run_node for each node's process.

The nodes' processes spin a SingleThreadedExecutor (node_executor): their callbacks only store
the newest message for the node's worker thread (ros/managed_node.py), answer services or
publish diagnostics, so one thread serves them all. A MultiThreadedExecutor hands every callback
to a thread pool: measured on the perception node on 2 loaded cores (docs/perception_engine.md,
"The node path") publish -> subscription callback took 5.2-6.4 ms with it against 1.1-1.4 ms,
and its threads competed with the inference threads. Lifecycle transitions run one at a time
either way.

rclpy's executors collect the node's waitables (the QoS event handlers of subscriptions and
publishers among them) for each wait set. A lifecycle cleanup destroys the stage's subscriptions
and publishers; when that runs in one thread of a MultiThreadedExecutor while another thread
builds the next wait set, that thread raises InvalidHandle ("cannot use Destroyable because
destruction was requested": ros2/rclpy#760, #1206, #1355). Uncaught, it ends `executor.spin()`
and with it the node process. The entity is gone and the next wait set no longer has it, so the
step is simply repeated.
"""

from __future__ import annotations

import os
import signal

import rclpy
from rclpy._rclpy_pybind11 import InvalidHandle
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor


def spin_once(executor: Executor, timeout_sec: float | None = None) -> None:
    """executor.spin_once(timeout_sec), repeating the wait when an entity was destroyed in it."""
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    except InvalidHandle:
        # The wait set held an entity destroyed meanwhile (see the module docstring); rclpy
        # drops the broken wait generator and builds the next wait set without it.
        pass


def spin(executor: Executor) -> None:
    """executor.spin() that survives the destroyed-entity race (see spin_once)."""
    while rclpy.ok():
        spin_once(executor, timeout_sec=0.5)


# On Ctrl-C / SIGTERM a node process waits this long for the frame in hand (the runner stops the
# whole graph within 2 s); longer, e.g. an LLM generation llama.cpp cannot abort, is left behind.
INTERRUPT_WORKER_WAIT_S = 0.5


def node_executor(context=None) -> Executor:
    """The executor a node process spins (see the module docstring for why single-threaded)."""
    return SingleThreadedExecutor(context=context)


def run_node(node_cls, args=None) -> None:
    """rclpy.init, spin the node on node_executor(), shut down cleanly on Ctrl-C.

    Exits 0 on Ctrl-C / SIGINT, as `ros2 launch` expects of a node that stopped cleanly.
    """
    rclpy.init(args=args)
    node = None
    interrupted = False
    try:
        node = node_cls()
        executor = node_executor()
        executor.add_node(node)
        spin(executor)
        interrupted = True          # spin() ends when the context is shut down (a signal)
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    finally:
        # Ctrl-C in a terminal signals the whole process group, then `ros2 launch` signals each
        # node again: a second SIGINT must not interrupt the clean-up (the node would die with
        # exit code -2 and launch report "process has died"). One that arrived just before is
        # raised by this very call (its Python code checks pending signals): then again.
        # SIGTERM still ends a hung node.
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        worker = getattr(node, 'worker', None)
        if interrupted and worker is not None and not worker.stop(INTERRUPT_WORKER_WAIT_S):
            # Still busy: releasing its models under it could crash, waiting could take
            # seconds. Nothing is left to publish (the context is down): end the process.
            rclpy.try_shutdown()
            os._exit(0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
