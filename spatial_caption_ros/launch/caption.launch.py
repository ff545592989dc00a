"""The caption node alone (parameters from `config`, section /**/caption).

  ros2 launch spatial_caption_ros caption.launch.py
"""

from spatial_caption_ros.ros.launch_builder import single_node_description


def generate_launch_description():
    return single_node_description('caption')
