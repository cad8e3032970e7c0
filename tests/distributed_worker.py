"""One small MTC training run for tests/test_distribution.py, in a process of its own.

The number of (virtual CPU) devices is fixed when JAX starts, so every device count needs a fresh
process: ``python -m tests.distributed_worker --devices 2 --out DIR`` sets XLA_FLAGS before JAX
is imported. It trains a small MTC on fixed synthetic packets through tf.data and model.fit with
``mtc_keras.distribution``, then writes ``DIR/result.npz``: the training loss after each step,
the weights, and the output probabilities on a fixed batch before and after training.
--save also writes ``DIR/model.keras``. --reload PATH then waits for PATH (another worker's
--save) and adds the outputs of that saved model, loaded in this process, to result.npz.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from mtc_keras.testing import SMALL_MTC  # imports no JAX: XLA_FLAGS are set before that

EXAMPLES = 256


def synthetic(seed: int = 0):
    """Packets whose bytes depend on the labels (so the loss falls), some traffic labels missing."""
    import numpy as np

    from mtc_keras.labels import TASKS

    rng = np.random.default_rng(seed)
    labels = {task: rng.integers(0, len(names), EXAMPLES).astype("int32")
              for task, names in TASKS["iscx"].items()}
    labels["traffic"][rng.random(EXAMPLES) < 0.2] = -1  # MISSING: masked out of the loss
    x = rng.integers(0, 256, (EXAMPLES, SMALL_MTC["seq_len"]), dtype=np.uint8)
    x[:, :20] = (labels["app"] * 15)[:, None]
    x[:, 20:40] = (np.maximum(labels["traffic"], 0) * 20)[:, None]
    x[:, 40:60] = (labels["aux"] * 40)[:, None]
    return x, labels


def _wait_for(path: str, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--distribution", default="data_parallel")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--reload")
    parser.add_argument("--coordinator_address")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--process_id", type=int)
    args = parser.parse_args(argv)
    # Before JAX starts: the host platform gets this many virtual devices.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}")

    from mtc_keras import distribution, training  # first: sets KERAS_BACKEND=jax

    import keras
    import numpy as np
    import tensorflow as tf
    from mtc_keras.models import build_model

    distribution.configure_distribution(
        args.distribution, batch_size=args.batch_size, coordinator_address=args.coordinator_address,
        num_processes=args.num_processes, process_id=args.process_id)
    keras.utils.set_random_seed(args.seed)
    x, labels = synthetic(args.seed)
    fixed = x[:args.batch_size]
    os.makedirs(args.out, exist_ok=True)

    model = build_model("mtc", "iscx", **SMALL_MTC)
    training.compile_model(model, learning_rate=3e-3)
    from mtc_keras.models import softmax  # the heads give logits; the checks read probabilities

    initial = {t: softmax(v) for t, v in model.predict_on_batch(fixed).items()}
    dataset = (tf.data.Dataset.from_tensor_slices((x, labels))
               .batch(args.batch_size, drop_remainder=True).repeat())
    losses = []

    class RecordLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    model.fit(dataset, epochs=1, steps_per_epoch=args.steps, callbacks=[RecordLoss()],
              verbose=0)
    # How many devices hold the (replicated) variables: proves the run was really sharded.
    variable_devices = len(model.trainable_variables[0].value.sharding.device_set)
    model = distribution.local_model(model)  # multi-host: predict needs a process-local copy
    result = {
        "losses": np.array(losses),
        "device_count": np.array(len(keras.distribution.list_devices())),
        "variable_devices": np.array(variable_devices),
        **{f"weight_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())},
        **{f"initial_{t}": np.asarray(v) for t, v in initial.items()},
        **{f"output_{t}": softmax(v) for t, v in model.predict_on_batch(fixed).items()},
        **{f"label_{t}": y[:args.batch_size] for t, y in labels.items()},
    }
    if args.save:  # written whole, then renamed: a --reload worker never sees half a file
        model.save(os.path.join(args.out, "partial.keras"))
        os.replace(os.path.join(args.out, "partial.keras"), os.path.join(args.out, "model.keras"))
    if args.reload:
        _wait_for(args.reload)
        reloaded = keras.saving.load_model(args.reload)
        result.update({f"reloaded_{t}": np.asarray(v)
                       for t, v in {k: softmax(x) for k, x in
                                    reloaded.predict_on_batch(fixed).items()}.items()})
    np.savez(os.path.join(args.out, "result.npz"), **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
