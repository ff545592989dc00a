"""Declare a core configuration dataclass as ROS parameters, read it back, validate changes.

Descriptors carry the description, ranges, choices and when a change is accepted, so `ros2 param
describe` tells a user everything the dataclass says.

When a change is accepted (core/params.py `when=`), and why read_only is used so sparingly:
- live: any time; applied from the next frame (thresholds, filters, styles).
- configure-time: accepted only while the node is UNCONFIGURED and applied by the next configure
  (models, backends, QoS, topics: whatever configure builds). A configured node rejects the change
  with a reason instead of accepting a value it would silently not use. This keeps "a failed
  configure can be fixed without restarting the process" possible: the lifecycle is the way to
  change them (cleanup, set, configure, activate).
- read-only (descriptor read_only=true): fixed for the life of the process (set from the YAML or
  the command line). Only for what no transition can change (autostart).
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult)
from rclpy.node import Node
from rclpy.parameter import Parameter

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.params import (
    build_config, check_value, CONFIGURE, ParamInfo, parameters, ParamSpec, READ_ONLY)

CONFIGURE_TIME_NOTE = ('configure-time: accepted only while the node is unconfigured, applied at '
                       'the next configure')

_ROS_TYPES = {
    'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
    'float': ParameterType.PARAMETER_DOUBLE, 'str': ParameterType.PARAMETER_STRING,
    'str_list': ParameterType.PARAMETER_STRING_ARRAY,
    'float_list': ParameterType.PARAMETER_DOUBLE_ARRAY,
}


def descriptor(name: str, info: ParamInfo) -> ParameterDescriptor:
    """The ROS descriptor of one declared parameter."""
    constraints = []
    if info.choices:
        constraints.append('one of: ' + ', '.join(info.choices))
    if info.kind in ('int', 'float'):
        if info.minimum is not None and info.maximum is None:
            constraints.append(f'minimum {info.minimum}')
        if info.maximum is not None and info.minimum is None:
            constraints.append(f'maximum {info.maximum}')
    if info.when == CONFIGURE:
        constraints.append(CONFIGURE_TIME_NOTE)
    d = ParameterDescriptor(
        name=name, type=_ROS_TYPES[info.kind], description=info.description,
        additional_constraints='; '.join(constraints), read_only=info.when == READ_ONLY)
    if info.kind.endswith('_list'):
        # An empty list default would otherwise be typed as a byte array by rclpy; the value
        # type is checked by check_value() in the on-set callback instead.
        d.dynamic_typing = True
    if info.kind == 'float' and info.minimum is not None and info.maximum is not None:
        d.floating_point_range = [FloatingPointRange(
            from_value=float(info.minimum), to_value=float(info.maximum), step=0.0)]
    if info.kind == 'int' and info.minimum is not None and info.maximum is not None:
        d.integer_range = [IntegerRange(
            from_value=int(info.minimum), to_value=int(info.maximum), step=0)]
    return d


def declare_parameters(node: Node, specs: list[ParamSpec]) -> None:
    """Declare parameters on the node with their defaults (ManagedNode.parameter_specs())."""
    for p in specs:
        default = list(p.default) if p.info.kind.endswith('_list') else p.default
        node.declare_parameter(p.name, default, descriptor(p.name, p.info))


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        return list(value.tolist() if hasattr(value, 'tolist') else value)
    return value


def read_config(node: Node, config_cls: type, pending: dict[str, Any] | None = None) -> Any:
    """Build the configuration from the node's parameters (plus pending, not yet applied ones)."""
    values = {}
    for p in parameters(config_cls):
        value = _plain(node.get_parameter(p.name).value)
        if p.info.kind.endswith('_list') and value in (None, b'', []):
            value = []
        values[p.name] = value
    values.update(pending or {})
    return build_config(config_cls, values)


def validate_changes(node: Node, config_cls: type, params: list[Parameter],
                     configured: bool) -> SetParametersResult:
    """Accept or reject a parameter change for this configuration, with a reason.

    configured: the node is inactive or active (its configure-time values are in use).
    """
    infos = {p.name: p.info for p in parameters(config_cls)}
    pending = {}
    for p in params:
        info = infos.get(p.name)
        if info is None:
            continue
        value = _plain(p.value)
        if info.kind.endswith('_list') and value in (None, b''):
            value = []
        problem = check_value(info, value)
        if problem:
            return SetParametersResult(successful=False, reason=f'{p.name}: {problem}')
        if info.when == CONFIGURE and configured:
            return SetParametersResult(
                successful=False,
                reason=f'{p.name} is a configure-time parameter: it can change only while the '
                       'node is unconfigured, not active or inactive (deactivate, cleanup, set '
                       'it, then configure and activate)')
        pending[p.name] = value
    if pending:
        try:
            read_config(node, config_cls, pending)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
    return SetParametersResult(successful=True)

