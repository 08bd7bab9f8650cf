#!/usr/bin/env bash
# Installs moq-relay (the Media over QUIC relay, github.com/moq-dev/moq) at a pinned version,
# once per machine, into a cache directory that survives clean clones:
#   ${STREAMLIB_CACHE:-$HOME/.cache/streamlib}/moq-relay-0.17.10/bin/moq-relay
# Quick when already installed. The first build compiles ~300 crates plus aws-lc (C):
# see docs/moq.md for the measured time. The tests (tests/tests/sl_moq.rs) look for the
# binary at the same path, or at $MOQ_RELAY.
set -euo pipefail

VERSION=0.17.10
ROOT="${STREAMLIB_CACHE:-$HOME/.cache/streamlib}/moq-relay-$VERSION"
BIN="$ROOT/bin/moq-relay"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
    exit 0
fi

command -v cargo >/dev/null || { echo "moq-relay.sh: cargo is needed to build moq-relay $VERSION" >&2; exit 1; }
mkdir -p "$ROOT"
echo "moq-relay.sh: building moq-relay $VERSION into $ROOT (first time only, see docs/moq.md)" >&2
start=$(date +%s)

# A lean profile: no LTO, many codegen units, opt-level 1, no debug info. The relay only
# forwards bytes, so this costs little at run time and saves much of the build.
# Features: only the noq QUIC backend (drops iroh, mDNS clustering, WebSocket and UDS).
# `--locked` fails (its lock file wants a webpki-roots version crates.io lacks); the
# version itself is pinned with `=`.
# The build directory is kept until success so an interrupted build resumes.
env CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_INCREMENTAL=false \
    CARGO_PROFILE_RELEASE_STRIP=true \
    cargo install moq-relay --version "=$VERSION" --root "$ROOT" \
        --target-dir "$ROOT/build" --no-default-features --features noq

rm -rf "$ROOT/build"
"$BIN" --version >/dev/null
echo "moq-relay.sh: moq-relay $VERSION built in $(( $(date +%s) - start ))s" >&2
