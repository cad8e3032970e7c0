"""Classify every packet of a capture with an exported packet model (ISCX or USTC-TFC2016).

    python -m mtc_keras.classify --model RUN_DIR/export --pcap FILE [--pcap FILE2 ...] [--output preds.csv]
    mtc-classify --model RUN_DIR/export --pcap FILE [--output preds.csv]

Reads any pcap or pcapng (the format is told by its magic number), turns each frame into the
paper's 1500-byte vector (mtc_keras.packets; dropped frames are counted by reason) and runs the
SavedModel on the kept packets. Needs TensorFlow only: no Keras, no JAX.

With --output, writes one row per kept packet to that file (capture, packet, flow, and per task
the predicted class and its probability; "packet" numbers the capture's kept packets from 0)
and one row per flow to <output stem>_flows.csv (capture, flow, packets, and per task the
majority vote, the share of the flow's packets that voted for it and the mean probability of
that class over them). Without --output the per-flow rows go to stdout. The counts of read,
kept and dropped frames (by reason) and a progress bar (on a terminal) go to stderr.
"""

from __future__ import annotations

import csv
import os
import sys

import numpy as np
from absl import app, flags, logging

from mtc_keras.capture import sniff_format
from mtc_keras.export import read_labels
from mtc_keras.packets import CaptureFormatError, iter_capture_batches

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags, defined when it runs (not on import), so that importing this module
    next to other absl programs (tests, notebooks) cannot clash over names like --output."""
    if "pcap" in FLAGS:
        return
    flags.DEFINE_string("model", None, "An ISCX or USTC-TFC2016 export folder (RUN_DIR/export).")
    flags.DEFINE_multi_string(
        "pcap", None, "A capture to classify (pcap or pcapng); repeat the flag for several.")
    flags.DEFINE_string(
        "output", None, "Per-packet CSV to write; the per-flow CSV goes beside it as "
        "<stem>_flows.csv. Default: per-flow rows to stdout only.")
    flags.DEFINE_integer(
        "batch_size", 256, "Packets per model call. Every call gets this many rows (the last "
        "one padded), so the model compiles once.", lower_bound=1)


READ_BATCH = 8192  # frames per preprocessing step: the progress bar's granularity


class FlowSummary:
    """Per-flow vote counts and probability sums, task by task, grown batch by batch."""

    def __init__(self, tasks: dict[str, list[str]]):
        self.tasks = tasks
        self.index: dict[tuple[str, str], int] = {}  # (capture, flow) -> row
        self.packets = np.zeros(0, np.int64)
        self.votes = {task: np.zeros((0, len(names)), np.int64) for task, names in tasks.items()}
        self.prob_sums = {task: np.zeros((0, len(names))) for task, names in tasks.items()}

    def add(self, capture: str, flow_ids: np.ndarray, probabilities: dict[str, np.ndarray]) -> None:
        rows = np.array([self.index.setdefault((capture, flow), len(self.index))
                         for flow in flow_ids], np.int64)
        grow = len(self.index) - len(self.packets)
        if grow:
            self.packets = np.concatenate([self.packets, np.zeros(grow, np.int64)])
            for task, names in self.tasks.items():
                self.votes[task] = np.concatenate(
                    [self.votes[task], np.zeros((grow, len(names)), np.int64)])
                self.prob_sums[task] = np.concatenate(
                    [self.prob_sums[task], np.zeros((grow, len(names)))])
        np.add.at(self.packets, rows, 1)
        for task, probs in probabilities.items():
            np.add.at(self.votes[task], (rows, probs.argmax(axis=1)), 1)
            np.add.at(self.prob_sums[task], rows, probs)

    def header(self) -> list[str]:
        columns = ["capture", "flow", "packets"]
        for task in self.tasks:
            columns += [task, f"{task}_vote_share", f"{task}_mean_probability"]
        return columns

    def rows(self):
        for (capture, flow), i in self.index.items():
            row = [capture, flow, int(self.packets[i])]
            for task, names in self.tasks.items():
                vote = int(self.votes[task][i].argmax())  # a tie goes to the lower class index
                row += [names[vote], f"{self.votes[task][i, vote] / self.packets[i]:.4f}",
                        f"{self.prob_sums[task][i, vote] / self.packets[i]:.4f}"]
            yield row


def predict(serve, packets: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """{task: [n, classes]} from the exported function, in batches of exactly batch_size rows."""
    import tensorflow as tf

    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(packets), batch_size):
        chunk = packets[start:start + batch_size]
        real = len(chunk)
        if real < batch_size:  # pad: a new batch shape would mean a new XLA compilation
            chunk = np.concatenate([chunk, np.zeros((batch_size - real, chunk.shape[1]), chunk.dtype)])
        for task, value in serve(tf.constant(chunk)).items():
            outputs.setdefault(task, []).append(value.numpy()[:real])
    return {task: np.concatenate(parts) for task, parts in outputs.items()}


def load_model(model_dir: str):
    """(the loaded SavedModel, its labels.json); refuses a model that does not take packets."""
    import tensorflow as tf

    description = read_labels(model_dir)
    if description.get("input", {}).get("name") != "packet":  # ISCX, USTC-TFC2016
        raise ValueError(f"{model_dir} is a {description['dataset']} model; classifying a "
                         "capture needs a packet model (ISCX VPN-nonVPN or USTC-TFC2016)")
    tf.config.set_visible_devices([], "GPU")
    # The export holds no gradients; TensorFlow's warning that it cannot restore them is noise.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        model = tf.saved_model.load(model_dir)  # keep this reference: serve uses its variables
    finally:
        logging.set_verbosity(verbosity)
    return model, description


def classify(model_dir: str, pcaps: list[str], output: str | None, batch_size: int = 256) -> dict:
    """Classify captures (see the module docstring); returns {capture: summed frame counts}.

    Every file is checked to be a capture before any is read, so a wrong file fails fast.
    """
    from tqdm import tqdm

    for pcap in pcaps:
        sniff_format(pcap)  # raises CaptureFormatError / FileNotFoundError naming the file
    model, description = load_model(model_dir)
    tasks = description["tasks"]
    flows = FlowSummary(tasks)
    all_counts: dict[str, dict[str, int]] = {}
    if output and os.path.dirname(output):
        os.makedirs(os.path.dirname(output), exist_ok=True)
    packet_file = open(output, "w", newline="", encoding="utf-8") if output else None
    try:
        writer = csv.writer(packet_file) if packet_file else None
        if writer:
            writer.writerow(["capture", "packet", "flow"]
                            + [column for task in tasks for column in (task, f"{task}_probability")])
        for pcap in pcaps:
            capture = os.path.basename(pcap)
            counts = all_counts.setdefault(capture, {})
            kept = 0
            with tqdm(unit=" frames", desc=capture, file=sys.stderr, disable=None,
                      mininterval=1.0) as progress:
                for batch in iter_capture_batches(pcap, batch_size=READ_BATCH):
                    for key, value in batch.counts.items():
                        counts[key] = counts.get(key, 0) + value
                    progress.update(batch.counts["read"])
                    if not len(batch):
                        continue
                    probabilities = predict(model.serve, batch.packets, batch_size)
                    flows.add(capture, batch.flow_ids, probabilities)
                    if writer:
                        _write_packets(writer, capture, kept, batch.flow_ids, probabilities, tasks)
                    kept += len(batch)
            _print_counts(capture, counts, sum(1 for c, _ in flows.index if c == capture))
    finally:
        if packet_file:
            packet_file.close()

    if output:
        flows_path = os.path.splitext(output)[0] + "_flows.csv"
        with open(flows_path, "w", newline="", encoding="utf-8") as f:
            _write_flows(csv.writer(f), flows)
        print(f"wrote {output} and {flows_path}", file=sys.stderr)
    else:
        _write_flows(csv.writer(sys.stdout), flows)
    return all_counts


def _write_packets(writer, capture, first, flow_ids, probabilities, tasks) -> None:
    best = {task: probabilities[task].argmax(axis=1) for task in tasks}
    for i, flow in enumerate(flow_ids):
        row = [capture, first + i, flow]
        for task, names in tasks.items():
            row += [names[best[task][i]], f"{probabilities[task][i, best[task][i]]:.4f}"]
        writer.writerow(row)


def _write_flows(writer, flows: FlowSummary) -> None:
    writer.writerow(flows.header())
    writer.writerows(flows.rows())


def _print_counts(capture: str, counts: dict, n_flows: int) -> None:
    dropped = ", ".join(f"{key[len('dropped_'):]} {value}" for key, value in counts.items()
                        if key.startswith("dropped_") and value)
    print(f"{capture}: {counts.get('read', 0)} frames read, {counts.get('kept', 0)} packets "
          f"classified in {n_flows} flows; dropped: {dropped or 'none'}", file=sys.stderr)
    if counts.get("truncated") or counts.get("corrupt"):
        print(f"{capture}: the file ends truncated or at a corrupt block; the frames before "
              "it were classified", file=sys.stderr)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model or not FLAGS.pcap:
        raise app.UsageError("--model and --pcap are required")
    try:
        classify(FLAGS.model, FLAGS.pcap, FLAGS.output, FLAGS.batch_size)
    except (CaptureFormatError, FileNotFoundError, IsADirectoryError, ValueError) as error:
        print(f"mtc-classify: error: {error}", file=sys.stderr)
        return 1
    return 0


def run():
    """Console entry point (mtc-classify)."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
