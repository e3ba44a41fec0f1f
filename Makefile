# Two commands on a fresh machine with Python 3.11:  `make demo`, `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU wheel of torch first: a looser requirement alone would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	@rm -rf demo-out && mkdir -p demo-out
	# seeded (the default), verified by the example's own checks: its linter (flake8, with the
	# project's .flake8) and its tests; then unpacked and checked again
	$(VENV)/bin/codeseed pack fixtures/sample-py -o demo-out/sample.cseed \
	    --test-cmd "$(CURDIR)/$(PY) -m flake8 && $(CURDIR)/$(PY) -m pytest -q -p no:cacheprovider tests"
	$(VENV)/bin/codeseed info demo-out/sample.cseed
	$(VENV)/bin/codeseed unpack demo-out/sample.cseed -o demo-out/unpacked
	cd demo-out/unpacked && $(CURDIR)/$(PY) -m flake8 && $(CURDIR)/$(PY) -m pytest -q -p no:cacheprovider tests
	# lossless: byte for byte
	$(VENV)/bin/codeseed pack fixtures/sample-py -o demo-out/sample-exact.cseed --exact
	$(VENV)/bin/codeseed unpack demo-out/sample-exact.cseed -o demo-out/exact
	diff -r fixtures/sample-py demo-out/exact && echo "demo: exact round trip identical"

test: install
	$(PY) -m pytest -q tests

clean:
	rm -rf demo-out
