# ChurnGrid — everything a fresh Debian machine needs is installed by these targets.
#   make demo   run the main job (see README)
#   make test   install what the tests need, build, run every test
#   make bench  tree-engine benchmark against XGBoost / LightGBM (same run, same machine)
#   make fuzz   each libFuzzer target for FUZZ_SECONDS (default 60); make fuzz-smoke: 20 s each

SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)
PYTHON ?= python3
SWIFT_BUILD_FLAGS ?=

.PHONY: all build release test test-deps deps demo bench fuzz fuzz-build fuzz-smoke clean

all: build

# Debian packages: the C libraries the package links against and the PostgreSQL server that
# the tests and the demo run privately (Deploy/local/pg.sh).
DEBIAN_PACKAGES := pkg-config libpq-dev libzmq3-dev postgresql postgresql-client

deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Tools Deploy/check.sh runs (DeployTests): systemd-analyze, docker-compose (config only: no
# container engine is needed; without recommends, so docker.io is not pulled in), yamllint,
# promtool, shellcheck.
DEPLOY_PACKAGES := systemd docker-compose yamllint prometheus shellcheck
# Headless Chromium and its WebDriver for the dashboard test (DashboardTests, with selenium).
DEPLOY_PACKAGES += chromium chromium-driver curl openssl

# Python packages the parity tests and the benchmark use as references (never at run time), and
# kubernetes-validate (offline Kubernetes schemas) for Deploy/check.sh, scikit-uplift for the uplift metrics,
# Evidently for the drift (PSI) comparison (its 0.7 series imports only with pandas 2).
test-deps: deps
	@missing=""; for p in $(DEPLOY_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(PYTHON) -c "import kubernetes_validate" 2>/dev/null || $(PYTHON) -m pip install -q kubernetes-validate
	@$(PYTHON) -c "import openapi_spec_validator" 2>/dev/null || $(PYTHON) -m pip install -q openapi-spec-validator
	@$(PYTHON) -c "import selenium" 2>/dev/null || $(PYTHON) -m pip install -q selenium
	@$(PYTHON) -c "import numpy" 2>/dev/null || $(PYTHON) -m pip install -q numpy
	@$(PYTHON) -c "import xgboost" 2>/dev/null || $(PYTHON) -m pip install -q xgboost-cpu
	@$(PYTHON) -c "import lightgbm" 2>/dev/null || $(PYTHON) -m pip install -q lightgbm
	@$(PYTHON) -c "import sklift" 2>/dev/null || $(PYTHON) -m pip install -q scikit-uplift
	@$(PYTHON) -c "import evidently" 2>/dev/null || $(PYTHON) -m pip install -q "evidently>=0.7,<0.8" "pandas<3"
	@$(PYTHON) -c "import xgboost, lightgbm; print('references: xgboost', xgboost.__version__, '/ lightgbm', lightgbm.__version__)"

build: deps
	swift build $(SWIFT_BUILD_FLAGS)

release: deps
	swift build -c release $(SWIFT_BUILD_FLAGS)

# The tests start a private PostgreSQL under .churngrid/pg-test; it is stopped afterwards
# whatever the outcome. tools/run_tests.py runs them with line-buffered output under a time limit
# (TEST_TIME_LIMIT seconds): a test that hangs fails the run, naming the tests still running and
# showing the test process's threads, instead of running into CI's limit.
TEST_TIME_LIMIT ?= 2400
test: test-deps
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	@rc=0; $(PYTHON) tools/run_tests.py --limit $(TEST_TIME_LIMIT) -- $(SWIFT_BUILD_FLAGS) || rc=$$?; \
	  bash Deploy/local/pg.sh stop .churngrid/pg-test || true; exit $$rc

# The main job: a local cluster (coordinator + 2 workers) rescoring a synthetic base into a private
# PostgreSQL (Deploy/local/demo.sh; SUBSCRIBERS=N, WORKERS=W, KEEP_RUNNING=1).
demo: release
	@bash Deploy/local/demo.sh

# lleaves (LLVM-compiled LightGBM models) is one more reference of the tree-engine benchmark, not
# needed by the tests; if it cannot be installed the benchmark runs without it and says so.
bench: test-deps release
	@$(PYTHON) -c "import lleaves" 2>/dev/null || $(PYTHON) -m pip install -q lleaves llvmlite==0.44.0 \
	  || echo "lleaves could not be installed: the tree-engine benchmark runs without its lleaves reference"
	$(PYTHON) Benchmarks/tree-engine/bench.py
	bash Benchmarks/rpc/run.sh

# Fuzzing (docs/fuzzing.md): the decoders and loaders under libFuzzer and AddressSanitizer. Fuzz/ is
# a package of its own (the main package keeps one executable), built into .build-fuzz.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_TARGETS ?= wire frame xgboost lightgbm csv schema

fuzz-build: deps
	swift build -c release --package-path Fuzz --scratch-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library

fuzz: fuzz-build
	bash Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	bash Fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf .build .build-fuzz .build-fuzzwork .churngrid
