#!/usr/bin/env bash
# The Python package as a user gets it: `pip install ./python` into a virtual environment that
# sees Debian's NumPy, pytest, cffi and numba (scripts/bootstrap.sh installs them), then its
# pytest suite. usage: run.sh VENV SOURCE_DIR
set -eu
venv=$1 src=$2
py=/usr/bin/python3
[ -x "$py" ] || py=python3
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv --system-site-packages "$venv"
fi
# The build backend comes from the Python package registry (Debian 12 does not package it).
if ! "$venv/bin/python" -c 'import scikit_build_core' 2>/dev/null; then
  "$venv/bin/pip" install -q "scikit-build-core>=0.8"
fi
"$venv/bin/pip" install -q --no-build-isolation --no-deps --force-reinstall "$src/python"
cd "$src/python"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests
