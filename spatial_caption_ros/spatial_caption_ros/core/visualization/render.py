"""What a person sees: annotated images (OpenCV) and 3D marker descriptions (ROS-free).

- `annotate()` draws boxes, labels with distances (+- one sigma; "~" on assumed intrinsics), a
  depth-map inset and the caption on a copy of the image (the runner's output/annotated/*.jpg
  and the visualization node's annotated image).
- `scene_markers()` describes rviz markers in the camera optical frame: a box (or a sphere when
  the metric size is unknown) per object at its 3D position, a "chair 2.3 m" label, and lines for
  the most salient relations. Objects without a 3D position get no 3D marker at all: a 2D-only
  detection is put nowhere rather than at an invented depth. ros/conversions.py turns the
  descriptions into visualization_msgs/MarkerArray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import textwrap

import cv2
import numpy as np

from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.types import SceneGraph, SceneObject

# Thickness in metres of an object's box marker along the optical axis. Only the front face
# (metric width x height) is measured; the box is drawn as a thin plate so it claims no depth
# extent that nobody measured.
PLATE_THICKNESS_M = 0.02
# Diameter in metres of the sphere that marks an object whose 3D centre is known but whose metric
# size is not: small enough not to suggest a size.
POINT_DIAMETER_M = 0.15
# Marker alpha of object boxes: see-through so overlapping objects stay visible.
BOX_ALPHA = 0.45
# Relation lines: width in metres and colour (RGBA, 0..1), neutral so class colours stand out.
LINE_WIDTH_M = 0.02
LINE_COLOR = (0.95, 0.95, 0.95, 0.9)
# Depth inset: percentiles that set the colour range (robust to a few wild pixels).
INSET_LOW_PERCENTILE = 2.0
INSET_HIGH_PERCENTILE = 98.0


@dataclass
class MarkerSpec:
    """One rviz marker, without ROS types (converted in ros/conversions.py).

    kind: 'cube', 'sphere', 'text' or 'lines' (pairs of points, a LINE_LIST).
    position: centre in metres in the camera optical frame (x right, y down, z forward).
    scale: (x, y, z) metres; for text only z (the text height) is used, for lines only x (width).
    color: RGBA, each 0..1.
    """

    ns: str
    id: int
    kind: str
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    text: str = ''
    points: list[tuple[float, float, float]] = field(default_factory=list)


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class."""
    hue = (class_id * 47) % 180
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def class_rgba(class_id: int, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """The class colour as RGBA in 0..1 (rviz)."""
    b, g, r = class_color(class_id)
    return (r / 255.0, g / 255.0, b / 255.0, alpha)


def _metric(obj: SceneObject) -> bool:
    return obj.depth_metric and math.isfinite(obj.distance)


def distance_label(obj: SceneObject, assumed: bool = False) -> str:
    """'12.3+-1.5 m' (one sigma when the graph has it); '~12 m' on assumed intrinsics; ''."""
    if not _metric(obj):
        return ''
    if assumed:
        return f'~{obj.distance:.0f} m' if obj.distance >= 10 else f'~{obj.distance:.1f} m'
    sigma = obj.depth_uncertainty * obj.distance / obj.depth if (
        math.isfinite(obj.depth_uncertainty) and obj.depth > 0) else math.nan
    if math.isfinite(sigma):
        return f'{obj.distance:.1f}+-{sigma:.1f} m'
    return f'{obj.distance:.1f} m'


def object_label(obj: SceneObject, assumed: bool = False) -> str:
    """Image label: class, confidence and, when metric, the distance with its precision."""
    label = f'{obj.class_name} {obj.confidence:.2f}'
    distance = distance_label(obj, assumed)
    return f'{label} {distance}' if distance else label


def marker_label(obj: SceneObject) -> str:
    """3D label: 'chair 2.3 m' (the distance only when it is metric)."""
    return f'{obj.class_name} {obj.distance:.1f} m' if _metric(obj) else obj.class_name


def _finite_position(obj: SceneObject) -> tuple[float, float, float] | None:
    if obj.position is None or not all(math.isfinite(v) for v in obj.position):
        return None
    return tuple(float(v) for v in obj.position)


def scene_markers(graph: SceneGraph, max_relation_lines: int = 5,
                  text_size: float = 0.15) -> list[MarkerSpec]:
    """Markers for the objects with a 3D position and for their most salient relations."""
    markers: list[MarkerSpec] = []
    placed: dict[int, tuple[float, float, float]] = {}
    for obj in graph.objects:
        pos = _finite_position(obj)
        if pos is None:
            continue                      # 2D only: no invented depth
        placed[obj.id] = pos
        w, h = obj.metric_width, obj.metric_height
        if math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0:
            body = MarkerSpec('objects', obj.id, 'cube', pos, (w, h, PLATE_THICKNESS_M),
                              class_rgba(obj.class_id, BOX_ALPHA))
            top = pos[1] - h / 2.0
        else:
            d = POINT_DIAMETER_M
            body = MarkerSpec('objects', obj.id, 'sphere', pos, (d, d, d),
                              class_rgba(obj.class_id, BOX_ALPHA))
            top = pos[1] - d / 2.0
        markers.append(body)
        # Optical frame: -y is up, so the label sits just above the object.
        markers.append(MarkerSpec('labels', obj.id, 'text',
                                  (pos[0], top - 0.6 * text_size, pos[2]),
                                  (text_size, text_size, text_size), (1.0, 1.0, 1.0, 1.0),
                                  text=marker_label(obj)))
    lines = [r for r in graph.relations if r.subject_id in placed and r.object_id in placed]
    lines.sort(key=lambda r: (-r.salience, -r.confidence))
    for i, rel in enumerate(lines[:max_relation_lines]):
        a, b = placed[rel.subject_id], placed[rel.object_id]
        markers.append(MarkerSpec('relations', i, 'lines', scale=(LINE_WIDTH_M, 0.0, 0.0),
                                  color=LINE_COLOR, points=[a, b]))
        mid = tuple((p + q) / 2.0 for p, q in zip(a, b, strict=True))
        markers.append(MarkerSpec('relation_labels', i, 'text', mid,
                                  (0.8 * text_size,) * 3, LINE_COLOR, text=rel.predicate))
    return markers


def depth_inset(depth: np.ndarray, width: int, metric: bool) -> np.ndarray:
    """A colour (BGR) picture of a depth map `width` pixels wide, near = warm, unknown = black.

    depth: HxW float (metres when `metric`, otherwise relative, larger = farther); NaN, inf and
    values <= 0 are "no reading". The range printed on it is in metres only when `metric`.
    """
    depth = np.asarray(depth, dtype=np.float32)
    h, w = depth.shape[:2]
    width = max(8, int(width))
    height = max(8, int(round(h * width / max(w, 1))))
    small = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    valid = np.isfinite(small) & (small > 0)
    out = np.zeros((height, width, 3), np.uint8)
    if valid.any():
        lo, hi = np.percentile(small[valid], (INSET_LOW_PERCENTILE, INSET_HIGH_PERCENTILE))
        span = max(float(hi - lo), 1e-6)
        norm = np.zeros_like(small)
        norm[valid] = np.clip((small[valid] - lo) / span, 0.0, 1.0)
        colored = cv2.applyColorMap(((1.0 - norm) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
        out[valid] = colored[valid]
        unit = ' m' if metric else ' (relative)'
        text = f'{lo:.1f}-{hi:.1f}{unit}'
    else:
        text = 'no depth readings'
    cv2.rectangle(out, (0, 0), (width - 1, height - 1), (255, 255, 255), 1)
    cv2.putText(out, text, (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3,
                cv2.LINE_AA)
    cv2.putText(out, text, (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def annotate(image: ColorImage, graph: SceneGraph, caption: str | None = None,
             depth: np.ndarray | None = None, depth_inset_width: float = 0.25) -> np.ndarray:
    """A BGR copy of the image with the graph's objects, a depth inset and the caption drawn."""
    canvas = image.bgr().copy()
    h, w = canvas.shape[:2]
    scale = max(0.4, min(1.2, w / 1000.0))
    thickness = max(1, int(round(2 * scale)))
    for obj in sorted(graph.objects, key=lambda o: -o.box.area):
        color = class_color(obj.class_id)
        x1, y1, x2, y2 = (int(round(v)) for v in obj.box.as_tuple())
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        text = f'#{obj.id} {object_label(obj, graph.intrinsics_assumed)}'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thickness)
        ty = max(th + base, y1)
        cv2.rectangle(canvas, (x1, ty - th - base), (x1 + tw, ty), color, -1)
        cv2.putText(canvas, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    (0, 0, 0), max(1, thickness - 1), cv2.LINE_AA)
    if depth is not None and depth.ndim == 2 and depth.size:
        inset = depth_inset(depth, int(w * depth_inset_width), graph.depth_metric)
        ih, iw = inset.shape[:2]
        if ih < h and iw < w:
            canvas[0:ih, w - iw:w] = inset
    if caption:
        chars = max(20, int(w / (11 * scale)))
        lines = textwrap.wrap(caption, chars)[:6]
        line_h = int(26 * scale)
        band = line_h * len(lines) + int(10 * scale)
        overlay = canvas[h - band:h].astype(np.float32) * 0.35
        canvas[h - band:h] = overlay.astype(np.uint8)
        for i, line in enumerate(lines):
            y = h - band + int(8 * scale) + (i + 1) * line_h - int(6 * scale)
            cv2.putText(canvas, line, (int(8 * scale), y), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6 * scale, (255, 255, 255), max(1, thickness - 1), cv2.LINE_AA)
    return canvas
