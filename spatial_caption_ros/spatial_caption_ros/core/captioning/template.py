"""Deterministic template captions: every statement is read directly off the scene graph."""

from __future__ import annotations

from collections import Counter

from spatial_caption_ros.core.captioning.language import (
    counted, join_list, reference, REGION_PHRASES)
from spatial_caption_ros.core.types import SceneGraph, SYMMETRIC


def template_caption(graph: SceneGraph, max_relations: int = 3) -> str:
    """A short caption: what is there (with counts), where the main objects are, main relations."""
    if not graph.objects:
        return 'No objects detected.'
    counts = Counter(o.class_name for o in graph.objects)
    ordered = sorted(counts, key=lambda c: (-max(o.salience for o in graph.objects
                                                 if o.class_name == c), c))
    sentences = [_capitalise(join_list([counted(c, counts[c]) for c in ordered])) + '.']

    placements = []
    for obj in sorted(graph.objects, key=lambda o: -o.salience):
        ref = reference(obj, graph)
        if ref and obj.region in REGION_PHRASES and obj.class_count == 1:
            placements.append(f'{ref} is {REGION_PHRASES[obj.region]}')
        if len(placements) == 2:
            break
    if placements:
        sentences.append(_capitalise('; '.join(placements)) + '.')

    stated = []
    by_id = {o.id: o for o in graph.objects}
    ranked = sorted(graph.relations, key=lambda r: -(r.confidence * (
        by_id[r.subject_id].salience + by_id[r.object_id].salience)))
    for rel in ranked:
        subj, obj = by_id[rel.subject_id], by_id[rel.object_id]
        rs, ro = reference(subj, graph), reference(obj, graph)
        if rs is None or ro is None:
            continue
        verb = 'are' if rel.predicate in SYMMETRIC else 'is'
        if rel.predicate in SYMMETRIC:
            stated.append(f'{rs} and {ro} {verb} {rel.predicate}')
        else:
            stated.append(f'{rs} {verb} {rel.predicate} {ro}')
        if len(stated) == max_relations:
            break
    if stated:
        sentences.append(_capitalise('; '.join(stated)) + '.')
    return ' '.join(sentences)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]
