"""The `python -m mtc_keras.preprocess CAPTURE --output OUT.npz` command, run as users run it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP

from mtc_keras.packets import DROP_REASONS, process_capture
from tests.conftest import REPO_ROOT
from tests.oracles import eth, write_pcap


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtc_keras.preprocess", *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def frames() -> list[bytes]:
    tcp = [bytes(eth() / IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=443, dport=40000 + i, flags="PA")
                 / (b"tls" * (i + 1))) for i in range(6)]
    return tcp + [
        bytes(eth() / IP() / UDP(sport=33000, dport=53) / b"dns"),
        bytes(eth() / IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=443, dport=40000, flags="A")),
        bytes(eth() / ARP()),
    ]


def test_writes_vectors_flow_ids_and_counts(tmp_path):
    capture = write_pcap(tmp_path / "aim_chat_3a.pcap", frames())
    out = tmp_path / "out" / "vectors.npz"
    result = cli(capture, "--output", out)
    assert result.returncode == 0, result.stderr
    want = process_capture(capture)
    with np.load(out) as npz:  # no pickle needed
        assert npz["packets"].dtype == np.uint8 and npz["packets"].shape == (6, 1500)
        assert np.array_equal(npz["packets"], want.packets)
        assert npz["flow_ids"].tolist() == list(want.flow_ids)
        assert npz["flow_ids"][0] == "tcp 10.1.1.1:443 10.2.2.2:40000"
        counts = {key: int(npz[key]) for key in want.counts}
    assert counts == want.counts
    assert counts["read"] == 9 and counts["kept"] == 6
    assert counts["read"] == counts["kept"] + sum(counts[f"dropped_{r}"] for r in DROP_REASONS)
    assert (counts["dropped_dns"], counts["dropped_empty_tcp"], counts["dropped_not_ip"]) == (1, 1, 1)
    for key, value in counts.items():  # the printed summary is the same
        assert f"{key}={value}" in result.stdout.splitlines()


def test_not_a_capture_is_one_line_error_and_nonzero_exit(tmp_path):
    bogus = tmp_path / "readme.pcap"
    bogus.write_text("this is not a capture\n")
    result = cli(bogus, "--output", tmp_path / "x.npz")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "readme.pcap" in lines[0]
    assert not (tmp_path / "x.npz").exists()
    missing = cli(tmp_path / "absent.pcap", "--output", tmp_path / "y.npz")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and "absent.pcap" in missing.stderr


def test_truncated_capture_warns_and_writes_what_was_read(tmp_path):
    capture = write_pcap(tmp_path / "cut.pcap", frames())
    capture.write_bytes(capture.read_bytes()[:-20])
    out = tmp_path / "cut.npz"
    result = cli(capture, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "cut.pcap" in result.stderr and "truncated=1" in result.stdout
    with np.load(out) as npz:
        assert int(npz["read"]) == 8 and int(npz["truncated"]) == 1 and npz["packets"].shape == (6, 1500)
