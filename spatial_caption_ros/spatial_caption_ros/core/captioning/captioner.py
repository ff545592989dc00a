"""The captioning stage: turn a scene graph into a published caption."""

from __future__ import annotations

from dataclasses import dataclass
import time

from spatial_caption_ros.core.captioning.template import template_caption
from spatial_caption_ros.core.params import param
from spatial_caption_ros.core.types import (
    Caption, GENERATOR_TEMPLATE, SceneGraph, STYLE_SHORT)


@dataclass(frozen=True)
class CaptionConfig:
    """Parameters of the caption node."""

    style: str = param(STYLE_SHORT, 'Caption style: short.', choices=(STYLE_SHORT,))
    max_relations: int = param(
        3, 'Most relations stated in one caption.', minimum=0, maximum=20)
    min_period: float = param(
        0.0, 'Minimum seconds between two captions (0: caption every graph that arrives while '
        'idle; the latest graph always wins).', minimum=0.0, maximum=3600.0)


class Captioner:
    """Writes captions from scene graphs."""

    def __init__(self, config: CaptionConfig) -> None:
        self.config = config

    def describe(self) -> dict[str, str]:
        return {'generator': GENERATOR_TEMPLATE, 'style': self.config.style}

    def caption(self, graph: SceneGraph) -> Caption:
        """Caption one graph. Template captions state only facts read off the graph."""
        t0 = time.perf_counter()
        text = template_caption(graph, self.config.max_relations)
        return Caption(header=graph.header, text=text, style=self.config.style, verified=True,
                       generator=GENERATOR_TEMPLATE, latency=time.perf_counter() - t0)

    def close(self) -> None:
        """Release models."""
