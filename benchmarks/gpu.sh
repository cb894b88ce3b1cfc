#!/usr/bin/env bash
# GPU benchmark: CIFAR ResNet-44 at global batch 4096, synthetic data, one table in < 5 min.
# Run from the repository root on a machine with a GPU and the project installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec timeout 300 "$PY" benchmarks/gpu_resnet.py "$@"
