#!/usr/bin/env bash
# Install the browser test's npm packages (playwright-core, hls.js; exact versions from
# tests/browser/package-lock.json) into tests/browser/node_modules. Idempotent: a second run
# only checks. Never downloads a browser: the test drives Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/../tests/browser"
if ! command -v npm >/dev/null 2>&1; then
  echo "setup-browser: npm is missing: run scripts/setup.sh (it installs nodejs and npm)" >&2
  exit 1
fi
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.sl-installed-lock; then
  exit 0
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json node_modules/.sl-installed-lock
