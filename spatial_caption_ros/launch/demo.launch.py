"""Simulation/demo: the image source publishes a folder or video as the camera, then the pipeline.

  ros2 launch spatial_caption_ros demo.launch.py source:=/path/to/images use_rviz:=true
"""

from spatial_caption_ros.ros.launch_builder import demo_description


def generate_launch_description():
    return demo_description()
