#!/usr/bin/env bash
# Installs the Python binding the way a user does (pip, which runs its build backend: `make lib`)
# into a scratch folder, then runs its pytest suite against the fixture models.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import pytest" 2>/dev/null || python3 -m pip install -q pytest
# numpy: phi4.Llama's logits_processor / stopping_criteria snippets (llama-cpp-python passes numpy arrays)
python3 -c "import numpy" 2>/dev/null || python3 -m pip install -q numpy
rm -rf .build-py
python3 -m pip install -q --no-deps --target .build-py ./bindings/python 2>&1 | grep -v "WARNING: Running pip as the 'root' user" || true
test -f .build-py/phi4/lib/libphi4.so.1
PYTHONPATH="$PWD/.build-py" python3 -m pytest -q -p no:cacheprovider bindings/python/tests
