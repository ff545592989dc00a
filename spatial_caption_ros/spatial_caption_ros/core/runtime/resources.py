"""Find files shipped with the package (config, model manifest, launch, rviz), installed or not.

From a source checkout or editable install they sit beside the Python package; from a colcon
install they are in share/spatial_caption_ros (found through ament_index when it is importable).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_NAME = 'spatial_caption_ros'
# core/runtime/resources.py -> the package folder (spatial_caption_ros/) and its source root.
_PACKAGE_DIR = Path(__file__).resolve().parents[2]
_SOURCE_ROOT = _PACKAGE_DIR.parent


def package_file(relative: str) -> Path:
    """Absolute path of a shipped file such as 'config/pipeline.yaml'."""
    candidate = _SOURCE_ROOT / relative
    if candidate.exists():
        return candidate
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory(PACKAGE_NAME))
    except Exception:  # noqa: BLE001 - ament_index missing or package not indexed
        return candidate
    installed = share / relative
    return installed if installed.exists() else candidate


def data_file(relative: str) -> Path:
    """Absolute path of a data file inside the Python package (spatial_caption_ros/data/...)."""
    return _PACKAGE_DIR / 'data' / relative
