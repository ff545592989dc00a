"""The full pipeline on a live camera: perception, scene_graph, caption, visualization (+ rviz).

  ros2 launch spatial_caption_ros spatial_caption.launch.py \
      image:=/camera/color/image_raw camera_info:=/camera/color/camera_info use_rviz:=true

Arguments: `ros2 launch spatial_caption_ros spatial_caption.launch.py --show-args` or
docs/ros_interface.md. Same nodes, names, parameter file and remaps as `spatial-caption-run`.
"""

from spatial_caption_ros.ros.launch_builder import pipeline_description


def generate_launch_description():
    return pipeline_description()
