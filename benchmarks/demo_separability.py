"""How far can any per-packet learner get on the demo's captures? The bar the demo is held to.

    python -m benchmarks.demo_separability [--data_root runs/demo_data]

Writes the demo's captures (``experiments.demo.build_dataset``: the same generator, sizes and
``flow_split`` as ``make demo``) and fits, on the training split only, three learners that see
more than any probe: gradient-boosted trees on every header field plus the first 160 vector
bytes, k-nearest neighbours (k = 1 and 5, Hamming distance) on whole vectors, and a random
forest on the same features as the trees. Each is scored on the test split (app macro-F1, the
demo's figure), per packet, beside the strongest probe (``experiments.probe``'s
``probe_header_gbt``, fitted the same way in the same run).

It replaces ``benchmarks.demo_ceiling``: that one bounded the demo with a rule that credited
whole classes of packets, which no longer bounds anything once the VPN captures carry their
inner packets in the clear. A learner fitted on train is not a bound either, but it shows what
the captures hold: the apps that every learner confuses are the ones whose protocols make their
packets alike (the same framing, the same ports, ciphertext in place of content), and a model
that reaches the demo's 0.8 there would have to find what these learners cannot.

Prints each learner's test app macro-F1 and per-class F1, the apps under 0.5 for every learner
with the app each is most often taken for, and as its last line
``best_over_probe=<best learner's app macro-F1 minus probe_header_gbt's>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HEAD_BYTES = 160  # the first bytes fed to the trees beside the header fields
WEAK_F1 = 0.5  # an app under this for every learner is "not told apart"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_root", default=os.path.join("runs", "demo_data"),
                   help="where the demo captures and their TFDS build go (as experiments.demo)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _learners(seed: int) -> dict:
    """{name: (feature set, unfitted learner, whether it stops early on the validation split)}."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier

    from experiments.probe import PROBES

    header_trees = PROBES["header_gbt"]
    return {
        # The probes' own trees (settings and early stopping), on more columns.
        "trees on header fields + first 160 bytes": (
            "fields_head", header_trees.make(seed, True), header_trees.early_stopping),
        "random forest on header fields + first 160 bytes": (
            "fields_head", RandomForestClassifier(n_estimators=300, n_jobs=-1, random_state=seed),
            False),
        "1-nearest neighbour on whole vectors (Hamming)": (
            "vectors", KNeighborsClassifier(1, metric="hamming", n_jobs=-1), False),
        "5-nearest neighbours on whole vectors (Hamming)": (
            "vectors", KNeighborsClassifier(5, metric="hamming", n_jobs=-1), False),
    }


def _features(packets: np.ndarray) -> dict[str, np.ndarray]:
    """The probe's header columns (experiments.probe.probe_features), the same plus the first
    HEAD_BYTES bytes, and the whole vectors."""
    from experiments.probe import probe_features

    header = probe_features(packets, ("header",))["header"]
    return {"header": header,
            "fields_head": np.concatenate([header, packets[:, :HEAD_BYTES]], 1).astype(np.float32),
            "vectors": packets}


def _load(builder) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (vectors, app labels)} of the rows that have an app label; says how many do not."""
    import tensorflow_datasets as tfds

    from mtc_keras.labels import MISSING

    out = {}
    for split in ("train", "validation", "test"):
        batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        keep = batch["app"] != MISSING
        if not keep.all():
            print(f"{split}: {int((~keep).sum())} packets without an app label left out")
        out[split] = (batch["packet"][keep], batch["app"][keep].astype(np.int64))
    return out


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import mtc_keras  # noqa: F401  (KERAS_BACKEND before anything imports Keras)
    from experiments import demo, probe
    from mtc_keras import evaluation, labels

    builder = demo.build_dataset(args.data_root, step=print)
    data = _load(builder)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        data["train"], data["validation"], data["test"])
    names = list(labels.ISCX_APPS)
    print(f"flow_split: {len(train_y)} train / {len(test_y)} test packets with an app label")

    train_f, val_f, test_f = _features(train_x), _features(val_x), _features(test_x)
    results = {}
    fitted = probe.fit_task(probe.PROBES["header_gbt"], train_f["header"], train_y,
                            val_f["header"], val_y, seed=args.seed)  # as experiments.probe fits it
    results["probe_header_gbt (the strongest probe)"] = evaluation.task_metrics(
        test_y, fitted.predict(test_f["header"]), names)
    for name, (features, learner, stops_early) in _learners(args.seed).items():
        start = time.perf_counter()
        stop = {"X_val": val_f[features], "y_val": val_y} if stops_early else {}
        learner.fit(train_f[features], train_y, **stop)
        train_accuracy = float(np.mean(learner.predict(train_f[features]) == train_y))
        results[name] = evaluation.task_metrics(test_y, learner.predict(test_f[features]), names)
        print(f"  {name}: training accuracy {train_accuracy:.3f}, "
              f"{time.perf_counter() - start:.1f} s", flush=True)

    present = [c for c in names if next(iter(results.values()))["per_class"][c]["support"]]
    print("\nTest app macro-F1 (per packet):")
    for name, result in results.items():
        print(f"  {result['macro_f1']:.3f}  {name}")
    print("\nPer-class test F1 (" + " / ".join(f"{i + 1}" for i in range(len(results))) + "):")
    for c in present:
        print(f"  {c:>14}: " + " / ".join(f"{r['per_class'][c]['f1']:.2f}" for r in results.values()))

    weak = [c for c in present
            if all(r["per_class"][c]["f1"] < WEAK_F1 for r in results.values())]
    best_name = max(results, key=lambda n: results[n]["macro_f1"])
    confusion = np.asarray(results[best_name]["confusion_matrix"])
    print(f"\nApps under {WEAK_F1} F1 for every learner (taken most often for, by '{best_name}'):")
    for c in weak:
        row = confusion[names.index(c)].copy()
        row[names.index(c)] = 0
        print(f"  {c}: {names[int(row.argmax())]} ({int(row.max())} of {int(confusion[names.index(c)].sum())})")
    if not weak:
        print("  none")
    probe_f1 = results["probe_header_gbt (the strongest probe)"]["macro_f1"]
    print(f"best_over_probe={results[best_name]['macro_f1'] - probe_f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
