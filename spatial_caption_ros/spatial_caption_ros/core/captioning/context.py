"""Scene context inferred from commonsense knowledge: "it looks like a kitchen".

The knowledge base says where objects of a class are usually found (ConceptNet's AtLocation:
oven -> kitchen, toilet -> bathroom, traffic light -> street). A place is inferred when at least
MIN_SUPPORT different detected classes are found there, no other place has as many, and one of
them is an ANCHOR of the place: an object too big to be carried around (the knowledge's size
prior at least ANCHOR_MIN_SIZE) that is typical of this place only. An oven alone does not make
a kitchen, an oven and a refrigerator do; a fork and broccoli do not (food and cutlery travel:
lunch boxes, picnics, restaurants), nor does a dining table with bowls (kitchen or dining room?
a patio table too). It is stated as an inference
("looks like"), and the verifier checks the same condition against the graph's classes, so the
claim is exactly "these objects are typical of a kitchen", never "this is a kitchen".
"""

from __future__ import annotations

from collections.abc import Iterable

from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase

MIN_SUPPORT = 2
# Objects whose typical largest side (knowledge size prior) is at least this are furniture,
# appliances, vehicles: they stay where they belong, so they can anchor a place; smaller ones
# (cups, forks, food, laptops) are carried from place to place.
ANCHOR_MIN_SIZE = 0.5
# Places a caption may name: rooms and outdoor scenes that a set of objects characterises. Other
# AtLocation values (table, sky, hand of a person) are where one object is, not a scene.
PLACES = ('kitchen', 'bathroom', 'bedroom', 'living room', 'dining room', 'office', 'street',
          'road', 'farm', 'beach', 'park', 'airport', 'harbor', 'zoo', 'savanna',
          'tennis court', 'baseball field', 'ski slope', 'train station')

_knowledge: KnowledgeBase | None = None


def default_knowledge() -> KnowledgeBase:
    """The shipped knowledge file, loaded once."""
    global _knowledge
    if _knowledge is None:
        _knowledge = KnowledgeBase.load()
    return _knowledge


def places_of(class_name: str, knowledge: KnowledgeBase) -> set[str]:
    """The PLACES where objects of this class are usually found ("kitchen counter": kitchen)."""
    out = set()
    for relation, value in knowledge.facts(class_name):
        if relation != 'AtLocation':
            continue
        for place in PLACES:
            if value == place or value.startswith(place + ' '):
                out.add(place)
    return out


def support(class_names: Iterable[str], knowledge: KnowledgeBase) -> dict[str, set[str]]:
    """Place -> the given classes usually found there."""
    out: dict[str, set[str]] = {}
    for cls in set(class_names):
        for place in places_of(cls, knowledge):
            out.setdefault(place, set()).add(cls)
    return out


def is_anchor(class_name: str, place: str, knowledge: KnowledgeBase) -> bool:
    """Objects of this class are big (not carried around) and typical of `place` only."""
    prior = knowledge.size_prior(class_name)
    big = prior is not None and max(prior.height, prior.width, prior.length) >= ANCHOR_MIN_SIZE
    return big and places_of(class_name, knowledge) == {place}


def infer_place(class_names: Iterable[str],
                knowledge: KnowledgeBase) -> tuple[str, list[str]] | None:
    """(place, supporting classes) when one place is best supported, anchor included.

    At least MIN_SUPPORT classes, more than any other place has, one of them an anchor.
    """
    found = support(class_names, knowledge)
    ranked = sorted(found.items(), key=lambda kv: -len(kv[1]))
    if not ranked or len(ranked[0][1]) < MIN_SUPPORT:
        return None
    if len(ranked) > 1 and len(ranked[1][1]) == len(ranked[0][1]):
        return None                         # two places fit as well: say neither
    place, classes = ranked[0]
    if not any(is_anchor(c, place, knowledge) for c in classes):
        return None                         # only portable things: they travel
    return place, sorted(classes)


def place_supported(place: str, class_names: Iterable[str], knowledge: KnowledgeBase) -> bool:
    """The verifier's test of "looks like a <place>": the inference above names this place."""
    inferred = infer_place(class_names, knowledge)
    return inferred is not None and inferred[0] == place
