"""COCO instances and captions files of the ../shared/eval format (each JSON read once)."""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

from spatial_caption_ros.core.types import BoundingBox


@dataclass(frozen=True)
class CocoInstance:
    """One non-crowd instance box."""

    id: int
    name: str
    box: BoundingBox


class CocoFiles:
    """Reads COCO instances and captions JSON files, each once, and indexes them by image."""

    def __init__(self) -> None:
        self._instances: dict[Path, tuple[dict[int, str], dict[int, list[dict]]]] = {}
        self._captions: dict[Path, dict[int, list[str]]] = {}

    def instances(self, path: Path, image_id: int) -> tuple[list[CocoInstance], set[str]]:
        """(non-crowd instances, classes that have a crowd region) of one image.

        Crowd regions are not single objects: they are not boxes to match, but their class is
        present (a caption naming it is no hallucination, a count of it cannot be judged).
        """
        if path not in self._instances:
            doc = json.loads(path.read_text(encoding='utf-8'))
            names = {c['id']: c['name'] for c in doc.get('categories', [])}
            by_image: dict[int, list[dict]] = {}
            for ann in doc.get('annotations', []):
                by_image.setdefault(int(ann['image_id']), []).append(ann)
            self._instances[path] = (names, by_image)
        names, by_image = self._instances[path]
        out, crowd = [], set()
        for ann in by_image.get(image_id, []):
            name = names.get(ann['category_id'], str(ann['category_id']))
            if ann.get('iscrowd'):
                crowd.add(name)
                continue
            x, y, w, h = (float(v) for v in ann['bbox'])
            out.append(CocoInstance(int(ann.get('id', len(out))), name,
                                    BoundingBox(x, y, x + w, y + h)))
        return out, crowd

    def captions(self, path: Path, image_id: int) -> list[str]:
        """The reference captions of one image (usually 5)."""
        if path not in self._captions:
            doc = json.loads(path.read_text(encoding='utf-8'))
            by_image: dict[int, list[str]] = {}
            for ann in doc.get('annotations', []):
                by_image.setdefault(int(ann['image_id']), []).append(ann['caption'])
            self._captions[path] = by_image
        return list(self._captions[path].get(image_id, []))
