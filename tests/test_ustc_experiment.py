"""experiments.ustc end to end on the dummy USTC-TFC2016 captures: build, train a small 1D-CNN
for one epoch (fixed shapes), write the report, export, and classify a capture with the export."""

import csv
import json
import subprocess
import sys

import pytest

from mtc_keras import labels
from tests.conftest import REPO_ROOT
from tfds_builders.ustc_tfc2016 import make_dummy_data


@pytest.mark.slow
def test_ustc_experiment_trains_reports_exports_and_classifies(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.ustc", "--flagfile=experiments/configs/ustc_cnn.cfg",
         "--epochs=1", "--batch_size=16", f"--data_dir={tmp_path / 'tfds'}",
         f"--manual_dir={make_dummy_data.DUMMY_DATA}", f"--output_dir={run_dir}", "--verbose=0",
         '--model_overrides={"conv_filters": [8, 8], "dense_units": [16, 8, 8]}'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run"]["dataset"] == "ustc_tfc2016" and metrics["run"]["dataset_config"] == "flow_split"
    assert set(metrics) == {"run", *labels.TASKS["ustc_tfc2016"]}
    assert (run_dir / "report.md").exists()
    description = json.loads((run_dir / "export" / "labels.json").read_text())
    assert description["tasks"] == {t: list(n) for t, n in labels.TASKS["ustc_tfc2016"].items()}

    output = tmp_path / "preds.csv"
    capture = make_dummy_data.DUMMY_DATA / "Malware" / "Zeus.pcap"
    done = subprocess.run([sys.executable, "-m", "mtc_keras.classify", f"--model={run_dir / 'export'}",
                           f"--pcap={capture}", f"--output={output}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(output, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {row["app"] for row in rows} <= set(labels.USTC_APPS)
    assert {row["malware"] for row in rows} <= set(labels.USTC_MALWARE)
