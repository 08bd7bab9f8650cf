#!/usr/bin/env bash
# What to run before committing: formatting, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# clippy compiles against FFmpeg and the rest: install what is missing first (quick when done)
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
scripts/test.sh
