#!/usr/bin/env bash
# GPU benchmark for a person with an NVIDIA GPU (desktop or Jetson): builds the FP16 TensorRT
# engines of YOLO11n (640x640) and of the Depth Anything V2 Small architecture (518x518), prints
# each engine's latency, then runs the perception benchmark on the TensorRT backend (per-stage
# times, frames/s of the whole stage, ratios to the raw runs, and the node path).
#
#   scripts/gpu_benchmark.sh                 # build (or reuse) the engines, then benchmark
#   scripts/gpu_benchmark.sh --build-only    # only build the engines
#
# Needs, in the venv given by PY (default .venv): the package (make setup) plus
# `pip install -r requirements/gpu.txt` (tensorrt, cuda-python, onnxruntime-gpu). The DA-V2-S
# timing model (random weights, ~99 MB) is made with torch by tools/make_dav2_timing_model.py
# in TORCH_PY (default .bench-venv/bin/python; `make dav2-timing-model` creates that venv).
# Goals on an H100: YOLO11n < 1 ms, DA-V2-S < 3 ms, whole perception stage > 300 frames/s.
# Results are written to gpu_benchmark.json (OUT=path to change). Loopback-only DDS as always.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
TORCH_PY="${TORCH_PY:-$REPO/.bench-venv/bin/python}"
OUT="${OUT:-$REPO/gpu_benchmark.json}"
FRAMES="${FRAMES:-300}"
ENV="$REPO/scripts/env.sh"
CACHE="${SPATIAL_CAPTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spatial_caption_ros}"
DAV2="$CACHE/models/depth_anything_v2_vits_timing_518.onnx"

say() { printf '\033[1m[gpu-bench]\033[0m %s\n' "$*"; }

if ! "$PY" -c 'import tensorrt, onnxruntime; from spatial_caption_ros.core.perception.backends.tensorrt_backend import runtime_identity; print(runtime_identity())' ; then
  say "TensorRT, cuda-python or a CUDA GPU is not usable from $PY."
  say "Install: $PY -m pip install -r $REPO/requirements/gpu.txt (on a Jetson: JetPack's TensorRT)."
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

if [[ ! -f "$DAV2" ]]; then
  if [[ ! -x "$TORCH_PY" ]]; then
    say "no Python with torch at $TORCH_PY: run 'make dav2-timing-model' or set TORCH_PY"
    exit 2
  fi
  say "making the Depth Anything V2 Small-architecture timing model (random weights)"
  "$TORCH_PY" "$REPO/spatial_caption_ros/spatial_caption_ros/tools/make_dav2_timing_model.py" --output "$DAV2"
fi

say "YOLO11n 640 FP16 engine"
"$ENV" "$PY" -m spatial_caption_ros.cli.build_engine yolo11n --precision fp16 --benchmark 1000
say "Depth Anything V2 Small-architecture 518 FP16 engine"
"$ENV" "$PY" -m spatial_caption_ros.cli.build_engine "$DAV2" --precision fp16 \
  --preprocess imagenet --benchmark 500
[[ "${1:-}" == "--build-only" ]] && exit 0

say "perception stage on TensorRT: YOLO11n alone"
"$ENV" "$PY" -m spatial_caption_ros.tools.bench_perception --backend tensorrt --frames "$FRAMES" \
  --json "${OUT%.json}_detection.json"
say "perception stage on TensorRT: YOLO11n + Depth Anything V2 Small (timing model)"
"$ENV" "$PY" -m spatial_caption_ros.tools.bench_perception --backend tensorrt --frames "$FRAMES" \
  --depth-source depth_anything_v2 --depth-model "$DAV2" --json "$OUT"
say "figures written to ${OUT%.json}_detection.json and $OUT"
