#!/usr/bin/env bash
# The learning benchmark to convergence (issue 10) on a lent GPU machine, in one device call.
#
# The GPU image has JAX, numpy and scikit-learn but not Keras, and ../shared does not travel,
# so both go along as git-ignored folders:
#   here, once:  bash benchmarks/gpu_check.sh fetch      # Keras wheels into .whl/
#                bash benchmarks/gpu_learning.sh stage   # ../shared/data/ustc-tfc2016 into
#                                                        # runs/device/ (ignored, never committed)
#   there (device tool, carry [".whl", "runs/device"], timeout_s 570):
#                bash benchmarks/gpu_learning.sh [benchmarks.learning flags]
# Runs `python -m benchmarks.learning` for each seed in $SEEDS (default "0 1 2") with the
# convergence recipe (--epochs 30 --schedule cosine --evals 10, or the flags given instead),
# writes $OUT/learning_s<seed>.json and .log as each seed ends (a run cut off by the time limit
# still returns the seeds it finished), and prints each seed's table and mtc_over_best_probe.
# PYTHON (default python3) chooses the interpreter; without a GPU it runs on the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGED=runs/device/ustc-tfc2016

if [ "${1:-}" = "stage" ]; then
  source=${MTC_SHARED_DATA:-../shared/data}/ustc-tfc2016
  [ -d "$source" ] || { echo "!! $source is missing: nothing to stage"; exit 1; }
  mkdir -p runs/device && rm -rf "$STAGED" && cp -r "$source" "$STAGED" && chmod -R u+w "$STAGED"
  echo "== staged $(du -sh "$STAGED" | cut -f1) in $STAGED; carry runs/device and .whl"
  exit 0
fi

PY=${PYTHON:-python3}
OUT=${OUT:-runs/device/out}
mkdir -p "$OUT"
[ -d "$STAGED" ] || { echo "!! $STAGED is missing: run 'bash benchmarks/gpu_learning.sh stage' here first"; exit 2; }

# shellcheck source=benchmarks/device_keras.sh
source benchmarks/device_keras.sh

budget=("$@")
[ ${#budget[@]} -eq 0 ] && budget=(--epochs 30 --schedule cosine --evals 10)
status=0
for seed in ${SEEDS:-0 1 2}; do
  echo "== seed $seed"
  "$PY" -m benchmarks.learning --manual_dir "$STAGED" --seed "$seed" \
    --json "$OUT/learning_s$seed.json" "${budget[@]}" 2>&1 | tee "$OUT/learning_s$seed.log" \
    | grep -E "^\||mtc_over_best_probe|wall seconds|error" || status=1
done
exit $status
