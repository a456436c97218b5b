# Critic: two commands for a fresh machine, `make run` and `make test`.
# Every target sets up what it needs; set-up is skipped when already current.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .tools/sam
CHECKOV_VENV := .tools/checkov
PIP_FLAGS := --disable-pip-version-check --quiet
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test setup setup-serve setup-train setup-deploy setup-test tools browser bench evaluate deploy load fuzz check-serving-image lock clean help

help:
	@echo "make run    start the local stack (S3, SageMaker, API, web page) on 127.0.0.1"
	@echo "make test   set up and run every test"
	@echo "make bench  print throughput and latency figures of the shipped model (DATA=aclImdb_v1.tar.gz)"
	@echo "make fuzz   1,000 Hypothesis examples per fuzz target"
	@echo "make load   load the local stack and print latency percentiles"
	@echo "make deploy deploy to AWS (see README)"
	@echo "make check-serving-image  the shipped model in the SageMaker serving image's Python and PyTorch"
	@echo "TORCH=cpu   (with any target) PyTorch's CPU-only build on Linux: about 1 GB instead of about 5 GB"

# Dependency groups (pyproject.toml's optional dependencies), each installed
# the first time a target needs it: serve (make run), train (train, evaluate,
# bench), deploy, test (all of them, and the test tools). Every version comes
# from requirements/constraints.txt.
#
# PyTorch on Linux: the public index's torch is a CUDA build (about 4.5 GB of
# packages); TORCH=cpu takes the CPU-only build from PyTorch's own index
# instead (about 0.7 GB), the same version, which is all Critic uses. Set it
# on the first make of a fresh .venv (or after `make clean`): an installed
# torch of the pinned version is kept. macOS gets the CPU build either way.
TORCH ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN = $(shell grep -E '^torch==' requirements/constraints.txt)
GROUPS := serve train deploy test

setup: setup-serve
$(addprefix setup-,$(GROUPS)): setup-%: $(VENV)/.group-%

$(VENV)/.base: pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install $(PIP_FLAGS) --upgrade 'pip<27' 'setuptools<81' wheel
ifeq ($(TORCH),cpu)
	@echo "installing PyTorch's CPU-only build ($(TORCH_PIN)) from $(TORCH_CPU_INDEX)"
	@$(BIN)/pip install $(PIP_FLAGS) --index-url $(TORCH_CPU_INDEX) '$(TORCH_PIN)'
else ifneq ($(TORCH),)
	$(error TORCH=$(TORCH): leave it empty (the public index's build) or set TORCH=cpu)
endif
	@touch $@

# test needs every group; installing it marks them all as installed.
$(VENV)/.group-%: $(VENV)/.base
	@echo "installing the '$*' dependencies into $(VENV) (first time: a few minutes)"
	@$(BIN)/pip install $(PIP_FLAGS) -c requirements/constraints.txt --no-build-isolation -e '.[$*]'
	@$(if $(filter test,$*),touch $(addprefix $(VENV)/.group-,$(GROUPS)),touch $@)

tools: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

$(SAM_VENV)/.installed: requirements/sam.txt requirements/sam-constraints.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	@echo "installing aws-sam-cli into $(SAM_VENV)"
	@$(SAM_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/sam.txt -c requirements/sam-constraints.txt
	@touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.txt requirements/checkov-constraints.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo "installing checkov into $(CHECKOV_VENV)"
	@$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/checkov.txt -c requirements/checkov-constraints.txt
	@touch $@

browser:
	@scripts/ensure-chromium.sh

run: setup-serve
	$(BIN)/critic serve $(SERVE_ARGS)

test: setup-test tools browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# DATA: aclImdb_v1.tar.gz or its folder; empty downloads the official tarball.
DATA ?=
DATA_FLAG := $(if $(DATA),--data $(DATA),)

bench: setup-serve
	$(BIN)/critic bench $(DATA_FLAG)

evaluate: setup-train
	$(BIN)/critic evaluate $(DATA_FLAG)

# Deploy to AWS (README, "Deploy to AWS"), e.g. make deploy DEPLOY_ARGS="--region eu-west-1".
# The us-east-1 default above serves the offline tools; a deployment uses your
# region (AWS_REGION, ~/.aws/config, samconfig.toml or --region), not that one.
deploy: setup-deploy $(SAM_VENV)/.installed
	$(if $(filter file,$(origin AWS_DEFAULT_REGION)),env -u AWS_DEFAULT_REGION )$(BIN)/critic deploy $(DEPLOY_ARGS)

# The shipped model in the SageMaker serving image's Python and PyTorch (a venv
# in .tools/serving-image, 1 to 5 GB; not part of make test). SERVING_PYTHON:
# an interpreter of the image's Python version; DATA as for bench.
SERVING_PYTHON ?= python3.12
check-serving-image: setup-serve
	$(BIN)/python scripts/check_serving_image.py --python $(SERVING_PYTHON) $(DATA_FLAG) $(if $(filter cpu,$(TORCH)),--torch-index $(TORCH_CPU_INDEX))

# Load on the local stack (127.0.0.1 only, bounded): LOAD_ARGS="--duration 10".
load: setup-serve
	$(BIN)/python scripts/load_local.py $(LOAD_ARGS)

fuzz: setup-test
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests -k fuzz

# Re-resolve and re-pin every group of the project venv. Local version labels
# (torch's "+cpu") are dropped: the pins must resolve from the public index,
# and "torch==X" also matches the CPU index's "X+cpu" (tests/test_install.py).
lock:
	rm -rf /tmp/critic-lock && $(PYTHON) -m venv /tmp/critic-lock
	/tmp/critic-lock/bin/pip install $(PIP_FLAGS) 'setuptools<81' -e '.[test]'
	/tmp/critic-lock/bin/pip freeze --exclude-editable | grep -v '^critic' | sed -E 's/\+[A-Za-z0-9.]+$$//' > requirements/constraints.txt
	$(PYTHON) scripts/pin_layer.py  # the Lambda dependencies layer pins the same versions

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache
