"""Depth Anything V2: dense monocular depth, relative (inverse depth) or metric (metres).

Input contract of the official exports: one RGB image, ImageNet-normalised, NCHW float32, sides
multiples of 14 (the ViT patch size); named `image` (official repository) or `pixel_values`
(transformers). Output: `depth` or `predicted_depth`, [1, H, W] or [1, 1, H, W] at the input
size. The relative models output inverse depth (disparity, larger = nearer) up to an unknown
scale and shift; the metric indoor/outdoor models output metres.

Preprocessing follows the official `image2tensor`: the shorter side is resized to the input size
(518 by default) and the longer side to the multiple of 14 that keeps the aspect ratio, with
bicubic interpolation. A model with a fixed input shape gets the image letterboxed into it
(aspect kept, the padding is the mean colour, i.e. zero after normalisation) and the padding is
cropped from its output. The output is resized back to the image with bilinear interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import time

import cv2
import numpy as np

from spatial_caption_ros.core.perception.backends import InferenceBackend
from spatial_caption_ros.core.perception.depth.base import DepthInput, DepthOutput, DepthSource
from spatial_caption_ros.core.perception.depth.config import (
    DepthConfig, MODEL_OUTPUTS, PATCH, SCALE_SOURCES)
from spatial_caption_ros.core.perception.depth.geometric import (
    depth_extent, GeometricDepth, GeometricEstimate)
from spatial_caption_ros.core.perception.depth.scale import (
    fit_inverse_depth,
    ScaleFit,
    ScaleTracker,
)
from spatial_caption_ros.core.perception.depth.statistics import box_depth, BoxDepth
from spatial_caption_ros.core.errors import ConfigError, ModelError
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import DEPTH_ANYTHING_V2, NAN, ObjectDepth

IMAGENET_MEAN = (0.485, 0.456, 0.406)        # the normalisation DINOv2 was trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NAMES = ('image', 'pixel_values')      # official repository / transformers exports
OUTPUT_NAMES = ('depth', 'predicted_depth')
# What a depth model file must be (quoted in every error about one).
DEPTH_CONTRACT = ('a Depth Anything V2 ONNX model with input image or pixel_values [1, 3, H, W] '
                  'float32 (H and W multiples of 14) and output depth or predicted_depth '
                  '[1, H, W] or [1, 1, H, W]')

# Geometric anchors looser than this (relative sigma) are not used for the scale fit; the same
# limit as the knowledge file's rule that classes above 0.35 size spread do not anchor scale.
MAX_ANCHOR_REL_SIGMA = 0.35
# Depth-sensor anchors: a grid of this many columns x rows over the image, each anchor trusted to
# SENSOR_REL_SIGMA (typical RGB-D error at a few metres is 1-2 %; 2 % is the conservative end).
SENSOR_GRID = (48, 36)
SENSOR_REL_SIGMA = 0.02
# Relative depth is reported as ref/disparity, ref = this percentile of the frame's disparity
# (its nearest parts), so values start near 1 for the nearest things and grow with distance.
RELATIVE_REF_PERCENTILE = 99.0
# Relative-depth values are capped here: disparity near zero (sky) would otherwise be near inf.
MAX_RELATIVE_DEPTH = 1000.0


def round_to_patch(value: float) -> int:
    """Nearest multiple of the patch size, at least one patch."""
    return max(PATCH, int(round(value / PATCH)) * PATCH)


def dynamic_input_size(width: int, height: int, size: int) -> tuple[int, int]:
    """Network input (width, height): shorter side `size`, aspect kept, multiples of 14."""
    if size % PATCH:
        raise ConfigError(f'depth input size {size} is not a multiple of {PATCH}')
    if width >= height:
        return max(size, round_to_patch(size * width / height)), size
    return size, max(size, round_to_patch(size * height / width))


@dataclass(frozen=True)
class Placement:
    """Where the resized image sits in the network input."""

    input_w: int
    input_h: int
    x: int
    y: int
    w: int
    h: int


class DepthAnythingModel:
    """A loaded Depth Anything V2 network: image in, HxW map out at the image's size."""

    def __init__(self, backend: InferenceBackend, input_size: int = 518) -> None:
        self.backend = backend
        self.input_size = input_size
        self.input_name = self._pick(backend, backend.inputs, INPUT_NAMES, 'input')
        self.output_name = self._pick(backend, backend.outputs, OUTPUT_NAMES, 'output')
        inp = next(t for t in backend.inputs if t.name == self.input_name)
        if len(inp.shape) != 4 or inp.shape[0] not in (1, None) or inp.shape[1] not in (3, None):
            raise backend.model_error(f'input {inp.name} is not one RGB image [1, 3, H, W]',
                                      DEPTH_CONTRACT)
        self.fixed_shape = (inp.shape[3], inp.shape[2]) if inp.shape[2] and inp.shape[3] else None
        if self.fixed_shape and any(s % PATCH for s in self.fixed_shape):
            raise backend.model_error(f'input {inp.name} has sides that are not multiples of '
                                      f'{PATCH}', DEPTH_CONTRACT)
        out = next(t for t in backend.outputs if t.name == self.output_name)
        self._output_index = [t.name for t in backend.outputs].index(self.output_name)
        if len(out.shape) not in (3, 4) or out.shape[0] not in (1, None) or (
                len(out.shape) == 4 and out.shape[1] not in (1, None)):
            raise backend.model_error(f'output {out.name} is not one depth map', DEPTH_CONTRACT)
        self._blob: np.ndarray | None = None
        self.last_input_shape: tuple[int, ...] | None = None
        scale = np.array([1.0 / (255.0 * s) for s in IMAGENET_STD], dtype=np.float32)
        self._mul = scale
        self._sub = np.array([m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)],
                             dtype=np.float32)

    @staticmethod
    def _pick(backend: InferenceBackend, tensors, names: tuple[str, ...], what: str) -> str:
        for t in tensors:
            if t.name in names:
                return t.name
        if len(tensors) == 1:
            return tensors[0].name
        raise backend.model_error(f'{len(tensors)} {what}s and none is called '
                                  f'{" or ".join(names)}', DEPTH_CONTRACT)

    def placement(self, width: int, height: int) -> Placement:
        """Network input size and where the resized image goes in it."""
        if self.fixed_shape is None:
            w, h = dynamic_input_size(width, height, self.input_size)
            return Placement(w, h, 0, 0, w, h)
        in_w, in_h = self.fixed_shape
        scale = min(in_w / width, in_h / height)
        w = min(in_w, max(1, int(round(width * scale))))
        h = min(in_h, max(1, int(round(height * scale))))
        return Placement(in_w, in_h, (in_w - w) // 2, (in_h - h) // 2, w, h)

    def preprocess(self, image: ColorImage) -> tuple[np.ndarray, Placement]:
        """Resize and normalise into the network input buffer (allocated once per shape)."""
        p = self.placement(image.width, image.height)
        shape = (1, 3, p.input_h, p.input_w)
        if self._blob is None or self._blob.shape != shape:
            # The backend's own input buffer when it has one (TensorRT: page-locked memory,
            # saves a copy per frame), else a buffer of ours; allocated once per shape.
            buffer = self.backend.input_buffer(self.input_name, shape)
            self._blob = buffer if buffer is not None else np.empty(shape, dtype=np.float32)
            self._blob.fill(0.0)
        elif (p.w, p.h) != (p.input_w, p.input_h):
            self._blob.fill(0.0)
        resized = image.pixels
        if (p.w, p.h) != (image.width, image.height):
            resized = cv2.resize(image.pixels, (p.w, p.h), interpolation=cv2.INTER_CUBIC)
        order = (0, 1, 2) if image.order == 'rgb' else (2, 1, 0)
        view = self._blob[0, :, p.y:p.y + p.h, p.x:p.x + p.w]
        for dst_c, src_c in enumerate(order):
            np.multiply(resized[:, :, src_c], self._mul[dst_c], out=view[dst_c],
                        casting='unsafe')
            view[dst_c] -= self._sub[dst_c]
        return self._blob, p

    def predict(self, image: ColorImage, timings: dict[str, float] | None = None) -> np.ndarray:
        """The model's HxW output resized to the image (float32)."""
        t0 = time.perf_counter()
        blob, p = self.preprocess(image)
        self.last_input_shape = blob.shape
        t1 = time.perf_counter()
        out = self.backend.run({self.input_name: blob})[self._output_index]
        t2 = time.perf_counter()
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 4:
            out = out[0, 0]
        elif out.ndim == 3:
            out = out[0]
        else:
            raise ModelError(f'depth model output has shape {out.shape}')
        if out.shape != (p.input_h, p.input_w):
            # Some exports emit a smaller map; map the placement into its resolution.
            sy, sx = out.shape[0] / p.input_h, out.shape[1] / p.input_w
            crop = out[int(p.y * sy):int(math.ceil((p.y + p.h) * sy)),
                       int(p.x * sx):int(math.ceil((p.x + p.w) * sx))]
        else:
            crop = out[p.y:p.y + p.h, p.x:p.x + p.w]
        resized = cv2.resize(crop, (image.width, image.height), interpolation=cv2.INTER_LINEAR)
        t3 = time.perf_counter()
        if timings is not None:
            timings['preprocess'] = (t1 - t0) * 1e3
            timings['inference'] = (t2 - t1) * 1e3
            timings['postprocess'] = (t3 - t2) * 1e3
        return resized


@dataclass
class DensePrediction:
    """What prepare() hands to estimate(): the map and its timings."""

    depth_map: np.ndarray
    timings_ms: dict[str, float]


class DepthAnythingSource(DepthSource):
    """Per-object depth from Depth Anything V2, made metric by scale recovery when relative."""

    name = DEPTH_ANYTHING_V2
    dense = True

    def __init__(self, backend: InferenceBackend, knowledge: KnowledgeBase,
                 config: DepthConfig | None = None) -> None:
        config = config or DepthConfig()
        model_output, scale_source = config.model_output, config.scale.source
        if model_output not in MODEL_OUTPUTS:
            raise ConfigError(f'depth model output {model_output!r}: use {MODEL_OUTPUTS}')
        if scale_source not in SCALE_SOURCES:
            raise ConfigError(f'depth scale source {scale_source!r}: use {SCALE_SOURCES}')
        self.model = DepthAnythingModel(backend, config.input_size)
        self.knowledge = knowledge
        self.metric_model = model_output == 'metric'
        self.scale_source = scale_source
        self.box_stats = config.box
        self.geometric = GeometricDepth(
            knowledge, config.border_margin_px,
            camera_tilt_uncertainty_deg=config.camera_tilt_uncertainty_deg)
        self.scale = ScaleTracker(config.scale.smoothing, config.scale.max_age_frames)
        self.last_fit: ScaleFit | None = None
        self.needs_sensor_depth = scale_source == 'sensor' and not self.metric_model
        self._rng = np.random.default_rng(0)

    def prepare(self, image: ColorImage) -> DensePrediction:
        timings: dict[str, float] = {}
        return DensePrediction(self.model.predict(image, timings), timings)

    def estimate(self, inp: DepthInput, prepared: DensePrediction | None = None) -> DepthOutput:
        pred = prepared if prepared is not None else self.prepare(inp.image)
        t0 = time.perf_counter()
        out = (self._metric(inp, pred.depth_map) if self.metric_model
               else self._relative(inp, pred.depth_map))
        out.timings_ms.update(pred.timings_ms)
        out.timings_ms['statistics'] = (time.perf_counter() - t0) * 1e3
        return out

    # ------------------------------------------------------------------ metric models

    def _extent(self, det, surface: float, estimate: GeometricEstimate | None,
                intrinsics) -> float:
        """Depth extent of the object: its centre is half of it behind the visible surface."""
        if estimate is not None and math.isfinite(estimate.extent):
            return estimate.extent
        prior = self.knowledge.size_prior(det.class_name)
        if prior is None:
            return 0.0
        return depth_extent(prior, det.box, surface, intrinsics, z_is_surface=True)

    def _metric(self, inp: DepthInput, metres: np.ndarray) -> DepthOutput:
        objects = []
        for det in inp.detections:
            st = box_depth(metres, det.box, self.box_stats)
            objects.append(self._metric_object(det, st.value, st.spread, None, inp.intrinsics))
        return DepthOutput(objects=objects, metric=True, depth_map=metres,
                           notes=['depth_anything_v2: metric model (metres from the model)'])

    def _metric_object(self, det, surface: float, sigma: float,
                       estimate: GeometricEstimate | None, intrinsics) -> ObjectDepth:
        if not math.isfinite(surface) or surface <= 0:
            return ObjectDepth(source=DEPTH_ANYTHING_V2)
        extent = self._extent(det, surface, estimate, intrinsics)
        return ObjectDepth(surface + 0.5 * extent, sigma, DEPTH_ANYTHING_V2, True, extent)

    # ------------------------------------------------------------------ relative models

    def _anchors(self, inp: DepthInput, disparity: np.ndarray, stats: list[BoxDepth],
                 estimates: list[GeometricEstimate]):
        """(disparity, surface depth, relative sigma) of the metric anchors, and a note."""
        if self.scale_source == 'geometric':
            if inp.intrinsics is None:
                return None, 'no camera_info, so no geometric anchors'
            rows = [(st.value, e.z - 0.5 * e.extent, e.rel_sigma)
                    for st, e in zip(stats, estimates, strict=True)
                    if st.known and e.known and e.metric and e.rel_sigma <= MAX_ANCHOR_REL_SIGMA
                    and e.z - 0.5 * e.extent > 0]
            if not rows:
                return None, 'no object usable as a geometric anchor'
            return np.array(rows, dtype=np.float64).T, ''
        if self.scale_source == 'sensor':
            sensor = inp.sensor_depth
            if sensor is None:
                return None, 'no sensor depth frame for this image'
            cols, rows = SENSOR_GRID
            h, w = disparity.shape
            ys = ((np.arange(rows) + 0.5) * h / rows).astype(int)
            xs = ((np.arange(cols) + 0.5) * w / cols).astype(int)
            d = disparity[np.ix_(ys, xs)].reshape(-1)
            z = sensor[np.ix_(ys, xs)].reshape(-1)
            ok = np.isfinite(d) & np.isfinite(z) & (d > 0) & (z > 0)
            if not ok.any():
                return None, 'the sensor depth frame has no valid readings'
            return np.stack([d[ok], z[ok], np.full(int(ok.sum()), SENSOR_REL_SIGMA)]), ''
        return None, 'depth_scale_source is none'

    def _relative(self, inp: DepthInput, disparity: np.ndarray) -> DepthOutput:
        notes: list[str] = []
        if inp.sensor_depth is not None and inp.sensor_depth.shape != disparity.shape:
            notes.append(f'sensor depth {inp.sensor_depth.shape[::-1]} does not match the image '
                         f'{disparity.shape[::-1]}: not used')
            inp = DepthInput(inp.image, inp.detections, inp.intrinsics, None, inp.gravity)
        stats = [box_depth(disparity, d.box, self.box_stats, larger_is_nearer=True)
                 for d in inp.detections]
        estimates = (self.geometric.estimates(inp.detections, inp.intrinsics, inp.image.width,
                                              inp.image.height, inp.gravity)
                     if inp.intrinsics is not None else [None] * len(stats))
        anchors, why = (None, 'depth_scale_source is none') if self.scale_source == 'none' \
            else self._anchors(inp, disparity, stats, estimates)
        fit = None
        if anchors is not None:
            fit = fit_inverse_depth(anchors[0], anchors[1], anchors[2], self._rng)
            if fit is None:
                why = f'no consistent scale over {anchors.shape[1]} anchor(s)'
        fit, fit_note = self.scale.update(fit)
        self.last_fit = fit
        if fit is not None:
            objects = []
            for det, st, est in zip(inp.detections, stats, estimates, strict=True):
                surface = fit.depth(st.value) if st.known else NAN
                sigma = NAN
                if math.isfinite(surface):
                    # d z / d disparity = -scale * z^2; plus the fit's own relative error.
                    sigma = math.hypot(fit.scale * surface * surface * st.spread,
                                       fit.rel_sigma * surface)
                objects.append(self._metric_object(det, surface, sigma, est, inp.intrinsics))
            metres = fit.depth_map(disparity)
            notes.append(f'depth_anything_v2 metric scale from {self.scale_source}: {fit_note}')
            return DepthOutput(objects=objects, metric=True, depth_map=metres, notes=notes)
        ref = self._reference(disparity)
        objects = []
        for st in stats:
            if st.known and st.value > 0:
                value = min(MAX_RELATIVE_DEPTH, ref / st.value)
                objects.append(ObjectDepth(value, value * st.spread / st.value,
                                           DEPTH_ANYTHING_V2, False))
            else:
                objects.append(ObjectDepth(source=DEPTH_ANYTHING_V2))
        with np.errstate(divide='ignore'):
            rel_map = np.minimum(ref / np.maximum(disparity, 0.0), MAX_RELATIVE_DEPTH)
        notes.append(f'depth_anything_v2: relative depth only ({why})')
        return DepthOutput(objects=objects, metric=False, depth_map=rel_map.astype(np.float32),
                           notes=notes)

    @staticmethod
    def _reference(disparity: np.ndarray) -> float:
        step = max(1, int(math.sqrt(disparity.size / 65536)))
        sample = disparity[::step, ::step]
        sample = sample[np.isfinite(sample) & (sample > 0)]
        return float(np.percentile(sample, RELATIVE_REF_PERCENTILE)) if sample.size else 1.0

    def close(self) -> None:
        self.model.backend.close()
