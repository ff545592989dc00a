"""A GGUF language model through llama-cpp-python's llama.cpp bindings, driven by our own search.

`LlamaModel` is the binding: it gives search.py (greedy, beam, hybrid, sample) the next-token
logits of KV-cache sequences and llama.cpp grammar states as constraints. Why our own decoding
loop instead of Llama.create_completion:
- grammar checks on the top candidates first: llama-cpp-python's sampler chain applies the
  grammar to the whole vocabulary (262k tokens for Gemma 3, ~30 ms a token here); we check the
  40 best tokens, then the best 4096, and the whole vocabulary only when none of those fits;
- beam search: llama.cpp removed its beam-search API (llama-cpp-python 0.3.36 exposes none), so
  `beam` and `hybrid` decoding (search.py) run on llama.cpp's multi-sequence KV cache here:
  every beam is one sequence, the prompt is shared, forks copy cache cells (no recomputation),
  and all beams advance in one batched decode per step;
- a wall-clock deadline checked before every decode step (one step is one token, ~20-30 ms here;
  the prompt is one step of at most a few hundred tokens);
- the cached prompt prefix is reused between calls (only new prompt tokens are evaluated);
- forced spans: where the grammar admits one continuation text only (most of a facts
  grammar's text: "are several cars" after "There"), its canonical tokens go into the KV cache
  in one batched decode with logits for the last token only, instead of one decode (and one
  262k-token output projection) per token; see `LlamaModel._forced`;
- preferred tokens: a grammar admits many tokenisations of the same text, and a small model
  under a grammar often drifts into fragments (" ", "i", "ma", "ge" for " image"), which doubles
  the tokens to generate and makes the text improbable. When the caller passes the texts the
  grammar is made of, only tokens of their canonical tokenisation are tried first (the whole
  vocabulary remains the fallback, so the grammar can always be completed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import ctypes
import logging
from pathlib import Path
import re
import threading
import time

import numpy as np

from spatial_caption_ros.core.captioning.search import DECODINGS, search
from spatial_caption_ros.core.errors import CaptionError, ModelError
from spatial_caption_ros.core.perception.models import check_model_file
from spatial_caption_ros.core.runtime.text import sanitize_text

_log = logging.getLogger(__name__)

# Candidate-set sizes tried before applying the grammar to the whole vocabulary.
_CANDIDATE_STEPS = (40, 4096)
# Characters a forced span is probed with (one token each): a grammar whose text is ASCII,
# without negated classes or escapes of other characters, can produce no others.
_PROBE_CHARS = ''.join(chr(c) for c in (*range(9, 14), *range(32, 127)))
_NOT_PROBED = re.compile(r'[^\x00-\x7f]|\[\^|\\[xuU]')
# Longest forced span probed at once (characters).
_MAX_FORCED_CHARS = 256
_TOKEN_DATA = np.dtype([('id', np.int32), ('logit', np.float32), ('p', np.float32)])

_llama = None
_log_callback = None
# GGML log levels (ggml.h): DEBUG 1, INFO 2, WARN 3, ERROR 4.
_GGML_WARN, _GGML_ERROR = 3, 4
# llama.cpp's latest error lines: a failed load quotes them (why the file is not a usable GGUF).
_errors: deque[str] = deque(maxlen=8)
# One load at a time, so the error lines quoted belong to that load.
_load_lock = threading.Lock()
# "llama_model_load: error loading model: " before the reason itself.
_ERROR_PREFIX = re.compile(r'^(\w+: )+(error loading model: )?')


def _lib():
    """Import llama_cpp once and route its log lines to Python logging (warnings and up)."""
    global _llama, _log_callback
    if _llama is None:
        try:
            import llama_cpp
        except ImportError as exc:   # pragma: no cover - installed by make setup
            raise ModelError(f'llama-cpp-python is not installed: {exc}') from exc

        @llama_cpp.llama_log_callback
        def forward(level: int, text: bytes, _user) -> None:
            if level in (_GGML_WARN, _GGML_ERROR):
                message = text.decode('utf-8', 'replace').rstrip()
                if message:
                    _log.debug('llama.cpp: %s', message)
                    if level == _GGML_ERROR:
                        _errors.append(message)

        llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _llama, _log_callback = llama_cpp, forward
    return _llama


@dataclass
class Generation:
    """What one generate() call produced."""

    text: str
    stop_reason: str          # eos (complete) | max_tokens | timeout | stop (stop string)
    prompt_tokens: int
    generated_tokens: int
    prompt_s: float
    generate_s: float
    score: float = 0.0        # summed log-probability of the chosen tokens


class _Grammar:
    """A llama.cpp GBNF grammar state as a search.Constraint (one sampler per state)."""

    def __init__(self, model: LlamaModel, sampler, preferred: np.ndarray | None,
                 probe: bool) -> None:
        self.model, self.sampler, self.preferred, self.probe = model, sampler, preferred, probe

    def allowed(self, logits: np.ndarray, limit: int) -> list[tuple[int, float]]:
        return self.model._allowed(self.sampler, logits, limit, self.preferred)

    def after(self, token: int) -> _Grammar:
        state = _llama.llama_sampler_clone(self.sampler)
        _llama.llama_sampler_accept(state, token)
        return _Grammar(self.model, state, self.preferred, self.probe)

    def forced(self) -> list[int]:
        return self.model._forced(self.sampler) if self.probe else []

    def free(self) -> None:
        if self.sampler is not None:
            _llama.llama_sampler_free(self.sampler)
            self.sampler = None


class LlamaModel:
    """One GGUF model and one llama.cpp context; use from one thread at a time (locked)."""

    def __init__(self, path: str | Path, n_threads: int = 2, n_ctx: int = 1024,
                 max_beams: int = 1, chat_template: str = 'auto') -> None:
        lib = _lib()
        self.path = check_model_file(path)   # never hand a FIFO or a device to the loader
        self._lock = threading.Lock()
        self.max_beams = max(1, int(max_beams))
        n_seq = 2 * self.max_beams + 1      # 0: the prompt; beams of this step and the next
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = 0
        with _load_lock:
            _errors.clear()
            self._model = lib.llama_model_load_from_file(str(self.path).encode(), mparams)
            why = _ERROR_PREFIX.sub('', _errors[0]) if _errors else 'not a GGUF model'
        if not self._model:
            # The file's own bytes may be quoted (bad magic): keep the reason printable.
            raise ModelError(f'LLM file {self.path} cannot be loaded by llama.cpp: '
                             f'{sanitize_text(why, 200)} (expected a complete GGUF model)')
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = lib.llama_vocab_n_tokens(self._vocab)
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = int(n_ctx)
        cparams.n_batch = cparams.n_ubatch = min(512, int(n_ctx))
        cparams.n_threads = cparams.n_threads_batch = int(n_threads)
        cparams.n_seq_max = n_seq
        cparams.kv_unified = True          # beams share the prompt's cache cells
        cparams.no_perf = True
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lib.llama_model_free(self._model)
            self._model = None
            raise ModelError(f'llama.cpp could not create a context for {self.path} '
                             f'(n_ctx={n_ctx})')
        self.n_ctx = lib.llama_n_ctx(self._ctx)
        self.n_batch = cparams.n_batch
        self._mem = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(self.n_batch, 0, n_seq)
        self._cached: list[int] = []          # prompt tokens held by sequence 0
        self._pieces: dict[int, bytes] = {}
        self._boundaries: dict[bytes, np.ndarray] = {}
        self._full = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        self._full['id'] = np.arange(self.n_vocab, dtype=np.int32)
        self._end_tokens = {t for t in (lib.llama_vocab_eos(self._vocab),
                                        lib.llama_vocab_eot(self._vocab)) if t >= 0}
        self._probe = self._probe_tokens()
        # Default of generate(force=None): False decodes forced spans token by token (for
        # comparison: tools/bench_captions.py); the text is the same, only slower.
        self.force_spans = True
        # What the model computed so far: llama_decode calls, tokens evaluated (prompt
        # evaluations: only the part after the cached prefix; fed and generated tokens).
        self.decodes = self.tokens_evaluated = 0
        self.chat_template = self._resolve_template(chat_template)
        self.description = self._meta('general.name') or self.path.name

    # ------------------------------------------------------------ prompts

    def _meta(self, key: str) -> str:
        buf = ctypes.create_string_buffer(512)
        n = _llama.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode('utf-8', 'replace') if n >= 0 else ''

    def _resolve_template(self, name: str) -> bytes | None:
        """None: plain completion prompts; else the chat template llama.cpp applies."""
        if name in ('', 'none'):
            return None
        if name in ('auto', 'model'):
            template = _llama.llama_model_chat_template(self._model, None)
            if not template:
                if name == 'model':
                    raise ModelError(f'{self.path.name} has no chat template in its metadata; '
                                     f'set chat_template to a template name or to none')
                return None                 # base models (such as Gemma 3 270M) have none
            return template
        template = name.encode()
        self._apply_template(template, [('user', 'test')])   # unknown names fail here
        return template

    def _apply_template(self, template: bytes, messages: list[tuple[str, str]]) -> str:
        lib = _llama
        array = (lib.llama_chat_message * len(messages))()
        keep = []
        for i, (role, content) in enumerate(messages):
            keep.append((role.encode(), content.encode()))
            array[i].role, array[i].content = keep[-1]
        size = 4096
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = lib.llama_chat_apply_template(template, array, len(messages), True, buf, size)
            if n < 0:
                raise ModelError(f'llama.cpp does not know the chat template {template[:40]!r}')
            if n <= size:
                return buf.raw[:n].decode('utf-8', 'replace')
            size = n + 1
        raise ModelError('chat template output did not fit')  # pragma: no cover

    @property
    def uses_chat(self) -> bool:
        return self.chat_template is not None

    def format_prompt(self, system: str, user: str, completion: str) -> str:
        """A chat prompt (system + user turns) for instruction-tuned models, else `completion`."""
        if self.chat_template is None:
            return completion
        return self._apply_template(self.chat_template, [('system', system), ('user', user)])

    def tokenize(self, text: str, special: bool, add_special: bool = True) -> list[int]:
        """Token ids of `text`; add_special: with the model's BOS (a prompt's start)."""
        data = text.encode('utf-8')
        buf = (_llama.llama_token * (len(data) + 16))()
        n = _llama.llama_tokenize(self._vocab, data, len(data), buf, len(buf), add_special,
                                  special)
        if n < 0:
            raise CaptionError('prompt could not be tokenised')
        return list(buf[:n])

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = _llama.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = self._pieces[token] = buf.raw[:max(0, n)]
        return piece

    # ------------------------------------------------------------ search.SequenceModel

    def start(self, prompt: list[int]) -> int:
        """Evaluate `prompt` into sequence 0 (reusing the cached common prefix); returns 0."""
        self._prepare_prompt(prompt)
        self._live = {0: -1}                  # row -1: the prompt's last logits
        return 0

    def logits(self, seq: int) -> np.ndarray:
        ptr = _llama.llama_get_logits_ith(self._ctx, self._live[seq])
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def extend(self, extensions: list[tuple[int, int]]) -> list[int]:
        """Extend (parent sequence, token) pairs by one token each and decode them in one batch.

        A lone sequence continues in place; forks go to free sequences (the KV cells are copied
        by reference, nothing is recomputed). Sequence 0 keeps the prompt for the next call.
        """
        lib = _llama
        live = list(self._live)
        if len(live) == 1 and len(extensions) == 1:
            seqs = [live[0]]
        else:
            seqs = [s for s in range(1, 2 * self.max_beams + 1)
                    if s not in self._live][:len(extensions)]
        items = []
        for k, (parent, token) in enumerate(extensions):
            if seqs[k] != parent:
                lib.llama_memory_seq_rm(self._mem, seqs[k], -1, -1)
                lib.llama_memory_seq_cp(self._mem, parent, seqs[k], -1, -1)
            items.append((token, self._pos, seqs[k], True))
        for seq in live:
            if seq not in seqs:
                lib.llama_memory_seq_rm(self._mem, seq, len(self._cached) if seq == 0 else -1,
                                        -1)
        self._decode(items)
        self._pos += 1
        self._live = {seq: row for row, seq in enumerate(seqs)}
        return seqs

    def feed(self, seq: int, tokens: list[int]) -> int:
        """Extend the lone live sequence by `tokens` in batched decodes (logits of the last)."""
        assert list(self._live) == [seq], 'feed extends the only live sequence'
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            last = start + len(chunk) == len(tokens)
            self._decode([(t, self._pos + i, seq, last and i == len(chunk) - 1)
                          for i, t in enumerate(chunk)])
            self._pos += len(chunk)
        self._live = {seq: -1}
        return seq

    def is_end(self, token: int) -> bool:
        return token in self._end_tokens or bool(_llama.llama_vocab_is_eog(self._vocab, token))

    # ------------------------------------------------------------ decoding internals

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, want_logits) items as one batch."""
        b = self._batch
        b.n_tokens = len(items)
        for i, (token, pos, seq, logits) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i] = token, pos, 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if logits else 0
        self.decodes += 1
        self.tokens_evaluated += len(items)
        rc = _llama.llama_decode(self._ctx, b)
        if rc != 0:
            raise CaptionError(f'llama_decode failed with code {rc}')

    def preferred_tokens(self, texts: list[str]) -> np.ndarray:
        """Token ids of the canonical tokenisations of `texts` (with and without a space)."""
        ids: set[int] = set(self._end_tokens)
        for text in texts:
            for variant in (text, ' ' + text):
                ids.update(self.tokenize(variant, special=False))
        ids.discard(_llama.llama_vocab_bos(self._vocab))
        return np.array(sorted(ids), dtype=np.int32)

    def _allowed(self, grammar, logits: np.ndarray, limit: int,
                 preferred: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The best `limit` tokens the grammar allows, as (token, logit), best first."""
        if preferred is not None:
            found = self._apply_grammar(grammar, preferred, logits[preferred])
            boundary = self._boundary_tokens(preferred)
            out = [(t, v) for t, v in found if self._word_final(grammar, t, boundary)][:limit]
            if out:
                return out
        for k in _CANDIDATE_STEPS:
            if k >= self.n_vocab:
                break
            ids = np.argpartition(-logits, k)[:k]
            ids = np.union1d(ids, list(self._end_tokens)).astype(np.int32)
            found = self._apply_grammar(grammar, ids, logits[ids])
            if found:
                return found[:limit]
        return self._apply_grammar(grammar, None, logits)[:limit]

    def _probe_tokens(self) -> tuple[np.ndarray, dict[int, str]] | None:
        """One token per probe character, and the end tokens; None: the vocabulary lacks one."""
        chars = {}
        for c in _PROBE_CHARS:
            ids = self.tokenize(c, special=False, add_special=False)
            if len(ids) != 1 or self._piece(ids[0]) != c.encode():
                return None
            chars[ids[0]] = c
        ids = np.array(sorted(set(chars) | self._end_tokens), dtype=np.int32)
        return ids, chars

    def _forced(self, grammar) -> list[int]:
        """Tokens of the text `grammar` forces next, then an end token if it must end there.

        The grammar is probed character by character: while it allows exactly one of the
        probe characters (all it can produce, see _PROBE_CHARS), that character is forced. The
        forced text is tokenised canonically, and only the tokens that the canonical
        tokenisation of the text followed by any character the grammar allows next keeps are
        returned: a forced "the car" before "s" or " " gives " the" alone, so the model may
        still choose " cars" as one token. [] when nothing is forced.
        """
        ids, chars = self._probe
        state = _llama.llama_sampler_clone(grammar)
        text, follow = [], []
        try:
            while len(text) < _MAX_FORCED_CHARS:
                follow = [t for t, _ in self._apply_grammar(state, ids,
                                                             np.zeros(len(ids), np.float32))]
                if len(follow) != 1 or follow[0] in self._end_tokens:
                    break           # a choice, the end (eos, eot), or nothing
                text.append(chars[follow[0]])
                _llama.llama_sampler_accept(state, follow[0])
        finally:
            _llama.llama_sampler_free(state)
        ends = follow[:1] if follow and self._end_tokens.issuperset(follow) else []
        if not text:
            return ends
        forced = ''.join(text)
        tokens = self.tokenize(forced, special=False, add_special=False)
        if ends:
            return tokens + ends
        keep = len(tokens) if follow else 0
        for t in follow:
            after = self.tokenize(forced + chars.get(t, ''), special=False, add_special=False)
            shared = 0
            while shared < min(keep, len(after)) and tokens[shared] == after[shared]:
                shared += 1
            keep = shared
        return tokens[:keep]

    def _boundary_tokens(self, preferred: np.ndarray) -> np.ndarray:
        """The preferred tokens that start a new word (space or punctuation first), and ends."""
        key = preferred.tobytes()
        if key not in self._boundaries:
            ids = [t for t in preferred.tolist()
                   if t in self._end_tokens or not self._piece(t)[:1].isalnum()]
            self._boundaries = {key: np.array(ids, dtype=np.int32)}
        return self._boundaries[key]

    def _word_final(self, grammar, token: int, boundary: np.ndarray) -> bool:
        """False when `token` ends inside a word the grammar must continue (" a" of " and").

        A token ending in a letter or digit is word-final only if the grammar, after it, allows
        a token that starts a new word or ends the text. A token ending in a space never is:
        SentencePiece and byte-level BPE vocabularies attach a space to the word after it.
        """
        piece = self._piece(token)
        if piece[-1:].isspace():
            return False
        if not piece or not piece[-1:].isalnum():
            return True
        state = _llama.llama_sampler_clone(grammar)
        try:
            _llama.llama_sampler_accept(state, token)
            return bool(self._apply_grammar(state, boundary, np.zeros(len(boundary),
                                                                      np.float32)))
        finally:
            _llama.llama_sampler_free(state)

    def _apply_grammar(self, grammar, ids, logits) -> list[tuple[int, float]]:
        if ids is None:
            data = self._full
            data['logit'] = logits
        else:
            data = np.zeros(len(ids), dtype=_TOKEN_DATA)
            data['id'], data['logit'] = ids, logits
        array = _llama.llama_token_data_array(
            data=data.ctypes.data_as(_llama.llama_token_data_p), size=len(data), selected=-1,
            sorted=False)
        _llama.llama_sampler_apply(grammar, ctypes.byref(array))
        ok = np.isfinite(data['logit'])
        order = np.argsort(-data['logit'][ok])
        return [(int(t), float(v)) for t, v in zip(data['id'][ok][order],
                                                   data['logit'][ok][order], strict=True)]

    def _prepare_prompt(self, tokens: list[int]) -> None:
        """Make sequence 0 hold `tokens` with the last token's logits at batch row 0."""
        lib = _llama
        for seq in range(1, 2 * self.max_beams + 1):
            lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
        common = 0
        for a, b in zip(self._cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)     # the last token is always re-evaluated
        if not lib.llama_memory_seq_rm(self._mem, 0, common, -1):
            lib.llama_memory_clear(self._mem, True)
            common = 0
        self._cached = tokens[:common]
        for start in range(common, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            last = start + len(chunk) == len(tokens)
            self._decode([(t, start + i, 0, last and i == len(chunk) - 1)
                          for i, t in enumerate(chunk)])
        self._cached = list(tokens)
        self._pos = len(tokens)

    # ------------------------------------------------------------ generation

    def generate(self, prompt: str, grammar: str | None = None, max_tokens: int = 96,
                 timeout: float = 5.0, decoding: str = 'greedy', beam_width: int = 3,
                 greedy_tokens: int = 4, temperature: float = 0.7, seed: int = 0,
                 stop: tuple[str, ...] = ('\n',),
                 preferred: np.ndarray | None = None,
                 force: bool | None = None) -> Generation:
        """Continue `prompt` under `grammar` (GBNF; None: free text ending at a stop string).

        `preferred`: token ids to try first (see preferred_tokens); None: the whole vocabulary.
        `force`: feed the spans the grammar forces in one batch (search.py; greedy, sample);
        None: self.force_spans.
        """
        if decoding not in DECODINGS:
            raise CaptionError(f'unknown decoding {decoding!r}; one of {", ".join(DECODINGS)}')
        with self._lock:
            return self._generate(prompt, grammar, max_tokens, time.monotonic() + timeout,
                                  decoding, min(beam_width, self.max_beams), greedy_tokens,
                                  temperature, seed, stop, preferred,
                                  self.force_spans if force is None else force)

    def _generate(self, prompt, grammar_text, max_tokens, deadline, decoding, width,
                  greedy_tokens, temperature, seed, stop, preferred, force) -> Generation:
        lib = _llama
        t0 = time.perf_counter()
        tokens = self.tokenize(prompt, special=self.uses_chat)
        if len(tokens) + max_tokens > self.n_ctx:
            raise CaptionError(f'prompt ({len(tokens)} tokens) + max_tokens ({max_tokens}) '
                               f'exceed the context size {self.n_ctx}')
        if time.monotonic() > deadline:
            return Generation('', 'timeout', len(tokens), 0, 0.0, 0.0)
        constraint = None
        if grammar_text:
            sampler = lib.llama_sampler_init_grammar(self._vocab, grammar_text.encode(),
                                                     b'root')
            if not sampler:
                raise CaptionError('llama.cpp rejected the caption grammar')
            probe = self._probe is not None and not _NOT_PROBED.search(grammar_text)
            constraint = _Grammar(self, sampler, preferred, probe)
        stopped = None
        if grammar_text is None and stop:
            def stopped(ids: list[int]) -> bool:
                return any(s in self._text(ids).lstrip() for s in stop)
        try:
            try:
                root = self.start(tokens)
            except BaseException:
                if constraint is not None:
                    constraint.free()
                raise
            t1 = time.perf_counter()
            # search() owns the constraint from here (it frees every state it made)
            found = search(self, root, constraint, max_tokens=max_tokens, deadline=deadline,
                           decoding=decoding, width=width, greedy_tokens=greedy_tokens,
                           temperature=temperature, seed=seed, stopped=stopped, force=force)
        finally:
            for seq in range(1, 2 * self.max_beams + 1):
                lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
            lib.llama_memory_seq_rm(self._mem, 0, len(tokens), -1)
        text = self._text(found.tokens).lstrip()
        if found.stop_reason == 'stop':
            for s in stop:
                text = text.split(s)[0]
        return Generation(text, found.stop_reason, len(tokens), len(found.tokens), t1 - t0,
                          time.perf_counter() - t1, score=found.score)

    def _text(self, tokens: list[int]) -> str:
        return b''.join(self._piece(t) for t in tokens).decode('utf-8', 'ignore')

    def forget_prompt(self) -> None:
        """Drop the cached prompt prefix: the next call evaluates its whole prompt.

        Reusing a cached prefix evaluates the rest of a prompt in different batches, so logits
        differ in their last bits from a fresh evaluation, and a close call between two words
        can go either way. Offline runs call this at the start of every chunk of frames, so a
        chunk's captions are the same wherever (and after whatever) it runs.
        """
        with self._lock:
            if getattr(self, '_ctx', None):
                _llama.llama_memory_clear(self._mem, True)
            self._cached = []
            self._pos = 0

    def close(self) -> None:
        """Free the context and the model (unmaps the GGUF file)."""
        with self._lock:
            if getattr(self, '_ctx', None):
                _llama.llama_batch_free(self._batch)
                _llama.llama_free(self._ctx)
                self._ctx = None
            if getattr(self, '_model', None):
                _llama.llama_model_free(self._model)
                self._model = None

    def __del__(self) -> None:
        # A model dropped without close() must not keep its file mapped and its memory.
        if getattr(self, '_lock', None) is not None:
            self.close()

