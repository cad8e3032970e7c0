"""Export a trained model as a TensorFlow SavedModel that needs neither Keras nor JAX to run.

The exported ``serve`` function takes what a user has, not what the model trains on:

* ISCX: ``packet`` uint8 [batch, 1500], the preprocessed packet vectors (mtc_keras.packets);
* CICIDS2017: ``features`` float32 [batch, 49], the RAW CICFlowMeter features in
  ``mtc_keras.cicids.FEATURES`` order; the builder's quantile transform runs inside the model.

It returns {task: float32 [batch, classes]} probabilities. ``labels.json`` beside it names the
dataset, the input and the classes of every task, so a reader needs nothing else::

    model = tf.saved_model.load("RUN_DIR/export")
    probabilities = model.serve(packets)          # {"app": [n, 17], "traffic": ..., "aux": ...}

``serve`` has one traced signature and no input_signature, so input of another dtype or
shape is refused ("Could not find matching concrete function ... Expected ... uint8 ...")
rather than cast: with an input_signature, TensorFlow silently wraps a float or int64 numpy
array into uint8. The ``serving_default`` signature (TF Serving) checks the shape before the
model runs. ``serve_unchecked`` is the jax2tf function that ``serve`` wraps.

The model is lowered for both CPU and CUDA, so an export made on a GPU runs on a CPU-only
TensorFlow and the other way round. Keras is imported only by ``export``: reading an export
(``read_labels``, ``mtc_keras.classify``) needs TensorFlow alone.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from mtc_keras.labels import TASKS

LABELS_FILE = "labels.json"


def serving_spec(model) -> tf.TensorSpec:
    """[None, width] TensorSpec with the dtype and name of the model's one input."""
    (inp,) = model.inputs
    return tf.TensorSpec([None, inp.shape[-1]], tf.as_dtype(inp.dtype), name=inp.name)


def with_quantile_transform(model, quantiles, references):
    """raw features -> QuantileNormalization -> ``model``, as one functional model whose input
    has the trained model's input name, dtype and width."""
    import keras

    from mtc_keras.layers import QuantileNormalization

    (inp,) = model.inputs
    raw = keras.Input(inp.shape[1:], dtype=inp.dtype, name=inp.name)
    # float32 whatever the global dtype policy: bfloat16 keeps 8 bits, too few to interpolate.
    normalised = QuantileNormalization(quantiles, references, dtype="float32",
                                       name="quantile_transform")(raw)
    return keras.Model(raw, model(normalised), name=f"{model.name}_raw_features")


def export(model, export_dir: str, dataset: str, *, quantiles=None) -> str:
    """Write the SavedModel and labels.json to export_dir; returns export_dir.

    quantiles: for cicids2017, the (quantiles, references) pair of the builder's transform
    (``mtc_keras.cicids.load_quantile_transform``); required there, refused for ISCX.
    """
    import keras

    if dataset not in TASKS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(TASKS)}")
    tasks = [task for task in TASKS[dataset] if task in model.output_names]
    if dataset == "cicids2017":
        if quantiles is None:
            raise ValueError("a cicids2017 export needs quantiles=(quantiles, references): the "
                             "exported model takes raw features")
        model = with_quantile_transform(model, *quantiles)
    elif quantiles is not None:
        raise ValueError(f"{dataset} models take packets; quantiles are only for cicids2017")
    spec = serving_spec(model)

    archive = keras.export.ExportArchive()
    archive.track(model)
    # Inference only: without gradients jax2tf skips lowering the backward pass too.
    unchecked = archive.add_endpoint(
        "serve_unchecked", lambda x: model(x, training=False), input_signature=[spec],
        jax2tf_kwargs={"with_gradient": False, "native_serialization_platforms": ("cpu", "cuda")})

    @tf.function(autograph=False)
    def serve(x):
        # A runtime check: signature callers (TF Serving) get this message, not an XLA error.
        return unchecked(tf.ensure_shape(x, spec.shape, name=f"check_{spec.name}_shape"))

    serve.get_concrete_function(spec)
    archive.add_endpoint("serve", serve)
    archive.add_endpoint("serving_default", serve)
    archive.write_out(export_dir, verbose=False)

    description = {
        "dataset": dataset,
        "input": {"name": spec.name, "dtype": spec.dtype.name, "shape": spec.shape.as_list()},
        "tasks": {task: list(TASKS[dataset][task]) for task in tasks},
    }
    with open(os.path.join(export_dir, LABELS_FILE), "w", encoding="utf-8") as f:
        json.dump(description, f, indent=2)
        f.write("\n")
    return export_dir


def read_labels(export_dir: str) -> dict:
    """labels.json of an export: {"dataset", "input": {name, dtype, shape}, "tasks": {task: names}}."""
    path = os.path.join(export_dir, LABELS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: is {export_dir} an mtc_keras export "
                                "(RUN_DIR/export)?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
