# spatial_caption_ros: every entry point. `make run` and `make test` do all the set-up first.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
ENV := scripts/env.sh
ARGS ?=

.PHONY: setup run test test-quick lint config clean eval-captions

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

config: setup  ## regenerate config/pipeline.yaml and the docs/ros_interface.md tables from the code
	@$(ENV) $(PY) -m spatial_caption_ros.cli.config --output spatial_caption_ros/config/pipeline.yaml
	@$(ENV) $(PY) -m spatial_caption_ros.cli.interface_docs --output docs/ros_interface.md

clean:
	rm -rf $(VENV) build output
