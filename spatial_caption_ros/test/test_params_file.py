"""The parameter-file library: load, dump, --set overrides checked against the declarations."""

import pytest

from spatial_caption_ros.core.perception.pipeline import PerceptionConfig
from spatial_caption_ros.params_file import (
    apply_sets, dump_params, load_params, node_defaults, parse_set, ParamsFileError,
    stage_values)


def test_set_parses_plain_yaml_values_of_declared_parameters():
    assert parse_set('perception.confidence_threshold=0.4') == (
        'perception', 'confidence_threshold', 0.4)
    assert parse_set('perception.classes=[bus, person]')[2] == ['bus', 'person']
    assert parse_set('caption.only_on_change=true')[2] is True
    # a string parameter takes the text as written, even when YAML would read a number
    assert parse_set('image_source.frame_id=123')[2] == '123'
    # an integer for a float parameter is passed on as a float: ROS refuses an integer value
    # for a parameter declared as double (seen: `--set image_source.assumed_hfov_deg=60`)
    node, name, value = parse_set('confidence_threshold=1', nodes=('perception',),
                                  default_node='perception')
    assert (node, name, value) == ('perception', 'confidence_threshold', 1.0)
    assert isinstance(value, float)


@pytest.mark.parametrize('item,expected', [
    ('perception.nonexistent=1', 'unknown parameters for perception: nonexistent (did you mean'),
    ('perception.confidence_treshold=0.4', 'did you mean: confidence_threshold'),
    ('percepton.confidence_threshold=0.4', "unknown node 'percepton'"),
    ('perception.confidence_threshold=abc', 'expected a number'),
    ('perception.confidence_threshold=2', 'above the maximum 1'),
    ('perception.depth_source=lidar', 'not one of'),
    ('perception.confidence_threshold', 'expected NODE.PARAM=VALUE'),
    ('perception.max_detections=!!python/object/apply:os.system ["true"]', 'expected a number'),
])
def test_bad_overrides_are_refused_in_one_line(item, expected):
    with pytest.raises(ParamsFileError) as err:
        parse_set(item)
    message = str(err.value)
    assert expected in message and '\n' not in message and item in message


def test_a_command_limits_the_nodes_it_takes():
    with pytest.raises(ParamsFileError, match='this command takes perception'):
        parse_set('caption.style=short', nodes=('perception',))


def test_apply_sets_and_round_trip_through_a_file(tmp_path):
    params = apply_sets(load_params(), ['perception.confidence_threshold=0.4',
                                        'scene_graph.knn_k=3'])
    path = tmp_path / 'params.yaml'
    path.write_text(dump_params(params))
    assert path.read_text().startswith('/**/')
    again = load_params(path)
    assert again['perception']['ros__parameters']['confidence_threshold'] == 0.4
    assert again['scene_graph']['ros__parameters']['knn_k'] == 3
    values = stage_values(again, 'perception', PerceptionConfig)
    assert 'image_format' not in values and values['confidence_threshold'] == 0.4


def test_shipped_file_holds_every_default():
    shipped = load_params()
    for node, defaults in node_defaults().items():
        assert shipped[node]['ros__parameters'] == defaults


@pytest.mark.parametrize('content,expected', [
    (None, 'cannot read the parameter file'),
    ('a: [1, 2', 'not a plain YAML parameter file'),
    ('!!python/object/apply:os.system ["true"]', 'not a plain YAML parameter file'),
    ('- just\n- a list\n', 'expected a mapping of node names'),
])
def test_unusable_parameter_files_are_refused_in_one_line(tmp_path, content, expected):
    path = tmp_path / 'params.yaml'
    if content is not None:
        path.write_text(content)
    with pytest.raises(ParamsFileError, match=expected) as err:
        load_params(path)
    assert '\n' not in str(err.value)
