"""rviz2 with the shipped configuration: camera image, annotated image, scene-graph markers.

  ros2 launch spatial_caption_ros rviz.launch.py
"""

from spatial_caption_ros.ros.launch_builder import rviz_description


def generate_launch_description():
    return rviz_description()
