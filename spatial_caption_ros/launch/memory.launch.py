"""The memory node alone (parameters from `config`, section /**/memory).

  ros2 launch spatial_caption_ros memory.launch.py image:=/camera/color/image_raw
"""

from spatial_caption_ros.ros.launch_builder import single_node_description


def generate_launch_description():
    return single_node_description('memory')
