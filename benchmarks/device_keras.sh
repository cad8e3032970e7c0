# Sourced by benchmarks/gpu_check.sh and benchmarks/gpu_learning.sh on a lent GPU machine: reports
# the Python, JAX devices and GPU, then makes Keras importable, from the wheels in .whl/ when the
# image lacks it (`bash benchmarks/gpu_check.sh fetch` here puts them there). PY chooses the
# interpreter (default python3); PACKAGES names the wheels for the error message.
PY=${PY:-python3}
echo "== python: $(command -v "$PY") $("$PY" --version 2>&1)"
"$PY" -c 'import jax; print("jax", jax.__version__, jax.devices())' \
  || echo "!! jax failed to import or found no device; the run below will say more"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "(no nvidia-smi)"

if "$PY" -c 'import keras' 2>/dev/null; then
  echo "== keras already installed: $("$PY" -c 'import keras; print(keras.__version__)')"
elif compgen -G ".whl/*.whl" >/dev/null; then
  echo "== installing $(ls .whl) into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "!! wheel install failed"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "!! keras is missing and .whl/ holds no wheels: run 'bash benchmarks/gpu_check.sh fetch'"
  echo "!! here first (needs: ${PACKAGES:-keras, namex, optree}) and carry .whl"
  exit 2
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
