#!/usr/bin/env bash
# Install what is missing, build every stage once, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# One profile for binaries and tests, so the workspace builds once. Release: the end-to-end
# tests push real 1080p frames through real pipes.
PROFILE=(--release)
cargo fmt --all -- --check
cargo build --workspace --bins "${PROFILE[@]}"
cargo test --workspace --no-fail-fast "${PROFILE[@]}" -- --test-threads "${SL_TEST_THREADS:-2}"
# the Python package (python/): pytest in a venv under target/, against the binaries built above
scripts/test-python.sh
