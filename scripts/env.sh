#!/usr/bin/env bash
# Run a command with the venv and the DDS settings this package's tools, tests and demos use:
# discovery on localhost only and a per-run ROS_DOMAIN_ID (unless already set).
# Usage: scripts/env.sh COMMAND [ARGS...]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SPATIAL_CAPTION_VENV:-$REPO/.venv}"
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 200) + 1 ))}"
export PYTHONUNBUFFERED=1
exec "$@"
