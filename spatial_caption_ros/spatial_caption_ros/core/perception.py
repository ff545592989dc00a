"""The perception stage: detection, depth and per-object 3D for one image, with stage timings.

Used by the perception node, the benchmark and the evaluation harness alike, so all three measure
the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import time

from spatial_caption_ros.core.backends import BACKENDS, create_backend
from spatial_caption_ros.core.depth import (
    create_depth_source, DEPTH_SOURCES, DepthInput, DepthSource)
from spatial_caption_ros.core.detection import read_class_names_file, YoloDetector
from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.geometry import metric_size, norm3, position_from_depth
from spatial_caption_ros.core.image import ColorImage
from spatial_caption_ros.core.knowledge import KnowledgeBase
from spatial_caption_ros.core.models import resolve_model
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.types import (
    CameraIntrinsics, DetectionResult, FrameHeader, SceneObject)


@dataclass(frozen=True)
class PerceptionConfig:
    """Parameters of the perception node."""

    image_format: str = param(
        'raw', 'Input images: raw (sensor_msgs/Image on `image`) or compressed '
        '(sensor_msgs/CompressedImage on `image/compressed`).', choices=('raw', 'compressed'),
        when=CONFIGURE)
    model_dir: str = param(
        '', 'Folder of model files; empty: $SPATIAL_CAPTION_MODEL_DIR, else ../shared/models '
        'beside the repository, else ~/.cache/spatial_caption_ros/models.', when=CONFIGURE)
    detector_model: str = param(
        'yolo11n', 'Detector: a model name from models/manifest.yaml or a path to an .onnx file.',
        when=CONFIGURE)
    class_names_file: str = param(
        '', 'Text file with one class name per line; empty: read the names from the model '
        'metadata.', when=CONFIGURE)
    backend: str = param(
        'auto', 'Inference backend: auto (TensorRT, then CUDA, then CPU), onnxruntime or '
        'tensorrt.', choices=BACKENDS, when=CONFIGURE)
    threads: int = param(
        0, 'CPU inference threads per model; 0: auto (the usable cores, at most 8).',
        minimum=0, maximum=256, when=CONFIGURE)
    fp16: bool = param(True, 'Use FP16 on GPU backends.', when=CONFIGURE)
    engine_cache_dir: str = param(
        '', 'Folder of TensorRT engines (spatial-caption-build-engine); empty: '
        '~/.cache/spatial_caption_ros/engines.', when=CONFIGURE)
    detector_input_size: int = param(
        640, 'Network input side for detector models with dynamic input size (rounded up to a '
        'multiple of 32); fixed-size models use their own size.', minimum=32, maximum=4096,
        when=CONFIGURE)
    confidence_threshold: float = param(
        0.25, 'Minimum detection confidence.', minimum=0.0, maximum=1.0)
    iou_threshold: float = param(
        0.45, 'Non-maximum suppression IoU threshold.', minimum=0.0, maximum=1.0)
    max_detections: int = param(100, 'Most detections kept per image.', minimum=1, maximum=1000)
    classes: tuple[str, ...] = param(
        (), 'Keep only these class names (empty: all classes).', kind='str_list', max_length=64)
    depth_source: str = param(
        'none', 'Depth source: none.', choices=DEPTH_SOURCES, when=CONFIGURE)
    knowledge_files: tuple[str, ...] = param(
        (), 'Extra knowledge YAML files (size priors, facts) merged over the shipped one.',
        kind='str_list', when=CONFIGURE)

    def validate(self) -> None:
        """Cross-parameter checks."""
        if self.depth_source not in DEPTH_SOURCES:
            raise ConfigError(f'depth_source {self.depth_source!r} is not available')


class PerceptionPipeline:
    """Loads the detector and the depth source once; processes one image at a time."""

    def __init__(self, config: PerceptionConfig, knowledge: KnowledgeBase | None = None) -> None:
        self.config = config
        self.knowledge = knowledge or KnowledgeBase.load(config.knowledge_files)
        model_path = resolve_model(config.detector_model, config.model_dir or None,
                                   task='detection')
        size = config.detector_input_size
        self.backend = create_backend(model_path, config.backend, threads=config.threads,
                                      fp16=config.fp16, cache_dir=config.engine_cache_dir or None)
        names = read_class_names_file(config.class_names_file) if config.class_names_file else None
        self.detector = YoloDetector(
            self.backend, class_names=names, confidence_threshold=config.confidence_threshold,
            iou_threshold=config.iou_threshold, max_detections=config.max_detections,
            classes=config.classes, input_size=size)
        self.model_path = model_path
        self.depth: DepthSource = create_depth_source(config.depth_source)

    def update_live(self, config: PerceptionConfig) -> None:
        """Apply parameters that may change while running."""
        self.config = config
        self.detector.confidence_threshold = config.confidence_threshold
        self.detector.iou_threshold = config.iou_threshold
        self.detector.max_detections = config.max_detections
        self.detector.set_class_filter(config.classes)

    def describe(self) -> dict[str, str]:
        """What is really running (for logs and diagnostics)."""
        info = self.backend.info
        out = {'backend': info.backend, 'device': info.device, 'precision': info.precision,
               'detector_model': str(self.model_path),
               'detector_input': 'x'.join(map(str, self.detector.input_shape)),
               'depth_source': self.depth.name}
        for key in ('selection', 'fallback', 'threads', 'spinning'):
            if key in info.details:
                out[f'backend_{key}'] = info.details[key]
        return out

    def process(self, image: ColorImage, header: FrameHeader,
                intrinsics: CameraIntrinsics | None = None,
                sensor_depth=None) -> DetectionResult:
        """Detect objects and estimate their depth and 3D position."""
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        notes: list[str] = []
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != (
                image.width, image.height):
            intrinsics = intrinsics.scaled_to(image.width, image.height)
            notes.append('camera_info size differs from the image: intrinsics were scaled')
        detections = self.detector.detect(image, timings)
        t_depth = time.perf_counter()
        depth = self.depth.estimate(DepthInput(image, detections, intrinsics, sensor_depth))
        timings['depth'] = (time.perf_counter() - t_depth) * 1e3
        for key, value in depth.timings_ms.items():
            timings[f'depth_{key}'] = value
        notes.extend(depth.notes)
        if intrinsics is None:
            notes.append('no camera_info: no 3D positions or metric sizes')
        objects = []
        for i, (det, od) in enumerate(zip(detections, depth.objects, strict=True)):
            obj = SceneObject(id=i, class_name=det.class_name, class_id=det.class_id,
                              confidence=det.confidence, box=det.box, depth=od.value,
                              depth_uncertainty=od.uncertainty, depth_source=od.source,
                              depth_metric=od.metric)
            if od.metric and od.known and intrinsics is not None:
                obj.position = position_from_depth(det.box, od.value, intrinsics)
                obj.distance = norm3(obj.position)
                obj.metric_width, obj.metric_height = metric_size(det.box, od.value, intrinsics)
            objects.append(obj)
        total = time.perf_counter() - t_start
        return DetectionResult(
            header=header, image_width=image.width, image_height=image.height, objects=objects,
            depth_source=self.depth.name,
            depth_metric=depth.metric and all(math.isfinite(o.depth) for o in objects),
            has_camera_info=intrinsics is not None, stage_times_ms=timings, notes=notes,
            processing_latency=total, depth_map=depth.depth_map)

    def close(self) -> None:
        self.depth.close()
        self.backend.close()
