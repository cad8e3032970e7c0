#!/usr/bin/env bash
# Full ISCX MTC training throughput on a lent GPU machine, from numpy arrays (no TensorFlow).
#
# The GPU image has JAX (and numpy, h5py, ml-dtypes, rich, absl-py, packaging) but not Keras,
# so Keras and its missing pure dependencies travel as wheels in .whl/ (git-ignored):
#   here, once:          bash benchmarks/gpu_check.sh fetch
#   there (device tool): bash benchmarks/gpu_check.sh        with carry [".whl"]
# Versions come from constraints.txt. Runs in well under 5 minutes; prints the devices,
# the parameter count, samples/s and, last, samples_per_s=<value>.
set -uo pipefail
cd "$(dirname "$0")/.."

PACKAGES=$(grep -E '^(keras|namex|optree)==' constraints.txt | tr '\n' ' ')

if [ "${1:-}" = "fetch" ]; then
  PY=${PYTHON:-.venv/bin/python}
  mkdir -p .whl
  # Python 3.12 manylinux wheels, the GPU image's Python (see the device tool's KINDS.md).
  # shellcheck disable=SC2086
  exec "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl $PACKAGES
fi

PY=python3
# shellcheck source=benchmarks/device_keras.sh
source benchmarks/device_keras.sh

timeout 270 python3 -m benchmarks.gpu_train_numpy "$@"
status=$?
[ $status -eq 124 ] && echo "!! timed out after 270 s"
exit $status
