"""Commonsense knowledge: shipped facts and affordances, user files, a local ConceptNet dump."""

import gzip
import json

import pytest

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.scene_graph.knowledge import (
    CONCEPTNET_RELATIONS, KnowledgeBase, load_conceptnet_csv)
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import BoundingBox, DetectionResult, FrameHeader, SceneObject

# ConceptNet 5 relation names the shipped file may use.
SHIPPED_RELATIONS = {'IsA', 'UsedFor', 'AtLocation', 'CapableOf', 'PartOf', 'HasA', 'MadeOf',
                     'HasProperty'}


def test_every_shipped_class_has_facts_with_conceptnet_relation_names():
    kb = KnowledgeBase.load()
    assert len(kb) == 80
    for name in kb.class_names():
        facts = kb.facts(name)
        assert len(facts) >= 3, name
        assert {rel for rel, _ in facts} <= SHIPPED_RELATIONS, name
        assert all(value and len(value) <= 96 for _, value in facts), name
        assert kb.size_prior(name) is not None, name      # the facts did not drop the sizes
    assert ('UsedFor', 'sitting') in kb.facts('chair')
    assert ('AtLocation', 'kitchen') in kb.facts('refrigerator')


def test_shipped_affordances():
    kb = KnowledgeBase.load()
    assert kb.affords('dining table', 'support') and kb.affords('bed', 'support')
    assert kb.affords('bowl', 'contain') and kb.affords('bus', 'contain')
    assert not kb.affords('person', 'support') and not kb.affords('person', 'contain')
    assert not kb.affords('tv', 'support') and not kb.affords('forklift', 'support')


def test_user_file_adds_facts_and_affordances_without_losing_sizes(tmp_path):
    extra = tmp_path / 'mine.yaml'
    extra.write_text('classes:\n'
                     '  person: {facts: {CapableOf: [wave]}}\n'
                     '  forklift: {size_m: {height: 2.1, width: 1.2, length: 2.5}}\n'
                     'facts:\n'
                     '  forklift: {UsedFor: [lifting pallets], AtLocation: warehouse}\n'
                     '  cup: {UsedFor: [drinking]}\n'
                     'affordances:\n'
                     '  support: [forklift]\n')
    kb = KnowledgeBase.load([str(extra)])
    assert kb.size_prior('person').height == pytest.approx(1.7)     # kept
    assert ('CapableOf', 'wave') in kb.facts('person')
    assert ('CapableOf', 'walk') in kb.facts('person')               # merged, not replaced
    assert kb.facts('forklift') == (('UsedFor', 'lifting pallets'), ('AtLocation', 'warehouse'))
    assert kb.facts('cup').count(('UsedFor', 'drinking')) == 1      # no duplicates
    assert kb.affords('forklift', 'support') and kb.affords('dining table', 'support')


@pytest.mark.parametrize('content,match', [
    ('affordances: {fly: [bird]}', 'unknown affordance'),
    ('facts: [1, 2]', 'facts'),
    ('facts: {cup: [drinking]}', 'relation names'),
    ('something: else', 'top-level'),
])
def test_bad_knowledge_sections_are_config_errors(tmp_path, content, match):
    bad = tmp_path / 'bad.yaml'
    bad.write_text(content)
    with pytest.raises(ConfigError, match=match):
        KnowledgeBase.load([str(bad)])


def _conceptnet_rows():
    def row(rel, start, end, weight):
        return '\t'.join([f'/a/[/r/{rel}/,{start}/,{end}/]', f'/r/{rel}', start, end,
                          json.dumps({'dataset': '/d/conceptnet/4/en', 'weight': weight})])
    return [
        row('UsedFor', '/c/en/cup/n', '/c/en/drink_tea', 2.0),
        row('AtLocation', '/c/en/cup', '/c/en/cupboard', 4.5),
        row('UsedFor', '/c/en/cup', '/c/en/drink_tea', 1.0),         # repeat: kept once
        row('Synonym', '/c/en/cup', '/c/en/mug', 9.0),               # lexical: ignored
        row('UsedFor', '/c/fr/tasse', '/c/fr/boire', 9.0),           # French: ignored
        row('IsA', '/c/en/dining_table', '/c/en/furniture', 3.0),    # multi-word class
        row('CapableOf', '/c/en/teapot', '/c/en/pour', 5.0),         # not a known class
        row('IsA', '/c/en/cup', '/c/en/container', 1.5),
        'a malformed line',
    ]


@pytest.mark.parametrize('compressed', [False, True])
def test_conceptnet_dump_is_streamed_filtered_and_ranked(tmp_path, compressed):
    text = '\n'.join(_conceptnet_rows()) + '\n'
    path = tmp_path / ('assertions.csv.gz' if compressed else 'assertions.csv')
    if compressed:
        with gzip.open(path, 'wt', encoding='utf-8') as f:
            f.write(text)
    else:
        path.write_text(text, encoding='utf-8')
    found = load_conceptnet_csv(path, ['cup', 'dining table', 'person'], facts_per_class=2)
    assert found['cup'] == (('AtLocation', 'cupboard'), ('UsedFor', 'drink tea'))
    assert found['dining table'] == (('IsA', 'furniture'),)
    assert 'person' not in found and 'teapot' not in found
    assert {'Synonym', 'RelatedTo'}.isdisjoint(CONCEPTNET_RELATIONS)


def test_conceptnet_facts_reach_the_graph(tmp_path):
    path = tmp_path / 'assertions.csv'
    path.write_text('\n'.join(_conceptnet_rows()) + '\n', encoding='utf-8')
    config = SceneGraphConfig(conceptnet_file=str(path), max_facts_per_object=32)
    builder = SceneGraphBuilder(config)
    cup = SceneObject(id=0, class_name='cup', class_id=41, confidence=0.9,
                      box=BoundingBox(0, 0, 10, 10))
    graph = builder.build(DetectionResult(FrameHeader(), 100, 100, [cup]))
    knowledge = graph.objects[0].knowledge
    assert ('AtLocation', 'cupboard') in knowledge and ('UsedFor', 'drinking') in knowledge


def test_missing_or_unreadable_conceptnet_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        KnowledgeBase.load(conceptnet_file=str(tmp_path / 'none.csv'))
    broken = tmp_path / 'broken.csv.gz'
    broken.write_bytes(b'not gzip at all')
    with pytest.raises(ConfigError, match='cannot be read'):
        KnowledgeBase.load(conceptnet_file=str(broken))
