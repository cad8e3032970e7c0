"""Tests of the USTC-TFC2016 builder: real TFDS builds on generated captures (and on the shared
real captures when present), no mocks."""

import collections
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mtc_keras import labels, packets, ustc
from tests.conftest import require_shared
from tfds_builders.ustc_tfc2016 import make_dummy_data
from tfds_builders.ustc_tfc2016 import ustc_tfc2016_dataset_builder as builder_module

BUILDER_DIR = pathlib.Path(builder_module.__file__).resolve().parent
REPO_ROOT = BUILDER_DIR.parents[1]
SPLIT_NAMES = ("train", "validation", "test")
DUMMY_CLASSES = {"BitTorrent", "Facetime", "MySQL", "SMB", "Weibo", "Nsis-ay", "Zeus"}


class PaperConfigTest(tfds.testing.DatasetBuilderTestCase):
    """The manual folder is dummy_data/ (make_dummy_data.py writes it)."""

    DATASET_CLASS = builder_module.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["paper"]
    SPLITS = {"train": 147, "validation": 37, "test": 46}


class FlowSplitConfigTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = builder_module.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["flow_split"]
    SPLITS = {"train": 152, "validation": 31, "test": 45}  # 2 test vectors dropped: seen in train


def _build(config, data_dir, manual_dir=make_dummy_data.DUMMY_DATA):
    builder = builder_module.Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return tfds.builder(f"ustc_tfc2016/{config}", data_dir=str(data_dir))  # reloaded from disk


def _examples(builder) -> dict:
    return {split: list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
            for split in SPLIT_NAMES}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    result = {}
    for name in ("paper", "flow_split"):
        reloaded = _build(name, data_dir)
        result[name] = (reloaded, _examples(reloaded))
    return result


# ------------------------------------------------------------------ dummy data
def test_dummy_data_is_what_make_dummy_data_writes(tmp_path):
    """The committed dummy_data/ has the files the generator writes (contents differ only in
    the 7z's timestamps, so names and capture bytes are compared)."""
    written = make_dummy_data.write_dummy_data(tmp_path / "dummy")
    committed = sorted(p.relative_to(make_dummy_data.DUMMY_DATA)
                       for p in make_dummy_data.DUMMY_DATA.rglob("*") if p.is_file())
    assert committed == [p.relative_to(tmp_path / "dummy") for p in written]
    for relative in committed:
        if relative.suffix != ".7z":
            assert (make_dummy_data.DUMMY_DATA / relative).read_bytes() == (tmp_path / "dummy" / relative).read_bytes()


@pytest.mark.parametrize("name", ["paper", "flow_split"])
def test_archive_member_is_read_as_a_capture_of_its_class(built, name, tmp_path):
    import py7zr

    _, examples = built[name]
    smb = [e for split in SPLIT_NAMES for e in examples[split] if e["capture"] == b"SMB.7z/SMB.pcap"]
    with py7zr.SevenZipFile(make_dummy_data.DUMMY_DATA / "Benign" / "SMB.7z") as archive:
        archive.extract(path=tmp_path, targets=["SMB.pcap"])
    expected = packets.process_capture(tmp_path / "SMB.pcap")
    assert len(smb) == len(expected) > 0
    assert {int(e["app"]) for e in smb} == {labels.USTC_APPS.index("SMB")}
    assert {int(e["malware"]) for e in smb} == {0}
    got = {e["packet"].tobytes() for e in smb}
    assert got == {row.tobytes() for row in expected.packets}


@pytest.mark.parametrize("name", ["paper", "flow_split"])
def test_labels_follow_file_names_and_numbered_parts(built, name):
    _, examples = built[name]
    by_capture = collections.defaultdict(set)
    for split in SPLIT_NAMES:
        for e in examples[split]:
            by_capture[e["capture"].decode()].add((int(e["app"]), int(e["malware"])))
    assert set(by_capture) == {"BitTorrent.pcap", "Facetime.pcap", "MySQL.pcap", "SMB.7z/SMB.pcap",
                               "Weibo-1.pcap", "Weibo-2.pcapng", "Nsis-ay.pcap", "Zeus.pcap"}
    for capture, pairs in by_capture.items():
        lab = labels.ustc_labels(capture.split("/")[0])
        assert pairs == {(lab.app, lab.malware)}, capture
    assert by_capture["Weibo-1.pcap"] == by_capture["Weibo-2.pcapng"]
    assert by_capture["Nsis-ay.pcap"] == {(labels.USTC_APPS.index("Nsis-ay"), 1)}


def test_keys_are_deterministic_and_hold_no_local_path(tmp_path):
    """Two builds from copies of the manual folder at different paths give the same keys and
    examples; no key, capture or flow id holds a directory of the manual folder."""
    copies = [tmp_path / "first" / "manual", tmp_path / "second" / "elsewhere"]
    builds = []
    for copy in copies:
        shutil.copytree(make_dummy_data.DUMMY_DATA, copy)
        builds.append(ustc.build(copy, "flow_split"))
    for split in SPLIT_NAMES:
        a, b = builds[0].splits[split], builds[1].splits[split]
        keys = [a.key(i) for i in range(len(a))]
        assert keys == [b.key(i) for i in range(len(b))]
        assert len(set(keys)) == len(keys)
        np.testing.assert_array_equal(a.packets, b.packets)
        assert list(a.flow_ids) == list(b.flow_ids)
        for text in keys + list(a.flow_ids) + list(a.captures):
            assert "first" not in text and "manual" not in text and "Benign" not in text
            assert not text.startswith("/")


def test_flow_split_puts_each_flow_and_each_vector_in_one_split(built):
    builder, examples = built["flow_split"]
    flows = {s: {e["flow_id"] for e in examples[s]} for s in SPLIT_NAMES}
    vectors = {s: {e["packet"].tobytes() for e in examples[s]} for s in SPLIT_NAMES}
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1:]:
            assert not flows[a] & flows[b], (a, b)
            assert not vectors[a] & vectors[b], (a, b)
    report = builder.info.metadata["build_report"]
    assert report["leakage"]["test_packets_with_flow_in_train"] == 0
    assert report["leakage"]["test_vectors_in_train"] == 0
    assert report["leakage_by_address_flow"]["test_packets_with_flow_in_train"] == 0
    assert sum(report["cross_split_duplicates_dropped"].values()) > 0  # the dummy keep-alives


def test_paper_split_leaks_and_says_so(built):
    report = built["paper"][0].info.metadata["build_report"]
    assert report["leakage"]["test_packets_with_flow_in_train"] > 0.5
    assert report["leakage"]["test_vectors_in_train"] > 0
    assert sum(report["cross_split_duplicates_dropped"].values()) == 0


def test_anonymised_class_is_keyed_without_addresses_and_still_split(built):
    """Facetime (a fresh address pair on every packet, one port pair): the key drops the
    addresses, falls back to capture windows, and the class still reaches every split."""
    builder, examples = built["flow_split"]
    keys = builder.info.metadata["build_report"]["flow_keys"]
    assert keys["Facetime"]["key"] == "ports+window"
    assert keys["Facetime"]["address_flows_per_packet"] == 1 and keys["Facetime"]["port_keys"] == 1
    assert keys["Facetime"]["conversations"] == ustc.WINDOWS
    assert {keys[name]["key"] for name in DUMMY_CLASSES - {"Facetime"}} == {"address"}
    facetime = labels.USTC_APPS.index("Facetime")
    for split in SPLIT_NAMES:
        assert any(int(e["app"]) == facetime for e in examples[split]), split


@pytest.mark.parametrize("name", ["paper", "flow_split"])
def test_report_counts_add_up(built, name):
    builder, examples = built[name]
    report = builder.info.metadata["build_report"]
    counts = report["packet_counts"]
    assert counts["read"] == counts["kept"] + sum(counts[f"dropped_{r}"] for r in packets.DROP_REASONS)
    assert counts["dropped_dns"] > 0 and counts["dropped_empty_tcp"] > 0
    assert sum(report["kept_packets"]["app"].values()) == counts["kept"]
    for split in SPLIT_NAMES:
        got = collections.Counter(labels.USTC_APPS[int(e["app"])] for e in examples[split])
        assert report["split_packets"][split]["total"] == len(examples[split]) == builder.info.splits[split].num_examples
        assert {k: v for k, v in report["split_packets"][split]["app"].items() if v} == dict(got)
        assert sum(report["split_packets"][split]["malware"].values()) == len(examples[split])
    for cls in labels.USTC_APPS:  # no cap reached here: every kept packet is in a split or dropped
        in_splits = sum(report["split_packets"][s]["app"][cls] for s in SPLIT_NAMES)
        assert report["sampled_packets"][cls] == report["kept_packets"]["app"][cls]
        assert report["kept_packets"]["app"][cls] >= in_splits
    assert sum(report["kept_packets"]["app"].values()) == (
        sum(len(examples[s]) for s in SPLIT_NAMES) + sum(report["cross_split_duplicates_dropped"].values()))
    assert report["captures_unknown"] == [make_dummy_data.UNKNOWN_CAPTURE]
    assert [f.split(":")[0] for f in report["captures_unreadable"]] == [make_dummy_data.NOT_A_CAPTURE]
    assert sorted(report["other_files"]) == ["Benign/SMB.7z/notes.txt", make_dummy_data.OTHER_FILE]
    assert set(report["classes_without_captures"]["app"]) == set(labels.USTC_APPS) - DUMMY_CLASSES - {"Tinba"}
    assert report["classes_without_packets"]["app"] == ["Tinba"]
    assert builder.info.metadata["class_names"] == {t: list(n) for t, n in labels.TASKS["ustc_tfc2016"].items()}


def test_per_class_cap_is_a_uniform_sample_of_each_class(tmp_path):
    full = ustc.build(make_dummy_data.DUMMY_DATA, "paper")
    capped = ustc.build(make_dummy_data.DUMMY_DATA, "paper", max_per_class=10)
    assert set(capped.report["sampled_packets"].values()) <= {0, 10}
    assert capped.report["kept_packets"] == full.report["kept_packets"]
    weibo = labels.USTC_APPS.index("Weibo")
    captures = {c for s in capped.splits.values() for c, a in zip(s.captures, s.app) if a == weibo}
    assert captures == {"Weibo-1.pcap", "Weibo-2.pcapng"} or len(captures) == 1
    full_keys = {s.key(i) for s in full.splits.values() for i in range(len(s))}
    assert {s.key(i) for s in capped.splits.values() for i in range(len(s))} <= full_keys


def test_bad_arguments_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown USTC-TFC2016 config"):
        ustc.build(make_dummy_data.DUMMY_DATA, "flow_split_masked")
    with pytest.raises(ValueError, match="max_per_class"):
        ustc.build(make_dummy_data.DUMMY_DATA, "paper", max_per_class=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ustc.build(tmp_path / "nowhere")
    (tmp_path / "Benign").mkdir()
    (tmp_path / "Benign" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no USTC-TFC2016 capture"):
        ustc.build(tmp_path)


def test_broken_archive_and_duplicate_capture_are_reported_and_skipped(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(make_dummy_data.DUMMY_DATA, manual)
    (manual / "Malware" / "Cridex.7z").write_bytes(b"7z\xbc\xaf\x27\x1c broken")
    shutil.copy(manual / "Malware" / "Zeus.pcap", manual / "Benign" / "Zeus.pcap")  # wrong folder, twice
    sources, skipped = ustc.find_captures(manual)
    assert [s.split(":")[0] for s in skipped["unreadable_archives"]] == ["Malware/Cridex.7z"]
    assert skipped["duplicate_captures"] == ["Malware/Zeus.pcap (same capture as Benign/Zeus.pcap)"]
    assert skipped["misplaced_captures"][0].startswith("Benign/Zeus.pcap")
    assert [s.name for s in sources].count("Zeus.pcap") == 1


def test_load_packets_returns_the_builder_examples(built):
    loaded = ustc.load_packets(make_dummy_data.DUMMY_DATA, config="flow_split")
    _, examples = built["flow_split"]
    for split in SPLIT_NAMES:
        vectors, task_labels, flow_ids = loaded[split]
        assert vectors.dtype == np.uint8 and vectors.shape == (len(examples[split]), packets.VECTOR_LEN)
        assert set(task_labels) == set(labels.TASKS["ustc_tfc2016"])
        # TFDS stores examples in its own (hashed-key) order: compare as sets of rows.
        got = sorted(zip(flow_ids, (v.tobytes() for v in vectors), task_labels["app"], task_labels["malware"]))
        want = sorted((e["flow_id"].decode(), e["packet"].tobytes(), e["app"], e["malware"]) for e in examples[split])
        assert got == want


# ------------------------------------------------------------------ the real captures (../shared/data)
@pytest.fixture(scope="module")
def shared_ustc():
    return require_shared("ustc-tfc2016")


@pytest.mark.parametrize("config", ["paper", "flow_split"])
def test_build_from_the_shared_real_captures(shared_ustc, config):
    built = ustc.build(shared_ustc, config)
    report = built.report
    assert report["classes_without_captures"]["app"] == [] and report["captures_unreadable"] == []
    assert len(report["captures_used"]) == 20
    assert set(report["packet_counts_per_class"]) == set(labels.USTC_APPS)
    for name in labels.USTC_APPS:
        per_class = report["packet_counts_per_class"][name]
        assert per_class["read"] > 0
        assert per_class["kept"] == report["kept_packets"]["app"][name]
        assert sum(report["split_packets"][s]["app"][name] for s in SPLIT_NAMES) <= per_class["kept"]
    assert report["flow_keys"]["Facetime"]["key"] != "address"  # one address pair per packet
    if config == "flow_split":
        assert report["leakage"]["test_packets_with_flow_in_train"] == 0
        assert report["leakage"]["test_vectors_in_train"] == 0
    else:
        assert report["leakage"]["test_packets_with_flow_in_train"] > 0


@pytest.mark.slow
def test_tfds_build_command_on_the_shared_real_captures(shared_ustc, tmp_path):
    tfds_cli = shutil.which("tfds", path=str(pathlib.Path(sys.executable).parent))
    command = [tfds_cli] if tfds_cli else [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main"]
    run = subprocess.run(
        command + ["build", "tfds_builders/ustc_tfc2016", "--config=flow_split",
                   f"--manual_dir={shared_ustc}", f"--data_dir={tmp_path}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "captures used: 20 of 20 found" in run.stdout + run.stderr

    import tfds_builders.ustc_tfc2016  # noqa: F401  (registers the builder for tfds.load)

    splits, info = tfds.load("ustc_tfc2016/flow_split", data_dir=str(tmp_path), with_info=True)
    report = info.metadata["build_report"]
    for split, ds in splits.items():
        assert report["split_packets"][split]["total"] == info.splits[split].num_examples > 0
    apps = {int(a) for a in next(iter(splits["train"].batch(100_000)))["app"].numpy()}
    assert {labels.USTC_APPS[a] for a in apps} == {n for n, c in report["kept_packets"]["app"].items() if c}
