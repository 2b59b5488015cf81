# Every target installs what it needs into .venv first. Data: $DATA_DIR (default ./data).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Tables: BUDGET=paper|cpu|short|smoke, SEEDS (count), DATASETS (comma-separated; default: the table's),
# JOBS (single runs side by side, e.g. small budgets on one GPU).
BUDGET ?= paper
SEEDS ?= 3
DATASETS ?=
DEMO_ARGS ?=
SCALE_WORK ?= outputs/scale
JOBS ?= 1
TABLE_ARGS = --budget $(BUDGET) --seeds $(SEEDS) --jobs $(JOBS) $(if $(DATASETS),--datasets $(DATASETS))

.PHONY: help install browser demo explore figures bench scale gpu-check test test-all lint format clean table1 table2 table3 tables reproduce ablation

help:  ## list the targets
	@grep -E '^[a-z0-9 -]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv and install the package with its test tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install  ## t-SimCNE on BloodMNIST at the CPU budget, time-boxed to 12 min of training; map in outputs/runs/
	$(BIN)/python train.py experiment=demo $(DEMO_ARGS)

table1 table2 table3: install  ## run a table's sweeps (BUDGET, SEEDS, DATASETS), write outputs/tables/
	$(BIN)/python scripts/tables.py run $@ $(TABLE_ARGS)

tables: install  ## rebuild results/reproduction/ (tables 1-3, cells.csv, verdicts) from its committed runs, and outputs/tables/ from runs under outputs/ (no training; BUDGET= picks the latter's)
	$(BIN)/python scripts/reproduce.py --report-only
	$(BIN)/python scripts/tables.py build $(if $(filter command line environment,$(origin BUDGET)),--budget $(BUDGET))

reproduce: install  ## every missing BloodMNIST run of Tables 1-3 (+ annealing) at BUDGET (default short), one at a time at low priority, each kept and committed as it finishes: results/reproduction/
	$(BIN)/python scripts/reproduce.py $(if $(filter command line environment,$(origin BUDGET)),--budget $(BUDGET)) $(REPRODUCE_ARGS)

ablation: install  ## t-SimCNE with each augmentation on DATA="dataset=... [overrides]" (SEEDS, default 1; BUDGET, default short): maps side by side + ranked table in outputs/ablation/<name>/
	$(BIN)/python scripts/ablation.py $(if $(filter command line environment,$(origin SEEDS)),--seeds $(SEEDS)) $(if $(filter command line environment,$(origin BUDGET)),--budget $(BUDGET)) $(DATA)

# The reference implementation in its own environment, for `make bench`'s part (c).
REFERENCE_VENV ?= .venv-reference
$(REFERENCE_VENV)/.installed:
	$(PYTHON) -m venv $(REFERENCE_VENV)
	$(REFERENCE_VENV)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(REFERENCE_VENV)/bin/pip install --quiet tsimcne==0.3.12 lightning
	touch $@

bench: install $(REFERENCE_VENV)/.installed  ## time a phase-1 epoch: medmap vs model alone vs tsimcne 0.3.12 (outputs/bench/)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

scale: install  ## full-size PCam-format files (synthetic), every stage timed: results/scale-cpu.md (hours on 2 cores; SCALE_ARGS=--resume goes on after a stop)
	$(BIN)/python scripts/scale.py --work $(SCALE_WORK) $(SCALE_ARGS)
	cp $(SCALE_WORK)/scale.md results/scale-cpu.md && cp $(SCALE_WORK)/scale.json results/scale-cpu.json

gpu-check: install  ## on a borrowed H100/H200 (<= 9 min): bench at batch 1024, PCam-size step memory, a randrot/default pair -> results/gpu/
	$(BIN)/python scripts/gpu_check.py $(GPU_CHECK_ARGS)

# Debian's chromium + chromedriver for the explorer's browser tests (skipped where absent).
APT := $(if $(filter 0,$(shell id -u)),apt-get,sudo -n apt-get)
browser:  ## install Debian's chromium and chromedriver (for the browser tests) if missing
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ( $(APT) install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	    ( $(APT) update -q >/dev/null 2>&1 && $(APT) install -y -q chromium chromium-driver >/dev/null 2>&1 ) || \
	    echo "chromium could not be installed: the browser tests will skip" )

explore: install  ## the interactive HTML map of a run: make explore RUN=<run dir>
	$(BIN)/python explore.py run=$(RUN)

figures: install  ## figures (PNG + PDF) from finished runs under outputs/ into outputs/figures/, no training
	$(BIN)/python scripts/figures.py

# Tests run in TEST_JOBS processes side by side (pytest-xdist; a test file stays in one), one
# thread each: most of a test's time is single-threaded start-up, imports and Python.
TEST_JOBS ?= 2
PYTEST = OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

test: install browser  ## the test suite, ~5 min on 2 cores (real data from DATA_DIR, else ../shared/data; slow tests excluded)
	$(PYTEST)

test-all: install browser  ## the test suite including the tests marked slow
	$(PYTEST) -m ""

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## remove run outputs (keeps .venv)
	rm -rf outputs/runs outputs/multirun
