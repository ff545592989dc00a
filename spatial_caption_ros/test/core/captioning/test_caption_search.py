"""The token search (greedy, beam, hybrid, sample) on a toy vocabulary: no GGUF needed.

The toy model is a bigram table (next-token logits depend on the last token); the toy constraint
admits a fixed set of sentences (a token trie), like a facts grammar does. Expected results are
computed independently by enumerating every sentence the constraint admits.
"""

import itertools
import math
import time

import numpy as np
import pytest

from spatial_caption_ros.core.captioning.search import search

VOCAB = ['<end>', 'a', 'bus', 'and', 'four', 'people', 'there', 'are', '<start>']
END, START = 0, len(VOCAB) - 1
IDS = {w: i for i, w in enumerate(VOCAB)}


class BigramModel:
    """SequenceModel: logits of the next token = table[last token]; records what it was asked."""

    def __init__(self, table: np.ndarray, max_live: int = 8) -> None:
        self.table = table
        self.max_live = max_live
        self.live: dict[int, list[int]] = {}
        self.next_handle = 0
        self.widest = 0
        self.calls = 0                 # extend and feed calls: the model's decode steps

    def start(self, prompt: list[int]) -> int:
        self.live = {0: list(prompt)}
        self.next_handle = 1
        return 0

    def logits(self, seq: int) -> np.ndarray:
        return self.table[self.live[seq][-1]].astype(np.float32)

    def extend(self, extensions: list[tuple[int, int]]) -> list[int]:
        assert len(extensions) <= self.max_live
        new = {}
        for parent, token in extensions:
            new[self.next_handle] = self.live[parent] + [token]
            self.next_handle += 1
        self.live = new
        self.widest = max(self.widest, len(new))
        self.calls += 1
        return list(new)

    def feed(self, seq: int, tokens: list[int]) -> int:
        assert list(self.live) == [seq] and tokens
        self.live = {seq: self.live[seq] + list(tokens)}
        self.calls += 1
        return seq

    def is_end(self, token: int) -> bool:
        return token == END


class SentenceConstraint:
    """Constraint admitting exactly `sentences` (token lists), each followed by <end>."""

    made = 0
    freed = 0

    def __init__(self, sentences: list[list[int]], prefix: tuple[int, ...] = ()) -> None:
        self.sentences, self.prefix = sentences, prefix
        SentenceConstraint.made += 1
        self.alive = True

    def _next(self) -> set[int]:
        n = len(self.prefix)
        out = set()
        for s in self.sentences:
            if tuple(s[:n]) == self.prefix:
                out.add(s[n] if len(s) > n else END)
        return out

    def allowed(self, logits: np.ndarray, limit: int) -> list[tuple[int, float]]:
        assert self.alive, 'a freed constraint state was used'
        ok = sorted(self._next(), key=lambda t: -logits[t])
        return [(t, float(logits[t])) for t in ok[:limit]]

    def after(self, token: int) -> 'SentenceConstraint':
        assert self.alive
        assert token in self._next(), 'a token the constraint does not allow'
        return SentenceConstraint(self.sentences, self.prefix + (token,))

    def forced(self) -> list[int]:
        """Tokens while exactly one may follow (then the end token if the sentence ends)."""
        assert self.alive
        out: list[int] = []
        state = SentenceConstraint(self.sentences, self.prefix)
        while len(following := state._next()) == 1:
            token = following.pop()
            out.append(token)
            if token == END:
                break
            state.prefix += (token,)
        SentenceConstraint.made -= 1           # a probe, not a state handed to the search
        return out

    def free(self) -> None:
        assert self.alive, 'freed twice'
        self.alive = False
        SentenceConstraint.freed += 1


def ids(text: str) -> list[int]:
    return [IDS[w] for w in text.split()]


def words(tokens: list[int]) -> str:
    return ' '.join(VOCAB[t] for t in tokens)


def log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    m = row.max()
    return row - (m + math.log(np.exp(row - m).sum()))


def sentence_score(table: np.ndarray, tokens: list[int]) -> float:
    score, last = 0.0, START
    for t in tokens + [END]:
        score += log_softmax(table[last].astype(np.float32))[t]
        last = t
    return score


def garden_path_table() -> np.ndarray:
    """'a' is the likeliest first word, but after it every word is flat; after 'four' the
    sentence 'four people and a bus' is near-certain. Greedy takes 'a ...', beam finds 'four'."""
    table = np.zeros((len(VOCAB), len(VOCAB)), dtype=np.float32)
    table[START, IDS['a']] = 2.0
    table[START, IDS['four']] = 1.5
    table[IDS['four'], IDS['people']] = 8.0
    table[IDS['people'], IDS['and']] = 8.0
    table[IDS['and'], IDS['a']] = 8.0
    table[IDS['a'], IDS['bus']] = 1.0
    table[IDS['bus'], END] = 8.0
    return table


SENTENCES = [ids('a bus and four people'), ids('four people and a bus'),
             ids('there are four people and a bus')]


@pytest.fixture(autouse=True)
def count_states():
    SentenceConstraint.made = SentenceConstraint.freed = 0
    yield
    assert SentenceConstraint.made == SentenceConstraint.freed, 'a constraint state leaked'


def run(decoding, table=None, width=3, sentences=SENTENCES, **kw):
    model = BigramModel(garden_path_table() if table is None else table, max_live=width)
    root = model.start([START])
    found = search(model, root, SentenceConstraint(sentences), max_tokens=kw.pop(
        'max_tokens', 20), deadline=kw.pop('deadline', time.monotonic() + 60),
        decoding=decoding, width=width, **kw)
    return found, model


def test_greedy_takes_the_locally_best_token_and_scores_log_probabilities():
    found, model = run('greedy')
    assert found.stop_reason == 'eos'
    assert words(found.tokens) == 'a bus and four people'
    assert found.score == pytest.approx(sentence_score(garden_path_table(), found.tokens),
                                        abs=1e-5)
    assert model.widest == 1                  # greedy keeps one sequence


def test_beam_finds_the_most_likely_sentence_the_constraint_admits():
    table = garden_path_table()
    best = max(SENTENCES, key=lambda s: sentence_score(table, s))
    found, model = run('beam', width=3)
    assert found.stop_reason == 'eos'
    assert found.tokens == best and words(best) == 'four people and a bus'
    assert found.score == pytest.approx(sentence_score(table, best), abs=1e-5)
    greedy, _ = run('greedy')
    assert found.score > greedy.score
    assert 1 < model.widest <= 3


def test_beam_matches_exhaustive_search_on_random_tables():
    rng = np.random.default_rng(3)
    content = [IDS[w] for w in ('a', 'bus', 'and', 'four', 'people')]
    sentences = [list(p) for n in (2, 3) for p in itertools.permutations(content, n)]
    for _ in range(20):
        table = rng.normal(0, 2, (len(VOCAB), len(VOCAB))).astype(np.float32)
        best = max(sentences, key=lambda s: sentence_score(table, s))
        found, _ = run('beam', table=table, width=len(sentences), sentences=sentences)
        assert found.score == pytest.approx(sentence_score(table, best), abs=1e-4)


def test_hybrid_is_greedy_first_then_beam():
    # greedy for one token commits to 'a': the beam then searches only below it
    found, _ = run('hybrid', greedy_tokens=1)
    assert words(found.tokens) == 'a bus and four people'
    found, _ = run('hybrid', greedy_tokens=0)           # beam from the start
    assert words(found.tokens) == 'four people and a bus'


def test_sampling_is_seeded_and_follows_the_constraint():
    draws = [words(run('sample', seed=s, temperature=1.5)[0].tokens) for s in range(12)]
    assert draws == [words(run('sample', seed=s, temperature=1.5)[0].tokens)
                     for s in range(12)]
    assert set(draws) <= {words(s) for s in SENTENCES}
    assert len(set(draws)) > 1                 # not one fixed output
    assert words(run('sample', temperature=0.0)[0].tokens) == words(run('greedy')[0].tokens)


def test_deadline_max_tokens_and_stop_test():
    found, _ = run('greedy', deadline=time.monotonic() - 1)
    assert found.stop_reason == 'timeout' and found.tokens == []
    found, _ = run('beam', max_tokens=2)
    assert found.stop_reason == 'max_tokens' and len(found.tokens) == 2
    found, _ = run('greedy', stopped=lambda toks: VOCAB[toks[-1]] == 'and')
    assert found.stop_reason == 'stop' and words(found.tokens) == 'a bus and'


def test_without_constraint_the_best_tokens_of_the_whole_vocabulary():
    table = garden_path_table()
    model = BigramModel(table)
    found = search(model, model.start([START]), None, max_tokens=3,
                   deadline=time.monotonic() + 60)
    assert found.stop_reason == 'eos' and words(found.tokens) == 'a bus'


def test_unknown_decoding_is_rejected():
    model = BigramModel(garden_path_table())
    with pytest.raises(ValueError, match='unknown decoding'):
        search(model, model.start([START]), None, max_tokens=3,
               deadline=time.monotonic() + 60, decoding='nucleus')


def test_forced_spans_are_fed_in_one_call_and_add_nothing_to_the_score():
    # after 'a' the constraint admits only 'bus and four people <end>': one decode ('a') only
    table = garden_path_table()
    plain, plain_model = run('greedy')
    forced, model = run('greedy', force=True)
    assert forced.tokens == plain.tokens and forced.stop_reason == 'eos'
    assert model.calls == 1 and plain_model.calls == 5   # 'a' decoded, the rest forced
    first = log_softmax(table[START])[IDS['a']]
    assert forced.score == pytest.approx(first, abs=1e-5)   # only the choice counts
    # 'there' forces 'are four people and a bus': one choice, then the forced end
    sentences = [ids('there are four people and a bus'), ids('a bus and four people')]
    table2 = table.copy()
    table2[START, IDS['there']] = 5.0
    found, model = run('greedy', table=table2, sentences=sentences, force=True)
    assert words(found.tokens) == 'there are four people and a bus' and model.calls == 1


def test_forced_span_then_choice_feeds_one_batch_and_decodes_the_rest():
    # the start forces 'four people and'; then 'a' or 'four' is a choice; 'bus' is forced
    sentences = [ids('four people and a bus'), ids('four people and four bus')]
    plain, plain_model = run('greedy', sentences=sentences)
    found, model = run('greedy', sentences=sentences, force=True)
    assert found.tokens == plain.tokens
    assert model.calls == 2                # one feed of 'four people and', one decode of 'a'
    assert plain_model.calls == 5


def test_forcing_respects_max_tokens_and_beam_steps_never_force():
    found, _ = run('greedy', force=True, max_tokens=3)
    assert found.stop_reason == 'max_tokens' and words(found.tokens) == 'a bus and'
    beam, model = run('beam', force=True)
    assert words(beam.tokens) == 'four people and a bus'
    assert beam.score == pytest.approx(sentence_score(garden_path_table(), beam.tokens),
                                       abs=1e-5)
