# ebe-calib: `make run` and `make test` work on a fresh machine with Python 3.11, pip, gcc and make.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE := data/samples/stage1/2018/truth.json
RUN_ARGS ?= --years 2018 --ifbinned --extraString demo

.PHONY: setup run sample test test-fast bench docs clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $(STAMP)

sample: $(SAMPLE)

$(SAMPLE): | $(STAMP)
	$(PY) -m lib.generate --output data/samples/stage1 --year 2018

# The demo directories belong to this target: after a configuration change they are replaced
# (--overwrite) rather than refused, as a user's own directories are.
run: $(STAMP) $(SAMPLE)
	$(PY) getCalibrationFactor.py --steps all --overwrite $(RUN_ARGS)
	$(PY) getCalibrationFactor.py --steps all --isMC --overwrite $(RUN_ARGS)
	$(PY) getCalibrationFactor.py --closure_test $(RUN_ARGS)

test: $(STAMP)
	$(PY) -m pytest tests lib -q

test-fast: $(STAMP)
	$(PY) -m pytest tests lib -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/run_benchmarks.py

# docs/cli.md and docs/configuration.md, generated from the argument parsers and the configuration models.
docs: $(STAMP)
	$(PY) tools/gen_docs.py

clean:
	rm -rf $(VENV) plots/binned plots/unbinned data/samples/stage1
