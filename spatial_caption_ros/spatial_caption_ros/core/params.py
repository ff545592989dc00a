"""Declarative parameter specifications for the core's frozen configuration dataclasses.

Each stage's configuration is a frozen dataclass whose fields are created with `param(...)`: the
default, a description, ranges or choices, and when a change may be applied. A stage made of
components nests one dataclass per component with `group(...)` (e.g. `PerceptionConfig.detector`,
`.depth`, `.tracking`), while the ROS parameters stay flat: a parameter's ROS name is its
component's PARAM_PREFIX + its field name (`depth.model` -> `depth_model`), or the `name=`
given to `param(...)` when the flat name does not follow the prefix (`tracking.enabled` ->
`tracking`).
`parameters(cls)` lists the flat parameters of a configuration (name, attribute path, info,
default) in definition order: the ROS layer (ros/params.py) declares them with descriptors and
validates changes with `check_value`; the core, tools and tests build configurations from flat
ROS names with `build_config`, which applies exactly the same checks. One definition, no drift
between ROS and the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import difflib
import functools
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


@dataclass(frozen=True)
class ParamSpec:
    """One flat (ROS) parameter of a configuration dataclass.

    name: the ROS parameter name; path: the attributes that lead to its value in the
    configuration (('depth', 'model') for `depth_model`); default: the dataclass default.
    """

    name: str
    path: tuple[str, ...]
    info: ParamInfo
    default: Any


def param(default: Any, description: str, *, minimum: float | None = None,
          maximum: float | None = None, choices: Iterable[str] = (), when: str = LIVE,
          kind: str | None = None, max_length: int = 4096, name: str | None = None) -> Any:
    """Declare a configuration field with its documentation and constraints.

    name: the flat ROS parameter name, when it is not the class's PARAM_PREFIX + the field name.
    """
    if kind is None:
        kind = _kind_of(default)
    info = ParamInfo(description=description, kind=kind, minimum=minimum, maximum=maximum,
                     choices=tuple(choices), when=when, max_length=max_length)
    problem = check_value(info, default)
    if problem:
        raise ValueError(f'bad default {default!r}: {problem}')
    metadata: dict[str, Any] = {'param': info}
    if name:
        metadata['name'] = name
    return field(default=default, metadata=metadata)


def group(config_cls: type) -> Any:
    """A component's configuration (its own dataclass) as a field of a stage configuration.

    The component's flat ROS names are its class attribute PARAM_PREFIX (default '') + its
    field names, wherever it is nested, so `build_config(DepthConfig, {'depth_model': ...})`
    and `build_config(PerceptionConfig, {'depth_model': ...})` name the same parameter.
    """
    return field(default_factory=config_cls, metadata={'group': config_cls})


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


@functools.cache
def parameters(config_cls: type) -> tuple[ParamSpec, ...]:
    """The flat parameters of a configuration dataclass and its groups, in definition order."""
    out: list[ParamSpec] = []

    def walk(cls: type, path: tuple[str, ...]) -> None:
        prefix = getattr(cls, 'PARAM_PREFIX', '')
        for f in fields(cls):
            if 'param' in f.metadata:
                out.append(ParamSpec(f.metadata.get('name') or prefix + f.name,
                                     path + (f.name,), f.metadata['param'], f.default))
            elif 'group' in f.metadata:
                walk(f.metadata['group'], path + (f.name,))

    walk(config_cls, ())
    seen: set[str] = set()
    for p in out:
        if p.name in seen:
            raise TypeError(f'{config_cls.__name__}: two fields give the parameter {p.name}')
        seen.add(p.name)
    return tuple(out)


def param_fields(config_cls: type) -> list[tuple[ParamSpec, ParamInfo]]:
    """(parameter, info) pairs of `parameters(config_cls)`: `.name` is the flat ROS name."""
    return [(p, p.info) for p in parameters(config_cls)]


def param_names(config_cls: type) -> tuple[str, ...]:
    """The flat ROS names of a configuration's parameters."""
    return tuple(p.name for p in parameters(config_cls))


def unknown_message(names: Iterable[str], known: Iterable[str], what: str) -> str:
    """'unknown parameters for X: a (did you mean: b, c?)': each unknown name, its 3 closest."""
    known = list(known)
    parts = []
    for name in sorted(names):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.0)
        parts.append(f'{name} (did you mean: {", ".join(close)}?)' if close else name)
    return f'unknown parameters for {what}: {", ".join(parts)}'


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


def coerce_value(info: ParamInfo, value: Any) -> Any:
    """`value` in the type the configuration holds (ints as floats, lists as tuples)."""
    if info.kind == 'float' and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if info.kind.endswith('_list') and isinstance(value, list):
        return tuple(value)
    return value


def build_config(config_cls: type, values: dict[str, Any] | None = None) -> Any:
    """Build a configuration from flat ROS parameter values, checking each one, then the whole.

    Unknown names are refused with the closest known ones; every group's `validate()` runs,
    then the stage's.
    """
    values = dict(values or {})
    specs = {p.name: p for p in parameters(config_cls)}
    unknown = set(values) - set(specs)
    if unknown:
        raise ConfigError(unknown_message(unknown, specs, config_cls.__name__))
    by_path: dict[tuple[str, ...], Any] = {}
    for name, value in values.items():
        p = specs[name]
        value = coerce_value(p.info, value)
        problem = check_value(p.info, value)
        if problem:
            raise ConfigError(f'parameter {name}: {problem}')
        by_path[p.path] = value
    return _construct(config_cls, (), by_path)


def _construct(cls: type, path: tuple[str, ...], values: dict[tuple[str, ...], Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        key = path + (f.name,)
        if 'group' in f.metadata:
            kwargs[f.name] = _construct(f.metadata['group'], key, values)
        elif key in values:
            kwargs[f.name] = values[key]
    config = cls(**kwargs)
    validate = getattr(config, 'validate', None)
    if validate is not None:
        validate()
    return config


def value_at(config: Any, path: tuple[str, ...]) -> Any:
    """The value at an attribute path of a (nested) configuration."""
    for attr in path:
        config = getattr(config, attr)
    return config


def config_values(config: Any) -> dict[str, Any]:
    """Flat ROS name -> value of a configuration (lists as lists, as ROS and YAML expect)."""
    out = {}
    for p in parameters(type(config)):
        value = value_at(config, p.path)
        out[p.name] = list(value) if p.info.kind.endswith('_list') else value
    return out


def with_values(config: Any, values: dict[str, Any]) -> Any:
    """A copy of `config` with some flat parameters changed (checked like build_config)."""
    return build_config(type(config), {**config_values(config), **values})
