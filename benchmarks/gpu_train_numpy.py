"""Train the full ISCX MTC from numpy arrays for a fixed number of steps; print samples/s.

    python -m benchmarks.gpu_train_numpy [--batch 128] [--steps 60]

Needs only JAX, Keras and numpy (no TensorFlow): it is what ``benchmarks/gpu_check.sh`` runs on
a lent GPU machine. The data are random packets with random labels (some missing), so the
number measures throughput, not accuracy. The first epoch compiles and warms up; the second,
timed, epoch runs ``steps`` optimizer steps through ``model.fit``. Without a GPU it falls back
to a short CPU run and says so.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)

    import jax
    import numpy as np

    devices = jax.devices()
    platform = devices[0].platform
    print(f"jax {jax.__version__}, devices: {devices}", flush=True)
    steps = args.steps
    if platform == "cpu":
        steps = min(steps, 3)
        print(f"no accelerator found: falling back to {steps} steps on the CPU", flush=True)

    import keras

    from mtc_keras import models, training

    print(f"keras {keras.__version__} ({keras.backend.backend()} backend)", flush=True)
    model = models.build_model("mtc", "iscx")
    training.compile_model(model, jit_compile=True)
    counts = models.count_parameters(model)
    print(f"ISCX MTC parameters: {counts}", flush=True)

    rng = np.random.default_rng(0)
    n = args.batch * steps
    packets = rng.integers(0, 256, (n, 1500), dtype=np.uint8)
    labels = {task: rng.integers(0, k, n).astype(np.int32)
              for task, k in models.default_config("mtc", "iscx")["num_classes"].items()}
    labels["traffic"][::10] = -1
    labels["aux"][::10] = -1

    start = time.perf_counter()
    model.fit(packets[: 2 * args.batch], {t: v[: 2 * args.batch] for t, v in labels.items()},
              batch_size=args.batch, epochs=1, verbose=0)
    print(f"compile + 2 warm-up steps: {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    history = model.fit(packets, labels, batch_size=args.batch, epochs=1, verbose=0,
                        shuffle=False)
    elapsed = time.perf_counter() - start
    loss = history.history["loss"][-1]
    if not np.isfinite(loss):
        raise SystemExit(f"training loss is not finite: {loss}")
    print(f"loss after {steps} steps: {loss:.4f}")
    print(f"device: {devices[0].device_kind} ({platform})")
    print(f"{steps} steps of batch {args.batch} in {elapsed:.2f} s")
    print(f"samples_per_s={n / elapsed:.1f}")


if __name__ == "__main__":
    main()
