# The two commands of the README: `make demo` and `make test`.
# Each installs the system packages it needs first (apt, sudo when not root).

CARGO ?= cargo

.PHONY: deps demo demo-headless test lint build release-bins bench bench-boot bench-cache bench-switch bench-gap bench-cpu

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --bins

# Plays the demo in a window (or headless where there is no display).
demo: build
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		./target/debug/phare demo $(DEMO_ARGS); \
	else \
		echo "no display found: running headless"; \
		./target/debug/phare demo --headless $(DEMO_ARGS); \
	fi

demo-headless: build
	./target/debug/phare demo --headless $(DEMO_ARGS)

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The end-to-end tests run the player binary, so it is built first.
test: lint build
	$(CARGO) test --workspace

# Benchmarks run in release mode; each writes target/bench/<name>.json.
bench: bench-boot bench-cache bench-switch bench-gap bench-cpu

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
