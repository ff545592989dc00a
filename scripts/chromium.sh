#!/usr/bin/env bash
# Headless Chromium for the HTML report test (Debian packages chromium + chromium-driver).
# Installs only when `chromium` is missing; prints the binary's path on success.
# Needs root (or passwordless sudo) and the Debian apt mirror; exits 1 with a reason otherwise.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  command -v chromium
  exit 0
fi
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
    echo "chromium.sh: chromium is missing and installing it needs root" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
# A lock taken by another apt run is waited for (up to 10 minutes), not fought over.
APT=("${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 -q -y)
"${APT[@]}" update >/dev/null || { echo "chromium.sh: apt-get update failed" >&2; exit 1; }
"${APT[@]}" install --no-install-recommends chromium chromium-driver >/dev/null \
  || { echo "chromium.sh: apt-get install chromium chromium-driver failed" >&2; exit 1; }
command -v chromium
