"""Export a trained model as a TensorFlow SavedModel that needs neither Keras nor JAX to run.

The exported ``serve`` function takes what a user has, not what the model trains on:

* ISCX: ``packet`` uint8 [batch, 1500], the preprocessed packet vectors (mtc_keras.packets);
* CICIDS2017: ``features`` float32 [batch, 49], the RAW CICFlowMeter features in
  ``mtc_keras.cicids.FEATURES`` order; the builder's quantile transform runs inside the model.

It returns {task: float32 [batch, classes]} probabilities (the softmax of the trained model's
logits). ``labels.json`` beside it names the
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

import numpy as np
import tensorflow as tf

from mtc_keras import flows, registry
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


def export(model, export_dir: str, dataset: str, *, quantiles=None, thresholds=None) -> str:
    """Write the SavedModel and labels.json to export_dir; returns export_dir.

    quantiles: for a dataset built through a quantile transform (CICIDS2017:
    ``registry.Dataset.quantile_transform``), the (quantiles, references) pair of the builder's
    transform (``mtc_keras.cicids.load_quantile_transform``); required there, refused elsewhere.
    thresholds: what ``fit_confidence_thresholds`` returned (on the validation split); stored
    in labels.json as ``thresholds``, where ``mtc-classify`` reads its "unknown" limits.
    """
    import keras

    from mtc_keras.models import probability_model

    if dataset not in TASKS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(TASKS)}")
    tasks = [task for task in TASKS[dataset] if task in model.output_names]
    if registry.dataset(dataset).quantile_transform:
        if quantiles is None:
            raise ValueError(f"a {dataset} export needs quantiles=(quantiles, references): the "
                             "exported model takes raw features")
        model = with_quantile_transform(model, *quantiles)
    elif quantiles is not None:
        raise ValueError(f"{dataset} models take the builder's inputs as they are; quantiles are "
                         "only for datasets built through a quantile transform")
    if thresholds is not None:
        thresholds = check_thresholds(thresholds, tasks)
    model = probability_model(model)  # the trained model gives logits; users get probabilities
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
    if thresholds is not None:
        description["thresholds"] = thresholds
    with open(os.path.join(export_dir, LABELS_FILE), "w", encoding="utf-8") as f:
        json.dump(description, f, indent=2)
        f.write("\n")
    return export_dir


def read_labels(export_dir: str) -> dict:
    """labels.json of an export: {"dataset", "input": {name, dtype, shape}, "tasks": {task: names}},
    and "thresholds" (``fit_confidence_thresholds``'s dict) where the export has them."""
    path = os.path.join(export_dir, LABELS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: is {export_dir} an mtc_keras export "
                                "(RUN_DIR/export)?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------------ "unknown" thresholds
def fit_confidence_thresholds(labels: dict, probabilities: dict, flow_ids=None, *,
                              share: float = 0.05, flow_packets: int | None = None,
                              aggregate: str = flows.DEFAULT_AGGREGATE, order=None,
                              missing: int = -1) -> dict:
    """Per task, the confidence below which ``mtc-classify`` answers "unknown", fitted on
    held-out (validation) predictions: the ``share`` quantile of the confidences of the
    correctly classified examples, so that about ``share`` of them would come out unknown.

    labels: {task: int [n]} (``missing``, -1, where a row has no label for the task);
    probabilities: {task: float [n, classes]} (the exported model's output, softmax applied).
    flow_ids: optional [n] flow keys. With them the examples are flows, judged by
    ``mtc_keras.flows`` exactly as ``mtc-classify`` judges them (``aggregate``, from each flow's
    first ``flow_packets`` rows in capture ``order``: [n] positions, default the order given);
    a flow's label is the most common label of its rows. Without flow_ids the examples are
    packets, the confidence the top probability.

    Returns the dict ``export(..., thresholds=...)`` stores in labels.json, where mtc-classify
    reads the verdict rule it was fitted for (``flow_packets``, ``aggregate``)::

        {"share": 0.05, "level": "flow" | "packet", "aggregate": "mean", "flow_packets": N | None,
         "tasks": {task: {"threshold": float, "correct": int, "examples": int}}}

    A task with no correctly classified example gets threshold 0.0 (never unknown).
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share}")
    flows.check_aggregate(aggregate)
    if set(labels) - set(probabilities):
        raise ValueError(f"labels for tasks {sorted(set(labels) - set(probabilities))} have no "
                         "probabilities")
    if flow_packets is not None and flow_ids is None:
        raise ValueError("flow_packets needs flow_ids")
    out = {"share": float(share), "level": "packet" if flow_ids is None else "flow",
           "aggregate": aggregate, "flow_packets": flow_packets or None, "tasks": {}}
    verdicts = None
    if flow_ids is not None:
        if len(flow_ids) != len(next(iter(labels.values()), [])):
            raise ValueError(f"{len(flow_ids)} flow_ids for {len(next(iter(labels.values())))} rows")
        verdicts = flows.flow_verdicts(flow_ids, {t: probabilities[t] for t in labels},
                                       first=flow_packets, aggregate=aggregate, order=order,
                                       labels=labels, missing=missing)
    for task, y in labels.items():
        y = np.asarray(y).astype(np.int64).reshape(-1)
        p = np.asarray(probabilities[task], np.float64)
        if p.ndim != 2 or len(p) != len(y):
            raise ValueError(f"{task}: probabilities {p.shape} do not match {len(y)} labels")
        if verdicts is None:
            keep = y != missing
            y, guess, confidence = y[keep], p[keep].argmax(axis=1), p[keep].max(axis=1)
        else:
            y, guess, confidence = (verdicts.labels[task], verdicts.guess[task],
                                    verdicts.confidence[task])
            keep = y != missing
            y, guess, confidence = y[keep], guess[keep], confidence[keep]
        correct = guess == y
        threshold = float(np.quantile(confidence[correct], share)) if correct.any() else 0.0
        out["tasks"][task] = {"threshold": round(threshold, 6), "correct": int(correct.sum()),
                              "examples": int(len(y))}
    return out


def check_thresholds(thresholds: dict, tasks) -> dict:
    """``thresholds`` (fit_confidence_thresholds's dict) made JSON-plain; ValueError when a task
    is not the model's or a threshold is not a probability."""
    per_task = thresholds.get("tasks") if isinstance(thresholds, dict) else None
    if not isinstance(per_task, dict):
        raise ValueError("thresholds must be fit_confidence_thresholds's dict, with 'tasks'")
    unknown = sorted(set(per_task) - set(tasks))
    if unknown:
        raise ValueError(f"thresholds for tasks {unknown} the model does not have ({sorted(tasks)})")
    plain = json.loads(json.dumps(thresholds))
    for task, entry in plain["tasks"].items():
        value = entry.get("threshold") if isinstance(entry, dict) else None
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold for {task} must be a probability, got {value!r}")
    return plain
