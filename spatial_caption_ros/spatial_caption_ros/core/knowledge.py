"""Commonsense knowledge about object classes: physical size priors and ConceptNet-style facts.

The package ships data/knowledge/coco80.yaml; users add or override classes with their own YAML
files (same format) through the `knowledge_files` parameter. All text read from these files is
sanitised and bounded before it can reach a message or a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Any

import yaml

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.resources import data_file
from spatial_caption_ros.core.text import sanitize_label, sanitize_text

DEFAULT_KNOWLEDGE_FILE = data_file('knowledge/coco80.yaml')
MAX_FACTS_PER_CLASS = 32
MAX_FILE_BYTES = 16 * 1024 * 1024


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


class KnowledgeBase:
    """Class-name lookup of size priors and facts, merged from one or more YAML files."""

    def __init__(self, classes: dict[str, ClassKnowledge]) -> None:
        self._classes = classes

    @classmethod
    def load(cls, extra_files: tuple[str, ...] | list[str] = (),
             include_default: bool = True) -> KnowledgeBase:
        """Load the shipped file (unless disabled) and then each extra file, later ones winning."""
        classes: dict[str, ClassKnowledge] = {}
        paths = ([DEFAULT_KNOWLEDGE_FILE] if include_default else []) + [Path(p) for p in
                                                                         extra_files]
        for path in paths:
            classes.update(_read_file(Path(path)))
        return cls(classes)

    def __len__(self) -> int:
        return len(self._classes)

    def class_names(self) -> list[str]:
        return sorted(self._classes)

    def lookup(self, class_name: str) -> ClassKnowledge | None:
        return self._classes.get(sanitize_label(class_name))

    def size_prior(self, class_name: str) -> SizePrior | None:
        entry = self.lookup(class_name)
        return entry.size if entry else None

    def facts(self, class_name: str) -> tuple[tuple[str, str], ...]:
        entry = self.lookup(class_name)
        return entry.facts if entry else ()


def _positive(value: Any, what: str, path: Path) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f'{path}: {what} must be a number, got {value!r}') from None
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f'{path}: {what} must be a positive number, got {value!r}')
    return v


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
    entries = doc.get('classes') if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f'knowledge file {path} needs a top-level "classes" mapping')
    out: dict[str, ClassKnowledge] = {}
    for raw_name, item in entries.items():
        name = sanitize_label(raw_name)
        item = item or {}
        if not isinstance(item, dict):
            raise ConfigError(f'{path}: entry {name!r} must be a mapping')
        size = None
        if 'size_m' in item:
            s = item['size_m'] or {}
            size = SizePrior(
                height=_positive(s.get('height'), f'{name}.size_m.height', path),
                width=_positive(s.get('width'), f'{name}.size_m.width', path),
                length=_positive(s.get('length'), f'{name}.size_m.length', path),
                rel_std=_positive(item.get('size_rel_std', 0.3), f'{name}.size_rel_std', path))
        facts = []
        for relation, values in (item.get('facts') or {}).items():
            rel = sanitize_text(relation, 32)
            for value in values if isinstance(values, list) else [values]:
                facts.append((rel, sanitize_text(value, 96)))
        out[name] = ClassKnowledge(name=name, size=size,
                                   facts=tuple(facts[:MAX_FACTS_PER_CLASS]))
    return out
