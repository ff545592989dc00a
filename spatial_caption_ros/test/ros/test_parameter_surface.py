"""Real rclpy: every parameter is declared with a descriptor, validated, and set from YAML."""

import pytest
from rcl_interfaces.msg import ParameterType
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from support import MODELS, needs_shared, spin_until
from spatial_caption_ros.params_file import dump_params, load_params, node_parameters
from spatial_caption_ros.core.params import CONFIGURE, READ_ONLY
from spatial_caption_ros.ros.graph import ALL_NODES, node_class
from spatial_caption_ros.ros.params import CONFIGURE_TIME_NOTE

pytestmark = [needs_shared, pytest.mark.usefixtures('rclpy_context')]


def _make(name, namespace, autostart=True, **params):
    overrides = [Parameter('autostart', value=autostart)]
    if name == 'perception':
        overrides.append(Parameter('model_dir', value=str(MODELS)))
    if name == 'image_source':
        overrides.append(Parameter('source', value=str(MODELS.parent / 'data' / 'images')))
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return node_class(name)(namespace=namespace, parameter_overrides=overrides)


@pytest.mark.parametrize('name', ALL_NODES)
def test_every_parameter_has_a_descriptor_matching_its_declaration(name):
    node = _make(name, f'/desc_{name}', autostart=False)
    try:
        declared = {p.name: p.info for p in node_parameters()[name]}
        assert 'autostart' in declared and set(declared) <= set(node._parameters)
        for pname, info in declared.items():
            d = node.describe_parameter(pname)
            assert d.description == info.description and d.type != ParameterType.PARAMETER_NOT_SET
            assert d.read_only == (info.when == READ_ONLY)
            assert (CONFIGURE_TIME_NOTE in d.additional_constraints) == (info.when == CONFIGURE)
            if info.choices:
                assert all(c in d.additional_constraints for c in info.choices)
            if info.minimum is not None and info.maximum is not None:
                ranges = d.floating_point_range or d.integer_range
                assert ranges[0].from_value == info.minimum
                assert ranges[0].to_value == info.maximum
        assert node.describe_parameter('autostart').read_only
    finally:
        node.destroy_node()


def test_descriptors_and_validation_through_the_parameter_services():
    import rclpy
    node = _make('visualization', '/psrv')
    client_node = rclpy.create_node('param_client', namespace='/psrv')
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(client_node)
    client = AsyncParameterClient(client_node, '/psrv/visualization')
    try:
        assert spin_until(ex, client.services_are_ready)

        def call(future):
            assert spin_until(ex, future.done, timeout=10)
            return future.result()

        desc = call(client.describe_parameters(['max_relation_lines', 'image_format']))
        lines, fmt = desc.descriptors
        assert lines.integer_range[0].to_value == 100 and 'relations' in lines.description
        assert 'configure-time' in fmt.additional_constraints

        def set_(name, value):
            return call(client.set_parameters([Parameter(name, value=value)])).results[0]

        assert set_('max_relation_lines', 2).successful            # live
        assert node.config.max_relation_lines == 2
        bad = set_('max_relation_lines', 500)
        assert not bad.successful and 'max_relation_lines' in bad.reason
        wrong = set_('image_format', 'mjpeg')
        assert not wrong.successful and 'not one of' in wrong.reason
        later = set_('image_format', 'compressed')
        assert not later.successful and 'configure-time' in later.reason
        ro = set_('autostart', False)
        assert not ro.successful and 'read-only' in ro.reason.lower()
        assert node.config.image_format == 'raw'
    finally:
        ex.shutdown()
        node.destroy_node()
        client_node.destroy_node()


def test_configure_time_parameters_change_only_while_unconfigured():
    node = _make('visualization', '/pconf', autostart=False)
    try:
        ok = node.set_parameters([Parameter('image_format', value='compressed')])[0]
        assert ok.successful
        bad = node.set_parameters([Parameter('image_format', value='mjpeg')])[0]
        assert not bad.successful and 'not one of' in bad.reason
        node.trigger_configure()
        assert node.config.image_format == 'compressed'
        refused = node.set_parameters([Parameter('image_format', value='raw')])[0]
        assert not refused.successful and 'unconfigured' in refused.reason
        node.trigger_cleanup()
        assert node.set_parameters([Parameter('image_format', value='raw')])[0].successful
    finally:
        node.destroy_node()


def test_live_change_of_a_configured_node_keeps_its_configure_time_values():
    node = _make('scene_graph', '/plive')
    try:
        before = node.config
        assert node.set_parameters([Parameter('direction_margin', value=0.5)])[0].successful
        assert node.config.relations.direction_margin == 0.5
        assert node.builder.config.relations.direction_margin == 0.5
        assert node.config.knowledge_files == before.knowledge_files
    finally:
        node.destroy_node()


def test_one_yaml_configures_every_node_in_any_namespace(tmp_path):
    params = load_params()
    params['scene_graph']['ros__parameters']['direction_margin'] = 0.75
    params['visualization']['ros__parameters']['max_relation_lines'] = 3
    path = tmp_path / 'params.yaml'
    path.write_text(dump_params(params))
    assert path.read_text().startswith('/**/')
    for ns in ('', '/robot1/front'):
        for name, param, value in (('scene_graph', 'direction_margin', 0.75),
                                   ('visualization', 'max_relation_lines', 3)):
            node = node_class(name)(namespace=ns or '/', cli_args=[
                '--ros-args', '--params-file', str(path)], use_global_arguments=False)
            try:
                assert node.active, node.last_error
                assert node.get_parameter(param).value == value
            finally:
                node.destroy_node()
