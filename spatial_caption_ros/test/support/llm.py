"""The real LLM of the tests: Gemma 3 270M from make setup, and the mark that skips without it."""

from __future__ import annotations

import pytest

from spatial_caption_ros.core.errors import ModelError
from spatial_caption_ros.core.perception.models import resolve_model

try:
    GEMMA = resolve_model('gemma3_270m_q4_k_m', task='llm')
except ModelError:
    GEMMA = None
needs_llm = pytest.mark.skipif(GEMMA is None, reason='Gemma GGUF missing: run make setup')
