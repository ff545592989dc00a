"""ros/managed_node.py: the base class refuses to pretend it processed a message."""

from __future__ import annotations

import pytest

from spatial_caption_ros.ros.managed_node import ManagedNode


class ForgotProcess(ManagedNode):
    """A stage node that has an input but forgot to implement process()."""


def test_base_process_fails_loudly_instead_of_counting_a_message_as_processed():
    node = object.__new__(ForgotProcess)   # the contract of the method, without DDS
    with pytest.raises(NotImplementedError, match='ForgotProcess .*process'):
        node.process(object())


def test_every_shipped_stage_node_with_an_input_implements_process():
    from spatial_caption_ros.nodes.caption_node import CaptionNode
    from spatial_caption_ros.nodes.perception_node import PerceptionNode
    from spatial_caption_ros.nodes.scene_graph_node import SceneGraphNode
    from spatial_caption_ros.nodes.visualization_node import VisualizationNode
    for cls in (CaptionNode, PerceptionNode, SceneGraphNode, VisualizationNode):
        assert cls.process is not ManagedNode.process, cls.__name__
