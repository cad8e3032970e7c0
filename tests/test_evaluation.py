"""mtc_keras.evaluation: metrics against hand-computed values, and the files a run leaves behind."""

import csv
import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from mtc_keras import evaluation
from mtc_keras.labels import ISCX_APPS, ISCX_TRAFFIC, MISSING, TASKS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ["a", "b", "c", "d"]
# The MISSING row is predicted as c: if it were counted, c's precision would drop to 1/2.
Y_TRUE = [0, 1, 1, MISSING, 2]
Y_PRED = [0, 1, 0, 2, 2]


def test_task_metrics_matches_hand_computed_values():
    result = evaluation.task_metrics(Y_TRUE, Y_PRED, NAMES)
    # per class: a P 1/2 R 1; b P 1 R 1/2; c P 1 R 1; d absent from the labels.
    per_class = result["per_class"]
    assert per_class["a"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert per_class["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert per_class["c"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    assert result["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro averages over the three classes that occur in the labels
    assert result["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert result["macro_recall"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert result["macro_precision"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert result["accuracy"] == pytest.approx(3 / 4)
    assert (result["support"], result["missing"]) == (4, 1)
    assert result["class_names"] == NAMES
    assert result["confusion_matrix"] == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_probabilities_are_scored_by_their_argmax():
    probabilities = np.full((len(Y_PRED), len(NAMES)), 0.1)
    probabilities[np.arange(len(Y_PRED)), Y_PRED] = 0.7
    from_ids = evaluation.task_metrics(Y_TRUE, Y_PRED, NAMES)
    assert evaluation.task_metrics(Y_TRUE, probabilities, NAMES) == from_ids


def test_a_predicted_class_absent_from_the_labels_does_not_enter_the_macro_average():
    result = evaluation.task_metrics([0, 0], [0, 1], ["x", "y"])
    assert result["per_class"]["y"]["support"] == 0
    assert result["macro_recall"] == pytest.approx(0.5)  # class x only
    assert result["macro_f1"] == pytest.approx(2 / 3)
    assert result["confusion_matrix"] == [[1, 1], [0, 0]]


def test_a_task_whose_labels_are_all_missing_has_no_scores():
    result = evaluation.task_metrics([MISSING, MISSING], [0, 1], ["x", "y"])
    assert result["macro_f1"] is None and result["accuracy"] is None
    assert (result["support"], result["missing"]) == (0, 2)
    assert result["confusion_matrix"] == [[0, 0], [0, 0]]


@pytest.mark.parametrize("y_true, scores, message", [
    ([0, 4], [0, 1], "outside"),  # label out of range
    ([0, -2], [0, 1], "outside"),  # negative label that is not MISSING
    ([0, 1], [0, 4], "prediction outside"),
    ([0, 1], [0], "2 labels but 1 predictions"),
    ([0, 1], np.zeros((2, 3)), "3 columns for 4 classes"),
])
def test_bad_input_is_a_clear_error(y_true, scores, message):
    with pytest.raises(ValueError, match=message):
        evaluation.task_metrics(y_true, scores, NAMES)


def test_evaluate_predictions_scores_the_tasks_the_model_predicts_with_their_class_names():
    rng = np.random.default_rng(0)
    labels = {"app": rng.integers(0, 17, 50), "traffic": rng.integers(-1, 12, 50),
              "aux": rng.integers(0, 6, 50)}
    probabilities = {"app": rng.random((50, 17)), "traffic": rng.random((50, 12))}  # mtc_2task
    result = evaluation.evaluate_predictions(labels, probabilities, "iscx")
    assert list(result) == ["app", "traffic"]
    assert result["app"]["class_names"] == list(ISCX_APPS)
    assert list(result["traffic"]["per_class"]) == list(ISCX_TRAFFIC)
    assert result["traffic"]["missing"] == int((labels["traffic"] == MISSING).sum())
    with pytest.raises(ValueError, match="not tasks of iscx"):
        evaluation.evaluate_predictions(labels, {"attack": rng.random((50, 6))}, "iscx")
    with pytest.raises(ValueError, match="no labels"):
        evaluation.evaluate_predictions({"app": labels["app"]}, probabilities, "iscx")
    with pytest.raises(ValueError, match="unknown dataset"):
        evaluation.evaluate_predictions(labels, probabilities, "iscx2016")


def _cicids_metrics():
    attack = np.array([0, 1, 2, 3, 4, 5, 0, 0])
    mal = (attack > 0).astype(int)
    predicted = {"attack": np.array([0, 1, 2, 3, 4, 0, 0, 1]), "mal": np.array([0, 1, 1, 1, 1, 0, 0, 1])}
    return evaluation.evaluate_predictions({"attack": attack, "mal": mal}, predicted, "cicids2017")


def test_write_reports_writes_every_file(tmp_path):
    metrics = _cicids_metrics()
    run_info = {"model": "mtc", "dataset": "cicids2017", "dataset_config": "clean", "epochs": 2}
    written = evaluation.write_reports(str(tmp_path), metrics, run_info=run_info)

    expected = {"metrics.json", "report.md"} | {
        f"{kind}_{task}.{ext}" for task in ("attack", "mal")
        for kind, ext in (("confusion", "png"), ("confusion", "csv"), ("per_class", "png"))}
    assert set(written) == expected
    assert {p.name for p in tmp_path.iterdir()} == expected

    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["run"] == run_info
    assert list(document) == ["run", "attack", "mal"]
    for task in ("attack", "mal"):
        for key in ("macro_f1", "macro_recall", "macro_precision", "accuracy", "per_class"):
            assert key in document[task]
        assert list(document[task]["per_class"]) == list(TASKS["cicids2017"][task])
    assert document["mal"]["accuracy"] == pytest.approx(6 / 8)  # the botnet and the last benign are wrong
    assert evaluation.read_metrics(str(tmp_path)) == document

    for name in expected:
        if name.endswith(".png"):
            data = (tmp_path / name).read_bytes()
            assert data.startswith(PNG_SIGNATURE), name
            height, width, _ = matplotlib.image.imread(tmp_path / name).shape
            assert height > 100 and width > 100

    with open(tmp_path / "confusion_attack.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == list(TASKS["cicids2017"]["attack"])
    assert [row[0] for row in rows[1:]] == list(TASKS["cicids2017"]["attack"])
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == metrics["attack"]["confusion_matrix"]
    assert rows[6][1] == "1"  # the Botnet ARES flow predicted Benign

    report = (tmp_path / "report.md").read_text()
    assert "| dataset_config | clean |" in report
    assert f"| mal | {100 * metrics['mal']['macro_f1']:.2f} |" in report
    assert "| Botnet ARES | 0.00 | 0.00 | 0.00 | 1 |" in report
    for task in ("attack", "mal"):
        assert f"(per_class_{task}.png)" in report and f"(confusion_{task}.png)" in report
        assert f"(confusion_{task}.csv)" in report


def test_reports_put_per_flow_and_shortcut_figures_beside_the_per_packet_ones(tmp_path):
    # Two flows: f (3 packets, app 0) and g (2 packets, app 1). Packet 2 of f is wrong; f's
    # first two packets say class 0, and its mean over all three still does.
    labels = {"app": np.array([0, 0, 0, 1, 1]), "malware": np.array([0, 0, 0, 1, 1])}
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.45, 0.55]])
    app = np.zeros((5, len(TASKS["ustc_tfc2016"]["app"])))
    app[:, :2] = p
    probabilities = {"app": app, "malware": p}
    metrics = evaluation.evaluate(labels, probabilities, "ustc_tfc2016",
                                  flow_ids=np.array(list("fffgg"), object), order=np.arange(5))
    assert metrics["app"]["accuracy"] == pytest.approx(4 / 5)
    assert metrics["app"]["per_flow"]["all"] == {
        "macro_f1": 1.0, "macro_recall": 1.0, "macro_precision": 1.0, "accuracy": 1.0,
        "support": 2, "missing": 0}
    assert metrics["malware"]["per_flow"]["first_5"]["support"] == 2
    metrics["app"]["shortcut_reliance"] = {"ttl": {"macro_f1": 0.5, "accuracy": 0.6,
                                                   "drop": metrics["app"]["macro_f1"] - 0.5}}
    run_info = {"model": "probe_header_gbt", "dataset": "ustc_tfc2016", "dataset_config": "flow_split"}
    evaluation.write_reports(str(tmp_path), metrics, run_info=run_info)
    assert evaluation.read_metrics(str(tmp_path))["app"]["per_flow"]["first_5"]["accuracy"] == 1.0
    report = (tmp_path / "report.md").read_text()
    packet_f1 = 100 * metrics["app"]["macro_f1"]
    assert f"| app | {packet_f1:.2f} / 80.00 | 100.00 / 100.00 | 100.00 / 100.00 | 2 |" in report
    assert "## Shortcut reliance" in report
    assert f"| app | {packet_f1:.2f} | 50.00 ({-(packet_f1 - 50):+.1f}) |" in report
    # rows without flows (CICIDS2017 flow records): the report says so
    evaluation.write_reports(str(tmp_path / "cicids"), _cicids_metrics(),
                             run_info={"model": "mtc", "dataset": "cicids2017", "dataset_config": "clean"})
    assert "No flows" in (tmp_path / "cicids" / "report.md").read_text()


def test_write_reports_rejects_incomplete_run_info(tmp_path):
    metrics = _cicids_metrics()
    with pytest.raises(ValueError, match="dataset_config"):
        evaluation.write_reports(str(tmp_path), metrics, run_info={"model": "mtc", "dataset": "cicids2017"})
    with pytest.raises(ValueError, match="not tasks of iscx"):
        evaluation.write_reports(str(tmp_path), metrics,
                                 run_info={"model": "mtc", "dataset": "iscx", "dataset_config": "paper"})
    assert not (tmp_path / "metrics.json").exists()


def test_read_metrics_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        evaluation.read_metrics(str(tmp_path))
    (tmp_path / "metrics.json").write_text(json.dumps({"app": {"macro_f1": 1.0}}))
    with pytest.raises(ValueError, match="'run'"):
        evaluation.read_metrics(str(tmp_path))


def test_evaluation_does_not_import_tensorflow_or_keras():
    code = ("import sys, mtc_keras.evaluation; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
