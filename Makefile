# lvo-triage: `make demo` and `make test` (see README.md). Each creates .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo train-demo model test test-slow lint evaluate clean

setup: $(STAMP)

# requires-python in pyproject.toml: 3.11 only (the version the tests run on); docs/install.md
$(STAMP): pyproject.toml
	@$(if $(PYTHON),,echo "lvo-triage needs Python 3.11: none found, make setup PYTHON=..." >&2; exit 1;) \
	$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v[:2] == (3, 11) else \
		f"lvo-triage needs Python 3.11, $(PYTHON) is {v[0]}.{v[1]}: make setup PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,train]"
	touch $(STAMP)

demo: setup
	rm -rf demo
	$(BIN)/lvo-triage synth demo/studies --n 2 --seed 7
	@echo "--- ground truth (demo/studies/labels.csv):"; cat demo/studies/labels.csv
	@echo "--- lvo-triage run demo/studies --out demo/out:"
	$(BIN)/lvo-triage run demo/studies --out demo/out

# A tiny end-to-end retrain on a generated NIfTI dataset (a few minutes): the scripts work.
# The model it makes is NOT useful (24 low-resolution cases, 3 epochs) and NOT FOR CLINICAL USE.
train-demo: setup
	rm -rf demo/train
	$(BIN)/lvo-triage synth demo/train/data --n 24 --seed 11 --fast --format nifti
	$(BIN)/python scripts/train.py --data demo/train/data --out demo/train/run --epochs 3 \
		--workers 0
	$(BIN)/python scripts/export_onnx.py demo/train/run --out demo/train/lvo-demo.onnx \
		--name lvo-demo --version 0.0.0-demo
	$(BIN)/lvo-triage synth demo/train/study --n 1 --seed 12 --fast
	printf 'model:\n  path: lvo-demo.onnx\n' > demo/train/config.yaml
	$(BIN)/lvo-triage run demo/train/study --config demo/train/config.yaml --out demo/train/out

# The bundled detector from nothing (about 4-5 hours on 2 cores): see scripts/make_model.sh.
model: setup
	bash scripts/make_model.sh

lint: setup
	$(BIN)/ruff check lvo_triage tests scripts
	$(BIN)/ruff format --check lvo_triage tests scripts
	$(BIN)/mypy lvo_triage

test: lint
	$(BIN)/pytest -m "not slow" -q

test-slow: setup
	$(BIN)/pytest -m slow -q

evaluate: setup
	$(BIN)/python scripts/evaluate.py --model models/lvo-detector.onnx --n 100

clean:
	rm -rf demo .pytest_cache .mypy_cache .ruff_cache
