#!/usr/bin/env bash
# What to run before committing: formatting, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
scripts/test.sh
