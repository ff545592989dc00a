"""The caption planner, realiser, grammar and verifier (plain unit tests, no model)."""

import json
import random

import pytest

from spatial_caption_ros.core.captioning.change import scene_change
from spatial_caption_ros.core.captioning.grammar import (
    facts_grammar, grammar_texts, vocabulary_grammar)
from spatial_caption_ros.core.captioning.language import format_distance, NounLexicon
from spatial_caption_ros.core.captioning.plan import (
    limits_for, object_salience, plan_caption, referring_expressions)
from spatial_caption_ros.core.captioning.structured import (
    dumps, SCHEMA_ID, structured_caption, validate)
from spatial_caption_ros.core.captioning.template import (
    clause_options, count_options, EMPTY_CAPTION, realise)
from spatial_caption_ros.core.captioning.semantics import Claim, GraphIndex, NounPhrase
from spatial_caption_ros.core.captioning.verify import CaptionVerifier, repair
from spatial_caption_ros.core.scene_graph.builder import SceneGraphBuilder, SceneGraphConfig
from spatial_caption_ros.core.types import (
    BEHIND, BoundingBox, DetectionResult, FrameHeader, LEFT_OF, OVERLAPPING, RIGHT_OF,
    SceneGraph, SceneObject)
from support.scenes import scene_object as _obj, street


def verdict(text, graph=None):
    result = CaptionVerifier(graph or street()).verify(text)
    return result.ok, result.first_reason()


@pytest.mark.parametrize('text', [
    'There is a bus and three people.',
    'A bus and three people.',
    'The image shows three people and a bus.',
    'Three persons and a bus are in view.',                      # synonym plural
    'The bus is in the center.',
    'The bus is in the middle.',
    'The person on the left is to the left of the bus.',
    'The bus is to the right of the person on the left.',        # converse
    'The person on the left is in front of the bus.',
    'The bus is behind the person on the left.',
    'The bus is closer to the camera than a person on the right.' if False else
    'The bus is farther from the camera than the person on the left.',
    'A person is to the right of the bus.',                      # existential subject
    'Two people are on the right.',
    'The person on the left is 5.8 m from the bus.',             # within tolerance
    'The person on the left is to the left of the bus (6.2 m apart).',
    'The person on the left is nearest to the camera (5.8 m away).',
    'The nearest object is the person on the left.',
    'The nearest person is 5.8 m away.',
    'There is a bus and three people; the bus is in the center and the person on the left is '
    'to the left of the bus.',
])
def test_true_statements_verify(text):
    ok, reason = verdict(text)
    assert ok, reason


@pytest.mark.parametrize('text, reason', [
    ('The bus is to the left of the person on the left.', 'relation_not_in_graph'),  # direction
    ('The person on the left is to the right of the bus.', 'relation_not_in_graph'),
    ('The person on the left is behind the bus.', 'relation_not_in_graph'),
    ('There are four people and a bus.', 'wrong_count'),
    ('There are two people and a bus.', 'wrong_count'),
    ('A bus and a dog.', 'object_not_in_graph'),                 # invented COCO object
    ('A bus and a tree.', 'unparsed'),                           # invented, unknown word
    ('A red bus and three people.', 'unparsed'),                 # unverifiable adjective
    ('A man is to the left of the bus.', 'unverifiable_word'),   # hyponym of person
    ('There are three men and a bus.', 'unverifiable_word'),
    ('The bus is not in the center.', 'negation'),
    ("The bus isn't on the left.", 'negation'),
    ('There are no dogs.', 'negation'),
    ('The person is to the left of the bus.', 'ambiguous_reference'),
    ('A people is on the left.', 'unparsed'),                    # plural/singular
    ('Two person are on the right.', 'unparsed'),
    ('The bus are in the center.', 'unparsed'),
    ('The bus is on the left.', 'wrong_region'),
    ('Three people are on the right.', 'wrong_region'),
    ('The person on the left is 9.0 m from the bus.', 'wrong_distance'),
    ('The person on the left is to the left of the bus (7.0 m apart).', 'wrong_distance'),
    ('The bus is nearest to the camera.', 'wrong_nearest'),
    ('The person on the left is touching the bus.', 'unsupported_predicate'),
    ('The bus is 10 m away.', ''),                               # true: distance 10.0
])
def test_adversarial_statements_fail_with_a_reason(text, reason):
    ok, why = verdict(text)
    if reason == '':
        assert ok
    else:
        assert not ok and why == reason, why


def test_the_graph_index_judges_parsed_claims_without_the_parser():
    index = GraphIndex(street())
    bus = NounPhrase('unique', 'bus', 1, False, True)
    left = NounPhrase('unique', 'person', 1, False, True, cell=(None, 0))
    people = NounPhrase('exactly', 'person', 3, True, True)
    assert index.judge(Claim('place', '', subject=bus, cell=(1, 1))) == (True, '')
    assert index.judge(Claim('place', '', subject=bus, cell=(None, 0))) == (False, 'wrong_region')
    assert index.judge(Claim('count', '', subject=people)) == (True, '')
    assert index.judge(Claim('relation', '', subject=left, predicate=LEFT_OF, object=bus)) == (
        True, '')
    assert index.judge(Claim('relation', '', subject=bus, predicate=LEFT_OF, object=left)) == (
        False, 'relation_not_in_graph')
    assert index.judge(Claim('nearest', '', subject=left)) == (True, '')


def test_no_metres_without_metric_depth():
    graph = street(metric=False)
    for text in ('The person on the left is 5.8 m from the bus.',
                 'The bus is 10 m away.',
                 'The person on the left is to the left of the bus (5.8 m apart).'):
        ok, reason = verdict(text, graph)
        assert not ok and reason == 'no_metric_distance'
    assert verdict('The person on the left is to the left of the bus.', graph)[0]


def test_one_false_clause_fails_the_whole_caption_and_repair_keeps_the_true_ones():
    graph = street()
    text = ('There is a bus and three people; the bus is to the left of the person on the '
            'left; the bus is in the center.')
    result = CaptionVerifier(graph).verify(text)
    assert not result.ok and len(result.clauses) == 3
    fixed = repair(result)
    assert fixed == 'There is a bus and three people; the bus is in the center.'
    assert CaptionVerifier(graph).verify(fixed).ok
    mostly_false = CaptionVerifier(graph).verify(
        'There are two buses; the bus is on the left; the bus is in the center.')
    assert repair(mostly_false) is None          # less than half survives: template instead


def test_empty_graph():
    empty = SceneGraph(FrameHeader(), 640, 480, [], [])
    plan = plan_caption(empty, 'short', limits_for('short', 1, 4))
    assert realise(plan) == EMPTY_CAPTION
    assert verdict(EMPTY_CAPTION, empty)[0]
    assert not verdict(EMPTY_CAPTION)[0]


def test_plan_uses_salience_and_falls_back_when_zero():
    graph = street()
    assert all(o.salience == 0.0 for o in graph.objects)
    assert object_salience(graph.objects[0]) > 0
    graph.objects[0].salience = 0.01
    graph.objects[1].salience = 0.9
    plan = plan_caption(graph, 'short', limits_for('short', 1, 4))
    assert plan.facts[0].class_name == 'person'         # the most salient class first
    refs = referring_expressions(graph)
    assert refs == {0: 'the bus', 1: 'the person on the left'}


def test_short_plan_states_nearest_with_distance_and_one_relation():
    plan = plan_caption(street(), 'short', limits_for('short', 1, 4))
    kinds = [f.kind for f in plan.facts]
    assert kinds == ['count', 'count', 'nearest', 'relation']
    assert plan.facts[2].subject_ref == 'the person on the left'
    assert plan.facts[2].distance == pytest.approx(5.83, abs=0.01)
    text = realise(plan)
    assert text.count('.') - text.count(' m') == 1       # one sentence (decimal points aside)


def _random_graph(rng: random.Random, n: int) -> SceneGraph:
    classes = ['person', 'car', 'dog', 'bus', 'chair', 'sheep']
    objects = []
    for i in range(n):
        x, y = rng.uniform(0, 560), rng.uniform(0, 400)
        w, h = rng.uniform(10, 200), rng.uniform(10, 200)
        objects.append(SceneObject(id=i, class_name=rng.choice(classes), class_id=0,
                                   confidence=rng.uniform(0.3, 1.0),
                                   box=BoundingBox(x, y, min(640, x + w), min(480, y + h))))
    result = DetectionResult(FrameHeader(1, 'c'), 640, 480, objects)
    return SceneGraphBuilder(SceneGraphConfig()).build(result)


@pytest.mark.parametrize('seed', range(30))
def test_every_wording_the_generators_may_use_verifies(seed):
    rng = random.Random(seed)
    graph = _random_graph(rng, rng.randint(0, 9))
    for style in ('short', 'detailed'):
        plan = plan_caption(graph, style, limits_for(style, 2, 6))
        text = realise(plan)
        assert CaptionVerifier(graph).verify(text).ok, (text, CaptionVerifier(
            graph).verify(text).failures())
        counts = plan.of_kind('count')
        for option in count_options(counts) if counts else []:
            assert CaptionVerifier(graph).verify(option + '.').ok, option
        for fact in plan.facts:
            if fact.kind != 'count':
                for option in clause_options(fact):
                    assert CaptionVerifier(graph).verify(option + '.').ok, option


def test_facts_grammar_offers_only_planned_wordings():
    plan = plan_caption(street(), 'short', limits_for('short', 1, 4))
    grammar = facts_grammar(plan)
    assert grammar.startswith('root ::= " " counts')
    texts = grammar_texts(grammar)
    assert 'There is a bus and three people' in texts
    assert any('5.8 m away' in t for t in texts) and any('5.8 m apart' in t for t in texts)
    assert not any('dog' in t for t in texts)
    vocab = vocabulary_grammar(street(), 'short')
    assert '"the bus"' in vocab and 'distance ::=' in vocab
    assert 'distance ::=' not in vocabulary_grammar(street(metric=False), 'short')


def test_structured_caption_is_valid_json_with_fact_ids():
    graph = street()
    plan = plan_caption(graph, 'short', limits_for('short', 1, 4))
    doc = structured_caption(plan, graph, realise(plan), True, 'template')
    assert validate(doc) == []
    parsed = json.loads(dumps(doc))
    assert parsed['schema'] == SCHEMA_ID and parsed['counts'] == {'bus': 1, 'person': 3}
    assert [f['id'] for f in parsed['facts']] == ['f1', 'f2', 'f3', 'f4']
    assert parsed['facts'][3]['predicate'] == LEFT_OF and parsed['objects'][0]['distance_m'] == 10
    assert validate({**doc, 'verified': 'yes'}) and validate({**doc, 'extra': 1})
    assert validate([1]) == ['not a JSON object']


def test_scene_change_detection():
    a, b = street(), street()
    assert scene_change(None, a, 0.1) == 'first'
    assert scene_change(a, b, 0.1) == ''
    b.objects[0].box = BoundingBox(450, 100, 650, 400)          # the bus moved 150 px
    assert scene_change(a, b, 0.1) == 'positions'
    assert scene_change(a, b, 0.5) == ''
    b.relations = [r for r in b.relations if r.predicate != OVERLAPPING][:-1]
    assert scene_change(a, b, 0.5) == 'relations'
    b.objects.pop()
    assert scene_change(a, b, 0.5) == 'counts'


def test_language_tables():
    assert format_distance(5.83) == '5.8 m' and format_distance(14.4) == '14 m'
    lexicon = NounLexicon({'forklift'})
    assert lexicon.match(['forklifts'], 0)[1:] == ('forklift', True, True)
    assert lexicon.match(['men'], 0)[1:] == ('person', True, False)
    assert lexicon.match(['dining', 'table'], 0)[0] == 2
    assert BEHIND and RIGHT_OF     # predicates used above are the message constants


def test_external_judgement_and_chair():
    from spatial_caption_ros.core.captioning.evaluation import (
        chair, GroundTruth, judge_caption)
    graph = street()
    gt_objects = [SceneObject(id=10 + o.id, class_name=o.class_name, class_id=-1,
                              confidence=1.0, box=o.box, region=o.region, depth=o.depth,
                              depth_metric=True, position=o.position, distance=o.distance)
                  for o in graph.objects]
    gt = GroundTruth(gt_objects, {'bus', 'person'}, None, has_depth=True,
                     counts_decidable={'bus', 'person'})
    judged = judge_caption('There is a bus and three people; the person on the left is to the '
                           'left of the bus (5.8 m apart).', graph, gt)
    assert [(j.kind, j.decided, j.true) for j in judged] == [
        ('count', True, True), ('count', True, True), ('relation', True, True)]
    # the labels disagree with the graph: the person is really right of the bus
    gt_objects[1].box = BoundingBox(700, 200, 750, 400)
    judged = judge_caption('The person on the left is to the left of the bus.', graph, gt)
    assert judged[0].decided is False            # no labelled box matches that detection
    gt_objects[1].box = graph.objects[1].box
    gt_objects[1].depth = 30.0                   # labels: the person is far behind the bus
    judged = judge_caption('The person on the left is in front of the bus.', graph, gt)
    assert (judged[0].decided, judged[0].true) == (True, False)
    lexicon = NounLexicon({'bus', 'person'})
    assert chair('A bus, two men and a dog; the dog is near the bus.', gt, lexicon) == (3, 1)


def test_unusual_class_names_from_other_detectors_still_verify():
    objects = [SceneObject(id=0, class_name="dog's bowl", class_id=0, confidence=0.9,
                           box=BoundingBox(10, 10, 100, 100), region='top-left'),
               SceneObject(id=1, class_name='class 3', class_id=1, confidence=0.8,
                           box=BoundingBox(500, 300, 600, 400), region='bottom-right')]
    graph = SceneGraphBuilder(SceneGraphConfig()).build(
        DetectionResult(FrameHeader(1, 'c'), 640, 480, objects))
    for style in ('short', 'detailed'):
        text = realise(plan_caption(graph, style, limits_for(style, 2, 6)))
        result = CaptionVerifier(graph).verify(text)
        assert result.ok, (text, result.failures())


def test_nouns_with_the_same_plural():
    objects = [SceneObject(id=i, class_name='broccoli', class_id=0, confidence=0.9,
                           box=BoundingBox(100 * i, 10, 100 * i + 80, 90)) for i in range(4)]
    objects.append(SceneObject(id=9, class_name='sheep', class_id=1, confidence=0.9,
                               box=BoundingBox(300, 300, 400, 400)))
    graph = SceneGraphBuilder(SceneGraphConfig()).build(
        DetectionResult(FrameHeader(1, 'c'), 640, 480, objects))
    assert verdict('There are four broccoli and a sheep.', graph)[0]
    assert verdict('The sheep is at the bottom.', graph)[0]
    assert not verdict('There are three broccoli.', graph)[0]
    text = realise(plan_caption(graph, 'detailed', limits_for('detailed', 1, 6)))
    assert CaptionVerifier(graph).verify(text).ok, text


def test_placements_need_a_margin_from_the_grid_lines():
    from spatial_caption_ros.core.captioning.plan import clearly_in_region
    near_line = _obj(0, 'bus', (250, 100, 290, 200), 'center')      # centre x 270 of 800: 0.34
    assert not clearly_in_region(near_line, 800, 600)
    assert clearly_in_region(_obj(0, 'bus', (360, 250, 440, 350), 'center'), 800, 600)
    # "at the top": only the row matters, the column lines do not
    assert clearly_in_region(_obj(0, 'bus', (250, 10, 290, 60), 'top'), 800, 600)


def test_captions_describe_the_confident_part_of_the_graph():
    from spatial_caption_ros.core.captioning.plan import confident_view
    graph = street()
    graph.objects[3].confidence = 0.3
    view = confident_view(graph, 0.5)
    assert [o.id for o in view.objects] == [0, 1, 2] and len(graph.objects) == 4
    assert all(3 not in (r.subject_id, r.object_id) for r in view.relations)
    assert view.objects[1].class_count == 2 and graph.objects[1].class_count == 3
    text = realise(plan_caption(view, 'short', limits_for('short', 1, 4)))
    assert 'two people' in text and CaptionVerifier(view).verify(text).ok
    assert confident_view(graph, 0.0) is graph


def test_nearest_of_a_class_is_not_stated_as_a_tautology():
    graph = street()
    for o in graph.objects[2:]:
        o.region = 'left'                     # no grid cell tells the people apart any more
    graph.objects[1].region = 'left'
    graph.objects[0].depth = 20.0             # the nearest object is a person
    refs = referring_expressions(graph)
    assert refs[1] == 'the nearest person'
    plan = plan_caption(graph, 'short', limits_for('short', 1, 4))
    nearest_fact = plan.of_kind('nearest')[0]
    options = clause_options(nearest_fact)
    assert options[0] == 'the nearest object is a person (5.8 m away)'
    assert all(CaptionVerifier(graph).verify(o + '.').ok for o in options)


def test_distances_are_written_only_as_precisely_as_the_graph_knows_them():
    graph = street()
    for o in graph.objects:
        o.depth_uncertainty = 0.15 * o.depth        # 15 % one-sigma: more than the tolerance
    text = realise(plan_caption(graph, 'detailed', limits_for('detailed', 1, 6)))
    assert ' m ' not in text and ' m)' not in text and 'nearest' in text
    assert CaptionVerifier(graph).verify(text).ok


def test_nearest_is_only_claimed_against_every_detection():
    from spatial_caption_ros.core.captioning.plan import confident_view
    graph = street()
    graph.objects[1].confidence = 0.3            # the nearest person is a weak detection
    view = confident_view(graph, 0.5)
    limits = limits_for('short', 1, 4)
    assert plan_caption(view, 'short', limits).of_kind('nearest')[0].subject == 0   # the bus
    assert not plan_caption(view, 'short', limits, graph.objects).of_kind('nearest')
    graph.objects[0].confidence = 0.99
    lone = confident_view(graph, 0.95)
    assert [o.id for o in lone.objects] == [0]
    assert not plan_caption(lone, 'short', limits, lone.objects).of_kind('nearest')
