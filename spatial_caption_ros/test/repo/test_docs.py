"""docs/ros_interface.md and README.md: their generated reference tables match the code."""

import pytest

from support import REPO
from spatial_caption_ros.tools import interface_docs
from spatial_caption_ros.params_file import node_parameters
from spatial_caption_ros.ros.interface import NODE_TOPICS
from spatial_caption_ros.ros.launch_builder import LAUNCH_FILES

DOC = REPO / 'docs' / 'ros_interface.md'
README = REPO / 'README.md'


@pytest.mark.parametrize('doc', [DOC, README], ids=['ros_interface.md', 'README.md'])
def test_generated_tables_are_in_sync(doc):
    assert interface_docs.main(['--check', str(doc)]) == 0, 'run make config'


@pytest.mark.parametrize('doc', [DOC, README], ids=['ros_interface.md', 'README.md'])
def test_every_parameter_topic_argument_and_message_is_documented(doc):
    text = doc.read_text()
    for specs in node_parameters().values():
        for p in specs:
            assert f'| `{p.name}` |' in text
    for topics in NODE_TOPICS.values():
        for t in topics:
            assert f'| `{t.name}` | {t.msg_type} |' in text
    for name, arguments in LAUNCH_FILES.items():
        assert f'#### `{name}`' in text
        for a in arguments:
            assert f'| `{a.name}` |' in text
    for msg in (REPO / 'spatial_caption_interfaces' / 'msg').glob('*.msg'):
        assert f'#### `{msg.stem}`' in text
    if doc == DOC:
        assert 'output/test_artifacts/' in text


def test_update_replaces_only_the_generated_block():
    text = f'intro\n\n{interface_docs.BEGIN}\nSTALE_TABLE\n{interface_docs.END}\n\noutro\n'
    new = interface_docs.update(text)
    assert new.startswith('intro\n\n') and new.endswith('\n\noutro\n') and 'STALE_TABLE' not in new


def test_readme_links_the_interface_reference():
    assert '(docs/ros_interface.md)' in (REPO / 'README.md').read_text()
