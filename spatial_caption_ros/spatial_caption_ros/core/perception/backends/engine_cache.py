"""TensorRT engine cache: which engine fits this machine and this model, and refusing stale ones.

A serialized TensorRT engine only runs on the TensorRT version and the GPU (compute capability)
it was built for, with input shapes inside its optimisation profile, and it silently goes stale
when the ONNX model it came from changes. Every engine the builder writes therefore gets a sidecar
`<engine>.json` with its EngineKey; the loader compares the key with the running machine and
refuses a mismatch with a message that says what differs and how to rebuild. This module is pure
logic (no TensorRT import) so it is tested on machines without a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from spatial_caption_ros.core.errors import ModelError, StaleEngineError

SIDECAR_SUFFIX = '.json'
SIDECAR_FORMAT = 1
PRECISIONS = ('fp32', 'fp16', 'int8')
REBUILD_HINT = 'rebuild it with: spatial-caption-build-engine {model}'

Shape = tuple[int, ...]


@dataclass(frozen=True)
class RuntimeIdentity:
    """What an engine is tied to on the machine that runs it."""

    trt_version: str
    gpu_name: str
    compute_capability: str          # 'major.minor', e.g. '8.7' (Orin), '9.0' (H100)


@dataclass(frozen=True)
class ShapeRange:
    """Optimisation profile of one input: min <= any run shape <= max, tuned for opt."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    @classmethod
    def fixed(cls, name: str, shape: Shape) -> ShapeRange:
        return cls(name, tuple(shape), tuple(shape), tuple(shape))

    @property
    def is_fixed(self) -> bool:
        return self.min == self.max

    def admits(self, shape: Shape) -> bool:
        """True when a run with this input shape is inside the profile."""
        return len(shape) == len(self.min) and all(
            lo <= d <= hi for d, lo, hi in zip(shape, self.min, self.max, strict=True))

    def __str__(self) -> str:
        fmt = 'x'.join
        if self.is_fixed:
            return f'{self.name}={fmt(map(str, self.opt))}'
        return (f'{self.name}=[{fmt(map(str, self.min))} .. {fmt(map(str, self.opt))} .. '
                f'{fmt(map(str, self.max))}]')


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. Two builds with equal keys are interchangeable."""

    identity: RuntimeIdentity
    model_sha256: str
    precision: str
    inputs: tuple[ShapeRange, ...]

    def digest(self) -> str:
        """Short stable hash of the key (part of the engine file name)."""
        text = json.dumps(key_to_dict(self), sort_keys=True, separators=(',', ':'))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def input(self, name: str) -> ShapeRange | None:
        return next((r for r in self.inputs if r.name == name), None)


def key_to_dict(key: EngineKey) -> dict[str, Any]:
    """JSON-ready form of a key."""
    return {'identity': asdict(key.identity), 'model_sha256': key.model_sha256,
            'precision': key.precision,
            'inputs': [{'name': r.name, 'min': list(r.min), 'opt': list(r.opt),
                        'max': list(r.max)} for r in key.inputs]}


def key_from_dict(doc: dict[str, Any]) -> EngineKey:
    """Inverse of key_to_dict; raises KeyError/TypeError/ValueError on malformed input."""
    ident = doc['identity']
    return EngineKey(
        identity=RuntimeIdentity(str(ident['trt_version']), str(ident['gpu_name']),
                                 str(ident['compute_capability'])),
        model_sha256=str(doc['model_sha256']), precision=str(doc['precision']),
        inputs=tuple(ShapeRange(str(r['name']), tuple(int(d) for d in r['min']),
                                tuple(int(d) for d in r['opt']), tuple(int(d) for d in r['max']))
                     for r in doc['inputs']))


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file (remembered per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        _SHA_CACHE[memo] = h.hexdigest()
    return _SHA_CACHE[memo]


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def engine_path_for(cache_dir: str | os.PathLike, model_path: str | os.PathLike,
                    key: EngineKey) -> Path:
    """Where the engine of `model_path` built with `key` lives in the cache."""
    return Path(cache_dir) / f'{Path(model_path).stem}.{key.precision}.{key.digest()}.engine'


def write_sidecar(engine_path: str | os.PathLike, key: EngineKey,
                  extra: dict[str, Any] | None = None) -> Path:
    """Record the key of a freshly built engine next to it."""
    doc = {'format': SIDECAR_FORMAT, **key_to_dict(key), **(extra or {})}
    path = sidecar_path(engine_path)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + '\n', encoding='utf-8')
    tmp.replace(path)
    return path


def read_sidecar(engine_path: str | os.PathLike) -> tuple[EngineKey, dict[str, Any]] | None:
    """The key recorded for an engine, or None when it has no sidecar."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding='utf-8'))
        return key_from_dict(doc), doc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f'engine key file {path} is unreadable ({exc}); delete it and '
                         f'{REBUILD_HINT.format(model="<model.onnx>")}') from exc


def key_mismatches(key: EngineKey, current: RuntimeIdentity,
                   input_shapes: dict[str, Shape] | None = None,
                   model_sha256: str | None = None) -> list[str]:
    """Human-readable reasons why an engine with `key` must not run here (empty: it may)."""
    problems = []
    built = key.identity
    if built.trt_version != current.trt_version:
        problems.append(f'built with TensorRT {built.trt_version}, this is TensorRT '
                        f'{current.trt_version}')
    if built.compute_capability != current.compute_capability:
        problems.append(f'built for compute capability {built.compute_capability} '
                        f'({built.gpu_name}), this GPU is {current.compute_capability} '
                        f'({current.gpu_name})')
    elif built.gpu_name != current.gpu_name:
        problems.append(f'built on {built.gpu_name}, this GPU is {current.gpu_name} (same compute '
                        'capability, but tactics were timed on the other GPU)')
    for name, shape in (input_shapes or {}).items():
        profile = key.input(name)
        if profile is None:
            problems.append(f'the engine has no input {name!r} '
                            f'(it has {", ".join(r.name for r in key.inputs)})')
        elif not profile.admits(tuple(shape)):
            problems.append(f'input {name} shape {"x".join(map(str, shape))} is outside the '
                            f'engine profile {profile}')
    if model_sha256 is not None and model_sha256 != key.model_sha256:
        problems.append(f'the ONNX model changed since the build (sha256 {model_sha256[:12]}..., '
                        f'engine built from {key.model_sha256[:12]}...)')
    return problems


def verify_engine(engine_path: str | os.PathLike, current: RuntimeIdentity,
                  input_shapes: dict[str, Shape] | None = None,
                  model_sha256: str | None = None) -> EngineKey | None:
    """Refuse a stale engine (StaleEngineError naming every mismatch); None without a sidecar."""
    found = read_sidecar(engine_path)
    if found is None:
        return None
    key, doc = found
    problems = key_mismatches(key, current, input_shapes, model_sha256)
    if problems:
        model = doc.get('onnx') or '<model.onnx>'
        raise StaleEngineError(
            f'TensorRT engine {engine_path} is stale: ' + '; '.join(problems) + '. '
            + REBUILD_HINT.format(model=model))
    return key


def find_cached_engine(cache_dir: str | os.PathLike, model_path: str | os.PathLike,
                       current: RuntimeIdentity, precision: str | None = None,
                       input_shapes: dict[str, Shape] | None = None) -> Path | None:
    """A cached engine built from exactly this model for this machine, or None.

    Engines of an older version of the model, another GPU or TensorRT version, or whose profile
    does not admit `input_shapes` are skipped (never loaded). The newest fitting one wins.
    """
    directory = Path(cache_dir)
    if not directory.is_dir():
        return None
    sha = file_sha256(model_path)
    best: tuple[float, Path] | None = None
    for engine in directory.glob(f'{Path(model_path).stem}.*.engine'):
        try:
            found = read_sidecar(engine)
        except ModelError:
            continue
        if found is None:
            continue
        key = found[0]
        if precision is not None and key.precision != precision:
            continue
        if key_mismatches(key, current, input_shapes, sha):
            continue
        mtime = engine.stat().st_mtime
        if best is None or mtime > best[0]:
            best = (mtime, engine)
    return best[1] if best else None
