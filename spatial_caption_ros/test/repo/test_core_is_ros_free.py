"""The core library is ROS-free: nothing under core/ imports rclpy or a message package.

Checked two ways: statically (every import statement in every core module, including imports
inside functions) and at run time (importing every core module in a fresh interpreter leaves no
ROS module in sys.modules).
"""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

from support import REPO

CORE = REPO / 'spatial_caption_ros' / 'spatial_caption_ros' / 'core'
# ament_index_python is allowed: core/runtime/resources.py uses it, guarded, only to find the
# package's share/ files in a colcon install (a file lookup, no ROS runtime or message).
ROS_ROOTS = {'rclpy', 'rosidl_runtime_py', 'launch', 'launch_ros', 'builtin_interfaces',
             'rcl_interfaces', 'lifecycle_msgs', 'spatial_caption_interfaces', 'tf2_ros',
             'cv_bridge', 'message_filters'}


def _is_ros(module: str) -> bool:
    root = module.split('.')[0]
    return (root in ROS_ROOTS or root.endswith('_msgs') or root.endswith('_srvs')
            or module.startswith('spatial_caption_ros.ros') or module.startswith(
                'spatial_caption_ros.nodes'))


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_the_rule_recognises_ros_imports():
    assert _is_ros('rclpy.node') and _is_ros('sensor_msgs.msg') and _is_ros('std_srvs.srv')
    assert _is_ros('spatial_caption_ros.ros.conversions')
    assert not _is_ros('numpy') and not _is_ros('spatial_caption_ros.core.types')


def test_no_core_module_imports_ros_statically():
    modules = sorted(CORE.rglob('*.py'))
    assert len(modules) > 40
    offending = [f'{p.relative_to(REPO)}:{line}: {name}'
                 for p in modules for line, name in _imports(p) if _is_ros(name)]
    assert not offending, '\n'.join(offending)


def test_importing_all_of_core_loads_no_ros_module():
    names = ['spatial_caption_ros.' + '.'.join(p.relative_to(CORE.parent).with_suffix('').parts)
             for p in sorted(CORE.rglob('*.py'))]
    names = [n.removesuffix('.__init__') for n in names]
    code = ('import importlib, sys\n'
            f'for n in {names!r}:\n'
            '    importlib.import_module(n)\n'
            'print("\\n".join(sys.modules))\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.split()
    assert 'spatial_caption_ros.core.perception.pipeline' in loaded
    ros = sorted(m for m in loaded if _is_ros(m))
    assert not ros, f'ROS modules loaded by core: {ros}'
