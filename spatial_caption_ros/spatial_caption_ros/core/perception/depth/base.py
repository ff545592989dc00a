"""The depth-source interface: per-object depth (and optionally a dense map) for one image."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.types import (
    CameraIntrinsics, DEPTH_NONE, Detection, ObjectDepth)


@dataclass
class DepthInput:
    """Everything a depth source may use for one frame."""

    image: ColorImage
    detections: list[Detection]
    intrinsics: CameraIntrinsics | None = None
    sensor_depth: np.ndarray | None = None      # HxW float32 metres, aligned to image, NaN = none
    gravity: np.ndarray | None = None           # unit "down" in the camera optical frame


@dataclass
class DepthOutput:
    """Per-object depth, in the order of DepthInput.detections."""

    objects: list[ObjectDepth]
    metric: bool
    depth_map: np.ndarray | None = None         # HxW float32, same convention as objects
    notes: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


class DepthSource(ABC):
    """Estimates the depth of detected objects.

    The work is split in two so the pipeline can overlap it with detection: `prepare` does what
    does not need the detections (dense model inference) and may run on another thread while the
    detector runs; `estimate` turns its result and the detections into per-object depth.
    """

    name: str = DEPTH_NONE
    needs_intrinsics: bool = False
    needs_sensor_depth: bool = False
    dense: bool = False            # True when prepare() runs a dense model (worth overlapping)

    def prepare(self, image: ColorImage) -> Any:
        """Detection-independent work for one image (thread-safe with detection)."""
        return None

    @abstractmethod
    def estimate(self, inp: DepthInput, prepared: Any = None) -> DepthOutput:
        """Depth of each detection of `inp`; `prepared` is what prepare() returned, if run."""

    def close(self) -> None:
        """Release models and buffers."""


class NoDepth(DepthSource):
    """No depth: every object's depth is unknown and nothing metric is claimed."""

    name = DEPTH_NONE

    def estimate(self, inp: DepthInput, prepared: Any = None) -> DepthOutput:
        return DepthOutput(objects=[ObjectDepth() for _ in inp.detections], metric=False,
                           notes=['depth_source is none: no depth, no 3D positions'])
