"""The depth component's parameters: which source, its model, metric scale and box statistics.

`DepthConfig` is `PerceptionConfig.depth`; its ROS names are `depth_*` (and `scale_*`, `box_*`,
`border_margin_px` for its parts), exactly the flat names the perception node declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.params import CONFIGURE, group, param
from spatial_caption_ros.core.perception.depth.statistics import BoxStatConfig
from spatial_caption_ros.core.types import (
    DEPTH_ANYTHING_V2, DEPTH_AUTO, DEPTH_GEOMETRIC, DEPTH_NONE, DEPTH_SENSOR)

DEPTH_SOURCES = (DEPTH_NONE, DEPTH_GEOMETRIC, DEPTH_ANYTHING_V2, DEPTH_SENSOR)
PATCH = 14                          # ViT-S/B/L/14 patch size: model input sides are multiples
MODEL_OUTPUTS = ('relative', 'metric')
SCALE_SOURCES = ('geometric', 'sensor', 'none')


@dataclass(frozen=True)
class ScaleConfig:
    """Metric scale recovery of a relative depth model (DepthConfig.scale)."""

    PARAM_PREFIX: ClassVar[str] = 'scale_'

    source: str = param(
        'geometric', 'Anchors that make relative model depth metric: geometric (objects placed '
        'by box size, needs camera_info), sensor (aligned depth image on `depth`) or none.',
        choices=SCALE_SOURCES, when=CONFIGURE, name='depth_scale_source')
    smoothing: float = param(
        0.5, 'Weight of the previous frames in the metric scale fit (0: each frame on its own).',
        minimum=0.0, maximum=0.99, when=CONFIGURE)
    max_age_frames: int = param(
        10, 'Frames a scale fit is kept when later frames have no usable anchors; then the depth '
        'falls back to relative.', minimum=0, maximum=1000, when=CONFIGURE)


@dataclass(frozen=True)
class DepthConfig:
    """The depth source and its model (PerceptionConfig.depth; ROS names `depth_*`)."""

    PARAM_PREFIX: ClassVar[str] = 'depth_'

    source: str = param(
        DEPTH_AUTO, 'Depth source: auto (sensor for frames with a matched aligned depth image on '
        '`depth`; otherwise depth_anything_v2 when depth_model is found, else geometric), none, '
        'geometric (box size + class size priors + camera_info, no weights), '
        'depth_anything_v2 (dense model) or sensor (aligned depth image on `depth`).',
        choices=(DEPTH_AUTO,) + DEPTH_SOURCES, when=CONFIGURE)
    model: str = param(
        'depth_anything_v2_small', 'Depth Anything V2 model: a name from models/manifest.yaml '
        'or a path to an .onnx file (depth_source depth_anything_v2).', when=CONFIGURE)
    model_output: str = param(
        'relative', 'What the depth model outputs: relative (inverse depth, the standard models; '
        'made metric by scale recovery) or metric (metres: the metric indoor/outdoor models).',
        choices=MODEL_OUTPUTS, when=CONFIGURE)
    input_size: int = param(
        518, 'Shorter side of the depth model input in pixels, a multiple of 14 (official: 518; '
        'smaller is faster and coarser). Fixed-shape models use their own size.',
        minimum=PATCH, maximum=2044, when=CONFIGURE)
    scale: ScaleConfig = group(ScaleConfig)
    box: BoxStatConfig = group(BoxStatConfig)
    border_margin_px: float = param(
        2.0, 'A box side this close to the image border counts as cut by it (geometric depth '
        'does not use cut sizes), in pixels of a 640 px detector input: scaled with larger '
        'images (KITTI 1242 px: 3.9 px), where detector boxes are coarser (docs/depth.md).',
        minimum=0.0, maximum=100.0, when=CONFIGURE,
        name='border_margin_px')
    every_n_frames: int = param(
        1, 'Run the dense depth model on every Nth frame only (real-time mode for weak CPUs); '
        'the tracker carries object depth to the frames in between. Needs tracking when > 1.',
        minimum=1, maximum=1000)
    threads: int = param(
        0, 'CPU inference threads of the depth model; 0: every core, or a share of them when '
        'depth runs in parallel.', minimum=0, maximum=256, when=CONFIGURE)
    camera_orientation: str = param(
        'unknown', 'How the camera is turned against gravity, for the geometric depth cues: '
        'unknown (the optical axis is taken as level), or parameters (camera_pitch_deg and '
        'camera_roll_deg of a fixed mount). Known, pitch and roll are removed from the box '
        'geometry (an object seen from above, a rolled camera).',
        choices=('unknown', 'parameters'), name='camera_orientation')
    camera_pitch_deg: float = param(
        0.0, 'Angle of the optical axis below the horizontal in degrees (camera_orientation '
        'parameters; positive: looking down).', minimum=-90.0, maximum=90.0,
        name='camera_pitch_deg')
    camera_roll_deg: float = param(
        0.0, 'Rotation of the camera about its optical axis in degrees (camera_orientation '
        'parameters; positive: the scene turned clockwise in the image).', minimum=-180.0,
        maximum=180.0, name='camera_roll_deg')
    camera_tilt_uncertainty_deg: float = param(
        20.0, 'With camera_orientation unknown (and no gravity from /tf): standard deviation in '
        'degrees of the camera pitch and roll that the level-axis assumption may miss; the '
        "geometric depth's uncertainty gains the depth spread over that tilt (0: none). 20: "
        'hand-held cameras and robot head/navigation cameras (docs/depth.md).',
        minimum=0.0, maximum=40.0, when=CONFIGURE, name='camera_tilt_uncertainty_deg')
    surface_consistency: bool = param(
        True, 'With gravity known, objects whose box bottoms meet one surface (a desk) at the '
        "same height get a second depth from the others' surface height, combined with their "
        "own; a person and what they wear or hold inside their box (tie, bag, phone) combine "
        'their depths (geometric depth; docs/depth.md).', when=CONFIGURE,
        name='surface_consistency')
    camera_height_m: float = param(
        0.0, 'Height of the camera above the floor the objects stand on, metres (0: unknown). '
        'Known, an object whose box bottom meets the floor gets a second depth from that contact '
        '(with surface_consistency; a level camera unless gravity is known). KITTI: 1.65.',
        minimum=0.0, maximum=100.0, when=CONFIGURE, name='camera_height_m')

    def validate(self) -> None:
        """Cross-parameter checks (messages name the ROS parameters)."""
        if self.input_size % PATCH:
            lower = self.input_size // PATCH * PATCH
            raise ConfigError(f'depth_input_size {self.input_size} is not a multiple of '
                              f'{PATCH}: use {max(PATCH, lower)} or {lower + PATCH}')
        if self.scale.source == 'sensor' and (
                self.source not in (DEPTH_ANYTHING_V2, DEPTH_SENSOR)
                or (self.source == DEPTH_ANYTHING_V2 and self.model_output == 'metric')):
            # It would subscribe to `depth` for nothing: say so instead.
            raise ConfigError('depth_scale_source sensor anchors the scale of a relative '
                              'depth_anything_v2 model; it does nothing with depth_source '
                              f'{self.source} and depth_model_output {self.model_output}')

    @property
    def uses_sensor(self) -> bool:
        """Whether the aligned depth image is used (the node subscribes to `depth`).

        auto subscribes too: a depth image that arrives is used (and said so), none costs
        nothing.
        """
        return self.source in (DEPTH_SENSOR, DEPTH_AUTO) or self.scale.source == 'sensor'
