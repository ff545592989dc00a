"""Read an evaluation folder in the format of ../shared/eval (see its README.md).

index.jsonl lists the items: KITTI frames (kitti.py: label_2 + calib), COCO images (coco.py:
instances and captions JSON) and VSR-only images; vsr/vsr_statements.jsonl (vsr.py) holds
true/false spatial statements about COCO images. The `tum_fr1_rpy/` sequence is not in the
index: tum.py reads it. This module turns the index into `EvalItem`s with their labels, the one
form every evaluation (graphs, captions, depth check) scores against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
from pathlib import Path
from typing import Any

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.evaluation.coco import CocoFiles
from spatial_caption_ros.core.evaluation.kitti import (
    KITTI_DECIDABLE_CLASSES, KITTI_TO_COCO, read_kitti_calib, read_kitti_labels)
from spatial_caption_ros.core.evaluation.vsr import read_vsr_statements, VsrStatement
from spatial_caption_ros.core.types import BoundingBox, CameraIntrinsics

SOURCES = ('kitti', 'coco', 'vsr_only')
TUM_FOLDER = 'tum_fr1_rpy'


@dataclass(frozen=True)
class GroundTruthObject:
    """One labelled object: its box, the detector classes that may match it, 3D when known."""

    label: str                       # the dataset's own class name
    classes: frozenset[str]          # detector (COCO) class names that may match it
    box: BoundingBox
    depth: float = math.nan          # z of the object centre, metres (KITTI)
    distance: float = math.nan       # metres from the camera to the object centre (KITTI)
    centre: tuple[float, float, float] | None = None    # camera frame, metres (KITTI)
    truncated: float = math.nan      # KITTI truncation 0..1
    occluded: int = -1               # KITTI occlusion 0..3 (-1: not labelled)
    id: int = -1                     # the dataset's instance id where it has one (COCO)


@dataclass
class EvalItem:
    """One image of the evaluation folder with its labels."""

    id: str
    source: str
    image_path: Path
    width: int
    height: int
    objects: list[GroundTruthObject] = field(default_factory=list)
    calib_path: Path | None = None
    statements: list[VsrStatement] = field(default_factory=list)
    # classes present in the image (crowd regions included) and those whose mentions the labels
    # can judge (None: any class; KITTI labels cover only the mapped classes)
    classes: set[str] = field(default_factory=set)
    decidable_classes: frozenset[str] | None = None
    countable_classes: set[str] = field(default_factory=set)   # exact instance counts known
    references: list[str] = field(default_factory=list)        # COCO reference captions
    record: dict[str, Any] = field(default_factory=dict)       # the raw index.jsonl line

    @property
    def has_depth(self) -> bool:
        return self.source == 'kitti'

    def intrinsics(self) -> CameraIntrinsics | None:
        """The item's camera (KITTI P2), None where the format has none."""
        if self.calib_path is None:
            return None
        return read_kitti_calib(self.calib_path, self.width, self.height)


def _kitti_objects(path: Path) -> list[GroundTruthObject]:
    return [GroundTruthObject(
        label=k.type, classes=frozenset(KITTI_TO_COCO[k.type]), box=k.box, depth=k.depth,
        distance=k.distance, centre=k.centre, truncated=k.truncated, occluded=k.occluded)
        for k in read_kitti_labels(path)]


def primary_class(obj: GroundTruthObject) -> str:
    """The name a KITTI label gets where one detector class is needed (first of the map)."""
    mapped = KITTI_TO_COCO.get(obj.label)
    return mapped[0] if mapped else obj.label


def load_items(root: str | Path, sources: tuple[str, ...] = SOURCES,
               limit: int = 0) -> list[EvalItem]:
    """The items of an evaluation folder (index.jsonl), with labels and VSR statements.

    `limit` > 0 keeps the first `limit` items of each source.
    """
    root = Path(root)
    index = root / 'index.jsonl'
    if not index.is_file():
        raise ConfigError(f'{root} is not an evaluation folder: no index.jsonl')
    vsr_file = root / 'vsr' / 'vsr_statements.jsonl'
    by_image: dict[str, list[VsrStatement]] = {}
    for s in read_vsr_statements(vsr_file) if vsr_file.is_file() else []:
        by_image.setdefault(s.image, []).append(s)
    coco = CocoFiles()
    items: list[EvalItem] = []
    per_source: dict[str, int] = {}
    for line in index.read_text(encoding='utf-8').splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        source = rec.get('source')
        if source not in sources or (limit and per_source.get(source, 0) >= limit):
            continue
        image = root / rec['image']
        item = EvalItem(id=rec['id'], source=source, image_path=image,
                        width=int(rec['width']), height=int(rec['height']), record=rec)
        if source == 'kitti':
            item.objects = _kitti_objects(root / rec['labels'])
            item.calib_path = root / rec['calib']
            item.classes = {c for o in item.objects for c in o.classes}
            item.decidable_classes = KITTI_DECIDABLE_CLASSES
            # KITTI labels skip far and tiny objects: counts cannot be judged
        elif source == 'coco' and rec.get('instances'):
            instances, crowd = coco.instances(root / rec['instances'], int(rec['coco_image_id']))
            item.objects = [GroundTruthObject(label=i.name, classes=frozenset({i.name}),
                                              box=i.box, id=i.id) for i in instances]
            item.classes = {i.name for i in instances} | crowd
            item.countable_classes = item.classes - crowd
        else:
            item.decidable_classes = frozenset()     # VSR-only: statements, no boxes
        if rec.get('captions') and 'coco_image_id' in rec:
            item.references = coco.captions(root / rec['captions'], int(rec['coco_image_id']))
        item.statements = by_image.get(image.name, []) if source != 'kitti' else []
        per_source[source] = per_source.get(source, 0) + 1
        items.append(item)
    return items
