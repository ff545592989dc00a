# spatial_caption_ros: every entry point. `make run` and `make test` do all the set-up first.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
ENV := scripts/env.sh
ARGS ?=

.PHONY: setup run test test-quick lint config clean bench engines dav2-timing-model eval bench-graph \
	eval-captions soak bench-memory bag

setup:  ## create/refresh the venv (idempotent; fast when up to date)
	@scripts/setup.sh

run: setup  ## main job: whole node graph on ../shared/data/images (ARGS="--input ... --output ...")
	@$(ENV) $(PY) -m spatial_caption_ros.cli.run $(ARGS)

test: setup  ## the full test suite, including the slower marked set (what CI runs)
	@$(ENV) $(PY) -m pytest -q spatial_caption_ros/test -m "slow or not slow" $(ARGS)

test-quick: setup  ## the quick default set only
	@$(ENV) $(PY) -m pytest -q spatial_caption_ros/test $(ARGS)

eval-captions: setup  ## caption figures on ../shared/eval: claim accuracy, CHAIR, COCO metrics, latency
	@$(ENV) $(PY) -m spatial_caption_ros.cli.evaluate_captions $(ARGS)

lint: setup
	@$(VENV)/bin/ruff check spatial_caption_ros

config: setup  ## regenerate config/pipeline.yaml and the reference tables (docs/ros_interface.md, README.md)
	@$(ENV) $(PY) -m spatial_caption_ros.cli.config --output spatial_caption_ros/config/pipeline.yaml
	@$(ENV) $(PY) -m spatial_caption_ros.tools.interface_docs --output docs/ros_interface.md
	@$(ENV) $(PY) -m spatial_caption_ros.tools.interface_docs --output README.md

bench: setup  ## perception benchmark: per-stage times, raw model runs, ratios, node path (ARGS=...)
	@$(ENV) $(PY) -m spatial_caption_ros.tools.bench_perception $(ARGS)

engines: setup  ## build TensorRT FP16 engines for YOLO11n and DA-V2-S timing model (GPU machines)
	@scripts/gpu_benchmark.sh --build-only

dav2-timing-model:  ## Depth Anything V2 Small-architecture ONNX (random weights) for timing
	@test -x .bench-venv/bin/python || (python3 -m venv .bench-venv && .bench-venv/bin/pip install -q \
		$${TORCH_WHEEL:-torch==2.13.0} onnx==1.23.2 onnxscript)
	@.bench-venv/bin/python spatial_caption_ros/spatial_caption_ros/tools/make_dav2_timing_model.py $(ARGS)

eval: setup  ## scene graph vs ../shared/eval labels -> output/eval/results.{json,md} (ARGS="--depth-source geometric")
	@$(ENV) $(PY) -m spatial_caption_ros.cli.evaluate $(ARGS)

bench-memory: setup  ## scene memory: update ms per graph with 500 remembered objects, query ms
	@$(ENV) $(PY) -m spatial_caption_ros.tools.bench_memory $(ARGS)

bench-graph: setup  ## scene-graph build time for 10..200 objects, k-NN vs all pairs (prints ms)
	@$(ENV) $(PY) -m spatial_caption_ros.tools.bench_graph $(ARGS)

soak: setup  ## long run at a camera rate: RSS growth, scene-graph age vs processing time (ARGS="--duration 600 --rate 30")
	@$(ENV) $(PY) -m spatial_caption_ros.tools.soak $(ARGS)

bag: setup  ## caption rosbag2 recordings offline (ARGS="INPUT... --output DIR [--ray local]")
	@$(ENV) $(PY) -m spatial_caption_ros.cli.bag $(ARGS)

clean:
	rm -rf $(VENV) build output
