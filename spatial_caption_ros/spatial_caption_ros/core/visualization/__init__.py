"""What a person sees: annotated images and rviz marker descriptions (ROS-free)."""
