"""Data-parallel scaling: training samples/s of the ISCX MTC on 1 and on 2 devices, one run.

    python -m benchmarks.scaling [--batch 32] [--warmup 1] [--steps 3] [--small]

Each device count runs in its own process, one after the other (JAX fixes its devices when it
starts): on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N splits the host into N
virtual devices; on a GPU machine, CUDA_VISIBLE_DEVICES keeps the first N GPUs. The 1-device
run trains without a distribution (what a plain run does); the 2-device run uses
``configure_distribution("data_parallel")``. Both train the same model at the same *global*
batch through tf.data and model.fit (the experiment scripts' path), and time ``steps``
optimizer steps after ``warmup`` steps (the first one compiles).

The last line is ``scaling_2dev=<2-device samples/s / 1-device samples/s>``: 2.0 is linear. On
a CPU both "devices" share the host's cores, so there 1.0 means the sharding costs nothing; more
than 1.0 means one XLA CPU device leaves cores idle that a second one puts to work ("cores
busy" is the process's CPU time over the wall time of the timed steps).
--small uses the small MTC of mtc_keras.testing (seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RESULT = "RESULT "


def _worker(args) -> dict:
    from mtc_keras import distribution, models, training  # first: sets KERAS_BACKEND=jax

    import jax
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")  # tf.data only; JAX owns the accelerators
    strategy = "data_parallel" if args.devices > 1 else "none"
    distribution.configure_distribution(strategy, batch_size=args.batch)
    if args.small:
        from mtc_keras.testing import SMALL_MTC as overrides
    else:
        overrides = {}
    keras.utils.set_random_seed(0)
    model = models.build_model("mtc", "iscx", **overrides)
    training.compile_model(model, jit_compile=True)
    config = models.default_config("mtc", "iscx") | overrides
    rng = np.random.default_rng(0)
    n = 4 * args.batch  # a few distinct batches, cycled: the input pipeline is not measured
    packets = rng.integers(0, 256, (n, config["seq_len"]), dtype=np.uint8)
    labels = {t: rng.integers(0, k, n).astype(np.int32) for t, k in config["num_classes"].items()}
    dataset = (tf.data.Dataset.from_tensor_slices((packets, labels))
               .batch(args.batch, drop_remainder=True).cache().repeat().prefetch(2))

    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.warmup, verbose=0)
    warm = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    history = model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"devices": len(jax.devices()), "device": str(jax.devices()[0]),
            "sharded_over": len(model.trainable_variables[0].value.sharding.device_set),
            "warmup_s": warm, "timed_s": elapsed, "samples_per_s": args.steps * args.batch / elapsed,
            "cores_busy": cpu / elapsed,
            "loss": float(history.history["loss"][-1])}


def _run(args, devices: int) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
    visible = env.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(devices)]
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[:devices])
    command = [sys.executable, "-m", "benchmarks.scaling", "--worker", "--devices", str(devices),
               "--batch", str(args.batch), "--warmup", str(args.warmup),
               "--steps", str(args.steps)] + (["--small"] if args.small else [])
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        sys.exit(f"{devices}-device run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT):])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="global batch (even)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="small MTC instead of full size")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(RESULT + json.dumps(_worker(args)), flush=True)
        return
    if args.batch % 2:
        parser.error("--batch must be even: the 2-device run splits it in two")

    model = "small MTC" if args.small else "full-size MTC (ISCX, 1500-byte packets)"
    print(f"{model}, global batch {args.batch}, {args.warmup} warm-up + {args.steps} timed steps")
    results = {}
    for devices in (1, 2):
        r = results[devices] = _run(args, devices)
        print(f"{devices} device(s) [{r['device']}, variables on {r['sharded_over']}]: "
              f"{r['samples_per_s']:.2f} samples/s, {r['cores_busy']:.2f} cores busy "
              f"(warm-up {r['warmup_s']:.1f} s, "
              f"last loss {r['loss']:.4f})", flush=True)
    if results[2]["sharded_over"] != 2:
        sys.exit(f"the 2-device run saw {results[2]['devices']} device(s)")
    print(f"scaling_2dev={results[2]['samples_per_s'] / results[1]['samples_per_s']:.3f}")


if __name__ == "__main__":
    main()
