"""Scoring captions against external labels (../shared/eval format): claims, hallucination.

Each claim of a published caption (parsed by the verifier, so exactly what the verifier checked)
is judged against the image's ground truth where the labels can decide it:
- its objects: the graph objects the caption refers to, matched to ground-truth boxes of a class
  the label maps to (the class map of core/evaluation/kitti.py; IoU >= MATCH_IOU); a claim about
  an unmatched detection is undecidable here (a wrong detection is an object hallucination,
  which CHAIR counts);
- left/right/above/below: the ground-truth boxes clearly separated on that axis (the graph
  evaluation's rule, core/evaluation/metrics.clear_direction): true in the stated direction,
  false in the other; otherwise undecidable;
- overlapping: the ground-truth boxes intersect (decidable for any pair);
- in front of / behind / nearest ("the nearest object is ...", and "the nearest car" among the
  labelled cars): KITTI depths (z) clearly ordered (metrics.clear_depth_order:
  more than 10 % of the nearer apart); COCO has no depth: undecidable;
- distances (their own judgement, kind `distance`, also for the distance in a "nearest" or a
  relation clause): the labelled KITTI 3D centre within the precision the caption states (the
  verifier's rule, semantics.py), and apart from that the relative error of the number said (a
  range: its middle) for the +-25 % criterion of SpatialRGPT-Bench; robot-frame distances ("12 m
  ahead, 2 m to the left") against the labelled centre's z and x (the other side: false); a gap
  in depth ("3 to 6 m behind B") against the labelled centres' z difference;
- regions: the matched ground-truth box centre's 3x3 cell;
- counts (not spatial; reported apart): the number of ground-truth instances of the class
  (COCO, when the class has no crowd annotation; KITTI labels skip far objects: undecidable);
- VSR statements about the same two classes and the same (or converse) relation decide a
  relation claim too (and a false statement the claim implies: "on" when "touching" is false);
  apart from that, `vsr_decisions` counts the VSR statements the caption decides: a relation
  claim that implies the statement ("on" implies "touching") or excludes it ("left of" excludes
  "right of").
Next to / near / on / inside have no agreed box-level truth: undecidable (reported as such).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from spatial_caption_ros.core.captioning.language import (
    NounLexicon, region_matches, SYMMETRIC_CLAIMS, TOUCHING)
from spatial_caption_ros.core.captioning.semantics import axis_distance, distance_agrees, nearest
from spatial_caption_ros.core.captioning.verify import CaptionVerifier, Claim, tokenize
from spatial_caption_ros.core.evaluation.ground_truth import GroundTruth
from spatial_caption_ros.core.evaluation.metrics import (
    clear_depth_order, clear_direction, MATCH_IOU)
from spatial_caption_ros.core.types import (
    ABOVE, BEHIND, BELOW, CONTAINS, CONVERSE, IN_FRONT_OF, INSIDE, LEFT_OF, NEAR, NEXT_TO, ON,
    OVERLAPPING, RIGHT_OF, SceneGraph, SceneObject, SYMMETRIC)

VSR_RELATIONS = {'left of': LEFT_OF, 'at the left side of': LEFT_OF, 'right of': RIGHT_OF,
                 'at the right side of': RIGHT_OF, 'above': ABOVE, 'below': BELOW,
                 'under': BELOW, 'beneath': BELOW, 'in front of': IN_FRONT_OF,
                 'behind': BEHIND, 'on': ON, 'on top of': ON, 'in': INSIDE, 'inside': INSIDE,
                 'within': INSIDE, 'contains': CONTAINS, 'touching': TOUCHING,
                 'next to': NEXT_TO, 'beside': NEXT_TO, 'near': NEAR, 'close to': NEAR}
# What a caption claim of a predicate says about a VSR statement of the same two objects:
# the statements it implies (true) and those it excludes (false).
# (The graph evaluation's VSR rules, core/evaluation/metrics.py, are the same where both apply.)
_IMPLIES = {ON: {ON, TOUCHING}, INSIDE: {INSIDE, TOUCHING}, CONTAINS: {CONTAINS, TOUCHING},
            NEXT_TO: {NEXT_TO, NEAR}}
_EXCLUDES = {LEFT_OF: {RIGHT_OF}, RIGHT_OF: {LEFT_OF}, ABOVE: {BELOW}, BELOW: {ABOVE, ON},
             IN_FRONT_OF: {BEHIND}, BEHIND: {IN_FRONT_OF}, ON: {BELOW}, INSIDE: {CONTAINS},
             CONTAINS: {INSIDE}}


@dataclass
class ClaimJudgement:
    kind: str
    spatial: bool
    decided: bool
    true: bool
    text: str
    source: str = ''
    error: float | None = None      # distance: |said - labelled| / labelled (decided only)


def _match(obj: SceneObject, gt: GroundTruth) -> SceneObject | None:
    same = [g for g in gt.objects if gt.matches_class(g, obj.class_name)]
    best = max(same, key=lambda g: g.box.iou(obj.box), default=None)
    return best if best is not None and best.box.iou(obj.box) >= MATCH_IOU else None


def _direction(pred: str, a: SceneObject, b: SceneObject) -> bool | None:
    order = clear_direction(a.box, b.box, 'x' if pred in (LEFT_OF, RIGHT_OF) else 'y')
    if not order:
        return None
    return order == (1 if pred in (LEFT_OF, ABOVE) else -1)


def gt_relation(pred: str, a: SceneObject, b: SceneObject, gt: GroundTruth) -> bool | None:
    """Truth of `a pred b` by the labels, None when they cannot decide it."""
    if pred in (LEFT_OF, RIGHT_OF, ABOVE, BELOW):
        return _direction(pred, a, b)
    if pred == OVERLAPPING:
        return a.box.iou(b.box) > 0.0
    if pred in (IN_FRONT_OF, BEHIND) and gt.has_depth:
        near, far = (a, b) if pred == IN_FRONT_OF else (b, a)
        order = clear_depth_order(near.depth, far.depth)
        return None if not order else order > 0
    return None


def judge_caption(text: str, graph: SceneGraph, gt: GroundTruth) -> list[ClaimJudgement]:
    """Judge every claim of a caption against the labels (see the module docstring)."""
    verifier = CaptionVerifier(graph)
    out = []
    for claim in verifier.verify(text).claims:
        if claim.kind != 'distance':
            out.append(_judge(claim, verifier, graph, gt))
        if claim.subject is not None and claim.subject.nearest:
            out.append(_judge_superlative(claim, verifier, gt))
        if claim.distance is not None:
            out.append(_judge_distance(claim, verifier, gt))
    return out


def _judge_superlative(claim: Claim, verifier: CaptionVerifier,
                       gt: GroundTruth) -> ClaimJudgement:
    """"the nearest car": its labelled box is clearly nearer than every other labelled car."""
    subjects, _ = verifier.index.referents(claim.subject)
    matched = _match(subjects[0], gt) if len(subjects) == 1 and gt.has_depth else None
    if matched is None:
        return ClaimJudgement('nearest', True, False, False, claim.text)
    others = [g for g in gt.objects if g is not matched
              and gt.matches_class(g, claim.subject.class_name)]
    if any(not clear_depth_order(matched.depth, g.depth) for g in others):
        return ClaimJudgement('nearest', True, False, False, claim.text)
    return ClaimJudgement('nearest', True, True, all(matched.depth < g.depth for g in others),
                          claim.text)


def _judge_distance(claim: Claim, verifier: CaptionVerifier, gt: GroundTruth) -> ClaimJudgement:
    """The distance a claim states, against the labelled 3D centres (KITTI)."""
    def verdict(labelled: float | None) -> ClaimJudgement:
        if labelled is None or not math.isfinite(labelled) or labelled <= 0:
            return ClaimJudgement('distance', True, False, False, claim.text)
        point = claim.distance.point          # a bound ("more than 20 m") has none
        error = abs(point - labelled) / labelled if math.isfinite(point) else None
        return ClaimJudgement('distance', True, True, distance_agrees(claim.distance, labelled),
                              claim.text, error=error)

    if not gt.has_depth:
        return verdict(None)
    subjects, _ = verifier.index.referents(claim.subject)
    if claim.kind in ('nearest', 'distance'):
        if claim.kind == 'nearest':
            closest = nearest(verifier.graph.objects)
            subjects = [o for o in subjects if closest is not None and o.id == closest.id]
        matched = _match(subjects[0], gt) if len(subjects) == 1 else None
        if matched is None or not claim.axis:
            return verdict(matched.distance if matched is not None else None)
        if matched.position is None:
            return verdict(None)
        labelled = axis_distance(matched.distance, matched.position, claim.axis)
        if not math.isfinite(labelled):             # labelled on the other side
            return ClaimJudgement('distance', True, True, False, claim.text, error=1.0)
        return verdict(labelled)
    objects, _ = verifier.index.referents(claim.object)
    pairs = [(a, b) for a in subjects for b in objects if a.id != b.id and (
        not claim.predicate or verifier.index.holds(a.id, claim.predicate, b.id))]
    if len(pairs) != 1:
        return verdict(None)
    ga, gb = _match(pairs[0][0], gt), _match(pairs[0][1], gt)
    if claim.depth_gap and ga is not None and gb is not None:
        return verdict(abs(gb.depth - ga.depth))       # "3 m behind": the labelled z gap
    if ga is None or gb is None or ga.position is None or gb.position is None:
        return verdict(None)
    return verdict(math.dist(ga.position, gb.position))


def _judge(claim: Claim, verifier: CaptionVerifier, graph: SceneGraph,
           gt: GroundTruth) -> ClaimJudgement:
    spatial = claim.kind != 'count'

    def verdict(decided: bool, true: bool = False, source: str = 'labels') -> ClaimJudgement:
        return ClaimJudgement(claim.kind, spatial, decided, decided and true, claim.text, source)

    if claim.kind in ('empty', 'scene'):
        # "No objects detected." reports the detector, not the scene; "looks like a kitchen" is
        # an inference the labels do not state
        return verdict(False)
    if claim.kind == 'count':
        cls = claim.subject.class_name
        if cls not in gt.counts_decidable or claim.subject.cell is not None:
            return verdict(False)
        labelled = sum(o.class_name == cls for o in gt.objects)
        if claim.subject.mode == 'at_least':
            return verdict(True, labelled >= claim.subject.count)
        return verdict(True, labelled == claim.subject.count)
    subjects, _ = verifier.index.referents(claim.subject)
    matched = [_match(o, gt) for o in subjects]
    if claim.kind == 'relation' and not gt.objects and subjects and claim.predicate:
        # VSR-only image: no boxes, only true/false statements about class pairs
        value = _vsr(claim.predicate, claim.subject.class_name, claim.object.class_name, gt)
        return verdict(value is not None, bool(value), 'vsr')
    if not subjects or any(m is None for m in matched):
        return verdict(False)
    if claim.kind == 'place':
        return verdict(True, all(region_matches(m.region, claim.cell) for m in matched))
    if claim.kind == 'nearest':                   # its distance is judged on its own
        if not gt.has_depth or len(matched) != 1:
            return verdict(False)
        m = matched[0]
        others = [g for g in gt.objects if g is not m]
        if any(not clear_depth_order(m.depth, g.depth) for g in others):
            return verdict(False)
        return verdict(True, all(m.depth < g.depth for g in others))
    if not claim.predicate:                       # "A is 5 m from B": only a distance
        return verdict(False)
    objects, _ = verifier.index.referents(claim.object)
    pairs = [(a, b) for a in subjects for b in objects
             if a.id != b.id and verifier.index.holds(a.id, claim.predicate, b.id)]
    results = []
    for a, b in pairs:
        ga, gb = _match(a, gt), _match(b, gt)
        if ga is None or gb is None:
            return verdict(False)
        value = gt_relation(claim.predicate, ga, gb, gt)
        if value is None:
            value = _vsr(claim.predicate, a.class_name, b.class_name, gt)
            if value is None:
                return verdict(False)
        results.append(value)
    if not results:
        return verdict(False)
    return verdict(True, all(results))


def _vsr_statement(statement: dict) -> tuple[str, str, str] | None:
    """(subject class, predicate, object class) of "The X is <relation> the Y.", or None."""
    rel = VSR_RELATIONS.get(statement['relation'])
    text = statement['caption'].lower().rstrip('.')
    words = text.split(f' is {statement["relation"]} ')
    if len(words) != 2:                       # a verb: "The vase contains the flower."
        words = text.split(f' {statement["relation"]} ')
    if rel is None or len(words) != 2:
        return None
    return words[0].removeprefix('the '), rel, words[1].removeprefix('the ')


def vsr_prediction(pred: str, subject: str, obj: str, statement: dict) -> bool | None:
    """What a caption claim `subject pred obj` (classes) says of a VSR statement.

    True: the claim implies the statement ("the pizza is on the table" implies "the pizza is
    touching the table"); False: it excludes it ("left of" excludes "right of"); None: neither,
    or the statement is about other classes.
    """
    parsed = _vsr_statement(statement)
    if parsed is None or not pred:
        return None
    s, rel, o = parsed
    symmetric = SYMMETRIC | SYMMETRIC_CLAIMS
    if (subject, obj) != (s, o):
        if (subject, obj) != (o, s):
            return None
        if rel not in symmetric:            # read the claim the other way round
            pred = pred if pred in symmetric else CONVERSE.get(pred)
            if pred is None:
                return None
    if rel in _IMPLIES.get(pred, {pred}):
        return True
    if rel in _EXCLUDES.get(pred, ()):
        return False
    return None


def vsr_decisions(text: str, graph: SceneGraph, gt: GroundTruth) -> dict[int, bool]:
    """VSR statement index -> whether the caption's claims decide it right (decided ones only).

    A relation claim of the published caption about the two classes of a statement decides it
    when it implies or excludes it (vsr_prediction); right when that matches the label.
    """
    out: dict[int, bool] = {}
    for claim in CaptionVerifier(graph).verify(text).claims:
        if claim.kind != 'relation' or not claim.predicate or claim.object is None:
            continue
        for n, statement in enumerate(gt.vsr):
            said = vsr_prediction(claim.predicate, claim.subject.class_name,
                                  claim.object.class_name, statement)
            if said is not None and n not in out:
                out[n] = said == bool(statement['label'])
    return out


def _vsr(pred: str, subject: str, obj: str, gt: GroundTruth) -> bool | None:
    """Truth of a relation claim by a VSR statement of its classes, None when none decides it.

    The statement states the claim (its label is the claim's truth), or a false statement that
    the claim implies makes the claim false ("on" with "touching" labelled false).
    """
    for statement in gt.vsr:
        parsed = _vsr_statement(statement)
        if parsed is None:
            continue
        s, rel, o = parsed
        if (s, rel, o) == (subject, pred, obj) or (o, CONVERSE.get(rel), s) == (
                subject, pred, obj) or (rel in SYMMETRIC_CLAIMS and pred == rel and (
                    o, s) == (subject, obj)):
            return bool(statement['label'])
        if not statement['label'] and vsr_prediction(pred, subject, obj, statement):
            return False
    return None


def object_mentions(text: str, lexicon: NounLexicon) -> list[str]:
    """Classes named in a caption (synonyms and hyponyms mapped to their class)."""
    words = [t.text for t in tokenize(text)]
    out, i = [], 0
    while i < len(words):
        found = lexicon.match(words, i)
        if found is None:
            i += 1
            continue
        out.append(found[1])
        i += found[0]
    return out


def chair(text: str, gt: GroundTruth, lexicon: NounLexicon) -> tuple[int, int]:
    """(object classes a caption names, those absent from the labels): CHAIR-i's terms.

    As in CHAIR (Rohrbach et al., 2018), each class counts once per caption.
    """
    mentions = [m for m in set(object_mentions(text, lexicon))
                if gt.decidable_classes is None or m in gt.decidable_classes]
    return len(mentions), sum(m not in gt.classes for m in mentions)
