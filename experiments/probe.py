"""Shortcut probes: how far simple classifiers get on the same packet splits as MTC.

    python -m experiments.probe --dataset_config=flow_split --data_dir=DIR --output_dir=DIR \
        [--dataset=iscx|ustc_tfc2016] [--probe=header_gbt,ports_length,logreg_bytes,bytes_rf] \
        [--identifiers=keep|redraw|mask] [--seed=0] [--max_train_examples=N] [--perturb]

- ``header_gbt``: gradient-boosted trees on every header field the packet rules leave in a
  vector (``mtc_keras.packets.HEADER_FIELDS``: IP version, TOS / traffic class, length,
  identification, flags, TTL / hop limit, protocol; ports; TCP data offset, flags, window,
  urgent pointer; UDP length), read back as named fields from the stored vectors. The strong
  probe: a model's score is worth its margin over this one.
- ``ports_length``: the same trees on the transport protocol, the two ports and the IP length
  only (the project's first header probe).
- ``logreg_bytes``: logistic regression on the first 64 bytes of the vector (/255): IP and
  transport headers plus the first payload bytes, as a linear model sees them.
- ``bytes_rf``: a random forest (300 trees) on the first 160 bytes of the vector: a learner on
  bytes, not on parsed fields, as strong as a practitioner's first try (on USTC-TFC2016 with
  the hosts' fields and ports masked it kept 0.929 where the header trees fell to 0.745), so
  that the strongest probe of every column, the forged ones included, reads bytes too.
- ``header_identifiers_gbt`` (not run unless asked): ``header_gbt``'s fields plus the per-flow
  identifiers (TCP sequence and acknowledgement numbers, the IPv6 flow label): how far
  memorising flows goes on this split.

One classifier per task of the dataset (ISCX: app, traffic, aux; USTC-TFC2016: app, malware),
trained on the train split with the rows whose label is MISSING left out; the validation split
(when the config has one) only stops the trees early; nothing is chosen on test.

The trees are scikit-learn's HistGradientBoostingClassifier with learning rate 0.05 and an L2
penalty of 1 on the leaf values: with its defaults (0.1, no penalty) the multi-class trees
diverged on the real USTC-TFC2016 flow split when the TTL was added to the ports and length
(the training loss rose at iterations 5-16 and, in another ordering, training accuracy fell to
0.185 with a test macro-F1 of 0.057), because a leaf's Newton step divides by its hessian,
which a few confidently right rows make tiny. With 0.05 and the penalty the training loss falls
at every iteration there for every feature set (measured: all header fields, train accuracy
1.000, test app macro-F1 0.980).

**Divergence guard.** Every probe records, per task, its training accuracy, the majority class's
share of the training rows and its validation accuracy and macro-F1 (where the split has one)
in ``metrics.json``. A probe whose training accuracy does not close at least ``MIN_TRAIN_GAIN``
of the gap between the majority share and 1 on its own training rows has not fitted: it fails
with ``ProbeDidNotFitError`` naming it and writes no figure.

Each probe writes ``OUTPUT_DIR/probe_<name>/`` in the layout of a training run
(``mtc_keras.evaluation.write_reports``), with ``run.model = "probe_<name>"``, so
``experiments.report`` puts it under the MTC rows; per-flow figures (``mtc_keras.flows``, from
the probe's class probabilities) beside the per-packet ones, and with ``--perturb`` the
shortcut-reliance figures (``mtc_keras.perturb``). Every probe is also judged on the forged test
splits (``mtc_keras.perturb.forge``: the hosts' fields redrawn per flow; and the server's port
too), per packet and per flow, and trains with an identifier arm (``--identifiers``: keep,
redraw: the training rows forged, mask: the hosts' fields zeroed in every split; default the
dataset's, ``mtc_keras.registry``), as the neural models do.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
from absl import app, flags, logging

from mtc_keras import perturb, registry
from mtc_keras.evaluation import evaluate, evaluate_changed_tests, write_reports
from mtc_keras.labels import MISSING, TASKS
from mtc_keras.packets import HEADER_FIELDS, IDENTIFIER_FIELDS, header_fields

DATASET = "iscx"  # the default --dataset
DATASETS = registry.PACKET_DATASETS  # the probes read packet vectors
PORTS_LENGTH_FIELDS = ("protocol", "src_port", "dst_port", "ip_length")
PREFIX_BYTES = 64
# The byte feature sets: name -> how many leading vector bytes they read.
BYTE_FEATURES = {"bytes": PREFIX_BYTES, "bytes_160": 160}
# The guard: training accuracy must reach majority + MIN_TRAIN_GAIN * (1 - majority).
MIN_TRAIN_GAIN = 0.25
# The feature sets the probes read, by name: header fields, or the first vector bytes.
FEATURE_SETS = {
    "header": HEADER_FIELDS,
    "ports_length": PORTS_LENGTH_FIELDS,
    "header_identifiers": HEADER_FIELDS + IDENTIFIER_FIELDS,
}


class ProbeDidNotFitError(RuntimeError):
    """A probe's learner did not fit its own training rows: its figures would mean nothing."""


@dataclasses.dataclass(frozen=True)
class Probe:
    features: str  # a FEATURE_SETS key, or "bytes"
    description: str
    make: Callable[[int, bool], object]  # (seed, has validation) -> unfitted sklearn classifier
    scale: float = 1.0  # features are multiplied by this before fitting
    early_stopping: bool = False  # fit takes X_val / y_val (the validation split) to stop early


def _gbt(seed: int, validated: bool):
    from sklearn.ensemble import HistGradientBoostingClassifier

    # lr 0.05 and l2 1.0: see the module docstring (the defaults diverge on real captures).
    return HistGradientBoostingClassifier(max_iter=500, learning_rate=0.05, l2_regularization=1.0,
                                          early_stopping=validated, random_state=seed)


def _logreg(seed: int, validated: bool):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300, random_state=seed)


def _forest(seed: int, validated: bool):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=300, n_jobs=-1, random_state=seed)


def _trees_on(feature_set: str) -> str:
    return "gradient-boosted trees on " + ", ".join(FEATURE_SETS[feature_set])


PROBES = {
    "header_gbt": Probe("header", _trees_on("header"), _gbt, early_stopping=True),
    "ports_length": Probe("ports_length", _trees_on("ports_length"), _gbt, early_stopping=True),
    "logreg_bytes": Probe("bytes", f"logistic regression on the first {PREFIX_BYTES} vector bytes / 255",
                          _logreg, scale=1 / 255),
    "bytes_rf": Probe("bytes_160", f"random forest (300 trees) on the first "
                      f"{BYTE_FEATURES['bytes_160']} vector bytes", _forest),
    "header_identifiers_gbt": Probe(
        "header_identifiers", _trees_on("header_identifiers") + " (per-flow identifiers included)",
        _gbt, early_stopping=True),
}
DEFAULT_PROBES = ("header_gbt", "ports_length", "logreg_bytes", "bytes_rf")


def probe_features(packets: np.ndarray, names: Sequence[str] = tuple(FEATURE_SETS) + tuple(BYTE_FEATURES)
                   ) -> dict[str, np.ndarray]:
    """{feature set: [n, k] array} of the vectors: header fields as columns, or the first
    bytes (BYTE_FEATURES)."""
    wanted = [n for n in names if n not in BYTE_FEATURES]
    fields = header_fields(packets, tuple(dict.fromkeys(f for n in wanted for f in FEATURE_SETS[n])))
    out = {name: np.stack([fields[f] for f in FEATURE_SETS[name]], axis=1) for name in wanted}
    for name in names:
        if name in BYTE_FEATURES:
            out[name] = np.ascontiguousarray(np.asarray(packets)[:, :BYTE_FEATURES[name]])
    return out


@dataclasses.dataclass
class ProbeSplit:
    """One split as the probes read it."""

    features: dict[str, np.ndarray]  # probe_features of its vectors
    labels: dict[str, np.ndarray]  # task -> [n] (MISSING where a row has no label)
    flow_ids: np.ndarray | None = None  # [n] flow keys: per-flow figures
    order: np.ndarray | None = None  # [n] position in its capture: first-N flow verdicts
    packets: np.ndarray | None = None  # the vectors as captured (kept for the test split, to forge)

    def __len__(self) -> int:
        return len(next(iter(self.labels.values())))

    def take(self, rows) -> ProbeSplit:
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return ProbeSplit({k: v[rows] for k, v in self.features.items()},
                          {t: y[rows] for t, y in self.labels.items()}, pick(self.flow_ids),
                          pick(self.order), pick(self.packets))

    @classmethod
    def from_packets(cls, packets, labels, flow_ids=None, order=None, *, kept=None,
                     feature_sets: Sequence[str] | None = None) -> ProbeSplit:
        """Features of ``packets`` (what the probe reads: its arm's inputs); ``kept``: the
        vectors as captured, to keep (the test split's, to forge)."""
        names = feature_sets or tuple(FEATURE_SETS) + tuple(BYTE_FEATURES)
        return cls(probe_features(packets, names), dict(labels), flow_ids, order,
                   None if kept is None else np.asarray(kept))


def _feature_sets(probes: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(PROBES[name].features for name in probes))


def load_splits(data_dir: str, config: str, *, batch_size: int = 8192, dataset: str = DATASET,
                probes: Sequence[str] = DEFAULT_PROBES, identifiers: str = "keep",
                seed: int = 0) -> tuple[dict[str, ProbeSplit], dict]:
    """Per split of the built ``<dataset>/<config>``: a ProbeSplit with the features the
    ``probes`` read of the inputs of arm ``identifiers`` (``mtc_keras.perturb``: the training
    rows forged under redraw, every split masked under mask), and the training split's
    ``perturb.field_pools`` (``inputs.training_pools``: a first pass over the training split).
    Streams, so only features and the test vectors are held in memory."""
    import tensorflow_datasets as tfds

    _check_dataset(dataset)
    builder = registry.load(dataset, config, data_dir)
    features = builder.info.features
    sets = _feature_sets(probes)

    def batches(split):
        yield from tfds.as_numpy(builder.as_dataset(split=split, batch_size=batch_size,
                                                    shuffle_files=False))

    from mtc_keras import inputs

    pools = inputs.training_pools(dataset, config, data_dir=data_dir)
    training = perturb.training_inputs(identifiers, pools, seed)
    splits = {}
    for split in builder.info.splits:
        parts = []
        for batch in batches(split):
            flow_ids = batch["flow_id"].astype(str) if "flow_id" in features else None
            order = batch["index"].astype(np.int64) if "index" in features else None
            inputs = (training(batch["packet"], flow_ids, order) if split == "train"
                      else perturb.model_inputs(batch["packet"], identifiers))
            parts.append(ProbeSplit.from_packets(
                inputs, {task: batch[task].astype(np.int64) for task in TASKS[dataset]},
                flow_ids, order, kept=batch["packet"] if split == "test" else None,
                feature_sets=sets))
        if not parts:
            continue
        cat = lambda values: None if values[0] is None else np.concatenate(values)  # noqa: E731
        splits[split] = ProbeSplit(
            {k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features},
            {t: np.concatenate([p.labels[t] for p in parts]) for t in parts[0].labels},
            cat([p.flow_ids for p in parts]), cat([p.order for p in parts]),
            cat([p.packets for p in parts]))
    return splits, pools


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown probe dataset {dataset!r}; expected one of {list(DATASETS)}")


def subsample(split: ProbeSplit, max_examples: int | None, seed: int) -> ProbeSplit:
    """A random subset of at most ``max_examples`` rows, in their original order."""
    n = len(split)
    if max_examples is None or n <= max_examples:
        return split
    keep = np.sort(np.random.default_rng(seed).choice(n, size=max_examples, replace=False))
    return split.take(keep)


class _Constant:
    """The only class train has for a task: predict it everywhere."""

    def __init__(self, label: int):
        self.label = label
        self.classes_ = np.array([label])

    def predict(self, x):
        return np.full(len(x), self.label, np.int64)

    def predict_proba(self, x):
        return np.ones((len(x), 1))


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


def probabilities(model, x, scale: float, n_classes: int) -> np.ndarray:
    """[n, n_classes] class probabilities (classes the model never saw get 0)."""
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(model.classes_, np.int64)] = model.predict_proba(x * scale)
    return out


def fit_figures(name: str, task: str, model, probe: Probe, split: ProbeSplit, *,
                validation: ProbeSplit | None = None) -> dict:
    """Training accuracy, majority share and validation figures of a fitted task; raises
    ProbeDidNotFitError when the training accuracy fails the guard (module docstring)."""
    from sklearn.metrics import f1_score

    y = split.labels[task]
    labelled = y != MISSING
    x, y = split.features[probe.features][labelled], y[labelled]
    train_accuracy = float((np.asarray(model.predict(x * probe.scale)) == y).mean())
    majority = float(np.bincount(y).max() / len(y))
    figures = {"train_accuracy": round(train_accuracy, 4), "majority_share": round(majority, 4)}
    if len(np.unique(y)) > 1:
        needed = majority + MIN_TRAIN_GAIN * (1 - majority)
        if train_accuracy < needed:
            raise ProbeDidNotFitError(
                f"probe_{name}: {task}: training accuracy {train_accuracy:.3f} is not clearly above "
                f"the majority class's share {majority:.3f} of the training rows (needs >= "
                f"{needed:.3f}): the learner did not fit, so no figure is written")
    if validation is not None:
        vy = validation.labels[task]
        known = vy != MISSING
        if known.any():
            predicted = np.asarray(model.predict(validation.features[probe.features][known] * probe.scale))
            figures["validation_accuracy"] = round(float((predicted == vy[known]).mean()), 4)
            figures["validation_macro_f1"] = round(float(f1_score(vy[known], predicted,
                                                                  average="macro")), 4)
    return figures


def run_probe(name: str, splits: dict[str, ProbeSplit], *, seed: int = 0, dataset: str = DATASET,
              pools: dict | None = None, identifiers: str = "keep",
              one_field: bool = False) -> tuple[dict, dict]:
    """Fit the probe per task on train (the splits' features are those of arm ``identifiers``),
    predict test; returns (metrics, run facts). With ``pools`` (the training split's
    ``perturb.field_pools``) and the test vectors kept, also every task's ``forged`` figures
    (``perturb.FORGED_TESTS``, per packet and per flow) and with ``one_field`` the
    shortcut-reliance figures of every perturbation."""
    probe = PROBES[name]
    train, test, validation = splits["train"], splits["test"], splits.get("validation")
    fitted, facts = {}, {"train_examples": {}, "fit_seconds": {}, "fit": {}}
    for task in TASKS[dataset]:
        start = time.perf_counter()
        model = fit_task(probe, train.features[probe.features], train.labels[task],
                         None if validation is None else validation.features[probe.features],
                         None if validation is None else validation.labels[task], seed=seed)
        if model is None:
            logging.warning("%s: no labelled train examples for %s; task left out", name, task)
            continue
        facts["fit"][task] = fit_figures(name, task, model, probe, train, validation=validation)
        facts["train_examples"][task] = int((train.labels[task] != MISSING).sum())
        facts["fit_seconds"][task] = round(time.perf_counter() - start, 3)
        fitted[task] = model

    def predict(features: np.ndarray) -> dict[str, np.ndarray]:
        return {task: probabilities(model, features, probe.scale, len(TASKS[dataset][task]))
                for task, model in fitted.items()}

    labels = {task: test.labels[task] for task in fitted}
    metrics = evaluate(labels, predict(test.features[probe.features]), dataset,
                       flow_ids=test.flow_ids, order=test.order)
    if pools is None or test.packets is None:
        return metrics, facts

    def read(packets):  # what the probe reads of changed test vectors
        inputs = perturb.model_inputs(packets, identifiers)
        return predict(probe_features(inputs, (probe.features,))[probe.features])

    evaluate_changed_tests(metrics, labels, read, test.packets, pools, dataset,
                           flow_ids=test.flow_ids, order=test.order, seed=seed,
                           one_field=one_field)
    return metrics, facts


def run_probes(data_dir: str, config: str, output_dir: str, probes: Sequence[str] = DEFAULT_PROBES,
               *, seed: int = 0, max_train_examples: int | None = None,
               threads: int | None = None, dataset: str = DATASET,
               shortcut_reliance: bool = False, identifiers: str | None = None) -> dict[str, str]:
    """Run each probe on the built ``<dataset>/<config>``; returns {probe: its run directory}."""
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    unknown = [name for name in probes if name not in PROBES]
    if unknown:
        raise ValueError(f"unknown probes {unknown}; expected some of {list(PROBES)}")
    identifiers = perturb.check_identifiers(identifiers or registry.dataset(dataset).identifiers)
    splits, pools = load_splits(data_dir, config, dataset=dataset, probes=probes,
                                identifiers=identifiers, seed=seed)
    missing = {"train", "test"} - set(splits)
    if missing:
        raise ValueError(f"{dataset}/{config} in {data_dir} has no {sorted(missing)} examples")
    splits["train"] = subsample(splits["train"], max_train_examples, seed)
    written = {}
    for name in probes:
        with threadpool_limits(threads):
            metrics, facts = run_probe(name, splits, seed=seed, dataset=dataset, pools=pools,
                                       identifiers=identifiers, one_field=shortcut_reliance)
        run_dir = os.path.join(output_dir, f"probe_{name}")
        run_info = {"model": f"probe_{name}", "dataset": dataset, "dataset_config": config,
                    "features": PROBES[name].description, "identifiers": identifiers, "seed": seed,
                    "max_train_examples": max_train_examples, "data_dir": data_dir,
                    "test_examples": len(splits["test"]), **facts}
        write_reports(run_dir, metrics, run_info=run_info)
        summary = ", ".join(f"{task} F1 {100 * m['macro_f1']:.2f}" for task, m in metrics.items()
                            if m["macro_f1"] is not None)
        fit = ", ".join(f"{task} {f['train_accuracy']:.3f}" for task, f in facts["fit"].items())
        first = next(iter(metrics.values()))  # the first task: app
        forged = ", ".join(f"{test} {100 * first['forged'][test]['macro_f1']:.2f}"
                           for test in perturb.FORGED_TESTS)
        print(f"probe_{name} on {config} ({identifiers}): {summary}; first task {forged} "
              f"(training accuracy: {fit}) -> {run_dir}")
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
    flags.DEFINE_list("probe", list(DEFAULT_PROBES), f"Probes to run, of {list(PROBES)}.")
    flags.DEFINE_integer("seed", 0, "Seed of the classifiers, of --max_train_examples and of "
                         "the perturbations.")
    flags.DEFINE_integer("max_train_examples", None,
                         "Train on a random subset of at most this many train examples.")
    flags.DEFINE_integer("threads", None, "Cap on the BLAS / OpenMP threads of the classifiers "
                         "(default: all cores). 1 is much faster on a machine busy with other work.")
    flags.DEFINE_enum("identifiers", None, perturb.IDENTIFIER_ARMS, "keep: train on the packets "
                      "as captured; redraw: on forged training rows; mask: the hosts' fields "
                      "zeroed in every split (mtc_keras.perturb). Default: the dataset's "
                      "(mtc_keras.registry).")
    flags.DEFINE_bool("perturb", False, "Also the shortcut-reliance figures: each probe's test "
                      "figures with one header field at a time redrawn from the training split "
                      f"({', '.join(perturb.PERTURBATIONS)}; mtc_keras.perturb).")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    if not FLAGS.data_dir or not FLAGS.output_dir:
        raise app.UsageError("--data_dir and --output_dir are required")
    try:
        run_probes(FLAGS.data_dir, FLAGS.dataset_config, FLAGS.output_dir, FLAGS.probe,
                   seed=FLAGS.seed, max_train_examples=FLAGS.max_train_examples, threads=FLAGS.threads,
                   dataset=FLAGS.dataset, shortcut_reliance=FLAGS.perturb,
                   identifiers=FLAGS.identifiers)
    except ProbeDidNotFitError as error:
        raise SystemExit(f"error: {error}") from error
    except ValueError as error:
        raise app.UsageError(str(error)) from error


if __name__ == "__main__":
    define_flags()
    app.run(main)
