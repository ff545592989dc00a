"""Rigid transforms and a small TF buffer, for when tf2_ros is not importable.

The PyPI ROS wheels have no tf2_ros; the memory node then feeds this buffer with the transforms
of /tf and /tf_static (tf2_msgs/TFMessage, converted in ros/conversions.py) and asks it for
`world_frame <- camera frame` at each scene graph's stamp. Like tf2 it walks the frame tree,
interpolates dynamic transforms between samples (linear translation, slerp rotation) and refuses
to extrapolate beyond a tolerance: a missing or stale transform raises TransformError with the
reason, never returns a silently wrong pose.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
import math
import threading

import numpy as np

from spatial_caption_ros.core.errors import SpatialCaptionError
from spatial_caption_ros.core.rotations import matrix_to_quaternion, quaternion_slerp, \
    quaternion_to_matrix


class TransformError(SpatialCaptionError):
    """No transform between two frames at a time (missing link, or too old / too new)."""


class TransformMissingError(TransformError):
    """The frames are not connected (no such frame, or no path between them)."""


class TransformStaleError(TransformError):
    """The frames are connected but no sample is close enough to the requested time."""


@dataclass(frozen=True)
class Transform:
    """x_parent = rotation @ x_child + translation."""

    rotation: np.ndarray       # 3x3
    translation: np.ndarray    # 3

    @classmethod
    def identity(cls) -> Transform:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_quaternion(cls, translation, quaternion) -> Transform:
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(t)):
            raise TransformError(f'invalid translation {translation}')
        try:
            return cls(quaternion_to_matrix(quaternion), t)
        except ValueError as exc:
            raise TransformError(str(exc)) from exc

    @property
    def quaternion(self) -> tuple[float, float, float, float]:
        return matrix_to_quaternion(self.rotation)

    def compose(self, other: Transform) -> Transform:
        """The transform of applying `other` first, then this one (tf composition)."""
        return Transform(self.rotation @ other.rotation,
                         self.rotation @ other.translation + self.translation)

    def inverse(self) -> Transform:
        rt = self.rotation.T
        return Transform(rt, -rt @ self.translation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform one point (3,) or many (N, 3)."""
        return np.asarray(points) @ self.rotation.T + self.translation


@dataclass(frozen=True)
class StampedTransform:
    """One edge of the frame tree: child frame's pose in the parent frame at a time."""

    parent: str
    child: str
    stamp_ns: int
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]   # quaternion x, y, z, w


class _Edge:
    """The samples of one parent -> child edge, sorted by stamp, bounded by a time window."""

    def __init__(self, parent: str) -> None:
        self.parent = parent
        self.stamps: deque[int] = deque()
        self.samples: deque[tuple[np.ndarray, np.ndarray]] = deque()

    def add(self, stamp_ns: int, t: np.ndarray, q: np.ndarray, cache_ns: int) -> None:
        if self.stamps and stamp_ns <= self.stamps[-1]:
            if stamp_ns == self.stamps[-1]:
                self.samples[-1] = (t, q)
                return
            # out of order: insert in place (rare: two publishers of one edge)
            i = bisect_left(self.stamps, stamp_ns)
            self.stamps.insert(i, stamp_ns)
            self.samples.insert(i, (t, q))
        else:
            self.stamps.append(stamp_ns)
            self.samples.append((t, q))
        while self.stamps and self.stamps[0] < self.stamps[-1] - cache_ns:
            self.stamps.popleft()
            self.samples.popleft()

    def at(self, stamp_ns: int, tolerance_ns: int, child: str) -> Transform:
        if not self.stamps:
            raise TransformMissingError(f'no transform {self.parent} -> {child} received')
        i = bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            t, q = self.samples[i]
            return Transform.from_quaternion(t, q)
        if 0 < i < len(self.stamps):
            s0, s1 = self.stamps[i - 1], self.stamps[i]
            a = (stamp_ns - s0) / (s1 - s0)
            (t0, q0), (t1, q1) = self.samples[i - 1], self.samples[i]
            return Transform.from_quaternion(t0 + a * (t1 - t0), quaternion_slerp(q0, q1, a))
        nearest = self.stamps[0] if i == 0 else self.stamps[-1]
        gap = abs(stamp_ns - nearest)
        if gap > tolerance_ns:
            side = 'before the oldest' if i == 0 else 'after the newest'
            raise TransformStaleError(
                f'transform {self.parent} -> {child} is stale: requested time is {gap / 1e9:.3f} '
                f's {side} sample (tolerance {tolerance_ns / 1e9:.3f} s)')
        t, q = self.samples[0 if i == 0 else -1]
        return Transform.from_quaternion(t, q)


class TransformBuffer:
    """Frame tree of static and dynamic transforms; thread-safe lookups (tf2's job, minimal).

    tolerance_s: how far a lookup may lie beyond the newest (or before the oldest) sample of a
    dynamic edge; cache_s: how much history each dynamic edge keeps.
    """

    def __init__(self, cache_s: float = 10.0, tolerance_s: float = 0.1) -> None:
        self.cache_ns = int(cache_s * 1e9)
        self.tolerance_ns = int(tolerance_s * 1e9)
        self._static: dict[str, tuple[str, Transform]] = {}
        self._dynamic: dict[str, _Edge] = {}
        self._lock = threading.Lock()

    def set_transform(self, tf: StampedTransform, static: bool = False) -> None:
        """Add one edge sample (raises TransformError for NaN values or a frame its own parent)."""
        if not tf.parent or not tf.child or tf.parent == tf.child:
            raise TransformError(f'invalid transform {tf.parent!r} -> {tf.child!r}')
        t = np.asarray(tf.translation, dtype=np.float64)
        q = np.asarray(tf.rotation, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if not (np.all(np.isfinite(t)) and math.isfinite(norm) and norm > 1e-9):
            raise TransformError(f'invalid transform {tf.parent} -> {tf.child}: NaN or zero '
                                 'quaternion')
        q = q / norm
        with self._lock:
            if static:
                self._static[tf.child] = (tf.parent, Transform.from_quaternion(t, q))
                self._dynamic.pop(tf.child, None)
                return
            edge = self._dynamic.get(tf.child)
            if edge is None or edge.parent != tf.parent:
                edge = self._dynamic[tf.child] = _Edge(tf.parent)
                self._static.pop(tf.child, None)
            edge.add(tf.stamp_ns, t, q, self.cache_ns)

    def frames(self) -> set[str]:
        """Every frame named by a received transform."""
        with self._lock:
            return self._frames()

    def _chain(self, frame: str, stamp_ns: int) -> list[tuple[str, Transform]]:
        """[(ancestor, transform ancestor <- frame)] from frame up to the root."""
        out = [(frame, Transform.identity())]
        seen = {frame}
        current, acc = frame, Transform.identity()
        while True:
            if current in self._static:
                parent, tf = self._static[current]
            elif current in self._dynamic:
                edge = self._dynamic[current]
                parent, tf = edge.parent, edge.at(stamp_ns, self.tolerance_ns, current)
            else:
                return out
            if parent in seen:
                raise TransformError(f'the frame tree has a loop at {parent}')
            acc = tf.compose(acc)
            seen.add(parent)
            out.append((parent, acc))
            current = parent

    def lookup(self, target: str, source: str, stamp_ns: int) -> Transform:
        """Transform mapping points of `source` into `target` at `stamp_ns`."""
        if target == source:
            return Transform.identity()
        with self._lock:
            known = self._frames()
            for name in (target, source):
                if name not in known:
                    raise TransformMissingError(f'frame {name!r} does not exist (known frames: '
                                                f'{", ".join(sorted(known)) or "none"})')
            up_source = self._chain(source, stamp_ns)
            up_target = dict(self._chain(target, stamp_ns))
        for ancestor, source_to_ancestor in up_source:
            target_to_ancestor = up_target.get(ancestor)
            if target_to_ancestor is not None:
                return target_to_ancestor.inverse().compose(source_to_ancestor)
        raise TransformMissingError(f'frames {target!r} and {source!r} are not connected')

    def _frames(self) -> set[str]:
        names = set(self._static) | set(self._dynamic)
        names |= {p for p, _ in self._static.values()}
        names |= {e.parent for e in self._dynamic.values()}
        return names
