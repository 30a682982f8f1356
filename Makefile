# xcept: make setup | build | test | demo | bench | bench-real | fixtures | clean
# Both `make test` and `make demo` run `setup` first, so a fresh clone needs
# nothing else. TF_ROOT=DIR builds against another libtensorflow (an official
# tarball, or a GPU wheel's tensorflow/ folder): see README.md.

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
VPY         := $(CURDIR)/$(VENV)/bin/python
GO          ?= go
TF_ROOT     ?=
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X github.com/xcept/xcept/internal/pyenv.DefaultPython=$(VPY) -X main.version=$(VERSION)
GOTESTFLAGS ?= -timeout 75m

.PHONY: setup venv link-tf build test vet demo bench bench-real clean fixtures

setup: venv link-tf

# The venv is rebuilt only when the pins change.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $@

link-tf: venv
	scripts/link_libtensorflow.sh "$(TF_ROOT)" "$(VPY)"

build: setup
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/xcept ./cmd/xcept
	@echo "built bin/xcept"

vet: setup
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	$(GO) vet ./...

# MLflow for the tracking tests, in a venv of its own (its pins conflict with
# TensorFlow's); rebuilt only when requirements-mlflow.txt changes.
MLFLOW_VENV := .venv-mlflow
.PHONY: mlflow-venv
mlflow-venv: $(MLFLOW_VENV)/.installed
$(MLFLOW_VENV)/.installed: requirements-mlflow.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-mlflow.txt
	touch $@

# Regenerates the gRPC code of xcept serve from internal/serve/grpcapi/proto.
.PHONY: proto
proto:
	scripts/gen_proto.sh

# MediaPipe in a venv of its own (numpy<2, protobuf<5 conflict with TensorFlow's):
# xcept export --format tflite writes TFLite Model Metadata with its writer, and
# the MediaPipe test runs its ImageClassifier. Rebuilt only when the pins change.
MEDIAPIPE_VENV := .venv-mediapipe
.PHONY: mediapipe-venv
mediapipe-venv: $(MEDIAPIPE_VENV)/.installed
$(MEDIAPIPE_VENV)/.installed: requirements-mediapipe.txt
	$(PYTHON) -m venv $(MEDIAPIPE_VENV)
	$(MEDIAPIPE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1
	$(MEDIAPIPE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-mediapipe.txt
	touch $@

# Real Keras Xception ImageNet weights as an offline test fixture, cached in
# $XCEPT_CACHE/fixtures (default ~/.cache/xcept/fixtures; make clean keeps it).
fixtures: venv
	scripts/fixtures/fetch.sh "$(VPY)"

# XCEPT_TEST_STRICT=1: a test whose prerequisite (libtensorflow, the venv)
# is missing fails instead of skipping, so this target cannot pass by skipping.
# The builder's pytest runs beside go test (cmd/xcept alone keeps about one
# of two cores busy); its output is held back and printed after go test's, so
# each runner's closing line stays its own. Either one failing fails the target.
test: build vet fixtures mlflow-venv mediapipe-venv
	@log=$$(mktemp); \
	XCEPT_TEST_STRICT=1 TF_USE_LEGACY_KERAS=1 $(VPY) -m pytest -q scripts >$$log 2>&1 & py=$$!; trap 'kill $$py 2>/dev/null' INT TERM; \
	XCEPT_TEST_STRICT=1 $(GO) test $(GOTESTFLAGS) ./...; go=$$?; \
	wait $$py; pyrc=$$?; cat $$log; rm -f $$log; \
	[ $$go = 0 ] && [ $$pyrc = 0 ]

demo: build
	scripts/demo.sh

bench: build
	scripts/bench.sh

# xcept on real labelled images (Fashion-MNIST from Debian's dataset-fashion-mnist,
# scikit-learn's digits) with the real ImageNet weights, against the Keras recipe
# and an SVC on raw pixels; each contender cached in bench/real (see the script).
bench-real: build fixtures
	scripts/bench_real.sh

# xcept audit on real labelled images with flipped labels and planted
# near-duplicate copies: precision, recall, cleanlab agreement, threshold grid.
.PHONY: bench-audit
bench-audit: build fixtures
	scripts/audit/bench_audit.sh

# xcept predict on TensorFlow and onnxruntime against onnxruntime's own
# figure (not part of make test): BENCH_SIZE=299 BENCH_M=32 make bench-engines
.PHONY: bench-engines
bench-engines: build
	scripts/bench_engines.sh

# A bounded load test of xcept serve on loopback (not part of make test):
# CLIENTS=8 SECONDS_EACH=20 SIZE=299 IMAGES=1 WORKERS=1 make loadtest
.PHONY: loadtest
loadtest: build
	scripts/loadtest.sh

clean:
	rm -rf bin demo .tf $(VENV) $(MLFLOW_VENV) $(MEDIAPIPE_VENV)
