# nimbus: two commands on a fresh machine.
#   make run   installs what is needed, builds nimbus and its default image, and serves on :4566
#   make test  installs what is needed and runs every test

CARGO ?= cargo
# Rust and cargo-nextest live in ~/.cargo/bin (install-deps.sh builds nextest there if missing).
export PATH := $(HOME)/.cargo/bin:$(PATH)
DATA_DIR ?= $(HOME)/.local/share/nimbus

.PHONY: run test deps build build-release lint bench

deps:
	bash scripts/install-deps.sh

build-release: deps
	$(CARGO) build --release --bin nimbus

run: build-release
	./target/release/nimbus image build --data-dir $(DATA_DIR)
	./target/release/nimbus serve --data-dir $(DATA_DIR)

build: deps
	$(CARGO) build --workspace --all-targets

test: build
	$(CARGO) nextest run --workspace --no-fail-fast
	python3 -m pytest -v -x --durations=20 tests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: build-release
	bash bench/api/run.sh
	bash bench/blockstore/run.sh
	bash bench/launch/run.sh
