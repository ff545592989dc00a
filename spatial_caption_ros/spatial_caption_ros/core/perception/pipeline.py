"""The perception stage: detection, depth and per-object 3D for one image, with stage timings.

Used by the perception node, the benchmark and the evaluation harness alike, so all three measure
the same code: PerceptionPipeline.process() is the single entry point.

Dense depth inference does not need the detections, so it can run on a second thread while the
detector runs (ONNX Runtime releases the GIL during inference); the per-object statistics follow
once both are done. In the real-time mode the dense depth model runs only every Nth frame and the
IoU tracker carries each object's depth to the frames in between.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
import math
import time
from typing import Any

from spatial_caption_ros.core.perception.backends import BACKENDS, create_backend
from spatial_caption_ros.core.perception.backends.base import MAX_AUTO_THREADS, usable_cpus
from spatial_caption_ros.core.perception.depth import (
    BoxStatConfig, create_depth_source, DEPTH_SOURCES, DepthInput, DepthOutput, DepthSource)
from spatial_caption_ros.core.perception.depth.depth_anything import (
    DEPTH_CONTRACT, MODEL_OUTPUTS, PATCH, SCALE_SOURCES)
from spatial_caption_ros.core.perception.depth.geometric import (
    GeometricDepth, gravity_from_pitch_roll, truncation)
from spatial_caption_ros.core.perception.depth.sensor import align_to_image, SensorDepth
from spatial_caption_ros.core.perception.detection import (
    read_class_names_file, YOLO_CONTRACT, YoloDetector)
from spatial_caption_ros.core.errors import ConfigError, ModelNotFoundError
from spatial_caption_ros.core.scene_graph.geometry import metric_size, norm3, position_from_depth
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.perception.models import expecting, resolve_model
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.perception.tracker import IouTracker, Track
from spatial_caption_ros.core.types import (
    CameraIntrinsics, DEPTH_ANYTHING_V2, DEPTH_AUTO, DEPTH_GEOMETRIC, DEPTH_SENSOR, Detection,
    DetectionResult, FrameHeader, ObjectDepth, SceneObject)

PARALLEL_MODES = ('auto', 'on', 'off')
# `parallel_depth: auto` overlaps depth with detection from this many CPU cores on (or on a GPU).
# On 2 cores the dense depth model already uses both, and splitting them measured slower than
# running the two models one after the other (docs/depth.md).
PARALLEL_MIN_CORES = 4


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
        0, 'CPU inference threads of the detector; 0: auto (the usable cores, at most 8, or a '
        'share of them when depth runs in parallel: see parallel_depth).', minimum=0,
        maximum=256, when=CONFIGURE)
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
        DEPTH_AUTO, 'Depth source: auto (sensor for frames with a matched aligned depth image on '
        '`depth`; otherwise depth_anything_v2 when depth_model is found, else geometric), none, '
        'geometric (box size + class size priors + camera_info, no weights), '
        'depth_anything_v2 (dense model) or sensor (aligned depth image on `depth`).',
        choices=(DEPTH_AUTO,) + DEPTH_SOURCES, when=CONFIGURE)
    depth_model: str = param(
        'depth_anything_v2_small', 'Depth Anything V2 model: a name from models/manifest.yaml '
        'or a path to an .onnx file (depth_source depth_anything_v2).', when=CONFIGURE)
    depth_model_output: str = param(
        'relative', 'What the depth model outputs: relative (inverse depth, the standard models; '
        'made metric by scale recovery) or metric (metres: the metric indoor/outdoor models).',
        choices=MODEL_OUTPUTS, when=CONFIGURE)
    depth_input_size: int = param(
        518, 'Shorter side of the depth model input in pixels, a multiple of 14 (official: 518; '
        'smaller is faster and coarser). Fixed-shape models use their own size.',
        minimum=PATCH, maximum=2044, when=CONFIGURE)
    depth_scale_source: str = param(
        'geometric', 'Anchors that make relative model depth metric: geometric (objects placed '
        'by box size, needs camera_info), sensor (aligned depth image on `depth`) or none.',
        choices=SCALE_SOURCES, when=CONFIGURE)
    scale_smoothing: float = param(
        0.5, 'Weight of the previous frames in the metric scale fit (0: each frame on its own).',
        minimum=0.0, maximum=0.99, when=CONFIGURE)
    scale_max_age_frames: int = param(
        10, 'Frames a scale fit is kept when later frames have no usable anchors; then the depth '
        'falls back to relative.', minimum=0, maximum=1000, when=CONFIGURE)
    box_inner_fraction: float = param(
        0.5, 'Central fraction of each box side read for the object depth statistic.',
        minimum=0.05, maximum=1.0, when=CONFIGURE)
    box_depth_percentile: float = param(
        30.0, 'Near-side percentile of the depth readings in a box taken as the object depth '
        '(50 = median; lower ignores more background).', minimum=1.0, maximum=99.0,
        when=CONFIGURE)
    border_margin_px: float = param(
        2.0, 'A box side this close to the image border counts as cut by it (geometric depth '
        'does not use cut sizes).', minimum=0.0, maximum=100.0, when=CONFIGURE)
    camera_orientation: str = param(
        'unknown', 'How the camera is turned against gravity, for the geometric depth cues: '
        'unknown (the optical axis is taken as level), or parameters (camera_pitch_deg and '
        'camera_roll_deg of a fixed mount). Known, pitch and roll are removed from the box '
        'geometry (an object seen from above, a rolled camera).',
        choices=('unknown', 'parameters'))
    camera_pitch_deg: float = param(
        0.0, 'Angle of the optical axis below the horizontal in degrees (camera_orientation '
        'parameters; positive: looking down).', minimum=-90.0, maximum=90.0)
    camera_roll_deg: float = param(
        0.0, 'Rotation of the camera about its optical axis in degrees (camera_orientation '
        'parameters; positive: the image turned clockwise).', minimum=-180.0, maximum=180.0)
    depth_every_n_frames: int = param(
        1, 'Run the dense depth model on every Nth frame only (real-time mode for weak CPUs); '
        'the tracker carries object depth to the frames in between. Needs tracking when > 1.',
        minimum=1, maximum=1000)
    depth_threads: int = param(
        0, 'CPU inference threads of the depth model; 0: every core, or a share of them when '
        'depth runs in parallel.', minimum=0, maximum=256, when=CONFIGURE)
    parallel_depth: str = param(
        'auto', 'Run dense depth inference concurrently with detection: on, off, or auto (on '
        f'from {PARALLEL_MIN_CORES} CPU cores or on a GPU backend).', choices=PARALLEL_MODES,
        when=CONFIGURE)
    depth_stamp_tolerance: float = param(
        0.015, 'Seconds a depth frame stamp may differ from the colour frame stamp and still be '
        'used (sensor depth); keep it under half the frame period.', minimum=0.0, maximum=1.0)
    depth_image_scale: float = param(
        0.001, 'Metres per unit of a 16UC1 depth image on `depth`: 0.001 for the millimetre '
        'convention (REP 118: RealSense, Azure Kinect, OpenNI2 drivers), 0.0002 for TUM RGB-D '
        'recordings (1/5000). 32FC1 images are metres and ignore it.', minimum=1e-6,
        maximum=1.0)
    depth_wait: float = param(
        0.05, 'Seconds the node waits for the depth frame of a colour frame that arrived first '
        '(sensor depth).', minimum=0.0, maximum=1.0)
    stamp_jump_back_reset: float = param(
        1.0, 'A frame stamped earlier than the newest accepted frame is rejected as out of '
        'order, unless it is earlier by more than this many seconds: then the camera restarted '
        'or a bag looped, and a new sequence starts (tracks and depth scale reset).',
        minimum=0.0, maximum=86400.0)
    tracking: bool = param(
        True, 'Track objects across frames by box overlap: SceneObject.id is then the track id, '
        'stable while the object stays in view.')
    track_iou_threshold: float = param(
        0.3, 'Least box overlap (IoU) that continues a track.', minimum=0.01, maximum=1.0)
    track_max_missed: int = param(
        5, 'Frames a track survives without a matching detection.', minimum=0, maximum=1000)
    knowledge_files: tuple[str, ...] = param(
        (), 'Extra knowledge YAML files (size priors, facts) merged over the shipped one.',
        kind='str_list', when=CONFIGURE)

    def validate(self) -> None:
        """Cross-parameter checks."""
        if self.depth_source not in (DEPTH_AUTO,) + DEPTH_SOURCES:
            raise ConfigError(f'depth_source {self.depth_source!r} is not available')
        if self.depth_input_size % PATCH:
            lower = self.depth_input_size // PATCH * PATCH
            raise ConfigError(f'depth_input_size {self.depth_input_size} is not a multiple of '
                              f'{PATCH}: use {max(PATCH, lower)} or {lower + PATCH}')
        if self.depth_scale_source == 'sensor' and (
                self.depth_source not in (DEPTH_ANYTHING_V2, DEPTH_SENSOR)
                or (self.depth_source == DEPTH_ANYTHING_V2
                    and self.depth_model_output == 'metric')):
            # It would subscribe to `depth` for nothing: say so instead.
            raise ConfigError('depth_scale_source sensor anchors the scale of a relative '
                              'depth_anything_v2 model; it does nothing with depth_source '
                              f'{self.depth_source} and depth_model_output '
                              f'{self.depth_model_output}')
        if self.depth_every_n_frames > 1 and not self.tracking:
            raise ConfigError('depth_every_n_frames > 1 needs tracking (the tracker carries '
                              'depth between depth frames)')

    @property
    def uses_sensor_depth(self) -> bool:
        """Whether the node subscribes to the aligned depth image (ros/interface.py).

        auto subscribes too: a depth image that arrives is used (and said so), none costs
        nothing.
        """
        return (self.depth_source in (DEPTH_SENSOR, DEPTH_AUTO)
                or self.depth_scale_source == 'sensor')


def thread_plan(config: PerceptionConfig, dense_depth: bool, gpu: bool,
                cores: int | None = None) -> tuple[bool, int, int]:
    """(run depth in parallel, detector threads, depth threads); 0 = the backend's auto_threads.

    In parallel the cores are split: the depth model is the slower one, so it gets the larger
    share (three quarters, at least one core each, at most MAX_AUTO_THREADS each: more rarely
    speeds up one small model) unless the thread parameters say otherwise.
    """
    cores = cores or usable_cpus()
    if config.parallel_depth == 'auto':
        parallel = dense_depth and (gpu or cores >= PARALLEL_MIN_CORES)
    else:
        parallel = dense_depth and config.parallel_depth == 'on'
    det, depth = config.threads, config.depth_threads
    if parallel and not gpu:
        det = det or min(MAX_AUTO_THREADS, max(1, cores // 4))
        depth = depth or min(MAX_AUTO_THREADS, max(1, cores - det))
    return parallel, det, depth


def choose_depth_source(config: PerceptionConfig) -> tuple[str, str]:
    """(the depth source to run, why it was chosen: '' unless depth_source is auto).

    auto runs Depth Anything V2 when `depth_model` resolves in the model folders, and the
    weights-free geometric source otherwise. A depth model that is found but cannot be loaded
    is a configure failure, never a silent fallback.
    """
    if config.depth_source != DEPTH_AUTO:
        return config.depth_source, ''
    sensor = (f'; frames with an aligned depth image on `depth` use {DEPTH_SENSOR} (an RGB-D '
              'camera measures what the others estimate)')
    try:
        resolve_model(config.depth_model, config.model_dir or None, task='depth')
    except ModelNotFoundError:
        return DEPTH_GEOMETRIC, (f'auto: geometric, because depth_model {config.depth_model!r} '
                                 'was not found (`spatial-caption-models list`: how to get it)'
                                 + sensor)
    return DEPTH_ANYTHING_V2, f'auto: depth_anything_v2 ({config.depth_model!r} found)' + sensor


class PerceptionPipeline:
    """Loads the detector and the depth source once; processes one image at a time."""

    def __init__(self, config: PerceptionConfig, knowledge: KnowledgeBase | None = None) -> None:
        self.config = config
        self.knowledge = knowledge or KnowledgeBase.load(config.knowledge_files)
        self.depth_source, self.depth_choice = choose_depth_source(config)
        dense = self.depth_source == DEPTH_ANYTHING_V2
        self.parallel, det_threads, depth_threads = thread_plan(config, dense, gpu=False)
        # Two models sharing the cores: idle threads must not spin-wait on the other's cores.
        spinning = False if self.parallel else None
        engines = config.engine_cache_dir or None
        with expecting('detector_model', YOLO_CONTRACT):
            model_path = resolve_model(config.detector_model, config.model_dir or None,
                                       task='detection')
            self.backend = create_backend(model_path, config.backend, threads=det_threads,
                                          fp16=config.fp16, cache_dir=engines,
                                          allow_spinning=spinning)
        if _on_gpu(self.backend):
            # CPU thread counts do not matter on a GPU, but overlapping the two models does.
            self.parallel = thread_plan(config, dense, gpu=True)[0]
        self.depth: DepthSource | None = None
        self._pool: ThreadPoolExecutor | None = None
        try:
            names = (read_class_names_file(config.class_names_file) if config.class_names_file
                     else None)
            self.detector = YoloDetector(
                self.backend, class_names=names,
                confidence_threshold=config.confidence_threshold,
                iou_threshold=config.iou_threshold, max_detections=config.max_detections,
                classes=config.classes, input_size=config.detector_input_size)
            self.model_path = model_path
            with expecting('depth_model', DEPTH_CONTRACT):
                self.depth_model_path = (resolve_model(config.depth_model,
                                                       config.model_dir or None, task='depth')
                                         if dense else None)
            self.depth = create_depth_source(
                self.depth_source, knowledge=self.knowledge,
                model_path=self.depth_model_path, backend=config.backend,
                threads=depth_threads, fp16=config.fp16, cache_dir=engines,
                allow_spinning=spinning,
                model_output=config.depth_model_output, input_size=config.depth_input_size,
                scale_source=config.depth_scale_source,
                box_stats=BoxStatConfig(config.box_inner_fraction, config.box_depth_percentile),
                scale_smoothing=config.scale_smoothing,
                scale_max_age_frames=config.scale_max_age_frames,
                border_margin_px=config.border_margin_px)
        except Exception:
            self.close()
            raise
        self.threads = (det_threads, depth_threads)
        if self.parallel:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix='depth')
        self.geometric = GeometricDepth(self.knowledge, config.border_margin_px)
        # auto: a frame that comes with an aligned depth image is measured, not estimated
        self.auto_sensor = (SensorDepth(self.knowledge, BoxStatConfig(
            config.box_inner_fraction, config.box_depth_percentile), config.border_margin_px)
            if config.depth_source == DEPTH_AUTO else None)
        self.tracker = IouTracker(config.track_iou_threshold, config.track_max_missed)
        self.frames = 0                   # frames processed
        self.depth_frames = 0             # frames the dense depth model ran on
        self._last_depth_frame: int | None = None
        self._last_depth_metric = False
        self._last_stamp_ns: int | None = None
        self.last_depth_notes: list[str] = []

    def update_live(self, config: PerceptionConfig) -> None:
        """Apply parameters that may change while running."""
        if config.tracking != self.config.tracking:
            self.tracker.reset()
        self.config = config
        self.detector.confidence_threshold = config.confidence_threshold
        self.detector.iou_threshold = config.iou_threshold
        self.detector.max_detections = config.max_detections
        self.detector.set_class_filter(config.classes)
        self.tracker.iou_threshold = config.track_iou_threshold
        self.tracker.max_missed = config.track_max_missed

    def describe(self) -> dict[str, str]:
        """What is really running (for logs and diagnostics)."""
        info = self.backend.info
        out = {'backend': info.backend, 'device': info.device, 'precision': info.precision,
               'detector_model': str(self.model_path),
               'detector_input': 'x'.join(map(str, self.detector.input_shape)),
               'depth_source': self.depth.name}
        if self.depth_choice:
            out['depth_source_choice'] = self.depth_choice
        for key in ('selection', 'fallback', 'threads', 'spinning'):
            if key in info.details:
                out[f'backend_{key}'] = info.details[key]
        if self.depth.dense:
            dinfo = self.depth.model.backend.info
            out.update({'depth_model': str(self.depth_model_path),
                        'depth_backend': dinfo.backend, 'depth_device': dinfo.device,
                        'depth_precision': dinfo.precision,
                        'depth_parallel': str(self.parallel),
                        'depth_frames': f'{self.depth_frames} of {self.frames}'})
            if 'threads' in dinfo.details:
                out['depth_backend_threads'] = dinfo.details['threads']
            fit = getattr(self.depth, 'last_fit', None)
            if fit is not None:
                out['depth_scale'] = (f'{fit.kind}: scale {fit.scale:.4g} shift {fit.shift:.4g}, '
                                      f'{fit.inliers}/{fit.anchors} anchors, median error '
                                      f'{100 * fit.residual:.0f}%')
        if self.last_depth_notes:
            out['depth_notes'] = '; '.join(self.last_depth_notes)
        return out

    def reset(self) -> None:
        """Start a new sequence: forget tracks, carried depth and the smoothed depth scale.

        Call it between unrelated images (an evaluation set, a folder of photos); it also
        happens by itself when a stamp goes back in time (a bag looping, a camera restart).
        """
        self.tracker.reset()
        self._last_depth_frame = None
        self._last_stamp_ns = None
        scale = getattr(self.depth, 'scale', None)
        if scale is not None:
            scale.reset()

    def _reset_if_time_went_back(self, header: FrameHeader) -> None:
        """A stamp earlier than the last one (a bag looping, a new sequence): start over."""
        if self._last_stamp_ns is not None and header.stamp_ns < self._last_stamp_ns:
            self.reset()
        self._last_stamp_ns = header.stamp_ns

    def _dense_due(self) -> bool:
        if not self.depth.dense:
            return False
        return (self._last_depth_frame is None or not self.config.tracking
                or self.frames - self._last_depth_frame >= self.config.depth_every_n_frames)

    def _prepare(self, image: ColorImage) -> tuple[Any, float]:
        t0 = time.perf_counter()
        prepared = self.depth.prepare(image)
        return prepared, (time.perf_counter() - t0) * 1e3

    def process(self, image: ColorImage, header: FrameHeader,
                intrinsics: CameraIntrinsics | None = None,
                sensor_depth=None, gravity=None) -> DetectionResult:
        """Detect objects and estimate their depth and 3D position.

        sensor_depth: HxW float32 metres aligned to the image (NaN = no reading), already
        matched to this frame, for the sensor source or sensor scale anchors.
        gravity: the "down" direction in the camera optical frame (3 floats) when known (from
        /tf or the camera's mount): the geometric cues then account for pitch and roll.
        """
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        notes: list[str] = []
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != (
                image.width, image.height):
            intrinsics = intrinsics.scaled_to(image.width, image.height)
            notes.append('camera_info size differs from the image: intrinsics were scaled')
        if sensor_depth is not None:
            aligned = align_to_image(sensor_depth, image.width, image.height)
            if aligned is None:
                notes.append(f'depth image {sensor_depth.shape[1]}x{sensor_depth.shape[0]} is not '
                             f'aligned with the {image.width}x{image.height} colour image '
                             '(aspect ratio differs): not used')
            sensor_depth = aligned
        self._reset_if_time_went_back(header)
        if gravity is None and self.config.camera_orientation == 'parameters':
            gravity = gravity_from_pitch_roll(self.config.camera_pitch_deg,
                                              self.config.camera_roll_deg)
        measured = self.auto_sensor is not None and sensor_depth is not None
        source = self.auto_sensor if measured else self.depth
        if measured:
            notes.append('depth_source auto: this frame came with an aligned depth image, so '
                         'its depth is measured (sensor)')
        dense_due = self._dense_due() and not measured
        future: Future | None = None
        if dense_due and self._pool is not None:
            future = self._pool.submit(self._prepare, image)
        try:
            detections = self.detector.detect(image, timings)
        finally:
            t_wait = time.perf_counter()
            prepared = future.result() if future is not None else None
        timings['depth_wait'] = (time.perf_counter() - t_wait) * 1e3
        t_depth = time.perf_counter()
        if dense_due and prepared is None:
            prepared = self._prepare(image)
        depth: DepthOutput | None = None
        if dense_due or not source.dense:
            depth = source.estimate(DepthInput(image, detections, intrinsics, sensor_depth,
                                               gravity),
                                        prepared[0] if prepared is not None else None)
        depth_ms = (time.perf_counter() - t_depth) * 1e3
        t_track = time.perf_counter()
        tracks = self.tracker.update(detections) if self.config.tracking else None
        timings['tracking'] = (time.perf_counter() - t_track) * 1e3
        t_depth = time.perf_counter()
        if depth is not None:
            od_list = depth.objects
            if dense_due:
                self._last_depth_frame = self.frames
                self._last_depth_metric = depth.metric
                self.depth_frames += 1
            if tracks is not None:
                for track, det, od in zip(tracks, detections, od_list, strict=True):
                    if od.known:
                        track.depth, track.depth_box = od, det.box
                        track.depth_frame = self.tracker.frame
            depth_notes, depth_map, metric = depth.notes, depth.depth_map, depth.metric
            for key, value in depth.timings_ms.items():
                timings[f'depth_{key}'] = value
        else:
            od_list, depth_notes = self._carry(detections, tracks, intrinsics, image, gravity)
            known = [o for o in od_list if o.known]
            depth_map = None
            metric = all(o.metric for o in known) if known else self._last_depth_metric
        depth_ms += (time.perf_counter() - t_depth) * 1e3
        # All depth work of the frame; in parallel the dense part overlapped detection.
        timings['depth'] = depth_ms + (prepared[1] if prepared is not None and future is not None
                                       else 0.0)
        notes.extend(depth_notes)
        self.last_depth_notes = list(depth_notes)
        if intrinsics is None:
            notes.append('no camera_info: no 3D positions or metric sizes')
        objects = [self._object(i, det, od, tracks[i] if tracks is not None else None,
                                intrinsics)
                   for i, (det, od) in enumerate(zip(detections, od_list, strict=True))]
        self.frames += 1
        total = time.perf_counter() - t_start
        return DetectionResult(
            header=header, image_width=image.width, image_height=image.height, objects=objects,
            depth_source=source.name,
            depth_metric=metric and all(o.depth_metric and math.isfinite(o.depth)
                                        for o in objects),
            has_camera_info=intrinsics is not None, stage_times_ms=timings, notes=notes,
            processing_latency=total, depth_map=depth_map)

    def _carry(self, detections: list[Detection], tracks: list[Track],
               intrinsics: CameraIntrinsics | None, image: ColorImage,
               gravity=None) -> tuple[list[ObjectDepth], list[str]]:
        """Depth of a frame without dense depth: from the tracks, else geometric when metric."""
        carried: list[ObjectDepth | None] = []
        for det, track in zip(detections, tracks, strict=True):
            cut_y = truncation(det.box, image.width, image.height,
                               self.config.border_margin_px)[1]
            carried.append(track.carried_depth(det.box, self.tracker.frame, cut_y))
        known = [o for o in carried if o is not None]
        metric = bool(known) and all(o.metric for o in known)
        fallback = (self.geometric.estimates(detections, intrinsics, image.width, image.height,
                                             gravity)
                    if metric and intrinsics is not None and len(known) < len(carried)
                    else None)
        out, from_geometric = [], 0
        for i, od in enumerate(carried):
            if od is None and fallback is not None and fallback[i].known:
                e = fallback[i]
                od = ObjectDepth(e.z, e.sigma, GeometricDepth.name, True, e.extent)
                from_geometric += 1
            out.append(od or ObjectDepth(source=self.depth.name))
        age = self.frames - (self._last_depth_frame or 0)
        notes = [f'{self.depth.name} runs every {self.config.depth_every_n_frames} frames: depth '
                 f'carried by the tracker from {age} frame(s) ago for {len(known)} object(s)']
        if from_geometric:
            notes.append(f'{from_geometric} new object(s) placed by geometric depth until the '
                         'next depth frame')
        if len(out) - len(known) - from_geometric:
            notes.append(f'{len(out) - len(known) - from_geometric} new object(s) have no depth '
                         'until the next depth frame')
        return out, notes

    def _object(self, index: int, det: Detection, od: ObjectDepth, track: Track | None,
                intrinsics: CameraIntrinsics | None) -> SceneObject:
        obj = SceneObject(id=track.id if track is not None else index,
                          class_name=det.class_name, class_id=det.class_id,
                          confidence=det.confidence, box=det.box, depth=od.value,
                          depth_uncertainty=od.uncertainty, depth_source=od.source,
                          depth_metric=od.metric)
        if track is not None:
            obj.attributes['track_age'] = str(track.age(self.tracker.frame))
            if track.depth_frame >= 0 and track.depth_frame != self.tracker.frame and od.known \
                    and od.source == self.depth.name:
                obj.attributes['depth_age_frames'] = str(self.tracker.frame - track.depth_frame)
        if od.metric and od.known and intrinsics is not None:
            obj.position = position_from_depth(det.box, od.value, intrinsics)
            obj.distance = norm3(obj.position)
            # The box outlines the object's front, which is half its extent nearer than its centre.
            front = od.value - 0.5 * od.extent if math.isfinite(od.extent) else od.value
            obj.metric_width, obj.metric_height = metric_size(det.box, max(front, 0.0),
                                                              intrinsics)
        return obj

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.depth is not None:
            self.depth.close()
        self.backend.close()


def _on_gpu(backend) -> bool:
    """Whether a loaded backend really runs on a GPU (not a CPU fallback)."""
    return backend.info.device not in ('', 'CPUExecutionProvider', 'cpu')
