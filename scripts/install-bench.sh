#!/usr/bin/env bash
# Benchmark-only dependencies. mlforecast 1.1.0 pins pandas<3, so it goes in with --no-deps beside
# pandas 3, after the few packages it really imports (a plain install would downgrade pandas).
set -euo pipefail
PY="${1:-.venv/bin/python}"
"$PY" -m pip install --quiet -e '.[bench]'
"$PY" -m pip install --quiet --no-deps mlforecast==1.1.0
