"""The launch files, checked without a ROS install.

`launch` and `launch_ros` cannot be installed on this machine (not on PyPI). This module installs
a FAKE of the small part of their API the launch files use (a stand-in for the missing packages,
recording what is constructed, with the real keyword names so a typo fails), runs every
launch/*.launch.py's generate_launch_description(), and checks that every executable, parameter
file, remap, argument and file it references exists, and that the launch files start the same
graph as the runner: same node names, same YAML, same camera remaps, same DDS profile.
"""

import ast
import importlib.util
from pathlib import Path
import py_compile
import sys
import types

import pytest
import yaml

from spatial_caption_ros.params_file import load_params
from spatial_caption_ros.core.inputs.sources import ImageSourceConfig
from spatial_caption_ros.ros.graph import (
    ALL_NODES, camera_remaps, EXECUTABLES, GRAPH_NODES, OPTIONAL_NODES, PACKAGE, PIPELINE_NODES)
from spatial_caption_ros.ros.interface import node_topics
from spatial_caption_ros.ros.launch_builder import camera_topics, LAUNCH_FILES

PKG = Path(__file__).resolve().parents[2]
LAUNCH_DIR = PKG / 'launch'


# ------------------------------------------------------------------ fake launch / launch_ros

class LaunchConfiguration:
    """Fake launch.substitutions.LaunchConfiguration."""

    def __init__(self, variable_name, *, default=None):
        self.name = variable_name

    def __eq__(self, other):
        return isinstance(other, LaunchConfiguration) and other.name == self.name

    def __repr__(self):
        return f'LaunchConfiguration({self.name!r})'


class IfCondition:
    """Fake launch.conditions.IfCondition."""

    def __init__(self, predicate_expression):
        self.predicate = predicate_expression


class _Action:
    def __init__(self, *, condition=None):
        self.condition = condition


class DeclareLaunchArgument(_Action):
    """Fake launch.actions.DeclareLaunchArgument."""

    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        super().__init__(**kwargs)
        self.name, self.default_value, self.description = name, default_value, description


class SetEnvironmentVariable(_Action):
    """Fake launch.actions.SetEnvironmentVariable."""

    def __init__(self, name, value, **kwargs):
        super().__init__(**kwargs)
        self.name, self.value = name, value


class Node(_Action):
    """Fake launch_ros.actions.Node (keyword names of the real one and of ExecuteProcess)."""

    def __init__(self, *, executable, package=None, name=None, namespace=None,
                 parameters=None, remappings=None, arguments=None, ros_arguments=None,
                 output=None, emulate_tty=False, **kwargs):
        super().__init__(**kwargs)
        self.executable, self.package, self.name, self.namespace = (
            executable, package, name, namespace)
        self.parameters = parameters or []
        self.remappings = remappings or []
        self.arguments = arguments or []
        self.ros_arguments = ros_arguments or []


class ParameterValue:
    """Fake launch_ros.parameter_descriptions.ParameterValue."""

    def __init__(self, value, *, value_type=None):
        self.value, self.value_type = value, value_type


class LaunchDescription:
    """Fake launch.LaunchDescription."""

    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])


@pytest.fixture
def fake_launch(monkeypatch):
    modules = {
        'launch': {'LaunchDescription': LaunchDescription},
        'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument,
                           'SetEnvironmentVariable': SetEnvironmentVariable},
        'launch.conditions': {'IfCondition': IfCondition},
        'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration},
        'launch_ros': {},
        'launch_ros.actions': {'Node': Node},
        'launch_ros.parameter_descriptions': {'ParameterValue': ParameterValue},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)


def _load(path: Path) -> LaunchDescription:
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def _console_scripts() -> set[str]:
    tree = ast.parse((PKG / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return {ast.literal_eval(e).split('=')[0].strip() for e in value.elts}
    raise AssertionError('no console_scripts in setup.py')


def _resolve(value, defaults):
    if isinstance(value, LaunchConfiguration):
        return defaults[value.name]
    if isinstance(value, list):
        return ''.join(_resolve(v, defaults) for v in value)
    return value


def _configurations(value) -> list[str]:
    if isinstance(value, LaunchConfiguration):
        return [value.name]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _configurations(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _configurations(v)]
    if isinstance(value, ParameterValue):
        return _configurations(value.value)
    return []


# ------------------------------------------------------------------ tests

def test_every_launch_file_is_known_and_compiles():
    files = sorted(p.name for p in LAUNCH_DIR.glob('*.launch.py'))
    assert files == sorted(LAUNCH_FILES)
    for name in files:
        py_compile.compile(str(LAUNCH_DIR / name), doraise=True)


@pytest.mark.parametrize('launch_file', sorted(LAUNCH_FILES))
def test_launch_file_references_only_things_that_exist(fake_launch, launch_file):
    desc = _load(LAUNCH_DIR / launch_file)
    args = [e for e in desc.entities if isinstance(e, DeclareLaunchArgument)]
    nodes = [e for e in desc.entities if isinstance(e, Node)]
    declared = {a.name: a.default_value for a in args}
    assert list(declared) == [a.name for a in LAUNCH_FILES[launch_file]]
    for a in args:
        assert a.description
    for key in ('config', 'dds_profile', 'rviz_config'):
        if key in declared:
            assert Path(declared[key]).is_file(), declared[key]
    # every substitution refers to a declared argument
    for entity in desc.entities:
        refs = _configurations(getattr(entity, 'value', None))
        refs += _configurations(getattr(getattr(entity, 'condition', None), 'predicate', None))
        if isinstance(entity, Node):
            refs += _configurations([entity.namespace, entity.parameters, entity.arguments,
                                     entity.ros_arguments, [r[1] for r in entity.remappings]])
        assert set(refs) <= set(declared), (launch_file, refs)
    scripts = _console_scripts()
    params = load_params(declared['config']) if 'config' in declared else {}
    for node in nodes:
        if node.executable == 'rviz2':
            assert node.arguments == ['-d', LaunchConfiguration('rviz_config')]
            continue
        assert node.package == PACKAGE and node.name in ALL_NODES
        assert node.executable == EXECUTABLES[node.name] and node.executable in scripts
        assert node.parameters[0] == LaunchConfiguration('config')
        assert node.ros_arguments == ['--log-level', LaunchConfiguration('log_level')]
        assert node.name in params                     # the YAML has its section
        topics = {t.name for t in node_topics(node.name)}
        remaps = {src: _resolve(dst, declared) for src, dst in node.remappings}
        assert set(remaps) == set(camera_topics(node.name)) <= topics
        if remaps:     # same mapping as the runner's: ros/graph.py camera_remaps()
            runner = camera_remaps(declared['image'], declared['camera_info'], declared['depth'])
            assert remaps == {k: runner[k] for k in remaps}
    if launch_file != 'rviz.launch.py':
        env = [e for e in desc.entities if isinstance(e, SetEnvironmentVariable)]
        assert [(e.name, e.value) for e in env] == [
            ('FASTDDS_DEFAULT_PROFILES_FILE', LaunchConfiguration('dds_profile'))]
        assert env[0].condition.predicate == LaunchConfiguration('use_dds_profile')
        assert desc.entities.index(env[0]) < desc.entities.index(nodes[0])


def test_the_pipeline_launch_starts_the_runner_graph(fake_launch):
    desc = _load(LAUNCH_DIR / 'spatial_caption.launch.py')
    names = [e.name for e in desc.entities if isinstance(e, Node) and e.executable != 'rviz2'
             and e.condition is None]
    # the runner starts GRAPH_NODES, without the image source on a live camera
    assert names == [n for n in GRAPH_NODES if n != 'image_source'] == list(PIPELINE_NODES)
    # optional nodes (runner --memory) start only with use_<name>:=true
    optional = [e for e in desc.entities if isinstance(e, Node) and e.condition is not None
                and e.executable != 'rviz2']
    assert [(e.name, e.condition.predicate) for e in optional] == [
        (n, LaunchConfiguration(f'use_{n}')) for n in OPTIONAL_NODES]
    rviz = [e for e in desc.entities if isinstance(e, Node) and e.executable == 'rviz2']
    assert rviz[0].condition.predicate == LaunchConfiguration('use_rviz')


def test_each_node_alone_and_the_demo(fake_launch):
    for name in PIPELINE_NODES + OPTIONAL_NODES:
        desc = _load(LAUNCH_DIR / f'{name}.launch.py')
        assert [e.name for e in desc.entities if isinstance(e, Node)] == [name]
    demo = _load(LAUNCH_DIR / 'demo.launch.py')
    nodes = [e for e in demo.entities if isinstance(e, Node) and e.executable != 'rviz2'
             and e.condition is None]
    assert [n.name for n in nodes] == ['image_source'] + list(PIPELINE_NODES)
    source = nodes[0]
    overrides = source.parameters[1]
    assert set(overrides) <= {f.name for f in ImageSourceConfig.__dataclass_fields__.values()}
    assert overrides['source'].value == LaunchConfiguration('source')
    assert overrides['source'].value_type is str       # a path, even if it looks like a number
    # the source publishes where the pipeline listens
    assert dict(source.remappings) == {'image': LaunchConfiguration('image'),
                                       'camera_info': LaunchConfiguration('camera_info')}


def test_setup_installs_launch_and_config_files():
    text = (PKG / 'setup.py').read_text()
    assert "files('launch/*.py')" in text and "files('config/*')" in text


def test_shipped_rviz_config_shows_the_image_annotated_image_and_markers():
    config = yaml.safe_load((PKG / 'config' / 'spatial_caption.rviz').read_text())
    manager = config['Visualization Manager']
    displays = {d['Class']: d for d in manager['Displays']
                if d['Class'] != 'rviz_default_plugins/Image'}
    images = [d for d in manager['Displays'] if d['Class'] == 'rviz_default_plugins/Image']
    viz_out = {'/' + t.name for t in node_topics('visualization') if t.direction == 'out'}
    assert displays['rviz_default_plugins/MarkerArray']['Topic']['Value'] in viz_out
    assert {d['Topic']['Value'] for d in images} == {'/annotated_image', '/camera/image_raw'}
    assert '/annotated_image' in viz_out
    camera = next(d for d in images if d['Topic']['Value'] == '/camera/image_raw')
    assert camera['Topic']['Reliability Policy'] == 'Best Effort'    # sensor-data cameras
    assert manager['Global Options']['Fixed Frame'] == ImageSourceConfig().frame_id
