#!/usr/bin/env bash
# Installs the Matrix homeserver the tests run (tests/src/matrix.rs): matrix-synapse from PyPI,
# into a virtualenv at .cache/synapse (ignored by git). Does nothing when it is already there.
#
# Needs python3 (3.10 or newer) with venv and ensurepip; Debian's python3 has them only with the
# python3-venv package. Only binary wheels are installed (every dependency publishes manylinux
# wheels for CPython 3.11), so no compiler or Rust toolchain is needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# The pinned release: bump it here, and the next run reinstalls.
version=1.163.2
venv=.cache/synapse

installed() {
  "$venv/bin/python" -c "import importlib.metadata as m, sys, synapse; sys.exit(m.version('matrix-synapse') != '$version')" 2>/dev/null
}
if installed; then
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "tests/matrix/install.sh needs python3 with venv and ensurepip (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: "matrix-synapse==$version"
installed || { echo "matrix-synapse $version did not install into $venv" >&2; exit 1; }
echo "matrix-synapse $version installed into $venv"
