"""Content planning: which facts of the scene graph a caption states (code decides, not the LLM).

A plan is an ordered list of facts with ids (f1, f2, ...): class counts, where the main objects
are, which object is nearest to the camera (with its distance when metric), and the most salient
relations (with the distance between the two objects when metric). Every fact is true of the graph
by construction (semantics.py decides), and every object it names has a referring expression that
picks out exactly that object ("the bus", "the person on the left", "the nearest car"), or, as the
subject of a relation only, an indefinite one ("a person is to the left of the bus").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
import math

from spatial_caption_ros.core.captioning.language import (
    REGION_PHRASE_CELLS, region_cell, region_matches, region_phrase, article)
from spatial_caption_ros.core.captioning.semantics import DISTANCE_REL_TOL, GraphIndex, nearest
from spatial_caption_ros.core.types import (
    CONVERSE, NAN, Relation, SceneGraph, SceneObject, STYLE_DETAILED, SYMMETRIC)

# Placements ("the bus is on the left") are stated only when the box centre lies at least this
# fraction of the image size inside the grid lines that the phrase depends on: box centres of a
# detector are off by a few percent of the image, so a centre next to a grid line is a coin flip
# (the same idea as the graph's margins for left/right). Chosen after seeing near-line
# placements judged false on the dev split; not fitted to any item.
REGION_MARGIN = 0.05

COUNT = 'count'
PLACE = 'place'
NEAREST = 'nearest'
RELATION = 'relation'


@dataclass(frozen=True)
class Fact:
    """One statement a caption may make, with the graph ids it is about."""

    id: str
    kind: str                       # count | place | nearest | relation
    class_name: str = ''            # count
    count: int = 0                  # count
    subject: int = -1               # place, nearest, relation
    predicate: str = ''             # relation
    object: int = -1                # relation
    region: str = ''                # place: the graph region of the subject
    distance: float = NAN           # relation: between the objects; nearest: from the camera
    salience: float = 0.0
    subject_ref: str = ''           # referring expression of the subject
    object_ref: str = ''            # referring expression of the object

    def to_dict(self) -> dict:
        out = {'id': self.id, 'type': self.kind}
        if self.kind == COUNT:
            out.update({'class': self.class_name, 'count': self.count})
        else:
            out.update({'subject': self.subject, 'subject_ref': self.subject_ref})
        if self.kind == PLACE:
            out['region'] = self.region
        if self.kind == RELATION:
            out.update({'predicate': self.predicate, 'object': self.object,
                        'object_ref': self.object_ref})
        if self.kind in (RELATION, NEAREST):
            out['distance_m'] = round(self.distance, 2) if math.isfinite(self.distance) else None
        return out


@dataclass
class ContentPlan:
    """The facts of one caption, in the order the template states them."""

    style: str
    facts: list[Fact] = field(default_factory=list)
    empty: bool = False             # the graph has no objects

    def of_kind(self, kind: str) -> list[Fact]:
        return [f for f in self.facts if f.kind == kind]


@dataclass(frozen=True)
class PlanLimits:
    """How much one caption says."""

    max_classes: int = 3
    max_places: int = 1
    max_relations: int = 1


def object_salience(obj: SceneObject) -> float:
    """The graph's salience; when the graph gives none (0), confidence weighted by size.

    The fallback is the foundation graph builder's formula (confidence x (0.5 + 2 x area
    fraction), capped at 1): big, confident objects first.
    """
    if obj.salience > 0.0:
        return obj.salience
    return min(1.0, obj.confidence * (0.5 + 2.0 * obj.relative_size))


def relation_salience(rel: Relation, index: GraphIndex) -> float:
    """The graph's relation salience; when 0, its confidence times its objects' mean salience."""
    if rel.salience > 0.0:
        return rel.salience
    a, b = index.by_id[rel.subject_id], index.by_id[rel.object_id]
    return rel.confidence * 0.5 * (object_salience(a) + object_salience(b))


def referring_expressions(graph: SceneGraph, index: GraphIndex | None = None) -> dict[int, str]:
    """Object id -> a phrase that picks out exactly that object (objects without one are absent).

    Tried in order: the class alone ("the bus"); a column, row or cell of the 3x3 grid that no
    other object of the class shares ("the person on the left"); "the nearest <class>" when its
    depth is clearly the smallest of its class.
    """
    index = index or GraphIndex(graph)
    refs: dict[int, str] = {}
    for cls, objs in index.by_class.items():
        if len(objs) == 1:
            refs[objs[0].id] = f'the {cls}'
            continue
        closest = nearest(objs)
        for obj in objs:
            for phrase in _region_candidates(obj.region):
                cell = REGION_PHRASE_CELLS[phrase]
                if sum(region_matches(o.region, cell) for o in objs) == 1:
                    refs[obj.id] = f'the {cls} {phrase}'
                    break
            else:
                if closest is not None and closest.id == obj.id:
                    refs[obj.id] = f'the nearest {cls}'
    return refs


def _region_candidates(region: str) -> list[str]:
    cell = region_cell(region)
    if cell is None:
        return []
    row, col = cell
    out = []
    if col != 1:
        out.append(f'on the {"left" if col == 0 else "right"}')
    if row != 1:
        out.append(f'at the {"top" if row == 0 else "bottom"}')
    exact = region_phrase(region)
    if exact and exact not in out:
        out.append(exact)
    return out


def stated_distance(metres: float, uncertainty: float) -> float:
    """`metres` when the graph knows it to within the verifier's tolerance, else NaN.

    A number is written only when its one-sigma uncertainty (for two objects, their depth
    uncertainties added in quadrature: an upper bound for their distance) is at most
    DISTANCE_REL_TOL of it: a caption must not sound more precise than the graph is.
    """
    if not (math.isfinite(metres) and math.isfinite(uncertainty)):
        return NAN
    return metres if uncertainty <= DISTANCE_REL_TOL * metres else NAN


def clearly_in_region(obj: SceneObject, width: int, height: int) -> bool:
    """The box centre is REGION_MARGIN inside the grid lines its region phrase depends on."""
    cell = region_cell(obj.region)
    if cell is None or width <= 0 or height <= 0:
        return False
    cx, cy = obj.box.center
    u, v = cx / width, cy / height
    row, col = cell
    # the phrase constrains the column unless the object is in the middle column of the top or
    # bottom row ("at the top"), and the row unless it is in the middle row ("on the left")
    checks = []
    if not (col == 1 and row != 1):
        checks.append((u, col))
    if not (row == 1 and col != 1):
        checks.append((v, row))
    for value, index in checks:
        low, high = index / 3.0, (index + 1) / 3.0
        if (index > 0 and value - low < REGION_MARGIN) or (
                index < 2 and high - value < REGION_MARGIN):
            return False
    return True


def confident_view(graph: SceneGraph, min_confidence: float) -> SceneGraph:
    """The graph restricted to objects detected with at least `min_confidence`.

    Captions describe this view: its counts, placements and relations (a relation is kept when
    both of its objects are). The input graph is not modified.
    """
    keep = [o for o in graph.objects if o.confidence >= min_confidence]
    if len(keep) == len(graph.objects):
        return graph
    counts = Counter(o.class_name for o in keep)
    objects = [replace(o, class_count=counts[o.class_name]) for o in keep]
    ids = {o.id for o in keep}
    return replace(graph, objects=objects, relations=[
        r for r in graph.relations if r.subject_id in ids and r.object_id in ids])


def limits_for(style: str, max_relations: int, detailed_max_relations: int) -> PlanLimits:
    """Short captions: three classes, one placement, `max_relations` relations; detailed: more."""
    if style == STYLE_DETAILED:
        return PlanLimits(max_classes=6, max_places=3, max_relations=detailed_max_relations)
    return PlanLimits(max_classes=3, max_places=1, max_relations=max_relations)


def plan_caption(graph: SceneGraph, style: str, limits: PlanLimits,
                 every_object: list[SceneObject] | None = None) -> ContentPlan:
    """Choose the facts of one caption from the graph, most salient first.

    `every_object`: all detections when `graph` is a confident view of a larger graph. An
    object is called nearest only if it is also nearest among all of them (a less confident
    detection may be nearer), and only among at least two (a lone object says nothing).
    """
    plan = ContentPlan(style=style)
    if not graph.objects:
        plan.empty = True
        return plan
    index = GraphIndex(graph)
    refs = referring_expressions(graph, index)
    counter = iter(range(1, 10_000))

    def next_id() -> str:
        return f'f{next(counter)}'

    class_salience = {cls: max(object_salience(o) for o in objs)
                      for cls, objs in index.by_class.items()}
    classes = sorted(class_salience, key=lambda c: (-class_salience[c], c))
    mentioned = set(classes[:limits.max_classes])
    for cls in classes[:limits.max_classes]:
        plan.facts.append(Fact(next_id(), COUNT, class_name=cls, count=index.count(cls),
                               salience=class_salience[cls]))

    by_salience = sorted(graph.objects, key=lambda o: (-object_salience(o), o.id))
    places = 0
    closest = nearest(graph.objects)
    everyone = graph.objects if every_object is None else every_object
    overall = nearest(everyone) if len(everyone) >= 2 else None
    if (closest is not None and overall is not None and overall.id == closest.id
            and closest.id in refs and closest.class_name in mentioned):
        distance = stated_distance(closest.distance, closest.depth_uncertainty) \
            if closest.depth_metric else NAN
        plan.facts.append(Fact(next_id(), NEAREST, subject=closest.id, distance=distance,
                               salience=object_salience(closest),
                               subject_ref=refs[closest.id]))
        places += 1
    for obj in by_salience:
        if places >= limits.max_places:
            break
        # Only objects alone in their class are placed: "the person on the left is on the left"
        # says nothing.
        if (obj.class_name in mentioned and index.count(obj.class_name) == 1
                and clearly_in_region(obj, graph.image_width, graph.image_height)
                and not any(f.subject == obj.id for f in plan.facts)):
            plan.facts.append(Fact(next_id(), PLACE, subject=obj.id, region=obj.region,
                                   salience=object_salience(obj), subject_ref=refs[obj.id]))
            places += 1

    chosen_pairs: set[frozenset[int]] = set()
    chosen_wordings: set[tuple[str, str, str]] = set()
    ranked = sorted(graph.relations, key=lambda r: -relation_salience(r, index))
    for rel in ranked:
        if len(plan.of_kind(RELATION)) >= limits.max_relations:
            break
        subj, obj = index.by_id.get(rel.subject_id), index.by_id.get(rel.object_id)
        pair = frozenset((rel.subject_id, rel.object_id))
        if subj is None or obj is None or pair in chosen_pairs:
            continue
        if subj.class_name not in mentioned or obj.class_name not in mentioned:
            continue
        predicate = rel.predicate
        subject_ref, object_ref = refs.get(subj.id), refs.get(obj.id)
        flipped = predicate if predicate in SYMMETRIC else CONVERSE.get(predicate)
        if object_ref is None and subject_ref is not None and flipped is not None:
            # Make the uniquely named object the relation's object, the other one its
            # indefinite subject: "a person is to the right of the bus".
            subj, obj, predicate = obj, subj, flipped
            subject_ref, object_ref = None, refs[obj.id]
        if object_ref is None:
            continue
        if subject_ref is None:
            if subj.class_name == obj.class_name:
                continue      # "a person is left of the person on the right": too vague
            subject_ref = f'{article(subj.class_name)} {subj.class_name}'
        wording = (subject_ref, predicate, object_ref)
        if wording in chosen_wordings:
            continue          # "a person is right of the bus" twice says nothing new
        chosen_pairs.add(pair)
        chosen_wordings.add(wording)
        plan.facts.append(Fact(
            next_id(), RELATION, subject=subj.id, predicate=predicate, object=obj.id,
            distance=stated_distance(
                rel.distance if math.isfinite(rel.distance) else index.pair_distance(
                    subj.id, obj.id),
                math.hypot(subj.depth_uncertainty, obj.depth_uncertainty)),
            salience=relation_salience(rel, index),
            subject_ref=subject_ref, object_ref=object_ref))
    return plan

