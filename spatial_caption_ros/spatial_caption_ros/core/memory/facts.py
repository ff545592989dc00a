"""Memory facts a caption may state, each checkable against the memory that produced it.

`memory_facts` turns what one update did into short statements ("the cup first seen 10 s ago is
still there", "a chair that was here is gone", "the book has moved 0.4 m", "this place was seen
12 s ago"); every fact names its evidence (object id, stamps) and `check_fact` re-derives it from
the memory, so a caption only states facts the memory can back.
"""

from __future__ import annotations

from dataclasses import dataclass

from spatial_caption_ros.core.params import param

from spatial_caption_ros.core.memory.keyframes import Retrieval
from spatial_caption_ros.core.memory.store import GONE, MOVED, ObjectMemory, PRESENT, \
    UpdateResult

STILL_THERE = 'still_there'
FACT_GONE = GONE
FACT_MOVED = MOVED
PLACE_SEEN = 'place_seen'
# Sightings closer than this to the current one do not make "seen before" news.
MIN_AGE_S = 1.0


@dataclass(frozen=True)
class MemoryFactsConfig:
    """The caption node's switch for memory facts (the memory node publishes them)."""

    memory_facts: bool = param(
        False, 'Append the facts of the memory node about the captioned frame (memory/facts, same '
        'stamp) to the caption, e.g. "the cup first seen 10 s ago is still there".')


def with_memory_facts(text: str, statements: list[str]) -> str:
    """A caption followed by the memory's statements about the same frame."""
    if not statements:
        return text
    facts = '; '.join(statements)
    return f'{text.rstrip()} From memory: {facts[0].upper()}{facts[1:]}.'


@dataclass(frozen=True)
class MemoryFact:
    """One statement with its evidence."""

    kind: str
    text: str
    object_id: int = 0          # 0 for place facts
    stamp_ns: int = 0           # the update that produced it
    since_ns: int = 0           # the earlier sighting or keyframe it refers to


def _age(now_ns: int, then_ns: int) -> str:
    s = (now_ns - then_ns) / 1e9
    return f'{s:.0f} s' if s < 120 else f'{s / 60:.0f} min'


def memory_facts(memory: ObjectMemory, result: UpdateResult, max_age_s: float,
                 place: Retrieval | None = None, max_facts: int = 3) -> list[MemoryFact]:
    """Facts of one update: changes first (moved, gone), then re-sightings, then the place."""
    now = result.stamp_ns
    horizon = now - int(max_age_s * 1e9)
    facts: list[MemoryFact] = []
    for change in result.changes:
        obj = change.object
        if change.kind == MOVED:
            facts.append(MemoryFact(FACT_MOVED, f'the {obj.class_name} has moved '
                                    f'{change.distance:.1f} m', obj.id, now, now))
        elif change.kind == GONE:
            facts.append(MemoryFact(FACT_GONE, f'a {obj.class_name} that was here is gone',
                                    obj.id, now, obj.last_seen_ns))
    moved = {f.object_id for f in facts}
    for _, oid in result.associations:
        obj = memory.objects.get(oid)
        if obj is None or oid in moved or obj.state != PRESENT:
            continue
        if horizon <= obj.first_seen_ns <= now - int(MIN_AGE_S * 1e9):
            facts.append(MemoryFact(STILL_THERE, f'the {obj.class_name} first seen '
                                    f'{_age(now, obj.first_seen_ns)} ago is still there', oid,
                                    now, obj.first_seen_ns))
    if place is not None and place.verified is not None and \
            place.verified.stamp_ns >= horizon:
        facts.append(MemoryFact(PLACE_SEEN, f'this place was seen '
                                f'{_age(now, place.verified.stamp_ns)} ago', 0, now,
                                place.verified.stamp_ns))
    return facts[:max_facts]


def check_fact(memory: ObjectMemory, fact: MemoryFact) -> bool:
    """Whether the memory still backs the fact (place facts: the keyframe stamp is earlier)."""
    if fact.kind == PLACE_SEEN:
        return fact.since_ns < fact.stamp_ns
    obj = memory.objects.get(fact.object_id)
    if obj is None:
        return False
    if fact.kind == STILL_THERE:
        return obj.state == PRESENT and obj.first_seen_ns == fact.since_ns and \
            obj.last_seen_ns >= fact.stamp_ns
    if fact.kind == FACT_GONE and obj.state != GONE:
        return False
    # the change kinds and the fact kinds are the same words (moved, gone)
    return any(c.kind == fact.kind and c.object.id == fact.object_id
               and c.stamp_ns == fact.stamp_ns for c in reversed(memory.changes))
