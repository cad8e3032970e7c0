"""Streaming pcap / pcapng reading: records out, nothing interpreted.

The format is told by the magic number, never by the file name (several ISCX ``.pcap`` files are
pcapng). Files are read in chunks of ``chunk_size`` bytes, so memory stays bounded whatever the file
size. Frames come out either one at a time, ``(linktype, frame bytes)``, or in blocks
(:class:`FrameBlock`: one buffer plus offset / length / link-type arrays) that
:mod:`mtc_keras.packets` turns into vectors with numpy, without a Python object per frame.

:class:`Capture` opens a path, or reads a binary stream that cannot seek (standard input, a pipe
from ``tcpdump -w -``) as it arrives: each block holds the frames that were there, not a full
chunk. Each format is one generator of blocks (``_pcap_blocks``, ``_pcapng_blocks``) around the
record loop they share (``_read_blocks``).
Every block carries the frames' capture times (``FrameBlock.timestamps``, seconds).

A truncated last record or a corrupt block (impossible lengths, a bad trailer, an undefined
interface) ends the file: everything read before it is kept, a warning is logged and
:class:`CaptureStats` records it. A file that is neither pcap nor pcapng raises
:class:`CaptureFormatError`, whose message names the file.

Link-layer headers are not read here; :mod:`mtc_keras.packets` owns every header offset.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import struct
from typing import BinaryIO, Iterator

import numpy as np

log = logging.getLogger(__name__)

# First four bytes of the file as read little-endian -> (format, byte order, extra record bytes).
_PCAP_MAGICS = {
    0xA1B2C3D4: ("<", 0),  # microsecond timestamps, little-endian file
    0xD4C3B2A1: (">", 0),  # microsecond, big-endian
    0xA1B23C4D: ("<", 0),  # nanosecond, little-endian
    0x4D3CB2A1: (">", 0),  # nanosecond, big-endian
    0xA1B2CD34: ("<", 8),  # Kuznetzov's "modified" pcap: 8 more bytes per record header
    0x34CDB2A1: (">", 8),
}
_PCAPNG_SHB = 0x0A0D0D0A  # the same in both byte orders
_PCAPNG_BOM = 0x1A2B3C4D
# What mtc_keras.capture_writer writes with: the pcap magics (microsecond, nanosecond) as packed
# in the file's own byte order, and the pcapng block types.
PCAP_MAGIC, PCAP_NANO_MAGIC = 0xA1B2C3D4, 0xA1B23C4D
PCAPNG_SHB, PCAPNG_BOM, PCAPNG_IDB, PCAPNG_EPB = _PCAPNG_SHB, _PCAPNG_BOM, 0x00000001, 0x00000006

# Sanity limits past which a length field is taken as corruption, not as data to read.
_MAX_CAPLEN = 262_144  # libpcap's largest snapshot length; a larger pcap snaplen raises it
_MAX_BLOCK = 16 * 1024 * 1024  # libpcap's limit on a pcapng block

# Every FrameBlock buffer has at least this many readable zero bytes after its last frame,
# so consumers may read fixed-size windows past a frame's end without bounds checks.
TAIL_PAD = 4096
CHUNK_SIZE = 4 * 1024 * 1024
STREAM_CHUNK_SIZE = 256 * 1024  # a stream's buffer: one read takes what has arrived, up to this


class CaptureFormatError(ValueError):
    """The file is neither pcap nor pcapng."""


@dataclasses.dataclass
class CaptureStats:
    """What reading one capture file found. Filled in while the file is read."""

    path: str
    format: str = ""  # "pcap" or "pcapng"
    frames: int = 0
    truncated: bool = False  # the file ended inside a record or block
    corrupt: bool = False  # a block / record header that cannot be right ended the file
    problem: str | None = None  # the warning that was logged for truncated / corrupt
    linktypes: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def incomplete(self) -> bool:
        return self.truncated or self.corrupt


@dataclasses.dataclass
class FrameBlock:
    """Frames read from one buffer: frame i is ``data[offsets[i] : offsets[i] + lengths[i]]``.

    ``data`` is followed by at least ``TAIL_PAD`` readable bytes after the last frame.
    """

    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64, captured length
    linktypes: np.ndarray  # int64, per frame (pcapng interfaces may differ)
    # float64 seconds (since the epoch, as the capture says), per frame; NaN where the record
    # has none (pcapng simple packet blocks); None for hand-built blocks.
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: slice) -> "FrameBlock":
        """The frames in a slice, sharing the buffer."""
        times = None if self.timestamps is None else self.timestamps[index]
        return FrameBlock(self.data, self.offsets[index], self.lengths[index], self.linktypes[index],
                          times)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        view = memoryview(self.data)
        for lt, off, n in zip(self.linktypes.tolist(), self.offsets.tolist(), self.lengths.tolist()):
            yield lt, bytes(view[off : off + n])


class _Buffer:
    """A window on the file: ``buf[pos:end]`` holds unread bytes; refilling allocates a new
    buffer (blocks already handed out keep theirs) and carries the unread bytes over."""

    def __init__(self, f: BinaryIO, chunk_size: int, stream: bool = False, head: bytes = b""):
        self.f, self.chunk_size = f, chunk_size
        self.buf, self.pos, self.end = bytearray(head) + bytearray(TAIL_PAD), 0, len(head)
        # A stream is read only until ``need`` bytes are there (one read returns what has
        # arrived), so frames come out as they arrive; a file fills the whole chunk.
        self.stream = stream
        self._read = getattr(f, "readinto1", f.readinto) if stream else f.readinto

    def fill(self, need: int) -> bool:
        """Make at least ``need`` unread bytes available; False when the file ends first."""
        have = self.end - self.pos
        if have >= need:
            return True
        size = max(self.chunk_size, need)
        new = bytearray(size + TAIL_PAD)
        new[:have] = memoryview(self.buf)[self.pos : self.end]
        view = memoryview(new)
        target = need if self.stream else size
        while have < target:
            n = self._read(view[have:size])
            if not n:
                break
            have += n
        self.buf, self.pos, self.end = new, 0, have
        return have >= need

    def where(self) -> str:
        """'byte N' of the next unread byte; a stream that has no tell(): 'a record'."""
        try:
            return f"byte {self.f.tell() - (self.end - self.pos)}"
        except (OSError, ValueError):
            return "a record"


class _Ended(Exception):
    """How a format's reader says that the capture ended early: ``kind`` is the CaptureStats
    flag ("truncated" or "corrupt"), ``what`` the reason."""

    def __init__(self, kind: str, what: str):
        super().__init__(what)
        self.kind, self.what = kind, what


def sniff_format(path: str | os.PathLike) -> str:
    """'pcap' or 'pcapng' from the magic number; CaptureFormatError for anything else."""
    with open(path, "rb") as f:
        head = f.read(4)
    return _format_of(head, os.fspath(path))


def _format_of(head: bytes, name: str) -> str:
    if len(head) == 4:
        magic = struct.unpack("<I", head)[0]
        if magic in _PCAP_MAGICS:
            return "pcap"
        if magic == _PCAPNG_SHB:
            return "pcapng"
    raise CaptureFormatError(
        f"{name}: not a pcap or pcapng capture (magic {head.hex() or 'empty file'})"
    )


def _read_head(f: BinaryIO, n: int) -> bytes:
    """The first ``n`` bytes of a stream (fewer only at its end), without seeking."""
    head = b""
    read = getattr(f, "read1", f.read)
    while len(head) < n:
        part = read(n - len(head))
        if not part:
            break
        head += part
    return head


_NANO_MAGICS = (0xA1B23C4D, 0x4D3CB2A1)


def _record_times(data: np.ndarray, starts: np.ndarray, order: str) -> np.ndarray:
    """Two 32-bit words at each start (pcap: seconds, fraction; pcapng: high, low) as [n, 2]."""
    raw = data[starts[:, None] + np.arange(8)]
    return raw.view(np.dtype(order + "u4")).astype(np.float64)


def _idb_resolution(buf, pos: int, blen: int, order: str) -> tuple[float, float]:
    """(seconds per timestamp unit, offset in seconds) from an interface description's
    if_tsresol (9) and if_tsoffset (14) options; pcapng's default is microseconds."""
    unit, offset = 1e-6, 0.0
    at, stop = pos + 16, pos + blen - 4
    while at + 4 <= stop:
        code, length = struct.unpack_from(order + "HH", buf, at)
        if code == 0 or at + 4 + length > stop:
            break
        if code == 9 and length >= 1:
            value = buf[at + 4]
            unit = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        elif code == 14 and length >= 8:
            offset = float(struct.unpack_from(order + "q", buf, at + 4)[0])
        at += 4 + length + (-length % 4)
    return unit, offset


def _pcapng_times(buf, stamp_at, iface_of, if_units, order) -> np.ndarray:
    """Seconds per frame from the 64-bit (high, low) timestamps of enhanced / obsolete packet
    blocks at ``stamp_at``; -1 there marks a simple packet block, which has none: NaN."""
    stamp_at = np.asarray(stamp_at, np.int64)
    has = stamp_at >= 0
    units = np.asarray(if_units, np.float64).reshape(-1, 2)[iface_of]
    words = _record_times(np.frombuffer(buf, np.uint8), np.where(has, stamp_at, 0), order)
    times = (words[:, 0] * 4294967296.0 + words[:, 1]) * units[:, 0] + units[:, 1]
    return np.where(has, times, np.nan)


# ----------------------------------------------------------------------------- the readers
# A format's reader is a generator of FrameBlocks over a _Buffer: it reads the format's header
# and state, and gives ``_read_blocks`` a ``scan`` that takes the whole records the buffer
# holds. It raises _Ended when the capture ends early (what came before is already yielded).
def _read_blocks(b: _Buffer, scan) -> Iterator[FrameBlock]:
    """The loop both formats share. ``scan()`` reads records from ``b.pos`` while the buffer
    holds them whole (at most max_frames) and moves ``b.pos`` past them; it returns (the block
    of their frames or None, bytes needed to go on (0: nothing missing), what a cut there would
    be inside, the reason the data cannot be right or None)."""
    while True:
        block, need, inside, corrupt = scan()
        if block is not None:
            yield block
        if corrupt:
            raise _Ended("corrupt", corrupt)
        if need and not b.fill(need):
            if b.end > b.pos:
                raise _Ended("truncated", f"file ends inside {inside}")
            return


def _block(buf, offsets, lengths, linktypes, timestamps) -> FrameBlock:
    return FrameBlock(np.frombuffer(buf, np.uint8), np.asarray(offsets, np.int64),
                      np.asarray(lengths, np.int64), np.asarray(linktypes, np.int64), timestamps)


def _pcap_blocks(b: _Buffer, max_frames: int) -> Iterator[FrameBlock]:
    """Classic pcap: a 24-byte file header (byte order, clock, snap length, link type), then
    records of a 16-byte header (8 more in the "modified" format) and the frame."""
    if not b.fill(24):
        raise _Ended("truncated", "file ends inside the pcap file header")
    magic = struct.unpack_from("<I", b.buf, 0)[0]
    order, extra = _PCAP_MAGICS[magic]
    fraction = 1e-9 if magic in _NANO_MAGICS else 1e-6
    snaplen, linktype = struct.unpack_from(order + "II", b.buf, 16)
    linktype &= 0xFFFF  # the upper bits hold FCS-length flags
    max_caplen = max(snaplen, _MAX_CAPLEN)
    b.pos = 24
    hdr = 16 + extra
    caplen_at = struct.Struct(order + "I").unpack_from

    # The per-record loop reads its constants as locals (arguments), not closure cells: faster.
    def scan(hdr=hdr, max_caplen=max_caplen, caplen_at=caplen_at, max_frames=max_frames):
        buf, pos, end = b.buf, b.pos, b.end
        offsets, lengths = [], []
        need, corrupt = 0, None
        while len(offsets) < max_frames:
            if pos + hdr > end:
                need = hdr
                break
            caplen = caplen_at(buf, pos + 8)[0]
            if caplen > max_caplen:
                b.pos = pos
                corrupt = f"record at {b.where()} claims {caplen} bytes"
                break
            if pos + hdr + caplen > end:
                need = hdr + caplen
                break
            offsets.append(pos + hdr)
            lengths.append(caplen)
            pos += hdr + caplen
        b.pos = pos
        block = None
        if offsets:
            words = _record_times(np.frombuffer(buf, np.uint8), np.asarray(offsets, np.int64) - hdr, order)
            block = _block(buf, offsets, lengths, np.full(len(offsets), linktype),
                           words[:, 0] + words[:, 1] * fraction)
        return block, need, "the last record", corrupt

    yield from _read_blocks(b, scan)


def _unpackers(order: str):
    """(two 32-bit words, one 32-bit word, one 16-bit word) readers in a byte order."""
    return tuple(struct.Struct(order + fmt).unpack_from for fmt in ("II", "I", "H"))


def _pcapng_blocks(b: _Buffer, max_frames: int) -> Iterator[FrameBlock]:
    """pcapng: sections, each a section header (its byte order) and blocks; the interface
    descriptions of a section give its packets' link types, snap lengths and clocks. A
    FrameBlock never spans two sections."""
    order = "<"
    if_linktypes: list[int] = []  # link type of each interface of the current section
    if_snaplens: list[int] = []
    if_units: list[tuple[float, float]] = []  # (seconds per unit, offset) per interface

    def scan(max_frames=max_frames, if_linktypes=if_linktypes, if_snaplens=if_snaplens, if_units=if_units):
        nonlocal order
        buf, pos, end = b.buf, b.pos, b.end
        offsets, lengths, ifaces, stamp_at = [], [], [], []
        need, inside, corrupt = 0, "the last block", None
        u2, u1, u16 = _unpackers(order)
        while len(offsets) < max_frames:
            if pos + 12 > end:
                need = 12
                break
            btype, blen = u2(buf, pos)
            if btype == _PCAPNG_SHB:  # a new section: the frames before it go out first
                if offsets:
                    break
                if pos + 16 > end:
                    need, inside = 16, "a section header block"
                    break
                bom = struct.unpack_from("<I", buf, pos + 8)[0]
                if bom not in (_PCAPNG_BOM, 0x4D3C2B1A):
                    corrupt = "section header block with an unknown byte-order magic"
                    break
                order = "<" if bom == _PCAPNG_BOM else ">"
                u2, u1, u16 = _unpackers(order)
                blen = u1(buf, pos + 4)[0]
                if blen < 28 or blen % 4 or blen > _MAX_BLOCK:
                    corrupt = f"section header block has impossible length {blen}"
                    break
                if pos + blen > end:
                    need, inside = blen, "a section header block"
                    break
                for table in (if_linktypes, if_snaplens, if_units):  # interfaces are per section
                    table.clear()
                pos += blen
                continue
            if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
                corrupt = f"pcapng block of type {btype:#x} has impossible length {blen}"
                break
            if pos + blen > end:
                need = blen
                break
            if u1(buf, pos + blen - 4)[0] != blen:
                corrupt = f"pcapng block of type {btype:#x} has a bad trailing length"
                break
            if btype == 6 or btype == 2:  # enhanced / obsolete packet block
                iface = u1(buf, pos + 8)[0] if btype == 6 else u16(buf, pos + 8)[0]
                caplen = u1(buf, pos + 20)[0]
                if iface >= len(if_linktypes) or 32 + caplen > blen:
                    corrupt = f"packet block for interface {iface} ({len(if_linktypes)} defined) or {caplen} bytes in a {blen}-byte block"
                    break
                offsets.append(pos + 28)
                lengths.append(caplen)
                ifaces.append(iface)
                stamp_at.append(pos + 12)
            elif btype == 3:  # simple packet block: interface 0, length from the block
                if not if_linktypes:
                    corrupt = "simple packet block before any interface description"
                    break
                caplen = min(u1(buf, pos + 8)[0], blen - 16)
                if if_snaplens[0]:
                    caplen = min(caplen, if_snaplens[0])
                offsets.append(pos + 12)
                lengths.append(caplen)
                ifaces.append(0)
                stamp_at.append(-1)
            elif btype == 1:  # interface description
                if blen < 20:
                    corrupt = f"interface description block of {blen} bytes"
                    break
                if_linktypes.append(u16(buf, pos + 8)[0])
                if_snaplens.append(u1(buf, pos + 12)[0])
                if_units.append(_idb_resolution(buf, pos, blen, order))
            pos += blen  # other blocks (name resolution, statistics, custom...) hold no frames
        b.pos = pos
        block = None
        if offsets:
            iface_of = np.asarray(ifaces, np.int64)
            block = _block(buf, offsets, lengths, np.asarray(if_linktypes, np.int64)[iface_of],
                           _pcapng_times(buf, stamp_at, iface_of, if_units, order))
        return block, need, inside, corrupt

    yield from _read_blocks(b, scan)


_READERS = {"pcap": _pcap_blocks, "pcapng": _pcapng_blocks}


class Capture:
    """An open capture: a file, or a binary stream that need not seek (``sys.stdin.buffer``, a
    pipe, a socket file). Iterate for ``(linktype, frame bytes)``, or call :meth:`blocks`.

    The format comes from the first 4 bytes, read at once: CaptureFormatError naming the capture
    (``name``: the path, or "<stdin>" for a stream) for anything that is not pcap or pcapng, an
    empty stream included. A stream is read as it arrives: a block is yielded as soon as the
    bytes read so far hold whole records (``chunk_size`` default: STREAM_CHUNK_SIZE for a
    stream, CHUNK_SIZE for a file). ``stats`` fills in as the capture is read. Use as a context
    manager, or call :meth:`close` (which leaves a stream open: its owner closes it).
    """

    def __init__(self, source: str | os.PathLike | BinaryIO, chunk_size: int | None = None,
                 stats: CaptureStats | None = None, *, name: str | None = None):
        stream = not isinstance(source, (str, os.PathLike))
        self.path = name if name is not None else "<stdin>" if stream else os.fspath(source)
        f = source if stream else open(source, "rb")
        try:
            head = _read_head(f, 4)
            fmt = _format_of(head, self.path)
        except BaseException:
            if not stream:
                f.close()
            raise
        self.stats = stats if stats is not None else CaptureStats(path=self.path)
        self.stats.path, self.stats.format = self.path, fmt
        self._f, self._owns_file = f, not stream
        chunk_size = chunk_size or (STREAM_CHUNK_SIZE if stream else CHUNK_SIZE)
        self._buffer = _Buffer(f, chunk_size, stream=stream, head=head)
        self._started = False

    def close(self) -> None:
        if self._owns_file:
            self._f.close()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for block in self.blocks():
            yield from block.frames()

    def blocks(self, max_frames: int = 4096) -> Iterator[FrameBlock]:
        """FrameBlocks of at most ``max_frames`` frames each, in file order. Single use."""
        if self._started:
            raise RuntimeError(f"{self.path}: a Capture can be read only once")
        self._started = True
        stats = self.stats
        try:
            for block in _READERS[stats.format](self._buffer, max(1, max_frames)):
                stats.frames += len(block)
                stats.linktypes.update(block.linktypes.tolist())
                yield block
        except _Ended as ended:
            setattr(stats, ended.kind, True)
            stats.problem = f"{self.path}: {ended.what}; kept the {stats.frames} frames read before it"
            log.warning("%s", stats.problem)


def open_capture(path: str | os.PathLike, chunk_size: int = CHUNK_SIZE) -> Capture:
    """Open a pcap or pcapng file (format from its magic number). Raises CaptureFormatError."""
    return Capture(path, chunk_size)


def iter_frames(path: str | os.PathLike, stats: CaptureStats | None = None) -> Iterator[tuple[int, bytes]]:
    """``(linktype, frame bytes)`` for every frame of a capture, streamed.

    Pass ``stats`` to get the file's :class:`CaptureStats` filled in as reading goes.
    """
    with Capture(path, stats=stats) as cap:
        yield from cap


def manual_files(manual_dir) -> list:
    """Every file under a dataset's manual folder, at any depth, sorted: ``[(path, shown)]`` with
    ``path`` an ``etils.epath.Path`` and ``shown`` its path relative to the folder (for reports).
    FileNotFoundError when the folder does not exist."""
    from etils import epath

    root = epath.Path(manual_dir)
    if not root.exists():
        raise FileNotFoundError(f"manual folder {root} does not exist")
    files = sorted(directory / name for directory, _, names in root.walk() for name in names)
    return [(path, str(path.relative_to(root))) for path in files]
