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
SF ?= 1
PARTITIONS ?= 16
DATASET ?= tpch_sf$(SF)
BUCKET ?=
ITERATIONS ?= 3
QUERIES ?=
ENGINE ?=
URL ?=
BINARY ?=
REPO ?=
ARGS ?=
LINES ?= 200
SINCE ?=

# Options shared by the cluster commands; empty variables add nothing.
CLUSTER_ARGS = --cluster $(CLUSTER) --region $(REGION) \
	$(if $(PROFILE),--profile $(PROFILE)) \
	$(if $(COUNT),--count $(COUNT)) \
	$(if $(INSTANCE_TYPE),--instance-type $(INSTANCE_TYPE))

.DEFAULT_GOAL := help
.PHONY: help install test bench compare bench-api-calls bench-sync bench-compare bench-overhead bench-deploy deploy logs data sync worker provision plan status teardown clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

help:
	@echo "make bench      TPC-H on this machine (SF=1 ITERATIONS=3 QUERIES=q1,q3 ENGINE=name URL=worker-url)"
	@echo "make test       the test suite (moto server, loopback only)"
	@echo "make data       generate TPC-H (SF=10 PARTITIONS=16);  make sync DATASET=tpch_sf10 [DELETE=1]"
	@echo "make compare    DATASET=... BASE=engine NEW=engine RESULTS=local|remote"
	@echo "make plan | provision | status | teardown [DELETE_BUCKET=1]"
	@echo "                CLUSTER=$(CLUSTER) REGION=$(REGION) COUNT=... INSTANCE_TYPE=... PROFILE=..."
	@echo "make deploy     BINARY=path | REPO=checkout [ARGS=\"--x 1\"] [FORCE=1];  make logs [LINES=200 SINCE=-1h]"
	@echo "make worker     the local DataFusion worker on 127.0.0.1:9000"
	@echo "make bench-api-calls | bench-sync | bench-compare | bench-overhead   (write BENCHMARKS.md)"

# Two workers: the suite waits on moto and subprocesses as much as it computes.
PYTEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# TPC-H on this machine: generates the dataset if missing, starts the local worker, runs the
# queries, prints a table and the comparison with the previous run, stops the worker.
bench: install
	$(DFBENCH) bench --sf $(SF) --partitions $(PARTITIONS) --iterations $(ITERATIONS) \
		$(if $(QUERIES),--queries $(QUERIES)) $(if $(ENGINE),--engine $(ENGINE)) \
		$(if $(URL),--url $(URL) --dataset $(DATASET))

bench-api-calls: install
	$(BIN)/python benchmarks/api_calls.py

BASE ?=
NEW ?=
RESULTS ?= local

# Compare two runs of a dataset: make compare DATASET=tpch_sf10 BASE=engine-a NEW=engine-b RESULTS=remote
compare: install
	$(DFBENCH) compare --dataset $(DATASET) --results $(RESULTS) $(BASE) $(NEW)

bench-compare: install
	$(BIN)/python benchmarks/compare_simulation.py

bench-overhead: install
	$(BIN)/python benchmarks/worker_overhead.py

# make deploy BINARY=target/x86_64-unknown-linux-gnu/release/worker   (or REPO=../datafusion-distributed)
deploy: install
	$(DFBENCH) deploy --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(BINARY),--binary $(BINARY),--build $(REPO)) $(foreach a,$(ARGS),--arg=$(a)) \
		$(if $(FORCE),--force-restart)

logs: install
	$(DFBENCH) logs --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		--lines $(LINES) $(if $(SINCE),--since "$(SINCE)")

bench-deploy: install
	$(BIN)/python benchmarks/deploy_calls.py

bench-sync: install
	$(BIN)/python benchmarks/sync_vs_awscli.py

data: install
	$(DFBENCH) data generate --sf $(SF) --partitions $(PARTITIONS)

sync: install
	$(DFBENCH) data sync $(DATASET) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(BUCKET),--bucket $(BUCKET),--cluster $(CLUSTER)) $(if $(DELETE),--delete)

worker: install
	$(DFBENCH) worker --port 9000 --data-dir benchmarks/data

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
