"""The inference backend interface: a loaded model mapping named input arrays to outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
import os
from pathlib import Path

import numpy as np

from spatial_caption_ros.core.errors import ModelError
# check_model_file lives with the model registry; re-exported here for the backends.
from spatial_caption_ros.core.perception.models import check_model_file  # noqa: F401


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
    """A loaded model. Implementations allocate what they can once and reuse it for every run.

    The arrays run() returns may be buffers the backend reuses: they stay valid until the next
    run() of the same backend. Copy what must outlive it (post-processing normally does).
    """

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, str]
    info: BackendInfo
    path: Path | None = None

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on named inputs; return the outputs in the order of self.outputs."""

    def input_buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """A host array the caller may fill in place for input `name` (saves one copy), or None.

        The TensorRT backend returns its page-locked input buffer viewed as `shape`.
        """
        return None

    def io_text(self) -> str:
        """'inputs a [1, 3, 640, 640] float32; outputs b [1, 84, 8400] float32' for messages."""
        def fmt(tensors: list[TensorInfo]) -> str:
            return ', '.join(f'{t.name} {shape_text(t.shape)} {t.dtype}' for t in tensors)
        return f'inputs {fmt(self.inputs)}; outputs {fmt(self.outputs)}'

    def model_error(self, problem: str, expected: str) -> ModelError:
        """A ModelError naming the file, what is wrong, what was expected and what it has."""
        name = self.path if self.path is not None else 'the model'
        return ModelError(f'{name}: {problem}; expected {expected}; the file has {self.io_text()}')

    def close(self) -> None:
        """Release the model (memory, device buffers). The backend is unusable afterwards."""


def shape_text(shape: tuple[int | None, ...]) -> str:
    """[1, 3, H, W]-style text of a shape (dynamic dimensions shown as ?)."""
    return '[' + ', '.join('?' if d is None else str(d) for d in shape) + ']'


# More intra-op threads than this rarely speed up one small vision model (YOLO11n, DA-V2-S) and
# take cores from the other stages; the `threads` parameter overrides it.
MAX_AUTO_THREADS = 8


def usable_cpus() -> int:
    """CPUs this process may run on (affinity mask / cgroup aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_threads(models_in_parallel: int = 1) -> int:
    """Default intra-op threads for one model: its share of the usable CPUs, at most 8.

    2 cores, one model: 2. 2 cores, detection and depth running concurrently: 1 each. 32 cores:
    8 per model.
    """
    share = usable_cpus() // max(1, models_in_parallel)
    return max(1, min(MAX_AUTO_THREADS, share))
