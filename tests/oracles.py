"""Test oracles: references written independently of the code they check.

- pcap / pcapng writers (``write_pcap``, ``ng_*``), with the format's magic numbers and block
  types spelled out here rather than taken from mtc_keras.capture, so that a wrong constant
  there fails the tests instead of agreeing with them;
- the scapy reference of the packet rules (``scapy_vector``) and the CICIDS2017 header lines
  are in mtc_keras.testing, which the benchmarks (shipped with the package) use too.
"""

from __future__ import annotations

import struct

from scapy.layers.l2 import Ether


# ------------------------------------------------------------------ capture writers
def eth(**fields) -> Ether:
    """Ethernet header with explicit MACs (scapy would otherwise try ARP to fill them in)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


def write_pcap(path, frames, linktype=1, order="<", nano=False, snaplen=65535):
    """A classic pcap file; ``order`` '<' or '>' is the file's byte order."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    with open(path, "wb") as f:
        f.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for i, frame in enumerate(frames):
            f.write(struct.pack(order + "IIII", 1_700_000_000 + i, i, len(frame), len(frame)) + frame)
    return path


def ng_block(btype, body, order="<"):
    body += b"\0" * (-len(body) % 4)
    return struct.pack(order + "II", btype, len(body) + 12) + body + struct.pack(order + "I", len(body) + 12)


def ng_shb(order="<"):
    return ng_block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def ng_idb(linktype, order="<", snaplen=0):
    return ng_block(1, struct.pack(order + "HHI", linktype, 0, snaplen), order)


def ng_epb(iface, frame, order="<"):
    return ng_block(6, struct.pack(order + "IIIII", iface, 0, 0, len(frame), len(frame)) + frame, order)


def ng_spb(frame, order="<"):
    return ng_block(3, struct.pack(order + "I", len(frame)) + frame, order)


def ng_opb(iface, frame, order="<"):
    return ng_block(2, struct.pack(order + "HHIIII", iface, 0, 0, 0, len(frame), len(frame)) + frame, order)
