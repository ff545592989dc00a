"""Sanitising untrusted text: class names from model metadata, knowledge files, prompt content."""

from __future__ import annotations

import re
import unicodedata

MAX_LABEL_LENGTH = 64
_LABEL_BAD = re.compile(r"[^a-z0-9 _\-'./]+")
_SPACES = re.compile(r'\s+')


def sanitize_label(text: object, max_length: int = MAX_LABEL_LENGTH) -> str:
    """A class name safe to show, log and put in a prompt: lower-case, printable, bounded.

    Control characters, markup and prompt-breaking punctuation are removed; what remains is
    letters, digits, spaces and - _ ' . / (enough for every COCO or Open Images class name).
    """
    s = unicodedata.normalize('NFKC', str(text)).lower().replace('_', ' ')
    s = _LABEL_BAD.sub(' ', s)
    s = _SPACES.sub(' ', s).strip()
    return s[:max_length].strip() or 'object'


def sanitize_text(text: object, max_length: int = 512) -> str:
    """Free text for prompts and messages: printable characters only, one line, bounded."""
    s = unicodedata.normalize('NFKC', str(text))
    s = ''.join(ch if ch.isprintable() else ' ' for ch in s)
    s = _SPACES.sub(' ', s).strip()
    return s[:max_length]
