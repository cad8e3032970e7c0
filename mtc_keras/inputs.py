"""The one tf.data input pipeline for fit, evaluate and predict.

``tfds.load(split)`` -> batch -> map to ``(x, {task: label})`` -> prefetch. Batching before
the map matters: one vectorised map per batch instead of one per example (measured here:
100k examples took 29.5 s mapped per example against 0.7 s batched first).

Every batch has the same shape, because on JAX each new input shape is a new XLA compilation
(about 30 s for the full MTC on a CPU): training drops the last partial batch; evaluation and
prediction pad it to the full batch size with zero inputs whose labels are ``MISSING`` (-1) and
whose sample weights are 0, so no loss or metric counts them (``models.MtcModel`` also leaves
them out of the loss average over batches); ``predict`` strips their predictions.

The identifier arm (``identifiers``, ``mtc_keras.perturb.IDENTIFIER_ARMS``) is applied here, so
one built dataset serves all three: ``redraw`` forges every training batch with fresh draws (a
numpy step in the pipeline, run in order so the draws are seeded), ``mask`` zeroes the hosts'
fields of every split's packets; evaluation batches are never redrawn.

TensorFlow only feeds data here: ``configure_tensorflow`` keeps it off the GPU, which JAX owns.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from absl import logging

from mtc_keras import registry
from mtc_keras.labels import MISSING, TASKS

SHUFFLE_BUFFER = 16_384


def configure_tensorflow() -> None:
    """Keep TensorFlow (tf.data, TFDS, SavedModel export) on the CPU; the model runs on JAX."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # devices were already initialised: TensorFlow keeps its earlier placement


def input_name(dataset: str) -> str:
    """Name of the model input (and of the TFDS feature it reads): see mtc_keras.registry."""
    return registry.dataset(dataset).input_name



@dataclasses.dataclass(frozen=True)
class Split:
    """A batched split: ``dataset`` yields (x, {task: int32 label}), and for evaluation splits
    also {task: float32 sample weight} (0 on padded rows); ``num_examples`` are real rows."""

    dataset: tf.data.Dataset
    num_examples: int
    batch_size: int

    @property
    def steps(self) -> int:
        return len(self.dataset)


def load_split(dataset: str, config: str, split: str, *, data_dir: str | None, batch_size: int,
               training: bool, seed: int = 0, max_examples: int | None = None,
               tasks: tuple[str, ...] | None = None, identifiers: str = "keep",
               pools: dict | None = None) -> Split:
    """One split as fixed-shape batches.

    training=True shuffles (files and examples, seeded) and drops the last partial batch;
    otherwise the order is the stored order and the last batch is padded (labels MISSING,
    sample weight 0).
    max_examples takes the first examples of the split (tests, the demo). tasks defaults to
    all tasks of the dataset; labels are int32 with MISSING (-1) where a task has no label.
    identifiers: the arm (module docstring); ``redraw`` on a training split draws from
    ``pools`` (the training split's ``perturb.field_pools``; default: ``training_pools``).
    """
    from mtc_keras import perturb

    perturb.check_identifiers(identifiers)
    if identifiers != "keep" and not registry.dataset(dataset).packets:
        raise ValueError(f"--identifiers={identifiers} changes packet header fields; "
                         f"{dataset} has no packets")
    tasks = tuple(tasks or TASKS[dataset])
    x_key = input_name(dataset)
    split_arg = f"{split}[:{max_examples}]" if max_examples else split
    data_builder = registry.load(dataset, config, data_dir)
    num_examples = data_builder.info.splits[split_arg].num_examples
    if training and num_examples < batch_size:
        raise ValueError(f"split {split_arg!r} has {num_examples} examples, fewer than one "
                         f"training batch of {batch_size}")
    if num_examples == 0:
        raise ValueError(f"split {split_arg!r} of {data_builder.name}/{config} is empty")
    import tensorflow_datasets as tfds  # here: mtc-classify imports this module, not TFDS

    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # TFDS warns of its own use of a deprecated field
    try:
        ds = data_builder.as_dataset(
            split=split_arg, shuffle_files=training,
            read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False))
    finally:
        logging.set_verbosity(verbosity)
    if training:
        ds = ds.shuffle(min(SHUFFLE_BUFFER, num_examples), seed=seed,
                        reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    if identifiers == "mask" or (identifiers == "redraw" and training):
        if identifiers == "redraw" and pools is None:
            pools = training_pools(dataset, config, data_dir=data_dir, max_examples=max_examples)
        # training: redraw or mask; evaluation: mask (evaluation batches are never redrawn)
        ds = _with_identifiers(ds, x_key, perturb.training_inputs(
            identifiers if training else "mask", pools, seed))

    def to_inputs(batch):
        x = batch[x_key]
        labels = {task: tf.cast(batch[task], tf.int32) for task in tasks}
        if training:
            return x, labels
        # Pad the last batch to the full batch size; padded rows weigh 0.
        real = tf.shape(x)[0]
        missing = batch_size - real
        x = tf.ensure_shape(tf.pad(x, [[0, missing], [0, 0]]), [batch_size, x.shape[1]])
        labels = {task: tf.ensure_shape(tf.pad(y, [[0, missing]], constant_values=MISSING),
                                        [batch_size]) for task, y in labels.items()}
        weight = tf.ensure_shape(tf.pad(tf.ones([real], tf.float32), [[0, missing]]),
                                 [batch_size])
        return x, labels, {task: weight for task in tasks}

    ds = ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return Split(ds.prefetch(tf.data.AUTOTUNE), num_examples, batch_size)


def _with_identifiers(ds: tf.data.Dataset, x_key: str, change) -> tf.data.Dataset:
    """Batches whose packets went through ``change(packets[, flow_ids, order])`` (numpy): one
    call at a time, in order, so a seeded forger draws the same values on every run."""
    def apply(batch):
        names = [name for name in ("flow_id", "index") if name in batch]
        x = batch[x_key]
        # flow ids arrive as bytes: they only group rows, so they need no decoding
        changed = tf.numpy_function(change, [x] + [batch[name] for name in names], tf.uint8,
                                    stateful=True)
        return {**batch, x_key: tf.ensure_shape(changed, x.shape)}

    return ds.map(apply)  # sequential: one call at a time, in order


def training_pools(dataset: str, config: str, *, data_dir: str | None,
                   max_examples: int | None = None) -> dict:
    """The training split's ``perturb.field_pools``, read in batches."""
    from mtc_keras import perturb

    return perturb.merge_pools(
        perturb.field_pools(batch["packet"], flow_ids=batch.get("flow_id"),
                            order=batch.get("index"))
        for batch in iter_split_batches(dataset, config, "train", ("packet", "flow_id", "index"),
                                        data_dir=data_dir, max_examples=max_examples))


def flow_ids(dataset: str, config: str, split: str, *, data_dir: str | None,
             max_examples: int | None = None) -> np.ndarray | None:
    """The ``flow_id`` feature of a split in stored order (what ``load_split(training=False)``
    yields), as str; None for a dataset without flows (CICIDS2017 rows)."""
    return split_features(dataset, config, split, ("flow_id",), data_dir=data_dir,
                          max_examples=max_examples).get("flow_id")


def iter_split_batches(dataset: str, config: str, split: str, names, *, data_dir: str | None,
                       max_examples: int | None = None, batch_size: int = 8192):
    """Batches ({name: numpy array}, text as str) of the features ``names`` of a split in stored
    order (what ``load_split(training=False)`` yields); features the dataset lacks are left out."""
    import tensorflow_datasets as tfds  # here: mtc-classify imports this module, not TFDS

    data_builder = registry.load(dataset, config, data_dir)
    names = [name for name in names if name in data_builder.info.features]
    if not names:
        return
    split_arg = f"{split}[:{max_examples}]" if max_examples else split
    # Batch first, then one map per batch (see the module docstring).
    ds = data_builder.as_dataset(split=split_arg, shuffle_files=False).batch(batch_size).map(
        lambda batch: {name: batch[name] for name in names})
    for batch in tfds.as_numpy(ds):
        yield {name: value.astype(str) if value.dtype.kind in "SO" else value
               for name, value in batch.items()}


def split_features(dataset: str, config: str, split: str, names, *, data_dir: str | None,
                   max_examples: int | None = None) -> dict[str, np.ndarray]:
    """Features ``names`` of a split in stored order, whole (``iter_split_batches``)."""
    parts: dict[str, list] = {}
    for batch in iter_split_batches(dataset, config, split, names, data_dir=data_dir,
                                    max_examples=max_examples):
        for name, value in batch.items():
            parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def predict(model, split: Split, *, verbose: bool = True) -> tuple[dict, dict]:
    """Run the model over a (padded, unshuffled) split.

    Returns (labels, probabilities): {task: [num_examples]} and {task: [num_examples, classes]}
    numpy arrays (the softmax of the model's logits), the padded rows stripped. Tasks the model does not output are left out.
    """
    import keras  # not at module top: callers that only build datasets need no Keras

    from mtc_keras.models import softmax

    progress = keras.utils.Progbar(split.steps, unit_name="batch") if verbose else None
    labels, probabilities = {}, {}
    for step, (x, y, *_) in enumerate(split.dataset.as_numpy_iterator(), 1):
        outputs = {task: softmax(value) for task, value in model.predict_on_batch(x).items()}
        for task, value in outputs.items():
            probabilities.setdefault(task, []).append(np.asarray(value))
        for task, value in y.items():
            labels.setdefault(task, []).append(value)
        if progress:
            progress.update(step)
    n = split.num_examples
    labels = {task: np.concatenate(parts)[:n] for task, parts in labels.items()}
    probabilities = {task: np.concatenate(parts)[:n] for task, parts in probabilities.items()}
    return labels, probabilities
