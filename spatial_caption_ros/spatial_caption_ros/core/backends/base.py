"""The inference backend interface: a loaded model mapping named input arrays to outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
import os
from pathlib import Path

import numpy as np

from spatial_caption_ros.core.errors import ModelError, ModelNotFoundError


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for a dynamic dimension) and element type of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    @property
    def is_dynamic(self) -> bool:
        return any(d is None for d in self.shape)


@dataclass
class BackendInfo:
    """What is really running: reported in logs and diagnostics."""

    backend: str                  # 'onnxruntime' or 'tensorrt'
    device: str                   # e.g. 'CPUExecutionProvider', 'CUDAExecutionProvider', 'cuda:0'
    precision: str = 'fp32'
    details: dict[str, str] = field(default_factory=dict)


class InferenceBackend(ABC):
    """A loaded model. Implementations allocate what they can once and reuse it for every run."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, str]
    info: BackendInfo

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on named inputs; return the outputs in the order of self.outputs."""

    def close(self) -> None:
        """Release the model (memory, device buffers). The backend is unusable afterwards."""


def check_model_file(path: str | os.PathLike, suffixes: tuple[str, ...] = ()) -> Path:
    """Check a model path before a loader touches it: exists, regular, readable, non-empty."""
    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f'model file {p} does not exist')
    if not p.is_file():
        raise ModelError(f'model path {p} is not a regular file')
    if not os.access(p, os.R_OK):
        raise ModelError(f'model file {p} is not readable')
    if p.stat().st_size == 0:
        raise ModelError(f'model file {p} is empty')
    if suffixes and p.suffix.lower() not in suffixes:
        raise ModelError(f'model file {p} should end with one of {", ".join(suffixes)}')
    return p
