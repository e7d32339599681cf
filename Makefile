# The two commands of the README: `make demo` and `make test`.
# Each installs the system packages it needs first (apt, sudo when not root).

CARGO ?= cargo

.PHONY: deps demo demo-headless test lint build release-bins bench bench-boot bench-cache bench-switch bench-gap bench-cpu bench-fleet soak

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --bins

# Plays the demo in a window (or headless where there is no display):
# phare-demo runs the phare-player built beside it. DEMO_ARGS: its flags
# (`./target/debug/phare-demo --help`), e.g. DEMO_ARGS="--duration-s 10".
demo: build
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		./target/debug/phare-demo $(DEMO_ARGS); \
	else \
		echo "no display found: running headless"; \
		./target/debug/phare-demo --headless $(DEMO_ARGS); \
	fi

demo-headless: build
	./target/debug/phare-demo --headless $(DEMO_ARGS)

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The end-to-end tests run the player binary, so it is built first.
test: lint build
	$(CARGO) test --workspace

# Benchmarks run in release mode; each writes target/bench/<name>.json.
bench: bench-boot bench-cache bench-switch bench-gap bench-cpu bench-fleet

# Benchmarks spawn the release player binary: build it first.
release-bins: deps
	$(CARGO) build --release --workspace --bins

bench-boot: release-bins
	$(CARGO) bench -p phare-tests --bench boot

# 1 GiB fetched and verified by the player, next to curl + sha256sum.
bench-cache: release-bins
	$(CARGO) bench -p phare-tests --bench cache

bench-switch: release-bins
	$(CARGO) bench -p phare-tests --bench switch

bench-gap: release-bins
	$(CARGO) bench -p phare-tests --bench gap

bench-cpu: release-bins
	$(CARGO) bench -p phare-tests --bench cpu

# 1000 simulated devices (FLEET_DEVICES=10000 for ten thousand) on one
# Mosquitto, their data on a tmpfs (FLEET_DATA_DIR=<dir> for elsewhere).
bench-fleet: release-bins
	$(CARGO) bench -p phare-tests --bench fleet

# A lobby screen's hours, compressed: switches, alerts, broker and origin
# outages, a full disk, clock jumps; fails if memory, file descriptors or
# threads drift. SOAK_HOURS=1 for an hour (default: three minutes). Its
# data directory is a tmpfs of its own: needs root or sudo.
soak: release-bins
	$(CARGO) bench -p phare-tests --bench soak

# Debian packages phare-player and phare for amd64 and arm64 (cross-built),
# in target/debian/; deb-test installs the amd64 ones in a clean bookworm
# chroot, boots it (systemd-nspawn) and checks them (both need root or sudo).
.PHONY: deb deb-test

deb:
	@scripts/build-deb.sh

deb-test: deb
	@scripts/test-deb.sh

# The README's commands, run as written in order (a namespace of their own:
# Debian's Mosquitto, screens from their bundles, an HTTPS origin; root or
# sudo). Blocks that run elsewhere say so in an HTML comment.
.PHONY: readme-test
readme-test: build
	@scripts/readme-test.sh

# The tests of the scripts themselves (no root, nothing installed).
.PHONY: script-test
script-test:
	@scripts/test-apt-ensure.sh

# .ci/run on a clean clone of HEAD in a clean Debian bookworm chroot with
# nothing in it but this machine's Rust toolchain: proves that every step
# installs what it needs (root or sudo; an hour or more; log and wall time
# in target/ci-fresh/).
.PHONY: ci-fresh
ci-fresh:
	@scripts/ci-fresh.sh

# Offline checks of the Yocto layer: crates.inc in sync, oelint-adv, BitBake's
# parser, kas schema (yocto/meta-phare/README.md). Installs its own tools.
.PHONY: yocto-check
yocto-check:
	@yocto/scripts/check.sh

# The Raspberry Pi 3/4 SD-card image (Debian bookworm arm64, with the arm64
# phare-player package) in target/image/, and its boot test: the image in
# QEMU, playing from its cache, then online through a loopback broker
# (images/README.md; both need root or sudo).
.PHONY: image image-test
image: deb
	@images/build.sh

image-test: image
	@images/boot-test.sh
