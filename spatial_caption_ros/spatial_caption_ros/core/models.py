"""Model registry: resolve model names or paths to files, and explain exactly what is missing.

The manifest (models/manifest.yaml in the package) lists the models the package knows by name.
A model parameter is either such a name (looked up in the model directory) or a path to a file.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

import yaml

from spatial_caption_ros.core.errors import ModelError, ModelNotFoundError
from spatial_caption_ros.core.resources import package_file

MODEL_DIR_ENV = 'SPATIAL_CAPTION_MODEL_DIR'
CACHE_ENV = 'SPATIAL_CAPTION_CACHE'


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest."""

    name: str
    task: str
    file: str
    format: str
    source: str
    obtain: str
    license: str
    sha256: str | None = None
    input: tuple[int, ...] | None = None
    outputs: str = ''
    download: str = ''               # URL fetched by `spatial-caption-models fetch`
    download_file: str = ''          # name of the downloaded file (default: `file`)
    download_sha256: str | None = None   # sha256 of the download, when it differs from `file`
    export: str = ''                 # how `export` turns the download into `file` ('' = as is)
    notes: str = ''


def cache_dir() -> Path:
    """Cache folder of wheels and assembled models (same default as scripts/setup.sh)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'spatial_caption_ros'


def repository_root() -> Path | None:
    """The repository checkout this package runs from, if it runs from source."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / 'spatial_caption_interfaces').is_dir() else None


def default_model_dir() -> Path:
    """$SPATIAL_CAPTION_MODEL_DIR, else ../shared/models beside the repository, else the cache."""
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env)
    root = repository_root()
    if root is not None and (root.parent / 'shared' / 'models').is_dir():
        return root.parent / 'shared' / 'models'
    return cache_dir() / 'models'


def load_manifest(path: Path | None = None) -> dict[str, ModelEntry]:
    """Read the model manifest."""
    path = path or package_file('models/manifest.yaml')
    with open(path, encoding='utf-8') as f:
        doc: dict[str, Any] = yaml.safe_load(f) or {}
    entries = {}
    for name, item in (doc.get('models') or {}).items():
        entries[name] = ModelEntry(
            name=name, task=item['task'], file=item['file'], format=item['format'],
            source=item.get('source', ''), obtain=item.get('obtain', ''),
            license=item.get('license', ''), sha256=item.get('sha256'),
            input=tuple(item['input']) if item.get('input') else None,
            outputs=item.get('outputs', ''), download=item.get('download', ''),
            download_file=item.get('download_file', ''),
            download_sha256=item.get('download_sha256'), export=item.get('export', ''),
            notes=item.get('notes', ''))
    return entries


def resolve_model(name_or_path: str, model_dir: str | Path | None = None,
                  task: str | None = None) -> Path:
    """Find a model by manifest name or path, or raise ModelNotFoundError saying how to get it.

    A name is looked up in `model_dir` (default: default_model_dir()) and then in the cache's
    models folder. Anything containing a path separator or a file suffix is taken as a path.
    """
    if not name_or_path:
        raise ModelNotFoundError('no model given (empty model parameter)')
    directory = Path(model_dir) if model_dir else default_model_dir()
    manifest = load_manifest()
    entry = manifest.get(name_or_path)
    if entry is None:
        path = Path(name_or_path).expanduser()
        if not path.is_absolute() and not path.exists():
            path = directory / path
        if path.is_file():
            return path
        known = ', '.join(n for n, e in manifest.items() if task is None or e.task == task)
        raise ModelNotFoundError(
            f'model file {path} does not exist. Give an existing file, or one of the known '
            f'model names ({known}) with model_dir set to the folder that holds it.')
    if task is not None and entry.task != task:
        raise ModelError(f'model {entry.name!r} is a {entry.task} model, not a {task} model')
    candidates = [directory / entry.file, cache_dir() / 'models' / entry.file]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ', '.join(str(c.parent) for c in candidates)
    raise ModelNotFoundError(
        f'model {entry.name!r} ({entry.task}) is missing: no file {entry.file} in {searched}. '
        f'To get it: {entry.obtain}; source: {entry.source}; license: {entry.license}. '
        f'Then put {entry.file} in the model directory (parameter model_dir or '
        f'${MODEL_DIR_ENV}).')
