"""mtc_keras.capture: pcap / pcapng records streamed out, damage counted, non-captures refused."""

from __future__ import annotations

import logging
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, RawPcapReader, wrpcap

from mtc_keras import capture
from mtc_keras.capture import CaptureFormatError, iter_frames, open_capture
from tests.oracles import eth, ng_block, ng_epb, ng_idb, ng_opb, ng_shb, ng_spb, write_pcap


def frame(i: int, size: int = 0) -> bytes:
    return bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=2000) / (b"x" * size))


FRAMES = [frame(i, 10 * i) for i in range(7)]


# ------------------------------------------------------------------ pcap
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_both_byte_orders_and_resolutions(tmp_path, order, nano):
    path = write_pcap(tmp_path / "a.pcap", FRAMES, linktype=113, order=order, nano=nano)
    with open_capture(path) as cap:
        got = list(cap)
    assert got == [(113, f) for f in FRAMES]
    assert cap.stats.format == "pcap" and cap.stats.frames == 7 and not cap.stats.incomplete
    assert cap.stats.linktypes == {113: 7}


def test_modified_pcap_with_longer_record_headers(tmp_path):
    """Kuznetzov's patched libpcap: 8 more bytes (ifindex, protocol, type) per record header."""
    path = tmp_path / "m.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1))
        for fr in FRAMES:
            f.write(struct.pack("<IIIIIHBB", 0, 0, len(fr), len(fr), 2, 0x0800, 0, 0) + fr)
    assert list(iter_frames(path)) == [(1, f) for f in FRAMES]


def test_small_chunks_and_blocks_give_the_same_frames(tmp_path):
    """Records straddling chunk ends (and records bigger than a chunk) are stitched together."""
    frames = FRAMES + [frame(9, 5000)]
    path = write_pcap(tmp_path / "a.pcap", frames)
    for chunk_size, sizes in ((64, [1] * 8), (capture.CHUNK_SIZE, [3, 3, 2])):
        with open_capture(path, chunk_size=chunk_size) as cap:
            blocks = list(cap.blocks(max_frames=3))
        assert [len(b) for b in blocks] == sizes
        assert [f for b in blocks for _, f in b.frames()] == frames
        # consumers may read fixed windows past a frame without bounds checks
        assert all(len(b.data) >= b.offsets[-1] + b.lengths[-1] + capture.TAIL_PAD for b in blocks)


def test_scapy_written_pcap_and_pcapng(tmp_path):
    pkts = [Ether(f) for f in FRAMES]
    wrpcap(str(tmp_path / "s.pcap"), pkts)
    with PcapNgWriter(str(tmp_path / "s.pcapng")) as w:
        for p in pkts:
            w.write(p)
    assert list(iter_frames(tmp_path / "s.pcap")) == [(1, f) for f in FRAMES]
    assert list(iter_frames(tmp_path / "s.pcapng")) == [(1, f) for f in FRAMES]


def test_truncated_pcap_keeps_earlier_records_and_says_so(tmp_path, caplog):
    path = write_pcap(tmp_path / "t.pcap", FRAMES)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5])  # cut inside the last record
    with caplog.at_level(logging.WARNING), open_capture(path) as cap:
        got = [f for _, f in cap]
    assert got == FRAMES[:-1]
    assert cap.stats.truncated and not cap.stats.corrupt and cap.stats.frames == 6
    assert "t.pcap" in caplog.text and "6 frames" in caplog.text


def test_record_header_cut_short_is_truncation(tmp_path):
    path = write_pcap(tmp_path / "t.pcap", FRAMES[:2])
    path.write_bytes(path.read_bytes() + b"\x01\x02\x03")
    with open_capture(path) as cap:
        assert len(list(cap)) == 2
    assert cap.stats.truncated


def test_impossible_record_length_is_corruption(tmp_path):
    path = write_pcap(tmp_path / "c.pcap", FRAMES[:3])
    path.write_bytes(path.read_bytes() + struct.pack("<IIII", 0, 0, 0x7FFFFFFF, 60) + bytes(60))
    with open_capture(path) as cap:
        assert len(list(cap)) == 3
    assert cap.stats.corrupt and "c.pcap" in cap.stats.problem


# ------------------------------------------------------------------ pcapng
@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_with_different_link_types(tmp_path, order):
    a, b, c, d = FRAMES[:4]
    data = (ng_shb(order) + ng_idb(1, order) + ng_idb(276, order)
            + ng_epb(0, a, order) + ng_epb(1, b, order)
            + ng_block(5, bytes(20), order)  # interface statistics: holds no frame
            + ng_spb(c, order) + ng_opb(1, d, order))
    path = tmp_path / "named.pcap"  # a pcapng with a .pcap name: the magic number decides
    path.write_bytes(data)
    with open_capture(path) as cap:
        got = list(cap)
    assert cap.stats.format == "pcapng"
    assert got == [(1, a), (276, b), (1, c), (276, d)]
    assert not cap.stats.incomplete


def test_pcapng_new_section_resets_interfaces_and_byte_order(tmp_path):
    a, b = FRAMES[:2]
    data = ng_shb("<") + ng_idb(1, "<") + ng_epb(0, a, "<") + ng_shb(">") + ng_idb(101, ">") + ng_epb(0, b, ">")
    (tmp_path / "two.pcapng").write_bytes(data)
    assert list(iter_frames(tmp_path / "two.pcapng")) == [(1, a), (101, b)]


def test_pcapng_simple_packet_block_respects_snaplen(tmp_path):
    data = ng_shb() + ng_idb(1, snaplen=20) + ng_spb(FRAMES[3])
    (tmp_path / "s.pcapng").write_bytes(data)
    assert list(iter_frames(tmp_path / "s.pcapng")) == [(1, FRAMES[3][:20])]


@pytest.mark.parametrize("damage", ["trailer", "interface", "length"])
def test_corrupt_pcapng_block_ends_the_file(tmp_path, damage):
    good = ng_shb() + ng_idb(1) + ng_epb(0, FRAMES[0]) + ng_epb(0, FRAMES[1])
    bad = {
        "trailer": ng_epb(0, FRAMES[2])[:-4] + struct.pack("<I", 999),
        "interface": ng_epb(5, FRAMES[2]),
        "length": struct.pack("<II", 6, 13) + bytes(40),
    }[damage]
    (tmp_path / "c.pcapng").write_bytes(good + bad + ng_epb(0, FRAMES[3]))
    with open_capture(tmp_path / "c.pcapng") as cap:
        got = [f for _, f in cap]
    assert got == FRAMES[:2]
    assert cap.stats.corrupt and not cap.stats.truncated


def test_truncated_pcapng(tmp_path):
    data = ng_shb() + ng_idb(1) + ng_epb(0, FRAMES[0]) + ng_epb(0, FRAMES[1])
    (tmp_path / "t.pcapng").write_bytes(data[:-10])
    with open_capture(tmp_path / "t.pcapng") as cap:
        assert [f for _, f in cap] == FRAMES[:1]
    assert cap.stats.truncated


# ------------------------------------------------------------------ not a capture
@pytest.mark.parametrize("content", [b"", b"GIF89a not a capture", b"\xd4\xc3"])
def test_non_capture_raises_naming_the_file(tmp_path, content):
    path = tmp_path / "holiday.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureFormatError, match="holiday.pcap"):
        open_capture(path)
    assert issubclass(CaptureFormatError, ValueError)


def test_real_captures_match_scapy_raw_reader(shared_pcaps):
    for path in shared_pcaps:
        ours = [f for _, f in iter_frames(path)]
        theirs = [f for f, _ in RawPcapReader(str(path))]
        assert ours == theirs, path.name
