#!/usr/bin/env bash
# Install what is missing, check formatting and lints, build every stage once, run every test.
# CI runs this (.ci/run); scripts/check.sh is the same.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# One profile for binaries and tests, so the workspace builds once. Release: the end-to-end
# tests push real 1080p frames through real pipes.
PROFILE=(--release)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets "${PROFILE[@]}" -- -D warnings
cargo build --workspace --bins "${PROFILE[@]}"
cargo test --workspace --no-fail-fast "${PROFILE[@]}" -- --test-threads "${SL_TEST_THREADS:-2}"
# the Python package (python/): pytest in a venv under target/, against the binaries built above
scripts/test-python.sh
