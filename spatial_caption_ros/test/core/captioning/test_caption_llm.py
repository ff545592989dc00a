"""The captioner with the real LLM (Gemma 3 270M GGUF from make setup): a quick set, more slow.

Timing is never asserted (shared 2-core machine); only what was published and why.
"""

import json

import numpy as np

import pytest

from spatial_caption_ros.core.captioning.captioner import (
    CaptionConfig, Captioner, llm_auto_threads)
from spatial_caption_ros.core.captioning.llm import LlamaModel
from spatial_caption_ros.core.captioning.verify import CaptionVerifier
from spatial_caption_ros.core.errors import ModelError, ModelNotFoundError
from spatial_caption_ros.core.params import build_config
from spatial_caption_ros.core.types import (
    GENERATOR_LLM, GENERATOR_LLM_REPAIRED, GENERATOR_TEMPLATE)
from support.llm import GEMMA, needs_llm
from support.scenes import street

# Generous: these tests check what is published, not how fast (the CPU is shared).
LONG = {'timeout': 120.0}


@pytest.fixture(scope='module')
def captioner():
    if GEMMA is None:
        pytest.skip('Gemma GGUF missing: run make setup')
    cap = Captioner(build_config(CaptionConfig, LONG))
    yield cap
    cap.close()


@needs_llm
def test_llm_caption_is_verified_deterministic_and_says_who_wrote_it(captioner):
    graph = street()
    first = captioner.caption(graph)
    assert first.generator == GENERATOR_LLM, first.fallback_reason
    assert first.verified and first.fallback_reason == ''
    assert first.model.endswith('.gguf') and first.header.stamp_ns == 7
    assert CaptionVerifier(graph).verify(first.text).ok
    assert 'bus' in first.text and 'people' in first.text
    assert captioner.caption(graph).text == first.text          # greedy: deterministic
    snap = captioner.stats.snapshot()
    assert snap['llm_verified'] == snap['llm_attempts'] == 2
    assert captioner.describe()['llm_threads'] == str(llm_auto_threads())   # n_threads 0: auto


def test_auto_llm_threads_leave_half_the_cores_to_perception():
    assert [llm_auto_threads(n) for n in (1, 2, 3, 4, 8, 16)] == [1, 1, 1, 2, 4, 8]


@needs_llm
def test_llm_timeout_publishes_the_template_caption(captioner):
    captioner.config = build_config(CaptionConfig, {'timeout': 0.001})
    try:
        caption = captioner.caption(street())
    finally:
        captioner.config = build_config(CaptionConfig, LONG)
    assert caption.generator == GENERATOR_TEMPLATE and caption.verified
    assert caption.fallback_reason.startswith('timeout') and caption.model == ''
    assert captioner.stats.snapshot()['fallback.timeout'] >= 1


def test_missing_model_falls_back_or_fails_as_configured(tmp_path):
    missing = str(tmp_path / 'nothing.gguf')
    cap = Captioner(build_config(CaptionConfig, {'model': missing}))
    caption = cap.caption(street())
    assert caption.generator == GENERATOR_TEMPLATE and caption.verified
    assert caption.fallback_reason.startswith('llm_unavailable') and 'nothing.gguf' in \
        caption.fallback_reason
    assert 'llm_error' in cap.describe()
    with pytest.raises(ModelNotFoundError):
        Captioner(build_config(CaptionConfig, {'model': missing, 'llm_required': True}))


def test_a_file_that_is_not_gguf_is_a_model_error(tmp_path):
    bad = tmp_path / 'bad.gguf'
    bad.write_bytes(b'not a model' * 100)
    with pytest.raises(ModelError):
        LlamaModel(bad)


def test_template_generator_loads_no_model():
    cap = Captioner(build_config(CaptionConfig, {'generator': 'template'}))
    assert cap.llm is None and cap.llm_error == ''
    caption = cap.caption(street(), 'json')
    doc = json.loads(caption.text)
    assert caption.verified and doc['verified'] and doc['generator'] == GENERATOR_TEMPLATE


@pytest.mark.slow
@needs_llm
@pytest.mark.parametrize('decoding', ['beam', 'hybrid', 'sample'])
def test_beam_hybrid_and_sample_decoding(captioner, decoding):
    captioner.config = build_config(CaptionConfig, {**LONG, 'decoding': decoding})
    try:
        caption = captioner.caption(street())
    finally:
        captioner.config = build_config(CaptionConfig, LONG)
    assert caption.generator == GENERATOR_LLM and caption.verified, caption.fallback_reason


@needs_llm
@pytest.mark.slow
def test_beam_search_finds_at_least_the_greedy_likelihood():
    model = LlamaModel(GEMMA, n_threads=2, max_beams=3)
    try:
        grammar = ('root ::= " " ("A bus and four people." | "Four people and a bus." | '
                   '"There are four people and a bus.")')
        prompt = 'Facts: a bus; four people.\nCaption:'
        # unforced: a forced span adds nothing to the score, so only then is it a likelihood
        greedy = model.generate(prompt, grammar, timeout=120, decoding='greedy', force=False)
        beam = model.generate(prompt, grammar, timeout=120, decoding='beam', beam_width=3)
        assert greedy.stop_reason == beam.stop_reason == 'eos'
        assert beam.score >= greedy.score - 1e-3
        # the prompt prefix cache is reused: a second call evaluates no new prompt tokens
        again = model.generate(prompt, grammar, timeout=120, decoding='greedy', force=False)
        assert again.text == greedy.text
    finally:
        model.close()


@pytest.mark.slow
@needs_llm
@pytest.mark.parametrize('style', ['detailed', 'json'])
def test_detailed_and_json_styles(captioner, style):
    caption = captioner.caption(street(), style)
    assert caption.verified and caption.generator == GENERATOR_LLM, caption.fallback_reason
    if style == 'json':
        doc = json.loads(caption.text)
        assert doc['verified'] and doc['counts'] == {'bus': 1, 'person': 3}
        assert CaptionVerifier(street()).verify(doc['text']).ok
    else:
        assert caption.text.count('. ') >= 3


@pytest.mark.slow
@needs_llm
@pytest.mark.parametrize('constraint', ['vocabulary', 'none'])
def test_looser_constraints_never_publish_unverified_text(captioner, constraint):
    captioner.config = build_config(CaptionConfig, {**LONG, 'constraint': constraint})
    try:
        caption = captioner.caption(street())
    finally:
        captioner.config = build_config(CaptionConfig, LONG)
    assert caption.verified
    assert CaptionVerifier(street()).verify(caption.text).ok
    if caption.generator == GENERATOR_TEMPLATE:
        assert caption.fallback_reason
    else:
        assert caption.generator in (GENERATOR_LLM, GENERATOR_LLM_REPAIRED)


@pytest.mark.slow
@needs_llm
def test_chat_template_prompt_path():
    cap = Captioner(build_config(CaptionConfig, {**LONG, 'chat_template': 'chatml'}))
    try:
        assert cap.describe()['prompt'] == 'chat'
        prompt = cap.llm.format_prompt('sys', 'user text', 'unused')
        assert '<|im_start|>user\nuser text' in prompt and prompt.rstrip().endswith(
            '<|im_start|>assistant')
        caption = cap.caption(street())
        assert caption.verified and caption.generator == GENERATOR_LLM
    finally:
        cap.close()
    with pytest.raises(ModelError):
        LlamaModel(GEMMA, chat_template='no-such-template')


@pytest.mark.slow
@needs_llm
def test_eval_command_runs_the_real_pipeline(tmp_path, capsys):
    from support import EVAL, needs_shared  # noqa: F401 - the eval data must be there
    if not (EVAL / 'index.jsonl').is_file():
        pytest.skip('../shared/eval is missing')
    from spatial_caption_ros.cli.evaluate_captions import main
    out = tmp_path / 'eval.json'
    assert main(['--limit', '2', '--runs', 'template/short,llm/short', '--no-coco-metrics',
                 '--output', str(out), '--quiet', '--set', 'timeout=120']) == 0
    printed = capsys.readouterr().out
    assert '| template/short | 100.0% (2/2)' in printed and '| llm/short |' in printed
    doc = json.loads(out.read_text())
    assert [r['run'] for r in doc['results']] == ['template/short', 'llm/short']
    assert all(rec['verified'] for r in doc['results'] for rec in r['records'])


@needs_llm
def test_forget_prompt_makes_logits_independent_of_earlier_prompts():
    """A prompt after forget_prompt gives a fresh model's logits, bit for bit.

    Whatever was evaluated before it: offline chunks rely on it (the Ray test's local == remote).
    """
    model = LlamaModel(GEMMA, n_threads=2)
    try:
        first = model.tokenize('Facts: a cup; a tv left of the cup.\nCaption:', True)
        second = model.tokenize('Facts: a cup; a mouse right of the cup.\nCaption:', True)
        fresh = model.logits(model.start(second)).copy()
        model.forget_prompt()
        model.start(first)
        model.forget_prompt()
        assert np.array_equal(model.logits(model.start(second)), fresh)
    finally:
        model.close()


@needs_llm
def test_forced_spans_give_the_same_caption_in_fewer_decodes():
    """Greedy under a facts grammar: the forced text goes in as one batch, same output."""
    model = LlamaModel(GEMMA, n_threads=1)
    calls = []
    decode = model._decode
    model._decode = lambda items: (calls.append(len(items)), decode(items))[1]
    try:
        grammar = ('root ::= " " ("There is a bus and four people" | "A bus and four people")'
                   ' ("; the bus is nearest to the camera" | ", and the bus is nearest to the '
                   'camera") "."')
        prompt = 'Facts: a bus; four people; the bus is nearest to the camera.\nCaption:'
        plain = model.generate(prompt, grammar, timeout=120, force=False)
        model.forget_prompt()
        calls.clear()
        forced = model.generate(prompt, grammar, timeout=120)
        assert forced.text == plain.text and forced.stop_reason == 'eos'
        assert forced.generated_tokens == plain.generated_tokens
        steps = len(calls) - 1                       # the prompt is one decode
        assert steps < plain.generated_tokens / 2, (steps, plain.generated_tokens)
        assert max(calls[1:]) > 1                    # a forced span went in as one batch
    finally:
        model.close()


@needs_llm
def test_forced_span_stops_before_a_word_the_grammar_may_continue():
    """" the car" before "s" or " is": only " the" is fed (the model may choose " cars")."""
    from spatial_caption_ros.core.captioning import llm
    model = LlamaModel(GEMMA, n_threads=1)
    lib = llm._lib()
    grammars = {'root ::= " the car" ("s are" | " is") " here."': ' the',
                'root ::= " the car is here."': ' the car is here.'}
    try:
        for grammar, fed in grammars.items():
            sampler = lib.llama_sampler_init_grammar(model._vocab, grammar.encode(), b'root')
            try:
                forced = model._forced(sampler)
            finally:
                lib.llama_sampler_free(sampler)
            ends = fed.endswith('.')                 # the second grammar forces the end too
            assert model.is_end(forced[-1]) == ends
            assert model._text(forced[:-1] if ends else forced) == fed
        out = model.generate('The cars are here.\nSay it again:', next(iter(grammars)),
                             timeout=120)
        assert out.text in ('the cars are here.', 'the car is here.')
        assert out.stop_reason == 'eos'
        # a character outside the probe set (non-ASCII): nothing forced, token by token
        before = model.decodes
        out = model.generate('Say it:', 'root ::= " the café is here."', timeout=120)
        assert out.text == 'the café is here.' and out.stop_reason == 'eos'
        assert model.decodes - before == out.generated_tokens + 1     # prompt + every token
    finally:
        model.close()


@pytest.mark.slow
@needs_llm
def test_caption_benchmark_prints_both_configurations(capsys):
    from support import EVAL, needs_shared  # noqa: F401 - the eval data must be there
    if not (EVAL / 'index.jsonl').is_file():
        pytest.skip('../shared/eval is missing')
    from spatial_caption_ros.tools.bench_captions import main
    assert main(['--limit', '3', 'unforced', 'forced']) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
    assert [r.split(' | ')[0] for r in rows[1:]] == ['| unforced', '| forced']
    assert rows[2].endswith('| 0/3 |')                # the same captions, token by token or not
    assert main(['nope']) == 2 and main(['--eval-dir', '/nonexistent', 'forced']) == 2
