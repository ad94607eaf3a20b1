# vaultkeeper — build, test, demo and benchmark entry points.
#
#   make demo    install what is missing, build, run a simulated sealed Vault and vaultkeeper
#                in the foreground against it (Ctrl-C stops both)
#   make test    everything: unit, libcurl/libsystemd integration, simulator fidelity (hvac),
#                daemon integration tests against the simulator
#   make bench   benchmarks, written to docs/benchmarks.md

SWIFT      ?= swift
PYTHON     ?= python3
BIN_DEBUG   = .build/debug/vaultkeeper
BIN_RELEASE = .build/release/vaultkeeper

.PHONY: all build release deps test test-swift test-simulator test-integration demo bench clean

all: build

deps:
	@scripts/install-deps.sh

build:
	$(SWIFT) build --product vaultkeeper

release:
	$(SWIFT) build -c release --static-swift-stdlib --product vaultkeeper

test: deps
	$(SWIFT) build --build-tests
	$(MAKE) test-simulator
	$(MAKE) test-integration
	$(MAKE) test-swift

test-swift:
	$(SWIFT) test --skip-build

test-simulator:
	$(PYTHON) -m pytest -q Tests/Simulator

test-integration:
	VAULTKEEPER_BIN=$(CURDIR)/$(BIN_DEBUG) $(PYTHON) -m pytest -q Tests/IntegrationTests

demo: deps build
	@scripts/demo.sh $(BIN_DEBUG)

bench: deps release
	$(PYTHON) scripts/bench.py --binary $(BIN_RELEASE) --output docs/benchmarks.md

clean:
	rm -rf .build
