"""QoS profiles chosen by validated names (never raw integers in parameters).

- sensor_data: best effort, keep last 1. Camera input: the newest frame wins, nothing queues.
- reliable: reliable, keep last 5. Derived topics (detections, scene graphs, captions).
- reliable_latest: reliable, keep last 1. Inputs of slow stages where only the newest matters
  but every message must arrive (batch runs over a folder of images).
- latched: reliable, transient local, keep last 1. State that late joiners need.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

QOS_NAMES = ('sensor_data', 'reliable', 'reliable_latest', 'latched')
# /tf and /tf_static as tf2's own listener subscribes to them (every node reading the tree).
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def qos_profile(name: str) -> QoSProfile:
    """The QoS profile called `name` (one of QOS_NAMES)."""
    if name == 'sensor_data':
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                          reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)
    if name == 'reliable':
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    if name == 'reliable_latest':
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    if name == 'latched':
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    raise ValueError(f'unknown QoS profile {name!r}; use one of {", ".join(QOS_NAMES)}')
