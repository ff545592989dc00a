"""Read an evaluation folder in the format of ../shared/eval (see its README.md).

index.jsonl lists the items: KITTI frames (label_2 + calib files), COCO images (instances JSON)
and VSR-only images; vsr/vsr_statements.jsonl holds true/false spatial statements about COCO
images. Only the label fields the harness uses are read; everything else is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
from pathlib import Path

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.types import BoundingBox

# KITTI object types -> the COCO classes a detector may report for them (the README's suggested
# mapping). Van: COCO has no van, a detector says car or truck. Cyclist: the labelled box holds
# rider and bicycle, so either detection may match it. Misc and DontCare are ignored.
KITTI_TO_COCO = {
    'Car': frozenset({'car'}), 'Van': frozenset({'car', 'truck'}),
    'Truck': frozenset({'truck'}), 'Pedestrian': frozenset({'person'}),
    'Person_sitting': frozenset({'person'}), 'Cyclist': frozenset({'person', 'bicycle'}),
    'Tram': frozenset({'train'}),
}
SOURCES = ('kitti', 'coco', 'vsr_only')


@dataclass(frozen=True)
class GroundTruthObject:
    """One labelled object: its box, the detector classes that may match it, 3D when known."""

    label: str                       # the dataset's own class name
    classes: frozenset[str]          # detector (COCO) class names that may match it
    box: BoundingBox
    depth: float = math.nan          # z of the object centre, metres (KITTI)
    distance: float = math.nan       # metres from the camera to the object centre (KITTI)


@dataclass(frozen=True)
class VsrStatement:
    """'The <subject> is <relation> the <object>.' and whether it is true for the image."""

    image: str
    subject: str
    relation: str
    object: str
    label: bool
    caption: str


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


def read_kitti_labels(path: str | Path) -> list[GroundTruthObject]:
    """Objects of the mapped KITTI types from a label_2 file (15 fields per line)."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding='utf-8').splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 15:
            raise ConfigError(f'{path}:{n}: a KITTI label line has 15 fields, got {len(fields)}')
        kind = fields[0]
        if kind not in KITTI_TO_COCO:
            continue
        x1, y1, x2, y2, h, _w, _l, x, y, z = (float(v) for v in fields[4:14])
        centre_y = y - h / 2.0        # the label's location is the bottom centre of the 3D box
        out.append(GroundTruthObject(
            label=kind, classes=KITTI_TO_COCO[kind], box=BoundingBox(x1, y1, x2, y2),
            depth=z, distance=math.sqrt(x * x + centre_y * centre_y + z * z)))
    return out


class CocoInstances:
    """Non-crowd instance boxes per image of COCO instances JSON files (each read once)."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[dict[int, str], dict[int, list[dict]]]] = {}

    def objects(self, path: Path, image_id: int) -> list[GroundTruthObject]:
        if path not in self._files:
            doc = json.loads(path.read_text(encoding='utf-8'))
            names = {c['id']: c['name'] for c in doc.get('categories', [])}
            by_image: dict[int, list[dict]] = {}
            for ann in doc.get('annotations', []):
                by_image.setdefault(int(ann['image_id']), []).append(ann)
            self._files[path] = (names, by_image)
        names, by_image = self._files[path]
        out = []
        for ann in by_image.get(image_id, []):
            if ann.get('iscrowd'):
                continue            # crowd regions are not single objects
            x, y, w, h = (float(v) for v in ann['bbox'])
            name = names.get(ann['category_id'], str(ann['category_id']))
            out.append(GroundTruthObject(label=name, classes=frozenset({name}),
                                         box=BoundingBox(x, y, x + w, y + h)))
        return out


def read_vsr_statements(path: Path) -> list[VsrStatement]:
    """Statements of a VSR jsonl file; subject and object are cut out of the caption."""
    out = []
    for line in path.read_text(encoding='utf-8').splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        caption, relation = rec['caption'].strip(), rec['relation'].strip()
        middle = f' is {relation} the '
        if not caption.startswith('The ') or middle not in caption:
            continue                # not of the form "The X is REL the Y."
        subject, obj = caption[len('The '):].split(middle, 1)
        out.append(VsrStatement(image=rec['image'], subject=subject.strip().lower(),
                                relation=relation.lower(), object=obj.rstrip('.').strip().lower(),
                                label=bool(int(rec['label'])), caption=caption))
    return out


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
    statements = read_vsr_statements(vsr_file) if vsr_file.is_file() else []
    by_image: dict[str, list[VsrStatement]] = {}
    for s in statements:
        by_image.setdefault(s.image, []).append(s)
    coco = CocoInstances()
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
                        width=int(rec['width']), height=int(rec['height']))
        if source == 'kitti':
            item.objects = read_kitti_labels(root / rec['labels'])
            item.calib_path = root / rec['calib']
        elif source == 'coco' and rec.get('instances'):
            item.objects = coco.objects(root / rec['instances'], int(rec['coco_image_id']))
        item.statements = by_image.get(image.name, []) if source != 'kitti' else []
        per_source[source] = per_source.get(source, 0) + 1
        items.append(item)
    return items
