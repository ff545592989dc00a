"""Annotated images: boxes, labels with distances, and the caption, drawn with OpenCV."""

from __future__ import annotations

import math
import textwrap

import cv2
import numpy as np

from spatial_caption_ros.core.image import ColorImage
from spatial_caption_ros.core.types import SceneGraph


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class."""
    hue = (class_id * 47) % 180
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def object_label(obj) -> str:
    label = f'{obj.class_name} {obj.confidence:.2f}'
    if obj.depth_metric and math.isfinite(obj.distance):
        label += f' {obj.distance:.1f} m'
    return label


def annotate(image: ColorImage, graph: SceneGraph, caption: str | None = None) -> np.ndarray:
    """A BGR copy of the image with the graph's objects and the caption drawn on it."""
    canvas = image.bgr().copy()
    h, w = canvas.shape[:2]
    scale = max(0.4, min(1.2, w / 1000.0))
    thickness = max(1, int(round(2 * scale)))
    for obj in sorted(graph.objects, key=lambda o: -o.box.area):
        color = class_color(obj.class_id)
        x1, y1, x2, y2 = (int(round(v)) for v in obj.box.as_tuple())
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        text = f'#{obj.id} {object_label(obj)}'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thickness)
        ty = max(th + base, y1)
        cv2.rectangle(canvas, (x1, ty - th - base), (x1 + tw, ty), color, -1)
        cv2.putText(canvas, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    (0, 0, 0), max(1, thickness - 1), cv2.LINE_AA)
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
