#!/usr/bin/env bash
# Build tf2_msgs (TFMessage for /tf and /tf_static; the PyPI wheels lack it) from the vendored
# ros2/geometry2 sources in ../shared/vendor/ros2/geometry2_repo into a venv, with the same cmake
# recipe as spatial_caption_interfaces. Skipped when the venv can already import it.
# Usage: scripts/build_tf2_msgs.sh VENV
set -euo pipefail

VENV="$(cd "$1" && pwd)"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SOURCE="${SPATIAL_CAPTION_GEOMETRY2:-$REPO/../shared/vendor/ros2/geometry2_repo}/tf2_msgs"

if (cd / && AMENT_PREFIX_PATH="$VENV" "$VENV/bin/python" -c 'import tf2_msgs.msg' 2>/dev/null); then
  exit 0
fi
if [[ ! -f "$SOURCE/package.xml" ]]; then
  echo "[setup] tf2_msgs sources not found at $SOURCE: the memory node then has no /tf" \
    "(set SPATIAL_CAPTION_GEOMETRY2 to a ros2/geometry2 checkout)" >&2
  exit 0
fi
"$REPO/scripts/build_interfaces.sh" "$VENV" "$REPO/build/tf2_msgs" "$SOURCE"
