"""Rigs of the node and system tests: a harness node that feeds a node under test and records
what comes out, the camera stand-in built on it, the lifecycle rig, and diagnostics as plain
dicts (one copy each instead of one per test file)."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, Image
from spatial_caption_interfaces.msg import Caption, DetectionArray, SceneGraph

from support import BUS
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader
from spatial_caption_ros.ros import conversions
from spatial_caption_ros.ros.qos import qos_profile

OUTPUTS = {'detections': DetectionArray, 'scene_graph': SceneGraph, 'caption': Caption}


def diagnostic_values(status: DiagnosticStatus) -> dict[str, str]:
    """The key/values of one diagnostics status."""
    return {kv.key: kv.value for kv in status.values}


class Harness:
    """A test node beside the node under test: a reliable publisher per input topic (`pubs`),
    a recorder per output topic (`out`: messages, `arrived`: their arrival times on the test
    clock) and the /diagnostics statuses of the nodes in its namespace (`diagnostics`)."""

    def __init__(self, namespace: str, publishes: dict[str, type], records: dict[str, type],
                 name: str = 'test_harness') -> None:
        self.namespace = namespace
        self.node = rclpy.create_node(name, namespace=namespace)
        reliable = qos_profile('reliable')
        self.pubs = {topic: self.node.create_publisher(msg_type, topic, reliable)
                     for topic, msg_type in publishes.items()}
        self.out: dict[str, list] = {topic: [] for topic in records}
        self.arrived: dict[str, list[float]] = {topic: [] for topic in records}
        for topic, msg_type in records.items():
            self.node.create_subscription(msg_type, topic, self._recorder(topic), reliable)
        self.diagnostics: list[tuple[float, DiagnosticStatus]] = []
        self.node.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: self.diagnostics.extend((time.monotonic(), s) for s in m.status
                                              if f'{namespace}/' in s.name), 100)

    def _recorder(self, topic: str):
        def record(msg) -> None:
            self.out[topic].append(msg)
            self.arrived[topic].append(time.monotonic())
        return record

    def connected(self) -> bool:
        """Every input topic has a subscriber and every recorded topic a publisher."""
        return (all(p.get_subscription_count() >= 1 for p in self.pubs.values())
                and all(self.node.count_publishers(topic) >= 1 for topic in self.out))

    def stamps(self, topic: str) -> list[int]:
        return [conversions.stamp_to_ns(m.header.stamp) for m in self.out[topic]]

    def statuses(self, node: str) -> list[DiagnosticStatus]:
        """The diagnostics statuses received from `node` of this namespace, oldest first."""
        return [s for _, s in self.diagnostics if s.name.endswith(f'{self.namespace}/{node}')]


class Camera(Harness):
    """A camera driver stand-in (reliable QoS, so no frame is lost to the test): bus.jpg with
    its camera_info (60 degree field of view) and, when given, an aligned depth image; records
    detections, scene graphs and captions."""

    def __init__(self, namespace: str, depth: np.ndarray | None = None,
                 frame_id: str = 'camera_optical_frame', name: str = 'test_camera') -> None:
        super().__init__(namespace, {'image': Image, 'camera_info': CameraInfo, 'depth': Image},
                         OUTPUTS, name)
        self.image_pub, self.info_pub, self.depth_pub = (
            self.pubs['image'], self.pubs['camera_info'], self.pubs['depth'])
        self.image = read_image_file(BUS)
        self.intrinsics = CameraIntrinsics.from_horizontal_fov(60.0, self.image.width,
                                                               self.image.height)
        self.depth = depth
        self.frame_id = frame_id

    @property
    def detections(self) -> list[DetectionArray]:
        return self.out['detections']

    def publish(self, stamp_ns: int, depth: np.ndarray | None = None, encoding: str = '32FC1',
                depth_stamp_ns: int | None = None, with_info: bool = True) -> None:
        """camera_info, then the depth image (this one, else the camera's), then the image."""
        header = FrameHeader(stamp_ns, self.frame_id)
        if with_info:
            self.info_pub.publish(conversions.intrinsics_to_camera_info(self.intrinsics, header))
        depth = self.depth if depth is None else depth
        if depth is not None:
            depth_header = FrameHeader(depth_stamp_ns or stamp_ns, self.frame_id)
            self.depth_pub.publish(conversions.array_to_image_msg(depth, depth_header, encoding))
        self.image_pub.publish(conversions.color_to_image_msg(self.image, header))

    def connected(self, depth: bool = False) -> bool:
        """The perception node reads the image (and depth) and publishes detections."""
        return (self.image_pub.get_subscription_count() >= 1
                and (not depth or self.depth_pub.get_subscription_count() >= 1)
                and self.node.count_publishers('detections') >= 1)


class LifecycleRig:
    """A node under test, a client node for its lifecycle and parameter services, and an
    executor spinning both (the lifecycle and model-fault tests build on it)."""

    def __init__(self, node, client_name: str) -> None:
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter_client import AsyncParameterClient

        from spatial_caption_ros.ros.lifecycle_client import LifecycleClient
        from spatial_caption_ros.ros.spin import spin_once
        self.node = node
        namespace = node.get_namespace()
        target = f'{namespace.rstrip("/")}/{node.get_name()}'
        self.client = rclpy.create_node(client_name, namespace=namespace)
        self.ex = MultiThreadedExecutor()
        self.ex.add_node(self.node)
        self.ex.add_node(self.client)
        self.lifecycle = LifecycleClient(self.client, target,
                                         spin=lambda: spin_once(self.ex, 0.05))
        self.params = AsyncParameterClient(self.client, target)
        assert self.lifecycle.wait_for_services(10.0)

    def set_parameter(self, name: str, value):
        """Set one parameter through the parameter service; the SetParametersResult."""
        from rclpy.parameter import Parameter

        from support import spin_until
        future = self.params.set_parameters([Parameter(name, value=value)])
        assert spin_until(self.ex, future.done, timeout=10)
        return future.result().results[0]

    def close(self) -> None:
        self.ex.shutdown()
        self.node.destroy_node()
        self.client.destroy_node()
