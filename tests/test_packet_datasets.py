"""mtc_keras.packet_datasets: the packet datasets (ISCX VPN-nonVPN, USTC-TFC2016) build through
one pipeline: one build report layout, and ``load_packets`` gives what the TFDS builder writes."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from mtc_keras import iscx, labels, registry, ustc
from tests.conftest import REPO_ROOT

SPLIT_NAMES = [name for name, _ in registry.SPLITS]


def _dummy_data(key: str):
    return REPO_ROOT / registry.DATASETS[key].builder_folder / "dummy_data"


def test_iscx_load_packets_returns_the_builder_examples(tmp_path):
    loaded = iscx.load_packets(_dummy_data("iscx"), config="flow_split")
    built = registry.prepare("iscx", "flow_split", str(tmp_path), manual_dir=str(_dummy_data("iscx")))
    for split in SPLIT_NAMES:
        vectors, task_labels, flow_ids = loaded[split]
        assert vectors.dtype == np.uint8 and set(task_labels) == set(labels.TASKS["iscx"])
        assert all(v.dtype == np.int64 for v in task_labels.values())
        got = sorted(zip(flow_ids, (v.tobytes() for v in vectors), *task_labels.values()))
        examples = tfds.as_numpy(built.as_dataset(split=split))
        want = sorted((e["flow_id"].decode(), e["packet"].tobytes(), *(e[t] for t in task_labels))
                      for e in examples)
        assert got == want and got


def test_both_reports_share_one_layout_and_its_text():
    """The keys every packet dataset's report has come first, in one order; a dataset's own keys
    follow. format_report of either starts with the same capture summary."""
    settings = iscx.config_settings("flow_split")
    iscx_report = iscx.plan(*iscx.find_sources(_dummy_data("iscx")), settings, workers=1).report
    ustc_report = ustc.build(_dummy_data("ustc_tfc2016"), "flow_split").report
    shared = [key for key in iscx_report if key in ustc_report]
    assert shared == list(iscx_report)[:len(shared)] == list(ustc_report)[:len(shared)]
    for key in ("captures_found", "captures_used", "captures_unknown", "captures_unreadable",
                "classes_without_captures", "classes_without_packets", "packet_counts",
                "split_packets", "cross_split_duplicates_dropped", "leakage"):
        assert key in shared, key
    for report, text in ((iscx_report, iscx.format_report(iscx_report)),
                         (ustc_report, ustc.format_report(ustc_report))):
        used, found = len(report["captures_used"]), len(report["captures_found"])
        assert 0 < used < found  # each dummy folder holds a file that is not a capture
        assert text.startswith(f"captures used: {used} of {found} found")
        assert set(report["classes_without_captures"]) == set(report["classes_without_packets"])


def test_a_flow_id_names_its_capture():
    """Flow ids of both datasets are '<capture>|<flow>': no flow is shared across captures."""
    settings = iscx.config_settings("paper")
    plan = iscx.plan(*iscx.find_sources(_dummy_data("iscx")), settings, workers=1)
    rows = [(e["capture"], e["flow_id"]) for split in SPLIT_NAMES for _, e in plan.read(split, settings, 1)]
    built = ustc.build(_dummy_data("ustc_tfc2016"), "paper")
    rows += [pair for split in built.splits.values() for pair in zip(split.captures, split.flow_ids)]
    assert rows
    for capture, flow in rows:
        assert flow.startswith(capture + "|") and len(flow) > len(capture) + 1, (capture, flow)
