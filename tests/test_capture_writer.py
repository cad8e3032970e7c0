"""mtc_keras.capture_writer: what it writes, the reader (mtc_keras.capture) and scapy read back.

The magic numbers' bytes are spelled out here, not taken from mtc_keras.capture, so that a wrong
constant there fails these tests instead of agreeing with them."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, PcapWriter, RawPcapReader

from mtc_keras import capture, capture_writer
from mtc_keras.capture_writer import LINKTYPE_ETHERNET, LINKTYPE_RAW

T0 = 1_453_800_000  # 2016-01-26, seconds


def _ip(i: int, size: int = 10) -> bytes:
    return bytes(IP(src="10.8.0.2", dst="192.0.2.1", id=i) / UDP(sport=40000 + i, dport=443) / (b"x" * size))


def _eth(i: int, size: int = 10) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(_ip(i, size)))


def _read(path):
    """[(linktype, frame)], timestamps (s), stats of the file, through mtc_keras.capture."""
    with capture.Capture(path) as cap:
        blocks = list(cap.blocks())
    frames = [f for b in blocks for f in b.frames()]
    times = np.concatenate([b.timestamps for b in blocks]) if blocks else np.zeros(0)
    return frames, times, cap.stats


MAGIC_BYTES = {(False, "<"): "d4c3b2a1", (False, ">"): "a1b2c3d4",
               (True, "<"): "4d3cb2a1", (True, ">"): "a1b23c4d"}


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("linktype, make", [(LINKTYPE_ETHERNET, _eth), (LINKTYPE_RAW, _ip)])
def test_pcap_round_trip(tmp_path, byteorder, nano, linktype, make):
    records = [(T0 + i * 0.25 + 0.125, make(i, 10 * i)) for i in range(20)]  # exact in binary
    path = capture_writer.write_capture(tmp_path / "a.pcap", records, linktype=linktype, nano=nano,
                                        byteorder=byteorder)
    data = path.read_bytes()
    assert data[:4].hex() == MAGIC_BYTES[nano, byteorder]
    assert struct.unpack(byteorder + "HHiIII", data[4:24]) == (2, 4, 0, 0, 262_144, linktype)
    frames, times, stats = _read(path)
    assert stats.format == "pcap" and not stats.incomplete
    assert frames == [(linktype, fr) for _, fr in records]
    np.testing.assert_allclose(times, [t for t, _ in records], atol=1e-6)
    second, fraction = struct.unpack(byteorder + "II", data[24:32])  # the first record's time
    assert (second, fraction) == (T0, 125_000_000 if nano else 125_000)


@pytest.mark.parametrize("nano", [False, True])
def test_integer_ticks_are_written_exactly(tmp_path, nano):
    """A float cannot hold every microsecond of a 2016 date: integer ticks can."""
    us = [T0 * 10**6 + k for k in (0, 1, 999_999, 1_000_000, 123_457)]
    records = [(t, _ip(i)) for i, t in enumerate(us)]
    data = capture_writer.pcap_bytes(records, LINKTYPE_RAW, nano=nano, ticks_per_second=10**6)
    scale = 1000 if nano else 1
    pos, got = 24, []
    for _ in records:
        second, fraction, caplen, _ = struct.unpack("<IIII", data[pos:pos + 16])
        got.append((second, fraction))
        pos += 16 + caplen
    assert got == [(t // 10**6, t % 10**6 * scale) for t in us]
    ng = capture_writer.pcapng_bytes(records, LINKTYPE_RAW, nano=nano, ticks_per_second=10**6)
    (tmp_path / "x.pcapng").write_bytes(ng)
    frames, times, _ = _read(tmp_path / "x.pcapng")
    assert [fr for _, fr in frames] == [fr for _, fr in records]
    # read back as float seconds: exact to the float's own precision at 1.45e9 s
    np.testing.assert_allclose(times, np.array(us) / 1e6, rtol=0, atol=5e-7)


def test_fractions_round_to_the_file_resolution_and_carry_into_the_second():
    record = capture_writer.pcap_record(b"x", 10.9999996)
    assert struct.unpack("<II", record[:8]) == (11, 0)
    record = capture_writer.pcap_record(b"x", 10.0000004, nano=True)
    assert struct.unpack("<II", record[:8]) == (10, 400)


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcapng_with_two_interfaces_of_different_link_types(tmp_path, byteorder, nano):
    records = [(T0 + 0.5, _eth(0), LINKTYPE_ETHERNET), (T0 + 1.25, _ip(1), LINKTYPE_RAW),
               (T0 + 2.0, _eth(2, 50), LINKTYPE_ETHERNET), (T0 + 3.000001, _ip(3, 70), LINKTYPE_RAW)]
    path = capture_writer.write_capture(tmp_path / "two.pcapng", records, nano=nano, byteorder=byteorder)
    data = path.read_bytes()
    assert data[:4] == b"\x0a\x0d\x0d\x0a"
    assert data[8:12] == (b"\x4d\x3c\x2b\x1a" if byteorder == "<" else b"\x1a\x2b\x3c\x4d")
    frames, times, stats = _read(path)
    assert stats.format == "pcapng" and not stats.incomplete
    assert frames == [(lt, fr) for _, fr, lt in records]
    assert stats.linktypes == {LINKTYPE_ETHERNET: 2, LINKTYPE_RAW: 2}
    np.testing.assert_allclose(times, [t for t, _, _ in records], atol=1e-6)
    # one interface description per link type, in the order they first appear
    shb = struct.unpack(byteorder + "I", data[4:8])[0]
    idbs, pos = [], shb
    while struct.unpack(byteorder + "I", data[pos:pos + 4])[0] == 1:
        idbs.append(struct.unpack(byteorder + "H", data[pos + 8:pos + 10])[0])
        pos += struct.unpack(byteorder + "I", data[pos + 4:pos + 8])[0]
    assert idbs == [LINKTYPE_ETHERNET, LINKTYPE_RAW]


def test_a_pcap_has_one_link_type():
    mixed = [(0, _eth(0), LINKTYPE_ETHERNET), (0, _ip(1), LINKTYPE_RAW)]
    with pytest.raises(ValueError, match="pcapng"):
        capture_writer.pcap_bytes(mixed)
    with pytest.raises(ValueError, match="pcapng"):
        capture_writer.pcap_bytes(mixed[1:], LINKTYPE_ETHERNET)
    assert capture_writer.pcap_bytes(mixed[1:])[20:24] == struct.pack("<I", LINKTYPE_RAW)  # the frames' own
    assert capture_writer.pcap_bytes([])[20:24] == struct.pack("<I", LINKTYPE_ETHERNET)


def test_the_format_follows_the_name_unless_told(tmp_path):
    records = [(T0, _eth(0))]
    assert capture.sniff_format(capture_writer.write_capture(tmp_path / "a.pcapng", records)) == "pcapng"
    assert capture.sniff_format(capture_writer.write_capture(tmp_path / "b.pcap", records)) == "pcap"
    assert capture.sniff_format(capture_writer.write_capture(tmp_path / "c.pcap", records, pcapng=True)) == "pcapng"
    assert capture.sniff_format(capture_writer.write_capture(tmp_path / "d" / "e.cap", records)) == "pcap"


def test_bytes_are_scapys_for_the_same_frames_and_times(tmp_path):
    """An independent writer: scapy's PcapWriter and PcapNgWriter (what wrote USTC-TFC2016's
    dummy data before this module) give the same bytes."""
    frames = [Ether(_eth(i, 7 * i)) for i in range(12)]
    times = [1_460_000_000 + i * 0.01 for i in range(12)]
    for frame, t in zip(frames, times):
        frame.time = t
    with PcapWriter(str(tmp_path / "scapy.pcap")) as w:
        for frame in frames:
            w.write(frame)
    with PcapNgWriter(str(tmp_path / "scapy.pcapng")) as w:
        for frame in frames:
            w.write(frame)
    mine = capture_writer.pcap_bytes([(t, bytes(f)) for t, f in zip(times, frames)], snaplen=65535)
    assert mine == (tmp_path / "scapy.pcap").read_bytes()
    ticks = [(int(t * 10**6), bytes(f)) for t, f in zip(times, frames)]  # scapy's pcapng truncates t * 1e6
    assert capture_writer.pcapng_bytes(ticks, ticks_per_second=10**6) == (tmp_path / "scapy.pcapng").read_bytes()
    assert [fr for fr, _ in RawPcapReader(str(tmp_path / "scapy.pcap"))] == [bytes(f) for f in frames]
