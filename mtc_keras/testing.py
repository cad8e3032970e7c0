"""What the tests and the benchmarks share: the package ships ``benchmarks`` but not ``tests``,
so an installed mtc-keras runs its benchmarks with what lives here.

- ``scapy_vector``: the §3.2.1 packet rules written with scapy layers and fields, on purpose
  independent of mtc_keras.packets (this module never imports it): the reference the tests
  check our vectors against and the baseline ``benchmarks.preprocess`` times;
- the header lines of the two CICIDS2017 CSV layouts as the official files spell them (byte
  for byte, spaces included), independent of ``mtc_keras.cicids``' column table, which the
  tests check against them and ``benchmarks.cicids_build`` writes its synthetic files with;
- ``SMALL_MTC``: the overrides of a small MTC (two stages, one of them fused) that compiles in
  seconds, for ``tests/test_distribution.py`` and ``benchmarks.scaling --small``.
"""

from __future__ import annotations

import socket

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Packet


# ------------------------------------------------------------------ the scapy reference
_LINK_LAYERS = (Ether, Dot1Q, Dot1AD, CookedLinux, CookedLinuxV2, Loopback)
_EXT_HEADERS = (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, AH)
_DNS_PORTS = (53, 5353, 5355)


def scapy_vector(pkt: Packet) -> tuple[bytes | None, str, str | None]:
    """(1500-byte vector or None, 'kept' or the drop reason, flow key) for one scapy-dissected
    frame: the §3.2.1 rules written with scapy layers and fields, independent of our offsets."""
    layer = pkt
    while isinstance(layer, _LINK_LAYERS):
        layer = layer.payload
    if not isinstance(layer, (IP, IPv6)):
        return None, "not_ip", None
    ip = layer
    if isinstance(ip, IP):
        ip_len, ext_len, proto, frag = ip.len or len(ip), 0, ip.proto, ip.frag != 0  # 0: TSO
        head = ip.copy()
        head.remove_payload()
        head.src = head.dst = "0.0.0.0"
        head.chksum, head.options, head.ihl = 0, [], 5
        transport, hdr_len = ip.payload, ip.ihl * 4
    else:
        ip_len, ext_len, proto, frag = ip.plen + 40, 0, ip.nh, False
        if ip.plen == 0 and ip.nh != 59:  # offload or jumbogram: runs to the capture's end
            ip_len = len(ip)
        transport = ip.payload
        while isinstance(transport, _EXT_HEADERS) and not frag:
            frag = isinstance(transport, IPv6ExtHdrFragment) and transport.offset != 0
            ext_len += len(transport) - len(transport.payload)
            proto = transport.nh
            transport = transport.payload
        head = ip.copy()
        head.remove_payload()
        head.src = head.dst = "::"
        head.nh = proto
        hdr_len = 40 + ext_len
    if frag:
        return None, "fragment", None
    if proto not in (6, 17):
        return None, "not_tcp_udp", None
    if not isinstance(transport, (TCP, UDP)):
        return None, "malformed", None
    if transport.sport in _DNS_PORTS or transport.dport in _DNS_PORTS:
        return None, "dns", None
    body = transport.copy()
    body.remove_payload()
    body.chksum = 0
    if isinstance(transport, TCP):
        payload_len = ip_len - hdr_len - transport.dataofs * 4
        if payload_len <= 0:
            return None, "empty_tcp", None
        body.options, body.dataofs = [], 5
        l4 = bytes(body)
    else:
        payload_len = ip_len - hdr_len - 8
        l4 = bytes(body) + bytes(12)
    payload = bytes(transport.payload)[: max(payload_len, 0)]  # the IP length cuts the trailer
    vector = (bytes(head) + l4 + payload)[:1500].ljust(1500, b"\0")
    family = socket.AF_INET if isinstance(ip, IP) else socket.AF_INET6
    ends = sorted((socket.inet_pton(family, a), p) for a, p in
                  ((ip.src, transport.sport), (ip.dst, transport.dport)))
    fmt = "{}:{}" if family == socket.AF_INET else "[{}]:{}"
    names = [fmt.format(socket.inet_ntop(family, a), p) for a, p in ends]
    flow = f"{'tcp' if proto == 6 else 'udp'} {names[0]} {names[1]}"
    return vector, "kept", flow


# ------------------------------------------------------------------ CICIDS2017 CSV headers
# The header line of the official MachineLearningCVE files (after the byte-order mark).
MLCVE_HEADER = (
    " Destination Port, Flow Duration, Total Fwd Packets, Total Backward Packets,Total Length of"
    " Fwd Packets, Total Length of Bwd Packets, Fwd Packet Length Max, Fwd Packet Length Min, Fwd"
    " Packet Length Mean, Fwd Packet Length Std,Bwd Packet Length Max, Bwd Packet Length Min, Bwd"
    " Packet Length Mean, Bwd Packet Length Std,Flow Bytes/s, Flow Packets/s, Flow IAT Mean, Flow"
    " IAT Std, Flow IAT Max, Flow IAT Min,Fwd IAT Total, Fwd IAT Mean, Fwd IAT Std, Fwd IAT Max,"
    " Fwd IAT Min,Bwd IAT Total, Bwd IAT Mean, Bwd IAT Std, Bwd IAT Max, Bwd IAT Min,Fwd PSH"
    " Flags, Bwd PSH Flags, Fwd URG Flags, Bwd URG Flags, Fwd Header Length, Bwd Header"
    " Length,Fwd Packets/s, Bwd Packets/s, Min Packet Length, Max Packet Length, Packet Length"
    " Mean, Packet Length Std, Packet Length Variance,FIN Flag Count, SYN Flag Count, RST Flag"
    " Count, PSH Flag Count, ACK Flag Count, URG Flag Count, CWE Flag Count, ECE Flag Count,"
    " Down/Up Ratio, Average Packet Size, Avg Fwd Segment Size, Avg Bwd Segment Size, Fwd Header"
    " Length,Fwd Avg Bytes/Bulk, Fwd Avg Packets/Bulk, Fwd Avg Bulk Rate, Bwd Avg Bytes/Bulk, Bwd"
    " Avg Packets/Bulk,Bwd Avg Bulk Rate,Subflow Fwd Packets, Subflow Fwd Bytes, Subflow Bwd"
    " Packets, Subflow Bwd Bytes,Init_Win_bytes_forward, Init_Win_bytes_backward,"
    " act_data_pkt_fwd, min_seg_size_forward,Active Mean, Active Std, Active Max, Active"
    " Min,Idle Mean, Idle Std, Idle Max, Idle Min, Label")
# The TrafficLabelling header: six flow-identifying columns more.
TRAFFIC_LABELLING_HEADER = ("Flow ID, Source IP, Source Port, Destination IP," + MLCVE_HEADER.split(",")[0]
                            + ", Protocol, Timestamp," + MLCVE_HEADER.split(",", 1)[1])


# ------------------------------------------------------------------ a small MTC
# Two stages instead of three: the fused stage (both fusion directions) is all the model has
# that a test of sharding needs, and each stage costs seconds of XLA compilation.
SMALL_MTC = dict(
    seq_len=120, n_tokens=6, d_model=16, num_heads=2, ff_dim=32, encoder_repeats=(1, 1),
    cnn_stages=(((8, 8, 16),), ((8, 8, 16), (8, 8, 16))),
)
