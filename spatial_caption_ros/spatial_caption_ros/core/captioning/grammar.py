"""GBNF grammars that keep the LLM's output in shape (llama.cpp grammar format).

Two constraint levels:
- facts (default): the output can only be one of the wordings and orders of the planned facts
  (template.py's clause options). The model chooses the phrasing and order; it cannot add,
  drop or change a fact, so a complete output verifies by construction (and is still verified).
- vocabulary: sentences built from the graph's class names, counts, region phrases and spatial
  predicates, composed freely by the model. It can state false things ("the bus is left of the
  person" when it is right); the verifier catches them. This shows what the verifier is for.
Every grammar starts with a space (the model continues after "Caption:") and ends the text.
"""

from __future__ import annotations

from itertools import permutations
import re

from spatial_caption_ros.core.captioning.language import (
    article, capitalise, NUMBER_WORDS, plural, WRITTEN_PREDICATES)
from spatial_caption_ros.core.captioning.plan import ContentPlan, COUNT, SCENE
from spatial_caption_ros.core.captioning.template import (
    clause_options, count_options, EMPTY_CAPTION, other_facts, scene_count_options)
from spatial_caption_ros.core.types import CONTAINS, SceneGraph, STYLE_DETAILED

# Orders of the non-count facts the grammar offers: every permutation up to this many facts
# (3! = 6); the planned order beyond that.
MAX_PERMUTED_FACTS = 3
# Vocabulary grammar: at most this many clauses per sentence and sentences per caption.
VOCAB_CLAUSES = 3
VOCAB_SENTENCES = {'short': 1, 'detailed': 4}
_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
_REGION_WORDS = ('on the left', 'on the right', 'at the top', 'at the bottom', 'in the center')


def literal(text: str) -> str:
    """A GBNF string literal."""
    escaped = text.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')
    return f'"{escaped}"'


def _alternatives(options: list[str]) -> str:
    seen = list(dict.fromkeys(options))
    return ' | '.join(literal(o) for o in seen)


def facts_grammar(plan: ContentPlan) -> str:
    """A grammar whose sentences are exactly the wordings and orders of the plan's facts."""
    if plan.empty:
        return f'root ::= {literal(" " + EMPTY_CAPTION)}\n'
    counts = plan.of_kind(COUNT)
    others = other_facts(plan)
    # Openers the model may choose, full sentences: the objects first ("A bus and three people
    # are in view") or "There is ..."; not "The image shows ...", which says nothing and which
    # the small model, left to itself, chose for most captions (the verifier still reads it).
    openers = count_options(counts, ('in view', 'there'))
    rules = [f'counts ::= {_alternatives([capitalise(o) for o in openers])}']
    for n, fact in enumerate(others):
        options = clause_options(fact)
        if plan.style == STYLE_DETAILED:
            options = [capitalise(o) for o in options]
        rules.append(f'f{n} ::= {_alternatives(options)}')
    orders = (list(permutations(range(len(others)))) if len(others) <= MAX_PERMUTED_FACTS
              else [tuple(range(len(others)))])
    if plan.style == STYLE_DETAILED:
        bodies = [' '.join(f'" " f{i} "."' for i in order) for order in orders]
        root = 'root ::= " " counts "."' + (' rest' if others else '')
    else:
        rules.append('sep ::= "; " | ", and "')
        bodies = [' '.join(f'sep f{i}' for i in order) for order in orders]
        root = 'root ::= " " counts' + (' rest' if others else '') + ' "."'
        scene = [i for i, f in enumerate(others) if f.kind == SCENE]
        if scene:
            # Aggregation: the counts and the scene in one sentence, "this looks like a street
            # with a bus and three people" or "there is a bus and three people in what looks
            # like a street" (template.scene_count_options), then the other facts.
            rules.append('countsin ::= ' + _alternatives(
                [capitalise(o) for o in scene_count_options(counts, others[scene[0]])]))
            root += ' | " " countsin' + _tail(rules, 'restin', len(others), scene[0]) + ' "."'
    if others:
        rules.append('rest ::= ' + ' | '.join(f'({b})' for b in bodies))
    return '\n'.join([root] + rules) + '\n'


def _tail(rules: list[str], name: str, n_facts: int, aggregated: int) -> str:
    """The facts after an aggregated opener (every fact but `aggregated`, in each order).

    Appends the rule `name` to `rules` and returns the reference to it ('' for none).
    """
    rest = [i for i in range(n_facts) if i != aggregated]
    if not rest:
        return ''
    orders = list(permutations(rest)) if len(rest) <= MAX_PERMUTED_FACTS else [tuple(rest)]
    rules.append(f'{name} ::= ' + ' | '.join(
        '(' + ' '.join(f'sep f{i}' for i in order) + ')' for order in orders))
    return f' {name}'


def vocabulary_grammar(graph: SceneGraph, style: str) -> str:
    """A grammar of sentences about the graph's classes, in the verifier's vocabulary."""
    classes = sorted({o.class_name for o in graph.objects})
    if not classes:
        return f'root ::= {literal(" " + EMPTY_CAPTION)}\n'
    singular = [f'{article(c)} {c}' for c in classes]
    definite = [f'the {c}' for c in classes]
    predicates = [w for p, ws in WRITTEN_PREDICATES.items() if p != CONTAINS for w in ws]
    n_sentences = VOCAB_SENTENCES.get(style, 1)
    more = f' (" " sentence){{0,{n_sentences - 1}}}' if n_sentences > 1 else ''
    rules = [
        f'root ::= " " sentence{more}',
        f'sentence ::= clause ("; " clause){{0,{VOCAB_CLAUSES - 1}}} "."',
        'clause ::= counts | place | relation | nearest',
        'counts ::= "there " ("is" | "are") " " cnp ((", " | " and ") cnp){0,3}',
        f'cnp ::= {_alternatives(singular)} | number " " plural',
        f'number ::= {_alternatives(list(NUMBER_WORDS[2:]))}',
        f'plural ::= {_alternatives([plural(c) for c in classes])}',
        f'ref ::= ({_alternatives(definite)}) (" " region)? | {_alternatives(singular)}',
        f'region ::= {_alternatives(list(_REGION_WORDS))}',
        'place ::= ref " is " region',
        'nearest ::= ref " is nearest to the camera"',
        f'relation ::= ref " is " predicate " " ref{" distance?" if graph.depth_metric else ""}',
        f'predicate ::= {_alternatives(predicates)}',
    ]
    if graph.depth_metric:
        rules.append('distance ::= " (" [0-9] [0-9]? "." [0-9] " m apart)"')
    return '\n'.join(rules) + '\n'


def grammar_texts(grammar: str) -> list[str]:
    """The string literals of a grammar (for LlamaModel.preferred_tokens)."""
    out = []
    for match in _LITERAL.finditer(grammar):
        out.append(match.group(1).replace('\\"', '"').replace('\\\\', '\\'))
    return out
