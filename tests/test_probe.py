"""Shortcut probes and leakage figures on the demo captures, built with the real ISCX builder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_builders.iscx_vpn_nonvpn as iscx
from experiments import probe, report
from mtc_keras import evaluation, leakage, perturb, registry, synthetic
from mtc_keras.labels import MISSING, TASKS
from mtc_keras.packets import header_fields
from tests.conftest import REPO_ROOT

CONFIGS = [name for name in ("paper", "flow_split", "flow_split_masked")
           if name in iscx.Builder.builder_configs]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The demo captures built into every ISCX config, once for this module."""
    root = tmp_path_factory.mktemp("iscx_demo")
    # the captures of one session per capture (the probes' per-packet-split shortcut shows there)
    synthetic.write_demo_captures(root / "manual", 80, flows_per_capture=1)
    for config in CONFIGS:
        builder = tfds.builder(f"iscx_vpn_nonvpn/{config}", data_dir=str(root / "tfds"))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(root / "manual")))
    return str(root / "tfds")


@pytest.fixture(scope="module")
def flow_split_probes(data_dir, tmp_path_factory):
    """The default probes run once on flow_split, trained on the packets as captured (keep):
    {probe: run dir}."""
    return probe.run_probes(data_dir, "flow_split", str(tmp_path_factory.mktemp("probes")), seed=0,
                            threads=1, identifiers="keep")


def _split(data_dir, config, split):
    return tfds.as_numpy(tfds.load(f"iscx_vpn_nonvpn/{config}", split=split, data_dir=data_dir,
                                   batch_size=-1))


# ------------------------------------------------------------------------------ leakage
def test_leakage_is_zero_for_flow_split_and_high_for_the_per_packet_split(data_dir):
    train = _split(data_dir, "paper", "train")
    flows, sizes = np.unique(train["flow_id"], return_counts=True)
    # most packets are in flows of several packets: the case where a packet split leaks
    assert sizes[sizes >= 3].sum() > 0.5 * sizes.sum()

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
    assert set(written) == set(probe.DEFAULT_PROBES)
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
            # the guard's figures: each task's fit on its own training rows, and validation
            fit = metrics["run"]["fit"][task]
            assert fit["train_accuracy"] > fit["majority_share"], (name, task)
            assert 0 <= fit["validation_macro_f1"] <= 1
            # per-flow figures beside the per-packet ones, from the builder's packet positions
            per_flow = metrics[task]["per_flow"]["all"]
            assert per_flow["support"] + per_flow["missing"] == len(set(test["flow_id"].tolist()))
            assert metrics[task]["per_flow"]["first_5"] is not None
            # the forged tests beside the figures as captured, per packet and per flow
            for forged_test in perturb.FORGED_TESTS:
                forged = metrics[task]["forged"][forged_test]
                assert 0 <= forged["macro_f1"] <= 1 and set(forged["per_flow"]) == {"first_5", "all"}
        report_md = (Path(run_dir) / "report.md").read_text()
        assert "## As captured and forged" in report_md and "forged, ports too" in report_md
        assert metrics["run"]["identifiers"] == "keep"
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
                           f"--data_dir={data_dir}", f"--output_dir={out}", "--probe=ports_length",
                           "--threads=1", "--identifiers=keep"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "probe_ports_length on paper (keep): app F1" in done.stdout
    assert "(training accuracy: app " in done.stdout
    assert not (out / "probe_logreg_bytes").exists()
    paper = json.loads((out / "probe_ports_length" / "metrics.json").read_text())
    flow = evaluation.read_metrics(flow_split_probes["ports_length"])
    # Ports and length alone: on the per-packet split the ephemeral ports of a test packet's
    # flow were seen in train, so the trees recall them; with whole flows held out they cannot.
    assert paper["app"]["macro_f1"] > flow["app"]["macro_f1"] + 0.15

    # the report finds the data_dir the probes recorded and adds the leakage figures
    done = subprocess.run([sys.executable, "-m", "experiments.report", str(out / "probe_ports_length")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| probe_ports_length | ours | paper |" in done.stdout
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
    assert metrics["run"]["identifiers"] == registry.dataset("ustc_tfc2016").identifiers  # default
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


# ------------------------------------------------------------------------ the divergence guard
def _udp_vectors(ports: np.ndarray) -> np.ndarray:
    """IPv4 UDP vectors that differ only in their destination port."""
    vectors = np.zeros((len(ports), 1500), np.uint8)
    vectors[:, 0], vectors[:, 3], vectors[:, 8], vectors[:, 9] = 0x45, 60, 64, 17
    vectors[:, 22], vectors[:, 23] = ports >> 8, ports & 0xFF
    return vectors


def _probe_splits(labels_of, rng, n=600) -> dict:
    """Four kinds of packet (ports 1000-1003), each of one of 4 classes; train labels by
    ``labels_of(true labels)``."""
    splits = {}
    for name, size in (("train", n), ("validation", n // 3), ("test", n // 3)):
        kind = rng.integers(0, 4, size)
        y = kind.copy() if name != "train" else labels_of(kind.copy())
        splits[name] = probe.ProbeSplit.from_packets(
            _udp_vectors(1000 + kind), {"app": y, "traffic": y % 2, "aux": y % 3},
            np.array([f"f{i}" for i in range(size)], object), np.zeros(size, np.int64))
    return splits


def test_a_probe_that_cannot_fit_its_training_rows_fails_with_its_name_and_writes_nothing():
    rng = np.random.default_rng(0)
    healthy, facts = probe.run_probe("header_gbt", _probe_splits(lambda y: y, rng))
    assert healthy["app"]["macro_f1"] == 1.0
    assert facts["fit"]["app"]["train_accuracy"] == 1.0
    assert facts["fit"]["app"]["majority_share"] < 0.3
    assert facts["fit"]["app"]["validation_accuracy"] == 1.0
    assert healthy["app"]["per_flow"]["all"]["macro_f1"] == 1.0
    # Shuffled training labels: no feature tells them, so the fit stays at the majority share.
    shuffled = _probe_splits(lambda y: rng.permutation(y), rng)
    with pytest.raises(probe.ProbeDidNotFitError, match=r"probe_header_gbt: app: training accuracy"):
        probe.run_probe("header_gbt", shuffled)
    # A constructed case: every packet the same, four classes.
    same = _probe_splits(lambda y: y, rng)
    for split in same.values():
        for key in split.features:
            split.features[key][:] = 0
    with pytest.raises(probe.ProbeDidNotFitError, match="probe_logreg_bytes: app"):
        probe.run_probe("logreg_bytes", same)


# ------------------------------------------------------------------------ identifier arms
def test_probe_arms_change_what_the_probes_read_and_never_the_test_vectors(data_dir):
    """mask zeroes the hosts' fields in every split's features; redraw forges the training rows
    only; the test vectors kept for the forged tests stay as captured under every arm."""
    sets = ("header", "bytes_160")
    arms = {arm: probe.load_splits(data_dir, "flow_split", probes=("header_gbt", "bytes_rf"),
                                   identifiers=arm)
            for arm in perturb.IDENTIFIER_ARMS}
    keep, _ = arms["keep"]
    ttl, ip_id = (probe.FEATURE_SETS["header"].index(f) for f in ("ttl", "ip_id"))
    masked, _ = arms["mask"]
    for split in ("train", "validation", "test"):
        assert not masked[split].features["header"][:, [ttl, ip_id]].any(), split
        assert keep[split].features["header"][:, ttl].any(), split
        ports = [probe.FEATURE_SETS["header"].index(f) for f in ("src_port", "dst_port")]
        assert np.array_equal(masked[split].features["header"][:, ports],
                              keep[split].features["header"][:, ports])
    redrawn, pools = arms["redraw"]
    assert not np.array_equal(redrawn["train"].features["header"], keep["train"].features["header"])
    for split in ("validation", "test"):
        for name in sets:
            assert np.array_equal(redrawn[split].features[name], keep[split].features[name])
    for arm, (splits, _) in arms.items():
        assert np.array_equal(splits["test"].packets, keep["test"].packets), arm
        assert splits["train"].packets is None
    assert ("client_port", 0) in pools and ("ttl", 0) in pools
