"""Token search over any language model: greedy, beam, hybrid and seeded sampling.

The search only needs "the next-token logits of these sequences" (`SequenceModel`) and, for
constrained output, a `Constraint` that says which tokens may follow. llm.py implements both on
llama.cpp (KV-cache sequences, GBNF grammars); the unit tests use a toy vocabulary, so the search
is tested without a GGUF.

Scores are summed token log-probabilities (log-softmax over the whole vocabulary) without length
normalisation: under a facts grammar every finished candidate states the same facts. The beam
search stops when a finished candidate scores at least as well as every live beam (scores only
fall as beams grow, so nothing better can still be found).

Forced spans (`force=True`, greedy and sampling, and hybrid's greedy part): where the constraint
admits only one continuation text ("are several cars" after "There" under a facts grammar), its
tokens are fed to the model in one batch, with logits for the last one only, instead of one
decode step each. A forced token has probability one under the constraint; it adds nothing to
the score (which is then the log-probability of the model's choices, not of the whole text).
Beam steps never force, so beam scores stay comparable likelihoods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
import time
from typing import Protocol

import numpy as np

DECODINGS = ('greedy', 'beam', 'hybrid', 'sample')
# Tokens the sampler draws from (the best allowed ones).
SAMPLE_TOP_K = 40


class Constraint(Protocol):
    """Which tokens may come next (a grammar state); immutable from the search's point of view."""

    def allowed(self, logits: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """The best `limit` allowed tokens as (token, logit), best first."""

    def after(self, token: int) -> Constraint:
        """A new state: this one after `token` (this one is left as it is)."""

    def forced(self) -> list[int]:
        """Tokens of the one text the constraint admits next, [] when there is a choice.

        Ends with an end token when the text must end after them.
        """

    def free(self) -> None:
        """Release the state (native resources)."""


class SequenceModel(Protocol):
    """Next-token logits of live token sequences that share one prompt.

    Sequences are opaque integer handles. `start` evaluates the prompt and returns the root
    sequence; `extend` replaces the live set by the given (parent, token) extensions, in order,
    and returns their handles (a parent may be extended several times or not at all).
    """

    def start(self, prompt: list[int]) -> int: ...

    def logits(self, seq: int) -> np.ndarray: ...

    def extend(self, extensions: list[tuple[int, int]]) -> list[int]: ...

    def feed(self, seq: int, tokens: list[int]) -> int:
        """Extend the only live sequence by several tokens at once (logits of the last)."""

    def is_end(self, token: int) -> bool: ...


class TopK:
    """No constraint: the best tokens of the whole vocabulary."""

    def allowed(self, logits: np.ndarray, limit: int) -> list[tuple[int, float]]:
        if limit >= len(logits):
            top = np.arange(len(logits))
        else:
            top = np.argpartition(-logits, limit)[:limit]
        return [(int(t), float(logits[t])) for t in top[np.argsort(-logits[top])]]

    def after(self, token: int) -> TopK:
        return self

    def forced(self) -> list[int]:
        return []

    def free(self) -> None:
        return None


@dataclass
class SearchResult:
    """Best token sequence found, why the search stopped, and its summed log-probability."""

    tokens: list[int]
    stop_reason: str          # eos | stop (stop test) | max_tokens | timeout | grammar
    score: float


@dataclass
class _Beam:
    tokens: list[int]
    score: float
    constraint: Constraint
    seq: int


def search(model: SequenceModel, root: int, constraint: Constraint | None, *,
           max_tokens: int, deadline: float, decoding: str = 'greedy', width: int = 1,
           greedy_tokens: int = 4, temperature: float = 0.7, seed: int = 0,
           stopped: Callable[[list[int]], bool] | None = None,
           force: bool = False) -> SearchResult:
    """Extend sequence `root` of `model` token by token under `constraint` (None: any token).

    `deadline` is a time.monotonic() value checked before every step; `stopped(tokens)` ends a
    greedy search early (free text reaching a stop string); `force`: feed forced spans in one
    batch (module docstring).
    """
    if decoding not in DECODINGS:
        raise ValueError(f'unknown decoding {decoding!r}; one of {", ".join(DECODINGS)}')
    start = constraint if constraint is not None else TopK()
    beams = [_Beam([], 0.0, start, root)]
    rng = np.random.default_rng(seed)
    finished: list[tuple[float, list[int]]] = []
    stop_reason = 'max_tokens'
    try:
        while len(beams[0].tokens) < max_tokens:
            if time.monotonic() > deadline:
                stop_reason = 'timeout'
                break
            step = len(beams[0].tokens)
            beam_phase = decoding == 'beam' or (decoding == 'hybrid' and step >= greedy_tokens)
            span = beams[0].constraint.forced() if force and not beam_phase else []
            if span:
                if model.is_end(span[-1]) and len(span) <= max_tokens - step:
                    finished.append((beams[0].score, beams[0].tokens + span[:-1]))
                    stop_reason = 'eos'
                    break
                beams = [_feed(model, beams[0], span[:max_tokens - step])]
                continue
            candidates = _candidates(model, beams, width if beam_phase else 1,
                                     decoding == 'sample', temperature, rng)
            if not candidates:
                stop_reason = 'grammar'           # nothing allowed: cannot happen with GBNF
                break
            if not beam_phase:
                score, index, token = candidates[0]
                if model.is_end(token):
                    finished.append((score, beams[index].tokens))
                    stop_reason = 'eos'
                    break
                chosen = [candidates[0]]
            else:
                chosen = []
                for score, index, token in candidates:
                    if model.is_end(token):
                        finished.append((score, beams[index].tokens))
                    elif len(chosen) < width:
                        chosen.append((score, index, token))
                # Scores only fall as beams grow: a finished candidate at least as good as
                # every live beam is the best the search can find.
                if finished and (not chosen or max(f[0] for f in finished) >= chosen[0][0]):
                    stop_reason = 'eos'
                    break
            if stopped is not None:
                score, index, token = chosen[0]
                if stopped(beams[index].tokens + [token]):
                    finished.append((score, beams[index].tokens + [token]))
                    stop_reason = 'stop'
                    break
            beams = _advance(model, beams, chosen)
        if stop_reason in ('eos', 'stop'):
            score, best = max(finished, key=lambda f: f[0])
        else:
            top = max(beams, key=lambda b: b.score)
            score, best = top.score, top.tokens
    finally:
        for beam in beams:
            beam.constraint.free()
    return SearchResult(best, stop_reason, score)


def _candidates(model: SequenceModel, beams: list[_Beam], keep: int, sample: bool,
                temperature: float, rng) -> list[tuple[float, int, int]]:
    """(score, beam index, token) extensions the constraint allows, best first."""
    out = []
    for index, beam in enumerate(beams):
        logits = model.logits(beam.seq)
        allowed = beam.constraint.allowed(logits, max(keep, 1))
        if sample and allowed:
            wider = beam.constraint.allowed(logits, SAMPLE_TOP_K)
            allowed = [wider[_sample(wider, temperature, rng)]]
        norm = _logsumexp(logits)
        out.extend((beam.score + value - norm, index, token) for token, value in allowed)
    out.sort(key=lambda c: -c[0])
    return out


def _advance(model: SequenceModel, beams: list[_Beam], chosen) -> list[_Beam]:
    """Extend the chosen (score, beam index, token) candidates by one token each."""
    new_constraints = [beams[index].constraint.after(token) for _, index, token in chosen]
    try:
        seqs = model.extend([(beams[index].seq, token) for _, index, token in chosen])
    except BaseException:
        for state in new_constraints:
            state.free()
        raise
    for beam in beams:
        beam.constraint.free()
    return [_Beam(beams[index].tokens + [token], score, state, seq)
            for (score, index, token), state, seq in zip(chosen, new_constraints, seqs,
                                                         strict=True)]


def _feed(model: SequenceModel, beam: _Beam, span: list[int]) -> _Beam:
    """The lone beam extended by a forced span in one model call (the span adds no score)."""
    body = span[:-1] if model.is_end(span[-1]) else span
    state = beam.constraint
    try:
        for token in body:
            following = state.after(token)
            if state is not beam.constraint:
                state.free()
            state = following
        seq = model.feed(beam.seq, body)
    except BaseException:
        if state is not beam.constraint:
            state.free()
        raise
    beam.constraint.free()
    return _Beam(beam.tokens + body, beam.score, state, seq)


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


def _sample(allowed: list[tuple[int, float]], temperature: float, rng) -> int:
    """Index into `allowed` drawn from softmax(logit / temperature)."""
    if temperature <= 0.0:
        return 0
    logits = np.array([v for _, v in allowed], dtype=np.float64) / temperature
    p = np.exp(logits - logits.max())
    return int(rng.choice(len(allowed), p=p / p.sum()))
