"""The scene_graph node alone (parameters from `config`, section /**/scene_graph).

  ros2 launch spatial_caption_ros scene_graph.launch.py
"""

from spatial_caption_ros.ros.launch_builder import single_node_description


def generate_launch_description():
    return single_node_description('scene_graph')
