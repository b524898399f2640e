# swift-csi: the two commands the README opens with, and the tools behind them.
SWIFT ?= swift
PYTHON ?= python3

.PHONY: demo test example vm-test deps build release images registrar-release-test bench-memory bench-memory-h2 linker-order swift-test py-test generate check-generated fuzz fuzz-deflate bench bench-deflate bench-lvm bench-lvm-vm clean

## Run the main job on its embedded default: registration, then a real LVM volume's life (thin
## volume, snapshot, restore, online growth) through the driver's socket; in Tests/VM/vm when this
## kernel has no device-mapper. DEMO=loopfile: the loop-file backend on this machine instead.
demo:
	bash scripts/demo.sh $(if $(DEMO),--$(DEMO))

## Run every test (installs what it needs first), the LVM path on a real kernel (vm-test) included.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(MAKE) py-test
	$(MAKE) registrar-release-test
	$(MAKE) example
	$(MAKE) vm-test

## The example driver (Examples/HostPathDriver, its own package) built against this working tree,
## then driven over its socket: create, stage, publish, write, unpublish, delete (root: bind mounts).
example: deps
	cd Examples/HostPathDriver && SWIFT_CSI_PATH=$(CURDIR) $(SWIFT) build
	$(PYTHON) -m pytest -q Examples/HostPathDriver/Tests

## The LVM path on Debian's kernel under qemu: Tests/VM/lvm without and with udev, and the
## conformance suite's LVM cases (Tests/VM/README.md). Sets the VM up on first use.
vm-test: deps
	$(SWIFT) build --product csi-lvm-driver
	bash Tests/VM/run-lvm-suite

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build

## Release binaries for deployment, Swift runtime linked in, the registrar a static PIE (docs/PERFORMANCE.md, "Memory").
release: deps
	SWIFT=$(SWIFT) bash scripts/build-release.sh --product csi-lvm-driver
	SWIFT=$(SWIFT) bash scripts/build-release.sh --product node-driver-registrar

## Container images of both release executables (deploy/images/), tagged as deploy/kubernetes names them;
## CONTAINER=podman or buildah for another builder. Debug information is left out of the copies.
IMAGE_VERSION ?= 0.1.0
CONTAINER ?= docker
images: release
	for p in csi-lvm-driver node-driver-registrar; do \
		rm -rf .build/images/$$p && mkdir -p .build/images/$$p && \
		strip --strip-debug -o .build/images/$$p/$$p .build/release/$$p && \
		$(CONTAINER) build -f deploy/images/$$p.Containerfile -t swift-csi/$$p:$(IMAGE_VERSION) .build/images/$$p || exit 1; done

## The registrar as `make release` ships it, a static PIE (scripts/build-release.sh): its end-to-end
## tests against that build (the driver from the debug build), and runs in a root holding nothing else.
registrar-release-test: deps
	SWIFT=$(SWIFT) bash scripts/build-release.sh --product node-driver-registrar
	SWIFT_CSI_REGISTRAR_BIN=$(CURDIR)/.build/release/node-driver-registrar $(PYTHON) -m pytest -q \
		Tests/E2E/test_static_registrar.py Tests/E2E/test_registrar_e2e.py Tests/E2E/test_registrar_metrics.py

## Idle memory of the release binaries (root for the LVM case).
bench-memory: release
	$(PYTHON) Benchmarks/Memory/measure.py

## Regenerate Linker/order.txt (the function order of release executables) from release builds of
## the bench server, the driver and the registrar run under callgrind (valgrind, h2load). The
## binaries are removed afterwards: the linker does not know the list is an input.
## The build plan is made anew: the one SwiftPM keeps there missed source files added to the main package.
linker-order: deps
	rm -f Benchmarks/.build-static/release.yaml
	cd Benchmarks && for p in rpc-bench-server csi-lvm-driver node-driver-registrar; do \
		SWIFT=$(SWIFT) bash ../scripts/build-release.sh --scratch-path .build-static --product $$p || exit 1; done
	$(PYTHON) Benchmarks/Memory/order.py Benchmarks/.build-static/release
	cd Benchmarks/.build-static/release && rm -f rpc-bench-server csi-lvm-driver node-driver-registrar

## The H2 benchmark server's RSS at start, after one call and after a burst, per mapping.
bench-memory-h2: deps
	cd Benchmarks && $(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static --product rpc-bench-server
	$(PYTHON) Benchmarks/Memory/measure.py --only h2 --h2-server Benchmarks/.build-static/release/rpc-bench-server

py-test:
	@if ls Tests/Interop/test_*.py Tests/E2E/test_*.py >/dev/null 2>&1; then \
		$(PYTHON) -m pytest -q Tests/Interop Tests/E2E; \
	else echo "py-test: no Python tests yet"; fi

## Regenerate the committed Swift sources from Sources/CSI/Protos with Debian's protoc.
generate: deps
	bash scripts/generate.sh

check-generated: deps
	bash scripts/generate.sh --check

## Measure the gRPC stack and the codec beside their peers in one run (docs/PERFORMANCE.md).
bench:
	bash Benchmarks/run.sh

## LVM latency: in-process liblvm2cmd vs the lvm executable, cached vs uncached reads (root).
bench-lvm: deps
	bash Benchmarks/LVM/run.sh

## A volume's create → stage → publish → delete through csi-lvm-driver in Tests/VM/vm: in-process
## liblvm2cmd against every LVM command as an `lvm` process, interleaved (root; ~5 min under TCG).
bench-lvm-vm: deps
	bash Benchmarks/LVM/vm-cycle.sh

## Fuzz the ProtoWire decoders with libFuzzer (FUZZ_SECONDS, default 60).
fuzz:
	bash Tests/Fuzz/run.sh $${FUZZ_SECONDS:-60}

## Fuzz H2's gzip/deflate message decompression (over zlib) with libFuzzer (FUZZ_SECONDS, default 60).
fuzz-deflate:
	bash Tests/Fuzz/run-deflate.sh $${FUZZ_SECONDS:-60}

## H2's gzip/deflate compression beside Python's zlib, and beside another build of
## deflate-bench with BASELINE=PATH: speed and ratio at levels 1 and 6 (docs/PERFORMANCE.md, "Message compression").
bench-deflate:
	$(PYTHON) Benchmarks/Deflate/bench.py $(if $(BASELINE),--baseline $(BASELINE))

clean:
	rm -rf .build .build-* Examples/HostPathDriver/.build
