"""Entry-point helper: run one node class in its own process until Ctrl-C or shutdown."""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor


def run_node(node_cls, args=None) -> None:
    """rclpy.init, spin the node on a MultiThreadedExecutor, shut down cleanly on Ctrl-C."""
    rclpy.init(args=args)
    node = None
    try:
        node = node_cls()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
