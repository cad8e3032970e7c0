"""Data-parallel training across devices and hosts, and mixed precision, through Keras' own APIs.

Call both before the model is built (``configure_distribution`` before anything touches a JAX
device at all, since ``jax.distributed.initialize`` must come first)::

    configure_distribution("data_parallel", batch_size=128)   # every local device
    configure_distribution("data_parallel", batch_size=128,   # one process of a 2-host run
                           coordinator_address="host0:1234", num_processes=2, process_id=0)
    configure_precision("mixed_bfloat16")

``data_parallel`` is ``keras.distribution.DataParallel`` over all devices of all processes: the
variables are replicated, each batch is split along its first axis, and JAX's SPMD compiler
inserts the gradient all-reduce. The batch size stays the *global* batch: a --batch_size=128 run
on 4 GPUs puts 32 examples on each, and trains the same model as on one device. In a multi-host
run, Keras gives each process its share of every tf.data batch (``Distribution.
distribute_dataset``: rebatch to batch / processes, then shard by process id), so every process
must read the same dataset in the same order (same seed). Input must be a tf.data.Dataset whose
batch size tf.data can see there (a static batch dimension), not numpy arrays.

After training, ``local_model(model)`` gives each process a copy to evaluate, predict and export
with, and ``is_chief()`` says which process writes the run's files.

On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before JAX starts) splits
the host into N devices; data_parallel over them keeps more cores busy than one XLA CPU device
does (benchmarks/scaling.py: 1.4-1.9x the samples/s of one device on 2 cores, full-size MTC).
"""

from __future__ import annotations

import logging

import keras

STRATEGIES = ("none", "data_parallel")
PRECISIONS = ("float32", "mixed_bfloat16")

log = logging.getLogger(__name__)


def configure_distribution(strategy: str = "none", *, batch_size: int | None = None,
                           coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None):
    """Set (or clear) Keras' global distribution; returns it (None for ``"none"``).

    coordinator_address / num_processes / process_id: all three, or none. Given, they start
    the multi-host runtime (``keras.distribution.initialize``, which calls
    ``jax.distributed.initialize`` and agrees on one random seed across processes); that
    needs ``data_parallel`` and must happen before any JAX computation in the process.
    batch_size: the global batch size, checked to split evenly over the devices.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"distribution must be one of {STRATEGIES}, got {strategy!r}")
    multi_host = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in multi_host):
        if any(v is None for v in multi_host):
            raise ValueError("a multi-host run needs coordinator_address, num_processes and "
                             f"process_id together; got coordinator_address="
                             f"{coordinator_address!r}, num_processes={num_processes!r}, "
                             f"process_id={process_id!r}")
        if strategy != "data_parallel":
            raise ValueError("a multi-host run (coordinator_address, num_processes, process_id) "
                             "needs --distribution=data_parallel: with 'none' every process "
                             "would train its own copy of the model")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
        _initialize_multi_host(coordinator_address, num_processes, process_id)

    if strategy == "none":
        keras.distribution.set_distribution(None)
        return None

    devices = keras.distribution.list_devices()  # global: every device of every process
    if batch_size is not None and batch_size % len(devices):
        raise ValueError(f"batch size {batch_size} does not split evenly over the {len(devices)} "
                         f"devices of a data-parallel run; pick a multiple of {len(devices)}")
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    log.info("data parallel over %d device(s) in %d process(es): %s", len(devices),
             distribution.num_processes, ", ".join(devices))
    return distribution


def _initialize_multi_host(coordinator_address: str, num_processes: int, process_id: int):
    import jax

    # JAX itself refuses (clearly) when a device was touched first or when called twice.
    keras.distribution.initialize(coordinator_address, num_processes, process_id)
    log.info("process %d of %d joined the JAX cluster at %s (%d local, %d global devices)",
             jax.process_index(), jax.process_count(), coordinator_address,
             jax.local_device_count(), jax.device_count())


def configure_precision(policy: str = "float32") -> None:
    """Set Keras' global dtype policy for the layers built after this call.

    ``mixed_bfloat16`` computes in bfloat16 and keeps the variables (and so the optimizer
    updates) in float32; the models' output heads are built with ``dtype="float32"``, so the
    softmax and the losses stay float32. It pays off on accelerators with bfloat16 units
    (recent GPUs, TPUs).
    """
    if policy not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {policy!r}")
    keras.mixed_precision.set_dtype_policy(policy)


def is_chief() -> bool:
    """True in the process that writes the run's files (process 0; the only one on one host)."""
    import jax

    return jax.process_index() == 0


def local_model(model):
    """The trained model, usable by this process alone: for evaluate, predict and export.

    In a multi-host run the variables live on every process's devices, so Keras' predict cannot
    hand back numpy arrays (its outputs span devices of other processes). This returns a copy
    built from the model's config with the same weights and no distribution (and clears the
    global distribution: call it after training). On one host it returns the model itself.
    """
    import jax

    if jax.process_count() == 1:
        return model
    weights = model.get_weights()  # replicated, so every process holds them whole
    keras.distribution.set_distribution(None)
    copy = keras.models.clone_model(model)
    copy.set_weights(weights)  # an MtcModel's loss weights come with its config
    return copy
