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
BENCHMARK ?=
ITERATIONS ?=
QUERIES ?=
ENGINE ?=
ENGINES ?=
URL ?=
BINARY ?=
REPO ?=
ARGS ?=
LINES ?= 200
SINCE ?=
REMOTE ?=
VIA ?= auto
INSTANCE ?= 0
PORT ?= 0

# Options shared by the cluster commands; empty variables add nothing.
CLUSTER_ARGS = --cluster $(CLUSTER) --region $(REGION) \
	$(if $(PROFILE),--profile $(PROFILE)) \
	$(if $(COUNT),--count $(COUNT)) \
	$(if $(INSTANCE_TYPE),--instance-type $(INSTANCE_TYPE))

.DEFAULT_GOAL := help
.PHONY: help install system-tools spark-tools lint test test-min-versions test-spark bench-engines bench tunnel shell health compare bench-api-calls bench-sync bench-compare bench-aa bench-overhead bench-deploy bench-transport bench-connect bench-startup bench-datasets bench-oncluster deploy logs data sync pull worker provision plan doctor status teardown clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	touch $@

install: $(BIN)/.installed

help:
	@echo "make bench      TPC-H on this machine (SF=1 ITERATIONS=3, 5 remote; QUERIES=q1,q3 ENGINE=name URL=worker-url)"
	@echo "                ENGINES=datafusion,spark: engines in turn per query, rows compared, upstream's totals"
	@echo "                REMOTE=1 DATASET=tpch_sf10 [VIA=auto|ssh|ssm|relay]: on the cluster"
	@echo "make tunnel     the way to a worker, held open [INSTANCE=0 VIA=auto PORT=9000];  make shell [INSTANCE=0]"
	@echo "make health     every worker reachable, every peer known, one commit [VIA=auto]"
	@echo "make test       lint (ruff, mypy), the test suite (moto server, loopback only), and test-min-versions:"
	@echo "                the provisioning tests at the lowest boto3/botocore pyproject.toml admits"
	@echo "make data       generate TPC-H (SF=10 PARTITIONS=16 [BENCHMARK=tpcds] [SORTED=1: tpch_sorted_sf<SF>] [REMOTE=1: on the cluster, into its bucket])"
	@echo "make sync       DATASET=tpch_sf10 [DELETE=1];  make pull DATASET=tpch_sf100 (bucket → benchmarks/data)"
	@echo "make compare    DATASET=... BASE=engine NEW=engine RESULTS=local|remote"
	@echo "make plan | provision | doctor [VIA=ssm] | status | teardown [DELETE_BUCKET=1]"
	@echo "                CLUSTER=$(CLUSTER) REGION=$(REGION) COUNT=... INSTANCE_TYPE=... PROFILE=..."
	@echo "make deploy     BINARY=path | REPO=checkout [ARGS=\"--x 1\"] [FORCE=1];  make logs [LINES=200 SINCE=-1h]"
	@echo "make worker     the local DataFusion worker on 127.0.0.1:9000"
	@echo "make bench-engines  DataFusion vs Spark on this machine (SF=1): BENCHMARKS.md's engines table"
	@echo "make bench-api-calls | bench-sync | bench-compare | bench-aa | bench-overhead | bench-deploy | bench-transport"
	@echo "     | bench-connect | bench-startup | bench-datasets | bench-oncluster"
	@echo "                (each writes its section of BENCHMARKS.md)"

# Three workers on two cores: the suite waits on moto, sshd and subprocesses more than it computes.
# worksteal: a worker that runs out of tests takes some from another's queue, so the run does not
# wait at its end on one worker's backlog (423 s against 485 s with the default, on 2 cores).
PYTEST_WORKERS ?= 3

# System tools the tests run for real: sshd (the SSH transport's far end), shellcheck (the
# scripts dfbench runs on instances) and ip (loopback in a test's own network namespace).
# Installed from Debian's apt when missing and allowed (root,
# or password-less sudo); otherwise the tests that need them say so and skip, unless
# DFBENCH_REQUIRE_SYSTEM_TOOLS=1 (CI).
SYSTEM_TOOLS := /usr/sbin/sshd:openssh-server shellcheck:shellcheck ip:iproute2
# The Spark tests' (make test-spark) and the Spark benchmark's: a Java runtime for pyspark.
SPARK_TOOLS := java:openjdk-17-jre-headless

system-tools: TOOLS = $(SYSTEM_TOOLS)
spark-tools: TOOLS = $(SPARK_TOOLS)
system-tools spark-tools:
	@missing=""; for pair in $(TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		as_root=""; [ "$$(id -u)" = 0 ] || { sudo -n true 2>/dev/null && as_root="sudo -n"; }; \
		if { [ "$$(id -u)" = 0 ] || [ -n "$$as_root" ]; } && command -v apt-get >/dev/null; then \
			echo "installing$$missing from apt"; \
			$$as_root apt-get update -qq && \
			$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "note: tests needing$$missing will skip (install them with apt-get as root)"; \
		fi; \
	fi

test: install system-tools lint test-min-versions test-spark
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not spark" $(PYTEST_ARGS)

# pyspark (the spark extra) beside the test extras.
$(BIN)/.spark-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,plot,spark]'
	touch $@

# The Spark tests in one process: one JVM for the session (tests/test_spark.py's fixture), SF 0.01.
test-spark: install spark-tools $(BIN)/.spark-installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m spark $(PYTEST_ARGS)

# ruff (rules chosen in pyproject.toml) on everything Python, mypy on the package.
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# The lowest boto3 and botocore pyproject.toml admits (tests/test_versions.py checks that these
# are its floors), in a second venv that holds only them: a .pth line puts the first venv's
# packages after its own, so everything else is shared and nothing else is downloaded.
MIN_VERSIONS := boto3==1.34.0 botocore==1.34.0 s3transfer==0.9.0
VENV_MIN ?= .venv-min

$(VENV_MIN)/.installed: $(BIN)/.installed Makefile
	rm -rf $(VENV_MIN)
	$(BIN)/python -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --no-deps $(MIN_VERSIONS)
	$(BIN)/python -c 'import sysconfig; print("import site; site.addsitedir(%r)" % sysconfig.get_paths()["purelib"])' \
		> "$$($(VENV_MIN)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/dfbench-shared.pth"
	touch $@

# The provisioning path at those versions: tests/test_versions.py only (a provision, a plan, a
# teardown and the bucket's tagging fallbacks), about half a minute.
test-min-versions: $(VENV_MIN)/.installed
	PYTHONPATH=src $(VENV_MIN)/bin/python -m pytest -q -p no:cacheprovider tests/test_versions.py

# TPC-H on this machine: generates the dataset if missing, starts the local worker, runs the
# queries, prints a table and the comparison with the previous run, stops the worker.
# REMOTE=1: on the cluster instead (status → transport → health → tables on s3://<bucket>/ → run →
# .results-remote → comparison), e.g. make bench REMOTE=1 DATASET=tpch_sf10 VIA=ssh.
bench: install
	$(DFBENCH) bench --sf $(SF) --partitions $(PARTITIONS) $(if $(ITERATIONS),--iterations $(ITERATIONS)) \
		$(if $(QUERIES),--queries $(QUERIES)) $(if $(ENGINE),--engine $(ENGINE)) \
		$(if $(ENGINES),--engines $(ENGINES)) \
		$(if $(QUERIES_DIR),--queries-dir $(QUERIES_DIR)) \
		$(if $(URL),--url $(URL) --dataset $(DATASET)) \
		$(if $(REMOTE),--cluster $(CLUSTER) --region $(REGION) --via $(VIA) --dataset $(DATASET) \
			$(if $(PROFILE),--profile $(PROFILE)))

# The way to one worker, held open until Ctrl-C (the CDK tooling's second terminal); a shell on an instance.
tunnel: install
	$(DFBENCH) tunnel --cluster $(CLUSTER) --region $(REGION) --via $(VIA) --instance $(INSTANCE) --port $(PORT) \
		$(if $(PROFILE),--profile $(PROFILE))

health: install
	$(DFBENCH) health --cluster $(CLUSTER) --region $(REGION) --via $(VIA) $(if $(PROFILE),--profile $(PROFILE))

shell: install
	$(DFBENCH) shell --cluster $(CLUSTER) --region $(REGION) --instance $(INSTANCE) \
		$(if $(PROFILE),--profile $(PROFILE))

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

# DataFusion (the local worker) against Spark (local mode) on this machine, TPC-H SF=1 by default.
bench-engines: install spark-tools $(BIN)/.spark-installed
	$(BIN)/python benchmarks/engines_local.py --sf $(SF) $(if $(ITERATIONS),--iterations $(ITERATIONS))

# A/A and --slowdown 0.10 trials of `dfbench ab` and of bench+restart+bench+compare on real local
# workers, TPC-H SF0.1 (about an hour on 2 cores; resumable: trials go to a file in the temp folder).
bench-aa: install
	$(BIN)/python benchmarks/aa_real.py

bench-overhead: install
	$(BIN)/python benchmarks/worker_overhead.py

# make deploy BINARY=target/x86_64-unknown-linux-gnu/release/worker   (or REPO=../datafusion-distributed)
deploy: install
	$(DFBENCH) deploy --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(BINARY),--binary $(BINARY),--build $(REPO)) $(foreach a,$(ARGS),--arg=$(a)) \
		$(if $(FORCE),--force-restart)

logs: install
	$(DFBENCH) logs --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		--lines $(LINES) $(if $(SINCE),--since="$(SINCE)")

# Needs sshd: `make system-tools` installs it as root.
bench-transport: install
	$(BIN)/python benchmarks/transport_overhead.py

bench-connect: install
	$(BIN)/python benchmarks/connect_calls.py

bench-deploy: install
	$(BIN)/python benchmarks/deploy_calls.py

bench-sync: install
	$(BIN)/python benchmarks/sync_vs_awscli.py

bench-startup: install
	$(BIN)/python benchmarks/startup.py

# Generation of TPC-H and TPC-DS at SF 0.1 and 1, and the bundled TPC-DS and ClickBench queries (minutes).
bench-datasets: install
	$(BIN)/python benchmarks/datasets.py

# Local generation + sync against on-cluster generation, both into the emulator; the AWS estimate.
bench-oncluster: install
	$(BIN)/python benchmarks/oncluster_generate.py

# REMOTE=1: on the cluster's instances, straight into its bucket (make data REMOTE=1 SF=100).
data: install
	$(DFBENCH) data generate --sf $(SF) --partitions $(PARTITIONS) $(if $(BENCHMARK),--benchmark $(BENCHMARK)) \
		$(if $(SORTED),--sorted) $(if $(REMOTE),--on-cluster --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)))

pull: install
	$(DFBENCH) data pull $(DATASET) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(BUCKET),--bucket $(BUCKET),--cluster $(CLUSTER))

sync: install
	$(DFBENCH) data sync $(DATASET) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(BUCKET),--bucket $(BUCKET),--cluster $(CLUSTER)) $(if $(DELETE),--delete)

worker: install
	$(DFBENCH) worker --port 9000 --data-dir benchmarks/data

provision: install
	$(DFBENCH) provision $(CLUSTER_ARGS)

plan: install
	$(DFBENCH) plan $(CLUSTER_ARGS)

# Whether provision would succeed and the cluster can be reached, changing nothing.
doctor: install
	$(DFBENCH) doctor $(CLUSTER_ARGS) --via $(VIA)

status: install
	$(DFBENCH) status --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE))

teardown: install
	$(DFBENCH) teardown --cluster $(CLUSTER) --region $(REGION) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(DELETE_BUCKET),--delete-bucket)

clean:
	rm -rf $(VENV) $(VENV_MIN) build src/*.egg-info .pytest_cache
