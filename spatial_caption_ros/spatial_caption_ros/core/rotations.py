"""Rotation maths shared by the TF buffer of the memory and the TUM pose reader (one copy).

Quaternions are (x, y, z, w), the order of ROS messages and of TUM's groundtruth.txt.
"""

from __future__ import annotations

import math

import numpy as np


def quaternion_to_matrix(q) -> np.ndarray:
    """3x3 rotation of a quaternion (x, y, z, w), normalised first; ValueError if NaN or zero."""
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-9:
        raise ValueError(f'invalid quaternion {tuple(q)}')
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of a 3x3 rotation matrix (w >= 0)."""
    t = np.trace(r)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4)
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = math.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k]) * 2
        v = [0.0, 0.0, 0.0]
        v[i] = s / 4
        v[j] = (r[j, i] + r[i, j]) / s
        v[k] = (r[k, i] + r[i, k]) / s
        q = (v[0], v[1], v[2], (r[k, j] - r[j, k]) / s)
    if q[3] < 0:
        q = tuple(-c for c in q)
    return tuple(float(c) for c in q)


def quaternion_slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation of quaternions (x, y, z, w), shortest path, unit result."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    q0 = q0 / np.linalg.norm(q0)
    q1 = q1 / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:                  # q and -q are the same rotation: take the short way
        q1, dot = -q1, -dot
    if dot > 0.9995:               # nearly equal: linear interpolation is exact to 1e-7
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    return (math.sin((1.0 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


def pose_matrix(translation, quaternion) -> np.ndarray:
    """4x4 homogeneous transform from a translation and a quaternion (x, y, z, w)."""
    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix(quaternion)
    m[:3, 3] = translation
    return m


def rotation_angle(r: np.ndarray) -> float:
    """Angle (radians, 0..pi) of the rotation matrix r about its axis."""
    return math.acos(max(-1.0, min(1.0, (float(np.trace(r)) - 1.0) / 2.0)))
