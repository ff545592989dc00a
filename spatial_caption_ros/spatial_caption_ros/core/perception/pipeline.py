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
    create_depth_source, DepthConfig, DepthInput, DepthOutput, DepthSource)
from spatial_caption_ros.core.perception.depth.depth_anything import DEPTH_CONTRACT
from spatial_caption_ros.core.perception.depth.geometric import (
    GeometricDepth, gravity_from_pitch_roll, truncation)
from spatial_caption_ros.core.perception.depth.sensor import align_to_image, SensorDepth
from spatial_caption_ros.core.perception.detection import (
    DetectorConfig, YOLO_CONTRACT, YoloDetector)
from spatial_caption_ros.core.errors import ConfigError, ModelNotFoundError
from spatial_caption_ros.core.scene_graph.geometry import metric_size, norm3, position_from_depth
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.perception.models import expecting, resolve_model
from spatial_caption_ros.core.params import CONFIGURE, group, param
from spatial_caption_ros.core.perception.tracker import IouTracker, Track, TrackingConfig
from spatial_caption_ros.core.types import (
    CameraIntrinsics, DEPTH_ANYTHING_V2, DEPTH_AUTO, DEPTH_GEOMETRIC, DEPTH_SENSOR, Detection,
    DetectionResult, FrameHeader, ObjectDepth, SceneObject)

PARALLEL_MODES = ('auto', 'on', 'off')
# `parallel_depth: auto` overlaps depth with detection from this many CPU cores on (or on a GPU).
# On 2 cores the dense depth model already uses both, and splitting them measured slower than
# running the two models one after the other (docs/depth.md).
PARALLEL_MIN_CORES = 4


@dataclass(frozen=True)
class InferenceConfig:
    """How the models run, shared by the detector and the depth model."""

    backend: str = param(
        'auto', 'Inference backend: auto (TensorRT, then CUDA, then CPU), onnxruntime or '
        'tensorrt.', choices=BACKENDS, when=CONFIGURE)
    fp16: bool = param(True, 'Use FP16 on GPU backends.', when=CONFIGURE)
    engine_cache_dir: str = param(
        '', 'Folder of TensorRT engines (spatial-caption-build-engine); empty: '
        '~/.cache/spatial_caption_ros/engines.', when=CONFIGURE)
    parallel_depth: str = param(
        'auto', 'Run dense depth inference concurrently with detection: on, off, or auto (on '
        f'from {PARALLEL_MIN_CORES} CPU cores or on a GPU backend).', choices=PARALLEL_MODES,
        when=CONFIGURE)


@dataclass(frozen=True)
class PerceptionConfig:
    """Parameters of the perception stage, one group per component.

    The ROS parameters stay flat (`detector_model`, `depth_source`, `tracking`...): core/params.py
    maps them onto the groups. Parameters only the node reads are the node's
    (nodes/perception_node.py PerceptionNodeConfig).
    """

    model_dir: str = param(
        '', 'Folder of model files; empty: $SPATIAL_CAPTION_MODEL_DIR, else ../shared/models '
        'beside the repository, else ~/.cache/spatial_caption_ros/models.', when=CONFIGURE)
    inference: InferenceConfig = group(InferenceConfig)
    detector: DetectorConfig = group(DetectorConfig)
    depth: DepthConfig = group(DepthConfig)
    tracking: TrackingConfig = group(TrackingConfig)
    knowledge_files: tuple[str, ...] = param(
        (), 'Extra knowledge YAML files (size priors, facts) merged over the shipped one.',
        kind='str_list', when=CONFIGURE)

    def validate(self) -> None:
        """Checks across the groups (each group checked its own)."""
        if self.depth.every_n_frames > 1 and not self.tracking.enabled:
            raise ConfigError('depth_every_n_frames > 1 needs tracking (the tracker carries '
                              'depth between depth frames)')

    @property
    def uses_sensor_depth(self) -> bool:
        """Whether the node subscribes to the aligned depth image (ros/interface.py)."""
        return self.depth.uses_sensor


def thread_plan(config: PerceptionConfig, dense_depth: bool, gpu: bool,
                cores: int | None = None) -> tuple[bool, int, int]:
    """(run depth in parallel, detector threads, depth threads); 0 = the backend's auto_threads.

    In parallel the cores are split: the depth model is the slower one, so it gets the larger
    share (three quarters, at least one core each, at most MAX_AUTO_THREADS each: more rarely
    speeds up one small model) unless the thread parameters say otherwise.
    """
    cores = cores or usable_cpus()
    mode = config.inference.parallel_depth
    if mode == 'auto':
        parallel = dense_depth and (gpu or cores >= PARALLEL_MIN_CORES)
    else:
        parallel = dense_depth and mode == 'on'
    det, depth = config.detector.threads, config.depth.threads
    if parallel and not gpu:
        det = det or min(MAX_AUTO_THREADS, max(1, cores // 4))
        depth = depth or min(MAX_AUTO_THREADS, max(1, cores - det))
    return parallel, det, depth


def choose_depth_source(config: PerceptionConfig) -> tuple[str, str]:
    """(the depth source to run, why it was chosen: '' unless depth_source is auto).

    auto runs Depth Anything V2 when `depth_model` resolves in the model folders, and the
    weights-free geometric source otherwise; a frame that comes with an aligned depth image
    is measured by the sensor source instead (PerceptionPipeline.process). A depth model that
    is found but cannot be loaded is a configure failure, never a silent fallback.
    """
    depth = config.depth
    if depth.source != DEPTH_AUTO:
        return depth.source, ''
    sensor = (f'; frames with an aligned depth image on `depth` use {DEPTH_SENSOR} (an RGB-D '
              'camera measures what the others estimate)')
    try:
        resolve_model(depth.model, config.model_dir or None, task='depth')
    except ModelNotFoundError:
        return DEPTH_GEOMETRIC, (f'auto: geometric, because depth_model {depth.model!r} '
                                 'was not found (`spatial-caption-models list`: how to get it)'
                                 + sensor)
    return DEPTH_ANYTHING_V2, f'auto: depth_anything_v2 ({depth.model!r} found)' + sensor


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
        run = config.inference
        engines = run.engine_cache_dir or None
        with expecting('detector_model', YOLO_CONTRACT):
            model_path = resolve_model(config.detector.model, config.model_dir or None,
                                       task='detection')
            self.backend = create_backend(model_path, run.backend, threads=det_threads,
                                          fp16=run.fp16, cache_dir=engines,
                                          allow_spinning=spinning)
        if _on_gpu(self.backend):
            # CPU thread counts do not matter on a GPU, but overlapping the two models does.
            self.parallel = thread_plan(config, dense, gpu=True)[0]
        self.depth: DepthSource | None = None
        self._pool: ThreadPoolExecutor | None = None
        try:
            self.detector = YoloDetector.from_config(self.backend, config.detector)
            self.model_path = model_path
            with expecting('depth_model', DEPTH_CONTRACT):
                self.depth_model_path = (resolve_model(config.depth.model,
                                                       config.model_dir or None, task='depth')
                                         if dense else None)
            self.depth = create_depth_source(
                self.depth_source, config.depth, knowledge=self.knowledge,
                model_path=self.depth_model_path, backend=run.backend, threads=depth_threads,
                fp16=run.fp16, cache_dir=engines, allow_spinning=spinning)
        except Exception:
            self.close()
            raise
        self.threads = (det_threads, depth_threads)
        if self.parallel:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix='depth')
        self.geometric = GeometricDepth(self.knowledge, config.depth.border_margin_px,
                                        config.depth.surface_consistency,
                                        config.depth.camera_height_m)
        # auto: a frame that comes with an aligned depth image is measured, not estimated
        self.auto_sensor = (SensorDepth(self.knowledge, config.depth.box,
                                        config.depth.border_margin_px)
                            if config.depth.source == DEPTH_AUTO else None)
        self.tracker = IouTracker.from_config(config.tracking)
        self.frames = 0                   # frames processed
        self.depth_frames = 0             # frames the dense depth model ran on
        self._last_depth_frame: int | None = None
        self._last_depth_metric = False
        self._last_stamp_ns: int | None = None
        self.last_depth_notes: list[str] = []

    def update_live(self, config: PerceptionConfig) -> None:
        """Apply parameters that may change while running."""
        if config.tracking.enabled != self.config.tracking.enabled:
            self.tracker.reset()
        self.config = config
        self.detector.apply_live(config.detector)
        self.tracker.apply_live(config.tracking)

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
        return (self._last_depth_frame is None or not self.config.tracking.enabled
                or self.frames - self._last_depth_frame >= self.config.depth.every_n_frames)

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
        depth_config = self.config.depth
        if gravity is None and depth_config.camera_orientation == 'parameters':
            gravity = gravity_from_pitch_roll(depth_config.camera_pitch_deg,
                                              depth_config.camera_roll_deg)
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
        tracks = self.tracker.update(detections) if self.config.tracking.enabled else None
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
            intrinsics_assumed=intrinsics is not None and intrinsics.assumed,
            processing_latency=total, depth_map=depth_map)

    def _carry(self, detections: list[Detection], tracks: list[Track],
               intrinsics: CameraIntrinsics | None, image: ColorImage,
               gravity=None) -> tuple[list[ObjectDepth], list[str]]:
        """Depth of a frame without dense depth: from the tracks, else geometric when metric."""
        carried: list[ObjectDepth | None] = []
        for det, track in zip(detections, tracks, strict=True):
            cut_y = truncation(det.box, image.width, image.height,
                               self.config.depth.border_margin_px)[1]
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
        notes = [f'{self.depth.name} runs every {self.config.depth.every_n_frames} frames: depth '
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
