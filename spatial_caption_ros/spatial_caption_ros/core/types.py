"""Plain data types shared by every stage: boxes, intrinsics, objects, relations, graphs, captions.

These mirror the messages of spatial_caption_interfaces one to one (see ros/conversions.py), so
the core never needs a ROS import. Unknown floating-point values are NaN, as in the messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from spatial_caption_ros.core.errors import InvalidCameraInfoError

NAN = float('nan')

# Predicates of SpatialRelation (same strings as the message constants).
LEFT_OF = 'left of'
RIGHT_OF = 'right of'
ABOVE = 'above'
BELOW = 'below'
ON = 'on'
NEXT_TO = 'next to'
NEAR = 'near'
OVERLAPPING = 'overlapping'
INSIDE = 'inside'
CONTAINS = 'contains'
IN_FRONT_OF = 'in front of'
BEHIND = 'behind'

PREDICATES = (
    LEFT_OF, RIGHT_OF, ABOVE, BELOW, ON, NEXT_TO, NEAR, OVERLAPPING, INSIDE, CONTAINS,
    IN_FRONT_OF, BEHIND,
)
# Each directed predicate and its converse: "A left of B" is the same fact as "B right of A".
CONVERSE = {
    LEFT_OF: RIGHT_OF, RIGHT_OF: LEFT_OF, ABOVE: BELOW, BELOW: ABOVE, INSIDE: CONTAINS,
    CONTAINS: INSIDE, IN_FRONT_OF: BEHIND, BEHIND: IN_FRONT_OF,
}
SYMMETRIC = frozenset({NEXT_TO, NEAR, OVERLAPPING})

# The 3x3 image regions, row by row (same strings as the SceneObject.REGION_* constants).
REGIONS = (
    'top-left', 'top', 'top-right',
    'left', 'center', 'right',
    'bottom-left', 'bottom', 'bottom-right',
)

# Depth sources.
DEPTH_AUTO = 'auto'
DEPTH_NONE = 'none'
DEPTH_GEOMETRIC = 'geometric'
DEPTH_ANYTHING_V2 = 'depth_anything_v2'
DEPTH_SENSOR = 'sensor'


@dataclass(frozen=True)
class BoundingBox:
    """Axis-aligned box in image pixels (origin top-left, x right, y down)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def width(self) -> float:
        return max(0.0, self.x_max - self.x_min)

    @property
    def height(self) -> float:
        return max(0.0, self.y_max - self.y_min)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x_min + self.x_max), 0.5 * (self.y_min + self.y_max))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    def intersection(self, other: BoundingBox) -> float:
        """Area shared with `other` (0 when they do not overlap)."""
        ix = max(0.0, min(self.x_max, other.x_max) - max(self.x_min, other.x_min))
        iy = max(0.0, min(self.y_max, other.y_max) - max(self.y_min, other.y_min))
        return ix * iy

    def iou(self, other: BoundingBox) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the image the detections are in (rectified, no distortion).

    `assumed`: not a calibration but an assumed field of view (metric values derived from it
    are rough; the scene graph and the caption say so).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    assumed: bool = False

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise InvalidCameraInfoError(f'camera intrinsics contain NaN or inf: {values}')
        if self.fx <= 0.0 or self.fy <= 0.0:
            raise InvalidCameraInfoError(
                f'camera intrinsics need positive focal lengths, got fx={self.fx} fy={self.fy}')
        if self.width <= 0 or self.height <= 0:
            raise InvalidCameraInfoError(
                f'camera intrinsics need a positive image size, got {self.width}x{self.height}')

    @classmethod
    def from_k(cls, k: np.ndarray | list[float], width: int, height: int) -> CameraIntrinsics:
        """Build from a row-major 3x3 camera matrix K (as in sensor_msgs/CameraInfo.k)."""
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise InvalidCameraInfoError(f'camera matrix K must have 9 values, got {k.size}')
        return cls(fx=float(k[0]), fy=float(k[4]), cx=float(k[2]), cy=float(k[5]),
                   width=int(width), height=int(height))

    @classmethod
    def from_horizontal_fov(cls, hfov_deg: float, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics of an ideal camera with square pixels and this horizontal field of view."""
        if not 1.0 <= hfov_deg <= 179.0:
            raise InvalidCameraInfoError(f'horizontal field of view must be 1..179: {hfov_deg}')
        f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(fx=f, fy=f, cx=width / 2.0, cy=height / 2.0, width=width, height=height)

    def scaled_to(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera for an image resized to width x height."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy,
                                width, height, self.assumed)

    def backproject(self, u: float, v: float, z: float) -> tuple[float, float, float]:
        """Point at depth z (metres along the optical axis) seen at pixel (u, v)."""
        return ((u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z)

    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]


@dataclass
class Detection:
    """One detector output after non-maximum suppression, in source-image pixels."""

    box: BoundingBox
    class_id: int
    class_name: str
    confidence: float


@dataclass
class ObjectDepth:
    """Depth of one object as estimated by a depth source."""

    value: float = NAN            # metres along z when metric, else relative (larger = farther)
    uncertainty: float = NAN      # one standard deviation, same unit as value
    source: str = DEPTH_NONE
    metric: bool = False
    extent: float = NAN           # metres along the line of sight; the front is value - extent/2

    @property
    def known(self) -> bool:
        return math.isfinite(self.value)


@dataclass
class SceneObject:
    """An object of the scene graph (mirrors spatial_caption_interfaces/SceneObject)."""

    id: int
    class_name: str
    class_id: int
    confidence: float
    box: BoundingBox
    class_count: int = 1
    region: str = ''
    relative_size: float = 0.0
    depth: float = NAN
    depth_uncertainty: float = NAN
    depth_source: str = DEPTH_NONE
    depth_metric: bool = False
    position: tuple[float, float, float] | None = None
    distance: float = NAN
    metric_width: float = NAN
    metric_height: float = NAN
    salience: float = 0.0
    attributes: dict[str, str] = field(default_factory=dict)
    knowledge: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_position(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class Relation:
    """A directed relation "subject predicate object" (mirrors SpatialRelation)."""

    subject_id: int
    predicate: str
    object_id: int
    distance: float = NAN
    confidence: float = 1.0
    salience: float = 0.0


@dataclass
class FrameHeader:
    """Where and when the source image was taken (std_msgs/Header without the ROS type)."""

    stamp_ns: int = 0
    frame_id: str = ''


@dataclass
class DetectionResult:
    """Output of the perception stage for one image (mirrors DetectionArray)."""

    header: FrameHeader
    image_width: int
    image_height: int
    objects: list[SceneObject]
    depth_source: str = DEPTH_NONE
    depth_metric: bool = False
    has_camera_info: bool = False
    stage_times_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    processing_latency: float = 0.0
    depth_map: np.ndarray | None = None   # HxW float32, same convention as ObjectDepth.value
    intrinsics_assumed: bool = False      # the intrinsics are an assumed field of view


@dataclass
class SceneGraph:
    """A depth-enhanced scene graph of one image (mirrors the SceneGraph message)."""

    header: FrameHeader
    image_width: int
    image_height: int
    objects: list[SceneObject]
    relations: list[Relation]
    depth_source: str = DEPTH_NONE
    depth_metric: bool = False
    has_camera_info: bool = False
    notes: list[str] = field(default_factory=list)
    processing_latency: float = 0.0
    intrinsics_assumed: bool = False      # metric values rest on an assumed field of view

    def object_by_id(self, object_id: int) -> SceneObject | None:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        return None


# Caption styles and generators (same strings as the Caption message constants).
STYLE_SHORT = 'short'
STYLE_DETAILED = 'detailed'
STYLE_JSON = 'json'
GENERATOR_TEMPLATE = 'template'
GENERATOR_LLM = 'llm'
GENERATOR_LLM_REPAIRED = 'llm_repaired'


@dataclass
class Caption:
    """A caption of one image (mirrors spatial_caption_interfaces/Caption)."""

    header: FrameHeader
    text: str
    style: str = STYLE_SHORT
    verified: bool = False
    generator: str = GENERATOR_TEMPLATE
    model: str = ''
    fallback_reason: str = ''
    latency: float = 0.0
    intrinsics_assumed: bool = False      # its distances rest on an assumed field of view
