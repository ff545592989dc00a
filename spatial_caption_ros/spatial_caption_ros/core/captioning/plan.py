"""Content planning: which facts of the scene graph a caption states (code decides, not the LLM).

A plan is an ordered list of facts with ids (f1, f2, ...): class counts (exact only when the
detector is sure), where the main objects are, how far an object is (metric graphs: the one
whose distance the graph knows best, worded as precisely as the graph knows it; a superlative
only within a class, "the nearest car", never "the nearest object"),
the most informative relations (support and contact first, different classes first, never one
that the stated placements already imply), and the place the objects suggest ("looks like a
kitchen", an inference from the commonsense knowledge). Every fact is true of the graph by
construction (semantics.py decides), and every object it names has a referring expression that
picks out exactly that object ("the bus", "the person on the left", "the nearest car"), or, as the
subject of a relation only, an indefinite one ("a person is to the left of the bus").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
import math

from spatial_caption_ros.core.captioning.context import infer_place
from spatial_caption_ros.core.captioning.language import (
    ABOUT_REL_TOL, AT_LEAST, distance_words, REGION_PHRASE_CELLS, region_cell, region_matches,
    region_phrase, article, ROUGH_REL_TOL, SEVERAL)
from spatial_caption_ros.core.captioning.semantics import GraphIndex, nearest
from spatial_caption_ros.core.perception.depth.geometric import truncation
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import (
    ABOVE, BEHIND, BELOW, CONTAINS, CONVERSE, IN_FRONT_OF, INSIDE, LEFT_OF, NAN, NEXT_TO, ON,
    Relation, RIGHT_OF, SceneGraph, SceneObject, STYLE_DETAILED, STYLE_JSON, SYMMETRIC)

# Placements ("the bus is on the left") are stated only when the box centre lies at least this
# fraction of the image size inside the grid lines that the phrase depends on: box centres of a
# detector are off by a few percent of the image, so a centre next to a grid line is a coin flip
# (the same idea as the graph's margins for left/right). Chosen after seeing near-line
# placements judged false on the dev split; not fitted to any item.
REGION_MARGIN = 0.05

COUNT = 'count'
PLACE = 'place'
RELATION = 'relation'
DISTANCE = 'distance'
SCENE = 'scene'

# A stated distance covers the graph's value +- this many standard deviations (about 95 % when
# the graph's uncertainty is right): the caption's precision is what the graph knows.
DISTANCE_SIGMAS = 2.0
# With ASSUMED intrinsics (no calibration, no EXIF) the scale of every metric value rests on the
# assumed field of view; consumer cameras range from about 40 to 75 degrees horizontally, which
# is roughly this relative standard deviation of the focal length around the 60 degree default.
ASSUMED_FOCAL_REL_STD = 0.2
# Robot-frame offsets smaller than this fraction of the distance ahead are not stated: within
# the 10 % an "about" distance ahead already allows.
LATERAL_MIN = 0.1
# From this many objects of a class on, a count is "several": detectors miss occluded members of
# groups and crowds, so an exact number would be a guess.
CROWD_MIN = 5
# A less confident detection overlapping a captioned one of its class this much (box IoU) is the
# same object detected twice, not a doubt about the count (the usual NMS overlap threshold).
DUPLICATE_IOU = 0.5
# Predicates by how much they tell beyond the placements (lower first): support and containment,
# then contact and depth order, then image directions.
_PREDICATE_RANK = {ON: 0, INSIDE: 0, CONTAINS: 0, NEXT_TO: 1, IN_FRONT_OF: 2, BEHIND: 2}
# The relations a short caption states: support and containment.
SHORT_PREDICATES = frozenset({ON, INSIDE, CONTAINS})
_DIRECTIONS = {LEFT_OF: (None, -1), RIGHT_OF: (None, 1), ABOVE: (-1, None), BELOW: (1, None)}


@dataclass(frozen=True)
class Fact:
    """One statement a caption may make, with the graph ids it is about."""

    id: str
    kind: str                       # count | place | relation | distance | scene
    class_name: str = ''            # count; scene: the place
    count: int = 0                  # count
    subject: int = -1               # place, relation, distance
    predicate: str = ''             # relation
    object: int = -1                # relation
    region: str = ''                # place: the graph region of the subject
    distance: float = NAN           # relation: between the objects; distance: from the camera
    salience: float = 0.0
    subject_ref: str = ''           # referring expression of the subject
    object_ref: str = ''            # referring expression of the object
    quantifier: str = ''            # count: '' (exact) | at least | several
    distance_words: str = ''        # how the distance is stated ("about 12 m"), '' for none
    support: tuple[str, ...] = ()   # scene: the classes the inference rests on
    robot_frame: bool = False       # distance: distance_words says "ahead[, ... to the left]"
    depth_gap: bool = False         # relation: `distance` is the gap in depth ("3 m behind")

    def to_dict(self) -> dict:
        out = {'id': self.id, 'type': self.kind}
        if self.kind == COUNT:
            out.update({'class': self.class_name, 'count': self.count})
            if self.quantifier:
                out['quantifier'] = self.quantifier
        elif self.kind == SCENE:
            out.update({'place': self.class_name, 'because_of': list(self.support)})
        else:
            out.update({'subject': self.subject, 'subject_ref': self.subject_ref})
        if self.kind == PLACE:
            out['region'] = self.region
        if self.kind == RELATION:
            out.update({'predicate': self.predicate, 'object': self.object,
                        'object_ref': self.object_ref})
        if self.kind in (RELATION, DISTANCE):
            out['distance_m'] = round(self.distance, 2) if math.isfinite(self.distance) else None
            out['distance_stated'] = self.distance_words or None
        if self.kind == RELATION and self.distance_words:
            out['distance_between'] = 'depths' if self.depth_gap else 'centres'
        return out


@dataclass
class ContentPlan:
    """The facts of one caption, in the order the template states them."""

    style: str
    facts: list[Fact] = field(default_factory=list)
    empty: bool = False             # the graph has no objects
    assumed: bool = False           # distances rest on assumed intrinsics ("roughly")

    def of_kind(self, kind: str) -> list[Fact]:
        return [f for f in self.facts if f.kind == kind]


@dataclass(frozen=True)
class PlanLimits:
    """How much one caption says."""

    max_classes: int = 3
    max_places: int = 1
    max_relations: int = 1
    scene: bool = True              # state the place the objects suggest
    robot_frame: bool = False       # distances as "12 m ahead, 2 m to the left" (robot styles)
    # Only relations with these predicates (None: any). Short captions keep support and
    # containment ("the cup is on the table"), the relations a person puts in one sentence.
    predicates: frozenset[str] | None = None
    # Place an object only when the caption is about that one object ("there is a pizza; the
    # pizza is in the center"); with several, the inventory is the summary.
    place_only_single: bool = False


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


def referring_expressions(graph: SceneGraph, index: GraphIndex | None = None,
                          every_object: list[SceneObject] | None = None) -> dict[int, str]:
    """Object id -> a phrase that picks out exactly that object (objects without one are absent).

    Tried in order: the class alone ("the bus"); a column, row or cell of the 3x3 grid that no
    other object of the class shares ("the person on the left"); "the nearest <class>" when its
    depth is clearly the smallest of its class, among `every_object` of the class too (all
    detections, when `graph` is a confident view: a weaker detection may be nearer).
    """
    index = index or GraphIndex(graph)
    everyone = graph.objects if every_object is None else every_object
    refs: dict[int, str] = {}
    for cls, objs in index.by_class.items():
        if len(objs) == 1:
            refs[objs[0].id] = f'the {cls}'
            continue
        closest = class_nearest(cls, objs, everyone)
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


def class_nearest(cls: str, objs: list[SceneObject],
                  every_object: list[SceneObject]) -> SceneObject | None:
    """The clearly nearest of `objs` (class `cls`) if it is so among all detections of it too.

    A superlative is only said within a class ("the nearest car"), never over everything ("the
    nearest object is a car"): the graph cannot know about objects the detector missed, and a
    missed object of any class nearer than the nearest detection is common (occluded, cut by the
    border, an unusual class), while the nearest member of a detected class is the one the
    detector sees best (biggest, least occluded).
    """
    closest = nearest(objs)
    overall = nearest([o for o in every_object if o.class_name == cls])
    if closest is None or overall is None or overall.id != closest.id:
        return None
    return closest


def relative_distance_sigma(obj: SceneObject) -> float:
    """The graph's one-sigma uncertainty of `obj`'s distance relative to it (inf: unknown)."""
    if not (obj.depth_metric and math.isfinite(obj.distance) and obj.depth > 0
            and math.isfinite(obj.depth_uncertainty)):
        return math.inf
    return obj.depth_uncertainty / obj.depth


def object_distance_words(obj: SceneObject, assumed: bool) -> str:
    """How far `obj` is from the camera, worded to the graph's precision ('' when unknown)."""
    if not (obj.depth_metric and math.isfinite(obj.distance) and obj.depth > 0
            and math.isfinite(obj.depth_uncertainty)):
        return ''
    sigma = obj.depth_uncertainty * obj.distance / obj.depth     # the depth's share of the ray
    return _worded(obj.distance, sigma, assumed)


def robot_frame_words(obj: SceneObject, assumed: bool) -> str:
    """'about 12 m ahead, 2 m to the left', each part worded to the graph's precision.

    '' when the part ahead cannot be stated.
    The depth's sigma is the sigma of the part ahead; the lateral offset is depth times the
    bearing, whose own error (a few pixels of box centre) is small beside the depth's, so it
    has the same relative sigma. An offset that cannot be stated is left out.
    """
    if obj.position is None or not math.isfinite(relative_distance_sigma(obj)):
        return ''
    x, z = obj.position[0], obj.position[2]
    ahead = _worded(z, obj.depth_uncertainty, assumed)
    if not ahead:
        return ''
    # An offset below LATERAL_MIN of the part ahead is within the precision of "ahead" itself
    # (and would round to "0 m"): "about 1.2 m ahead" says it.
    side = '' if abs(x) < LATERAL_MIN * abs(z) else _worded(
        abs(x), abs(x) * relative_distance_sigma(obj), assumed)
    if not side:
        return f'{ahead} ahead'
    return f'{ahead} ahead, {side} to the {"left" if x < 0 else "right"}'


def pair_distance_words(metres: float, a: SceneObject, b: SceneObject, assumed: bool) -> str:
    """A distance between two objects, worded to the precision of their depths."""
    return _worded(metres, math.hypot(a.depth_uncertainty, b.depth_uncertainty), assumed)


def _worded(metres: float, sigma: float, assumed: bool) -> str:
    if assumed and math.isfinite(metres):
        sigma = math.hypot(sigma, ASSUMED_FOCAL_REL_STD * metres)
    return distance_words(metres, DISTANCE_SIGMAS * sigma, assumed)


def count_quantifier(cls: str, objs: list[SceneObject], every_object: list[SceneObject],
                     width: int, height: int) -> str:
    """'' when the detector is sure of the count of `cls`, else 'at least' or 'several'.

    Unsure: a less confident detection of the class exists beyond the captioned view that is not
    the same object seen twice (box IoU >= DUPLICATE_IOU with a captioned one), a group of two or
    more reaches the image border (members there may show only as slivers the detector misses),
    or the class forms a group of CROWD_MIN or more (occluded members are missed). One object
    cut by the border is still one object in the image: "a zebra", not "at least one zebra".
    """
    if len(objs) >= CROWD_MIN:
        return SEVERAL
    ids = {o.id for o in objs}
    unsure_detections = any(
        o.class_name == cls and o.id not in ids
        and all(o.box.iou(c.box) < DUPLICATE_IOU for c in objs) for o in every_object)
    cut = len(objs) >= 2 and width > 0 and height > 0 and any(
        any(truncation(o.box, width, height)) for o in objs)
    return AT_LEAST if unsure_detections or cut else ''


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


def limits_for(style: str, max_relations: int, detailed_max_relations: int,
               scene: bool = True) -> PlanLimits:
    """How much a caption of each style says.

    Short: one sentence a person would say at a glance, about as long as a human caption
    (COCO's are 10 words on average): up to three classes counted, the place they suggest, a
    distance on metric graphs, up to `max_relations` support or containment relations ("the
    pizza is on the dining table") and a placement only for a caption about one object. Image
    directions, depth order, adjacency and the placements of several objects go to the
    detailed style (and the json style's facts): in one sentence they doubled its length and
    read as a list ("the tv is in the center; the tv is to the left of the person").
    Detailed: six classes, three placements, `detailed_max_relations` relations of any kind.
    Json (the style meant for robots and agents; its text is a short sentence): robot-frame
    distances, and relations of any kind and a placement, as facts an agent can filter.
    """
    if style == STYLE_JSON:
        return PlanLimits(max_classes=3, max_places=1, max_relations=max_relations, scene=scene,
                          robot_frame=True)
    if style == STYLE_DETAILED:
        return PlanLimits(max_classes=6, max_places=3, max_relations=detailed_max_relations,
                          scene=scene)
    return PlanLimits(max_classes=3, max_places=1, max_relations=max_relations, scene=scene,
                      predicates=SHORT_PREDICATES, place_only_single=True)


def plan_caption(graph: SceneGraph, style: str, limits: PlanLimits,
                 every_object: list[SceneObject] | None = None,
                 knowledge: KnowledgeBase | None = None) -> ContentPlan:
    """Choose the facts of one caption from the graph, most informative first.

    `every_object`: all detections when `graph` is a confident view of a larger graph. An
    object is called the nearest of its class only if it is also so among all detections of
    the class (a less confident detection may be nearer); a count
    is exact only when no less confident detection of the class exists. `knowledge`: for the
    scene context (none without it).
    """
    assumed = bool(graph.intrinsics_assumed)
    plan = ContentPlan(style=style, assumed=assumed)
    if not graph.objects:
        plan.empty = True
        return plan
    index = GraphIndex(graph)
    everyone = graph.objects if every_object is None else every_object
    refs = referring_expressions(graph, index, everyone)
    counter = iter(range(1, 10_000))

    def next_id() -> str:
        return f'f{next(counter)}'

    class_salience = {cls: max(object_salience(o) for o in objs)
                      for cls, objs in index.by_class.items()}
    classes = sorted(class_salience, key=lambda c: (-class_salience[c], c))
    mentioned = set(classes[:limits.max_classes])
    for cls in classes[:limits.max_classes]:
        objs = index.by_class[cls]
        plan.facts.append(Fact(next_id(), COUNT, class_name=cls, count=len(objs),
                               salience=class_salience[cls], quantifier=count_quantifier(
                                   cls, objs, everyone, graph.image_width, graph.image_height)))

    by_salience = sorted(graph.objects, key=lambda o: (-object_salience(o), o.id))
    places = 0
    if any(o.depth_metric for o in graph.objects):
        # A metric graph's caption says how far one object is: the one whose distance the graph
        # knows best (smallest relative sigma; geometric depth is far more precise for some
        # objects than for others, so the most salient one is often a poor choice), among the
        # mentioned classes first, then any (every metric caption with objects states a
        # distance when the graph knows one to the stated precision; objects without metric
        # depth in the same graph do not stop the others'). By the wording the precision
        # allows (tiers: "about", a range, a lower bound), and within a tier a uniquely named
        # object first: "the car in the center is 7 to 15 m away" tells a robot which car, "a
        # car is 9 to 18 m away" does not (and the labels cannot check it); then the relative
        # sigma. Named uniquely when it can be ("the bus", "the nearest car"), else
        # indefinitely ("a car is 11 to 19 m away": true of that car).
        worded = [(obj, robot_frame_words(obj, assumed) if limits.robot_frame
                   else object_distance_words(obj, assumed)) for obj in graph.objects]
        def rank(obj: SceneObject) -> tuple:
            rel = relative_distance_sigma(obj)
            about = DISTANCE_SIGMAS * rel <= ABOUT_REL_TOL
            tier = 0 if about else 1 if DISTANCE_SIGMAS * rel <= ROUGH_REL_TOL else 2
            return (obj.class_name not in mentioned, tier, obj.id not in refs, rel, obj.id)

        worded = sorted([(o, w) for o, w in worded if w], key=lambda ow: rank(ow[0]))
        if worded:
            obj, words = worded[0]
            ref = refs.get(obj.id) or f'{article(obj.class_name)} {obj.class_name}'
            plan.facts.append(Fact(next_id(), DISTANCE, subject=obj.id, distance=obj.distance,
                                   salience=object_salience(obj), subject_ref=ref,
                                   distance_words=words, robot_frame=limits.robot_frame))
            places += 1
    # one object, and surely one: "at least one elephant; the elephant is in the center"
    # would name as unique what the count leaves open
    counts = plan.of_kind(COUNT)
    single = len(graph.objects) == 1 and len(counts) == 1 and not counts[0].quantifier
    for obj in by_salience:
        if places >= limits.max_places or (limits.place_only_single and not single):
            break
        # Only objects alone in their class are placed: "the person on the left is on the left"
        # says nothing.
        if (obj.class_name in mentioned and index.count(obj.class_name) == 1
                and clearly_in_region(obj, graph.image_width, graph.image_height)
                and not any(f.subject == obj.id for f in plan.of_kind(PLACE))):
            plan.facts.append(Fact(next_id(), PLACE, subject=obj.id, region=obj.region,
                                   salience=object_salience(obj), subject_ref=refs[obj.id]))
            places += 1
    _plan_relations(plan, graph, index, refs, mentioned, limits, next_id)
    if limits.scene and knowledge is not None:
        inferred = infer_place([o.class_name for o in graph.objects], knowledge)
        if inferred is not None:
            plan.facts.append(Fact(next_id(), SCENE, class_name=inferred[0],
                                   support=tuple(inferred[1])))
    return plan


def stated_cells(plan: ContentPlan, refs: dict[int, str],
                 index: GraphIndex) -> dict[int, tuple[int | None, int | None]]:
    """Object id -> the (row, column) the caption already states for it, None where it does not.

    From referring expressions ("the person on the left": column 0) and placements.
    """
    out: dict[int, tuple[int | None, int | None]] = {}
    for obj_id, ref in refs.items():
        for phrase, cell in REGION_PHRASE_CELLS.items():
            if ref.endswith(' ' + phrase):
                out[obj_id] = cell
    for fact in plan.of_kind(PLACE):
        out[fact.subject] = region_cell(index.by_id[fact.subject].region)
    return out


def implied_by_cells(predicate: str, a: tuple | None, b: tuple | None) -> bool:
    """An image direction the stated cells already say.

    "the person on the left" is left of "the bus in the center": saying so adds nothing.
    """
    if predicate not in _DIRECTIONS or a is None or b is None:
        return False
    row_sign, col_sign = _DIRECTIONS[predicate]
    axis, sign = (1, col_sign) if col_sign is not None else (0, row_sign)
    if a[axis] is None or b[axis] is None:
        return False
    return (b[axis] - a[axis]) * sign < 0


def implied_by_superlative(predicate: str, subj: SceneObject, obj: SceneObject,
                           subject_ref: str, object_ref: str) -> bool:
    """A depth order between two objects of a class that "the nearest <class>" already says.

    "the nearest car is in front of the car on the left": the superlative said it, and a
    comparative beside it only repeats it.
    """
    if predicate not in (IN_FRONT_OF, BEHIND) or subj.class_name != obj.class_name:
        return False
    nearer = subject_ref if predicate == IN_FRONT_OF else object_ref
    return nearer.startswith('the nearest ')


def _plan_relations(plan: ContentPlan, graph: SceneGraph, index: GraphIndex,
                    refs: dict[int, str], mentioned: set[str], limits: PlanLimits,
                    next_id) -> None:
    """Add the most informative relations: support/contact first, different classes first."""
    cells = stated_cells(plan, refs, index)
    chosen_pairs: set[frozenset[int]] = set()
    chosen_wordings: set[tuple[str, str, str]] = set()

    def rank(rel: Relation) -> tuple:
        subj, obj = index.by_id.get(rel.subject_id), index.by_id.get(rel.object_id)
        same = subj is not None and obj is not None and subj.class_name == obj.class_name
        return (same, _PREDICATE_RANK.get(rel.predicate, 3), -relation_salience(rel, index))

    for rel in sorted(graph.relations, key=rank):
        if len(plan.of_kind(RELATION)) >= limits.max_relations:
            break
        subj, obj = index.by_id.get(rel.subject_id), index.by_id.get(rel.object_id)
        pair = frozenset((rel.subject_id, rel.object_id))
        if subj is None or obj is None or pair in chosen_pairs:
            continue
        if subj.class_name not in mentioned or obj.class_name not in mentioned:
            continue
        if limits.predicates is not None and rel.predicate not in limits.predicates:
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
        elif implied_by_cells(predicate, cells.get(subj.id), cells.get(obj.id)):
            continue          # "the car on the left is left of the car on the right"
        if implied_by_superlative(predicate, subj, obj, subject_ref, object_ref):
            continue          # "the nearest car is in front of the car on the left"
        wording = (subject_ref, predicate, object_ref)
        if wording in chosen_wordings:
            continue          # "a person is right of the bus" twice says nothing new
        chosen_pairs.add(pair)
        chosen_wordings.add(wording)
        # Depth order is measured by the gap in depth ("the car is 3 to 6 m behind the
        # person"): the distance between the centres would read as that gap and is not it.
        gap = predicate in (IN_FRONT_OF, BEHIND)
        metres = (index.depth_gap(subj.id, obj.id) if gap else rel.distance
                  if math.isfinite(rel.distance) else index.pair_distance(subj.id, obj.id))
        plan.facts.append(Fact(
            next_id(), RELATION, subject=subj.id, predicate=predicate, object=obj.id,
            distance=metres, salience=relation_salience(rel, index),
            subject_ref=subject_ref, object_ref=object_ref, depth_gap=gap,
            distance_words=pair_distance_words(metres, subj, obj, plan.assumed)))
