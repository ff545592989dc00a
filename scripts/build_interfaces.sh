#!/usr/bin/env bash
# Build spatial_caption_interfaces (or another rosidl message package: SOURCE_DIR) with cmake and
# install it into a virtual environment that holds the ROS 2 Kilted PyPI wheels. No ROS install or
# sourcing is needed.
# Usage: scripts/build_interfaces.sh VENV [BUILD_DIR] [SOURCE_DIR]
set -euo pipefail

VENV="$(cd "$1" && pwd)"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${2:-$REPO/build/spatial_caption_interfaces}"
SOURCE_DIR="${3:-$REPO/spatial_caption_interfaces}"
PY="$VENV/bin/python"

# The wheels' exported cmake files name the wheel builder's Python and numpy include dirs;
# point them at this venv's (idempotent: a rewritten file no longer matches).
PY_INC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INC="$("$PY" -c 'import numpy; print(numpy.get_include())')"
{ grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true; } |
while read -r f; do
  sed -i \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${NP_INC}#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#${PY_INC}#g" "$f"
done

export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
mkdir -p "$BUILD_DIR"
cmake -S "$SOURCE_DIR" -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" \
  -DBUILD_TESTING=OFF > "$BUILD_DIR/configure.log" 2>&1 \
  || { tail -40 "$BUILD_DIR/configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "$(nproc)" > "$BUILD_DIR/build.log" 2>&1 \
  || { tail -60 "$BUILD_DIR/build.log"; exit 1; }
cmake --install "$BUILD_DIR" > "$BUILD_DIR/install.log" 2>&1 \
  || { tail -40 "$BUILD_DIR/install.log"; exit 1; }
