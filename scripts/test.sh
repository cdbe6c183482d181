#!/usr/bin/env bash
# Set up .venv with the dev extras and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh dev
exec .venv/bin/python -m pytest "$@"
