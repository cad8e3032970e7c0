"""The demo captures: deterministic bytes, every class covered, real-looking captures, learnable."""

import collections
import hashlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from scapy.all import IP, TCP, UDP, raw, rdpcap
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mtc_keras import capture, demo_data, labels, packets

SMALL = 16  # packets_per_file for tests that do not need the default size


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, demo_data.write_demo_captures(root)


def test_same_seed_same_bytes_from_cli_and_function(tmp_path):
    cli = subprocess.run([sys.executable, "-m", "mtc_keras.demo_data", str(tmp_path / "cli"),
                          "--packets_per_file", str(SMALL), "--seed", "7"],
                         capture_output=True, text=True, check=True)
    assert "wrote" in cli.stdout
    demo_data.write_demo_captures(tmp_path / "function", SMALL, seed=7)
    demo_data.write_demo_captures(tmp_path / "other_seed", SMALL, seed=8)
    first, second = _digests(tmp_path / "cli"), _digests(tmp_path / "function")
    assert len(first) == len(demo_data.DEMO_CAPTURES)
    assert first == second
    other = _digests(tmp_path / "other_seed")
    assert other.keys() == first.keys()
    assert all(other[k] != first[k] for k in first)


def test_every_app_and_traffic_class_with_and_without_vpn(default_demo):
    _, files = default_demo
    found = [labels.iscx_labels(f.name) for f in files]
    assert None not in found  # real ISCX file names only
    assert {lab.app for lab in found} == set(range(len(labels.ISCX_APPS)))
    assert {lab.traffic for lab in found} - {labels.MISSING} == set(range(len(labels.ISCX_TRAFFIC)))
    assert {lab.vpn for lab in found} == {True, False}
    names = {f.name.lower() for f in files}
    assert "torrent01.pcap" in names and any(labels.iscx_labels(n).traffic == labels.MISSING for n in names)


def test_default_size_is_a_few_mb_and_about_200_packets_per_app(default_demo):
    root, files = default_demo
    total = sum(f.stat().st_size for f in files)
    assert 1e6 < total < 5e6
    kept = collections.Counter()
    for f in files:
        kept[labels.ISCX_APPS[labels.iscx_labels(f.name).app]] += len(packets.process_capture(f))
    assert set(kept) == set(labels.ISCX_APPS)
    assert all(100 <= n <= 350 for n in kept.values()), kept


def test_files_are_pcap_or_pcapng_by_magic_in_the_official_layout(default_demo):
    root, files = default_demo
    formats = {f.name: capture.sniff_format(f) for f in files}
    assert formats["vpn_hangouts_audio2.pcap"] == "pcapng"  # as in the real download
    assert {"pcap", "pcapng"} == set(formats.values())
    for name, fmt in formats.items():
        named_ng = name.endswith(".pcapng") or name in demo_data.PCAPNG_NAMED_PCAP
        assert fmt == ("pcapng" if named_ng else "pcap"), name
    top = {f.relative_to(root).parts[0] for f in files}
    assert top == set(demo_data.ARCHIVES)
    assert any(len(f.relative_to(root).parts) > 2 for f in files)  # a deeper folder too


def test_headers_are_valid_for_an_independent_reader(tmp_path):
    """scapy reads every file, and the IP and TCP/UDP checksums the generator wrote are right."""
    files = demo_data.write_demo_captures(tmp_path, SMALL)
    checked = 0
    for f in files:
        for frame in rdpcap(str(f)):
            if IP not in frame:
                continue
            ip = frame[IP]
            layer = ip[TCP] if TCP in ip else ip[UDP]
            expected = (ip.chksum, layer.chksum)
            ip.chksum, layer.chksum = None, None
            rebuilt = IP(raw(ip))
            got = (rebuilt.chksum, (rebuilt[TCP] if TCP in rebuilt else rebuilt[UDP]).chksum)
            assert got == expected, f.name
            checked += 1
    assert checked > 1000


def test_zip_archives_hold_the_same_captures(tmp_path):
    folders = demo_data.write_demo_captures(tmp_path / "folders", SMALL)
    zips = demo_data.write_demo_captures(tmp_path / "zips", SMALL, zip_archives=demo_data.ARCHIVES)
    assert sorted(z.name for z in zips) == sorted(f"{a}.zip" for a in demo_data.ARCHIVES)
    members = {}
    for z in zips:
        with zipfile.ZipFile(z) as archive:
            members.update({info.filename: archive.read(info) for info in archive.infolist()})
    assert members == {str(f.relative_to(tmp_path / "folders")): f.read_bytes() for f in folders}


def test_preprocessing_drops_what_it_should_and_vpn_is_tunnelled(default_demo):
    _, files = default_demo
    totals = collections.Counter()
    for f in files:
        batch = packets.process_capture(f)
        totals.update(batch.counts)
        fields = packets.header_fields(batch.packets)
        ports = set(fields["src_port"].tolist()) | set(fields["dst_port"].tolist())
        if labels.iscx_labels(f.name).vpn:
            # OpenVPN over UDP 1194, plus the background SSDP packet some captures hold.
            tunnel = (fields["protocol"] == 17) & ((fields["src_port"] == 1194) | (fields["dst_port"] == 1194))
            assert np.count_nonzero(~tunnel) <= 1, f.name
        assert 53 not in ports
    assert totals["dropped_empty_tcp"] > 0 and totals["dropped_dns"] > 0 and totals["dropped_not_ip"] > 0
    assert totals["read"] == totals["kept"] + sum(totals[f"dropped_{r}"] for r in packets.DROP_REASONS)


def test_classes_are_learnable_but_vectors_are_not_copies(default_demo):
    """A linear model on byte histograms, trained on some captures of each app, names the app of
    packets from the other captures far above chance; no vector repeats except the one
    background SSDP packet shared across captures."""
    _, files = default_demo
    rows, apps, held_out = [], [], []
    seen_per_app = collections.Counter()
    vectors = []
    for f in sorted(files, key=lambda f: f.name):
        app = labels.iscx_labels(f.name).app
        batch = packets.process_capture(f)
        masked = packets.mask_ports(batch.packets)
        vectors.append(batch.packets)
        hist = np.stack([np.bincount(v, minlength=256) for v in masked[:, 40:]]).astype(np.float32)
        hist[:, 0] = 0  # padding
        features = np.concatenate([hist / np.maximum(hist.sum(1, keepdims=True), 1),
                                   masked[:, :40] / 255.0], axis=1)
        rows.append(features)
        apps.append(np.full(len(batch), app))
        held_out.append(np.full(len(batch), seen_per_app[app] % 2 == 1))
        seen_per_app[app] += 1
    x, y, test = np.concatenate(rows), np.concatenate(apps), np.concatenate(held_out)
    model = make_pipeline(StandardScaler(), RidgeClassifier()).fit(x[~test], y[~test])
    accuracy = model.score(x[test], y[test])
    assert accuracy > 0.5, accuracy  # chance is about 1/17
    all_vectors = np.concatenate(vectors)
    unique = np.unique(all_vectors, axis=0)
    assert len(all_vectors) - len(unique) < len(files) // 2
