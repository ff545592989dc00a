"""VSR statements (vsr/vsr_statements.jsonl of the ../shared/eval format)."""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path


@dataclass(frozen=True)
class VsrStatement:
    """'The <subject> is <relation> the <object>.' and whether it is true for the image."""

    image: str
    subject: str
    relation: str
    object: str
    label: bool
    caption: str


def read_vsr_statements(path: Path) -> list[VsrStatement]:
    """Statements of a VSR jsonl file; subject and object are cut out of the caption.

    Lines not of the form "The X is REL the Y." are skipped (no subject/object to judge).
    """
    out = []
    for line in Path(path).read_text(encoding='utf-8').splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        caption, relation = rec['caption'].strip(), rec['relation'].strip()
        middle = f' is {relation} the '
        if not caption.startswith('The ') or middle not in caption:
            continue
        subject, obj = caption[len('The '):].split(middle, 1)
        out.append(VsrStatement(image=rec['image'], subject=subject.strip().lower(),
                                relation=relation.lower(), object=obj.rstrip('.').strip().lower(),
                                label=bool(int(rec['label'])), caption=caption))
    return out
