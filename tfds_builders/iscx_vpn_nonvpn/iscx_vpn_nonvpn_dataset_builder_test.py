"""Tests of the ISCX VPN-nonVPN builder: real TFDS builds on generated captures, no mocks."""

import collections
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mtc_keras import labels, packet_datasets, packets, synthetic
from mtc_keras import iscx as iscx_logic
from tfds_builders.iscx_vpn_nonvpn import iscx_vpn_nonvpn_dataset_builder as iscx
from tfds_builders.iscx_vpn_nonvpn import make_dummy_data

BUILDER_DIR = pathlib.Path(iscx.__file__).resolve().parent
REPO_ROOT = BUILDER_DIR.parents[1]


class PaperConfigTest(tfds.testing.DatasetBuilderTestCase):
    """The manual folder is dummy_data/ (make_dummy_data.py writes it)."""

    DATASET_CLASS = iscx.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["paper"]
    SPLITS = {"train": 87, "validation": 23, "test": 26}


class FlowSplitConfigsTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = iscx.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["flow_split", "flow_split_masked"]
    SPLITS = {"train": 86, "validation": 4, "test": 44}


# ------------------------------------------------------------------ helpers
def _kept_by_capture(manual_dir) -> dict:
    """{capture name: PacketBatch} straight from mtc_keras.packets, for every known,
    readable capture under manual_dir (zip members through a temporary copy)."""
    out = {}
    for path in sorted(pathlib.Path(manual_dir).rglob("*")):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
                for member in archive.namelist():
                    name = member.rsplit("/", 1)[-1]
                    if labels.iscx_labels(name):
                        copy = pathlib.Path(tmp, name)
                        copy.write_bytes(archive.read(member))
                        out[name] = packets.process_capture(copy)
        elif path.is_file() and labels.iscx_labels(path.name):
            try:
                out[path.name] = packets.process_capture(path)
            except packets.CaptureFormatError:
                pass
    return out


def _build(config, data_dir, manual_dir=make_dummy_data.DUMMY_DATA, workers=None):
    builder = iscx.Builder(config=config, data_dir=str(data_dir))
    builder.NUM_WORKERS = workers
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _examples(builder) -> dict:
    return {split: list(tfds.as_numpy(builder.as_dataset(split=split))) for split in ("train", "validation", "test")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The three named configs built from dummy_data/, reloaded from disk, with their examples."""
    data_dir = tmp_path_factory.mktemp("tfds")
    result = {}
    for name in ("paper", "flow_split", "flow_split_masked"):
        _build(name, data_dir)
        reloaded = tfds.builder(f"iscx_vpn_nonvpn/{name}", data_dir=str(data_dir))
        result[name] = (reloaded, _examples(reloaded))
    return result


@pytest.fixture(scope="module")
def dummy_kept():
    return _kept_by_capture(make_dummy_data.DUMMY_DATA)


# ------------------------------------------------------------------ dummy data and discovery
def test_committed_dummy_data_is_what_make_dummy_data_writes(tmp_path):
    files = make_dummy_data.write_dummy_data(tmp_path)
    committed = sorted(p for p in make_dummy_data.DUMMY_DATA.rglob("*") if p.is_file())
    assert [p.relative_to(make_dummy_data.DUMMY_DATA) for p in committed] == [p.relative_to(tmp_path) for p in files]
    for mine, theirs in zip(committed, files):
        assert mine.read_bytes() == theirs.read_bytes(), mine.name
    assert sum(p.stat().st_size for p in committed) < 300_000


def test_find_captures_any_depth_zips_duplicates_and_junk(tmp_path):
    synthetic.write_demo_captures(tmp_path, 16, captures=["AIMchat1.pcapng", "vpn_netflix_A.pcap"])
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    with zipfile.ZipFile(deep / "NonVPN-PCAPs-01.zip", "w") as archive:
        archive.write(tmp_path / "NonVPN-PCAPs-01" / "AIMchat1.pcapng", "x/y/AIMchat1.pcapng")  # duplicate
        archive.writestr("x/Torrent01.pcap", b"")  # known name, any case
        archive.writestr("x/notes.txt", b"hello")
    (deep / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "mystery.pcapng").write_bytes(b"")
    sources, skipped = iscx.find_captures(tmp_path)
    assert sorted(s.name for s in sources) == ["AIMchat1.pcapng", "Torrent01.pcap", "vpn_netflix_A.pcap"]
    torrent = next(s for s in sources if s.name == "Torrent01.pcap")
    assert torrent.member == "x/Torrent01.pcap" and torrent.shown == "a/b/c/NonVPN-PCAPs-01.zip/x/Torrent01.pcap"
    assert skipped["unknown_captures"] == ["mystery.pcapng"]
    assert len(skipped["duplicate_captures"]) == 1 and "AIMchat1.pcapng" in skipped["duplicate_captures"][0]
    assert skipped["other_files"] == ["a/b/c/NonVPN-PCAPs-01.zip/x/notes.txt"]
    assert skipped["unreadable_archives"][0].startswith("a/b/c/broken.zip")


@pytest.mark.parametrize("non_vpn,vpn,cap,expected", [
    (100, 100, 50, (25, 25)),  # half each
    (100, 100, 51, (26, 25)),
    (10, 100, 50, (10, 40)),  # a short side takes all, the other fills up
    (100, 10, 50, (40, 10)),
    (20, 20, 50, (20, 20)),  # fewer than the cap: everything
    (0, 100, 50, (0, 50)),
    (100, 0, 50, (50, 0)),
])
def test_quotas_follow_section_3_2_3(non_vpn, vpn, cap, expected):
    assert iscx_logic.quotas(non_vpn, vpn, cap) == expected


# ------------------------------------------------------------------ what the builds hold
def test_paper_holds_exactly_the_kept_packets_with_labels_from_file_names(built, dummy_kept):
    _, examples = built["paper"]
    got = collections.Counter()
    for split in examples.values():
        for ex in split:
            capture = ex["capture"].decode()
            lab = labels.iscx_labels(capture)
            assert (ex["app"], ex["traffic"], ex["aux"], ex["vpn"]) == (lab.app, lab.traffic, lab.aux, lab.vpn)
            got[capture, ex["flow_id"].decode(), ex["packet"].tobytes()] += 1
    expected = collections.Counter(
        (name, packet_datasets.flow_id(name, flow), vector.tobytes())
        for name, batch in dummy_kept.items() for vector, flow in zip(batch.packets, batch.flow_ids))
    assert got == expected  # the cap (50,000) takes everything here
    tor = [ex for split in examples.values() for ex in split if ex["capture"] == b"torFacebook.pcap"]
    assert tor and all(ex["traffic"] == labels.MISSING and ex["aux"] == labels.MISSING for ex in tor)


@pytest.mark.parametrize("name", ["flow_split", "flow_split_masked"])
def test_flow_split_puts_each_flow_and_each_vector_in_one_split(built, name):
    builder, examples = built[name]
    flows = {split: {ex["flow_id"] for ex in exs} for split, exs in examples.items()}
    vectors = {split: {ex["packet"].tobytes() for ex in exs} for split, exs in examples.items()}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not flows[a] & flows[b]
        assert not vectors[a] & vectors[b]
    report = builder.info.metadata["build_report"]
    dropped = sum(report["cross_split_duplicates_dropped"].values())
    assert dropped > 0  # the shared background packet would have crossed
    total = sum(len(exs) for exs in examples.values())
    assert total + dropped == sum(len(exs) for exs in built["paper"][1].values())
    assert 0.5 < len(examples["train"]) / total < 0.75
    assert report["leakage"]["test_packets_with_flow_in_train"] == 0.0
    assert report["leakage"]["test_vectors_in_train"] == 0.0


def test_masked_config_is_flow_split_with_ports_zeroed(built):
    plain = [ex["packet"] for exs in built["flow_split"][1].values() for ex in exs]
    masked = [ex["packet"] for exs in built["flow_split_masked"][1].values() for ex in exs]
    fields = packets.header_fields(np.stack(masked))
    assert not fields["src_port"].any() and not fields["dst_port"].any()
    assert collections.Counter(v.tobytes() for v in packets.mask_ports(np.stack(plain))) == \
        collections.Counter(v.tobytes() for v in masked)


def test_paper_split_leaks_flows_as_the_paper_did(built):
    report = built["paper"][0].info.metadata["build_report"]
    assert report["leakage"]["test_packets_with_flow_in_train"] > 0.5


def test_build_report_in_metadata(built, dummy_kept):
    builder, examples = built["flow_split"]  # reloaded from disk: the report is in metadata.json
    assert builder.info.metadata["class_names"] == {t: list(n) for t, n in labels.TASKS["iscx"].items()}
    assert builder.info.metadata["missing_label"] == labels.MISSING
    report = builder.info.metadata["build_report"]
    assert report["captures_unknown"] == [make_dummy_data.UNKNOWN_CAPTURE]
    [unreadable] = report["captures_unreadable"]
    assert unreadable.startswith(make_dummy_data.NOT_A_CAPTURE) and "not a pcap or pcapng" in unreadable
    assert str(make_dummy_data.DUMMY_DATA) not in str(report)  # no local paths
    assert report["other_files"] == [make_dummy_data.OTHER_FILE]
    assert "NonVPN-PCAPs-03.zip/NonVPN-PCAPs-03/torrent01.pcap" in report["captures_found"]
    assert "email1a" in report["captures_missing"] and "aimchat1" not in report["captures_missing"]
    assert "Tor" not in report["classes_without_captures"]["app"]
    # Email's one capture is the file that is not a capture: found, but no packet kept.
    assert "Email" in report["classes_without_packets"]["app"] and "Email" not in report["classes_without_captures"]["app"]
    counts = report["packet_counts"]
    assert counts["read"] == counts["kept"] + sum(counts[f"dropped_{r}"] for r in packets.DROP_REASONS)
    assert counts["kept"] == sum(len(b) for b in dummy_kept.values())
    aim_chat = labels.ISCX_APPS.index("AIM Chat")
    aim = sum(len(b) for name, b in dummy_kept.items() if labels.iscx_labels(name).app == aim_chat)
    assert report["kept_packets"]["app"]["AIM Chat"] == aim
    for split, exs in examples.items():
        assert report["split_packets"][split]["total"] == len(exs) == builder.info.splits[split].num_examples
        apps = collections.Counter(labels.ISCX_APPS[ex["app"]] for ex in exs)
        assert {k: v for k, v in report["split_packets"][split]["app"].items() if v} == dict(apps)


def test_cap_balances_vpn_and_non_vpn_and_workers_do_not_change_the_result(tmp_path, dummy_kept):
    cap = 12
    config = iscx.IscxConfig(name="capped", split_by_flow=True, max_packets_per_app=cap)
    one = _examples(_build(config, tmp_path / "one", workers=1))
    two = _examples(_build(config, tmp_path / "two", workers=2))

    def rows(examples):
        return sorted((split, ex["flow_id"], ex["packet"].tobytes()) for split, exs in examples.items() for ex in exs)

    assert rows(one) == rows(two)
    available = collections.Counter()
    for name, batch in dummy_kept.items():
        lab = labels.iscx_labels(name)
        available[lab.app, lab.vpn] += len(batch)
    taken = collections.Counter((ex["app"], bool(ex["vpn"])) for exs in one.values() for ex in exs)
    for app in {a for a, _ in available}:
        non_vpn, vpn = available[app, False], available[app, True]
        got_non_vpn, got_vpn = taken[app, False], taken[app, True]
        if non_vpn + vpn <= cap:
            assert (got_non_vpn, got_vpn) == (non_vpn, vpn)
            continue
        # Up to the cap, half per side; a short side gives all it has. (Duplicates dropped
        # across splits may take a few away.)
        assert got_non_vpn + got_vpn <= cap
        for got, have, other in ((got_non_vpn, non_vpn, vpn), (got_vpn, vpn, non_vpn)):
            want = min(have, max(cap // 2, cap - other))
            assert want - 2 <= got <= want, (labels.ISCX_APPS[app], got, want)


# ------------------------------------------------------------------ the real `tfds build` command
@pytest.mark.slow
def test_tfds_build_command_then_tfds_load(tmp_path):
    manual, data = tmp_path / "manual", tmp_path / "data"
    synthetic.write_demo_captures(manual, 16, zip_archives=("VPN-PCAPs-02",))
    tfds_cli = shutil.which("tfds", path=str(pathlib.Path(sys.executable).parent))
    command = [tfds_cli] if tfds_cli else [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main"]
    run = subprocess.run(
        command + ["build", "tfds_builders/iscx_vpn_nonvpn", "--config=flow_split",
                   f"--manual_dir={manual}", f"--data_dir={data}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr  # the build report is logged (absl: stdout under the tfds CLI)
    assert f"captures used: {len(synthetic.DEMO_CAPTURES)} of {len(synthetic.DEMO_CAPTURES)} found" in log

    import tfds_builders.iscx_vpn_nonvpn  # noqa: F401  (registers the builder for tfds.load)

    splits, info = tfds.load("iscx_vpn_nonvpn/flow_split", data_dir=str(data), with_info=True)
    report = info.metadata["build_report"]
    for split, ds in splits.items():
        batch = next(iter(ds.batch(4096)))
        assert batch["packet"].shape[1:] == (packets.VECTOR_LEN,)
        assert len(batch["packet"]) == report["split_packets"][split]["total"] == info.splits[split].num_examples
    train_apps = next(iter(splits["train"].batch(4096)))["app"].numpy()
    assert {labels.ISCX_APPS[a] for a in train_apps} == set(labels.ISCX_APPS)
