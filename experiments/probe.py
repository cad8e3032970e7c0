"""Shortcut probes: how far simple classifiers get on the same packet splits as MTC.

    python -m experiments.probe --dataset_config=flow_split --data_dir=DIR --output_dir=DIR \
        [--dataset=iscx|ustc_tfc2016] [--probe=header_gbt,logreg_bytes] [--seed=0] \
        [--max_train_examples=N]

- ``header_gbt``: gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier) on the
  transport protocol, the two ports and the IP length only, read back from the stored vectors
  (``mtc_keras.packets.header_fields``). A high score here means the ports and sizes alone give
  the classes away.
- ``logreg_bytes``: logistic regression on the first 64 bytes of the vector (/255): IP and
  transport headers plus the first payload bytes, as a linear model sees them.

One classifier per task of the dataset (ISCX: app, traffic, aux; USTC-TFC2016: app, malware), trained on the train split with the rows whose
label is MISSING left out; the validation split (when the config has one) only stops the trees
early; nothing is chosen on test. Each probe writes ``OUTPUT_DIR/probe_<name>/`` in the layout
of a training run (``mtc_keras.evaluation.write_reports``), with ``run.model = "probe_<name>"``,
so ``experiments.report`` puts it under the MTC rows.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
from absl import app, flags, logging

from mtc_keras import registry
from mtc_keras.evaluation import evaluate_predictions, write_reports
from mtc_keras.labels import MISSING, TASKS
from mtc_keras.packets import header_fields

DATASET = "iscx"  # the default --dataset
DATASETS = registry.PACKET_DATASETS  # the probes read packet vectors
HEADER_FIELDS = ("protocol", "src_port", "dst_port", "ip_length")
PREFIX_BYTES = 64


@dataclasses.dataclass(frozen=True)
class Probe:
    features: str  # key of the feature arrays load_splits returns
    description: str
    make: Callable[[int, bool], object]  # (seed, has validation) -> unfitted sklearn classifier
    scale: float = 1.0  # features are multiplied by this before fitting
    early_stopping: bool = False  # fit takes X_val / y_val (the validation split) to stop early


def _gbt(seed: int, validated: bool):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, early_stopping=validated, random_state=seed)


def _logreg(seed: int, validated: bool):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300, random_state=seed)


PROBES = {
    "header_gbt": Probe("header", "gradient-boosted trees on " + ", ".join(HEADER_FIELDS), _gbt,
                        early_stopping=True),
    "logreg_bytes": Probe("bytes", f"logistic regression on the first {PREFIX_BYTES} vector bytes / 255",
                          _logreg, scale=1 / 255),
}


def probe_features(packets: np.ndarray) -> dict[str, np.ndarray]:
    fields = header_fields(packets)
    return {"header": np.stack([fields[name] for name in HEADER_FIELDS], axis=1),
            "bytes": np.ascontiguousarray(packets[:, :PREFIX_BYTES])}


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown probe dataset {dataset!r}; expected one of {list(DATASETS)}")


def load_splits(data_dir: str, config: str, *, batch_size: int = 8192,
                dataset: str = DATASET) -> dict[str, dict]:
    """Per split of the built ``<dataset>/<config>``: {'header': [n, 4] int64, 'bytes': [n, 64]
    uint8, 'labels': {task: [n] int64}}. Streams, so only the features are held in memory."""
    import tensorflow_datasets as tfds

    _check_dataset(dataset)
    builder = registry.load(dataset, config, data_dir)
    splits = {}
    for split in builder.info.splits:
        parts = []
        batches = builder.as_dataset(split=split, batch_size=batch_size, shuffle_files=False)
        for batch in tfds.as_numpy(batches):
            parts.append({**probe_features(batch["packet"]),
                          "labels": {task: batch[task].astype(np.int64) for task in TASKS[dataset]}})
        if not parts:
            continue
        splits[split] = {
            "header": np.concatenate([p["header"] for p in parts]),
            "bytes": np.concatenate([p["bytes"] for p in parts]),
            "labels": {task: np.concatenate([p["labels"][task] for p in parts]) for task in TASKS[dataset]},
        }
    return splits


def subsample(split: dict, max_examples: int | None, seed: int) -> dict:
    """A random subset of at most ``max_examples`` rows, in their original order."""
    n = len(split["header"])
    if max_examples is None or n <= max_examples:
        return split
    keep = np.sort(np.random.default_rng(seed).choice(n, size=max_examples, replace=False))
    return {"header": split["header"][keep], "bytes": split["bytes"][keep],
            "labels": {task: y[keep] for task, y in split["labels"].items()}}


class _Constant:
    """The only class train has for a task: predict it everywhere."""

    def __init__(self, label: int):
        self.label = label

    def predict(self, x):
        return np.full(len(x), self.label, np.int64)


def fit_task(probe: Probe, train_x, train_y, val_x=None, val_y=None, *, seed: int = 0):
    """One task's classifier, fitted on the labelled train rows (and validated on the labelled
    validation rows of classes train has). None when train has no labelled rows."""
    labelled = train_y != MISSING
    x, y = train_x[labelled] * probe.scale, train_y[labelled]
    classes = np.unique(y)
    if len(classes) == 0:
        return None
    if len(classes) == 1:
        return _Constant(int(classes[0]))
    validation = {}
    if probe.early_stopping and val_x is not None:
        usable = np.isin(val_y, classes)  # also drops MISSING
        if usable.any():
            validation = {"X_val": val_x[usable] * probe.scale, "y_val": val_y[usable]}
    model = probe.make(seed, bool(validation))
    model.fit(x, y, **validation)
    return model


def run_probe(name: str, splits: dict[str, dict], *, seed: int = 0,
              dataset: str = DATASET) -> tuple[dict, dict]:
    """Fit the probe per task on train, predict test; returns (metrics, run facts)."""
    probe = PROBES[name]
    train, test, validation = splits["train"], splits["test"], splits.get("validation")
    predictions, labels, facts = {}, {}, {"train_examples": {}, "fit_seconds": {}}
    for task in TASKS[dataset]:
        start = time.perf_counter()
        model = fit_task(probe, train[probe.features], train["labels"][task],
                         None if validation is None else validation[probe.features],
                         None if validation is None else validation["labels"][task], seed=seed)
        if model is None:
            logging.warning("%s: no labelled train examples for %s; task left out", name, task)
            continue
        predictions[task] = np.asarray(model.predict(test[probe.features] * probe.scale), np.int64)
        labels[task] = test["labels"][task]
        facts["train_examples"][task] = int((train["labels"][task] != MISSING).sum())
        facts["fit_seconds"][task] = round(time.perf_counter() - start, 3)
    return evaluate_predictions(labels, predictions, dataset), facts


def run_probes(data_dir: str, config: str, output_dir: str, probes: Sequence[str] = tuple(PROBES),
               *, seed: int = 0, max_train_examples: int | None = None,
               threads: int | None = None, dataset: str = DATASET) -> dict[str, str]:
    """Run each probe on the built ``<dataset>/<config>``; returns {probe: its run directory}."""
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    unknown = [name for name in probes if name not in PROBES]
    if unknown:
        raise ValueError(f"unknown probes {unknown}; expected some of {list(PROBES)}")
    splits = load_splits(data_dir, config, dataset=dataset)
    missing = {"train", "test"} - set(splits)
    if missing:
        raise ValueError(f"{dataset}/{config} in {data_dir} has no {sorted(missing)} examples")
    splits["train"] = subsample(splits["train"], max_train_examples, seed)
    written = {}
    for name in probes:
        with threadpool_limits(threads):
            metrics, facts = run_probe(name, splits, seed=seed, dataset=dataset)
        run_dir = os.path.join(output_dir, f"probe_{name}")
        run_info = {"model": f"probe_{name}", "dataset": dataset, "dataset_config": config,
                    "features": PROBES[name].description, "seed": seed,
                    "max_train_examples": max_train_examples, "data_dir": data_dir,
                    "test_examples": int(len(splits["test"]["header"])), **facts}
        write_reports(run_dir, metrics, run_info=run_info)
        summary = ", ".join(f"{task} F1 {100 * m['macro_f1']:.2f}" for task, m in metrics.items()
                            if m["macro_f1"] is not None)
        print(f"probe_{name} on {config}: {summary} -> {run_dir}")
        written[name] = run_dir
    return written


def define_flags() -> None:
    """The command's flags. Defined only when run as a command: experiments.iscx has flags of
    the same names, and both modules are imported in one process by the tests."""
    flags.DEFINE_enum("dataset", DATASET, DATASETS, "Packet dataset the config belongs to.")
    flags.DEFINE_string("dataset_config", "flow_split", "Dataset config (split) to probe, e.g. "
                        "paper, flow_split, flow_split_masked (ISCX).")
    flags.DEFINE_string("data_dir", None, "TFDS data_dir holding the built dataset.")
    flags.DEFINE_string("output_dir", None, "Each probe writes OUTPUT_DIR/probe_<name>/.")
    flags.DEFINE_list("probe", list(PROBES), f"Probes to run, of {list(PROBES)}.")
    flags.DEFINE_integer("seed", 0, "Seed of the classifiers and of --max_train_examples.")
    flags.DEFINE_integer("max_train_examples", None,
                         "Train on a random subset of at most this many train examples.")
    flags.DEFINE_integer("threads", None, "Cap on the BLAS / OpenMP threads of the classifiers "
                         "(default: all cores). 1 is much faster on a machine busy with other work.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    if not FLAGS.data_dir or not FLAGS.output_dir:
        raise app.UsageError("--data_dir and --output_dir are required")
    try:
        run_probes(FLAGS.data_dir, FLAGS.dataset_config, FLAGS.output_dir, FLAGS.probe,
                   seed=FLAGS.seed, max_train_examples=FLAGS.max_train_examples, threads=FLAGS.threads,
                   dataset=FLAGS.dataset)
    except ValueError as error:
        raise app.UsageError(str(error)) from error


if __name__ == "__main__":
    define_flags()
    app.run(main)
