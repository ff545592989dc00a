"""Declarative parameter specifications for the core's frozen configuration dataclasses.

Each stage's configuration is a frozen dataclass whose fields are created with `param(...)`: the
default, a description, ranges or choices, and when a change may be applied. The ROS layer
(ros/params.py) turns these into declared ROS parameters with descriptors and validates changes
with `check_value`; the core and the tests build configurations with `build_config`, which applies
exactly the same checks. One definition, no drift between ROS and the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, Field
import math
from typing import Any
from collections.abc import Iterable

from spatial_caption_ros.core.errors import ConfigError

# When a parameter change may be applied.
LIVE = 'live'            # any time; takes effect on the next frame
CONFIGURE = 'configure'  # only while the node is unconfigured; applied by the next configure
READ_ONLY = 'read_only'  # set at start-up (command line, YAML) and never changed


@dataclass(frozen=True)
class ParamInfo:
    """What a parameter means and which values it accepts."""

    description: str
    kind: str                      # 'bool', 'int', 'float', 'str', 'str_list', 'float_list'
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    when: str = LIVE
    max_length: int = 4096         # strings and list items; keeps untrusted text bounded


def param(default: Any, description: str, *, minimum: float | None = None,
          maximum: float | None = None, choices: Iterable[str] = (), when: str = LIVE,
          kind: str | None = None, max_length: int = 4096) -> Any:
    """Declare a configuration field with its documentation and constraints."""
    if kind is None:
        kind = _kind_of(default)
    info = ParamInfo(description=description, kind=kind, minimum=minimum, maximum=maximum,
                     choices=tuple(choices), when=when, max_length=max_length)
    problem = check_value(info, default)
    if problem:
        raise ValueError(f'bad default {default!r}: {problem}')
    return field(default=default, metadata={'param': info})


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'int'
    if isinstance(value, float):
        return 'float'
    if isinstance(value, str):
        return 'str'
    raise TypeError(f'cannot infer the parameter kind of {value!r}; pass kind=')


def param_fields(config_cls: type) -> list[tuple[Field, ParamInfo]]:
    """The declared parameters of a configuration dataclass, in definition order."""
    return [(f, f.metadata['param']) for f in fields(config_cls) if 'param' in f.metadata]


def check_value(info: ParamInfo, value: Any) -> str | None:
    """Return why `value` is not acceptable for this parameter, or None when it is."""
    kind = info.kind
    if kind == 'bool':
        if not isinstance(value, bool):
            return f'expected true/false, got {value!r}'
        return None
    if kind in ('int', 'float'):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f'expected a number, got {value!r}'
        if kind == 'int' and not isinstance(value, int):
            return f'expected an integer, got {value!r}'
        if not math.isfinite(value):
            return f'expected a finite number, got {value!r}'
        if info.minimum is not None and value < info.minimum:
            return f'{value} is below the minimum {info.minimum}'
        if info.maximum is not None and value > info.maximum:
            return f'{value} is above the maximum {info.maximum}'
        return None
    if kind == 'str':
        if not isinstance(value, str):
            return f'expected a string, got {value!r}'
        if len(value) > info.max_length:
            return f'string longer than {info.max_length} characters'
        if info.choices and value not in info.choices:
            return f'{value!r} is not one of {", ".join(info.choices)}'
        return None
    if kind in ('str_list', 'float_list'):
        if not isinstance(value, (list, tuple)):
            return f'expected a list, got {value!r}'
        item_type = str if kind == 'str_list' else (int, float)
        for item in value:
            if not isinstance(item, item_type) or isinstance(item, bool):
                return f'list item {item!r} has the wrong type'
            if kind == 'str_list' and len(item) > info.max_length:
                return f'list item longer than {info.max_length} characters'
            if kind == 'str_list' and info.choices and item not in info.choices:
                return f'{item!r} is not one of {", ".join(info.choices)}'
        return None
    return f'unknown parameter kind {kind}'


def build_config(config_cls: type, values: dict[str, Any] | None = None) -> Any:
    """Build a configuration from parameter values, checking each one and then the whole."""
    values = dict(values or {})
    known = {f.name for f, _ in param_fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f'unknown parameters for {config_cls.__name__}: {", ".join(unknown)}')
    kwargs = {}
    for f, info in param_fields(config_cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if info.kind == 'float' and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if info.kind.endswith('_list'):
            value = tuple(value)
        problem = check_value(info, value)
        if problem:
            raise ConfigError(f'parameter {f.name}: {problem}')
        kwargs[f.name] = value
    config = config_cls(**kwargs)
    validate = getattr(config, 'validate', None)
    if validate is not None:
        validate()
    return config


def config_values(config: Any) -> dict[str, Any]:
    """Parameter name -> value of a configuration (lists as lists, as ROS and YAML expect)."""
    out = {}
    for f, info in param_fields(type(config)):
        value = getattr(config, f.name)
        out[f.name] = list(value) if info.kind.endswith('_list') else value
    return out
