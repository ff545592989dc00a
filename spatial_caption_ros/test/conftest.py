"""pytest hooks and fixtures; shared constants and rigs are in the support package."""

from __future__ import annotations

import pytest

import support  # noqa: F401  - sets the DDS environment before rclpy is imported anywhere


def pytest_configure(config) -> None:
    config.addinivalue_line('markers', 'slow: slower tests (soak, fuzz, real LLM); make test runs '
                                       'them, make test-quick skips them')


def pytest_collection_modifyitems(config, items) -> None:
    if config.getoption('-m'):
        return
    skip = pytest.mark.skip(reason='slow test: run with make test (or -m slow)')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope='module')
def rclpy_context():
    """rclpy initialised for one test module, shut down afterwards."""
    import rclpy
    rclpy.init()
    yield
    rclpy.try_shutdown()
