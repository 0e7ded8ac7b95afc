# Every target creates the virtual environment on demand, so a fresh clone needs nothing but Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DFBENCH := $(BIN)/dfbench

CLUSTER ?= dfbench
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
COUNT ?=
INSTANCE_TYPE ?=
PROFILE ?=

# Options shared by the cluster commands; empty variables add nothing.
CLUSTER_ARGS = --cluster $(CLUSTER) --region $(REGION) \
	$(if $(PROFILE),--profile $(PROFILE)) \
	$(if $(COUNT),--count $(COUNT)) \
	$(if $(INSTANCE_TYPE),--instance-type $(INSTANCE_TYPE))

.PHONY: install test provision plan status teardown clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

provision: install
	$(DFBENCH) provision $(CLUSTER_ARGS)

plan: install
	$(DFBENCH) plan $(CLUSTER_ARGS)

status: install
	$(DFBENCH) status --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE))

teardown: install
	$(DFBENCH) teardown --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(DELETE_BUCKET),--delete-bucket)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
