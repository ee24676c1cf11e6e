# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# torch is installed first, pinned, from pip's find-links folder (a CPU build); requirements.lock pins everything else,
# so no resolver ever picks an unpinned torch (which would pull gigabytes of CUDA packages).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ROOT ?= data/demo
DEMO_PATIENTS ?= 500

.PHONY: install demo test lint clean-demo

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The main job on simulated data: write the MIMIC stand-in, ingest it, build the warehouse with dbt, split the
# scanner cohort, train the scanner classifier, analyse its deep features, harmonize the cohort to D110 and end
# with the harmonization leaderboard.
demo: $(STAMP)
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh simulate --patients $(DEMO_PATIENTS) --image-size 320 --seed 0
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh ingest all
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh build
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh split --cohort scanner_d110_vs_s120
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh train --cohort scanner_d110_vs_s120 --architecture small_cnn \
		--image-size 128 --epochs 40 --patience 8
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh features --cohort scanner_d110_vs_s120
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh harmonize fit --method cdf --reference D110
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh harmonize apply --method cdf --reference D110
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh harmonize evaluate --methods cdf fda bands --epochs 30
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh runs
	XRH_DATA_ROOT=$(DEMO_ROOT) $(BIN)/xrh harmonize leaderboard

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean-demo:
	rm -rf $(DEMO_ROOT)
