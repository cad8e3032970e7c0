"""Writing pcap and pcapng files: the project's one capture writer (no TensorFlow, no scapy).

The magic numbers and block types are the reader's (:mod:`mtc_keras.capture`), so a file written
here is one the reader knows. (``tests/oracles.py`` keeps a writer of its own on purpose, with the
constants spelled out, so that a wrong constant in the reader fails the tests.)

A frame is ``(timestamp, frame bytes)`` or ``(timestamp, frame bytes, link type)``; a frame
without a link type has the file's (``linktype``, Ethernet by default). A pcap file has one
link type; a pcapng file gets one interface (IDB) per link type, in the order they first appear.

Timestamps are seconds since the epoch (int or float; the fraction is rounded to the file's
resolution, as libpcap and scapy round it), or, with ``ticks_per_second``, integers counting
ticks of that clock (``10**6``: microseconds), converted exactly (a float cannot hold every
microsecond of a 2016 date). Files are microsecond unless ``nano``; little-endian unless
``byteorder=">"``.
"""

from __future__ import annotations

import os
import pathlib
import struct
from collections.abc import Iterable, Sequence

from mtc_keras.capture import (PCAP_MAGIC, PCAP_NANO_MAGIC, PCAPNG_BOM, PCAPNG_EPB, PCAPNG_IDB,
                               PCAPNG_SHB)

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IP: the frame starts at the IPv4 / IPv6 header
DEFAULT_SNAPLEN = 262_144  # libpcap's
_IF_TSRESOL = 9  # pcapng interface option: timestamp resolution (9: 10^-9 s)

Frame = Sequence  # (timestamp, bytes) or (timestamp, bytes, link type)


def _order(byteorder: str) -> str:
    if byteorder not in ("<", ">"):
        raise ValueError(f"byteorder must be '<' or '>', not {byteorder!r}")
    return byteorder


def _split_time(timestamp, scale: int, ticks_per_second: int | None) -> tuple[int, int]:
    """(whole seconds, fraction in 1/scale units) of a timestamp."""
    if ticks_per_second is not None:
        seconds, rest = divmod(int(timestamp), ticks_per_second)
        return seconds, rest * scale // ticks_per_second
    seconds = int(timestamp)
    fraction = round((timestamp - seconds) * scale)
    if fraction >= scale:  # .9999996 s rounds up to the next second
        seconds, fraction = seconds + 1, fraction - scale
    return seconds, fraction


def _linktype_of(frame: Frame, default: int) -> int:
    return frame[2] if len(frame) > 2 and frame[2] is not None else default


# ------------------------------------------------------------------ pcap
def pcap_header(linktype: int = LINKTYPE_ETHERNET, snaplen: int = DEFAULT_SNAPLEN, *,
                nano: bool = False, byteorder: str = "<") -> bytes:
    """The 24-byte global header of a pcap file (version 2.4)."""
    magic = PCAP_NANO_MAGIC if nano else PCAP_MAGIC
    return struct.pack(_order(byteorder) + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(frame: bytes, timestamp=0.0, *, nano: bool = False, byteorder: str = "<",
                ticks_per_second: int | None = None) -> bytes:
    """One record (16-byte header and the whole frame) of a file with ``pcap_header``'s
    ``nano`` and ``byteorder``."""
    seconds, fraction = _split_time(timestamp, 10**9 if nano else 10**6, ticks_per_second)
    return struct.pack(_order(byteorder) + "IIII", seconds, fraction, len(frame), len(frame)) + bytes(frame)


def pcap_bytes(frames: Iterable[Frame], linktype: int | None = None, *, nano: bool = False,
               byteorder: str = "<", snaplen: int = DEFAULT_SNAPLEN,
               ticks_per_second: int | None = None) -> bytes:
    """A whole pcap file. ``linktype`` None: the frames' own (Ethernet if they carry none).
    ValueError when frames carry a link type other than the file's: write pcapng then."""
    frames = list(frames)
    carried = {f[2] for f in frames if len(f) > 2 and f[2] is not None}
    if linktype is None:
        if len(carried) > 1:
            raise ValueError(f"a pcap file has one link type, the frames have {sorted(carried)}: write pcapng")
        linktype = carried.pop() if carried else LINKTYPE_ETHERNET
    elif carried - {linktype}:
        raise ValueError(f"a pcap file of link type {linktype} cannot hold frames of link types "
                         f"{sorted(carried - {linktype})}: write pcapng")
    out = [pcap_header(linktype, snaplen, nano=nano, byteorder=byteorder)]
    out += [pcap_record(f[1], f[0], nano=nano, byteorder=byteorder, ticks_per_second=ticks_per_second)
            for f in frames]
    return b"".join(out)


# ------------------------------------------------------------------ pcapng
def pcapng_block(block_type: int, body: bytes, byteorder: str = "<") -> bytes:
    """One pcapng block: type, total length, the body padded to 32 bits, total length."""
    order = _order(byteorder)
    body = bytes(body) + b"\0" * (-len(body) % 4)
    return struct.pack(order + "II", block_type, len(body) + 12) + body + struct.pack(order + "I", len(body) + 12)


def pcapng_section_header(byteorder: str = "<") -> bytes:
    """A section header block (version 1.0, section length unknown), no options."""
    return pcapng_block(PCAPNG_SHB, struct.pack(_order(byteorder) + "IHHq", PCAPNG_BOM, 1, 0, -1), byteorder)


def pcapng_interface(linktype: int = LINKTYPE_ETHERNET, snaplen: int = DEFAULT_SNAPLEN, *,
                     nano: bool = False, byteorder: str = "<") -> bytes:
    """An interface description block; ``nano`` adds if_tsresol = 9 (microseconds otherwise,
    pcapng's default, written without options)."""
    order = _order(byteorder)
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    if nano:
        body += struct.pack(order + "HHB3x", _IF_TSRESOL, 1, 9) + struct.pack(order + "HH", 0, 0)
    return pcapng_block(PCAPNG_IDB, body, byteorder)


def pcapng_packet(frame: bytes, timestamp=0.0, interface: int = 0, *, nano: bool = False,
                  byteorder: str = "<", ticks_per_second: int | None = None) -> bytes:
    """An enhanced packet block of ``interface`` (whose resolution ``nano`` must match)."""
    scale = 10**9 if nano else 10**6
    seconds, fraction = _split_time(timestamp, scale, ticks_per_second)
    units = seconds * scale + fraction
    body = struct.pack(_order(byteorder) + "IIIII", interface, units >> 32, units & 0xFFFFFFFF,
                       len(frame), len(frame)) + bytes(frame)
    return pcapng_block(PCAPNG_EPB, body, byteorder)


def pcapng_bytes(frames: Iterable[Frame], linktype: int | None = None, *, nano: bool = False,
                 byteorder: str = "<", snaplen: int = DEFAULT_SNAPLEN,
                 ticks_per_second: int | None = None) -> bytes:
    """A whole pcapng file: one section, an interface per link type (in order of first
    appearance; frames without one have ``linktype``, Ethernet if None), enhanced packet blocks."""
    frames = list(frames)
    default = LINKTYPE_ETHERNET if linktype is None else linktype
    interfaces: dict[int, int] = {}
    for f in frames:
        interfaces.setdefault(_linktype_of(f, default), len(interfaces))
    if not interfaces:
        interfaces[default] = 0
    out = [pcapng_section_header(byteorder)]
    out += [pcapng_interface(lt, snaplen, nano=nano, byteorder=byteorder) for lt in interfaces]
    out += [pcapng_packet(f[1], f[0], interfaces[_linktype_of(f, default)], nano=nano, byteorder=byteorder,
                          ticks_per_second=ticks_per_second) for f in frames]
    return b"".join(out)


# ------------------------------------------------------------------ files
def capture_bytes(frames: Iterable[Frame], pcapng: bool = False, **options) -> bytes:
    """``pcapng_bytes`` or ``pcap_bytes`` of the frames (``options``: theirs)."""
    return (pcapng_bytes if pcapng else pcap_bytes)(frames, **options)


def write_capture(path: str | os.PathLike, frames: Iterable[Frame], pcapng: bool | None = None,
                  **options) -> pathlib.Path:
    """Writes the frames to ``path`` (its folder made if missing); returns the path.
    ``pcapng`` None: pcapng when the name ends in .pcapng. ``options``: ``pcap_bytes``'s."""
    path = pathlib.Path(path)
    if pcapng is None:
        pcapng = path.suffix.lower() == ".pcapng"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(capture_bytes(frames, pcapng, **options))
    return path
