"""spatial-caption-models: list, fetch, export and verify the models of models/manifest.yaml.

    spatial-caption-models list                          # what is known, present, licensed how
    spatial-caption-models fetch yolo11n_int8_320        # download + sha256 check
    spatial-caption-models fetch yolo11n                 # yolo11n.pt + ONNX export (ultralytics)
    spatial-caption-models export depth_anything_v2_small   # HF checkpoint -> ONNX (transformers)
    spatial-caption-models verify yolo11n_int8_320       # sha256 of the file in the model dir

For machines with internet. Files go to --model-dir (default: the nodes' model directory when it
is writable, else ~/.cache/spatial_caption_ros/models). Downloads are written to a temporary file,
checked against the manifest's sha256 when it has one, and only then renamed into place.
Exporting needs the exporter's own packages (ultralytics, or transformers + torch): install them
in a separate venv, never in the package's runtime.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import hashlib
import os
from pathlib import Path
import shutil
import sys
import tempfile
import urllib.request

from spatial_caption_ros.core.errors import ModelError, SpatialCaptionError
from spatial_caption_ros.core.perception.models import (
    cache_dir, default_model_dir, load_manifest, ModelEntry, resolve_model)

CHUNK = 1 << 20
USER_AGENT = 'spatial-caption-ros-model-fetch'

Downloader = Callable[[str, Path, str | None], Path]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, opener=urllib.request.urlopen,
             out=None) -> Path:
    """Stream `url` to `dest` through a temporary file; check sha256 before renaming it."""
    out = out or sys.stderr
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + '.', suffix='.part', dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    done = 0
    try:
        request = urllib.request.Request(url, headers={'User-Agent': USER_AGENT})
        with os.fdopen(fd, 'wb') as f, opener(request) as response:
            total = int(response.headers.get('Content-Length') or 0) if hasattr(
                response, 'headers') and response.headers else 0
            while chunk := response.read(CHUNK):
                f.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if total:
                    out.write(f'\r[fetch] {dest.name}: {done / 1e6:.1f}/{total / 1e6:.1f} MB')
        out.write('\n' if total else '')
        got = h.hexdigest()
        if sha256 and got != sha256.lower():
            raise ModelError(f'sha256 mismatch for {url}: expected {sha256}, got {got}; the file '
                             'was not installed (corrupt download or a changed upstream file)')
        if done == 0:
            raise ModelError(f'{url} returned an empty file')
        tmp.replace(dest)
    except OSError as exc:
        raise ModelError(f'download of {url} failed: {exc}') from exc
    finally:
        tmp.unlink(missing_ok=True)
    print(f'[fetch] {dest} ({done / 1e6:.1f} MB, sha256 {got}'
          f'{", verified" if sha256 else ", no known hash to check it against"})', file=out)
    return dest


def export_ultralytics(checkpoint: Path, output: Path, imgsz: int) -> Path:
    """yolo11n.pt -> ONNX ([1, 84, N], opset 17, no NMS in graph) with ultralytics."""
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ModelError('exporting needs ultralytics (pip install ultralytics, in a separate '
                         'venv: it pulls torch)') from exc
    exported = Path(YOLO(str(checkpoint)).export(format='onnx', imgsz=imgsz, opset=17,
                                                 simplify=True, dynamic=False))
    if exported.resolve() != output.resolve():
        shutil.move(str(exported), output)
    return output


def export_transformers(repo: str, output: Path, size: int) -> Path:
    """Depth Anything V2 (Hugging Face checkpoint) -> ONNX pixel_values -> predicted_depth."""
    try:
        import torch
        from transformers import AutoModelForDepthEstimation
    except ImportError as exc:
        raise ModelError('exporting needs transformers and torch (and torchvision) in a '
                         'separate venv') from exc

    class Wrapper(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).predicted_depth

    model = Wrapper(AutoModelForDepthEstimation.from_pretrained(repo).eval())
    tmp = output.with_name(output.name + '.part')
    torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(tmp),
                      input_names=['pixel_values'], output_names=['predicted_depth'],
                      opset_version=17, dynamo=False)
    tmp.replace(output)
    return output


EXPORTERS = {'ultralytics', 'transformers'}


def fetch(entry: ModelEntry, directory: Path, downloader: Downloader = download,
          exporters: dict[str, Callable] | None = None) -> Path:
    """Put entry.file into `directory`: download, check, export where needed, check again."""
    exporters = exporters or {'ultralytics': export_ultralytics,
                              'transformers': export_transformers}
    target = directory / entry.file
    size = entry.input[-1] if entry.input else 640
    if entry.export and entry.export not in EXPORTERS:
        raise ModelError(f'{entry.name}: unknown export method {entry.export!r}')
    if entry.export == 'transformers':
        if not entry.download:
            raise ModelError(f'{entry.name} has no checkpoint to export from')
        directory.mkdir(parents=True, exist_ok=True)
        exporters['transformers'](entry.download, target, size)
    elif entry.download:
        raw = directory / (entry.download_file or entry.file)
        downloader(entry.download, raw, entry.download_sha256)
        if entry.export == 'ultralytics':
            exporters['ultralytics'](raw, target, size)
    else:
        raise ModelError(f'{entry.name} cannot be fetched automatically: {entry.obtain}')
    if entry.sha256:
        got = sha256_of(target)
        if got != entry.sha256:
            target.unlink(missing_ok=True)
            raise ModelError(f'{target}: sha256 {got} differs from the manifest ({entry.sha256})')
    return target


def export(entry: ModelEntry, directory: Path,
           exporters: dict[str, Callable] | None = None) -> Path:
    """Produce entry.file from a checkpoint already in `directory` (or the hub, transformers)."""
    if not entry.export:
        raise ModelError(f'{entry.name} needs no export: its download is the model file')
    exporters = exporters or {'ultralytics': export_ultralytics,
                              'transformers': export_transformers}
    size = entry.input[-1] if entry.input else 640
    if entry.export == 'ultralytics':
        checkpoint = directory / (entry.download_file or entry.file)
        if not checkpoint.is_file():
            raise ModelError(f'{checkpoint} is missing: run `spatial-caption-models fetch '
                             f'{entry.name}` (downloads it and exports)')
        return exporters['ultralytics'](checkpoint, directory / entry.file, size)
    return exporters[entry.export](entry.download, directory / entry.file, size)


def find_model(entry: ModelEntry, directory: Path) -> Path | None:
    """The file the nodes would load for this entry with model_dir `directory` (None: none)."""
    try:
        return resolve_model(entry.name, directory)
    except ModelError:
        return None


def writable_model_dir() -> Path:
    """The nodes' model directory when writable, else the cache's models folder."""
    directory = default_model_dir()
    if directory.is_dir() and os.access(directory, os.W_OK):
        return directory
    return cache_dir() / 'models'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='spatial-caption-models', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=('list', 'fetch', 'export', 'verify'))
    parser.add_argument('names', nargs='*', help='model names from models/manifest.yaml')
    parser.add_argument('--model-dir', type=Path, help='where model files go / are looked for')
    args = parser.parse_args(argv)
    manifest = load_manifest()
    directory = args.model_dir or writable_model_dir()
    # list and verify look where the nodes look (the model folder, then the cache's models)
    lookup = args.model_dir or default_model_dir()
    if args.command == 'list':
        for name, e in manifest.items():
            found = find_model(e, lookup)
            present = 'present' if found else 'missing'
            where = f'  ({found.parent})' if found else ''
            print(f'{name:40s} {e.task:9s} {e.file:45s} {present:8s} {e.license}{where}')
        return 0
    unknown = [n for n in args.names if n not in manifest]
    if unknown or not args.names:
        parser.error(f'give model names from: {", ".join(manifest)}')
    status = 0
    for name in args.names:
        entry = manifest[name]
        try:
            if args.command == 'fetch':
                print(f'{fetch(entry, directory)} ready ({entry.license})')
            elif args.command == 'export':
                print(f'{export(entry, directory)} exported ({entry.license})')
            else:
                path = find_model(entry, lookup)
                if path is None:
                    raise ModelError(f'{entry.file} is missing from {lookup} and '
                                     f'{cache_dir() / "models"}')
                got = sha256_of(path)
                verdict = ('matches the manifest' if got == entry.sha256 else
                           'no hash in the manifest' if not entry.sha256 else
                           f'DIFFERS from the manifest ({entry.sha256})')
                print(f'{path}: sha256 {got}: {verdict}')
                status = status or int(bool(entry.sha256) and got != entry.sha256)
        except SpatialCaptionError as exc:
            print(f'error: {name}: {exc}', file=sys.stderr)
            status = 2
    return status


if __name__ == '__main__':
    sys.exit(main())
