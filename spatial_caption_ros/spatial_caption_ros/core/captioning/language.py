"""The English of captions: plurals, counts, region and predicate phrases, distances, nouns.

One vocabulary serves both directions: the realiser (template and LLM grammar) writes only phrases
from these tables, and the verifier reads captions with the same tables, so everything a
generator may say is something the verifier understands.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import re

from spatial_caption_ros.core.types import (
    ABOVE, BEHIND, BELOW, CONTAINS, IN_FRONT_OF, INSIDE, LEFT_OF, NEAR, NEXT_TO, ON, OVERLAPPING,
    REGIONS, RIGHT_OF)

# Words, numbers ("2.5"), "n't" and single punctuation marks; the one tokeniser of captions.
TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+(?=n't)|n't|[a-z]+(?:-[a-z]+)*|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-case tokens of a text, as the verifier reads it."""
    return TOKEN.findall(text.lower().replace('\u2019', "'"))


_IRREGULAR_PLURALS = {
    'person': 'people', 'mouse': 'mice', 'sheep': 'sheep', 'skis': 'skis', 'scissors': 'scissors',
    'knife': 'knives', 'broccoli': 'broccoli', 'hair drier': 'hair driers', 'couch': 'couches',
    'bus': 'buses', 'glass': 'glasses', 'wine glass': 'wine glasses', 'sandwich': 'sandwiches',
    'bench': 'benches', 'tv': 'tvs', 'cell phone': 'cell phones', 'skateboard': 'skateboards',
}
NUMBER_WORDS = ('no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine',
                'ten', 'eleven', 'twelve')

# Other words for a detector class (singular; plurals are derived). Each names the class exactly,
# so the verifier accepts it; the hallucination metric maps it to the class too.
SYNONYMS = {
    'automobile': 'car', 'motorbike': 'motorcycle', 'bike': 'bicycle', 'aeroplane': 'airplane',
    'plane': 'airplane', 'sofa': 'couch', 'television': 'tv', 'tv monitor': 'tv',
    'cellphone': 'cell phone', 'mobile phone': 'cell phone', 'phone': 'cell phone',
    'table': 'dining table', 'plant': 'potted plant', 'hair dryer': 'hair drier',
    'doughnut': 'donut', 'ball': 'sports ball', 'remote control': 'remote',
    'laptop computer': 'laptop', 'traffic signal': 'traffic light', 'ski': 'skis',
}
# Words for a narrower kind of a class (singular): the object exists, but the word adds what a
# detector did not measure (gender, age, role, body type). Recognised, and rejected by the
# verifier as unverifiable; counted as the class by the hallucination metric.
HYPONYMS = {
    'man': 'person', 'woman': 'person', 'boy': 'person', 'girl': 'person', 'child': 'person',
    'kid': 'person', 'guy': 'person', 'lady': 'person', 'player': 'person',
    'pedestrian': 'person', 'skier': 'person', 'surfer': 'person', 'rider': 'person',
    'van': 'car', 'taxi': 'car', 'jeep': 'car', 'suv': 'car', 'sedan': 'car', 'lorry': 'truck',
    'pickup': 'truck', 'tram': 'train', 'calf': 'cow', 'lamb': 'sheep', 'foal': 'horse',
    'puppy': 'dog', 'kitten': 'cat',
}
_IRREGULAR_PLURALS.update({'man': 'men', 'woman': 'women', 'child': 'children', 'calf': 'calves',
                           'persons': 'persons'})

COCO_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
    'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush',
)

# ------------------------------------------------------------------ regions (3x3 image grid)
# A region phrase constrains the grid cell of an object's box centre: a column ("on the left"),
# a row ("at the top") or one cell ("at the top left", "in the center").
COLUMN_WORDS = {'left': 0, 'right': 2}
ROW_WORDS = {'top': 0, 'bottom': 2}


def region_cell(region: str) -> tuple[int, int] | None:
    """(row, column) of a region name of the graph, None when unknown."""
    if region not in REGIONS:
        return None
    index = REGIONS.index(region)
    return index // 3, index % 3


def region_phrase(region: str) -> str | None:
    """The canonical phrase placing an object in its grid cell ('center' -> 'in the center')."""
    cell = region_cell(region)
    if cell is None:
        return None
    row, col = cell
    if (row, col) == (1, 1):
        return 'in the center'
    if row == 1:
        return f'on the {"left" if col == 0 else "right"}'
    vertical = 'top' if row == 0 else 'bottom'
    if col == 1:
        return f'at the {vertical}'
    return f'at the {vertical} {"left" if col == 0 else "right"}'


# Phrase -> (row or None, column or None). Longest phrases are matched first.
REGION_PHRASE_CELLS: dict[str, tuple[int | None, int | None]] = {
    'in the center': (1, 1), 'in the centre': (1, 1), 'in the middle': (1, 1),
    'on the left': (None, 0), 'on the left side': (None, 0), 'on the right': (None, 2),
    'on the right side': (None, 2), 'at the top': (0, None), 'at the bottom': (2, None),
}
for _v, _r in ROW_WORDS.items():
    for _h, _c in COLUMN_WORDS.items():
        for _prep in ('at', 'in'):
            REGION_PHRASE_CELLS[f'{_prep} the {_v} {_h}'] = (_r, _c)
            REGION_PHRASE_CELLS[f'{_prep} the {_v}-{_h}'] = (_r, _c)
            REGION_PHRASE_CELLS[f'{_prep} the {_v} {_h} corner'] = (_r, _c)
            REGION_PHRASE_CELLS[f'{_prep} the {_v}-{_h} corner'] = (_r, _c)


def region_matches(region: str, cell: tuple[int | None, int | None]) -> bool:
    """True when the object's grid cell satisfies the phrase's row/column constraint."""
    where = region_cell(region)
    if where is None:
        return False
    row, col = cell
    return (row is None or where[0] == row) and (col is None or where[1] == col)


# ------------------------------------------------------------------ predicates
# "touching" is not a graph predicate: captions may say it where a contact relation implies it.
TOUCHING = 'touching'
# Canonical wording of each graph predicate in "<subject> is <phrase> <object>" (or, for verbs,
# "<subject> <phrase> <object>"), then accepted alternatives. The first entry is what the
# template writes; the LLM grammar may choose any of the written forms (WRITTEN); the verifier
# accepts all of them (PREDICATE_PHRASES).
WRITTEN_PREDICATES: dict[str, tuple[str, ...]] = {
    LEFT_OF: ('to the left of', 'left of'),
    RIGHT_OF: ('to the right of', 'right of'),
    ABOVE: ('above',),
    BELOW: ('below', 'under'),
    ON: ('on', 'on top of'),
    NEXT_TO: ('next to', 'beside'),
    NEAR: ('near', 'close to'),
    OVERLAPPING: ('overlapping',),
    INSIDE: ('in', 'inside'),
    CONTAINS: (),                     # written with the verb: "<subject> contains <object>"

    IN_FRONT_OF: ('in front of', 'closer to the camera than'),
    BEHIND: ('behind', 'farther from the camera than'),
}
PREDICATE_PHRASES: dict[str, str | None] = {}
for _pred, _phrases in WRITTEN_PREDICATES.items():
    for _p in _phrases:
        PREDICATE_PHRASES[_p] = _pred
PREDICATE_PHRASES.update({
    'on the left of': LEFT_OF, 'on the left side of': LEFT_OF, 'to the left side of': LEFT_OF,
    'on the right of': RIGHT_OF, 'on the right side of': RIGHT_OF,
    'to the right side of': RIGHT_OF, 'over': ABOVE, 'beneath': BELOW, 'underneath': BELOW,
    'alongside': NEXT_TO, 'near to': NEAR, 'within': INSIDE, 'in': INSIDE,
    'further from the camera than': BEHIND, 'farther away than': BEHIND,
    'further away than': BEHIND, 'nearer to the camera than': IN_FRONT_OF, 'atop': ON,
    'sitting on': ON, 'standing on': ON, 'resting on': ON, 'nearby': None, 'close by': None,
    'across from': None, 'opposite': None, 'far from': None,
    'away from': None, 'between': None, 'around': None, 'among': None, 'against': None,
    'at': None, 'by': None, 'with': None,
})
PREDICATE_PHRASES.update({'touching': TOUCHING, 'in contact with': TOUCHING})
# Phrases mapped to None are recognised spatial language that the graph cannot confirm (no such
# predicate): a caption using them fails verification instead of passing as "unknown words".

# Verbs stating a relation: "<subject> contains <object>", "A and B overlap" (plural subject).
VERB_PREDICATES: dict[str, str | None] = {
    'contains': CONTAINS, 'contain': CONTAINS, 'overlaps': OVERLAPPING, 'overlap': OVERLAPPING,
    'touches': TOUCHING, 'touch': TOUCHING, 'holds': None, 'hold': None, 'faces': None,
    'face': None,
}
# A statement of one predicate is also supported by a graph relation that implies it: "near" by
# "next to"; "touching" by the contact relations the graph states only where the box geometry,
# the depth and the knowledge's affordances agree (on, in, contains), in either direction.
ENTAILED_BY: dict[str, tuple[str, ...]] = {NEAR: (NEXT_TO,), TOUCHING: (ON, INSIDE, CONTAINS)}
# Claim predicates that hold in both directions without being graph predicates.
SYMMETRIC_CLAIMS = frozenset({TOUCHING})

# ------------------------------------------------------------------ numbers and distances
# A stated distance says how precise it is, and the verifier holds it to exactly that:
#   "5.8 m", "14 m"       the number as written: within half a unit of its last digit;
#   "about 12 m"          within ABOUT_REL_TOL of the number (and its rounding);
#   "8 to 10 m"           within the range;
#   "roughly 30 m"        within ROUGH_REL_TOL of the number (and its rounding);
#   "more than 20 m"      beyond the number (a bound: no point value).
UNIT_WORDS = ('m', 'metres', 'meters', 'metre', 'meter')
ABOUT, ROUGHLY, MORE_THAN = 'about', 'roughly', 'more than'
HEDGES = {'about': ABOUT, 'around': ABOUT, 'approximately': ABOUT, 'some': ABOUT,
          'roughly': ROUGHLY}
ABOUT_REL_TOL = 0.10
ROUGH_REL_TOL = 0.5
# A lower bound ("more than 20 m") is stated up to this half width: beyond it the bound is below
# a quarter of the distance the graph estimates ("more than 0.5 m" for a horse estimated at
# 4.5 m), which says more about the uncertainty than about the object.
BOUND_REL_TOL = 0.75


@dataclass(frozen=True)
class StatedDistance:
    """A distance as a caption states it: the interval it asserts and its point value."""

    low: float
    high: float
    point: float                  # the number said (a range: its middle)
    hedge: str = ''               # '' | about | roughly | range

    def holds(self, metres: float) -> bool:
        if self.hedge == MORE_THAN:
            return math.isfinite(metres) and metres > self.low
        return math.isfinite(metres) and self.low <= metres <= self.high


def _half_unit(text: str) -> float:
    """Half the unit of the last digit of a written number ('5.8' -> 0.05, '14' -> 0.5)."""
    decimals = len(text.split('.')[1]) if '.' in text else 0
    return 0.5 * 10.0 ** -decimals


def stated(number: str, hedge: str = '', upper: str | None = None) -> StatedDistance:
    """The meaning of '<hedge> <number> m', '<number> to <upper> m' or 'more than <number> m'."""
    value = float(number)
    if hedge == MORE_THAN:
        return StatedDistance(value, math.inf, math.nan, MORE_THAN)
    if upper is not None:
        high = float(upper)
        return StatedDistance(value, high, 0.5 * (value + high), 'range')
    rel = {ABOUT: ABOUT_REL_TOL, ROUGHLY: ROUGH_REL_TOL}.get(hedge, 0.0)
    tol = max(rel * value, _half_unit(number))
    return StatedDistance(value - tol, value + tol, value, hedge)


def _number(value: float, step: float) -> str:
    """`value` rounded to `step`, written without a trailing '.0' ('2', '2.5', '12')."""
    rounded = round(round(value / step) * step, 1)
    return f'{rounded:.1f}'.removesuffix('.0')


def _step(metres: float) -> float:
    """Rounding step of a stated distance: 0.5 m below 5 m, 1 m to 50 m, 5 m beyond."""
    return 0.5 if metres < 5.0 else 1.0 if metres < 50.0 else 5.0


def distance_words(metres: float, half_width: float, assumed: bool = False) -> str:
    """How a caption states a distance known to +-half_width (about two sigma), or ''.

    - calibrated, half_width <= ABOUT_REL_TOL: "about 12 m";
    - calibrated, half_width <= ROUGH_REL_TOL: "8 to 10 m" (the interval, rounded outwards);
    - assumed intrinsics (the scale itself is a guess), half_width <= ROUGH_REL_TOL:
      "roughly 30 m";
    - half_width <= BOUND_REL_TOL: only the lower bound, "more than 20 m" (metres - half_width
      rounded down): a two-sided number that loose says little and is often wrong, but how far
      away the object is at least is known (a robot cares most about that side);
    - else nothing.
    The wording's meaning (`stated`) always contains `metres`.
    """
    if not (math.isfinite(metres) and math.isfinite(half_width)) or metres <= 0:
        return ''
    rel = half_width / metres
    if rel > ROUGH_REL_TOL:
        low = metres - half_width
        if rel > BOUND_REL_TOL:
            return ''
        step = _step(low)
        bound = math.floor(low / step) * step
        return f'more than {_number(bound, step)} m' if bound > 0 else ''
    step = _step(metres)
    if assumed:
        return f'roughly {_number(metres, step)} m'
    if rel <= ABOUT_REL_TOL:
        return f'about {_number(metres, 0.1 if metres < 10.0 else 1.0)} m'
    low = math.floor((metres - half_width) / step) * step
    high = math.ceil((metres + half_width) / step) * step
    if low <= 0.0:
        return ''
    return f'{_number(low, step)} to {_number(high, step)} m'


def format_distance(metres: float) -> str:
    """'2.3 m', '14 m': the number as measured (a sensor's precision)."""
    if not math.isfinite(metres):
        raise ValueError('distance is not finite')
    return f'{metres:.1f} m' if metres < 10.0 else f'{round(metres):d} m'


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
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def parse_number(word: str) -> int | None:
    """'four' -> 4, '12' -> 12, 'a'/'an'/'one' -> 1; None when not a count."""
    if word in ('a', 'an'):
        return 1
    if word in NUMBER_WORDS[1:]:
        return NUMBER_WORDS.index(word)
    if word.isdigit():
        return int(word)
    return None


def article(noun: str) -> str:
    return 'an' if noun[:1] in 'aeiou' else 'a'


# Count quantifiers for counts the detector is not sure of: "at least three people" (the
# captioned view has three; less confident detections or objects cut by the border may add more)
# and "several people" (three or more: a group whose exact size a detector cannot give).
AT_LEAST, SEVERAL = 'at least', 'several'
SEVERAL_MIN = 3


def counted(noun: str, n: int, quantifier: str = '') -> str:
    """'a bus', 'four people', 'at least three people', 'at least one bus', 'several people'."""
    if quantifier == SEVERAL:
        return f'several {plural(noun)}'
    if quantifier == AT_LEAST:
        return f'at least {number_word(n)} {noun if n == 1 else plural(noun)}'
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


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


class NounLexicon:
    """Noun phrases -> (class name, plural?, exact?) for the classes a verifier may meet.

    Built from the COCO classes, the graph's own class names (any detector) and the synonym and
    hyponym tables. `exact` is False for hyponyms ('man' for person).
    """

    def __init__(self, class_names: set[str] | frozenset[str] = frozenset()) -> None:
        # words -> (class, plural: True/False, None for words of both numbers, exact)
        self.entries: dict[tuple[str, ...], tuple[str, bool | None, bool]] = {}
        for name in set(COCO_CLASSES) | set(class_names):
            same = plural(name) == name           # sheep, broccoli, skis: either number
            self._add(name, name, None if same else False, True)
            self._add(plural(name), name, None if same else True, True)
        self._add('persons', 'person', True, True)
        for table, exact in ((SYNONYMS, True), (HYPONYMS, False)):
            for word, cls in table.items():
                self._add(word, cls, False, exact)
                self._add(plural(word), cls, True, exact)
        self.longest = max(len(k) for k in self.entries)

    def _add(self, phrase: str, cls: str, is_plural: bool | None, exact: bool) -> None:
        key = tuple(words(phrase))
        if key not in self.entries:
            self.entries[key] = (cls, is_plural, exact)

    def match(self, words: list[str], start: int) -> tuple[int, str, bool | None, bool] | None:
        """Longest noun at words[start:]: (length, class, plural, exact), or None."""
        for n in range(min(self.longest, len(words) - start), 0, -1):
            entry = self.entries.get(tuple(words[start:start + n]))
            if entry is not None:
                return (n, *entry)
        return None
