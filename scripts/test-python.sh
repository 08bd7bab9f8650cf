#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest). Installs what they need, idempotently and
# quickly when it is already there: a virtual environment under target/ (so nothing touches
# the system's Python), numpy, pytest, and the package itself (editable, from ./python).
# The round-trip tests run the Rust stages in target/release: scripts/test.sh builds them
# first. Extra arguments go to pytest (e.g. `scripts/test-python.sh -k golden`);
# `--install-only` installs and prints the environment's python (for scripts/bench-python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
venv="${SL_PYTHON_VENV:-$repo/target/python-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  command -v "$python" >/dev/null || { echo "test-python: $python is missing: run scripts/setup.sh" >&2; exit 1; }
  echo "test-python: creating $venv" >&2
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    echo "test-python: \`$python -m venv\` failed: run scripts/setup.sh (it installs python3-venv)" >&2
    exit 1
  fi
fi
# numpy, pytest and this checkout's package importable: nothing to do (about 0.2 s)
if ! "$venv/bin/python" - "$repo/python/streamlib" <<'PY' 2>/dev/null; then
import os, sys
import numpy, pytest, streamlib
sys.exit(os.path.dirname(os.path.realpath(streamlib.__file__)) != os.path.realpath(sys.argv[1]))
PY
  echo "test-python: installing numpy, pytest and ./python into $venv" >&2
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  "$venv/bin/python" -m pip install -q "numpy>=1.20" "pytest>=7" "setuptools>=64" wheel >&2
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e ./python >&2
fi

if [ "${1:-}" = --install-only ]; then
  echo "$venv/bin/python"
  exit 0
fi
exec "$venv/bin/python" -m pytest python/tests -q -p no:cacheprovider "$@"
