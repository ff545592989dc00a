"""Model registry: resolve model names or paths to files, and explain exactly what is missing.

The manifest (models/manifest.yaml in the package) lists the models the package knows by name.
A model parameter is either such a name (looked up in the model directory) or a path to a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import errno
import os
from pathlib import Path
import stat
from typing import Any

import yaml

from spatial_caption_ros.core.errors import ModelError, ModelNotFoundError
from spatial_caption_ros.core.runtime.resources import package_file

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
    root = Path(__file__).resolve().parents[4]  # core/perception/models.py -> repository
    return root if (root / 'spatial_caption_interfaces').is_dir() else None


def default_model_dir() -> Path:
    """$SPATIAL_CAPTION_MODEL_DIR, else ../shared/models beside the repository, else the cache."""
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env)
    shared = shared_path('models')
    return shared if shared is not None and shared.is_dir() else cache_dir() / 'models'


def shared_path(*parts: str) -> Path | None:
    """A path under ../shared beside the repository checkout (models, data, eval), if it exists.

    The default input of the runner, soak and benchmarks; None outside a source checkout.
    """
    root = repository_root()
    if root is None:
        return None
    path = root.parent.joinpath('shared', *parts)
    return path if path.exists() else None


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
        if not path.is_absolute() and not _present(path):
            path = directory / path
        if _present(path):   # there in some form: say exactly what is wrong with it, if anything
            return check_model_file(path)
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


def _present(path: Path) -> bool:
    """Whether anything is at `path`, even a symbolic link to nothing or a link loop."""
    return path.exists() or path.is_symlink()


_FILE_KINDS = ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO (named pipe)'),
               (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
               (stat.S_ISSOCK, 'a socket'))


def check_model_file(path: str | os.PathLike, suffixes: tuple[str, ...] = ()) -> Path:
    """Check a model path before any loader opens it: a readable, non-empty regular file.

    Nothing is opened here: a FIFO would block the opener forever and a device such as
    /dev/zero would never end, so both are refused from their file type, as are directories,
    symbolic-link loops and links to nothing. Raises ModelNotFoundError or ModelError.
    """
    p = Path(path)
    try:
        st = p.stat()                        # follows symbolic links
    except FileNotFoundError:
        if p.is_symlink():
            raise ModelNotFoundError(f'model file {p} is a symbolic link to {os.readlink(p)}, '
                                     'which does not exist') from None
        raise ModelNotFoundError(f'model file {p} does not exist') from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelError(f'model path {p} is a symbolic link loop') from None
        raise ModelError(f'model path {p} cannot be accessed: {exc.strerror}') from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)),
                    'not a regular file')
        raise ModelError(f'model path {p} is {kind}, not a model file')
    if not os.access(p, os.R_OK):
        raise ModelError(f'model file {p} is not readable')
    if st.st_size == 0:
        raise ModelError(f'model file {p} is empty')
    if suffixes and p.suffix.lower() not in suffixes:
        raise ModelError(f'model file {p} should end with one of {", ".join(suffixes)}')
    return p


@contextmanager
def expecting(parameter: str, contract: str) -> Iterator[None]:
    """Add what the model of `parameter` must be to a ModelError raised inside.

    The file checks and the loaders do not know what a file is for; a missing, truncated or
    unreadable detector should still say what a detector model has to look like.
    """
    try:
        yield
    except ModelError as exc:
        raise type(exc)(f'{exc} ({parameter}: expected {contract})') from exc
