"""Launch descriptions of the graph, for the files in launch/ (Python launch, ROS 2 Kilted).

The launch files stay a few lines each and call these functions, so the full pipeline, each node
alone, the demo and rviz all use the same node names, executables, parameter file, camera remaps
and Fast DDS profile as the runner (ros/graph.py). `launch` and `launch_ros` are imported inside
the functions: this module (and LAUNCH_ARGUMENTS, which the docs are generated from) imports
without them, e.g. on a machine that has only the rclpy wheels.
"""

from __future__ import annotations

from dataclasses import dataclass

from spatial_caption_ros.core.runtime.resources import package_file
from spatial_caption_ros.ros.graph import (
    CAMERA_TOPICS, COMPRESSED_SUFFIX, DDS_PROFILE_FILE, EXECUTABLES, OPTIONAL_NODES, PACKAGE,
    PARAMS_FILE, PIPELINE_NODES, RVIZ_CONFIG_FILE)
from spatial_caption_ros.ros.interface import NODE_TOPICS


@dataclass(frozen=True)
class LaunchArgument:
    """A launch argument: name, default ('' and required=True: must be given), description."""

    name: str
    default: str
    description: str
    required: bool = False


def _share(relative: str) -> str:
    return str(package_file(relative))


COMMON_ARGUMENTS = (
    LaunchArgument('config', _share(PARAMS_FILE),
                   'Parameter file of every node (sections `/**/<node name>`).'),
    LaunchArgument('namespace', '', 'Namespace of the nodes and their relative topics.'),
    LaunchArgument('log_level', 'info', 'Log level of the nodes (debug, info, warn, error).'),
    LaunchArgument('use_sim_time', 'false',
                   'Every node takes its time from /clock (rosgraph_msgs/Clock): stamps, timers, '
                   'rates, the pace timeout and the caption periods follow the simulation or a '
                   'played-back bag.'),
    LaunchArgument('use_dds_profile', 'true',
                   'Set FASTDDS_DEFAULT_PROFILES_FILE to `dds_profile` for the nodes (large '
                   'best-effort images between processes need it with Fast DDS).'),
    LaunchArgument('dds_profile', _share(DDS_PROFILE_FILE), 'Fast DDS XML profile.'),
)
CAMERA_ARGUMENTS = (
    LaunchArgument('image', '/camera/image_raw',
                   'Camera image topic (`image`; `image/compressed` maps to '
                   '`<image>/compressed`).'),
    LaunchArgument('camera_info', '/camera/camera_info', 'CameraInfo topic of that camera.'),
    LaunchArgument('depth', '/camera/depth/image_raw',
                   'Aligned depth image topic (depth inset, sensor depth source).'),
)
RVIZ_ARGUMENTS = (
    LaunchArgument('use_rviz', 'false', 'Also start rviz2 with `rviz_config`.'),
    LaunchArgument('rviz_config', _share(RVIZ_CONFIG_FILE),
                   'rviz2 configuration (camera image, annotated image, markers).'),
)
CAPTION_ARGUMENTS = (
    LaunchArgument('log_captions', 'true',
                   'The caption node also logs each caption at INFO (captions on the console).'),
)
MEMORY_ARGUMENTS = (
    LaunchArgument('use_memory', 'false',
                   'Also start the memory node (objects remembered in `world_frame`, changes, '
                   'queries; docs/memory.md).'),
)
DEMO_ARGUMENTS = (
    LaunchArgument('source', '', 'Folder of images, image file or video file to publish.',
                   required=True),
    LaunchArgument('rate', '2.0', 'Frames per second of the image source.'),
    LaunchArgument('loop', 'true', 'Start the source again after its last frame.'),
)

# Launch file -> the arguments it declares (documented in docs/ros_interface.md).
LAUNCH_FILES = {
    'spatial_caption.launch.py': (COMMON_ARGUMENTS + CAMERA_ARGUMENTS + CAPTION_ARGUMENTS
                                  + RVIZ_ARGUMENTS + MEMORY_ARGUMENTS),
    'demo.launch.py': (COMMON_ARGUMENTS + CAMERA_ARGUMENTS + CAPTION_ARGUMENTS + RVIZ_ARGUMENTS
                       + MEMORY_ARGUMENTS + DEMO_ARGUMENTS),
    'perception.launch.py': COMMON_ARGUMENTS + CAMERA_ARGUMENTS,
    'scene_graph.launch.py': COMMON_ARGUMENTS,
    'caption.launch.py': COMMON_ARGUMENTS + CAPTION_ARGUMENTS,
    'visualization.launch.py': COMMON_ARGUMENTS + CAMERA_ARGUMENTS,
    'memory.launch.py': COMMON_ARGUMENTS + CAMERA_ARGUMENTS,
    'rviz.launch.py': RVIZ_ARGUMENTS[1:],
}
LAUNCH_PURPOSE = {
    'spatial_caption.launch.py': 'The full pipeline on a live camera (perception, scene_graph, '
                                 'caption, visualization), optionally rviz.',
    'demo.launch.py': 'Simulation/demo: the image source publishes a folder or video as the '
                      'camera, then the full pipeline, optionally rviz.',
    'perception.launch.py': 'The perception node alone.',
    'scene_graph.launch.py': 'The scene-graph node alone.',
    'caption.launch.py': 'The caption node alone.',
    'visualization.launch.py': 'The visualization node alone.',
    'memory.launch.py': 'The memory node alone.',
    'rviz.launch.py': 'rviz2 with the shipped configuration.',
}


def _declare(arguments) -> list:
    from launch.actions import DeclareLaunchArgument
    out = []
    for arg in arguments:
        if arg.required:
            out.append(DeclareLaunchArgument(arg.name, description=arg.description))
        else:
            out.append(DeclareLaunchArgument(arg.name, default_value=arg.default,
                                             description=arg.description))
    return out


def _dds_profile_action():
    from launch.actions import SetEnvironmentVariable
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    return SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                                  LaunchConfiguration('dds_profile'),
                                  condition=IfCondition(LaunchConfiguration('use_dds_profile')))


def camera_topics(node: str) -> list[str]:
    """The camera topics (image, image/compressed, camera_info, depth) `node` has."""
    return [t.name for t in NODE_TOPICS[node] if t.name in CAMERA_TOPICS]


def _camera_remappings(node: str) -> list:
    """(from, to) pairs for the node's camera topics, from the camera launch arguments.

    Same mapping as ros/graph.py camera_remaps(), which the runner uses.
    """
    from launch.substitutions import LaunchConfiguration
    image = LaunchConfiguration('image')
    targets = {'image': image, 'image/compressed': [image, COMPRESSED_SUFFIX],
               'camera_info': LaunchConfiguration('camera_info'),
               'depth': LaunchConfiguration('depth')}
    return [(topic, targets[topic]) for topic in camera_topics(node)]


def node_action(node: str, extra_parameters: dict | None = None, condition=None):
    """The launch_ros Node of one graph node: name, parameter file, camera remaps, log level.

    Parameters: the `config` file, then use_sim_time, then `extra_parameters` (later wins).
    """
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue
    parameters = [LaunchConfiguration('config'), {
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}]
    if extra_parameters:
        parameters.append(extra_parameters)
    return Node(package=PACKAGE, executable=EXECUTABLES[node], name=node,
                namespace=LaunchConfiguration('namespace'), parameters=parameters,
                remappings=_camera_remappings(node), output='screen', emulate_tty=True,
                ros_arguments=['--log-level', LaunchConfiguration('log_level')],
                condition=condition)


def rviz_action(condition=None):
    """rviz2 with the shipped (or given) configuration."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    return Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                arguments=['-d', LaunchConfiguration('rviz_config')], condition=condition)


def nodes_description(launch_file: str, nodes: tuple[str, ...], with_rviz: bool = False,
                      extra_parameters: dict[str, dict] | None = None):
    """A LaunchDescription: the arguments of `launch_file`, the DDS profile, the nodes."""
    from launch import LaunchDescription
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    actions = _declare(LAUNCH_FILES[launch_file]) + [_dds_profile_action()]
    actions += [node_action(n, (extra_parameters or {}).get(n)) for n in nodes]
    if any(a.name == 'use_memory' for a in LAUNCH_FILES[launch_file]):
        actions += [node_action(n, condition=IfCondition(LaunchConfiguration(f'use_{n}')))
                    for n in OPTIONAL_NODES]
    if with_rviz:
        actions.append(rviz_action(IfCondition(LaunchConfiguration('use_rviz'))))
    return LaunchDescription(actions)


def _caption_parameters() -> dict:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.parameter_descriptions import ParameterValue
    return {'log_captions': ParameterValue(LaunchConfiguration('log_captions'), value_type=bool)}


def pipeline_description():
    """spatial_caption.launch.py: the pipeline on a live camera."""
    return nodes_description('spatial_caption.launch.py', PIPELINE_NODES, with_rviz=True,
                             extra_parameters={'caption': _caption_parameters()})


def demo_description():
    """demo.launch.py: the image source as the camera, then the pipeline."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.parameter_descriptions import ParameterValue
    # launch_ros parses substituted values as YAML: the path must stay a string even when it
    # looks like a number; rate and loop are parsed (2.0 -> float, true -> bool).
    source = {'source': ParameterValue(LaunchConfiguration('source'), value_type=str),
              'rate': LaunchConfiguration('rate'), 'loop': LaunchConfiguration('loop')}
    return nodes_description('demo.launch.py', ('image_source',) + PIPELINE_NODES,
                             with_rviz=True, extra_parameters={'image_source': source,
                                                               'caption': _caption_parameters()})


def single_node_description(node: str):
    """<node>.launch.py: one node alone."""
    extra = {'caption': _caption_parameters()} if node == 'caption' else None
    return nodes_description(f'{node}.launch.py', (node,), extra_parameters=extra)


def rviz_description():
    """rviz.launch.py: rviz2 alone."""
    from launch import LaunchDescription
    return LaunchDescription(_declare(LAUNCH_FILES['rviz.launch.py']) + [rviz_action()])
