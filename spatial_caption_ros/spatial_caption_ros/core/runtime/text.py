"""Sanitising untrusted text: class names from model metadata, knowledge files, prompt content."""

from __future__ import annotations

import re
import unicodedata

MAX_LABEL_LENGTH = 64
# Allowed in labels: letters, digits, space, _ - ' /. No '.': captions are verified sentence by
# sentence, and a full stop inside a class name would end a sentence in the middle of it.
_LABEL_BAD = re.compile(r"[^a-z0-9 _\-'/]+")
_SPACES = re.compile(r'\s+')
# Input characters read per output character at most (see sanitize_label).
_PRE_CUT = 8


def sanitize_label(text: object, max_length: int = MAX_LABEL_LENGTH) -> str:
    """A class name safe to show, log and put in a prompt: lower-case, printable, bounded.

    Control characters, markup and prompt-breaking punctuation are removed; what remains is
    letters, digits, spaces and - _ ' / (enough for every COCO or Open Images class name).
    """
    # Cut first (generously: whitespace and markup shrink below), so a megabyte of hostile
    # text costs no more than a label's worth of work.
    s = str(text)[:_PRE_CUT * max_length]
    s = unicodedata.normalize('NFKC', s).lower().replace('_', ' ')
    s = _LABEL_BAD.sub(' ', s)
    s = _SPACES.sub(' ', s).strip()
    return s[:max_length].strip() or 'object'


def sanitize_text(text: object, max_length: int = 512) -> str:
    """Free text for prompts and messages: printable characters only, one line, bounded."""
    s = unicodedata.normalize('NFKC', str(text)[:_PRE_CUT * max_length])
    s = ''.join(ch if ch.isprintable() else ' ' for ch in s)
    s = _SPACES.sub(' ', s).strip()
    return s[:max_length]
