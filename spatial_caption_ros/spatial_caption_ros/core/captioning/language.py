"""English helpers for captions: plurals, counts, articles and object references."""

from __future__ import annotations

from spatial_caption_ros.core.types import SceneGraph, SceneObject

_IRREGULAR_PLURALS = {
    'person': 'people', 'mouse': 'mice', 'sheep': 'sheep', 'skis': 'skis', 'scissors': 'scissors',
    'knife': 'knives', 'broccoli': 'broccoli', 'hair drier': 'hair driers', 'couch': 'couches',
    'bus': 'buses', 'glass': 'glasses', 'wine glass': 'wine glasses', 'sandwich': 'sandwiches',
    'bench': 'benches', 'tv': 'tvs', 'cell phone': 'cell phones',
}
_NUMBER_WORDS = ('no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine',
                 'ten', 'eleven', 'twelve')
REGION_PHRASES = {
    'top-left': 'at the top left', 'top': 'at the top', 'top-right': 'at the top right',
    'left': 'on the left', 'center': 'in the center', 'right': 'on the right',
    'bottom-left': 'at the bottom left', 'bottom': 'at the bottom',
    'bottom-right': 'at the bottom right',
}


def plural(noun: str) -> str:
    """Plural of a class name ('person' -> 'people', 'bus' -> 'buses')."""
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(('s', 'x', 'ch', 'sh')):
        return noun + 'es'
    if noun.endswith('y') and noun[-2:-1] not in 'aeiou':
        return noun[:-1] + 'ies'
    return noun + 's'


def number_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def article(noun: str) -> str:
    return 'an' if noun[:1] in 'aeiou' else 'a'


def counted(noun: str, n: int) -> str:
    """'a bus', 'four people'."""
    if n == 1:
        return f'{article(noun)} {noun}'
    return f'{number_word(n)} {plural(noun)}'


def join_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if not items:
        return ''
    if len(items) == 1:
        return items[0]
    return ', '.join(items[:-1]) + ' and ' + items[-1]


def reference(obj: SceneObject, graph: SceneGraph) -> str | None:
    """A phrase that picks out exactly this object in the graph, or None if none is simple.

    'the bus' when it is the only one of its class; 'the person on the left' when it is the only
    one of its class in its image region.
    """
    if obj.class_count == 1:
        return f'the {obj.class_name}'
    same_region = [o for o in graph.objects
                   if o.class_name == obj.class_name and o.region == obj.region]
    if len(same_region) == 1 and obj.region in REGION_PHRASES:
        return f'the {obj.class_name} {REGION_PHRASES[obj.region]}'
    return None
