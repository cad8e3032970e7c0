"""End to end: demo captures -> TFDS -> experiments.iscx (killed, then resumed) -> reports,
model.keras, SavedModel export (reloaded without JAX) -> mtc_keras.classify; the tf.data input
pipeline; the CICIDS2017 export with the quantile transform inside.

Everything runs for real (real TFDS build, tf.data, XLA compilation, SavedModel) with a tiny
MTC (--model_overrides) and a small demo dataset; one training run serves several tests.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mtc_keras import inputs, packets, registry, synthetic
from mtc_keras.labels import MISSING, TASKS
from tests.conftest import REPO_ROOT, SHARED_DATA

pytestmark = pytest.mark.slow

TINY_STAGES = [[[4, 4, 8]], [[4, 4, 8], [4, 4, 8]], [[4, 4, 8], [4, 4, 8]]]
TINY_MTC = {"d_model": 8, "num_heads": 2, "ff_dim": 16, "encoder_repeats": [1, 1, 1],
            "cnn_stages": TINY_STAGES}
BATCH = 16
DEMO_CAPTURE = "vpn_skype_chat1a.pcap"


def _python(*args, check=True, env=None):
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-5000:]}")
    return result


def _load_keras_model(path):
    import keras

    import mtc_keras.layers  # noqa: F401  (registers the custom layers for deserialisation)

    return keras.saving.load_model(path)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Small demo captures and their TFDS flow_split dataset."""
    root = tmp_path_factory.mktemp("demo")
    captures = root / "captures"
    synthetic.write_demo_captures(captures, packets_per_file=16)
    inputs.configure_tensorflow()
    registry.prepare("iscx", "flow_split", str(root / "tfds"), manual_dir=str(captures))
    return root


@pytest.fixture(scope="module")
def run(demo):
    """experiments.iscx killed after its first epoch (--stop_after_epochs), then started again
    with the same flags; returns the run folder and what each invocation left."""
    output_dir = demo / "run"
    flags = [
        "-m", "experiments.iscx", "--model=mtc", "--dataset_config=flow_split",
        f"--data_dir={demo / 'tfds'}", f"--output_dir={output_dir}", "--epochs=2",
        f"--batch_size={BATCH}", "--max_train_examples=160", "--verbose=2",
        f"--model_overrides={json.dumps(TINY_MTC)}", "--perturb", "--schedule=cosine",
        "--warmup_steps=5",
    ]
    first = _python(*flags, "--stop_after_epochs=1", check=False)
    log_after_kill = _rows(output_dir / "training_log.csv")
    backup_after_kill = sorted(os.listdir(output_dir / "backup"))
    second = _python(*flags)
    return {"dir": output_dir, "first": first, "second": second,
            "log_after_kill": log_after_kill, "backup_after_kill": backup_after_kill}


@pytest.fixture(scope="module")
def test_packets(demo):
    """The first test-split packets (an odd count, so batches are ragged) as numpy."""
    split = inputs.load_split("iscx", "flow_split", "test", data_dir=str(demo / "tfds"),
                              batch_size=37, training=False, max_examples=37)
    x, *_ = next(split.dataset.as_numpy_iterator())
    return x


def _probabilities(model, x):
    """What users get from a trained model: the softmax of its logits."""
    from mtc_keras.models import softmax

    return {task: softmax(value) for task, value in model.predict_on_batch(x).items()}


# ----------------------------------------------------------------------------- the pipeline
def test_eval_split_pads_last_batch_and_keeps_every_example_in_order(demo):
    import tensorflow_datasets as tfds

    data_dir = str(demo / "tfds")
    builder = registry.builder("iscx", "flow_split", data_dir)
    stored = list(tfds.as_numpy(builder.as_dataset(split="test")))
    split = inputs.load_split("iscx", "flow_split", "test", data_dir=data_dir, batch_size=BATCH,
                              training=False)
    batches = list(split.dataset.as_numpy_iterator())
    assert split.num_examples == len(stored) and len(stored) % BATCH  # a partial last batch
    assert len(batches) == split.steps == -(-len(stored) // BATCH)
    assert all(x.shape == (BATCH, 1500) and x.dtype == np.uint8 for x, _, _ in batches)
    x = np.concatenate([x for x, _, _ in batches])
    labels = {t: np.concatenate([y[t] for _, y, _ in batches]) for t in TASKS["iscx"]}
    weights = {t: np.concatenate([w[t] for _, _, w in batches]) for t in TASKS["iscx"]}
    n = len(stored)
    np.testing.assert_array_equal(x[:n], np.stack([e["packet"] for e in stored]))
    for task in TASKS["iscx"]:
        assert labels[task].dtype == np.int32
        np.testing.assert_array_equal(labels[task][:n], [e[task] for e in stored])
        assert (labels[task][n:] == MISSING).all()  # padding is masked out of losses/metrics
        assert (weights[task][:n] == 1).all() and (weights[task][n:] == 0).all()
    assert not x[n:].any()


def test_padded_evaluation_rows_do_not_change_evaluate_loss(demo):
    """The validation loss drives the LR schedule, early stopping and the best checkpoint: the
    rows that pad the last batch must not move it. Batch 16 (padded) vs one unpadded batch."""
    from mtc_keras import models, training

    data_dir = str(demo / "tfds")
    tiny = {k: tuple(map(tuple, v)) if k == "cnn_stages" else v for k, v in TINY_MTC.items()}
    # The app task only: every row has an app label (Tor rows have no traffic label, and a
    # task with missing labels averages per batch over its labelled rows).
    model = models.build_model("mtc", "iscx", num_classes={"app": 17},
                               loss_weights={"app": 1.0}, **tiny)
    training.compile_model(model)
    n = 37  # 2 full batches of 16 and one of 5 real rows + 11 padded ones
    padded = inputs.load_split("iscx", "flow_split", "test", data_dir=data_dir,
                               batch_size=BATCH, training=False, max_examples=n, tasks=("app",))
    whole = inputs.load_split("iscx", "flow_split", "test", data_dir=data_dir,
                              batch_size=n, training=False, max_examples=n, tasks=("app",))
    assert padded.steps == 3 and whole.steps == 1
    got = model.evaluate(padded.dataset, verbose=0, return_dict=True)
    want = model.evaluate(whole.dataset, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    accuracies = [key for key in want if key.endswith("accuracy")]
    assert accuracies
    for key in accuracies:
        assert got[key] == pytest.approx(want[key], rel=1e-6)


def test_train_split_drops_remainder_and_reshuffles_with_its_seed(demo):
    def orders(seed):
        split = inputs.load_split("iscx", "flow_split", "train", data_dir=str(demo / "tfds"),
                                  batch_size=BATCH, training=True, seed=seed)
        epochs = [np.concatenate([x[:, :64] for x, *_ in split.dataset.as_numpy_iterator()])
                  for _ in range(2)]
        assert all(len(e) == split.num_examples // BATCH * BATCH for e in epochs)
        return epochs

    first, again = orders(0), orders(0)
    np.testing.assert_array_equal(first[0], again[0])  # the seed fixes the order
    assert not np.array_equal(first[0], first[1])  # every epoch is reshuffled
    assert not np.array_equal(first[0], orders(1)[0])  # another seed, another order


def _by_content(x):
    """{the vector with the hosts' fields and ports zeroed: its header fields} of a batch's
    rows: the same packet across epochs, whatever was redrawn."""
    from mtc_keras import perturb

    keys = packets.mask_ports(perturb.mask_host_fields(x))
    fields = packets.header_fields(x)
    return {keys[i].tobytes(): {f: int(v[i]) for f, v in fields.items()} for i in range(len(x))}


def test_identifier_arms_in_the_pipeline(demo):
    """mask zeroes the hosts' fields in every split; redraw forges training batches with new
    draws each epoch (seeded) and leaves evaluation batches as captured."""
    from mtc_keras import perturb

    data_dir = str(demo / "tfds")

    def batches(split, arm, seed=0, epochs=1):
        loaded = inputs.load_split("iscx", "flow_split", split, data_dir=data_dir,
                                   batch_size=BATCH, training=split == "train", seed=seed,
                                   identifiers=arm)
        return [np.concatenate([x for x, *_ in loaded.dataset.as_numpy_iterator()])
                for _ in range(epochs)]

    for split in ("train", "test"):
        fields = packets.header_fields(batches(split, "mask")[0])
        for field in perturb.HOST_FIELDS:
            assert not fields[field].any(), (split, field)
        assert fields["dst_port"].any() and fields["ip_length"].any()
    kept = batches("test", "keep")[0]
    assert packets.header_fields(kept)["ttl"].any()
    assert np.array_equal(batches("test", "redraw")[0], kept)  # evaluation data: never redrawn
    first, second = batches("train", "redraw", epochs=2)
    one, two = _by_content(first), _by_content(second)
    common = sorted(set(one) & set(two))
    assert len(common) > 0.9 * len(one)
    for field in ("ttl", "ip_id", "tcp_seq"):
        assert sum(one[k][field] != two[k][field] for k in common) > 0.5 * len(common), field
    again = batches("train", "redraw")[0]
    assert np.array_equal(again, first)  # seeded
    plain = _by_content(batches("train", "keep")[0])
    assert sum(plain[k]["ttl"] != one[k]["ttl"] for k in common) > 0.3 * len(common)
    with pytest.raises(ValueError, match="identifiers must be one of"):
        inputs.load_split("iscx", "flow_split", "test", data_dir=data_dir, batch_size=BATCH,
                          training=False, identifiers="hide")


def test_load_split_refuses_a_dataset_that_is_not_built(tmp_path):
    with pytest.raises(FileNotFoundError, match="not built"):
        inputs.load_split("iscx", "flow_split", "train", data_dir=str(tmp_path), batch_size=4,
                          training=True)
    with pytest.raises(FileNotFoundError, match="--manual_dir"):
        registry.prepare("iscx", "flow_split", str(tmp_path))


# ----------------------------------------------------------------------------- training run
def test_killed_run_resumes_after_its_last_finished_epoch(run):
    assert run["first"].returncode == -9  # SIGKILL after epoch 1's backup
    assert len(run["log_after_kill"]) == 1
    # the weights and epoch (Keras) and the patience counters and best val_loss (ours)
    assert {"training_metadata.json", "callback_state.json"} <= set(run["backup_after_kill"])
    out = run["second"].stdout
    assert "Resuming" in out and "after epoch 1" in out
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out  # epoch 1 is not trained again
    log = _rows(run["dir"] / "training_log.csv")
    assert [row["epoch"] for row in log] == ["0", "1"]
    assert log[0] == run["log_after_kill"][0]
    assert not (run["dir"] / "backup").exists()  # a finished run leaves no backup behind
    # The optimizer state came back too: its step count covers both epochs.
    model = _load_keras_model(run["dir"] / "model.keras")
    steps_per_epoch = 160 // BATCH
    assert int(model.optimizer.iterations.numpy()) == 2 * steps_per_epoch
    # --schedule=cosine: the rate decays to 0 over the run's --epochs, across the resume
    assert model.optimizer.decay_steps == 2 * steps_per_epoch
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    info = json.loads((run["dir"] / "metrics.json").read_text())["run"]
    assert info["resumed_after_epoch"] == 1 and info["epochs_trained"] == 2
    assert info["schedule"] == "cosine" and info["learning_rate"] == 2e-3


def test_run_writes_metrics_report_and_plots_for_the_whole_test_split(run, demo):
    output = run["dir"]
    metrics = json.loads((output / "metrics.json").read_text())
    info = metrics["run"]
    assert (info["model"], info["dataset"], info["dataset_config"]) == ("mtc", "iscx", "flow_split")
    n_test = registry.builder("iscx", "flow_split", str(demo / "tfds")).info.splits["test"].num_examples
    assert info["examples"]["test"] == n_test
    for task in TASKS["iscx"]:
        result = metrics[task]
        # every test example is scored once: none lost, no padding row counted
        assert result["support"] + result["missing"] == n_test
        for key in ("macro_f1", "macro_recall", "macro_precision", "accuracy"):
            assert 0.0 <= result[key] <= 1.0
        for name in (f"confusion_{task}.png", f"per_class_{task}.png"):
            data = (output / name).read_bytes()
            assert data.startswith(b"\x89PNG") and len(data) > 1000
        assert (output / f"confusion_{task}.csv").stat().st_size > 0
        # per flow beside per packet: every test flow judged once, from its first 5 packets
        # (the builder's capture positions) and from all of them
        test_flows = inputs.flow_ids("iscx", "flow_split", "test", data_dir=str(demo / "tfds"))
        for verdict in ("first_5", "all"):
            figures = result["per_flow"][verdict]
            assert figures["support"] + figures["missing"] == len(set(test_flows.tolist()))
    report = (output / "report.md").read_text()
    assert "flow_split" in report and "app" in report
    assert "## Per packet and per flow" in report
    # --perturb: each header field redrawn from train, one at a time, on the test split
    from mtc_keras import perturb

    for task in TASKS["iscx"]:
        reliance = metrics[task]["shortcut_reliance"]
        assert list(reliance) == list(perturb.PERTURBATIONS)
        for figures in reliance.values():
            assert figures["drop"] == pytest.approx(metrics[task]["macro_f1"] - figures["macro_f1"])
    assert "## Shortcut reliance" in report
    # the forged tests, per packet and per flow, on every run of a packet dataset
    for task in TASKS["iscx"]:
        for test in perturb.FORGED_TESTS:
            forged = metrics[task]["forged"][test]
            assert 0.0 <= forged["macro_f1"] <= 1.0 and forged["per_flow"]["first_5"] is not None
    assert "## As captured and forged" in report
    assert info["identifiers"] == registry.dataset("iscx").identifiers  # the dataset's default
    # the export's thresholds were fitted for mtc-classify's default rule: first 5, mean
    thresholds = json.loads((output / "export" / "labels.json").read_text())["thresholds"]
    assert (thresholds["level"], thresholds["flow_packets"], thresholds["aggregate"]) == ("flow", 5, "mean")
    assert f"Report: {output / 'report.md'}" in run["second"].stdout
    assert (output / "checkpoints" / "best.weights.h5").exists()
    if importlib.util.find_spec("tensorboard"):
        assert any((output / "logs").rglob("events.out.tfevents.*"))


# ----------------------------------------------------------------------------- export
_RELOAD_WITHOUT_JAX = textwrap.dedent("""
    import json, sys
    sys.modules["jax"] = None  # any import of JAX or Keras now fails
    sys.modules["keras"] = None
    import numpy as np
    import tensorflow as tf
    export, packets_path, out_path = sys.argv[1:]
    model = tf.saved_model.load(export)
    x = np.load(packets_path)
    outputs = {k: v.numpy() for k, v in model.serve(x).items()}
    errors = {}
    for name, bad in [("float32", x.astype(np.float32)), ("int64", x.astype(np.int64)),
                      ("short", x[:, :100]), ("flat", x[0])]:
        try:
            model.serve(bad)
            errors[name] = None
        except (TypeError, ValueError) as error:
            errors[name] = str(error)
    signature = model.signatures["serving_default"]
    for name, bad in [("sig_float32", tf.constant(x, tf.float32)), ("sig_short", tf.constant(x[:, :100]))]:
        try:
            signature(packet=bad)
            errors[name] = None
        except tf.errors.InvalidArgumentError as error:
            errors[name] = error.message
    np.savez(out_path, **outputs)
    json.dump({"errors": errors, "jax": "jax" in sys.modules and sys.modules["jax"] is not None,
               "keras": sys.modules.get("keras") is not None}, sys.stdout)
""")


@pytest.fixture(scope="module")
def reloaded(run, test_packets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reload")
    np.save(folder / "packets.npy", test_packets)
    result = _python("-c", _RELOAD_WITHOUT_JAX, str(run["dir"] / "export"),
                     str(folder / "packets.npy"), str(folder / "out.npz"))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    with np.load(folder / "out.npz") as outputs:
        report["outputs"] = dict(outputs)
    return report


def test_export_reloads_without_jax_and_matches_keras(run, reloaded, test_packets):
    assert not reloaded["jax"] and not reloaded["keras"]
    model = _load_keras_model(run["dir"] / "model.keras")
    expected = _probabilities(model, test_packets)
    assert set(reloaded["outputs"]) == set(TASKS["iscx"])
    for task, probabilities in reloaded["outputs"].items():
        assert probabilities.shape == (len(test_packets), len(TASKS["iscx"][task]))
        # The trained model gives logits; what leaves the SavedModel are probabilities.
        assert (probabilities >= 0).all()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(probabilities, expected[task], rtol=1e-4, atol=1e-5)
    labels = json.loads((run["dir"] / "export" / "labels.json").read_text())
    assert labels["input"] == {"name": "packet", "dtype": "uint8", "shape": [None, 1500]}
    assert labels["tasks"] == {task: list(names) for task, names in TASKS["iscx"].items()}
    # The run fitted the "unknown" thresholds on its validation flows.
    assert labels["thresholds"]["level"] == "flow"
    assert set(labels["thresholds"]["tasks"]) == set(TASKS["iscx"])
    assert all(0.0 <= t["threshold"] <= 1.0 for t in labels["thresholds"]["tasks"].values())


def test_export_rejects_wrong_dtype_and_shape_with_a_clear_error(reloaded):
    errors = reloaded["errors"]
    expected = "TensorSpec(shape=(None, 1500), dtype=tf.uint8, name='packet')"
    for name, got in [("float32", "dtype=float32"), ("int64", "dtype=int64"),
                      ("short", "shape=(37, 100)"), ("flat", "shape=(1500,)")]:
        assert errors[name] is not None, f"{name} input was accepted"
        assert expected in errors[name] and got in errors[name]  # what it got, what it needs
    assert "expected to be a uint8 tensor but is a float tensor" in errors["sig_float32"]
    assert "[37,100] is not compatible with expected shape [?,1500]" in errors["sig_short"]


def test_cicids_export_takes_raw_features_and_applies_the_quantile_transform(tmp_path):
    import keras
    import tensorflow as tf
    from sklearn.preprocessing import QuantileTransformer

    from mtc_keras import export, models

    rng = np.random.default_rng(0)
    raw = rng.lognormal(3.0, 2.0, size=(500, 49)).astype(np.float32)
    raw[:, 7] = np.round(raw[:, 7] / 50)  # repeated values: flat stretches in the quantiles
    transform = QuantileTransformer(n_quantiles=100).fit(raw)
    keras.utils.set_random_seed(0)
    model = models.build_model("mtc", "cicids2017", encoder_repeats=(1, 1, 1), ff_dim=8,
                               cnn_stages=TINY_STAGES)
    export.export(model, str(tmp_path), "cicids2017",
                  quantiles=(transform.quantiles_, transform.references_))
    loaded = tf.saved_model.load(str(tmp_path))  # served needs this object alive
    served = loaded.serve
    new = rng.lognormal(3.0, 2.5, size=(33, 49)).astype(np.float32)  # some outside the fit range
    got = {task: value.numpy() for task, value in served(new).items()}
    expected = _probabilities(model, transform.transform(new).astype(np.float32))
    assert set(got) == set(TASKS["cicids2017"])
    for task in got:
        np.testing.assert_allclose(got[task], expected[task], rtol=1e-4, atol=1e-5)
    labels = export.read_labels(str(tmp_path))
    assert labels["input"] == {"name": "features", "dtype": "float32", "shape": [None, 49]}
    assert labels["tasks"] == {task: list(names) for task, names in TASKS["cicids2017"].items()}
    with pytest.raises((TypeError, ValueError), match="dtype=tf.float32"):
        served(new.astype(np.float64))
    with pytest.raises(ValueError, match="quantiles"):
        export.export(model, str(tmp_path / "again"), "cicids2017")


# ----------------------------------------------------------------------------- classify
@pytest.fixture(scope="module")
def classified(run, demo, tmp_path_factory):
    """One classify call over a demo capture and, when present, every shared capture."""
    capture = next((demo / "captures").rglob(DEMO_CAPTURE))
    shared = sorted(p for p in (SHARED_DATA / "pcaps").glob("*") if p.suffix in (".pcap", ".pcapng")) \
        if (SHARED_DATA / "pcaps").is_dir() else []
    output = tmp_path_factory.mktemp("classify") / "predictions.csv"
    # Every packet, majority vote and no "unknown" (the checks below compare flows with
    # packet votes); by default the export's rule would judge flows from their first 5 packets.
    args = ["-m", "mtc_keras.classify", f"--model={run['dir'] / 'export'}",
            f"--output={output}", "--flow_packets=0", "--aggregate=vote", "--min_confidence=0"] + [
        f"--pcap={p}" for p in [capture, *shared]]
    result = _python(*args)
    return {"capture": capture, "shared": shared, "result": result, "packets": _rows(output),
            "flows": _rows(output.with_name("predictions_flows.csv"))}


def _check_classified(classified, capture):
    name = os.path.basename(capture)
    batch = packets.process_capture(capture)
    rows = [row for row in classified["packets"] if row["capture"] == name]
    assert len(rows) == batch.counts["kept"]  # every kept packet is predicted once
    assert [int(row["packet"]) for row in rows] == list(range(len(rows)))
    assert [row["flow"] for row in rows] == list(batch.flow_ids)
    flows = [row for row in classified["flows"] if row["capture"] == name]
    assert sorted(row["flow"] for row in flows) == sorted(set(batch.flow_ids))
    assert sum(int(row["packets"]) for row in flows) == len(rows)
    for task, names in TASKS["iscx"].items():
        assert {row[task] for row in rows} <= set(names)
        assert all(0.0 <= float(row[f"{task}_probability"]) <= 1.0 for row in rows)
        assert all(0.0 < float(row[f"{task}_vote_share"]) <= 1.0 for row in flows)
    assert f"{name}: {batch.counts['read']} frames read, {batch.counts['kept']} packets" \
        in classified["result"].stderr
    return rows, flows


def test_classify_predicts_every_packet_of_a_demo_capture_like_the_model(classified, run):
    rows, flows = _check_classified(classified, classified["capture"])
    batch = packets.process_capture(classified["capture"])
    model = _load_keras_model(run["dir"] / "model.keras")
    expected = _probabilities(model, batch.packets)
    names = TASKS["iscx"]["app"]
    assert [row["app"] for row in rows] == [names[i] for i in expected["app"].argmax(axis=1)]
    # The flow vote is the most frequent per-packet prediction of that flow.
    for flow in flows:
        votes = [row["app"] for row in rows if row["flow"] == flow["flow"]]
        assert votes.count(flow["app"]) == max(votes.count(v) for v in set(votes))


def test_classify_runs_on_every_shared_capture(classified):
    if not classified["shared"]:
        pytest.skip(f"{SHARED_DATA / 'pcaps'} is absent (real test data is optional)")
    for capture in classified["shared"]:
        _check_classified(classified, capture)


def test_classify_refuses_a_file_that_is_not_a_capture(run, tmp_path):
    bogus = tmp_path / "notes.pcap"
    bogus.write_bytes(b"not a capture")
    output = tmp_path / "predictions.csv"
    result = _python("-m", "mtc_keras.classify", f"--model={run['dir'] / 'export'}",
                     f"--pcap={bogus}", f"--output={output}", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"mtc-classify: error: {bogus}: not a pcap or pcapng capture (magic 6e6f7420)")
    assert not output.exists()  # refused before anything is written


def test_cicids_run_builds_the_dataset_and_exports_a_raw_feature_model(tmp_path):
    """experiments.cicids end to end on the builder's dummy CSVs (--manual_dir builds them)."""
    import tensorflow as tf
    from sklearn.preprocessing import QuantileTransformer

    from mtc_keras import cicids

    output_dir = tmp_path / "run"
    overrides = {"encoder_repeats": [1, 1, 1], "ff_dim": 8, "cnn_stages": TINY_STAGES}
    _python("-m", "experiments.cicids", "--model=mtc", "--dataset_config=clean",
            f"--data_dir={tmp_path / 'tfds'}",
            f"--manual_dir={REPO_ROOT / 'tfds_builders' / 'cicids2017' / 'dummy_data'}",
            f"--output_dir={output_dir}", "--epochs=1", f"--batch_size={BATCH}", "--verbose=2",
            f"--model_overrides={json.dumps(overrides)}")
    metrics = json.loads((output_dir / "metrics.json").read_text())
    n_test = metrics["run"]["examples"]["test"]
    assert n_test > 0 and set(metrics) == {"run", *TASKS["cicids2017"]}
    for task in TASKS["cicids2017"]:
        assert metrics[task]["support"] + metrics[task]["missing"] == n_test

    # The export takes raw CICFlowMeter features; the reference applies the build's
    # quantile transform with scikit-learn, then the trained Keras model.
    quantiles, references = cicids.load_quantile_transform(str(tmp_path / "tfds"), "clean")
    transform = QuantileTransformer(n_quantiles=len(references))
    transform.quantiles_, transform.references_ = quantiles, references
    transform.n_features_in_ = quantiles.shape[1]
    raw = np.random.default_rng(1).lognormal(4.0, 3.0, size=(21, len(cicids.FEATURES)))
    raw = raw.astype(np.float32)
    model = _load_keras_model(output_dir / "model.keras")
    expected = _probabilities(model, transform.transform(raw).astype(np.float32))
    loaded = tf.saved_model.load(str(output_dir / "export"))
    for task, value in loaded.serve(raw).items():
        np.testing.assert_allclose(value.numpy(), expected[task], rtol=1e-4, atol=1e-5)
    labels = json.loads((output_dir / "export" / "labels.json").read_text())
    assert labels["dataset"] == "cicids2017"
    assert labels["tasks"] == {task: list(names) for task, names in TASKS["cicids2017"].items()}


def test_demo_command_runs_every_step_and_says_where_the_report_is(tmp_path):
    """python -m experiments.demo (what `make demo` runs) with a tiny flagfile."""
    root = tmp_path / "demo_data"
    config = tmp_path / "tiny_demo.cfg"
    config.write_text("\n".join([
        "--model=mtc", "--dataset_config=flow_split", "--epochs=1", f"--batch_size={BATCH}",
        f"--data_dir={root / 'tfds'}", f"--output_dir={tmp_path / 'demo'}", "--verbose=2",
        f"--model_overrides={json.dumps(TINY_MTC)}", ""]))
    result = _python("-m", "experiments.demo", f"--config={config}", f"--data_root={root}",
                     "--packets_per_file=16")
    out = result.stdout
    for step in ("1. Writing demo captures", "2. Building the TFDS dataset", "3. Training MTC",
                 "4. The shortcut probes", "5. MTC beside the probes",
                 "6. Classifying a demo capture"):
        assert step in out
    assert out.strip().splitlines()[-1] == (
        f"Report (MTC, then the probes): {tmp_path / 'demo' / 'report.md'}")
    for test in ("as captured", "forged", "forged_ports"):
        assert f"Test-split app macro-F1, {test}: MTC " in out
    # the report holds MTC's row with the probes' rows under it, on the same split, as captured
    # and forged
    report = (tmp_path / "demo" / "report.md").read_text()
    section = report[report.index("## Beside the shortcut probes"):]
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")]
    assert rows == ["model", "mtc", "probe_bytes_rf", "probe_header_gbt", "probe_logreg_bytes",
                    "probe_ports_length"]
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    arm = registry.dataset("iscx").identifiers
    forged = metrics["app"]["forged"]
    assert (f"| mtc | {arm} | {metrics['app']['macro_f1']:.3f} |" in section
            and f"| {forged['forged']['macro_f1']:.3f} / " in section
            and f"| {forged['forged_ports']['macro_f1']:.3f} / " in section)
    assert "app forged, ports too (per packet / per flow)" in section
    probe = json.loads((tmp_path / "demo" / "probes" / "probe_header_gbt" / "metrics.json").read_text())
    assert probe["run"]["dataset_config"] == "flow_split" and probe["run"]["fit"]["app"]["train_accuracy"] > 0
    assert (tmp_path / "demo" / "export" / "saved_model.pb").exists()
    flows = _rows(tmp_path / "demo" / "classify" / "predictions_flows.csv")
    assert flows and {row["capture"] for row in flows} == {DEMO_CAPTURE}
