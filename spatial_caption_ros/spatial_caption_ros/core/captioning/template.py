"""Realisation: the wordings of each planned fact, and the deterministic template caption.

Each fact has a list of wordings (`clause_options`); the first is the canonical one the template
writes, and the LLM grammar (grammar.py) lets the model choose among all of them and among orders
of the facts. Every wording uses only phrases the verifier reads (language.py), so a caption built
from them verifies by construction; the verifier still checks every published caption.

Short style: one sentence, the counts then the other facts joined by "; ".
Detailed style: a paragraph, one sentence per fact.
"""

from __future__ import annotations

from spatial_caption_ros.core.captioning.language import (
    article, capitalise, counted, join_list, region_phrase, WRITTEN_PREDICATES)
from spatial_caption_ros.core.captioning.plan import (
    ContentPlan, COUNT, DISTANCE, Fact, PLACE, RELATION, SCENE)
from spatial_caption_ros.core.types import (
    CONTAINS, CONVERSE, NEAR, NEXT_TO, OVERLAPPING, STYLE_DETAILED, SYMMETRIC)

EMPTY_CAPTION = 'No objects detected.'
# The class list keeps the planned order (most salient first) in every wording. The grammar
# used to offer every order of up to three classes: on the dev split (2026-12-07) Gemma moved the
# most salient class back in 4 of 28 COCO captions ("a tv and a person" -> "a person and a tv"),
# and each move lowered CIDEr against the human captions, which name the salient object first.
# Every opener makes a full sentence: "there is a bus and four people", "a bus and four people
# are in view", "the image shows ...". A bare noun list ("A bus and four people.") is a fragment,
# which the verifier rejects.
COUNT_OPENERS = ('there', 'in view', 'shows')
# How the counts and the scene context may be said in one sentence.
SCENE_OPENERS = ('there', 'looks')


def _singular(facts: list[Fact]) -> bool:
    """The verb agrees with the first item: "there is a bus and four people"."""
    return facts[0].count == 1 and facts[0].quantifier != 'several'


def count_clause(facts: list[Fact], opener: str = 'there') -> str:
    """The counts as a sentence: 'there is a bus and four people' and others (COUNT_OPENERS)."""
    items = join_list([counted(f.class_name, f.count, f.quantifier) for f in facts])
    if opener == 'there':
        return f'there {"is" if _singular(facts) else "are"} {items}'
    if opener == 'shows':
        return f'the image shows {items}'
    if opener == 'in view':
        plural = len(facts) > 1 or not _singular(facts)
        return f'{items} {"are" if plural else "is"} in view'
    raise ValueError(f'unknown count opener {opener!r}')


def count_options(facts: list[Fact], openers: tuple[str, ...] = COUNT_OPENERS) -> list[str]:
    """Every wording of the counts: one per opener, the classes in planned order."""
    return [count_clause(facts, opener) for opener in openers]


def scene_count_options(facts: list[Fact], scene: Fact,
                        openers: tuple[str, ...] = SCENE_OPENERS) -> list[str]:
    """The counts and the scene context in one full sentence (classes in planned order).

    "there is a bus and three people in what looks like a street", "this looks like a street
    with a bus and three people".
    """
    place = f'{article(scene.class_name)} {scene.class_name}'
    items = join_list([counted(f.class_name, f.count, f.quantifier) for f in facts])
    return [f'{count_clause(facts)} in what looks like {place}' if opener == 'there'
            else f'this looks like {place} with {items}' for opener in openers]


def _distance_suffixes(words: str) -> list[str]:
    """'(centres about 6 m apart)': the distance between the objects' 3D centres."""
    if not words:
        return ['']
    return [f' (centres {words} apart)', f', centres {words} apart']


def clause_options(fact: Fact) -> list[str]:
    """The wordings of one non-count fact, canonical first."""
    s, o = fact.subject_ref, fact.object_ref
    if fact.kind == PLACE:
        return [f'{s} is {region_phrase(fact.region)}']
    if fact.kind == DISTANCE:
        d = fact.distance_words
        if fact.robot_frame:
            return [f'{s} is {d}']
        return [f'{s} is {d} away', f'{s} is {d} from the camera']
    if fact.kind == SCENE:
        place = f'{article(fact.class_name)} {fact.class_name}'
        return [f'it looks like {place}', f'the scene looks like {place}',
                f'this looks like {place}']
    if fact.kind != RELATION:
        raise ValueError(f'no clause for a {fact.kind} fact')
    p = fact.predicate
    if fact.depth_gap and fact.distance_words:
        # the gap in depth is part of the comparison: "the car is 3 to 6 m behind the person"
        d = fact.distance_words
        out = [f'{s} is {d} {w} {o}' for w in WRITTEN_PREDICATES[p]]
        if not s.startswith(('a ', 'an ')):
            out += [f'{o} is {d} {w} {s}' for w in WRITTEN_PREDICATES[CONVERSE[p]]]
        return out
    bases = _relation_bases(s, p, o)
    converse = p if p in SYMMETRIC else CONVERSE.get(p)
    if converse is not None and not s.startswith(('a ', 'an ')):
        bases += _relation_bases(o, converse, s)
    if p in (NEXT_TO, NEAR):
        bases += [f'{s} and {o} are {w} each other' for w in WRITTEN_PREDICATES[p]]
    if p == OVERLAPPING:
        bases.append(f'{s} and {o} overlap')
    return [b + x for x in _distance_suffixes(fact.distance_words) for b in bases]


def _relation_bases(s: str, predicate: str, o: str) -> list[str]:
    if predicate == CONTAINS:
        return [f'{s} contains {o}']
    out = [f'{s} is {w} {o}' for w in WRITTEN_PREDICATES[predicate]]
    if predicate == OVERLAPPING:
        out.append(f'{s} overlaps {o}')
    return out


def other_facts(plan: ContentPlan) -> list[Fact]:
    """The facts after the counts, in planned order."""
    return [f for f in plan.facts if f.kind != COUNT]


def realise(plan: ContentPlan) -> str:
    """The template caption of a plan (canonical wording, planned order)."""
    if plan.empty:
        return EMPTY_CAPTION
    counts = plan.of_kind(COUNT)
    rest = [clause_options(f)[0] for f in other_facts(plan)]
    if plan.style == STYLE_DETAILED:
        sentences = [count_clause(counts)] + rest
        return ' '.join(capitalise(s) + '.' for s in sentences)
    return capitalise('; '.join([count_clause(counts)] + rest)) + '.'
