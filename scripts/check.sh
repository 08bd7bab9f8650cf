#!/usr/bin/env bash
# What to run before committing, and what CI runs: formatting, clippy -D warnings, every test.
# scripts/test.sh does all of it (installing what is missing first).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/test.sh "$@"
