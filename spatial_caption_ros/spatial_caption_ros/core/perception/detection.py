"""YOLO11 object detection: letterbox preprocessing, output decoding and class-aware NMS.

Works with any InferenceBackend. Supports the standard Ultralytics export ([1, 4+C, N]: cx, cy,
w, h in input pixels followed by C sigmoid class scores, no NMS in the graph) and the end-to-end
export ([1, N, 6]: x1, y1, x2, y2, score, class, NMS already applied).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
import math
from pathlib import Path
import time

import cv2
import numpy as np

from spatial_caption_ros.core.perception.backends import InferenceBackend
from spatial_caption_ros.core.errors import ModelError
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.perception.models import check_model_file
from spatial_caption_ros.core.runtime.text import sanitize_label
from spatial_caption_ros.core.types import BoundingBox, Detection

# What a detector model file must be (quoted in every error about one).
YOLO_CONTRACT = ('a YOLO ONNX detection model with one input [1, 3, H, W] float32 (RGB 0..1) '
                 'and output [1, 4+C, N] (box + C class scores, C = the number of class names) '
                 'or [1, N, 6] (end-to-end export)')
PAD_VALUE = 114  # Ultralytics letterbox padding grey
# Candidates kept before NMS, as Ultralytics does (max_nms): bounds NMS cost on cluttered frames.
MAX_NMS_CANDIDATES = 30000
# Offset that separates classes in class-aware NMS; larger than any input side.
CLASS_OFFSET = 8192.0
# Network stride of YOLO11 (P5 head): input sides of dynamic-shape models are rounded up to it.
DEFAULT_STRIDE = 32
# Largest stride metadata accepted (P6 models use 64; more is not a YOLO model).
MAX_STRIDE = 128
# Class-name tables larger than this are refused (COCO: 80, Open Images: 601, LVIS: 1203).
MAX_CLASSES = 100000
MAX_CLASS_NAMES_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Letterbox:
    """How a source image was placed into the network input: scale, then pad."""

    scale: float
    pad_x: float
    pad_y: float
    src_width: int
    src_height: int


def letterbox_params(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[int, int, Letterbox]:
    """Resized size and placement of a src_w x src_h image in a dst_w x dst_h input (centred)."""
    scale = min(dst_w / src_w, dst_h / src_h)
    new_w, new_h = max(1, int(round(src_w * scale))), max(1, int(round(src_h * scale)))
    pad_x, pad_y = (dst_w - new_w) / 2.0, (dst_h - new_h) / 2.0
    return new_w, new_h, Letterbox(scale, pad_x, pad_y, src_w, src_h)


class LetterboxPreprocessor:
    """Writes letterboxed, normalised NCHW float32 input into one buffer allocated once."""

    def __init__(self, width: int, height: int, buffer: np.ndarray | None = None) -> None:
        self.width, self.height = width, height
        shape = (1, 3, height, width)
        if buffer is not None and (buffer.shape != shape or buffer.dtype != np.float32):
            raise ValueError(f'letterbox buffer must be float32 {shape}, got {buffer.dtype} '
                             f'{buffer.shape}')
        # The backend's own input buffer when it offers one (TensorRT: page-locked memory), so
        # the letterboxed image is written where the GPU copy reads it: no extra copy.
        self.blob = buffer if buffer is not None else np.empty(shape, dtype=np.float32)
        self._placement: tuple[int, int, int, int] | None = None

    def __call__(self, image: ColorImage) -> tuple[np.ndarray, Letterbox]:
        new_w, new_h, lb = letterbox_params(image.width, image.height, self.width, self.height)
        left, top = int(round(lb.pad_x - 0.1)), int(round(lb.pad_y - 0.1))
        placement = (left, top, new_w, new_h)
        if placement != self._placement:   # refill the padding only when the geometry changes
            self.blob.fill(PAD_VALUE / 255.0)
            self._placement = placement
        src = image.pixels
        if (new_w, new_h) != (image.width, image.height):
            src = cv2.resize(src, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        # uint8 HWC (RGB or BGR) -> float CHW in [0, 1], written in place into the blob: split
        # the planes (contiguous copies, fast in OpenCV), then one scaled conversion per plane.
        planes = cv2.split(src)
        order = (0, 1, 2) if image.order == 'rgb' else (2, 1, 0)
        view = self.blob[0, :, top:top + new_h, left:left + new_w]
        for dst_c, src_c in enumerate(order):
            np.multiply(planes[src_c], np.float32(1.0 / 255.0), out=view[dst_c],
                        casting='unsafe')
        lb = Letterbox(lb.scale, float(left), float(top), lb.src_width, lb.src_height)
        return self.blob, lb


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        max_keep: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression; boxes Nx4 (x1, y1, x2, y2). Returns kept indices.

    Each step keeps the best remaining box and drops every remaining box overlapping it by more
    than iou_threshold in one vectorised pass, so the Python loop runs once per KEPT box (and
    stops at max_keep). Class-aware NMS: offset each class's boxes (see CLASS_OFFSET).
    """
    order = np.argsort(-scores, kind='stable')
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def parse_class_names(metadata: dict[str, str]) -> list[str] | None:
    """Class names from Ultralytics ONNX metadata ("{0: 'person', ...}"), sanitised."""
    raw = metadata.get('names')
    if not raw:
        return None
    try:
        names = ast.literal_eval(raw)   # literals only: never evaluates code
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(names, dict):
        try:
            ids = [int(k) for k in names]
        except (TypeError, ValueError, OverflowError):
            return None
        if not ids or min(ids) < 0 or max(ids) >= MAX_CLASSES:
            return None
        size = max(ids) + 1
        if not all(isinstance(v, str) for v in names.values()):
            return None
        out = [f'class {i}' for i in range(size)]
        for k, v in names.items():
            out[int(k)] = sanitize_label(v)
        return out
    if (isinstance(names, (list, tuple)) and 0 < len(names) <= MAX_CLASSES
            and all(isinstance(v, str) for v in names)):
        return [sanitize_label(v) for v in names]
    return None


def read_class_names_file(path: str | Path) -> list[str]:
    """One class name per line (checked first: a regular text file of bounded size)."""
    p = check_model_file(path)
    if p.stat().st_size > MAX_CLASS_NAMES_BYTES:
        raise ModelError(f'class names file {p} is larger than {MAX_CLASS_NAMES_BYTES} bytes')
    try:
        with open(p, encoding='utf-8') as f:
            names = [sanitize_label(line.strip()) for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f'class names file {p} cannot be read as UTF-8 text: {exc}') from exc
    if not names or len(names) > MAX_CLASSES:
        raise ModelError(f'class names file {p} has {len(names)} names (1 to {MAX_CLASSES})')
    return names


def metadata_stride(backend: InferenceBackend) -> int:
    """The network stride from the model metadata (untrusted: checked), else DEFAULT_STRIDE."""
    raw = backend.metadata.get('stride')
    if raw is None:
        return DEFAULT_STRIDE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value.is_integer() and 1 <= value <= MAX_STRIDE):
        raise backend.model_error(f'metadata stride {str(raw)[:20]!r} is not a whole number of '
                                  f'pixels from 1 to {MAX_STRIDE}', YOLO_CONTRACT)
    return int(value)


def input_side(value: int, stride: int = DEFAULT_STRIDE) -> int:
    """An input side rounded up to a multiple of the network stride (as Ultralytics does)."""
    return max(stride, -(-int(value) // stride) * stride)


@dataclass(frozen=True)
class DetectorConfig:
    """The detector's parameters (PerceptionConfig.detector; ROS names as declared below)."""

    model: str = param(
        'yolo11n', 'Detector: a model name from models/manifest.yaml or a path to an .onnx file.',
        when=CONFIGURE, name='detector_model')
    class_names_file: str = param(
        '', 'Text file with one class name per line; empty: read the names from the model '
        'metadata.', when=CONFIGURE)
    threads: int = param(
        0, 'CPU inference threads of the detector; 0: auto (the usable cores, at most 8, or a '
        'share of them when depth runs in parallel: see parallel_depth).', minimum=0,
        maximum=256, when=CONFIGURE)
    input_size: int = param(
        640, 'Network input side for detector models with dynamic input size (rounded up to a '
        'multiple of 32); fixed-size models use their own size.', minimum=32, maximum=4096,
        when=CONFIGURE, name='detector_input_size')
    confidence_threshold: float = param(
        0.25, 'Minimum detection confidence.', minimum=0.0, maximum=1.0)
    iou_threshold: float = param(
        0.45, 'Non-maximum suppression IoU threshold.', minimum=0.0, maximum=1.0)
    max_detections: int = param(100, 'Most detections kept per image.', minimum=1, maximum=1000)
    classes: tuple[str, ...] = param(
        (), 'Keep only these class names (empty: all classes).', kind='str_list', max_length=64)


class YoloDetector:
    """YOLO11 detector around a loaded backend.

    input_size: network input for models with dynamic height/width: one side (square) or
    (width, height); rounded up to a multiple of the stride. Ignored for fixed-size models,
    whose own size is used.
    """

    def __init__(self, backend: InferenceBackend, class_names: list[str] | None = None,
                 confidence_threshold: float = 0.25, iou_threshold: float = 0.45,
                 max_detections: int = 100, classes: tuple[str, ...] = (),
                 input_size: int | tuple[int, int] = 640) -> None:
        expected_in = 'one input [1, 3, H, W] and output [1, 4+C, N] or [1, N, 6]'
        if len(backend.inputs) != 1:
            raise backend.model_error(f'a YOLO model has one input, this one has '
                                      f'{len(backend.inputs)}', expected_in)
        inp = backend.inputs[0]
        if len(inp.shape) != 4 or inp.shape[1] not in (3, None) or inp.shape[0] not in (1, None):
            raise backend.model_error(f'input {inp.name} is not an image batch', expected_in)
        if not backend.outputs:
            raise backend.model_error('the model has no output', expected_in)
        stride = metadata_stride(backend)
        want_w, want_h = ((input_size, input_size) if isinstance(input_size, int)
                          else tuple(input_size))
        height = inp.shape[2] or input_side(want_h, stride)
        width = inp.shape[3] or input_side(want_w, stride)
        self.backend = backend
        self.input_name = inp.name
        self.input_shape = (1, 3, height, width)
        self.preprocess = LetterboxPreprocessor(
            width, height, backend.input_buffer(inp.name, self.input_shape))
        names = class_names or parse_class_names(backend.metadata)
        if not names:
            raise backend.model_error(
                'no class names: its "names" metadata is missing or not a list or {id: name} '
                f'mapping of 1 to {MAX_CLASSES} names (or give a class names file, one name '
                'per line)', expected_in)
        self.class_names = names
        self.confidence_threshold = confidence_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.set_class_filter(classes)
        out = backend.outputs[0].shape
        expected_out = (f'one input [1, 3, H, W] and output [1, {4 + len(names)}, N] (4 box + '
                        f'{len(names)} class rows) or [1, N, 6] (end-to-end export)')
        if len(out) != 3 or (out[1] is not None and out[2] is not None
                             and out[1] != 4 + len(names) and out[2] != 6):
            raise backend.model_error('the output layout is not a YOLO detection output',
                                      expected_out)
        self._expected_out = expected_out

    @classmethod
    def from_config(cls, backend: InferenceBackend, config: DetectorConfig) -> YoloDetector:
        """The detector of a DetectorConfig (class names file read here when one is given)."""
        names = (read_class_names_file(config.class_names_file) if config.class_names_file
                 else None)
        return cls(backend, class_names=names, confidence_threshold=config.confidence_threshold,
                   iou_threshold=config.iou_threshold, max_detections=config.max_detections,
                   classes=config.classes, input_size=config.input_size)

    def apply_live(self, config: DetectorConfig) -> None:
        """Apply the parameters that may change while running (thresholds, class filter)."""
        self.confidence_threshold = config.confidence_threshold
        self.iou_threshold = config.iou_threshold
        self.max_detections = config.max_detections
        self.set_class_filter(config.classes)

    def set_class_filter(self, classes: tuple[str, ...]) -> None:
        """Keep only these class names (empty: keep all)."""
        if classes:
            wanted = {sanitize_label(c) for c in classes}
            self._class_rows = np.flatnonzero([n in wanted for n in self.class_names])
        else:
            self._class_rows = None

    def detect(self, image: ColorImage,
               timings: dict[str, float] | None = None) -> list[Detection]:
        """Detect objects in an image; optional `timings` receives per-stage milliseconds."""
        t0 = time.perf_counter()
        blob, lb = self.preprocess(image)
        t1 = time.perf_counter()
        outputs = self.backend.run({self.input_name: blob})
        t2 = time.perf_counter()
        detections = self.postprocess(outputs[0], lb)
        t3 = time.perf_counter()
        if timings is not None:
            timings['preprocess'] = (t1 - t0) * 1e3
            timings['inference'] = (t2 - t1) * 1e3
            timings['postprocess'] = (t3 - t2) * 1e3
        return detections

    def postprocess(self, output: np.ndarray, lb: Letterbox) -> list[Detection]:
        """Decode one raw output tensor into detections in source-image pixels."""
        num_classes = len(self.class_names)
        if output.ndim != 3:
            raise self.backend.model_error(f'the output has shape {output.shape}',
                                           self._expected_out)
        out = output[0]
        if out.shape[0] == 4 + num_classes:
            boxes, scores, class_ids = self._decode_standard(out)
        elif out.shape[-1] == 6:
            boxes, scores, class_ids = self._decode_end_to_end(out)
        else:
            raise self.backend.model_error(
                f'output {output.shape} matches neither [1, 4+{num_classes}, N] nor [1, N, 6]',
                self._expected_out)
        if boxes.shape[0] == 0:
            return []
        # Undo the letterbox and clip to the image.
        boxes[:, 0::2] -= lb.pad_x
        boxes[:, 1::2] -= lb.pad_y
        boxes /= lb.scale
        np.clip(boxes[:, 0::2], 0, lb.src_width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, lb.src_height, out=boxes[:, 1::2])
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, class_ids = boxes[valid], scores[valid], class_ids[valid]
        names = self.class_names
        return [Detection(BoundingBox(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                          int(c), names[int(c)], float(s))
                for b, s, c in zip(boxes.tolist(), scores.tolist(), class_ids.tolist(),
                                   strict=True)]

    def _decode_standard(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # The hot path: one max over the class rows of all N anchors (contiguous row reduction),
        # then the arg-max and the boxes only for the few anchors above the threshold.
        class_scores = out[4:]
        if self._class_rows is not None:
            class_scores = class_scores[self._class_rows]
        if class_scores.shape[0] == 0:       # the class filter names no class of this model
            return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64)
        best = class_scores.max(axis=0)
        candidates = np.flatnonzero(best > self.confidence_threshold)
        if candidates.size > MAX_NMS_CANDIDATES:
            candidates = candidates[np.argsort(-best[candidates])[:MAX_NMS_CANDIDATES]]
        if candidates.size == 0:
            return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64)
        class_ids = class_scores[:, candidates].argmax(axis=0)
        if self._class_rows is not None:
            class_ids = self._class_rows[class_ids]
        scores = best[candidates]
        cx, cy, w, h = out[:4, candidates]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        keep = nms(boxes + (class_ids * CLASS_OFFSET)[:, None].astype(boxes.dtype), scores,
                   self.iou_threshold, self.max_detections)
        return boxes[keep].astype(np.float32), scores[keep], class_ids[keep]

    def _decode_end_to_end(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores = out[:, 4]
        class_ids = out[:, 5].astype(np.int64)
        ok = (scores > self.confidence_threshold) & (class_ids >= 0) & (
            class_ids < len(self.class_names))
        if self._class_rows is not None:
            ok &= np.isin(class_ids, self._class_rows)
        idx = np.flatnonzero(ok)
        idx = idx[np.argsort(-scores[idx], kind='stable')][:self.max_detections]
        return out[idx, :4].astype(np.float32, copy=True), scores[idx], class_ids[idx]
