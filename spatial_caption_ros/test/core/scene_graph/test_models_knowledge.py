import pytest

from support import MODELS, needs_shared
from spatial_caption_ros.core.errors import ConfigError, ModelError, ModelNotFoundError
from spatial_caption_ros.core.scene_graph.knowledge import KnowledgeBase
from spatial_caption_ros.core.perception.models import load_manifest, resolve_model


def test_manifest_entries_have_source_and_license():
    manifest = load_manifest()
    assert {'yolo11n', 'yolo11n_int8_320', 'depth_anything_v2_small'} <= set(manifest)
    for entry in manifest.values():
        assert entry.source and entry.license and entry.file and entry.obtain
    assert manifest['yolo11n'].license == 'AGPL-3.0'
    assert manifest['depth_anything_v2_small'].license == 'Apache-2.0'


@needs_shared
def test_resolve_by_name_in_model_dir():
    assert resolve_model('yolo11n', MODELS) == MODELS / 'yolo11n.onnx'


def test_missing_named_model_says_what_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv('SPATIAL_CAPTION_CACHE', str(tmp_path / 'cache'))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model('depth_anything_v2_small', tmp_path)
    text = str(err.value)
    assert 'depth_anything_v2_vits.onnx' in text and str(tmp_path) in text
    assert 'huggingface.co/depth-anything' in text and 'Apache-2.0' in text


def test_missing_path_lists_known_names(tmp_path):
    with pytest.raises(ModelNotFoundError, match='yolo11n'):
        resolve_model(str(tmp_path / 'x.onnx'), tmp_path, task='detection')


def test_task_mismatch_is_refused(tmp_path):
    with pytest.raises(ModelError, match='not a detection model'):
        resolve_model('gemma3_270m_q4_k_m', tmp_path, task='detection')


def test_knowledge_has_size_priors_for_all_coco_classes():
    kb = KnowledgeBase.load()
    names = [line.strip() for line in (MODELS / 'coco80_names.txt').read_text().splitlines()
             if line.strip()] if (MODELS / 'coco80_names.txt').is_file() else kb.class_names()
    assert len(kb) >= 80
    for name in names:
        prior = kb.size_prior(name)
        assert prior is not None, name
        assert 0 < prior.height < 50 and 0 < prior.width < 50 and 0 < prior.rel_std < 1
    assert kb.size_prior('person').height == pytest.approx(1.7)
    assert kb.size_prior('Traffic_Light') is not None     # lookup is normalised


def test_user_file_overrides_and_extends(tmp_path):
    extra = tmp_path / 'mine.yaml'
    extra.write_text('classes:\n'
                     '  person: {size_m: {height: 1.8, width: 0.5, length: 0.3}, '
                     'size_rel_std: 0.05, facts: {CapableOf: [walk, "talk\\nIGNORE"]}}\n'
                     '  forklift: {size_m: {height: 2.1, width: 1.2, length: 2.5}}\n')
    kb = KnowledgeBase.load([str(extra)])
    assert kb.size_prior('person').height == pytest.approx(1.8)
    assert kb.size_prior('forklift').rel_std == pytest.approx(0.3)
    assert ('CapableOf', 'walk') in kb.facts('person')
    assert all('\n' not in v for _, v in kb.facts('person'))


@pytest.mark.parametrize('content,match', [
    ('classes: [1, 2]', 'classes'),
    ('classes:\n  x: {size_m: {height: -1, width: 1, length: 1}}', 'positive'),
    ('classes: {x: {size_m: {height: abc, width: 1, length: 1}}}', 'number'),
    (': : :', 'not valid YAML'),
])
def test_bad_knowledge_files_are_config_errors(tmp_path, content, match):
    bad = tmp_path / 'bad.yaml'
    bad.write_text(content)
    with pytest.raises(ConfigError, match=match):
        KnowledgeBase.load([str(bad)])
