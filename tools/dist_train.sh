#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options...]
# CPU-only machines use the gloo backend automatically.
set -euo pipefail
exec bash "$(dirname "$0")/dist_launch.sh" "$(dirname "$0")/train.py" "$2" "$1" "${@:3}"
