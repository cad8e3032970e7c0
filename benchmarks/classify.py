"""Live-traffic classification speed: mtc-classify end to end, every packet vs early verdicts.

    python -m benchmarks.classify [--frames 100000] [--pcaps DIR] [--model RUN_DIR/export]

Input: the real captures in ../shared/data/pcaps (or $MTC_SHARED_DATA/pcaps), their Ethernet
frames with their own timestamps, replayed to at least ``--frames`` frames; each replay's IP
source addresses are shifted, so that its flows are new flows, as on a live link (the vectors
zero the addresses, so the model sees the same bytes). Without that folder: the demo captures
(mtc_keras.synthetic). Model: ``--model`` (e.g. runs/demo/export), else a freshly built small
ISCX 1D-CNN (untrained: speed does not depend on the weights), exported like a trained one.

Measured in one run, on the same replay:

* preprocessing alone: Capture.blocks + packets.process_block, what mtc-classify does;
* the model alone: the SavedModel's ``serve`` on the kept vectors, in batches of --batch_size;
* mtc-classify end to end, the capture piped on stdin (``cat replay | mtc-classify --pcap -
  --format jsonl``), classifying every packet and with ``--flow_packets 5``. Its start-up (imports,
  loading the SavedModel, the first XLA compilation) is timed on a one-frame capture and taken
  off, so the rate is what a long-running stream sustains.

Rates are wall-clock frames (or packets) per second; Mbit/s is at the replay's mean frame
size. Last line: ``early_verdict_speedup=<frames/s with --flow_packets 5 / frames/s classifying
every packet>``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from mtc_keras import packets
from mtc_keras.capture import Capture
from mtc_keras.capture_writer import pcap_header, pcap_record

_FLAGS = flags.FLAGS


def define_flags() -> None:
    """The benchmark's flags, defined when it runs (the benchmarks share flag names)."""
    flags.DEFINE_integer("frames", 100_000, "frames in the replay (at least)")
    flags.DEFINE_string("pcaps", None, "folder of real captures (default: $MTC_SHARED_DATA/pcaps, "
                        "else ../shared/data/pcaps; the demo captures when absent)")
    flags.DEFINE_string("model", None, "an ISCX export to time (default: a fresh small 1D-CNN)")
    flags.DEFINE_integer("batch_size", 256, "packets per model call (mtc-classify's --batch_size)")
    flags.DEFINE_integer("flow_packets", 5, "the early-verdict run's --flow_packets")

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _input_frames(folder: pathlib.Path | None, tmp: str) -> tuple[list[tuple[float, bytes]], str]:
    """(time, Ethernet frame) of every capture in the folder, else of the demo captures."""
    def read(paths):
        """Each capture's frames in its own time, the captures one after the other (1 s apart)."""
        out, base = [], 0.0
        for path in paths:
            with Capture(path) as cap:
                part = [(t, fr) for block in cap.blocks()
                        for t, (lt, fr) in zip(block.timestamps.tolist(), block.frames()) if lt == 1]
            times = np.array([t for t, _ in part])
            if not len(part) or not np.isfinite(times).any():
                continue
            # Real captures jump in time (clock resets, years between sessions): gaps are cut
            # to at most a minute, so that the replay's clock runs like a live link's.
            gaps = np.clip(np.nan_to_num(np.diff(times, prepend=times[0])), 0.0, 60.0)
            clock = base + np.cumsum(gaps)
            out += [(t, fr) for t, (_, fr) in zip(clock.tolist(), part)]
            base = float(clock[-1]) + 1.0
        return out

    if folder is not None and folder.is_dir():
        frames = read(sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng")))
        if frames:
            return frames, f"{folder} (real captures, Ethernet frames)"
    from mtc_keras import synthetic

    paths = synthetic.write_demo_captures(os.path.join(tmp, "demo"))
    return read(sorted(paths)), "demo captures (mtc_keras.synthetic)"


def _shift_source(frame: bytes, k: int) -> bytes:
    """The frame with its IPv4 / IPv6 source address changed by replay number k (0: as is)."""
    if k == 0 or len(frame) < 40:
        return frame
    etype = frame[12] << 8 | frame[13]
    at = 14 + 12 + 1 if etype == 0x0800 else 14 + 8 + 1 if etype == 0x86DD else None
    if at is None:
        return frame
    b = bytearray(frame)
    b[at] ^= k & 0xFF
    b[at + 1] ^= (k >> 8) & 0xFF
    return bytes(b)


def _write_replay(path: str, frames: list[tuple[float, bytes]], repeat: int) -> None:
    """The frames ``repeat`` times, one replay after the other in time, sources shifted."""
    times = np.array([t for t, _ in frames])
    span = float(np.nanmax(times) - np.nanmin(times)) + 1.0
    t0 = float(np.nanmin(times))
    with open(path, "wb") as f:
        f.write(pcap_header())
        for k in range(repeat):
            parts = []
            for t, fr in frames:
                t = (t - t0 if np.isfinite(t) else 0.0) + k * span + 1.7e9
                fr = _shift_source(fr, k)
                parts.append(pcap_record(fr, t))
            f.write(b"".join(parts))


def _fresh_model(export_dir: str) -> str:
    """A small ISCX 1D-CNN, exported (probabilities out, labels.json beside)."""
    import keras

    from mtc_keras import export, models

    keras.utils.set_random_seed(0)
    model = models.build_model("cnn", "iscx", conv_filters=(32, 32), dense_units=(64, 32))
    print(f"model: fresh ISCX 1D-CNN, {model.count_params():,} parameters (conv 32, 32; dense 64, 32)")
    return export.export(model, export_dir, "iscx")


def _preprocess(path: str) -> tuple[float, np.ndarray, int]:
    """(seconds, the kept vectors, frames) for reading + preprocessing the whole replay."""
    t0 = time.perf_counter()
    kept, frames = [], 0
    with Capture(path) as cap:
        for block in cap.blocks(max_frames=4096):
            batch = packets.process_block(block)
            frames += len(block)
            kept.append(batch.packets)
    seconds = time.perf_counter() - t0
    return seconds, np.concatenate(kept), frames


def _model_rate(model_dir: str, vectors: np.ndarray, batch_size: int) -> float:
    """Packets/s of the SavedModel's serve alone, after one warm-up call."""
    from mtc_keras import classify

    model, _ = classify.load_model(model_dir)
    n = min(len(vectors), 20 * batch_size)
    classify.predict(model.serve, vectors[:batch_size], batch_size)  # compile
    t0 = time.perf_counter()
    classify.predict(model.serve, vectors[:n], batch_size)
    return n / (time.perf_counter() - t0)


def _classify(model_dir: str, path: str, *extra: str) -> tuple[float, str]:
    """(wall seconds, stderr) of ``cat path | mtc-classify --pcap - --format jsonl``."""
    command = [sys.executable, "-m", "mtc_keras.classify", f"--model={model_dir}", "--pcap=-",
               "--format=jsonl", f"--batch_size={_FLAGS.batch_size}", *extra]
    t0 = time.perf_counter()
    with open(path, "rb") as stdin:
        result = subprocess.run(command, stdin=stdin, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, cwd=_REPO)
    seconds = time.perf_counter() - t0
    if result.returncode:
        raise RuntimeError(f"mtc-classify failed:\n{result.stderr[-3000:]}")
    return seconds, result.stderr


def _stat(stderr: str, key: str) -> int:
    line = [ln for ln in stderr.splitlines() if "mtc-classify: stats " in ln][-1]
    return int(line.split(f" {key}=")[1].split()[0])


def main(argv):
    del argv
    shared = os.environ.get("MTC_SHARED_DATA", _REPO.parent / "shared" / "data")
    folder = pathlib.Path(_FLAGS.pcaps) if _FLAGS.pcaps else pathlib.Path(shared) / "pcaps"
    with tempfile.TemporaryDirectory() as tmp:
        frames, source = _input_frames(folder, tmp)
        repeat = max(1, -(-_FLAGS.frames // len(frames)))
        replay, one = os.path.join(tmp, "replay.pcap"), os.path.join(tmp, "one.pcap")
        _write_replay(replay, frames, repeat)
        _write_replay(one, frames[:1], 1)
        n_frames = len(frames) * repeat
        mean_bytes = float(np.mean([len(fr) for _, fr in frames]))
        print(f"input: {source}: {len(frames)} frames, replayed x{repeat} = {n_frames} frames, "
              f"mean frame {mean_bytes:.0f} bytes")
        model_dir = _FLAGS.model or _fresh_model(os.path.join(tmp, "export"))
        if _FLAGS.model:
            print(f"model: {model_dir}")

        pre_s, vectors, read = _preprocess(replay)
        assert read == n_frames, (read, n_frames)
        model_pps = _model_rate(model_dir, vectors, _FLAGS.batch_size)
        startup, _ = _classify(model_dir, one)
        every_s, every_err = _classify(model_dir, replay)
        early_s, early_err = _classify(model_dir, replay, f"--flow_packets={_FLAGS.flow_packets}")
        assert _stat(every_err, "read") == _stat(early_err, "read") == n_frames

    def rate(seconds):
        return n_frames / max(seconds - startup, 1e-9)

    def mbit(fps):
        return fps * mean_bytes * 8 / 1e6

    kept = len(vectors)
    pre_fps = n_frames / pre_s
    every, early = rate(every_s), rate(early_s)
    classified = _stat(early_err, "classified")
    print(f"kept packets: {kept} of {n_frames} frames ({kept / n_frames:.0%}); with "
          f"--flow_packets {_FLAGS.flow_packets}: {classified} classified "
          f"({classified / max(kept, 1):.1%} of kept) in {_stat(early_err, 'flows')} flows")
    print(f"preprocessing alone (read + process_block): {pre_fps:,.0f} frames/s "
          f"({mbit(pre_fps):,.0f} Mbit/s)")
    print(f"model alone (serve, batch {_FLAGS.batch_size}): {model_pps:,.0f} packets/s "
          f"= {model_pps * n_frames / max(kept, 1):,.0f} frames/s at this capture's kept share")
    print(f"mtc-classify start-up (imports, SavedModel load, first compile): {startup:.1f} s")
    print(f"mtc-classify every packet: {every:,.0f} frames/s ({mbit(every):,.1f} Mbit/s; "
          f"{every_s:.1f} s wall with start-up)")
    print(f"mtc-classify --flow_packets {_FLAGS.flow_packets}: {early:,.0f} frames/s "
          f"({mbit(early):,.1f} Mbit/s; {early_s:.1f} s wall with start-up)")
    print(f"early_verdict_speedup={early / every:.2f}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
