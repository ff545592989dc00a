"""Hand-made scenes shared by several test files: a street scene graph, projected cuboids.

`street()` is the graph the caption tests check claims against (plan, verifier, LLM, nodes,
faults); `project_cuboid()` gives the 2D box of an upright box seen by CAM (depth tests).
"""

from __future__ import annotations

from spatial_caption_ros.core.types import (
    BoundingBox, CameraIntrinsics, FrameHeader, IN_FRONT_OF, LEFT_OF, NAN, NEXT_TO, Relation,
    SceneGraph, SceneObject)

CAM = CameraIntrinsics(fx=700.0, fy=700.0, cx=640.0, cy=360.0, width=1280, height=720)


def scene_object(i, cls, box, region, depth=NAN, metric=False, position=None, salience=0.0):
    distance = NAN if position is None else sum(c * c for c in position) ** 0.5
    return SceneObject(id=i, class_name=cls, class_id=0, confidence=0.9, box=BoundingBox(*box),
                       region=region, relative_size=0.05, depth=depth, depth_uncertainty=0.2,
                       depth_metric=metric, position=position, distance=distance,
                       salience=salience)


def street(metric: bool = True) -> SceneGraph:
    """A bus in the centre, one person on the left (nearest), two people on the right."""
    objects = [
        scene_object(0, 'bus', (300, 100, 500, 400), 'center', 10.0, metric, (0.0, 0.0, 10.0)),
        scene_object(1, 'person', (10, 200, 60, 400), 'left', 5.0, metric, (-3.0, 0.0, 5.0)),
        scene_object(2, 'person', (600, 200, 650, 400), 'right', 12.0, metric, (3.0, 0.0, 12.0)),
        scene_object(3, 'person', (620, 210, 660, 400), 'right', 12.5, metric, (3.5, 0.0, 12.5)),
    ]
    if not metric:
        for o in objects:
            o.position, o.distance = None, NAN
    for o in objects:
        o.class_count = sum(p.class_name == o.class_name for p in objects)
    d = (lambda v: v) if metric else (lambda v: NAN)
    relations = [Relation(1, LEFT_OF, 0, distance=d(5.83)), Relation(0, LEFT_OF, 2,
                 distance=d(3.61)), Relation(1, IN_FRONT_OF, 0, distance=d(5.83)),
                 Relation(2, NEXT_TO, 3, distance=d(0.71)), Relation(0, LEFT_OF, 3)]
    return SceneGraph(FrameHeader(7, 'camera'), 800, 600, objects, relations,
                      depth_metric=metric, has_camera_info=metric)


def project_cuboid(x, z, height, facing_width, extent, camera_height, cam=CAM):
    """2D box of an upright cuboid standing on the ground, seen square-on (pinhole, level axis).

    x, z: centre of the cuboid (camera frame); facing_width: side facing the camera; extent:
    side along the line of sight; camera_height: camera above the ground.
    """
    near, far = z - extent / 2, z + extent / 2
    y_bottom, y_top = camera_height, camera_height - height      # y down
    v_bottom = y_bottom / near if y_bottom > 0 else y_bottom / far
    v_top = y_top / far if y_top > 0 else y_top / near
    u0, u1 = (x - facing_width / 2) / near, (x + facing_width / 2) / near
    return BoundingBox(cam.fx * u0 + cam.cx, cam.fy * v_top + cam.cy,
                       cam.fx * u1 + cam.cx, cam.fy * v_bottom + cam.cy)
