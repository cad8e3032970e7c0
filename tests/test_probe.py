"""Shortcut probes and leakage figures on the demo captures, built with the real ISCX builder."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_builders.iscx_vpn_nonvpn as iscx
from experiments import probe, report
from mtc_keras import demo_data, evaluation, leakage
from mtc_keras.labels import MISSING, TASKS
from mtc_keras.packets import header_fields
from tests.conftest import REPO_ROOT

CONFIGS = [name for name in ("paper", "flow_split", "flow_split_masked")
           if name in iscx.Builder.builder_configs]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The demo captures built into every ISCX config, once for this module."""
    root = tmp_path_factory.mktemp("iscx_demo")
    demo_data.write_demo_captures(root / "manual")
    for config in CONFIGS:
        builder = tfds.builder(f"iscx_vpn_nonvpn/{config}", data_dir=str(root / "tfds"))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(root / "manual")))
    return str(root / "tfds")


@pytest.fixture(scope="module")
def flow_split_probes(data_dir, tmp_path_factory):
    """Both probes run once on flow_split: {probe: run dir}."""
    return probe.run_probes(data_dir, "flow_split", str(tmp_path_factory.mktemp("probes")), seed=0,
                            threads=1)


def _split(data_dir, config, split):
    return tfds.as_numpy(tfds.load(f"iscx_vpn_nonvpn/{config}", split=split, data_dir=data_dir,
                                   batch_size=-1))


# ------------------------------------------------------------------------------ leakage
def test_leakage_is_zero_for_flow_split_and_high_for_the_per_packet_split(data_dir):
    train = _split(data_dir, "paper", "train")
    flows, sizes = np.unique(train["flow_id"], return_counts=True)
    assert np.median(sizes) >= 5  # flows with many packets: the case where a packet split leaks

    paper = leakage.leakage_from_tfds(data_dir, "paper")
    assert paper["test_packets_with_flow_in_train"] > 0.5
    assert paper["test_vectors_in_train"] > 0  # the demo's background packet repeats across captures
    assert paper["train_packets"] == len(train["packet"]) and paper["train_flows"] == len(flows)
    for config in CONFIGS[1:]:
        figures = leakage.leakage_from_tfds(data_dir, config)
        assert figures["test_packets_with_flow_in_train"] == 0, config
        assert figures["test_vectors_in_train"] == 0, config
        assert figures["test_packets"] > 0


def test_the_report_shows_the_leakage_the_builder_stored_and_it_matches_the_splits(data_dir):
    found = {leak.config: leak for leak in report.iscx_leakage(data_dir)}
    assert list(found) == CONFIGS
    for config, leak in found.items():
        assert leak.source == "build report"  # the builder stores the figures in its metadata
        computed = leakage.leakage_from_tfds(data_dir, config)  # recomputed from the written splits
        assert leak.test_packets == computed["test_packets"]
        for figure in leakage.FIGURES:
            assert leak.figures[figure] == pytest.approx(computed[figure]), (config, figure)
    section = report.leakage_section(list(found.values())).splitlines()
    paper_row = next(line for line in section if line.startswith("| paper |"))
    flow_share = found["paper"].figures["test_packets_with_flow_in_train"]
    assert paper_row.startswith(f"| paper | {100 * flow_share:.2f} |")
    assert next(line for line in section if line.startswith("| flow_split |")).startswith(
        "| flow_split | 0.00 | 0.00 |")


@pytest.mark.skipif("flow_split_masked" not in CONFIGS, reason="no flow_split_masked config")
def test_flow_split_masked_has_no_ports_left_in_any_vector(data_dir):
    for split in ("train", "validation", "test"):
        masked = header_fields(_split(data_dir, "flow_split_masked", split)["packet"])
        assert np.isin(masked["protocol"], (6, 17)).all()
        assert not masked["src_port"].any() and not masked["dst_port"].any(), split
        assert masked["ip_length"].min() > 40  # the rest of the header is still there
    plain = header_fields(_split(data_dir, "flow_split", "test")["packet"])
    assert (plain["src_port"] > 0).all() and (plain["dst_port"] > 0).all()  # what masking removes


# ------------------------------------------------------------------------------- probes
def test_probes_write_the_metrics_of_a_training_run(data_dir, flow_split_probes):
    written = flow_split_probes
    assert set(written) == set(probe.PROBES)
    test = _split(data_dir, "flow_split", "test")
    for name, run_dir in written.items():
        assert os.path.basename(run_dir) == f"probe_{name}"
        metrics = evaluation.read_metrics(run_dir)
        assert metrics["run"]["model"] == f"probe_{name}"
        assert (metrics["run"]["dataset"], metrics["run"]["dataset_config"]) == ("iscx", "flow_split")
        assert [key for key in metrics if key != "run"] == list(TASKS["iscx"])
        for task, names in TASKS["iscx"].items():
            result = metrics[task]
            assert result["class_names"] == list(names)
            assert result["support"] == int((test[task] != MISSING).sum())
            assert result["missing"] == int((test[task] == MISSING).sum())
            assert np.asarray(result["confusion_matrix"]).sum() == result["support"]
            assert 0 <= result["macro_f1"] <= 1
            # a class-free guess scores at most 1 / number of classes present
            assert result["accuracy"] > 1.5 / len(np.unique(test[task][test[task] != MISSING])), (name, task)
        for task in TASKS["iscx"]:
            assert os.path.getsize(os.path.join(run_dir, f"confusion_{task}.png")) > 0
    # experiments.report files them under the MTC rows
    markdown = report.build_report(report.load_runs(sorted(written.values())))
    lines = markdown.splitlines()
    mtc = next(i for i, line in enumerate(lines) if line.startswith("| **MTC** |"))
    for offset, name in enumerate(sorted(written), start=1):
        assert lines[mtc + offset].startswith(f"| probe_{name} | ours | flow_split |")


def test_probe_and_report_commands_show_the_per_packet_split_shortcut(data_dir, flow_split_probes,
                                                                    tmp_path):
    out = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "experiments.probe", "--dataset_config=paper",
                           f"--data_dir={data_dir}", f"--output_dir={out}", "--probe=header_gbt",
                           "--threads=1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "probe_header_gbt on paper: app F1" in done.stdout
    assert not (out / "probe_logreg_bytes").exists()
    paper = json.loads((out / "probe_header_gbt" / "metrics.json").read_text())
    flow = evaluation.read_metrics(flow_split_probes["header_gbt"])
    # Ports and length alone: on the per-packet split the ephemeral ports of a test packet's
    # flow were seen in train, so the trees recall them; with whole flows held out they cannot.
    assert paper["app"]["macro_f1"] > flow["app"]["macro_f1"] + 0.15

    # the report finds the data_dir the probes recorded and adds the leakage figures
    done = subprocess.run([sys.executable, "-m", "experiments.report", str(out / "probe_header_gbt")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| probe_header_gbt | ours | paper |" in done.stdout
    assert "## Leakage (ISCX VPN-nonVPN)" in done.stdout
    assert "| flow_split | 0.00 | 0.00 |" in done.stdout


def test_probe_refuses_unknown_probes_and_unbuilt_configs(tmp_path):
    with pytest.raises(ValueError, match="unknown probes"):
        probe.run_probes(str(tmp_path), "paper", str(tmp_path), ["ports_only"])
    with pytest.raises(ValueError, match="tfds build tfds_builders/iscx_vpn_nonvpn --config=paper"):
        probe.run_probes(str(tmp_path / "empty"), "paper", str(tmp_path))


def test_probes_and_leakage_on_a_ustc_tfc2016_config(tmp_path):
    """--dataset=ustc_tfc2016: the probes train one classifier per USTC task (app, malware) on
    the built config, and leakage_from_tfds reads it back to the figures its build report has."""
    import tfds_builders.ustc_tfc2016  # noqa: F401  (registers the builder)
    from tfds_builders.ustc_tfc2016 import make_dummy_data

    data_dir = str(tmp_path / "tfds")
    builder = tfds.builder("ustc_tfc2016/paper", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(make_dummy_data.DUMMY_DATA)))
    written = probe.run_probes(data_dir, "paper", str(tmp_path / "probes"), ["header_gbt"], seed=0,
                               threads=1, dataset="ustc_tfc2016")
    metrics = evaluation.read_metrics(written["header_gbt"])
    assert metrics["run"]["dataset"] == "ustc_tfc2016"
    assert [key for key in metrics if key != "run"] == list(TASKS["ustc_tfc2016"])
    assert metrics["run"]["test_examples"] == builder.info.splits["test"].num_examples
    stored = builder.info.metadata["build_report"]["leakage"]
    computed = leakage.leakage_from_tfds(data_dir, "paper", dataset="ustc_tfc2016")
    assert computed == pytest.approx({key: stored[key] for key in computed})
    assert computed["test_packets_with_flow_in_train"] > 0
    with pytest.raises(ValueError, match="unknown probe dataset"):
        probe.run_probes(data_dir, "paper", str(tmp_path), dataset="cicids2017")
    with pytest.raises(ValueError, match="tfds build tfds_builders/ustc_tfc2016 --config=flow_split"):
        probe.run_probes(data_dir, "flow_split", str(tmp_path), dataset="ustc_tfc2016")
