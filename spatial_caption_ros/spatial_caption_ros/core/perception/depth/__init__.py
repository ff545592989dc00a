"""Depth sources selectable by the `depth_source` parameter.

- none: no depth.
- geometric: metric depth from box size, class size priors and CameraInfo (no weights).
- depth_anything_v2: Depth Anything V2 (relative, made metric by scale recovery, or metric).
- sensor: an aligned depth image from an RGB-D camera or simulator, matched by stamp.
"""

from __future__ import annotations

from pathlib import Path

from spatial_caption_ros.core.perception.depth.base import (
    DepthInput,
    DepthOutput,
    DepthSource,
    NoDepth,
)
from spatial_caption_ros.core.perception.depth.config import (
    DEPTH_SOURCES, DepthConfig, ScaleConfig)
from spatial_caption_ros.core.perception.depth.statistics import BoxStatConfig
from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import (
    DEPTH_ANYTHING_V2, DEPTH_GEOMETRIC, DEPTH_NONE, DEPTH_SENSOR)

__all__ = ['BoxStatConfig', 'create_depth_source', 'DepthConfig', 'DEPTH_SOURCES', 'DepthInput',
           'DepthOutput', 'DepthSource', 'NoDepth', 'ScaleConfig']


def create_depth_source(name: str, config: DepthConfig | None = None, *,
                        knowledge: KnowledgeBase | None = None,
                        model_path: str | Path | None = None, backend: str = 'auto',
                        threads: int = 0, fp16: bool = True,
                        cache_dir: str | Path | None = None,
                        allow_spinning: bool | None = None) -> DepthSource:
    """Create the depth source called `name` with its DepthConfig (models are loaded here).

    The keyword arguments after `knowledge` say how the dense model is loaded (backends/).
    """
    config = config or DepthConfig()
    if name == DEPTH_NONE:
        return NoDepth()
    knowledge = knowledge or KnowledgeBase.load()
    if name == DEPTH_GEOMETRIC:
        from spatial_caption_ros.core.perception.depth.geometric import GeometricDepth
        return GeometricDepth(knowledge, config.border_margin_px,
                              config.surface_consistency, config.camera_height_m,
                              config.camera_tilt_uncertainty_deg)
    if name == DEPTH_SENSOR:
        from spatial_caption_ros.core.perception.depth.sensor import SensorDepth
        return SensorDepth(knowledge, config.box, config.border_margin_px)
    if name == DEPTH_ANYTHING_V2:
        if model_path is None:
            raise ConfigError('depth_anything_v2 needs a depth model file')
        from spatial_caption_ros.core.perception.backends import create_backend
        from spatial_caption_ros.core.perception.depth.depth_anything import (
            DEPTH_CONTRACT, DepthAnythingSource)
        from spatial_caption_ros.core.perception.models import expecting
        with expecting('depth_model', DEPTH_CONTRACT):
            loaded = create_backend(model_path, backend, threads=threads, fp16=fp16,
                                    cache_dir=cache_dir, allow_spinning=allow_spinning)
        try:
            return DepthAnythingSource(loaded, knowledge, config)
        except Exception:
            loaded.close()
            raise
    raise ConfigError(f'unknown depth source {name!r}; available: {", ".join(DEPTH_SOURCES)}')
