"""Scene graphs and captions as JSON-ready dictionaries (output files, JSON topic mirror).

NaN (unknown) values become null so the JSON is standard and unknowns are explicit.
"""

from __future__ import annotations

import math
from typing import Any

from spatial_caption_ros.core.types import (
    BoundingBox, Caption, FrameHeader, Relation, SceneGraph, SceneObject)


def _num(value: float, digits: int = 4) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def _float(value: Any) -> float:
    return float('nan') if value is None else float(value)


def object_to_dict(obj: SceneObject) -> dict[str, Any]:
    return {
        'id': obj.id, 'class_name': obj.class_name, 'class_id': obj.class_id,
        'confidence': _num(obj.confidence), 'class_count': obj.class_count,
        'box': [_num(v, 1) for v in obj.box.as_tuple()], 'region': obj.region,
        'relative_size': _num(obj.relative_size), 'depth': _num(obj.depth),
        'depth_uncertainty': _num(obj.depth_uncertainty), 'depth_source': obj.depth_source,
        'depth_metric': obj.depth_metric,
        'position': [_num(v) for v in obj.position] if obj.position is not None else None,
        'distance': _num(obj.distance), 'metric_width': _num(obj.metric_width),
        'metric_height': _num(obj.metric_height), 'salience': _num(obj.salience),
        'attributes': dict(obj.attributes), 'knowledge': [list(kv) for kv in obj.knowledge],
    }


def dict_to_object(d: dict[str, Any]) -> SceneObject:
    return SceneObject(
        id=int(d['id']), class_name=d['class_name'], class_id=int(d.get('class_id', -1)),
        confidence=_float(d.get('confidence')), box=BoundingBox(*map(_float, d['box'])),
        class_count=int(d.get('class_count', 1)), region=d.get('region', ''),
        relative_size=_float(d.get('relative_size', 0.0)), depth=_float(d.get('depth')),
        depth_uncertainty=_float(d.get('depth_uncertainty')),
        depth_source=d.get('depth_source', 'none'), depth_metric=bool(d.get('depth_metric')),
        position=tuple(map(_float, d['position'])) if d.get('position') else None,
        distance=_float(d.get('distance')), metric_width=_float(d.get('metric_width')),
        metric_height=_float(d.get('metric_height')), salience=_float(d.get('salience', 0.0)),
        attributes=dict(d.get('attributes') or {}),
        knowledge=[tuple(kv) for kv in d.get('knowledge') or []])


def relation_to_dict(rel: Relation) -> dict[str, Any]:
    return {'subject_id': rel.subject_id, 'predicate': rel.predicate,
            'object_id': rel.object_id, 'distance': _num(rel.distance),
            'confidence': _num(rel.confidence), 'salience': _num(rel.salience)}


def graph_to_dict(graph: SceneGraph) -> dict[str, Any]:
    return {
        'stamp_ns': graph.header.stamp_ns, 'frame_id': graph.header.frame_id,
        'image_width': graph.image_width, 'image_height': graph.image_height,
        'depth_source': graph.depth_source, 'depth_metric': graph.depth_metric,
        'has_camera_info': graph.has_camera_info,
        'objects': [object_to_dict(o) for o in graph.objects],
        'relations': [relation_to_dict(r) for r in graph.relations],
        'notes': list(graph.notes), 'processing_latency': _num(graph.processing_latency, 6),
        'intrinsics_assumed': graph.intrinsics_assumed,
    }


def dict_to_graph(d: dict[str, Any]) -> SceneGraph:
    return SceneGraph(
        header=FrameHeader(int(d.get('stamp_ns', 0)), d.get('frame_id', '')),
        image_width=int(d['image_width']), image_height=int(d['image_height']),
        objects=[dict_to_object(o) for o in d.get('objects', [])],
        relations=[Relation(int(r['subject_id']), r['predicate'], int(r['object_id']),
                            _float(r.get('distance')), _float(r.get('confidence', 1.0)),
                            _float(r.get('salience', 0.0))) for r in d.get('relations', [])],
        depth_source=d.get('depth_source', 'none'), depth_metric=bool(d.get('depth_metric')),
        has_camera_info=bool(d.get('has_camera_info')), notes=list(d.get('notes', [])),
        processing_latency=_float(d.get('processing_latency', 0.0)),
        intrinsics_assumed=bool(d.get('intrinsics_assumed')))


def caption_to_dict(caption: Caption) -> dict[str, Any]:
    return {'stamp_ns': caption.header.stamp_ns, 'frame_id': caption.header.frame_id,
            'text': caption.text, 'style': caption.style, 'verified': caption.verified,
            'generator': caption.generator, 'model': caption.model,
            'fallback_reason': caption.fallback_reason, 'latency': _num(caption.latency, 6),
            'intrinsics_assumed': caption.intrinsics_assumed}
