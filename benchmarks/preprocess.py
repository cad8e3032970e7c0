"""Packet preprocessing speed: mtc_keras.packets against a scapy-dissection pipeline.

    python -m benchmarks.preprocess [--frames 100000] [--pcaps DIR]

Both pipelines run in this process, pinned to one core, over the same capture: the real captures
in ../shared/data/pcaps replayed to ``--frames`` frames when that folder exists, else a generated
one. The scapy pipeline is the way Deep Packet and the public MTC re-implementation preprocess:
``PcapReader`` dissects every frame into scapy layers, then the §3.2.1 rules are applied to those
layers. It is also the reference the tests check our vectors against, so before timing, both
pipelines must agree on every frame of one replay: the same drop reason and, for kept packets,
the same 1500 bytes and flow key. Times are CPU seconds of this single-threaded process.
Last line: ``speedup_vs_scapy=<ratio>`` (against the scapy pipeline doing the same steps).
"""

from __future__ import annotations

import os
import pathlib
import random
import struct
import tempfile
import time

import numpy as np
from absl import app, flags
from scapy.utils import PcapReader

from mtc_keras import packets as mtc_packets
from mtc_keras.capture import iter_frames
from mtc_keras.capture_writer import pcap_header, pcap_record
# The tests' reference is the baseline timed here: one copy of it, in mtc_keras.testing.
from mtc_keras.testing import scapy_vector

_FLAGS = flags.FLAGS


def define_flags() -> None:
    """The benchmark's flags, defined when it runs (the benchmarks share flag names)."""
    flags.DEFINE_integer("frames", 100_000, "frames in the timed capture (a replay of the input)")
    flags.DEFINE_string("pcaps", None, "folder of real captures (default: $MTC_SHARED_DATA/pcaps, "
                        "else ../shared/data/pcaps; a generated capture when absent)")
    flags.DEFINE_integer("repeats", 3, "timed runs of the fast pipeline; the best one counts")

def scapy_pipeline(path: str):
    """PcapReader + scapy layers, like the public re-implementations: vectors, flows, reasons."""
    vectors, flows, reasons = [], [], []
    with PcapReader(path) as reader:
        for pkt in reader:
            vector, reason, flow = scapy_vector(pkt)
            reasons.append(reason)
            if vector is not None:
                vectors.append(vector)
                flows.append(flow)
    packets = np.frombuffer(b"".join(vectors), np.uint8).reshape(-1, 1500)
    return packets, flows, reasons


# ------------------------------------------------------------------ the capture to time
def _write_pcap(path: str, frames: list[bytes], repeat: int = 1) -> None:
    with open(path, "wb") as f:
        f.write(pcap_header())
        records = b"".join(pcap_record(fr) for fr in frames)
        for _ in range(repeat):
            f.write(records)


def _synthetic_frames(n: int = 5000, seed: int = 0) -> list[bytes]:
    """Ethernet frames with a real-traffic-like mix, for when no real captures are around."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.random()
        sport, dport = rng.choice((443, 80, 993, 5228, 53)), rng.randrange(1024, 65536)
        if kind < 0.3:  # pure ACK
            payload, proto = b"", 6
        elif kind < 0.4:
            payload, proto = rng.randbytes(rng.randrange(20, 1200)), 17
        else:
            payload, proto = rng.randbytes(rng.choice((rng.randrange(1, 200), 1448))), 6
        if proto == 6:
            l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 8 << 4, 0x18, 502, 0xBEEF, 0)
            l4 += bytes((1, 1, 8, 10)) + rng.randbytes(8)  # NOP NOP timestamps
        else:
            l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0xBEEF)
        src, dst = rng.randbytes(4), rng.randbytes(4)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4) + len(payload), 1, 0x4000, 64,
                         proto, 0xABCD, src, dst)
        frame = bytes(6) + bytes(6) + b"\x08\x00" + ip + l4 + payload
        out.append(frame.ljust(60, b"\0"))
    return out


def _input_frames(folder: pathlib.Path | None) -> tuple[list[bytes], str]:
    if folder is not None and folder.is_dir():
        frames = [fr for p in sorted(folder.iterdir()) if p.suffix in (".pcap", ".pcapng")
                  for lt, fr in iter_frames(p) if lt == 1]
        if frames:
            return frames, f"{folder} (real captures, Ethernet frames)"
    return _synthetic_frames(), "generated Ethernet frames"


def _clock() -> float:
    # CPU seconds of this (single-threaded, one-core) process: other load on the machine
    # does not skew the ratio.
    return time.process_time()


def main(argv):
    del argv
    os.environ["OMP_NUM_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    shared = os.environ.get("MTC_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
    default = pathlib.Path(shared) / "pcaps"
    frames, source = _input_frames(pathlib.Path(_FLAGS.pcaps) if _FLAGS.pcaps else default)
    repeat = max(1, -(-_FLAGS.frames // len(frames)))
    with tempfile.TemporaryDirectory() as tmp:
        unit, big = os.path.join(tmp, "unit.pcap"), os.path.join(tmp, "replay.pcap")
        _write_pcap(unit, frames)
        _write_pcap(big, frames, repeat)
        print(f"input: {source}: {len(frames)} frames, replayed x{repeat} = {len(frames) * repeat}")

        # The comparison is only honest if both pipelines compute the same thing.
        ours = mtc_packets.process_capture(unit)
        t0 = _clock()
        ref_packets, ref_flows, reasons = scapy_pipeline(unit)
        scapy_s = _clock() - t0
        t0 = _clock()
        with PcapReader(unit) as reader:  # dissection alone: a floor under any scapy pipeline
            for _ in reader:
                pass
        dissect_s = _clock() - t0
        ref_counts = {f"dropped_{r}": reasons.count(r) for r in mtc_packets.DROP_REASONS}
        our_counts = {k: ours.counts[k] for k in ref_counts}
        assert our_counts == ref_counts, f"drop counts differ: ours {our_counts} scapy {ref_counts}"
        assert np.array_equal(ours.packets, ref_packets), "vectors differ from the scapy reference"
        assert list(ours.flow_ids) == ref_flows, "flow keys differ from the scapy reference"
        print(f"check: both pipelines keep the same {len(ref_packets)} of {len(frames)} frames "
              "with identical vectors and flow keys")

        best = float("inf")
        for _ in range(_FLAGS.repeats):
            t0 = _clock()
            batch = mtc_packets.process_capture(big)
            best = min(best, _clock() - t0)
        assert batch.counts["read"] == len(frames) * repeat
    scapy_rate = len(frames) / scapy_s
    our_rate = len(frames) * repeat / best
    print(f"scapy PcapReader alone, no rules: {len(frames) / dissect_s:,.0f} packets/s")
    print(f"scapy dissection pipeline: {scapy_rate:,.0f} packets/s ({len(frames)} frames)")
    print(f"mtc_keras.packets: {our_rate:,.0f} packets/s ({len(frames) * repeat} frames, best of "
          f"{_FLAGS.repeats})")
    print(f"speedup_vs_scapy_reader_alone={our_rate / (len(frames) / dissect_s):.1f}")
    print(f"speedup_vs_scapy={our_rate / scapy_rate:.1f}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
