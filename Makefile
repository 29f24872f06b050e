# The two commands the README promises:
#   make demo   set up (if needed), run the example workflow headless on the real engine and
#               tile its images into a labelled contact sheet
#   make test   set up (if needed) and run the whole test suite
# COMFYUI_DIR=/path/to/ComfyUI uses an existing ComfyUI instead of the pinned one.
PY := .venv/bin/python
DEMO_OUT ?= output/demo

.PHONY: setup demo test lint bench workflows starter-model

setup:
	bash scripts/setup.sh

demo:
	@bash scripts/setup.sh
	@$(PY) scripts/run_workflow.py workflows/api/sample_grid.json --out $(DEMO_OUT) \
		--contact-sheet $(DEMO_OUT)/contact_sheet.jpg

test: setup
	COMFYUI_VERSION=0.30.0 bash scripts/setup.sh
	$(PY) -m pytest
	@echo "== engine and server tests again on ComfyUI 0.30.0 =="
	COMFYUI_VERSION=0.30.0 $(PY) -m pytest tests/engine tests/server

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/bench_generate.py

workflows: setup
	$(PY) scripts/build_workflows.py --thumbnails
	$(PY) scripts/node_reference.py

# Retrain the shipped starter GAN and the DCGAN it is compared with (hours on a CPU; resumable).
starter-model: setup
	bash scripts/train_starter_model.sh
