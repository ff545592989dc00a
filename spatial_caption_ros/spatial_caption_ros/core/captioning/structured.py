"""The structured JSON caption for agents: the caption text plus the planned facts with graph ids.

Produced by code from the content plan (the LLM writes at most the `text` field), validated
against SCHEMA by `validate` before it is published. Distances are metres or null.
"""

from __future__ import annotations

from collections import Counter
import json
import math
from typing import Any

from spatial_caption_ros.core.captioning.plan import ContentPlan
from spatial_caption_ros.core.types import SceneGraph

SCHEMA_ID = 'spatial_caption_ros/caption/v1'
# The document layout (a JSON-Schema-style summary; `validate` checks exactly this).
SCHEMA: dict[str, Any] = {
    'schema': str, 'text': str, 'verified': bool, 'generator': str, 'depth_metric': bool,
    'counts': dict, 'objects': list, 'facts': list,
}
_OBJECT_KEYS = {'id': int, 'class': str, 'region': str, 'distance_m': (float, type(None))}
_FACT_TYPES = {'count', 'place', 'nearest', 'relation'}


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
        'counts': dict(sorted(Counter(o.class_name for o in graph.objects).items())),
        'objects': [{'id': int(o.id), 'class': o.class_name, 'region': o.region,
                     'distance_m': _metres(o.distance) if o.depth_metric else None}
                    for o in graph.objects],
        'facts': [f.to_dict() for f in plan.facts],
    }


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
    for fact in doc.get('facts') or []:
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
