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

echo "== python: $(command -v python3) $(python3 --version 2>&1)"
python3 -c 'import jax; print("jax", jax.__version__, jax.devices())' \
  || echo "!! jax failed to import or found no device; the run below will say more"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "(no nvidia-smi)"

if python3 -c 'import keras' 2>/dev/null; then
  echo "== keras already installed: $(python3 -c 'import keras; print(keras.__version__)')"
elif compgen -G ".whl/*.whl" >/dev/null; then
  echo "== installing $(ls .whl) into /tmp/site"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "!! wheel install failed"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "!! keras is missing and .whl/ holds no wheels: run 'bash benchmarks/gpu_check.sh fetch'"
  echo "!! here first (needs: $PACKAGES) and carry .whl"
  exit 2
fi

export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
timeout 270 python3 -m benchmarks.gpu_train_numpy "$@"
status=$?
[ $status -eq 124 ] && echo "!! timed out after 270 s"
exit $status
