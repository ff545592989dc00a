"""Metric scale recovery for relative (inverse) depth: a robust per-frame fit, smoothed in time.

A relative depth model such as Depth Anything V2 predicts disparity d up to an unknown scale and
shift: the true inverse depth is 1/z = s*d + t. Given metric anchors (objects placed by the
geometric source, or pixels of a depth sensor) the fit is:

1. RANSAC over pairs of anchors (all pairs when there are few, a fixed number of random pairs
   otherwise): each pair gives (s, t); the candidate with the most inliers wins. An anchor is an
   inlier when the depth error of the candidate is within INLIER_SIGMAS of that anchor's own
   uncertainty (and at least MIN_INLIER_REL), measured as a relative depth error.
2. Weighted least squares on the inliers (weights from each anchor's uncertainty in 1/z).
3. With fewer than MIN_ANCHORS_FOR_SHIFT anchors the shift cannot be told apart from noise: a
   scale-only fit (t = 0) is made instead, as the weighted median of (1/z)/d.
A fit is rejected unless s > 0 and every anchor's disparity maps to a positive inverse depth.

ScaleTracker smooths fits over frames (exponential smoothing of s and t), keeps the last fit for
a few frames without anchors, and otherwise says the depth stays relative.
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools
import math

import numpy as np

# Anchor inlier test: |relative depth error| <= max(INLIER_SIGMAS * anchor rel. sigma,
# MIN_INLIER_REL). 2.5 sigma keeps 99 % of anchors whose errors are as stated; the 5 % floor keeps
# precise anchors (a depth sensor) from rejecting each other over the model's own small errors.
INLIER_SIGMAS = 2.5
MIN_INLIER_REL = 0.05
# An affine (scale + shift) fit needs at least this many anchors, so that at least one anchor
# checks the two that define a candidate; with fewer, only the scale is fitted.
MIN_ANCHORS_FOR_SHIFT = 3
# Random pairs tried when there are too many anchors to try them all (45 anchors = 990 pairs).
# 200 pairs find an all-inlier pair with probability > 0.9999 when half the anchors are inliers.
RANSAC_PAIRS = 200
MAX_EXHAUSTIVE_ANCHORS = 45


@dataclass(frozen=True)
class ScaleFit:
    """1/z = scale * d + shift, with how well it fits."""

    scale: float
    shift: float
    anchors: int
    inliers: int
    residual: float        # median |relative depth error| of the inliers
    kind: str              # 'affine' or 'scale-only'
    rel_sigma: float = 0.0  # relative depth uncertainty the fit adds to every value

    def depth(self, disparity: np.ndarray | float) -> np.ndarray | float:
        """Metric depth of model disparity (NaN where the fit gives no positive inverse depth)."""
        inv = self.scale * np.asarray(disparity, dtype=np.float64) + self.shift
        with np.errstate(divide='ignore', invalid='ignore'):
            z = np.where(inv > 0, 1.0 / np.where(inv > 0, inv, 1.0), np.nan)
        return float(z) if np.ndim(z) == 0 else z


    def depth_map(self, disparity: np.ndarray) -> np.ndarray:
        """depth() of a whole float32 map, in float32 and in place of one temporary (fast)."""
        inv = np.multiply(disparity, np.float32(self.scale), dtype=np.float32)
        inv += np.float32(self.shift)
        bad = ~(inv > 0)
        inv[bad] = 1.0
        np.reciprocal(inv, out=inv)
        inv[bad] = np.nan
        return inv


def _rel_errors(scale: float, shift: float, d: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Relative depth error of each anchor: z_pred/z - 1, from the inverse-depth residual."""
    inv = scale * d + shift
    with np.errstate(divide='ignore', invalid='ignore'):
        rel = np.where(inv > 0, 1.0 / (inv * z) - 1.0, np.inf)
    return np.abs(rel)


def _fit_sigma(rel: np.ndarray, sig: np.ndarray, inl: np.ndarray) -> float:
    """Relative uncertainty that a fit adds to every depth it gives.

    The inliers' scatter (a robust standard deviation, 1.4826 x median absolute error), but never
    less than the anchors' own errors allow (their median relative sigma over sqrt(inliers): a
    fit through anchors that agree by chance is still only as good as the anchors).
    """
    n = int(inl.sum())
    return float(max(1.4826 * np.median(rel[inl]), np.median(sig[inl]) / math.sqrt(n)))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def fit_inverse_depth(disparity, depth, rel_sigma=None,
                      rng: np.random.Generator | None = None) -> ScaleFit | None:
    """Robust fit of 1/depth = s*disparity + t over anchors; None when no fit is credible.

    disparity: model outputs at the anchors (> 0); depth: metric depth of the anchors (> 0);
    rel_sigma: each anchor's relative depth uncertainty (default 0.1).
    """
    d = np.asarray(disparity, dtype=np.float64).reshape(-1)
    z = np.asarray(depth, dtype=np.float64).reshape(-1)
    sig = (np.full_like(z, 0.1) if rel_sigma is None
           else np.asarray(rel_sigma, dtype=np.float64).reshape(-1))
    ok = np.isfinite(d) & np.isfinite(z) & np.isfinite(sig) & (d > 0) & (z > 0) & (sig > 0)
    d, z, sig = d[ok], z[ok], sig[ok]
    n = d.size
    if n == 0:
        return None
    tol = np.maximum(INLIER_SIGMAS * sig, MIN_INLIER_REL)
    # Weights of least squares in inverse depth: sigma(1/z) = rel_sigma / z.
    w = (z / sig) ** 2
    if n >= MIN_ANCHORS_FOR_SHIFT:
        fit = _ransac_affine(d, z, sig, tol, w, rng)
        if fit is not None:
            return fit
    return _scale_only(d, z, sig, tol, w)


def _scale_only(d, z, sig, tol, w) -> ScaleFit | None:
    ratios = (1.0 / z) / d
    scale = _weighted_median(ratios, w)
    rel = _rel_errors(scale, 0.0, d, z)
    inl = rel <= tol
    if not inl.any():
        return None
    scale = _weighted_median(ratios[inl], w[inl])
    rel = _rel_errors(scale, 0.0, d, z)
    inl = rel <= tol
    if 2 * inl.sum() <= d.size:
        return None     # no majority agrees on one scale
    return ScaleFit(scale, 0.0, int(d.size), int(inl.sum()), float(np.median(rel[inl])),
                    'scale-only', _fit_sigma(rel, sig, inl))


def _pairs(n: int, rng: np.random.Generator | None):
    if n <= MAX_EXHAUSTIVE_ANCHORS:
        return itertools.combinations(range(n), 2)
    rng = rng or np.random.default_rng(0)
    firsts = rng.integers(0, n, RANSAC_PAIRS)
    seconds = (firsts + rng.integers(1, n, RANSAC_PAIRS)) % n
    return zip(firsts.tolist(), seconds.tolist(), strict=True)


def _ransac_affine(d, z, sig, tol, w, rng) -> ScaleFit | None:
    inv = 1.0 / z
    best_inliers, best_score = None, (-1, -math.inf)
    for i, j in _pairs(d.size, rng):
        if abs(d[i] - d[j]) <= 1e-9 * max(d[i], d[j]):
            continue
        scale = (inv[i] - inv[j]) / (d[i] - d[j])
        if scale <= 0:
            continue
        shift = inv[i] - scale * d[i]
        inl = _rel_errors(scale, shift, d, z) <= tol
        score = (int(inl.sum()), float(w[inl].sum()))
        if score > best_score:
            best_score, best_inliers = score, inl
    if best_inliers is None or best_score[0] < MIN_ANCHORS_FOR_SHIFT:
        return None
    inl = best_inliers
    # Weighted least squares on the inliers, then one more inlier pass with the refined fit.
    for _ in range(2):
        a = np.stack([d[inl], np.ones(int(inl.sum()))], axis=1)
        sw = np.sqrt(w[inl])
        (scale, shift), *_ = np.linalg.lstsq(a * sw[:, None], inv[inl] * sw, rcond=None)
        if scale <= 0 or np.any(scale * d + shift <= 0):
            return None
        rel = _rel_errors(scale, shift, d, z)
        new = rel <= tol
        if new.sum() < MIN_ANCHORS_FOR_SHIFT:
            return None
        if np.array_equal(new, inl):
            break
        inl = new
    return ScaleFit(float(scale), float(shift), int(d.size), int(inl.sum()),
                    float(np.median(rel[inl])), 'affine', _fit_sigma(rel, sig, inl))


class ScaleTracker:
    """Smooths per-frame fits over time and says how old the fit in use is."""

    def __init__(self, smoothing: float = 0.5, max_age_frames: int = 10) -> None:
        self.smoothing = smoothing          # weight of the previous fit (0: no smoothing)
        self.max_age_frames = max_age_frames
        self.current: ScaleFit | None = None
        self.age = 0                        # frames since the last successful fit

    def reset(self) -> None:
        self.current, self.age = None, 0

    def update(self, fit: ScaleFit | None) -> tuple[ScaleFit | None, str]:
        """Feed this frame's fit (or None); returns the fit to use and a note."""
        if fit is not None:
            prev = self.current
            if prev is not None and self.smoothing > 0 and self.age <= self.max_age_frames:
                a = self.smoothing
                fit = ScaleFit((1 - a) * fit.scale + a * prev.scale,
                               (1 - a) * fit.shift + a * prev.shift,
                               fit.anchors, fit.inliers, fit.residual, fit.kind,
                               (1 - a) * fit.rel_sigma + a * prev.rel_sigma)
                smoothed = ', smoothed over frames'
            else:
                smoothed = ''
            self.current, self.age = fit, 0
            return fit, (f'{fit.kind} fit on {fit.anchors} anchors, {fit.inliers} inliers, '
                         f'median error {100 * fit.residual:.0f}%{smoothed}')
        self.age += 1
        if self.current is not None and self.age <= self.max_age_frames:
            return self.current, f'no fit this frame: using the fit of {self.age} frame(s) ago'
        self.current = None
        return None, 'no fit'
