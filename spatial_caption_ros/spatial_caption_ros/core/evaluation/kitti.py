"""KITTI object labels (label_2) and calibration (calib, P2) of the ../shared/eval format.

This is the one KITTI reader of the project: the graph evaluation (`make eval`), its depth check
(`--depth-check`) and the caption evaluation (`make eval-captions`) all read labels here.

The class map (`KITTI_TO_COCO`) is the one of ../shared/eval/README.md ("suggested mapping"):
a labelled object matches a detection of ANY of its classes; the first class is the one a COCO
detector most often says and names the object where one name is needed (the caption
evaluation's ground-truth objects).
- Car -> car. Truck -> truck. Pedestrian, Person_sitting -> person. Tram -> train.
- Van -> car or truck: COCO has no van; detectors call vans either.
- Cyclist -> person or bicycle: the labelled box holds rider and bicycle, so either detection
  may match it (and a caption naming a bicycle there is not a hallucination).
- Misc and DontCare are ignored (no class; DontCare has no 3D fields).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.inputs.sources import load_camera_info_file
from spatial_caption_ros.core.perception.depth.geometric import FLOOR_TILT_SIGMA_DEG
from spatial_caption_ros.core.types import BoundingBox, CameraIntrinsics

KITTI_TO_COCO: dict[str, tuple[str, ...]] = {
    'Car': ('car',), 'Van': ('car', 'truck'), 'Truck': ('truck',),
    'Pedestrian': ('person',), 'Person_sitting': ('person',), 'Cyclist': ('person', 'bicycle'),
    'Tram': ('train',),
}
# Every detector class a KITTI label can stand for: a caption's mention of another class cannot
# be judged on KITTI (its labels only cover these).
KITTI_DECIDABLE_CLASSES = frozenset(c for classes in KITTI_TO_COCO.values() for c in classes)
# KITTI's own "moderate" difficulty: at most 30 % truncated and at most partly occluded.
MODERATE_TRUNCATION = 0.3
MODERATE_OCCLUSION = 1
# The KITTI rig's documented mount (Geiger et al., "Vision meets Robotics: The KITTI Dataset",
# IJRR 2013, Fig. 3): the cameras 1.65 m above the road, the optical axes level. Its orientation
# is known to within the car's own pitch (braking, load) and the road's grade changes, about a
# degree (FLOOR_TILT_SIGMA_DEG, the same assumption as the floor contact): the evaluation states
# that as KITTI's camera_tilt_uncertainty_deg (the level-axis depth plus that tilt's spread), a
# property of the rig, not fitted to frames. Not camera_orientation: parameters with pitch and
# roll 0: that runs the gravity-aware cuboid model, which measured worse on KITTI's cars than the
# level-axis formula (docs/depth.md).
KITTI_TILT_UNCERTAINTY_DEG = FLOOR_TILT_SIGMA_DEG


@dataclass(frozen=True)
class KittiLabel:
    """One label_2 line of a mapped type (2D box, centre depth and distance, visibility)."""

    type: str
    box: BoundingBox
    depth: float           # z of the object centre (= of the labelled bottom centre), metres
    distance: float        # metres from the camera to the object centre
    centre: tuple[float, float, float]
    truncated: float       # 0..1
    occluded: int          # 0 visible, 1 partly, 2 largely, 3 unknown

    @property
    def moderate(self) -> bool:
        return self.truncated <= MODERATE_TRUNCATION and self.occluded <= MODERATE_OCCLUSION


def read_kitti_labels(path: str | Path) -> list[KittiLabel]:
    """Labels of the mapped KITTI types from a label_2 file (15 fields per line)."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding='utf-8').splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 15:
            raise ConfigError(f'{path}:{n}: a KITTI label line has 15 fields, got {len(fields)}')
        kind = fields[0]
        if kind not in KITTI_TO_COCO:
            continue
        x1, y1, x2, y2, h, _w, _l, x, y, z = (float(v) for v in fields[4:14])
        centre = (x, y - h / 2.0, z)      # the label's location is the bottom centre of the box
        out.append(KittiLabel(
            type=kind, box=BoundingBox(x1, y1, x2, y2), depth=z,
            distance=math.sqrt(sum(c * c for c in centre)), centre=centre,
            truncated=float(fields[1]), occluded=int(float(fields[2]))))
    return out


def read_kitti_calib(path: str | Path, width: int, height: int) -> CameraIntrinsics:
    """The left colour camera's intrinsics (P2) of a KITTI calib file.

    The parsing is the image source's (`load_camera_info_file`, which accepts KITTI calib files
    as camera_info_file): one P2 reader for the product and the evaluation.
    """
    return load_camera_info_file(path, width, height)
