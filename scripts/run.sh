#!/usr/bin/env bash
# Set up .venv and start the bot (migrations run at start). Extra arguments go to `python -m bot`,
# e.g. `bash scripts/run.sh validate stories/`. Configuration comes from the environment or .env.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
if [ "$#" -eq 0 ]; then set -- run; fi
exec .venv/bin/python -m bot "$@"
