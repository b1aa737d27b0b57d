#!/usr/bin/env bash
# Shared launcher of dist_train.sh / dist_test.sh: torchrun through the project's
# interpreter, so that it works without activating the virtual environment.
#   bash tools/dist_launch.sh SCRIPT NUM_PROCS [script arguments...]
# The interpreter: $PYTHON if set, else .venv/bin/python when it exists, else python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT=$1
NPROC=$2
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" "$SCRIPT" "${@:3}" --launcher pytorch
