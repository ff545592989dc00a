"""Commonsense knowledge about object classes: size priors, affordances and ConceptNet-style facts.

The package ships data/knowledge/coco80.yaml; users add or override classes with their own YAML
files (same format) through the `knowledge_files` parameter, and may link a local ConceptNet 5
assertions dump (CSV) through `conceptnet_file`. All text read from these files is sanitised and
bounded before it can reach a message or a prompt.

File format (every section optional; docs/scene_graph.md has the details):

    classes:                      # per class: size prior and/or facts
      cup:
        size_m: {height: 0.10, width: 0.08, length: 0.08}
        size_rel_std: 0.25
        facts: {UsedFor: [drinking]}
    facts:                        # more facts by class, merged with the ones under `classes`
      cup: {AtLocation: [kitchen, table]}
    affordances:                  # which classes can support or contain other objects
      support: [dining table, bench]
      contain: [cup, bowl]

Merging over several files: a later file's size prior replaces an earlier one; facts and
affordances are added (duplicates dropped).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
import gzip
import io
import json
import math
from pathlib import Path
import reprlib
from typing import Any

import yaml

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.runtime.resources import data_file
from spatial_caption_ros.core.runtime.text import sanitize_label, sanitize_text

DEFAULT_KNOWLEDGE_FILE = data_file('knowledge/coco80.yaml')
# Facts kept per class: enough for a rich context, bounded so a message stays small.
MAX_FACTS_PER_CLASS = 32
MAX_FILE_BYTES = 16 * 1024 * 1024
# Affordances the scene graph uses: `support` gates "on", `contain` gates "inside".
AFFORDANCES = ('support', 'contain')
# ConceptNet 5 relations worth attaching to a detected object as context. Others (Synonym,
# RelatedTo, FormOf, ExternalURL, ...) are lexical, not facts about the object.
CONCEPTNET_RELATIONS = (
    'IsA', 'PartOf', 'HasA', 'UsedFor', 'CapableOf', 'AtLocation', 'HasProperty', 'MadeOf',
    'ReceivesAction', 'LocatedNear', 'Desires', 'CreatedBy', 'HasPrerequisite')
# Default cap on ConceptNet facts per class (the strongest edges by ConceptNet weight win).
CONCEPTNET_FACTS_PER_CLASS = 12


@dataclass(frozen=True)
class SizePrior:
    """Typical physical size of an object class in metres and its relative spread."""

    height: float
    width: float
    length: float
    rel_std: float


@dataclass(frozen=True)
class ClassKnowledge:
    """What the knowledge base knows about one class."""

    name: str
    size: SizePrior | None
    facts: tuple[tuple[str, str], ...] = ()
    affordances: frozenset[str] = field(default_factory=frozenset)


class KnowledgeBase:
    """Class-name lookup of size priors, affordances and facts, merged from several files."""

    def __init__(self, classes: dict[str, ClassKnowledge]) -> None:
        self._classes = classes
        self._by_raw_name: dict[str, ClassKnowledge | None] = {}   # lookup cache

    @classmethod
    def load(cls, extra_files: tuple[str, ...] | list[str] = (),
             include_default: bool = True, conceptnet_file: str = '',
             conceptnet_facts_per_class: int = CONCEPTNET_FACTS_PER_CLASS) -> KnowledgeBase:
        """Load the shipped file (unless disabled), then each extra file, then ConceptNet."""
        classes: dict[str, ClassKnowledge] = {}
        paths = ([DEFAULT_KNOWLEDGE_FILE] if include_default else []) + [Path(p) for p in
                                                                         extra_files]
        for path in paths:
            for name, entry in _read_file(Path(path)).items():
                classes[name] = _merge(classes.get(name), entry)
        if conceptnet_file:
            linked = load_conceptnet_csv(conceptnet_file, list(classes),
                                         conceptnet_facts_per_class)
            for name, facts in linked.items():
                classes[name] = _merge(classes[name], ClassKnowledge(name, None, facts))
        return cls(classes)

    def __len__(self) -> int:
        return len(self._classes)

    def class_names(self) -> list[str]:
        return sorted(self._classes)

    def lookup(self, class_name: str) -> ClassKnowledge | None:
        try:
            return self._by_raw_name[class_name]
        except KeyError:
            entry = self._classes.get(sanitize_label(class_name))
            if len(self._by_raw_name) < 4096:     # bounded: class names come from models
                self._by_raw_name[class_name] = entry
            return entry

    def size_prior(self, class_name: str) -> SizePrior | None:
        entry = self.lookup(class_name)
        return entry.size if entry else None

    def facts(self, class_name: str) -> tuple[tuple[str, str], ...]:
        entry = self.lookup(class_name)
        return entry.facts if entry else ()

    def found_in(self, class_name: str, container: str) -> bool:
        """The knowledge says objects of `class_name` are found in or on a `container`.

        An AtLocation fact naming the container's class, alone or as the last words ("fruit
        bowl": in a bowl; "vase": flowers in a vase).
        """
        container = container.lower()
        return any(rel == 'AtLocation' and (value == container or value.endswith(
            ' ' + container)) for rel, value in self.facts(class_name))

    def affords(self, class_name: str, affordance: str) -> bool:
        """Whether objects of this class can `support` or `contain` other objects."""
        entry = self.lookup(class_name)
        return entry is not None and affordance in entry.affordances


def _merge(old: ClassKnowledge | None, new: ClassKnowledge) -> ClassKnowledge:
    """`new` over `old`: its size prior wins when given; facts and affordances are added."""
    if old is None:
        return new
    facts = list(old.facts)
    seen = set(facts)
    for fact in new.facts:
        if fact not in seen and len(facts) < MAX_FACTS_PER_CLASS:
            facts.append(fact)
            seen.add(fact)
    return replace(old, size=new.size or old.size, facts=tuple(facts),
                   affordances=old.affordances | new.affordances)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring = 2, 4, 4, 60


def _shown(value: Any) -> str:
    """A short repr for error messages (YAML aliases can nest a file into a huge value)."""
    return _REPR.repr(value)


def _positive(value: Any, what: str, path: Path) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f'{path}: {what} must be a number, got {_shown(value)}') from None
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f'{path}: {what} must be a positive number, got {_shown(value)}')
    return v


def _scalars(values: Any, where: str, path: Path) -> list[Any]:
    """A value or list of values, each a plain scalar (text, number or boolean).

    Nested lists and mappings are refused rather than turned into text: YAML aliases can nest
    one small file into a value whose text would take gigabytes ("billion laughs").
    """
    items = values if isinstance(values, list) else [values]
    for item in items:
        if not isinstance(item, (str, int, float, bool)):
            raise ConfigError(f'{path}: {where} must be text or a list of texts, got '
                              f'{_shown(item)}')
    return items


def _facts(mapping: Any, where: str, path: Path) -> list[tuple[str, str]]:
    if not mapping:
        return []
    if not isinstance(mapping, dict):
        raise ConfigError(f'{path}: {where} must map relation names to values')
    out: list[tuple[str, str]] = []
    for relation, values in mapping.items():
        rel = sanitize_text(relation, 32)
        for value in _scalars(values, f'{where}.{rel}', path):
            if len(out) == MAX_FACTS_PER_CLASS:   # aliases can repeat one list many times
                return out
            out.append((rel, sanitize_text(value, 96)))
    return out


def _read_file(path: Path) -> dict[str, ClassKnowledge]:
    if not path.is_file():
        raise ConfigError(f'knowledge file {path} does not exist')
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f'knowledge file {path} is larger than {MAX_FILE_BYTES} bytes')
    try:
        with open(path, encoding='utf-8') as f:
            doc = yaml.safe_load(f) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f'knowledge file {path} is not valid YAML: {exc}') from exc
    if not isinstance(doc, dict) or not any(k in doc for k in ('classes', 'facts',
                                                               'affordances')):
        raise ConfigError(f'knowledge file {path} needs a top-level "classes", "facts" or '
                          f'"affordances" mapping')
    out: dict[str, ClassKnowledge] = {}

    def add(entry: ClassKnowledge) -> None:
        out[entry.name] = _merge(out.get(entry.name), entry)

    entries = doc.get('classes') or {}
    if not isinstance(entries, dict):
        raise ConfigError(f'knowledge file {path}: "classes" must be a mapping')
    for raw_name, item in entries.items():
        name = sanitize_label(raw_name)
        item = item or {}
        if not isinstance(item, dict):
            raise ConfigError(f'{path}: entry {name!r} must be a mapping')
        size = None
        if 'size_m' in item:
            s = item['size_m'] or {}
            if not isinstance(s, dict):
                raise ConfigError(f'{path}: {name}.size_m must map height, width and length to '
                                  f'metres, got {_shown(s)}')
            size = SizePrior(
                height=_positive(s.get('height'), f'{name}.size_m.height', path),
                width=_positive(s.get('width'), f'{name}.size_m.width', path),
                length=_positive(s.get('length'), f'{name}.size_m.length', path),
                rel_std=_positive(item.get('size_rel_std', 0.3), f'{name}.size_rel_std', path))
        facts = _facts(item.get('facts'), f'{name}.facts', path)
        add(ClassKnowledge(name=name, size=size, facts=tuple(facts[:MAX_FACTS_PER_CLASS])))
    extra_facts = doc.get('facts') or {}
    if not isinstance(extra_facts, dict):
        raise ConfigError(f'knowledge file {path}: "facts" must map class names to facts')
    for raw_name, mapping in extra_facts.items():
        name = sanitize_label(raw_name)
        facts = _facts(mapping, f'facts.{name}', path)
        add(ClassKnowledge(name=name, size=None, facts=tuple(facts[:MAX_FACTS_PER_CLASS])))
    affordances = doc.get('affordances') or {}
    if not isinstance(affordances, dict):
        raise ConfigError(f'knowledge file {path}: "affordances" must map '
                          f'{"/".join(AFFORDANCES)} to class lists')
    for affordance, names in affordances.items():
        if affordance not in AFFORDANCES:
            raise ConfigError(f'{path}: unknown affordance {_shown(affordance)}; known: '
                              f'{", ".join(AFFORDANCES)}')
        for raw_name in _scalars(names or [], f'affordances.{affordance}', path):
            name = sanitize_label(raw_name)
            add(ClassKnowledge(name=name, size=None, affordances=frozenset({affordance})))
    return out

# ---------------------------------------------------------------- ConceptNet


def _concept_term(node: str) -> str | None:
    """'/c/en/dining_table/n' -> 'dining table'; None for other languages or malformed nodes."""
    parts = node.split('/')
    if len(parts) < 4 or parts[1] != 'c' or parts[2] != 'en' or not parts[3]:
        return None
    return parts[3].replace('_', ' ')


def load_conceptnet_csv(path: str | Path, class_names: list[str],
                        facts_per_class: int = CONCEPTNET_FACTS_PER_CLASS
                        ) -> dict[str, tuple[tuple[str, str], ...]]:
    """Facts about `class_names` from a ConceptNet 5 assertions dump (plain or .gz CSV).

    The dump is the official `conceptnet-assertions-5.x.csv(.gz)`: tab-separated columns edge
    URI, relation (/r/UsedFor), start node (/c/en/cup/n), end node, JSON info with a `weight`.
    The file is streamed (the full dump is ~10 GB uncompressed): only English edges whose start
    is one of the classes and whose relation is in CONCEPTNET_RELATIONS are kept, the strongest
    `facts_per_class` per class by weight.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f'conceptnet_file {p} does not exist')
    wanted = {sanitize_label(n) for n in class_names}
    relations = {f'/r/{r}': r for r in CONCEPTNET_RELATIONS}
    found: dict[str, list[tuple[float, str, str]]] = {}
    opener = gzip.open if p.suffix == '.gz' else open
    try:
        with opener(p, 'rt', encoding='utf-8', errors='replace', newline='') as f:
            for row in csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE):
                if len(row) < 4 or row[1] not in relations:
                    continue
                start, end = _concept_term(row[2]), _concept_term(row[3])
                if start is None or end is None or start not in wanted:
                    continue
                weight = 1.0
                if len(row) > 4:
                    try:
                        weight = float(json.loads(row[4]).get('weight', 1.0))
                    except (ValueError, AttributeError, TypeError):
                        weight = 1.0
                found.setdefault(start, []).append(
                    (weight, relations[row[1]], sanitize_text(end, 96)))
    except (OSError, EOFError, gzip.BadGzipFile, io.UnsupportedOperation, csv.Error) as exc:
        raise ConfigError(f'conceptnet_file {p} cannot be read: {exc}') from exc
    out = {}
    for name, items in found.items():
        items.sort(key=lambda t: (-t[0], t[1], t[2]))
        unique: list[tuple[str, str]] = []
        for _, rel, value in items:
            if (rel, value) not in unique and value != name:
                unique.append((rel, value))
            if len(unique) == facts_per_class:
                break
        out[name] = tuple(unique)
    return out
