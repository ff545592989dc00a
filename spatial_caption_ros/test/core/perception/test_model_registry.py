"""Model registry and the fetch/export command, without any network: downloads come from local
file:// URLs (the real urllib code path) or an injected fake downloader; exporters are injected."""

import hashlib

import pytest

from spatial_caption_ros.cli import models as models_cli
from spatial_caption_ros.core.errors import ModelError
from spatial_caption_ros.core.perception.models import load_manifest, ModelEntry


def _entry(**kw):
    base = dict(name='m', task='detection', file='m.onnx', format='onnx', source='s',
                obtain='by hand', license='Apache-2.0')
    base.update(kw)
    return ModelEntry(**base)


def test_manifest_lists_the_supported_models_with_licenses_and_sources():
    m = load_manifest()
    for name in ('yolo11n', 'yolo11n_int8_320', 'depth_anything_v2_small',
                 'depth_anything_v2_metric_indoor_small',
                 'depth_anything_v2_metric_outdoor_small', 'depth_anything_v2_small_timing'):
        e = m[name]
        assert e.source and e.license and e.file and e.obtain and e.input, name
    assert m['yolo11n'].license == m['yolo11n_int8_320'].license == 'AGPL-3.0'
    for name in ('depth_anything_v2_small', 'depth_anything_v2_metric_indoor_small',
                 'depth_anything_v2_metric_outdoor_small'):
        assert m[name].license == 'Apache-2.0' and m[name].export == 'transformers'
        assert m[name].input == (1, 3, 518, 518) and m[name].task == 'depth'
    assert 'metres' in m['depth_anything_v2_metric_indoor_small'].outputs
    assert m['yolo11n'].export == 'ultralytics' and m['yolo11n'].download.endswith('.pt')
    assert m['yolo11n_int8_320'].download_sha256 == m['yolo11n_int8_320'].sha256
    assert 'MEANINGLESS' in m['depth_anything_v2_small_timing'].outputs
    for e in m.values():
        for sha in (e.sha256, e.download_sha256):
            assert sha is None or (len(sha) == 64 and int(sha, 16) >= 0)


def test_download_from_a_file_url_checks_sha256(tmp_path):
    src = tmp_path / 'upstream.onnx'
    src.write_bytes(b'weights' * 1000)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / 'models' / 'm.onnx'
    models_cli.download(src.as_uri(), dest, good)
    assert dest.read_bytes() == src.read_bytes()
    bad_dest = tmp_path / 'models' / 'bad.onnx'
    with pytest.raises(ModelError, match='sha256 mismatch'):
        models_cli.download(src.as_uri(), bad_dest, '0' * 64)
    assert not bad_dest.exists()
    assert not list((tmp_path / 'models').glob('*.part'))      # no partial file left behind


def test_download_without_known_hash_says_so_and_missing_source_is_a_model_error(tmp_path,
                                                                                  capsys):
    src = tmp_path / 'up.bin'
    src.write_bytes(b'abc')
    models_cli.download(src.as_uri(), tmp_path / 'out.bin', None)
    assert 'no known hash' in capsys.readouterr().err
    with pytest.raises(ModelError, match='download of .* failed'):
        models_cli.download((tmp_path / 'nope.bin').as_uri(), tmp_path / 'x.bin', None)


def test_fetch_plain_download_then_checks_the_model_sha(tmp_path):
    payload = b'onnx bytes'
    sha = hashlib.sha256(payload).hexdigest()
    calls = []

    def fake_download(url, dest, expected):
        calls.append((url, dest.name, expected))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(payload)
        return dest

    entry = _entry(download='https://example.invalid/m.onnx', download_sha256=sha, sha256=sha)
    out = models_cli.fetch(entry, tmp_path, downloader=fake_download)
    assert out == tmp_path / 'm.onnx' and calls == [('https://example.invalid/m.onnx',
                                                     'm.onnx', sha)]
    wrong = _entry(download='https://example.invalid/m.onnx', sha256='1' * 64)
    with pytest.raises(ModelError, match='differs from the manifest'):
        models_cli.fetch(wrong, tmp_path, downloader=fake_download)
    assert not (tmp_path / 'm.onnx').exists()


def test_fetch_checkpoint_then_export_with_ultralytics(tmp_path):
    exported = []

    def fake_download(url, dest, expected):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b'pt')
        return dest

    def fake_ultralytics(checkpoint, output, size):
        exported.append((checkpoint.name, output.name, size))
        output.write_bytes(b'onnx')
        return output

    entry = _entry(file='yolo11n.onnx', download='https://example.invalid/yolo11n.pt',
                   download_file='yolo11n.pt', export='ultralytics', input=(1, 3, 640, 640))
    models_cli.fetch(entry, tmp_path, downloader=fake_download,
                     exporters={'ultralytics': fake_ultralytics})
    assert exported == [('yolo11n.pt', 'yolo11n.onnx', 640)]
    # export alone reuses the downloaded checkpoint
    models_cli.export(entry, tmp_path, exporters={'ultralytics': fake_ultralytics})
    assert len(exported) == 2
    (tmp_path / 'yolo11n.pt').unlink()
    with pytest.raises(ModelError, match='yolo11n.pt is missing.*fetch'):
        models_cli.export(entry, tmp_path, exporters={'ultralytics': fake_ultralytics})


def test_fetch_transformers_entry_exports_from_the_hub_id(tmp_path):
    seen = []

    def fake_transformers(repo, output, size):
        seen.append((repo, output.name, size))
        output.write_bytes(b'onnx')
        return output

    entry = load_manifest()['depth_anything_v2_metric_outdoor_small']
    models_cli.fetch(entry, tmp_path, downloader=None,
                     exporters={'transformers': fake_transformers})
    assert seen == [('depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf',
                     'depth_anything_v2_metric_outdoor_vits.onnx', 518)]


def test_entries_that_cannot_be_fetched_say_how_to_get_them(tmp_path):
    timing = load_manifest()['depth_anything_v2_small_timing']
    with pytest.raises(ModelError, match='make_dav2_timing_model.py'):
        models_cli.fetch(timing, tmp_path)
    with pytest.raises(ModelError, match='unknown export method'):
        models_cli.fetch(_entry(download='x', export='magic'), tmp_path)
    with pytest.raises(ModelError, match='needs no export'):
        models_cli.export(_entry(), tmp_path)


def test_verify_and_list_commands(tmp_path, capsys, monkeypatch):
    manifest = load_manifest()
    entry = manifest['yolo11n_int8_320']
    (tmp_path / entry.file).write_bytes(b'not the real file')
    assert models_cli.main(['verify', 'yolo11n_int8_320', '--model-dir', str(tmp_path)]) == 1
    assert 'DIFFERS from the manifest' in capsys.readouterr().out
    assert models_cli.main(['list', '--model-dir', str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert 'yolo11n_int8_320' in listing and 'present' in listing and 'AGPL-3.0' in listing


def test_list_and_verify_find_a_model_where_the_nodes_find_it(tmp_path, capsys, monkeypatch):
    """The nodes look in the model folder, then in the cache's models folder (where `make setup`
    assembles the Gemma GGUF): `list` said 'missing' and `verify` 'is missing' for a model that
    every caption node was using."""
    from spatial_caption_ros.core.perception.models import CACHE_ENV
    entry = load_manifest()['yolo11n_int8_320']
    cache = tmp_path / 'cache'
    (cache / 'models').mkdir(parents=True)
    (cache / 'models' / entry.file).write_bytes(b'not the real file')
    monkeypatch.setenv(CACHE_ENV, str(cache))
    (tmp_path / 'models').mkdir()
    assert models_cli.main(['list', '--model-dir', str(tmp_path / 'models')]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if ln.startswith('yolo11n_int8_320 '))
    assert ' present ' in line and str(cache / 'models') in line, line
    assert models_cli.main(['verify', 'yolo11n_int8_320',
                            '--model-dir', str(tmp_path / 'models')]) == 1
    out = capsys.readouterr().out
    assert str(cache / 'models' / entry.file) in out and 'DIFFERS from the manifest' in out
