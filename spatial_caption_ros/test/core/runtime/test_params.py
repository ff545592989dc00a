from dataclasses import dataclass

import pytest
import yaml

from spatial_caption_ros.params_file import load_params, node_defaults, render_yaml
from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.params import build_config, check_value, CONFIGURE, param
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig
from spatial_caption_ros.core.runtime.resources import package_file


@dataclass(frozen=True)
class Example:
    ratio: float = param(0.5, 'a ratio', minimum=0.0, maximum=1.0)
    count: int = param(3, 'a count', minimum=1, maximum=10)
    mode: str = param('a', 'a mode', choices=('a', 'b'), when=CONFIGURE)
    names: tuple[str, ...] = param((), 'names', kind='str_list', max_length=8)
    flag: bool = param(False, 'a flag')

    def validate(self):
        if self.mode == 'b' and self.count > 5:
            raise ConfigError('mode b allows at most 5')


def test_defaults_and_coercion():
    cfg = build_config(Example, {'ratio': 1, 'names': ['x', 'y']})
    assert cfg.ratio == 1.0 and isinstance(cfg.ratio, float)
    assert cfg.names == ('x', 'y')


@pytest.mark.parametrize('values,match', [
    ({'ratio': 1.5}, 'above the maximum'),
    ({'ratio': float('nan')}, 'finite'),
    ({'count': 0}, 'below the minimum'),
    ({'count': 2.5}, 'integer'),
    ({'mode': 'c'}, 'not one of'),
    ({'names': ['toolongname']}, 'longer than'),
    ({'flag': 'yes'}, 'true/false'),
    ({'unknown': 1}, 'unknown parameters'),
    ({'mode': 'b', 'count': 7}, 'at most 5'),
])
def test_invalid_values_are_rejected_with_a_reason(values, match):
    with pytest.raises(ConfigError, match=match):
        build_config(Example, values)


def test_bad_default_is_caught_at_definition():
    with pytest.raises(ValueError):
        param(5, 'x', minimum=0, maximum=1)


def test_check_value_never_accepts_bool_as_number():
    info = Example.__dataclass_fields__['count'].metadata['param']
    assert check_value(info, True) is not None


def test_perception_defaults_are_valid():
    cfg = build_config(PerceptionConfig)
    assert cfg.detector.model == 'yolo11n' and cfg.depth.scale.source == 'geometric'


def test_shipped_pipeline_yaml_mirrors_every_declared_parameter():
    shipped = yaml.safe_load(package_file('config/pipeline.yaml').read_text())
    generated = yaml.safe_load(render_yaml())
    assert shipped == generated, 'config/pipeline.yaml is stale: run make config'
    sections = load_params()
    for node, values in node_defaults().items():
        assert sections[node]['ros__parameters'] == values

