#!/usr/bin/env bash
# The ROS 2 user tools in the venv, and the package visible to them.
#
# 1. When no ROS install provides them (nothing importable as launch_ros, ros2cli...): launch,
#    launch_xml, launch_yaml, launch_ros, ros2launch, the ros2 CLI verbs and rosidl_runtime_py
#    from the unmodified sources in ../shared/vendor/ros2 (pip --no-deps: their setup.py files
#    name ROS dependencies that the Kilted wheels already provide), composition_interfaces (which
#    launch_ros imports) built with cmake like spatial_caption_interfaces, and colcon with its
#    PyPI dependencies (requirements/ros-tools.txt).
# 2. The editable install of spatial_caption_ros as `ros2 launch` / `ros2 run` look for a package:
#    the ament index entry, share/spatial_caption_ros as a link to the package folder of the
#    checkout (its launch/, config/, models/ and package.xml; a link to the folder itself, since
#    `ros2 launch` does not follow links below it, so new and edited launch and config files
#    apply without re-running the set-up) and the node executables in lib/spatial_caption_ros/.
# Usage: scripts/ros_tools.sh VENV
set -euo pipefail

VENV="$(cd "$1" && pwd)"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR="${SPATIAL_CAPTION_ROS2_VENDOR:-$REPO/../shared/vendor/ros2}"
PY="$VENV/bin/python"
PACKAGE=spatial_caption_ros
EXECUTABLES=(image_source_node perception_node scene_graph_node caption_node visualization_node)
# Vendor folders (relative to VENDOR) of the pure-Python packages, in dependency order.
PURE_PYTHON=(
  launch_repo/launch launch_repo/launch_xml launch_repo/launch_yaml
  rosidl_runtime_py_repo/rosidl_runtime_py
  ros2cli_repo/ros2cli ros2cli_repo/ros2pkg ros2cli_repo/ros2node ros2cli_repo/ros2service
  ros2cli_repo/ros2topic ros2cli_repo/ros2param ros2cli_repo/ros2lifecycle
  ros2cli_repo/ros2interface ros2cli_repo/ros2run
  launch_ros_repo/launch_ros launch_ros_repo/ros2launch
)

pip_q() {
  "$PY" -m pip "$@" -q --disable-pip-version-check 2>&1 | { grep -v -e "is ignored: it is neither" || true; }
}

pip_q install -r "$REPO/requirements/ros-tools.txt"

# Where launch_ros comes from when a ROS install (sourced) provides all of the tools.
FOUND="$(AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" "$PY" -c \
  'import launch, ros2launch, ros2cli, ros2lifecycle, ros2param, ros2topic, rosidl_runtime_py
import composition_interfaces.srv, launch_ros; print(launch_ros.__file__)' 2>/dev/null || true)"
if [[ -n "$FOUND" && "$FOUND" != "$VENV"/* ]]; then
  echo "[setup] launch, launch_ros and the ros2 CLI come from the ROS install in use ($FOUND)"
else
  [[ -d "$VENDOR" ]] || { echo "[setup] $VENDOR missing: cannot install launch and the ros2 CLI" >&2; exit 1; }
  # pip builds a local folder in place; build copies so ../shared stays untouched (read-only in CI).
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  targets=()
  for rel in "${PURE_PYTHON[@]}"; do
    cp -r "$VENDOR/$rel" "$TMP/"
    rm -rf "$TMP/$(basename "$rel")/build" "$TMP/$(basename "$rel")"/*.egg-info
    targets+=("$TMP/$(basename "$rel")")
  done
  pip_q install --no-deps --no-build-isolation "${targets[@]}"
  "$REPO/scripts/build_interfaces.sh" "$VENV" "$REPO/build/composition_interfaces" \
    "$VENDOR/rcl_interfaces_repo/composition_interfaces"
fi

# The editable package as an installed ament package.
mkdir -p "$VENV/share/ament_index/resource_index/packages" "$VENV/lib/$PACKAGE"
ln -sfn "$REPO/$PACKAGE/resource/$PACKAGE" "$VENV/share/ament_index/resource_index/packages/$PACKAGE"
[[ -L "$VENV/share/$PACKAGE" || ! -e "$VENV/share/$PACKAGE" ]] || rm -rf "$VENV/share/$PACKAGE"
ln -sfn "$REPO/$PACKAGE" "$VENV/share/$PACKAGE"
# pip puts the editable console scripts in lib/<package>/ (setup.cfg); link any it left in bin/.
for name in "${EXECUTABLES[@]}"; do
  [[ -e "$VENV/lib/$PACKAGE/$name" ]] || ln -sfn "$VENV/bin/$name" "$VENV/lib/$PACKAGE/$name"
  [[ -x "$VENV/lib/$PACKAGE/$name" ]] || { echo "[setup] $name missing in $VENV/lib/$PACKAGE" >&2; exit 1; }
done
(cd / && AMENT_PREFIX_PATH="$VENV" "$VENV/bin/ros2" pkg prefix "$PACKAGE" >/dev/null) \
  || { echo "[setup] ros2 cannot find $PACKAGE in $VENV" >&2; exit 1; }
echo "[setup] ros2 launch / ros2 run find $PACKAGE in $VENV"
