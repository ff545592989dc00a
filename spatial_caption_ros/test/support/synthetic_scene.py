"""A scene graph of bus.jpg with metric 3D for the visualisation tests.

Detection is real (YOLO11n on bus.jpg). Depth is NOT measured: no depth source with weights runs
here, so the tests stand in a depth sensor with a SYNTHETIC depth map (a flat ground plane seen
by a camera 1.5 m above it, looking level, 60 degree horizontal field of view) and give each
object the depth of the ground where its box touches it. The numbers are plausible, not true;
they only exercise the rendering of metric objects (boxes, "bus 9.1 m" labels, relation lines,
the depth inset).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from support import BUS, MODELS
from spatial_caption_ros.core.captioning.captioner import CaptionConfig, Captioner
from spatial_caption_ros.core.scene_graph.geometry import metric_size, norm3, position_from_depth
from spatial_caption_ros.core.inputs.image import read_image_file
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.perception.pipeline import PerceptionConfig, PerceptionPipeline
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import CameraIntrinsics, FrameHeader

CAMERA_HEIGHT_M = 1.5        # synthetic: camera height above a flat ground
HFOV_DEG = 60.0              # synthetic: assumed horizontal field of view
FAR_M = 40.0                 # synthetic: depth above the horizon (sky, far buildings)
FRAME_ID = 'test_camera_optical_frame'
REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / 'output' / 'test_artifacts'


def synthetic_depth(width: int, height: int, intr: CameraIntrinsics) -> np.ndarray:
    """Depth (metres, float32) of a ground plane CAMERA_HEIGHT_M below a level camera."""
    rows = np.arange(height, dtype=np.float32)[:, None] - np.float32(intr.cy)
    with np.errstate(divide='ignore'):
        ground = np.where(rows > 1.0, intr.fy * CAMERA_HEIGHT_M / rows, FAR_M)
    depth = np.minimum(ground, FAR_M).astype(np.float32)
    return np.repeat(depth, width, axis=1)


def bus_scene(stamp_ns: int = 1_700_000_000_123_456_789):
    """(image, depth map, graph, caption text) of bus.jpg with synthetic metric depth."""
    image = read_image_file(BUS)
    intr = CameraIntrinsics.from_horizontal_fov(HFOV_DEG, image.width, image.height)
    depth = synthetic_depth(image.width, image.height, intr)
    pipeline = PerceptionPipeline(build_config(PerceptionConfig, {'model_dir': str(MODELS)}))
    try:
        result = pipeline.process(image, FrameHeader(stamp_ns, FRAME_ID), intr)
    finally:
        pipeline.close()
    for obj in result.objects:
        row = min(image.height - 1, int(obj.box.y_max))
        z = float(depth[row, int(obj.box.center[0])])
        obj.depth, obj.depth_metric, obj.depth_source = z, True, 'sensor'
        obj.depth_uncertainty = 0.05 * z
        obj.position = position_from_depth(obj.box, z, intr)
        obj.distance = norm3(obj.position)
        obj.metric_width, obj.metric_height = metric_size(obj.box, z, intr)
    result = replace(result, depth_source='sensor', depth_metric=True)
    graph = SceneGraphBuilder(build_config(SceneGraphConfig)).build(result)
    caption = Captioner(build_config(CaptionConfig)).caption(graph).text
    return image, depth, graph, caption


def save_artifact(image_bgr: np.ndarray, name: str, tmp_path: Path) -> list[Path]:
    """Write a PNG into the test's tmp dir and into output/test_artifacts/ (git-ignored)."""
    paths = []
    for folder in (tmp_path, ARTIFACTS):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        assert cv2.imwrite(str(path), image_bgr), path
        paths.append(path)
    return paths
