"""The caption verifier: parse a caption into claims; semantics.GraphIndex judges each one.

Conservative by design: a caption passes only if EVERY sentence parses completely into claims
the verifier understands and every claim is true of the graph. Anything else fails it:
- words outside the caption vocabulary (unknown nouns, adjectives, verbs): "unparsed";
- negations ("no", "not", "n't", "never", "without"...): "negation" (absence of a detection is not
  evidence of absence; the one exception is "No objects detected." for an empty graph);
- a class absent from the graph: "object_not_in_graph"; a count that differs: "wrong_count"
  (numbers are exact: "two people" with three in the graph fails);
- a word that narrows a class beyond what the detector measured ("man" for person, "van" for
  car): "unverifiable_word"; true synonyms ("persons", "sofa", "bike") are accepted;
- "the X" that does not pick out exactly one object: "ambiguous_reference";
- a spatial phrase whose relation is not in the graph (directly, as its converse such as
  right-of for left-of, or implied: next to implies near): "relation_not_in_graph"; spatial
  language the graph has no predicate for ("touching", "across from"): "unsupported_predicate";
- a placement whose 3x3 grid cell disagrees: "wrong_region";
- a distance without metric depth in the graph: "no_metric_distance"; outside the precision the
  caption states ("5.8 m", "about 12 m", "8 to 10 m", "roughly 30 m"; semantics.py):
  "wrong_distance" (between two objects: "3 to 6 m behind B" is the gap in depth, "(centres
  3 m apart)" the distance between the centres); a "nearest" the depths do not clearly
  decide: "wrong_nearest";
- "looks like a <place>" that the objects do not suggest (context.py): "unsupported_place";
- a sentence without a verb, a bare list of objects ("A bus and three people.", "What looks
  like a street with a bus."): "fragment" (a caption is made of full sentences).

Quantifiers: "the X" = the unique X; "the Xs"/"the three Xs" = all of them; "a X" = at least one
X; "N Xs" = exactly N Xs (as subject of a relation: exactly N of them stand in it); in counts,
"at least N Xs" = N or more, "several Xs" = three or more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re

from spatial_caption_ros.core.captioning.context import PLACES
from spatial_caption_ros.core.captioning.language import (
    capitalise, HEDGES, MORE_THAN, NounLexicon, parse_number, PREDICATE_PHRASES,
    REGION_PHRASE_CELLS, SEVERAL_MIN, stated, StatedDistance, TOKEN, UNIT_WORDS, VERB_PREDICATES)
from spatial_caption_ros.core.captioning.semantics import AHEAD, Claim, GraphIndex, NounPhrase
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.types import BEHIND, IN_FRONT_OF, NEAR, NEXT_TO, SceneGraph

_NEGATIONS = frozenset({'no', 'not', "n't", 'never', 'none', 'nothing', 'nobody', 'neither',
                        'nor', 'without', 'cannot', 'nowhere'})
_NUMBER = re.compile(r'\d+(?:\.\d+)?')
_SENTENCE_END = frozenset({'.', '!', '?'})
_BE = {'is': False, 'are': True}          # word -> plural subject
_CONNECTORS = ((';',), (',',), ('and',), (',', 'and'), (';', 'and'), ('while',), (',', 'while'),
               ('whereas',), (',', 'whereas'))
_SCENE_NOUNS = frozenset({'image', 'scene', 'photo', 'picture', 'frame', 'view'})
_PRESENCE = (('visible',), ('present',), ('in', 'view'), ('in', 'the', 'image'),
             ('in', 'the', 'scene'), ('in', 'the', 'picture'), ('in', 'the', 'photo'),
             ('in', 'the', 'frame'))
_NEAREST_WORDS = frozenset({'nearest', 'closest'})
_CAMERA = ('to', 'the', 'camera')
_MAX_SEGMENT_TRIES = 20_000       # bound on clause segmentations tried per sentence


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


@dataclass
class ClauseResult:
    """A clause of the caption: its span in the text and its claims."""

    start: int
    end: int
    sentence: int
    claims: list[Claim]
    parsed: bool = True
    reason: str = ''

    @property
    def supported(self) -> bool:
        return self.parsed and bool(self.claims) and all(c.supported for c in self.claims)


@dataclass
class Verification:
    """The verdict on one caption."""

    text: str
    clauses: list[ClauseResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.clauses) and all(c.supported for c in self.clauses)

    @property
    def claims(self) -> list[Claim]:
        return [c for cl in self.clauses for c in cl.claims]

    def failures(self) -> list[str]:
        """'reason: clause text' for every failed clause."""
        out = []
        for cl in self.clauses:
            if cl.supported:
                continue
            reason = cl.reason or next((c.reason for c in cl.claims if not c.supported), '')
            out.append(f'{reason}: {self.text[cl.start:cl.end]!r}')
        return out

    def first_reason(self) -> str:
        for cl in self.clauses:
            if not cl.supported:
                return cl.reason or next((c.reason for c in cl.claims if not c.supported), '')
        return 'empty' if not self.clauses else ''


def tokenize(text: str) -> list[Token]:
    lowered = text.lower().replace('\u2019', "'")
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN.finditer(lowered)]


class CaptionVerifier:
    """Checks captions against one scene graph."""

    def __init__(self, graph: SceneGraph, knowledge: KnowledgeBase | None = None) -> None:
        self.graph = graph
        self.index = GraphIndex(graph, knowledge)
        self.lexicon = NounLexicon({o.class_name for o in graph.objects})

    # ------------------------------------------------------------ entry point

    def verify(self, text: str) -> Verification:
        """Parse and check every sentence of `text`."""
        result = Verification(text)
        tokens = tokenize(text)
        sentences: list[list[Token]] = [[]]
        for tok in tokens:
            if tok.text in _SENTENCE_END:
                sentences.append([])
            else:
                sentences[-1].append(tok)
        for number, sent in enumerate(s for s in sentences if s):
            result.clauses.extend(self._sentence(sent, number))
        return result

    def _sentence(self, sent: list[Token], number: int) -> list[ClauseResult]:
        words = [t.text for t in sent]
        span = (sent[0].start, sent[-1].end)
        if words in (['no', 'objects', 'detected'], ['no', 'objects', 'are', 'detected']):
            claim = Claim('empty', ' '.join(words))
            self._check(claim)
            return [ClauseResult(*span, number, [claim])]
        if self._negated(words):
            return [ClauseResult(*span, number, [], parsed=False, reason='negation')]
        segments = self._segment(words)
        if segments is None:
            return [ClauseResult(*span, number, [], parsed=False, reason='unparsed')]
        out = []
        for (i, j), claims in segments:
            for claim in claims:
                self._check(claim)
            out.append(ClauseResult(sent[i].start, sent[j - 1].end, number, claims))
        return out

    def _negated(self, words: list[str]) -> bool:
        """A negation word outside the class names (a class may be "no entry sign")."""
        i = 0
        while i < len(words):
            noun = self.lexicon.match(words, i)
            if noun is not None and any(w in _NEGATIONS for w in words[i:i + noun[0]]):
                i += noun[0]
            elif words[i] in _NEGATIONS:
                return True
            else:
                i += 1
        return False

    def _segment(self, words: list[str]):
        """Split a sentence into the fewest clauses that all parse, with connectors between.

        Clause boundaries are tried only where a connector (";", ",", "and", "while"...) starts.
        Returns [((start, end), claims), ...] or None when no split parses.
        """
        n = len(words)
        ends = [j for j in range(1, n) if any(tuple(words[j:j + len(c)]) == c
                                              for c in _CONNECTORS)] + [n]
        best: dict[int, list | None] = {n: []}
        tries = 0
        for i in range(n - 1, -1, -1):
            best[i] = None
            for j in (e for e in ends if e > i):
                follow = [] if j == n else None
                for c in _CONNECTORS:
                    k = j + len(c)
                    if j < n and tuple(words[j:k]) == c and k < n and best.get(k) is not None:
                        if follow is None or len(best[k]) < len(follow):
                            follow = best[k]
                if follow is None:
                    continue
                tries += 1
                if tries > _MAX_SEGMENT_TRIES:
                    return None
                claims = self._clause(words[i:j])
                if claims is None:
                    continue
                candidate = [((i, j), claims)] + follow
                if best[i] is None or len(candidate) < len(best[i]):
                    best[i] = candidate
        return best[0]

    # ------------------------------------------------------------ clause grammar

    def _clause(self, w: list[str]) -> list[Claim] | None:
        text = ' '.join(w)
        for parser in (self._counts, self._place, self._relation, self._nearest,
                       self._camera_distance, self._scene):
            claims = parser(w, text)
            if claims is not None:
                return claims
        return None

    def _counts(self, w: list[str], text: str) -> list[Claim] | None:
        start, presence = 0, True       # presence: "<list> are visible / in view"
        lead: list[Claim] = []          # "what looks like a kitchen with <list>"
        looks = _scene_subject(w)
        if looks and w[looks:looks + 2] == ['looks', 'like'] and 'with' in w:
            # "what / this / it looks like a kitchen with <list>"
            k = w.index('with')
            lead = self._scene_suffix(('in', 'what', *w[looks:k]), text) or []
            if not lead:
                return None
            start, presence = k + 1, False
        elif w[:1] == ['there'] and len(w) > 1 and w[1] in _BE:
            start, presence = 2, False
        elif len(w) > 2 and w[0] in ('the', 'this') and w[1] in _SCENE_NOUNS and w[2] in (
                'shows', 'contains', 'has'):
            start, presence = 3, False
        for nps, end in self._np_lists(w, start):
            rest = tuple(w[end:])
            scene = None if lead else self._scene_suffix(rest, text)
            if rest and scene is None and not (
                    presence and rest[0] in _BE and rest[1:] in _PRESENCE):
                continue
            if any(np.mode not in ('exists', 'exactly', 'at_least') for np in nps):
                continue
            claims = lead + [Claim('count', text, subject=np) for np in nps] + (scene or [])
            if w[:1] == ['what'] or (presence and (not rest or rest[:1] == ('in',))):
                # a noun list without a verb ("A bus and three people.", "What looks like a
                # street with a bus.", "A bus in what looks like a street."): a fragment
                for claim in claims:
                    claim.reason = 'fragment'
            return claims
        return None

    @staticmethod
    def _scene_suffix(rest: tuple[str, ...], text: str) -> list[Claim] | None:
        """'... in what looks like a kitchen' after a count list: the scene claim."""
        if rest[:4] == ('in', 'what', 'looks', 'like') and rest[4:5] in (('a',), ('an',)):
            place = ' '.join(rest[5:])
            if place in PLACES:
                return [Claim('scene', text, place=place)]
        return None

    @staticmethod
    def _scene(w: list[str], text: str) -> list[Claim] | None:
        """'it / this / the scene looks like a kitchen': an inference, checked (context.py)."""
        k = _scene_subject(w)
        if k and w[:1] != ['what'] and w[k:k + 2] == ['looks', 'like'] and w[k + 2:k + 3] in (
                ['a'], ['an']):
            place = ' '.join(w[k + 3:])
            if place in PLACES:
                return [Claim('scene', text, place=place)]
        return None

    def _np_lists(self, w: list[str], i: int):
        """Every way to read w[i:] as 'NP (, NP)* (and NP)' followed by anything."""
        for np, j in self._nps(w, i):
            yield [np], j
            for sep in ((',',), ('and',), (',', 'and')):
                if tuple(w[j:j + len(sep)]) == sep:
                    for more, k in self._np_lists(w, j + len(sep)):
                        yield [np] + more, k

    def _place(self, w: list[str], text: str) -> list[Claim] | None:
        for np, j in self._nps(w, 0):
            if j < len(w) and w[j] in _BE:
                for cell, k in _phrases(w, j + 1, REGION_PHRASE_CELLS):
                    if k == len(w) and _agrees(np, w[j]):
                        return [Claim('place', text, subject=np, cell=cell)]
        return None

    def _relation(self, w: list[str], text: str) -> list[Claim] | None:
        for s, j in self._nps(w, 0):
            if j >= len(w):
                continue
            # "A is <predicate> B"
            if w[j] in _BE and _agrees(s, w[j]):
                for pred, k in _phrases(w, j + 1, PREDICATE_PHRASES):
                    for o, m in self._nps(w, k):
                        dist = _suffix_distance(w, m, 'apart')
                        if dist is not False:
                            return [self._relation_claim(text, s, pred, o, dist)]
                # "A is 3 to 6 m behind B": the gap in depth
                d, k = _distance(w, j + 1)
                if d is not None:
                    for pred, m in _phrases(w, k, PREDICATE_PHRASES):
                        if pred not in (IN_FRONT_OF, BEHIND):
                            continue
                        for o, n in self._nps(w, m):
                            if n == len(w):
                                claim = self._relation_claim(text, s, pred, o, d)
                                claim.depth_gap = True
                                return [claim]
                # "A is 2.3 m from B"
                if d is not None and w[k:k + 1] == ['from'] and w[k + 1:k + 4] != list(
                        ('the', 'camera')):
                    for o, m in self._nps(w, k + 1):
                        if m == len(w):
                            return [Claim('relation', text, subject=s, object=o, distance=d)]
            # "A contains B", "A overlaps B"
            if w[j] in VERB_PREDICATES and (w[j].endswith('s') != s.plural):
                for o, m in self._nps(w, j + 1):
                    dist = _suffix_distance(w, m, 'apart')
                    if dist is not False:
                        return [self._relation_claim(text, s, VERB_PREDICATES[w[j]], o, dist)]
            # "A and B are next to each other", "A and B overlap", "A and B are 2 m apart"
            if w[j] == 'and':
                for o, k in self._nps(w, j + 1):
                    claim = self._pair_clause(w, k, text, s, o)
                    if claim is not None:
                        return [claim]
        return None

    def _pair_clause(self, w, k, text, s, o) -> Claim | None:
        if k < len(w) and w[k] == 'are':
            for pred, m in _phrases(w, k + 1, PREDICATE_PHRASES):
                if w[m:m + 2] == ['each', 'other']:
                    dist = _suffix_distance(w, m + 2, 'apart')
                    if dist is not False and pred in (NEXT_TO, NEAR, None):
                        return self._relation_claim(text, s, pred, o, dist)
            d, m = _distance(w, k + 1)
            if d is not None and w[m:] == ['apart']:
                return Claim('relation', text, subject=s, object=o, distance=d)
        if k < len(w) and w[k] in VERB_PREDICATES and not w[k].endswith('s'):
            dist = _suffix_distance(w, k + 1, 'apart')
            if dist is not False:
                return self._relation_claim(text, s, VERB_PREDICATES[w[k]], o, dist)
        return None

    @staticmethod
    def _relation_claim(text, s, pred, o, dist) -> Claim:
        claim = Claim('relation', text, subject=s, predicate=pred, object=o, distance=dist)
        if pred is None:
            claim.reason = 'unsupported_predicate'
            claim.predicate = ''
        return claim

    def _nearest(self, w: list[str], text: str) -> list[Claim] | None:
        # "A is nearest/closest to the camera [(2.3 m away)]", "A is the nearest object"
        for s, j in self._nps(w, 0):
            if j < len(w) and w[j] in _BE and _agrees(s, w[j]):
                k = j + 1
                if w[k:k + 1] == ['the']:
                    k += 1
                if w[k:k + 1] and w[k] in _NEAREST_WORDS:
                    k += 1
                    if w[k:k + 1] == ['object']:
                        k += 1
                    if tuple(w[k:k + 3]) == _CAMERA:
                        k += 3
                    dist = _suffix_distance(w, k, 'away')
                    if dist is not False:
                        return [Claim('nearest', text, subject=s, distance=dist)]
        # "the nearest object is A [(2.3 m away)]"
        if w[:1] == ['the'] and w[1:2] and w[1] in _NEAREST_WORDS and w[2:3] == ['object']:
            k = 3
            if tuple(w[k:k + 3]) == _CAMERA:
                k += 3
            if w[k:k + 1] == ['is']:
                for s, m in self._nps(w, k + 1):
                    dist = _suffix_distance(w, m, 'away')
                    if dist is not False:
                        return [Claim('nearest', text, subject=s, distance=dist)]
        return None

    def _camera_distance(self, w: list[str], text: str) -> list[Claim] | None:
        for s, j in self._nps(w, 0):
            if j < len(w) and w[j] in _BE and _agrees(s, w[j]):
                d, k = _distance(w, j + 1)
                if d is not None and (w[k:] == ['away'] or w[k:] == ['from', 'the', 'camera']):
                    return [Claim('distance', text, subject=s, distance=d)]
                # robot frame: "A is about 12 m ahead[, 2 to 3 m to the left]"
                if d is not None and w[k:k + 1] == ['ahead']:
                    claims = [Claim('distance', text, subject=s, distance=d, axis=AHEAD)]
                    if k + 1 == len(w):
                        return claims
                    side, m = _distance(w, k + 2) if w[k + 1] == ',' else (None, k)
                    if side is not None and w[m:m + 2] == ['to', 'the'] and w[m + 2:] in (
                            ['left'], ['right']):
                        return claims + [Claim('distance', text, subject=s, distance=side,
                                               axis=w[m + 2])]
        return None

    def _nps(self, w: list[str], i: int) -> list[tuple[NounPhrase, int]]:
        """Every noun phrase starting at w[i], with the index after it (longest first)."""
        if i >= len(w):
            return []
        mode, count, j, superlative = None, 1, i, False
        if w[i] == 'the':
            j = i + 1
            number = parse_number(w[j]) if j < len(w) and w[j] not in ('a', 'an') else None
            # "the 3d printer": a number that begins a class name is part of the name
            if number is not None and self.lexicon.match(w, j) is None:
                mode, count, j = 'all', number, j + 1
            else:
                mode = 'unique'
            if j < len(w) and w[j] in _NEAREST_WORDS:
                superlative, j = True, j + 1
        elif w[i:i + 2] == ['at', 'least']:
            number = parse_number(w[i + 2]) if i + 2 < len(w) else None
            if number is None:
                return []
            mode, count, j = 'at_least', number, i + 3
        elif w[i] == 'several':
            mode, count, j = 'at_least', SEVERAL_MIN, i + 1
        else:
            number = parse_number(w[i])
            if number is None:
                return []
            mode, count, j = ('exists' if number == 1 else 'exactly'), number, i + 1
        noun = self.lexicon.match(w, j)
        if noun is None:
            return []
        length, cls, is_plural, exact = noun
        j += length
        if is_plural is None:             # same word in both numbers ("four broccoli")
            is_plural = count > 1
        if mode == 'unique' and is_plural:
            mode, count = 'all', 0
        if (mode in ('exists', 'unique') and is_plural) or (
                mode in ('exactly', 'all', 'at_least') and count != 0
                and (count == 1) == is_plural):
            return []
        if mode == 'all' and count == 1:
            return []
        base = NounPhrase(mode, cls, count, is_plural, exact, nearest=superlative,
                          text=' '.join(w[i:j]))
        out: list[tuple[NounPhrase, int]] = []
        for cell, k in _phrases(w, j, REGION_PHRASE_CELLS):
            out.append((NounPhrase(mode, cls, count, is_plural, exact, cell, superlative,
                                   ' '.join(w[i:k])), k))
        if not superlative and w[j:j + 1] and w[j] in _NEAREST_WORDS and tuple(
                w[j + 1:j + 4]) == _CAMERA and mode == 'unique':
            out.append((NounPhrase(mode, cls, count, is_plural, exact, None, True,
                                   ' '.join(w[i:j + 4])), j + 4))
        out.append((base, j))
        return out

    def _check(self, claim: Claim) -> None:
        if claim.reason:                     # decided while parsing (unsupported predicate)
            return
        claim.supported, claim.reason = self.index.judge(claim)


def _scene_subject(w: list[str]) -> int:
    """Length of the subject of "... looks like a <place>": 'it', 'this', 'what', 'the scene'."""
    if w[:1] in (['it'], ['this'], ['what']):
        return 1
    return 2 if w[:1] == ['the'] and w[1:2] and w[1] in _SCENE_NOUNS else 0


def _agrees(np: NounPhrase, be: str) -> bool:
    return _BE[be] == np.plural


def _phrases(w: list[str], i: int, table: dict) -> list[tuple[object, int]]:
    """Entries of `table` (phrase -> value) matching at w[i:], longest first."""
    out = []
    for phrase, value in table.items():
        parts = phrase.split()
        if tuple(w[i:i + len(parts)]) == tuple(parts):
            out.append((value, i + len(parts), len(parts)))
    out.sort(key=lambda x: -x[2])
    return [(v, k) for v, k, _ in out]


def _distance(w: list[str], i: int) -> tuple[StatedDistance | None, int]:
    """A stated distance at w[i:] -> (its meaning, index after), or (None, i).

    '2.3 m', 'about 12 m', 'roughly 30 m', '8 to 10 m', 'more than 20 m'.
    """
    if w[i:i + 2] == ['more', 'than']:
        if i + 3 < len(w) and _NUMBER.fullmatch(w[i + 2]) and w[i + 3] in UNIT_WORDS:
            return stated(w[i + 2], MORE_THAN), i + 4
        return None, i
    hedge = HEDGES.get(w[i], '') if i < len(w) else ''
    j = i + 1 if hedge else i
    if j + 1 < len(w) and _NUMBER.fullmatch(w[j]):
        if w[j + 1] in UNIT_WORDS:
            return stated(w[j], hedge), j + 2
        if (not hedge and w[j + 1] == 'to' and j + 3 < len(w) and _NUMBER.fullmatch(w[j + 2])
                and w[j + 3] in UNIT_WORDS and float(w[j]) < float(w[j + 2])):
            return stated(w[j], '', w[j + 2]), j + 4
    return None, i


def _suffix_distance(w: list[str], i: int, word: str) -> StatedDistance | None | bool:
    """Read the end of a clause after its last noun phrase.

    Returns None for nothing, the stated distance of '(centres 2.3 m apart)', ', centres about
    2 m apart' (or without 'centres': the distance between the 3D centres either way), and
    False for anything else.
    """
    if i == len(w):
        return None
    if w[i] in ('(', ','):
        start = i + 2 if w[i + 1:i + 2] in (['centres'], ['centers']) else i + 1
        d, k = _distance(w, start)
        if d is not None and w[k:k + 1] == [word]:
            k += 1
            if w[i] == '(' and w[k:k + 1] == [')']:
                k += 1
            elif w[i] == '(':
                return False
            if k == len(w):
                return d
    return False


def repair(verification: Verification) -> str | None:
    """The caption without its failed clauses, or None when too little is left.

    Kept clauses are re-joined per sentence with "; ". At least half of the clauses must survive
    (else the template, which states every planned fact, says more) and at least one.
    """
    kept = [c for c in verification.clauses if c.supported]
    if not kept or 2 * len(kept) < len(verification.clauses):
        return None
    sentences: dict[int, list[str]] = {}
    for clause in kept:
        sentences.setdefault(clause.sentence, []).append(
            verification.text[clause.start:clause.end].strip(' ,;'))
    return ' '.join(capitalise('; '.join(parts)) + '.' for parts in sentences.values())

