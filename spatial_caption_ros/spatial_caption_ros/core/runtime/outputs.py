"""The output files of a run, one frame at a time: captions.jsonl, scene_graphs/, annotated/.

Shared by the node-graph runner (cli/run.py) and the recording processor (bag/), so both write
the same layout: `captions.jsonl` (one JSON line per frame), `scene_graphs/<stem>.json` (frame,
caption and scene graph) and `annotated/<stem>.jpg` (the image with the graph and caption drawn),
where stem is `<index:04d>_<frame name>`.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from spatial_caption_ros.core.errors import ConfigError
from spatial_caption_ros.core.inputs.image import ColorImage
from spatial_caption_ros.core.inputs.serialization import caption_to_dict, graph_to_dict
from spatial_caption_ros.core.types import Caption, SceneGraph
from spatial_caption_ros.core.visualization.render import annotate

CAPTIONS_FILE = 'captions.jsonl'
GRAPHS_DIR = 'scene_graphs'
ANNOTATED_DIR = 'annotated'
JPEG_QUALITY = 95     # what cv2.imwrite uses by default


def make_output_folder(path: Path) -> Path:
    """Create a command's --output folder before any work; ConfigError saying why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f'--output {path}: cannot create the folder '
                          f'({exc.strerror or exc})') from None
    return path


def frame_stem(index: int, name: str) -> str:
    """The file stem of a frame's outputs."""
    return f'{index:04d}_{name}'


def annotated_jpeg(image: ColorImage, graph: SceneGraph, caption: str) -> bytes | None:
    """The image with the graph and caption drawn, as JPEG bytes (None if encoding fails)."""
    ok, jpeg = cv2.imencode('.jpg', annotate(image, graph, caption),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return jpeg.tobytes() if ok else None


class FrameOutputWriter:
    """Writes each frame's caption line, scene-graph JSON and annotated image.

    resume=False starts afresh (earlier results in the folder are removed); resume=True keeps
    them and appends, after `keep_only` has dropped the caption lines of unfinished frames.
    """

    def __init__(self, out: Path, resume: bool = False) -> None:
        self.out = Path(out)
        for sub, pattern in ((ANNOTATED_DIR, '*.jpg'), (GRAPHS_DIR, '*.json')):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
            if not resume:
                for stale in (self.out / sub).glob(pattern):   # results of an earlier run
                    stale.unlink()
        self._captions = open(self.out / CAPTIONS_FILE, 'a' if resume else 'w', encoding='utf-8')

    def keep_only(self, names: list[str]) -> int:
        """Keep the caption lines of these frames only, in this order; returns how many.

        A resumed run calls it first (a line cut by the interruption, or of a frame whose other
        outputs were not finished, is dropped and written again when the frame is redone), and
        a run whose frames finished out of order calls it last to put the lines in frame order.
        A name listed twice keeps two lines (two frames with the same stamp).
        """
        path = self.out / CAPTIONS_FILE
        self._captions.close()
        lines: dict[str, list[str]] = {}
        for line in path.read_text(encoding='utf-8').splitlines():
            try:
                frame = json.loads(line).get('frame')
            except (json.JSONDecodeError, AttributeError):
                continue
            lines.setdefault(str(frame), []).append(line)
        kept = [lines[name].pop(0) for name in names if lines.get(name)]
        tmp = path.with_suffix('.tmp')
        tmp.write_text(''.join(f'{line}\n' for line in kept), encoding='utf-8')
        tmp.replace(path)
        self._captions = open(path, 'a', encoding='utf-8')
        return len(kept)

    def write(self, index: int, name: str, caption: Caption, graph: SceneGraph | None,
              image: ColorImage | None = None, jpeg: bytes | None = None) -> bytes | None:
        """Write one frame: the annotated image is drawn from `image`, or given as `jpeg`.

        Returns the annotated JPEG bytes (None without a graph or an image).
        """
        stem = frame_stem(index, name)
        self._captions.write(json.dumps({'frame': name, **caption_to_dict(caption)}) + '\n')
        self._captions.flush()
        if graph is None:
            return None
        (self.out / GRAPHS_DIR / f'{stem}.json').write_text(
            json.dumps({'frame': name, 'caption': caption_to_dict(caption),
                        'scene_graph': graph_to_dict(graph)}, indent=1), encoding='utf-8')
        if jpeg is None and image is not None:
            jpeg = annotated_jpeg(image, graph, caption.text)
        if jpeg is not None:
            (self.out / ANNOTATED_DIR / f'{stem}.jpg').write_bytes(jpeg)
        return jpeg

    def write_skipped(self, name: str, reason: str) -> None:
        """A caption line saying that an input could not be processed, and why."""
        self._captions.write(json.dumps({'frame': name, 'skipped': reason}) + '\n')
        self._captions.flush()

    def close(self) -> None:
        self._captions.close()
