"""The caption evaluation's ground truth of one item.

Built from the same readers and class map as the graph evaluation (dataset.py): the labelled
objects as SceneObjects (what the claim judge in core/captioning/evaluation.py compares with the
graph), the classes present, and which mentions and counts the labels can decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial_caption_ros.core.evaluation.dataset import EvalItem, primary_class
from spatial_caption_ros.core.scene_graph.geometry import region_of
from spatial_caption_ros.core.types import SceneObject


@dataclass
class GroundTruth:
    """The labels of one image, in the form the caption claim judge reads."""

    objects: list[SceneObject]
    classes: set[str]                   # classes present in the image
    decidable_classes: set[str] | frozenset[str] | None  # CHAIR: other mentions undecidable
    has_depth: bool = False
    counts_decidable: set[str] = field(default_factory=set)
    vsr: list[dict] = field(default_factory=list)
    # object id -> detector classes that may match it (the class map); default: its class_name
    match_classes: dict[int, frozenset[str]] = field(default_factory=dict)

    def matches_class(self, truth: SceneObject, class_name: str) -> bool:
        """Whether a detection of `class_name` may be this labelled object (the class map)."""
        return class_name in self.match_classes.get(truth.id, frozenset({truth.class_name}))


def caption_ground_truth(item: EvalItem) -> GroundTruth:
    """The GroundTruth of an item read by dataset.load_items."""
    objects, classes_of = [], {}
    for n, o in enumerate(item.objects):
        oid = o.id if o.id >= 0 else n
        obj = SceneObject(id=oid, class_name=primary_class(o), class_id=-1, confidence=1.0,
                          box=o.box, region=region_of(o.box, item.width, item.height))
        if item.has_depth:
            obj.depth, obj.depth_metric = o.depth, True
            obj.position, obj.distance = o.centre, o.distance
        objects.append(obj)
        classes_of[oid] = o.classes
    vsr = [{'relation': s.relation, 'caption': s.caption, 'label': s.label}
           for s in item.statements]
    decidable = None if item.decidable_classes is None else set(item.decidable_classes)
    return GroundTruth(objects, set(item.classes), decidable, has_depth=item.has_depth,
                       counts_decidable=set(item.countable_classes), vsr=vsr,
                       match_classes=classes_of)
