"""Frame -> 1500-byte packet vector (the MTC paper's §3.2.1), batched with numpy.

The only place header offsets live. Every frame either becomes one uint8 vector or is dropped
for one named reason (``DROP_REASONS``); the counts always add up: ``read == kept + sum(dropped_*)``.

The rules, in order:

1. Strip the link layer: Ethernet (1, with up to three 802.1Q / 802.1ad tags), BSD loopback
   (0, 108), raw IP (101, 12, 14; IPv4 228, IPv6 229), Linux cooked capture SLL (113) and
   SLL2 (276). Other link types: ``unsupported_link``. Non-IP ethertypes: ``not_ip``.
2. Cut the IP packet at its own length (IPv4 total length, IPv6 payload length + 40), so an
   Ethernet trailer or FCS never reaches the vector. (IPv4 total length 0 is TCP segmentation
   offload: the captured length is used.)
3. Zero the addresses, the IPv4 header checksum and the TCP / UDP checksum (it covers the
   addresses through the pseudo-header). IPv4 options and the IPv6 extension headers
   (hop-by-hop, routing, destination options, fragment, AH) are walked and cut, like TCP options,
   with IHL rewritten to 5 and the IPv6 next header to the transport protocol: options can carry
   addresses (record route, source route, routing headers, home address), and every vector gets
   the same layout. Length fields keep their on-the-wire values.
4. TCP header cut to 20 bytes (options dropped, data offset rewritten to 5, payload right after);
   UDP header padded from 8 to 20 bytes with zeros.
5. Drop DNS, mDNS and LLMNR (port 53, 5353 or 5355 on either side, TCP or UDP) and TCP segments
   without payload (payload = IP length - IP header - TCP header; SYN, ACK, FIN, RST alone). Any
   segment that carries data is kept, whatever its flags (PSH-ACK included).
6. Zero-pad or truncate to 1500 bytes, uint8.

So a vector is ``[IPv4 header 20 | transport 20 | payload ...]`` or
``[IPv6 header 40 | transport 20 | payload ...]``.

Frames that are not first IP fragments (``fragment``), carry another transport protocol
(``not_tcp_udp``) or have headers that are impossible or not fully captured (``malformed``) are
dropped. A kept packet whose capture stopped short of its IP length (a snapshot length) keeps the
bytes captured and is counted in ``snapped``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Callable, Iterable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mtc_keras.capture import CaptureFormatError, FrameBlock, open_capture

__all__ = [
    "VECTOR_LEN", "DROP_REASONS", "FILE_INFO", "PacketBatch", "CaptureFormatError",
    "iter_capture_batches", "process_capture", "process_frames", "process_block",
    "mask_ports", "header_fields", "HEADER_FIELDS", "IDENTIFIER_FIELDS", "FIELD_SPANS",
    "field_locations",
]

VECTOR_LEN = 1500
DROP_REASONS = (
    "unsupported_link",  # a link type not listed above
    "not_ip",  # ARP, LLDP, 802.3 frames and other non-IP network protocols
    "malformed",  # impossible or not fully captured IP / TCP / UDP headers
    "fragment",  # IP fragments after the first (they hold no transport header)
    "not_tcp_udp",  # ICMP, IGMP, ESP, GRE, ...
    "dns",  # DNS, mDNS, LLMNR
    "empty_tcp",  # TCP segments with no payload
)
# Counts beside the read == kept + dropped_* sum: kept packets captured short of their IP length,
# and whether the capture file ended truncated or at a corrupt block (0 or 1 per file).
FILE_INFO = ("snapped", "truncated", "corrupt")

_DNS_PORTS = (53, 5353, 5355)
_TCP, _UDP = 6, 17
_IPV4, _IPV6 = 0x0800, 0x86DD
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_IPV6_EXT = (0, 43, 44, 60, 51)  # hop-by-hop, routing, fragment, destination options, AH
_TRANSPORT_HDR = 20  # both TCP and UDP take 20 bytes in the vector
# Fixed-size windows gathered per frame: link layer, IP header, transport header.
_LINK_WIN, _IP_WIN, _L4_WIN = 32, 40, 20
# Every window read stays within this many bytes past a frame's end (link 26 + IPv4 60 + 20 + slack).
_READ_SLACK = 256


@dataclasses.dataclass
class PacketBatch:
    """Kept packet vectors, their flow keys and the counts for the frames they came from."""

    packets: np.ndarray  # uint8 [N, 1500]
    flow_ids: np.ndarray  # object array of str [N], e.g. "tcp 10.0.0.1:443 10.0.0.2:51000"
    counts: dict  # read, kept, dropped_<reason> for each reason (adding up), plus FILE_INFO
    # [N] the kept frames' rows in the FrameBlock they came from (process_block only): their
    # timestamps, for streaming readers that need each packet's capture time
    frames: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.packets)


def _empty_counts() -> dict:
    counts = {"read": 0, "kept": 0}
    counts.update({f"dropped_{r}": 0 for r in DROP_REASONS})
    counts.update({k: 0 for k in FILE_INFO})
    return counts


def _be16(rows: np.ndarray, col) -> np.ndarray:
    """Big-endian 16-bit field at column ``col`` (an int or one int per row) of a 2-D window."""
    if np.ndim(col) == 0:
        return rows[:, col].astype(np.int64) << 8 | rows[:, col + 1]
    r = np.arange(len(rows))
    return rows[r, col].astype(np.int64) << 8 | rows[r, col + 1]


def _any_of(values: tuple) -> Callable[[np.ndarray], np.ndarray]:
    """x -> x in values, elementwise (cheaper than np.isin for a few values)."""
    def test(x: np.ndarray) -> np.ndarray:
        hit = x == values[0]
        for v in values[1:]:
            hit |= x == v
        return hit
    return test


def _windows(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``data[s : s + width]`` for every start s, as one [n, width] array."""
    return sliding_window_view(data, width)[starts]


def process_block(block: FrameBlock, out: np.ndarray | None = None) -> PacketBatch:
    """Vectors for all frames of a FrameBlock (see the module docstring for the rules).

    ``out``: optional zero-filled uint8 array of at least ``len(block)`` rows to write the
    vectors into (the batch's ``packets`` is then a view of its first rows).
    """
    n = len(block)
    counts = _empty_counts()
    counts["read"] = n
    if n == 0:
        return PacketBatch(np.zeros((0, VECTOR_LEN), np.uint8), np.zeros(0, object), counts,
                           np.zeros(0, np.int64))
    if out is not None and (out.shape[0] < n or out.shape[1:] != (VECTOR_LEN,) or out.dtype != np.uint8):
        raise ValueError(f"out must be uint8 [>= {n}, {VECTOR_LEN}], got {out.dtype} {out.shape}")
    data, off, cap, lt = block.data, block.offsets, block.lengths, block.linktypes
    if len(data) < int((off + cap).max()) + _READ_SLACK:  # hand-built blocks: pad a copy
        data = np.concatenate([data, np.zeros(_READ_SLACK + _IP_WIN, np.uint8)])
    reason = np.zeros(n, np.int8)  # 0 = keep, i + 1 = DROP_REASONS[i]

    def drop(mask: np.ndarray, name: str) -> None:
        reason[(reason == 0) & mask] = DROP_REASONS.index(name) + 1

    # ---- 1. link layer -> ethertype and link header length
    link = _windows(data, off, _LINK_WIN)
    l2 = np.zeros(n, np.int64)
    etype = np.zeros(n, np.int64)
    eth = lt == 1
    vlan = _any_of(_VLAN_TPIDS)
    col = np.full(n, 12)
    etype[eth] = _be16(link[eth], 12)
    for _ in range(3):  # VLAN tags
        tagged = eth & vlan(etype)
        if not tagged.any():
            break
        col[tagged] += 4
        etype[tagged] = _be16(link[tagged], col[tagged])
    l2[eth] = col[eth] + 2
    sll = lt == 113
    l2[sll], etype[sll] = 16, _be16(link[sll], 14)
    sll2 = lt == 276
    l2[sll2], etype[sll2] = 20, _be16(link[sll2], 0)
    loop = (lt == 0) | (lt == 108)  # BSD loopback: 4-byte address family, then IP
    l2[loop] = 4
    by_version = loop | _any_of((101, 12, 14))(lt)  # raw IP: the version nibble tells
    version_nibble = link[np.arange(n), l2] >> 4
    etype[by_version] = np.where(version_nibble[by_version] == 4, _IPV4,
                                 np.where(version_nibble[by_version] == 6, _IPV6, 0))
    etype[lt == 228], etype[lt == 229] = _IPV4, _IPV6
    known = eth | sll | sll2 | by_version | (lt == 228) | (lt == 229)
    drop(~known, "unsupported_link")
    drop(cap < l2, "malformed")
    v4, v6 = etype == _IPV4, etype == _IPV6
    drop(~(v4 | v6), "not_ip")

    # ---- 2./3. IP header: length, protocol, where the transport header starts
    ip_off = off + l2
    avail = cap - l2  # IP bytes captured
    ip = _windows(data, ip_off, _IP_WIN)
    version = ip[:, 0] >> 4
    ihl = (ip[:, 0] & 15).astype(np.int64) * 4
    ip_len = np.where(v4, _be16(ip, 2), _be16(ip, 4) + 40)
    proto = np.where(v4, ip[:, 9], ip[:, 6]).astype(np.int64)
    # A zero length field with a payload behind it is segmentation offload (or an IPv6
    # jumbogram): the packet runs to the end of the capture.
    offload = (v4 & (ip_len == 0)) | (v6 & (ip_len == 40) & (proto != 59))
    ip_len = np.where(offload, avail, ip_len)
    l4 = np.where(v4, ihl, 40)
    frag = v4 & ((_be16(ip, 6) & 0x1FFF) != 0)
    drop(v4 & ((avail < 20) | (version != 4) | (ihl < 20) | (ip_len < ihl)), "malformed")
    drop(v6 & ((avail < 40) | (version != 6)), "malformed")
    walk = np.flatnonzero((reason == 0) & v6 & _any_of(_IPV6_EXT)(proto))
    if len(walk):
        bad = _walk_ipv6_extensions(data, walk, ip_off, np.minimum(ip_len, avail), l4, proto, frag)
        drop(bad, "malformed")
    drop(frag, "fragment")
    drop((proto != _TCP) & (proto != _UDP), "not_tcp_udp")

    # ---- 4./5. transport header, ports, payload length
    tcp = proto == _TCP
    l4_win = _windows(data, ip_off + l4, _L4_WIN)
    thl = np.where(tcp, (l4_win[:, 12] >> 4).astype(np.int64) * 4, 8)
    ip_end = np.minimum(ip_len, avail)
    drop((l4 + np.where(tcp, 20, 8) > ip_end) | (tcp & (thl < 20)) | (l4 + thl > ip_end), "malformed")
    sport, dport = _be16(l4_win, 0), _be16(l4_win, 2)
    dns = _any_of(_DNS_PORTS)
    drop(dns(sport) | dns(dport), "dns")
    payload = ip_len - l4 - thl
    drop(tcp & (payload <= 0), "empty_tcp")

    dropped = np.bincount(reason, minlength=len(DROP_REASONS) + 1)
    for i, name in enumerate(DROP_REASONS):
        counts[f"dropped_{name}"] = int(dropped[i + 1])
    keep = np.flatnonzero(reason == 0)
    k = len(keep)
    counts["kept"] = k
    counts["snapped"] = int(np.count_nonzero(ip_len[keep] > avail[keep]))

    # ---- build the vectors of kept packets
    out = np.zeros((k, VECTOR_LEN), np.uint8) if out is None else out[:k]
    kv4, ktcp = v4[keep], tcp[keep]
    l3 = np.where(kv4, 20, 40)
    iph = ip[keep]
    out[kv4, :20] = iph[kv4, :20]
    out[kv4, 0] = 0x45  # options cut
    out[kv4, 10:20] = 0  # header checksum, source and destination address
    out[~kv4, :40] = iph[~kv4, :40]
    out[~kv4, 6] = proto[keep][~kv4]  # extension headers cut
    out[~kv4, 8:40] = 0  # source and destination address
    th = l4_win[keep].copy()
    th[ktcp, 12] = 0x50 | (th[ktcp, 12] & 0x0F)  # data offset 5, keep the flag bits beside it
    th[ktcp, 16:18] = 0  # TCP checksum
    th[~ktcp, 6:] = 0  # UDP checksum, then 12 bytes of padding
    out[kv4, 20:40] = th[kv4]
    out[~kv4, 40:60] = th[~kv4]
    # Payloads differ in length: a plain copy loop beats any fixed-width numpy gather here.
    start = (ip_off + l4 + thl)[keep]
    dst = l3 + _TRANSPORT_HDR
    size = np.clip(ip_end[keep] - (l4 + thl)[keep], 0, VECTOR_LEN - dst)
    if k:
        src_view, out_view = memoryview(data), memoryview(out).cast("B")
        base = np.arange(k) * VECTOR_LEN + dst
        for o, s, m in zip(base.tolist(), start.tolist(), size.tolist()):
            out_view[o : o + m] = src_view[s : s + m]

    flow_ids = _flow_ids(ip[keep], kv4, proto[keep], sport[keep], dport[keep])
    return PacketBatch(out, flow_ids, counts, keep)


def _walk_ipv6_extensions(data, rows, ip_off, ip_end, l4, proto, frag) -> np.ndarray:
    """Follow the IPv6 extension headers of ``rows`` (rare, so a Python loop); updates ``l4``,
    ``proto`` and ``frag`` in place and returns a mask of the rows whose chain is broken."""
    bad = np.zeros(len(l4), bool)
    for r in rows.tolist():
        base, end, pos, nh = int(ip_off[r]), int(ip_end[r]), 40, int(proto[r])
        for _ in range(16):  # more than any real packet has
            if nh not in _IPV6_EXT or frag[r]:
                break
            if pos + 8 > end:
                bad[r] = True
                break
            ext = data[base + pos : base + pos + 8].tolist()
            if nh == 44:  # fragment header; a later fragment holds data, not headers, after it
                frag[r] = (ext[2] << 8 | ext[3]) >> 3 != 0
                size = 8
            elif nh == 51:  # AH counts 4-byte words, minus 2
                size = (ext[1] + 2) * 4
            else:
                size = (ext[1] + 1) * 8
            nh, pos = ext[0], pos + size
        bad[r] |= nh in _IPV6_EXT and not frag[r]
        l4[r], proto[r] = pos, nh
    return bad


_flow_cache: dict[bytes, str] = {}


def _flow_ids(iph: np.ndarray, v4: np.ndarray, proto, sport, dport) -> np.ndarray:
    """'tcp 10.0.0.1:443 10.0.0.2:51000': protocol, then both endpoints sorted, so both
    directions of a flow share one key. Addresses are read before masking (from the frame)."""
    k = len(iph)
    key = np.zeros((k, 38), np.uint8)
    key[:, 0], key[:, 1] = proto, np.where(v4, 4, 6)
    key[v4, 2:6], key[v4, 18:22] = iph[v4, 12:16], iph[v4, 16:20]
    key[~v4, 2:18], key[~v4, 18:34] = iph[~v4, 8:24], iph[~v4, 24:40]
    key[:, 34], key[:, 35], key[:, 36], key[:, 37] = sport >> 8, sport, dport >> 8, dport
    names = []
    cache = _flow_cache
    if len(cache) > 1_000_000:
        cache.clear()
    for kb in key.view("S38").ravel().tolist():  # trailing zero bytes are stripped: pad back
        name = cache.get(kb)
        if name is None:
            name = cache[kb] = _flow_name(kb.ljust(38, b"\0"))
        names.append(name)
    return np.array(names, dtype=object)


def _flow_name(kb: bytes) -> str:
    proto, version = kb[0], kb[1]
    if version == 4:
        a, b, fmt = kb[2:6], kb[18:22], "{}:{}"
        family = socket.AF_INET
    else:
        a, b, fmt = kb[2:18], kb[18:34], "[{}]:{}"
        family = socket.AF_INET6
    ends = sorted([(a, int.from_bytes(kb[34:36], "big")), (b, int.from_bytes(kb[36:38], "big"))])
    names = [fmt.format(socket.inet_ntop(family, addr), port) for addr, port in ends]
    return f"{'tcp' if proto == _TCP else 'udp'} {names[0]} {names[1]}"


def _concat(batches: list[PacketBatch], packets: np.ndarray | None = None) -> PacketBatch:
    """One batch from many, counts summed. Pass ``packets`` when the vectors already sit together."""
    counts = _empty_counts()
    for b in batches:
        for key, value in b.counts.items():
            counts[key] += value
    if packets is None and len(batches) == 1:
        packets = batches[0].packets
    elif packets is None:
        packets = np.concatenate([np.zeros((0, VECTOR_LEN), np.uint8)] + [b.packets for b in batches])
    flow_ids = np.concatenate([np.zeros(0, object)] + [b.flow_ids for b in batches])
    return PacketBatch(packets, flow_ids, counts)


def iter_capture_batches(path: str | os.PathLike, batch_size: int = 65536) -> Iterator[PacketBatch]:
    """Stream a capture as PacketBatches of the vectors from at most ``batch_size`` frames each.

    Each batch's counts cover its own frames (sum them for the file); the last batch carries the
    file's ``truncated`` / ``corrupt`` flags. Yields at least one (maybe empty) batch per file.
    Raises CaptureFormatError for a file that is neither pcap nor pcapng.
    """
    with open_capture(path) as cap:
        blocks = cap.blocks(max_frames=min(8192, batch_size))
        done, pending = False, None
        while not done:
            out = np.zeros((batch_size, VECTOR_LEN), np.uint8)  # calloc: untouched rows cost nothing
            parts: list[PacketBatch] = []
            read = kept = 0
            while read < batch_size:
                block = pending if pending is not None else next(blocks, None)
                pending = None
                if block is None:
                    done = True
                    break
                room = batch_size - read
                if len(block) > room:  # never more than batch_size frames in a batch
                    block, pending = block[:room], block[room:]
                part = process_block(block, out[kept:])
                parts.append(part)
                read, kept = read + len(block), kept + len(part)
            if done:
                parts.append(PacketBatch(out[:0], np.zeros(0, object), _empty_counts()))
                parts[-1].counts["truncated"] = int(cap.stats.truncated)
                parts[-1].counts["corrupt"] = int(cap.stats.corrupt)
                if read == 0 and cap.stats.frames and not cap.stats.incomplete:
                    return  # the previous batch ended exactly at the end of the file
            batch = _concat(parts, out[:kept] if kept > batch_size // 4 else out[:kept].copy())
            yield batch


def process_capture(path: str | os.PathLike) -> PacketBatch:
    """All vectors of one capture file, with the file's counts. Raises CaptureFormatError."""
    return _concat(list(iter_capture_batches(path)))


def process_frames(frames: Iterable[tuple[int, bytes]]) -> PacketBatch:
    """Vectors for hand-built ``(linktype, frame bytes)`` pairs."""
    frames = list(frames)
    lengths = np.array([len(f) for _, f in frames], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    data = np.frombuffer(b"".join(f for _, f in frames) + bytes(_READ_SLACK + _IP_WIN), np.uint8)
    linktypes = np.array([lt for lt, _ in frames], np.int64)
    return process_block(FrameBlock(data, offsets[: len(frames)], lengths, linktypes))


# ---------------------------------------------------------------- reading the vectors back
def _transport_fields(packets: np.ndarray):
    v4 = packets[:, 0] >> 4 == 4
    v6 = packets[:, 0] >> 4 == 6
    proto = np.where(v4, packets[:, 9], np.where(v6, packets[:, 6], 0)).astype(np.int64)
    l4 = np.where(v4, (packets[:, 0] & 15).astype(np.int64) * 4, 40)
    has_ports = (v4 | v6) & np.isin(proto, (_TCP, _UDP)) & (l4 + 4 <= packets.shape[1])
    return v4, v6, proto, np.where(has_ports, l4, 0), has_ports


def mask_ports(packets: np.ndarray) -> np.ndarray:
    """A copy of packet vectors with the TCP / UDP ports zeroed (IP version and IHL are read
    from each vector; rows that are not TCP / UDP over IP are left as they are)."""
    out = np.array(packets, np.uint8, copy=True)
    for name in ("src_port", "dst_port"):
        for rows, start, width, _ in field_locations(out, name):
            out[rows[:, None], start[:, None] + np.arange(width)] = 0
    return out


# The header fields a vector keeps after the rules above, by name: what the header probes read
# (experiments.probe) and what the shortcut-reliance evaluation perturbs (mtc_keras.perturb).
# One column per field whatever the IP version: IPv4 TOS and the IPv6 traffic class share
# ``tos``, the TTL and the hop limit ``ttl``, the protocol and the next header ``protocol``.
HEADER_FIELDS = (
    "ip_version", "tos", "ip_length", "ip_id", "ip_flags", "ttl", "protocol",
    "src_port", "dst_port", "tcp_data_offset", "tcp_flags", "tcp_window", "tcp_urgent",
    "udp_length",
)
# Per-flow identifiers: values that name one flow (or one host's counter) rather than what its
# application does. A classifier that reads them memorises training flows; they are in the
# vectors, so the probes have an arm with them, labelled as such, and the shortcut-reliance
# evaluation perturbs them.
IDENTIFIER_FIELDS = ("tcp_seq", "tcp_ack", "ipv6_flow_label")


@dataclasses.dataclass(frozen=True)
class FieldSpan:
    """Where a named header field sits in a stored vector: ``width`` bytes from its offset, the
    bits of a mask in them. IP fields count from the vector's start, transport fields
    (``transport``: the protocols that have them) from the transport header, which starts
    right after the 20-byte IPv4 or 40-byte IPv6 header (the rules cut options and extension
    headers). ``None``: the IP version has no such field."""

    ipv4: tuple[int, int] | None  # (byte offset, bit mask) in an IPv4 vector
    ipv6: tuple[int, int] | None
    width: int  # bytes read, big-endian
    transport: tuple[int, ...] = ()


# The byte layout of every named field of ``header_fields`` but the three derived ones.
FIELD_SPANS = {
    "tos": FieldSpan((1, 0xFF00), (0, 0x0FF0), 2),  # IPv4 byte 1; IPv6 bits 4-11
    "ip_id": FieldSpan((4, 0xFFFF), None, 2),
    "ip_flags": FieldSpan((6, 0xE0), None, 1),
    "ttl": FieldSpan((8, 0xFF), (7, 0xFF), 1),
    "ipv6_flow_label": FieldSpan(None, (1, 0x0FFFFF), 3),
    "src_port": FieldSpan((0, 0xFFFF), (0, 0xFFFF), 2, (_TCP, _UDP)),
    "dst_port": FieldSpan((2, 0xFFFF), (2, 0xFFFF), 2, (_TCP, _UDP)),
    "tcp_seq": FieldSpan((4, 0xFFFFFFFF), (4, 0xFFFFFFFF), 4, (_TCP,)),
    "tcp_ack": FieldSpan((8, 0xFFFFFFFF), (8, 0xFFFFFFFF), 4, (_TCP,)),
    "tcp_data_offset": FieldSpan((12, 0xF0), (12, 0xF0), 1, (_TCP,)),
    "tcp_flags": FieldSpan((12, 0x01FF), (12, 0x01FF), 2, (_TCP,)),  # NS, then CWR .. FIN
    "tcp_window": FieldSpan((14, 0xFFFF), (14, 0xFFFF), 2, (_TCP,)),
    "tcp_urgent": FieldSpan((18, 0xFFFF), (18, 0xFFFF), 2, (_TCP,)),
    "udp_length": FieldSpan((4, 0xFFFF), (4, 0xFFFF), 2, (_UDP,)),
}


def _read_be(packets: np.ndarray, start: np.ndarray, width: int) -> np.ndarray:
    """Big-endian ``width``-byte integers at per-row byte offsets ``start``."""
    rows = np.arange(len(packets))[:, None]
    parts = packets[rows, start[:, None] + np.arange(width)].astype(np.int64)
    value = np.zeros(len(packets), np.int64)
    for i in range(width):
        value = value << 8 | parts[:, i]
    return value


def field_locations(packets: np.ndarray, name: str) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """Where field ``name`` sits in each vector of ``packets`` that has it: a list of
    ``(rows, byte offsets of those rows, width, bit mask)``, one entry per IP version. What
    ``header_fields`` reads and ``mtc_keras.perturb`` overwrites."""
    span = FIELD_SPANS[name]
    v4, v6, proto, l4, has_ports = _transport_fields(np.asarray(packets, np.uint8))
    out = []
    for where, version in ((span.ipv4, v4), (span.ipv6, v6)):
        if where is None:
            continue
        offset, mask = where
        rows = version & has_ports & np.isin(proto, span.transport) if span.transport else version
        rows = np.flatnonzero(rows)
        start = (l4[rows] if span.transport else np.zeros(len(rows), np.int64)) + offset
        out.append((rows, start, span.width, mask))
    return out


def header_fields(packets: np.ndarray, names=None) -> dict:
    """Named header fields per vector, int64, read from the stored vectors (0 where a row lacks
    the field: IPv4 fields on IPv6 rows, TCP fields on UDP rows and the other way round).

    The fields (``HEADER_FIELDS``, then ``IDENTIFIER_FIELDS``):

    - 'ip_version' (4 / 6, else 0); 'tos' (IPv4 TOS byte, IPv6 traffic class); 'ip_length'
      (IPv4 total length, IPv6 payload length + 40: the on-the-wire size); 'ip_id' (IPv4
      identification); 'ip_flags' (IPv4 reserved, DF, MF as 3 bits: DF = 2, MF = 1); 'ttl' (IPv4 TTL, IPv6 hop limit); 'protocol' (6 / 17, else 0);
    - 'src_port', 'dst_port' (TCP and UDP); 'tcp_data_offset' (always 5 after the rules);
      'tcp_flags' (NS, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN as 9 bits); 'tcp_window';
      'tcp_urgent'; 'udp_length';
    - identifiers: 'tcp_seq', 'tcp_ack', 'ipv6_flow_label'.

    ``names``: only these fields (default: all of the above).
    """
    packets = np.asarray(packets, np.uint8)
    v4, v6, proto, _, has_ports = _transport_fields(packets)
    zero = np.zeros(len(packets), np.int64)
    fixed = {
        "ip_version": lambda: np.where(v4, 4, np.where(v6, 6, zero)),
        "ip_length": lambda: np.where(v4, _be16(packets, 2),
                                      np.where(v6, _be16(packets, 4) + 40, zero)),
        "protocol": lambda: np.where(has_ports, proto, 0),
    }
    out = {}
    for name in (HEADER_FIELDS + IDENTIFIER_FIELDS) if names is None else names:
        if name in fixed:
            out[name] = fixed[name]()
            continue
        if name not in FIELD_SPANS:
            raise ValueError(f"unknown header field {name!r}; expected one of "
                             f"{list(HEADER_FIELDS + IDENTIFIER_FIELDS)}")
        value = zero.copy()
        for rows, start, width, mask in field_locations(packets, name):
            shift = (mask & -mask).bit_length() - 1  # the mask's lowest bit
            value[rows] = (_read_be(packets[rows], start, width) & mask) >> shift
        out[name] = value
    return out
