"""The structured JSON caption for agents: the caption text plus the planned facts with graph ids.

Produced by code from the content plan (the LLM writes at most the `text` field), validated
against SCHEMA by `validate` before it is published. Distances are metres or null. `facts` are
observed (detections, their geometry and depth); `inferred` holds what the commonsense knowledge
adds (the place the objects suggest), kept apart so an agent never mistakes one for the other.
Objects carry their robot-frame placement when the graph is metric: `ahead_m` (along the optical
axis), `right_m` (negative: left), `bearing_deg` (positive: right of straight ahead); with
`intrinsics_assumed` these rest on an assumed field of view.
"""

from __future__ import annotations

from collections import Counter
import json
import math
from typing import Any

from spatial_caption_ros.core.captioning.plan import ContentPlan, SCENE
from spatial_caption_ros.core.types import SceneGraph, SceneObject

SCHEMA_ID = 'spatial_caption_ros/caption/v2'
# The document layout (a JSON-Schema-style summary; `validate` checks exactly this).
SCHEMA: dict[str, Any] = {
    'schema': str, 'text': str, 'verified': bool, 'generator': str, 'depth_metric': bool,
    'intrinsics_assumed': bool, 'counts': dict, 'objects': list, 'facts': list,
    'inferred': list,
}
_METRES = (float, type(None))
_OBJECT_KEYS = {'id': int, 'class': str, 'region': str, 'distance_m': _METRES,
                'ahead_m': _METRES, 'right_m': _METRES, 'bearing_deg': _METRES}
_FACT_TYPES = {'count', 'place', 'nearest', 'relation', 'distance', SCENE}


def _metres(value: float) -> float | None:
    return round(float(value), 2) if math.isfinite(value) else None


def structured_caption(plan: ContentPlan, graph: SceneGraph, text: str, verified: bool,
                       generator: str) -> dict[str, Any]:
    """The JSON caption document."""
    return {
        'schema': SCHEMA_ID,
        'text': text,
        'verified': bool(verified),
        'generator': generator,
        'depth_metric': bool(graph.depth_metric),
        'intrinsics_assumed': bool(graph.intrinsics_assumed and graph.depth_metric),
        'counts': dict(sorted(Counter(o.class_name for o in graph.objects).items())),
        'objects': [_object(o) for o in graph.objects],
        'facts': [f.to_dict() for f in plan.facts if f.kind != SCENE],
        'inferred': [f.to_dict() for f in plan.facts if f.kind == SCENE],
    }


def _object(o: SceneObject) -> dict[str, Any]:
    """One object with its robot-frame placement (camera optical frame: x right, z ahead)."""
    out = {'id': int(o.id), 'class': o.class_name, 'region': o.region,
           'distance_m': _metres(o.distance) if o.depth_metric else None,
           'ahead_m': None, 'right_m': None, 'bearing_deg': None}
    if o.depth_metric and o.position is not None:
        x, _, z = o.position
        out.update({'ahead_m': _metres(z), 'right_m': _metres(x),
                    'bearing_deg': _metres(math.degrees(math.atan2(x, z)))})
    return out


def validate(doc: Any) -> list[str]:
    """Problems of a JSON caption document ([] when valid)."""
    if not isinstance(doc, dict):
        return ['not a JSON object']
    problems = [f'{key}: missing or not {kind.__name__}' for key, kind in SCHEMA.items()
                if not isinstance(doc.get(key), kind) or (kind is int and isinstance(
                    doc.get(key), bool))]
    if set(doc) - set(SCHEMA):
        problems.append(f'unknown keys: {sorted(set(doc) - set(SCHEMA))}')
    if doc.get('schema') != SCHEMA_ID:
        problems.append(f'schema is not {SCHEMA_ID}')
    for obj in doc.get('objects') or []:
        if not isinstance(obj, dict) or any(not isinstance(obj.get(k), t)
                                            for k, t in _OBJECT_KEYS.items()):
            problems.append(f'bad object entry {obj!r}')
    ids = set()
    facts = [f for key in ('facts', 'inferred') if isinstance(doc.get(key), list)
             for f in doc[key]]
    for fact in facts:
        if not isinstance(fact, dict) or fact.get('type') not in _FACT_TYPES or not isinstance(
                fact.get('id'), str):
            problems.append(f'bad fact entry {fact!r}')
            continue
        if fact['id'] in ids:
            problems.append(f'duplicate fact id {fact["id"]}')
        ids.add(fact['id'])
    counts = doc.get('counts')
    if isinstance(counts, dict) and any(not isinstance(v, int) for v in counts.values()):
        problems.append('counts must be integers')
    return problems


def dumps(doc: dict[str, Any]) -> str:
    """Compact, key-ordered JSON (NaN is never written: unknowns are null)."""
    return json.dumps(doc, separators=(',', ':'), allow_nan=False)
