"""mtc_keras.packets: each §3.2.1 rule on hand-built frames, checked byte by byte.

scapy only BUILDS the frames here; the expected vectors are spelled out from the header layouts.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import RawPcapReader

from mtc_keras import packets
from mtc_keras.packets import (DROP_REASONS, VECTOR_LEN, CaptureFormatError, header_fields,
                               iter_capture_batches, mask_ports, process_capture, process_frames)
from mtc_keras.testing import scapy_vector
from tests.oracles import eth, ng_epb, ng_idb, ng_shb, write_pcap

TCP_OPTS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("NOP", None), ("NOP", None),
            ("Timestamp", (1, 2))]
PAYLOAD = bytes(range(1, 101))


def one(frame: bytes, linktype: int = 1) -> packets.PacketBatch:
    return process_frames([(linktype, frame)])


def vector(frame: bytes, linktype: int = 1) -> bytes:
    batch = one(frame, linktype)
    assert len(batch) == 1, batch.counts
    assert batch.packets.shape == (1, VECTOR_LEN) and batch.packets.dtype == np.uint8
    return batch.packets[0].tobytes()


def reason(frame: bytes, linktype: int = 1) -> str:
    counts = one(frame, linktype).counts
    hits = [r for r in DROP_REASONS if counts[f"dropped_{r}"]]
    return hits[0] if hits else "kept"


def v4_tcp(payload=PAYLOAD, flags="PA", options=TCP_OPTS, sport=443, dport=51000, **ip):
    return (eth()
            / IP(src="10.0.0.1", dst="10.0.0.2", id=0x1234, ttl=61, **ip)
            / TCP(sport=sport, dport=dport, seq=1000, ack=2000, flags=flags, window=512, options=options)
            / Raw(payload))


def expected_v4(pkt, l4: bytes, payload: bytes) -> bytes:
    """IPv4 header with IHL 5 and checksum + addresses zero, then the 20-byte transport header."""
    ip = bytearray(bytes(pkt[IP])[:20])
    ip[0], ip[10:20] = 0x45, bytes(10)
    return (bytes(ip) + l4 + payload).ljust(VECTOR_LEN, b"\0")


def expected_tcp(pkt) -> bytes:
    tcp = bytearray(bytes(pkt[TCP])[:20])
    tcp[12] = 0x50 | (tcp[12] & 0x0F)  # data offset 5
    tcp[16:18] = b"\0\0"  # checksum
    return bytes(tcp)


# ------------------------------------------------------------------ rules 2-4 on IPv4
def test_tcp_with_options_and_ethernet_trailer_exact_bytes():
    pkt = v4_tcp()
    frame = bytes(pkt) + b"\xEE" * 6  # Ethernet trailer / FCS after the IP packet
    got = vector(frame)
    assert got == expected_v4(pkt, expected_tcp(pkt), PAYLOAD)
    assert got[32] >> 4 == 5  # data offset rewritten, options gone
    assert got[40:140] == PAYLOAD  # payload right after the 20-byte TCP header
    assert got[140:] == bytes(VECTOR_LEN - 140)  # no trailer byte reached the vector


def test_short_frame_padding_is_cut_at_ip_total_length():
    pkt = v4_tcp(payload=b"hi", options=[])
    frame = bytes(pkt).ljust(60, b"\xAB")  # a 56-byte frame padded to the Ethernet minimum
    got = vector(frame)
    assert got[40:42] == b"hi" and got[42:] == bytes(VECTOR_LEN - 42)


def test_addresses_and_all_checksums_are_zeroed():
    pkt = Ether(bytes(v4_tcp()))  # checksums filled in by scapy
    assert pkt[IP].chksum and pkt[TCP].chksum
    got = vector(bytes(pkt))
    assert got[10:12] == b"\0\0" and got[12:20] == bytes(8) and got[36:38] == b"\0\0"
    assert bytes([10, 0, 0, 1]) not in got[:40] and bytes([10, 0, 0, 2]) not in got[:40]
    assert got[8] == 61 and got[4:6] == b"\x12\x34"  # TTL and ID stay (the paper keeps them)


def test_udp_header_padded_to_20_bytes_checksum_zero():
    pkt = eth() / IP(src="1.2.3.4", dst="5.6.7.8") / UDP(sport=4500, dport=4500) / Raw(PAYLOAD)
    pkt = Ether(bytes(pkt))
    assert pkt[UDP].chksum
    got = vector(bytes(pkt))
    udp = bytes(pkt[UDP])[:6] + b"\0\0"
    assert got == expected_v4(pkt, udp + bytes(12), PAYLOAD)
    assert got[28:40] == bytes(12) and got[40:140] == PAYLOAD


def test_ipv4_options_are_cut():
    pkt = (eth() / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x07\x07\x04\x0a\x00\x00\x01\x00")
           / TCP(sport=443, dport=1234, flags="PA") / Raw(PAYLOAD))  # record route: carries an address
    pkt = Ether(bytes(pkt))
    assert pkt[IP].ihl == 7
    got = vector(bytes(pkt))
    assert got == expected_v4(pkt, expected_tcp(pkt), PAYLOAD)
    assert got[0] == 0x45 and got[2:4] == bytes(pkt[IP])[2:4]  # length field keeps its wire value


def test_truncate_to_1500():
    big = bytes(range(256)) * 8  # 2048 bytes
    pkt = v4_tcp(payload=big, options=[])
    got = vector(bytes(pkt))
    assert len(got) == VECTOR_LEN and got[40:] == big[: VECTOR_LEN - 40]


def test_segmentation_offload_zero_length_uses_captured_bytes():
    pkt = v4_tcp(options=[])
    frame = bytearray(bytes(pkt))
    frame[16:18] = b"\0\0"  # IP total length 0, as captured on a TSO sender
    got = vector(bytes(frame))
    assert got[40:140] == PAYLOAD


# ------------------------------------------------------------------ rule 5: drops
@pytest.mark.parametrize("port", [53, 5353, 5355])
@pytest.mark.parametrize("side", ["sport", "dport"])
def test_dns_mdns_llmnr_dropped_over_udp_and_tcp(port, side):
    ports = {"sport": 40000, "dport": 40001, side: port}
    udp = eth() / IP() / UDP(**ports) / Raw(b"query")
    tcp = v4_tcp(**ports)
    assert reason(bytes(udp)) == "dns"
    assert reason(bytes(tcp)) == "dns"


@pytest.mark.parametrize("flags", ["S", "SA", "A", "FA", "F", "R", "RA", "PA"])
def test_tcp_without_payload_dropped_whatever_the_flags(flags):
    pkt = v4_tcp(payload=b"", flags=flags)  # options present but no payload
    assert reason(bytes(pkt) + b"\0" * 6) == "empty_tcp"  # trailer bytes are not payload


@pytest.mark.parametrize("flags", ["PA", "A", "FPA", "S"])
def test_tcp_with_payload_kept_whatever_the_flags(flags):
    pkt = v4_tcp(payload=b"data", flags=flags)
    assert reason(bytes(pkt)) == "kept"


def test_udp_without_payload_is_kept():
    assert reason(bytes(eth() / IP() / UDP(sport=1, dport=2))) == "kept"


def test_other_protocols_and_fragments():
    assert reason(bytes(eth() / ARP())) == "not_ip"
    assert reason(bytes(eth(type=0x88CC) / Raw(bytes(50)))) == "not_ip"  # LLDP
    assert reason(bytes(eth() / IP() / ICMP() / Raw(b"ping"))) == "not_tcp_udp"
    assert reason(bytes(eth() / IP(proto=50) / Raw(bytes(40)))) == "not_tcp_udp"  # ESP
    first = eth() / IP(flags="MF", frag=0) / UDP(sport=9, dport=9) / Raw(bytes(40))
    later = eth() / IP(frag=5, proto=17) / Raw(bytes(40))
    assert reason(bytes(first)) == "kept"
    assert reason(bytes(later)) == "fragment"
    assert reason(bytes(v4_tcp()), linktype=105) == "unsupported_link"  # 802.11


def test_malformed_headers():
    good = bytes(v4_tcp(options=[]))
    short_ip = good[:14 + 12]
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x43
    bad_len = bytearray(good)
    bad_len[16:18] = struct.pack("!H", 10)
    bad_doff = bytearray(good)
    bad_doff[14 + 20 + 12] = 0x30
    tcp_cut = good[: 14 + 20 + 10]
    wrong_version = bytearray(good)
    wrong_version[14] = 0x65
    for frame in (short_ip, bad_ihl, bad_len, bad_doff, tcp_cut, wrong_version, good[:10]):
        assert reason(bytes(frame)) == "malformed"


def test_snapped_packet_keeps_what_was_captured():
    frame = bytes(v4_tcp(options=[]))[:14 + 40 + 30]  # snapshot length cut the payload
    batch = one(frame)
    assert batch.counts["kept"] == 1 and batch.counts["snapped"] == 1
    assert batch.packets[0, 40:70].tobytes() == PAYLOAD[:30] and not batch.packets[0, 70:].any()


# ------------------------------------------------------------------ IPv6
def build_v6(ext_layers, transport):
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=33, fl=0x12345)
    for layer in ext_layers:
        pkt = pkt / layer
    return Ether(bytes(eth() / pkt / transport))


def expected_v6(pkt, l4: bytes, payload: bytes, proto: int) -> bytes:
    ip = bytearray(bytes(pkt[IPv6])[:40])
    ip[6], ip[8:40] = proto, bytes(32)
    return (bytes(ip) + l4 + payload).ljust(VECTOR_LEN, b"\0")


def test_ipv6_tcp_addresses_zeroed():
    pkt = build_v6([], TCP(sport=443, dport=5000, flags="PA", options=TCP_OPTS) / Raw(PAYLOAD))
    got = vector(bytes(pkt))
    assert got == expected_v6(pkt, expected_tcp(pkt), PAYLOAD, 6)
    assert got[60:160] == PAYLOAD


def test_ipv6_extension_headers_walked_and_cut():
    route = IPv6ExtHdrRouting(addresses=["2001:db8::99"])
    pkt = build_v6([IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), route, IPv6ExtHdrFragment(m=1, offset=0)],
                   UDP(sport=3478, dport=3479) / Raw(PAYLOAD))
    got = vector(bytes(pkt))
    udp = bytes(pkt[UDP])[:6] + b"\0\0" + bytes(12)
    assert got == expected_v6(pkt, udp, PAYLOAD, 17)
    assert b"\x20\x01\x0d\xb8" not in got  # no address left, not even the routing header's


def test_ipv6_later_fragment_dropped():
    for nh in (17, 60):  # what follows a later fragment's header is data, never walked
        frag = eth() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(offset=10, nh=nh) / Raw(bytes(40))
        assert reason(bytes(frag)) == "fragment"
    assert reason(bytes(eth() / IP(frag=5, proto=1) / Raw(bytes(40)))) == "fragment"  # ICMP too


def test_ipv6_empty_tcp_and_dns():
    assert reason(bytes(build_v6([IPv6ExtHdrDestOpt()], TCP(flags="A")))) == "empty_tcp"
    assert reason(bytes(build_v6([], UDP(sport=5353, dport=5353) / Raw(b"q")))) == "dns"


# ------------------------------------------------------------------ link layers
def test_link_layers_give_the_same_vector():
    ip_packet = bytes(v4_tcp()[IP])
    want = vector(bytes(v4_tcp()))
    framings = {
        "vlan": (1, bytes(eth() / Dot1Q(vlan=7) / IP(ip_packet))),
        "qinq": (1, bytes(eth() / Dot1AD(vlan=3) / Dot1Q(vlan=7) / IP(ip_packet))),
        "sll": (113, bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6 + b"\0\0",
                                       proto=0x0800) / IP(ip_packet))),
        "sll2": (276, bytes(CookedLinuxV2(proto=0x0800, ifindex=2, lladdrtype=1, lladdrlen=6)
                            / IP(ip_packet))),
        "raw": (101, ip_packet),
        "raw12": (12, ip_packet),
        "ipv4": (228, ip_packet),
        "loopback": (0, struct.pack("<I", 2) + ip_packet),
    }
    for name, (linktype, frame) in framings.items():
        assert vector(frame, linktype) == want, name


def test_raw_ipv6_link_types():
    pkt = build_v6([], UDP(sport=1, dport=2) / Raw(PAYLOAD))
    want = vector(bytes(pkt))
    assert vector(bytes(pkt[IPv6]), 101) == want
    assert vector(bytes(pkt[IPv6]), 229) == want
    assert reason(bytes(pkt[IPv6]), 228) == "malformed"  # IPv4 link type, IPv6 inside


# ------------------------------------------------------------------ counts, flow keys, batches
def test_counts_add_up_and_flow_keys_are_direction_free():
    frames = [
        (1, bytes(v4_tcp(sport=443, dport=51000))),
        (1, bytes(eth() / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=51000, dport=443, flags="PA") / b"x")),
        (1, bytes(v4_tcp(payload=b"", flags="A"))),
        (1, bytes(eth() / ARP())),
        (1, bytes(build_v6([], UDP(sport=9999, dport=443) / b"quic"))),
        (105, b"\0" * 40),
    ]
    batch = process_frames(frames)
    c = batch.counts
    assert c["read"] == 6 and c["kept"] == 3
    assert c["read"] == c["kept"] + sum(c[f"dropped_{r}"] for r in DROP_REASONS)
    assert (c["dropped_empty_tcp"], c["dropped_not_ip"], c["dropped_unsupported_link"]) == (1, 1, 1)
    assert list(batch.flow_ids) == [
        "tcp 10.0.0.1:443 10.0.0.2:51000",
        "tcp 10.0.0.1:443 10.0.0.2:51000",
        "udp [2001:db8::1]:9999 [2001:db8::2]:443",
    ]


def test_mask_ports_and_header_fields_read_the_vectors():
    batch = process_frames([
        (1, bytes(v4_tcp(sport=443, dport=51000))),
        (1, bytes(build_v6([], UDP(sport=3478, dport=50000) / Raw(PAYLOAD)))),
    ])
    fields = header_fields(batch.packets)
    assert fields["protocol"].tolist() == [6, 17]
    assert fields["src_port"].tolist() == [443, 3478]
    assert fields["dst_port"].tolist() == [51000, 50000]
    assert fields["ip_length"].tolist() == [20 + 40 + 100, 40 + 8 + 100]  # wire sizes
    masked = mask_ports(batch.packets)
    assert not masked[0, 20:24].any() and not masked[1, 40:44].any()
    unchanged = np.ones(VECTOR_LEN, bool)
    unchanged[[20, 21, 22, 23]] = False
    assert np.array_equal(masked[0, unchanged], batch.packets[0, unchanged])
    assert batch.packets[0, 20:24].any()  # the input is not modified
    assert header_fields(masked)["src_port"].tolist() == [0, 0]


def test_every_named_header_field_reads_back_from_ipv4_and_ipv6_tcp_and_udp_vectors():
    frames = [
        eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x28, id=4321, flags="DF", ttl=57)
        / TCP(sport=443, dport=51000, seq=123456789, ack=987654321, flags="PA", window=29200,
              urgptr=7, options=TCP_OPTS) / Raw(PAYLOAD),
        eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0xB8, id=77, flags="MF", ttl=128)
        / UDP(sport=3478, dport=50000) / Raw(PAYLOAD[:30]),
        build_v6([IPv6ExtHdrHopByHop()], TCP(sport=22, dport=40000, seq=5, ack=6, flags="SA",
                                             window=65535) / Raw(PAYLOAD[:10])),
        build_v6([], UDP(sport=443, dport=61000) / Raw(PAYLOAD[:12])),
    ]
    frames[2][IPv6].tc = 0x2E  # set after building: scapy recomputes nothing for tc
    batch = process_frames([(1, bytes(frame)) for frame in frames])
    fields = header_fields(batch.packets)
    assert list(fields) == list(packets.HEADER_FIELDS + packets.IDENTIFIER_FIELDS)
    expected = {
        "ip_version": [4, 4, 6, 6],
        "tos": [0x28, 0xB8, 0x2E, 0],
        "ip_length": [20 + 40 + 100, 20 + 8 + 30, 40 + 8 + 20 + 10, 40 + 8 + 12],  # on the wire
        "ip_id": [4321, 77, 0, 0],
        "ip_flags": [2, 1, 0, 0],  # DF, MF
        "ttl": [57, 128, 33, 33],  # TTL, hop limit
        "protocol": [6, 17, 6, 17],  # IPv6: the next header after the extension header
        "src_port": [443, 3478, 22, 443],
        "dst_port": [51000, 50000, 40000, 61000],
        "tcp_data_offset": [5, 0, 5, 0],  # options cut
        "tcp_flags": [0x18, 0, 0x12, 0],  # PSH ACK; SYN ACK
        "tcp_window": [29200, 0, 65535, 0],
        "tcp_urgent": [7, 0, 0, 0],
        "udp_length": [0, 8 + 30, 0, 8 + 12],
        "tcp_seq": [123456789, 0, 5, 0],
        "tcp_ack": [987654321, 0, 6, 0],
        "ipv6_flow_label": [0, 0, 0x12345, 0x12345],
    }
    for name, values in expected.items():
        assert fields[name].tolist() == values, name
    assert list(header_fields(batch.packets, ["ttl", "udp_length"])) == ["ttl", "udp_length"]
    with pytest.raises(ValueError, match="unknown header field 'mss'"):
        header_fields(batch.packets, ["mss"])


def test_batches_stream_the_file_with_bounded_sizes(tmp_path):
    frames = [bytes(v4_tcp(sport=1000 + i, payload=bytes([i]) * (i + 1))) for i in range(50)]
    frames += [bytes(eth() / ARP())] * 5
    path = write_pcap(tmp_path / "b.pcap", frames)
    whole = process_capture(path)
    batches = list(iter_capture_batches(path, batch_size=8))
    assert [b.counts["read"] for b in batches] == [8] * 6 + [7]
    assert np.array_equal(np.concatenate([b.packets for b in batches]), whole.packets)
    assert sum(len(b) for b in batches) == whole.counts["kept"] == 50
    assert whole.counts["read"] == 55 and whole.counts["dropped_not_ip"] == 5
    assert whole.packets[7, 40:48].tobytes() == bytes([7]) * 8


def test_pcapng_named_pcap_and_truncated_file(tmp_path):
    frames = [bytes(v4_tcp(sport=2000 + i)) for i in range(4)]
    data = ng_shb() + ng_idb(1) + b"".join(ng_epb(0, f) for f in frames)
    path = tmp_path / "vpn_hangouts_audio2.pcap"
    path.write_bytes(data[:-7])  # a pcapng under a .pcap name, last block cut off
    batch = process_capture(path)
    assert batch.counts["read"] == 3 and batch.counts["kept"] == 3 and batch.counts["truncated"] == 1
    assert np.array_equal(batch.packets, process_frames([(1, f) for f in frames[:3]]).packets)


def test_non_capture_file_raises_capture_format_error(tmp_path):
    path = tmp_path / "notes.pcap"
    path.write_text("not a capture\n")
    with pytest.raises(CaptureFormatError, match="notes.pcap"):
        process_capture(path)


# ------------------------------------------------------------------ real captures
def test_real_captures(shared_pcaps):
    """Every real capture: no exception, 1500-byte vectors, addresses and checksums zero, counts
    adding up to the frames scapy reads, and a sample identical to the scapy reference."""
    from scapy.config import conf

    checked = 0
    for path in shared_pcaps:
        batch = process_capture(path)
        c = batch.counts
        frames = [(meta.linktype if hasattr(meta, "linktype") else 1, f) for f, meta in RawPcapReader(str(path))]
        assert c["read"] == len(frames), path.name
        assert c["read"] == c["kept"] + sum(c[f"dropped_{r}"] for r in DROP_REASONS), path.name
        p = batch.packets
        assert p.shape == (c["kept"], VECTOR_LEN) and p.dtype == np.uint8
        v4, v6 = p[:, 0] >> 4 == 4, p[:, 0] >> 4 == 6
        assert (v4 | v6).all()
        assert not p[v4, 10:20].any() and not p[v6, 8:40].any()
        l4 = np.where(v4, 20, 40)
        rows = np.arange(len(p))
        tcp = np.where(v4, p[:, 9], p[:, 6]) == 6
        csum = np.where(tcp, l4 + 16, l4 + 6)
        assert not p[rows, csum].any() and not p[rows, csum + 1].any()
        # sample: every frame's decision and vector against scapy's own dissection
        sample = frames[:: max(1, len(frames) // 100)]
        ours = process_frames(sample)
        ref = [scapy_vector(conf.l2types.num2layer[lt](f)) for lt, f in sample]
        for name in DROP_REASONS:
            assert ours.counts[f"dropped_{name}"] == [r for _, r, _ in ref].count(name), (path.name, name)
        kept = [r for r in ref if r[0]]
        assert ours.packets.tobytes() == b"".join(v for v, _, _ in kept), path.name
        assert list(ours.flow_ids) == [flow for _, _, flow in kept], path.name
        checked += len(sample)
    assert checked > 500


def test_pcapng_interfaces_with_different_link_types_give_the_same_vectors(tmp_path):
    pkt = v4_tcp()
    ip_packet = bytes(pkt[IP])
    sll2 = bytes(CookedLinuxV2(proto=0x0800, ifindex=2, lladdrtype=1, lladdrlen=6) / IP(ip_packet))
    data = (ng_shb() + ng_idb(1) + ng_idb(276) + ng_idb(101)
            + ng_epb(0, bytes(pkt)) + ng_epb(1, sll2) + ng_epb(2, ip_packet))
    (tmp_path / "multi.pcapng").write_bytes(data)
    batch = process_capture(tmp_path / "multi.pcapng")
    assert batch.counts["kept"] == 3
    assert (batch.packets == batch.packets[0]).all()
    assert batch.packets[0].tobytes() == expected_v4(pkt, expected_tcp(pkt), PAYLOAD)
