"""Depth sources selectable by the `depth_source` parameter."""

from __future__ import annotations

from spatial_caption_ros.core.depth.base import DepthInput, DepthOutput, DepthSource, NoDepth
from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.types import DEPTH_NONE

DEPTH_SOURCES = (DEPTH_NONE,)

__all__ = ['create_depth_source', 'DEPTH_SOURCES', 'DepthInput', 'DepthOutput', 'DepthSource',
           'NoDepth']


def create_depth_source(name: str, **_kwargs) -> DepthSource:
    """Create the depth source called `name`."""
    if name == DEPTH_NONE:
        return NoDepth()
    raise ConfigError(f'unknown depth source {name!r}; available: {", ".join(DEPTH_SOURCES)}')
