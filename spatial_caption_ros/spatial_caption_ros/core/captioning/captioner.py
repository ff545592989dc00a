"""The captioning stage: scene graph -> content plan -> LLM (or template) -> verifier -> Caption.

1. plan.py picks the facts (code, not the model);
2. the LLM words them under a grammar (grammar.py; llm.py decodes), or the template does;
3. verify.py checks every claim of the text against the graph. A failing LLM caption is repaired
   (its false clauses removed, re-verified) or replaced by the template realisation; the reason
   is published in Caption.fallback_reason and counted in CaptionStats;
4. the published Caption is `verified` only if the final text passed the verifier.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
import threading
import time

from spatial_caption_ros.core.captioning.context import default_knowledge
from spatial_caption_ros.core.captioning.grammar import (
    facts_grammar, grammar_texts, vocabulary_grammar)
from spatial_caption_ros.core.captioning.llm import DECODINGS, LlamaModel
from spatial_caption_ros.core.captioning.plan import (
    confident_view, ContentPlan, limits_for, plan_caption)
from spatial_caption_ros.core.captioning.structured import dumps, structured_caption, validate
from spatial_caption_ros.core.captioning.template import clause_options, count_clause, realise
from spatial_caption_ros.core.captioning.verify import CaptionVerifier, repair
from spatial_caption_ros.core.perception.backends.base import usable_cpus
from spatial_caption_ros.core.errors import ConfigError, SpatialCaptionError
from spatial_caption_ros.core.perception.models import resolve_model
from spatial_caption_ros.core.params import CONFIGURE, param
from spatial_caption_ros.core.runtime.text import sanitize_label, sanitize_text
from spatial_caption_ros.core.types import (
    Caption, GENERATOR_LLM, GENERATOR_LLM_REPAIRED, GENERATOR_TEMPLATE, SceneGraph,
    STYLE_DETAILED, STYLE_JSON, STYLE_SHORT)

STYLES = (STYLE_SHORT, STYLE_DETAILED, STYLE_JSON)
CONSTRAINTS = ('facts', 'vocabulary', 'none')
DEFAULT_LLM = 'gemma3_270m_q4_k_m'

# Fallback reason codes (Caption.fallback_reason is '<code>: <detail>').
REASON_UNAVAILABLE = 'llm_unavailable'
REASON_TIMEOUT = 'timeout'
REASON_INCOMPLETE = 'incomplete'
REASON_UNSUPPORTED = 'unsupported_claim'
REASON_ERROR = 'llm_error'
REASON_REPAIRED = 'repaired'

_INSTRUCTIONS = {
    STYLE_SHORT: 'Write one short sentence that states these facts.',
    STYLE_DETAILED: 'Write a short paragraph that states these facts.',
}
_SYSTEM = ('You write captions of camera images for a robot. State only the facts given, '
           'word for word in meaning; add nothing.')
# One fixed worked example before the facts of short captions (invented, not from any data
# set): it shows a small model how to aggregate ("this looks like a park with ...") and to open
# with the objects rather than "The image shows". The prefix is the same for every caption, so
# llama.cpp's cached prompt prefix makes it free after the first caption.
_EXAMPLE = ('Facts about a camera image: there are two people and a dog; the dog is nearest to '
            'the camera (about 3.5 m away); it looks like a park.\n'
            'Caption: This looks like a park with two people and a '
            'dog; the dog is nearest to the camera (about 3.5 m away).\n\n')


@dataclass(frozen=True)
class CaptionConfig:
    """Parameters of the caption node."""

    style: str = param(STYLE_SHORT, 'Caption style: short (one sentence), detailed (a '
                       'paragraph) or json (structured caption for agents).', choices=STYLES)
    generator: str = param(
        'llm', 'Who words the captions: llm (the model below, verified, with template '
        'fallback) or template (no model is loaded).', choices=('llm', 'template'),
        when=CONFIGURE)
    model: str = param(
        DEFAULT_LLM, 'LLM: a model name from models/manifest.yaml or a path to a .gguf file.',
        when=CONFIGURE)
    model_dir: str = param(
        '', 'Folder of model files; empty: $SPATIAL_CAPTION_MODEL_DIR, else ../shared/models, '
        'else ~/.cache/spatial_caption_ros/models (names are also looked up in the cache).',
        when=CONFIGURE)
    llm_required: bool = param(
        False, 'true: configure fails when the LLM cannot be loaded; false: the node runs with '
        'template captions and a WARN diagnostic (captions stay verified).', when=CONFIGURE)
    chat_template: str = param(
        'auto', "Prompt format: auto (the GGUF's chat template when it has one, else a plain "
        'completion prompt), none, model, or a llama.cpp template name (chatml, llama3, '
        'gemma, ...).', when=CONFIGURE, max_length=64)
    n_threads: int = param(
        0, 'CPU threads of the LLM; 0: auto, half the usable cores (at least 1), so the LLM '
        'leaves cores to perception running at the same time.', minimum=0, maximum=256,
        when=CONFIGURE)
    context_size: int = param(1024, 'LLM context size in tokens.', minimum=256,
                              maximum=32768, when=CONFIGURE)
    beam_width: int = param(
        3, 'Beams of beam and hybrid decoding (sets the KV-cache sequences).', minimum=1,
        maximum=8, when=CONFIGURE)
    decoding: str = param(
        'greedy', 'greedy (deterministic), beam, hybrid (greedy for greedy_tokens tokens, '
        'then beam) or sample (temperature, seeded).', choices=DECODINGS)
    greedy_tokens: int = param(4, 'Hybrid decoding: tokens decoded greedily before the beam '
                               'search starts.', minimum=0, maximum=256)
    temperature: float = param(0.7, 'Sample decoding: temperature.', minimum=0.0,
                               maximum=5.0)
    seed: int = param(0, 'Sample decoding: random seed (same seed, same caption).',
                      minimum=0, maximum=2**31 - 1)
    constraint: str = param(
        'facts', 'LLM output constraint: facts (grammar of the planned facts only), '
        'vocabulary (graph nouns and spatial words, freely composed; the verifier catches '
        'false claims) or none (free text).', choices=CONSTRAINTS)
    max_tokens: int = param(192, 'Most tokens the LLM may generate for one caption.',
                            minimum=8, maximum=4096)
    timeout: float = param(
        4.0, 'Seconds the LLM may take for one caption; then the template caption is '
        'published (fallback_reason timeout).', minimum=0.001, maximum=600.0)
    min_confidence: float = param(
        0.5, 'Captions mention only objects detected with at least this confidence (counts '
        'and relations are those of these objects). The graph keeps every detection; a '
        'sentence has no confidence field, so it states what the detector is more sure of '
        'than not. 0: every object of the graph.', minimum=0.0, maximum=1.0)
    max_relations: int = param(
        1, 'Relations stated in a short or json caption (short: support and containment '
        'only, "the cup is on the table"; json: any kind).', minimum=0, maximum=20)
    detailed_max_relations: int = param(
        4, 'Relations stated in a detailed caption.', minimum=0, maximum=50)


@dataclass
class CaptionStats:
    """What the captioner did: published, verified, by generator, fallback reasons."""

    published: int = 0
    verified: int = 0
    llm_attempts: int = 0
    llm_verified: int = 0            # LLM text passed the verifier as generated
    by_generator: Counter = field(default_factory=Counter)
    fallback: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, caption: Caption, llm_tried: bool, llm_passed: bool) -> None:
        with self.lock:
            self.published += 1
            self.verified += int(caption.verified)
            self.by_generator[caption.generator] += 1
            self.llm_attempts += int(llm_tried)
            self.llm_verified += int(llm_passed)
            if caption.fallback_reason:
                self.fallback[caption.fallback_reason.split(':')[0]] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            out = {'captions': self.published, 'captions_verified': self.verified,
                   'llm_attempts': self.llm_attempts, 'llm_verified': self.llm_verified}
            out.update({f'generator.{k}': v for k, v in sorted(self.by_generator.items())})
            out.update({f'fallback.{k}': v for k, v in sorted(self.fallback.items())})
            return out


def llm_auto_threads(cores: int | None = None) -> int:
    """LLM threads for n_threads 0: half the usable cores, at least one.

    The LLM runs while perception runs. llama.cpp's threads meet at a barrier after every
    matrix, so one thread pre-empted by perception stalls the others: in soak runs on a 2-core
    machine, 2 LLM threads beside perception gave 136 captions in 10 minutes, 1 thread 676.
    """
    return max(1, (cores or usable_cpus()) // 2)


class Captioner:
    """Writes verified captions from scene graphs (loads the LLM on construction)."""

    def __init__(self, config: CaptionConfig) -> None:
        self.config = config
        self.stats = CaptionStats()
        self.llm: LlamaModel | None = None
        self.llm_error = ''
        self.model_path = ''
        self.threads = 0
        if config.generator == 'llm':
            try:
                path = resolve_model(config.model, config.model_dir or None, task='llm')
                self.threads = config.n_threads or llm_auto_threads()
                self.llm = LlamaModel(path, n_threads=self.threads,
                                      n_ctx=config.context_size, max_beams=config.beam_width,
                                      chat_template=config.chat_template)
                self.model_path = str(path)
            except SpatialCaptionError as exc:
                if config.llm_required:
                    raise
                self.llm_error = str(exc)

    def describe(self) -> dict[str, str]:
        out = {'generator': self.config.generator, 'style': self.config.style}
        if self.llm is not None:
            out.update({'model': self.model_path, 'decoding': self.config.decoding,
                        'constraint': self.config.constraint,
                        'prompt': 'chat' if self.llm.uses_chat else 'completion',
                        'llm_threads': str(self.threads)})
        if self.llm_error:
            out['llm_error'] = self.llm_error
        return out

    # ------------------------------------------------------------ captions

    def caption(self, graph: SceneGraph, style: str | None = None) -> Caption:
        """Caption one graph; the Caption says who wrote it and whether it is verified."""
        t0 = time.perf_counter()
        style = style or self.config.style
        if style not in STYLES:
            raise ConfigError(f'unknown caption style {style!r}')
        text_style = STYLE_SHORT if style == STYLE_JSON else style
        graph = sanitized(graph)
        every_object = graph.objects
        graph = self.view(graph)
        knowledge = default_knowledge()
        limits = limits_for(style, self.config.max_relations, self.config.detailed_max_relations)
        plan = plan_caption(graph, text_style, limits, every_object, knowledge)
        verifier = CaptionVerifier(graph, knowledge)
        text, generator, reason = realise(plan), GENERATOR_TEMPLATE, ''
        llm_tried = llm_passed = False
        if self.config.generator == 'llm':
            if self.llm is None:
                reason = f'{REASON_UNAVAILABLE}: {self.llm_error}'
            elif not plan.empty:           # an empty graph has nothing to word
                llm_tried = True
                outcome = self._llm_text(plan, graph, text_style, verifier, t0)
                if outcome[0] is not None:
                    text, generator = outcome[0], outcome[1]
                    llm_passed = generator == GENERATOR_LLM
                reason = outcome[2]
        final = verifier.verify(text)
        verified = final.ok
        if not verified and generator != GENERATOR_TEMPLATE:   # cannot happen; never publish it
            text, generator = realise(plan), GENERATOR_TEMPLATE
            reason = f'{REASON_UNSUPPORTED}: {final.first_reason()}'
            verified = verifier.verify(text).ok
        if style == STYLE_JSON:
            doc = structured_caption(plan, graph, text, verified, generator)
            facts_ok = all(verifier.verify(_fact_text(plan, f) + '.').ok for f in plan.facts)
            doc['verified'] = verified = verified and facts_ok and not validate(doc)
            text = dumps(doc)
        caption = Caption(
            header=graph.header, text=text, style=style, verified=verified,
            generator=generator, model=self.model_path if generator != GENERATOR_TEMPLATE
            else '', fallback_reason=reason, latency=time.perf_counter() - t0,
            intrinsics_assumed=bool(graph.intrinsics_assumed and graph.depth_metric))
        self.stats.record(caption, llm_tried, llm_passed)
        return caption

    def view(self, graph: SceneGraph) -> SceneGraph:
        """The part of the graph captions describe (objects above min_confidence)."""
        return confident_view(graph, self.config.min_confidence)

    def _llm_text(self, plan: ContentPlan, graph: SceneGraph, style: str,
                  verifier: CaptionVerifier, t0: float) -> tuple[str | None, str, str]:
        """(text or None, generator, fallback reason) from the LLM."""
        cfg = self.config
        grammar = None
        if cfg.constraint == 'facts':
            grammar = facts_grammar(plan)
        elif cfg.constraint == 'vocabulary':
            grammar = vocabulary_grammar(graph, style)
        try:
            prompt = self.prompt(plan, style)
            preferred = self.llm.preferred_tokens(grammar_texts(grammar)) if grammar else None
            remaining = cfg.timeout - (time.perf_counter() - t0)
            gen = self.llm.generate(
                prompt, grammar, max_tokens=cfg.max_tokens, timeout=remaining,
                decoding=cfg.decoding, beam_width=cfg.beam_width,
                greedy_tokens=cfg.greedy_tokens, temperature=cfg.temperature, seed=cfg.seed,
                stop=('\n',) if grammar is None else (), preferred=preferred)
        except Exception as exc:  # noqa: BLE001 - the template caption is always there
            # An LLM runtime can also fail in ways its bindings do not wrap (ctypes, memory...):
            # the frame still gets its true template caption, and the reason is published.
            kind = '' if isinstance(exc, SpatialCaptionError) else f'{type(exc).__name__}: '
            return None, GENERATOR_TEMPLATE, sanitize_text(f'{REASON_ERROR}: {kind}{exc}', 256)
        if gen.stop_reason == 'timeout':
            return None, GENERATOR_TEMPLATE, (f'{REASON_TIMEOUT}: no complete caption after '
                                              f'{cfg.timeout:.2f} s')
        text = ' '.join(gen.text.split())
        text = '. '.join(s[:1].upper() + s[1:] for s in text.split('. '))
        if not text:
            return None, GENERATOR_TEMPLATE, f'{REASON_INCOMPLETE}: empty output'
        result = verifier.verify(text)
        if result.ok:
            return text, GENERATOR_LLM, ''
        if gen.stop_reason == 'max_tokens':
            return None, GENERATOR_TEMPLATE, (f'{REASON_INCOMPLETE}: cut at max_tokens '
                                              f'({cfg.max_tokens})')
        fixed = repair(result)
        detail = '; '.join(result.failures())[:200]
        if fixed and verifier.verify(fixed).ok:
            return fixed, GENERATOR_LLM_REPAIRED, f'{REASON_REPAIRED}: {detail}'
        return None, GENERATOR_TEMPLATE, f'{REASON_UNSUPPORTED}: {detail}'

    def prompt(self, plan: ContentPlan, style: str) -> str:
        """The prompt the LLM gets for a plan: the planned facts in canonical wording.

        Class names are the only text in it that comes from outside (model metadata, other
        processes' messages); they arrive sanitised and bounded (sanitize_label in
        core/runtime/text.py: one line, no markup or prompt punctuation, at most 64 characters),
        and the plan bounds how many facts there are, so the prompt has a fixed structure and a
        bounded length.
        """
        facts = '; '.join(_fact_text(plan, f) for f in plan.facts)
        example = _EXAMPLE if style == STYLE_SHORT else ''
        if style == STYLE_SHORT:
            # The instruction first, before the example: the whole prefix up to this caption's
            # facts is then cached, and only the facts and "Caption:" are evaluated.
            completion = (f'{_INSTRUCTIONS[style]}\n\n{example}Facts about a camera image: '
                          f'{facts}.\nCaption:')
        else:
            # Detailed keeps it after the facts: moved first, it changed 15 of 45 dev captions'
            # openings from "A car." to "There is a car." (2026-12-07).
            completion = (f'Facts about a camera image: {facts}.\n{_INSTRUCTIONS[style]}'
                          f'\nCaption:')
        return self.llm.format_prompt(
            _SYSTEM, f'{example}Facts: {facts}.\n{_INSTRUCTIONS[style]}', completion)

    def new_sequence(self) -> None:
        """Forget what earlier frames left in the model (its cached prompt prefix).

        The next captions then do not depend on the frames before them (offline chunks).
        """
        if self.llm is not None:
            self.llm.forget_prompt()

    def close(self) -> None:
        """Release the model."""
        if self.llm is not None:
            self.llm.close()
            self.llm = None


def sanitized(graph: SceneGraph) -> SceneGraph:
    """The graph with sanitised class names, the only graph text that reaches a prompt.

    Graphs from messages, model metadata and knowledge files are sanitised where they enter
    (ros/conversions.py, core/perception/detection.py); this makes the caption stage safe on its
    own for graphs built in-process. Already clean graphs are returned as they are.
    """
    names = [sanitize_label(o.class_name) for o in graph.objects]
    if all(n == o.class_name for n, o in zip(names, graph.objects, strict=True)):
        return graph
    counts = Counter(names)
    return replace(graph, objects=[replace(o, class_name=n, class_count=counts[n])
                                   for n, o in zip(names, graph.objects, strict=True)])


def _fact_text(plan: ContentPlan, fact) -> str:
    """The canonical clause of one fact (counts: its own count clause)."""
    if fact.kind == 'count':
        return count_clause([fact])
    return clause_options(fact)[0]
