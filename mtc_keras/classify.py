"""Classify captures or live traffic with an exported packet model (ISCX or USTC-TFC2016).

    mtc-classify --model RUN_DIR/export --pcap FILE [--pcap FILE2 | --pcap DIR ...] [--output preds.csv]
    tcpdump -i eth0 -w - | mtc-classify --model RUN_DIR/export --pcap - --flow_packets 5 \\
        --flow_timeout 60 --format jsonl
    python -m mtc_keras.classify ...     (the same)

Input (``--pcap``, repeatable): a pcap or pcapng file (the format is told by its magic number),
a folder (every capture directly in it, in name order; other files are skipped and said so),
or ``-``: a capture streamed on standard input, read as it arrives (nothing seeks, nothing waits
for the end), so verdicts come out while traffic flows. Each frame becomes the paper's
1500-byte vector (mtc_keras.packets); dropped frames are counted by reason. A stream or file
that ends inside a record or at a corrupt block keeps everything before it.

Flows (the protocol and both endpoints, either direction) are tracked per capture by
``mtc_keras.flows.FlowTable``, which holds the one verdict rule of the package (the export's
thresholds and every per-flow figure use it too). Each classified packet gets the model's
probabilities; a flow's verdict aggregates them, per task (``--aggregate``): ``mean``, the class
of highest mean probability, or ``vote``, the class most of its packets predict (a tie goes to
the lower class index). A verdict is written

* ``packets``: as soon as ``--flow_packets`` N of the flow's packets are kept; the model does not
  run on its later packets (they are counted as ``not_classified``);
* ``timeout``: when the flow has been idle for ``--flow_timeout`` seconds of capture time (the
  capture's own clock, per packet); a later packet starts a new flow;
* ``evicted``: when more than ``--max_flows`` flows are tracked, the least recently seen one
  is dropped (counted in ``evicted``; one that had no verdict yet gets it now);
* ``end``: at the end of its capture (or of the stream, or on Ctrl-C).

By default N and the aggregate are those the export's "unknown" thresholds were fitted with
(labels.json: the first 5 packets by the mean, for every export of this package), so the
thresholds mean what they were fitted to mean; a flag that asks for another rule is obeyed with
a warning. ``--flow_packets 0`` classifies every kept packet and gives a flow its verdict when
it ends (one row per flow at the end of each file).

"unknown": a flow whose confidence in a task (the mean probability, over its classified
packets, of the class chosen) is below that task's threshold is reported as ``unknown`` for the
task, with the class chosen beside it as ``<task>_guess``. The thresholds come from the
export's labels.json (``thresholds``, fitted on the validation split by
``mtc_keras.export.fit_confidence_thresholds``); ``--min_confidence 0.6`` or
``--min_confidence app=0.6,traffic=0.5`` overrides them (0 turns unknown off). An export
without thresholds never says unknown.

Output (``--format``):

* ``csv`` (default): without ``--output``, one row per flow verdict to stdout. With ``--output
  OUT.csv``, one row per classified packet to OUT.csv and the flow rows to OUT_flows.csv.
* ``jsonl``: one JSON object per line, to stdout or ``--output``: one per flow verdict, and one
  per classified packet with ``--per_packet``, written (and flushed) as they happen.

Flow rows / objects (``"type": "flow"`` in jsonl)::

    capture     the file's name, or "<stdin>"
    flow        "tcp 10.0.0.1:443 10.0.0.2:51000" (endpoints sorted)
    reason      packets | timeout | evicted | end (see above)
    start, end  capture time (seconds since the epoch) of the first / last kept packet seen
    packets     how many classified packets the verdict aggregates
    <task>                   the class, or "unknown" below the task's threshold
    <task>_guess             the class chosen, whatever the confidence
    <task>_mean_probability  mean probability of <task>_guess over the packets (the confidence)
    <task>_vote_share        share of the packets whose own prediction is <task>_guess

Packet rows / objects (``"type": "packet"``): ``capture``, ``packet`` (the capture's kept
packets numbered from 0), ``flow``, and per task ``<task>`` (the class) and
``<task>_probability``. Times in jsonl are numbers, probabilities too; CSV writes them as text.

Counts go to stderr: per capture at its end, ``--stats_every`` seconds (wall clock) while
reading, and a total line: ``stats read= kept= classified= not_classified= flows= active=
verdicts= unknown_<task>= evicted= timed_out= dropped_<reason>= snapped= truncated= corrupt=``.
A progress bar shows on a terminal. Needs TensorFlow only: no Keras, no JAX.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time

import numpy as np
from absl import app, flags, logging

from mtc_keras import flows
from mtc_keras.batching import padded_predict
from mtc_keras.capture import Capture, sniff_format
from mtc_keras.export import read_labels
from mtc_keras.packets import DROP_REASONS, CaptureFormatError, process_block

FLAGS = flags.FLAGS

STDIN = "-"
STDIN_NAME = "<stdin>"
AGGREGATES = flows.AGGREGATES
REASONS = flows.REASONS
BLOCK_FRAMES = 4096  # frames per preprocessing step from a file (a stream: what has arrived)


def define_flags() -> None:
    """The command's flags, defined when it runs (not on import), so that importing this module
    next to other absl programs (tests, notebooks) cannot clash over names like --output."""
    if "pcap" in FLAGS:
        return
    flags.DEFINE_string("model", None, "An ISCX or USTC-TFC2016 export folder (RUN_DIR/export).")
    flags.DEFINE_multi_string(
        "pcap", None, "A capture (pcap or pcapng), a folder of captures (name order), or - for "
        "a capture streamed on standard input; repeat the flag for several.")
    flags.DEFINE_string(
        "output", None, "File to write. csv: per-packet rows there and the flow rows beside it "
        "as <stem>_flows.csv; jsonl: every object there. Default: stdout (csv: flow rows only).")
    flags.DEFINE_enum("format", "csv", ["csv", "jsonl"], "Output format.")
    flags.DEFINE_bool("per_packet", False, "jsonl: also one object per classified packet (csv "
                      "writes packet rows whenever --output is given).")
    flags.DEFINE_integer(
        "flow_packets", None, "A flow's verdict as soon as this many of its packets are kept; its "
        "later packets are counted, not classified. 0: classify every packet, verdict at the "
        "flow's end. Default: the N the export's unknown thresholds were fitted with (its "
        "labels.json; 5 for this package's exports), else 0.", lower_bound=0)
    flags.DEFINE_float(
        "flow_timeout", 0.0, "A flow idle this many seconds of capture time gets its verdict "
        "from what it had (0: flows end only with their capture).", lower_bound=0.0)
    flags.DEFINE_integer("max_flows", 100_000, "Most flows tracked at once; the least recently "
                         "seen is evicted first (counted).", lower_bound=1)
    flags.DEFINE_enum("aggregate", None, list(AGGREGATES),
                      "How a flow's packets make its verdict: mean probability or majority vote. "
                      "Default: the rule the export's thresholds were fitted with, else mean.")
    flags.DEFINE_string(
        "min_confidence", None, "Override the export's unknown thresholds: one probability for "
        "every task (0.6) or task=probability pairs (app=0.6,traffic=0.5); 0 turns unknown off.")
    flags.DEFINE_float("stats_every", 0.0, "Counts to stderr every this many seconds of wall "
                       "clock while reading (0: only at the end).", lower_bound=0.0)
    flags.DEFINE_integer(
        "batch_size", 256, "Packets per model call. Every call gets this many rows (the last "
        "one padded), so the model compiles once.", lower_bound=1)


# ----------------------------------------------------------------------------- the model
def predict(serve, packets: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """{task: [n, classes]} from the exported function, in batches of exactly batch_size rows
    (one XLA compilation: ``batching.padded_predict``)."""
    import tensorflow as tf

    return padded_predict(lambda chunk: {task: value.numpy() for task, value in
                                         serve(tf.constant(chunk)).items()}, packets, batch_size)


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


def confidence_thresholds(description: dict, override: str | None = None) -> dict[str, float]:
    """{task: threshold} from labels.json's ``thresholds`` (0.0 for a task without one), with
    ``--min_confidence`` (``0.6`` or ``app=0.6,traffic=0.5``) on top. ValueError if malformed."""
    tasks = description["tasks"]
    stored = (description.get("thresholds") or {}).get("tasks", {})
    out = {task: float(stored.get(task, {}).get("threshold", 0.0)) for task in tasks}
    if override is None or not override.strip():
        return out
    spec = override.strip()
    if "=" not in spec:
        pairs = [(task, spec) for task in tasks]
    else:
        pairs = [tuple(part.split("=", 1)) for part in spec.split(",") if part.strip()]
    for task, value in pairs:
        task = task.strip()
        if task not in tasks:
            raise ValueError(f"--min_confidence: the model has no task {task!r} (tasks: "
                             f"{', '.join(tasks)})")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--min_confidence: {value!r} is not a probability") from None
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"--min_confidence: {number} is not between 0 and 1")
        out[task] = number
    return out


def verdict_rule(description: dict, flow_packets: int | None = None,
                 aggregate: str | None = None, *, thresholds_used: bool = True) -> tuple[int, str]:
    """(flow_packets, aggregate) to classify with: the flags where given, else the rule the
    export's thresholds were fitted with (labels.json), else whole flows by the mean. Warns on
    stderr when a flag asks for another rule than the thresholds were fitted for, since their
    "unknown" share then no longer holds."""
    fitted = description.get("thresholds") or {}
    flow_level = fitted.get("level") == "flow"
    fitted_n = int(fitted.get("flow_packets") or 0) if flow_level else None
    fitted_aggregate = fitted.get("aggregate") if flow_level else None
    n = flow_packets if flow_packets is not None else (fitted_n or 0)
    rule = aggregate or fitted_aggregate or flows.DEFAULT_AGGREGATE
    if thresholds_used and flow_level:
        asked = []
        if n != fitted_n:
            asked.append(f"--flow_packets {n} ({'all packets' if not n else f'first {n}'})")
        if rule != fitted_aggregate:
            asked.append(f"--aggregate {rule}")
        if asked:
            print(f"mtc-classify: warning: the export's unknown thresholds were fitted on verdicts "
                  f"from {'all packets' if not fitted_n else f'the first {fitted_n} packets'} of "
                  f"each flow by the {fitted_aggregate}; {' and '.join(asked)} judges flows "
                  "otherwise, so the share of flows called unknown will differ from the one "
                  "fitted", file=sys.stderr)
    return n, rule


# ----------------------------------------------------------------------------- inputs
def expand_sources(pcaps: list[str]) -> list[str]:
    """The captures to read, in order: files as given, a folder's captures in name order, "-"
    (at most once) for stdin. Every file is checked to be a capture before any is read, so a
    wrong file fails fast (CaptureFormatError / FileNotFoundError naming it); a file in a
    folder that is not a capture is skipped, with a line on stderr."""
    out: list[str] = []
    if pcaps.count(STDIN) > 1:
        raise ValueError("--pcap - (standard input) can be given only once")
    for pcap in pcaps:
        if pcap == STDIN:
            out.append(pcap)
        elif os.path.isdir(pcap):
            names = sorted(name for name in os.listdir(pcap)
                           if os.path.isfile(os.path.join(pcap, name)))
            found = []
            for name in names:
                path = os.path.join(pcap, name)
                try:
                    sniff_format(path)
                except CaptureFormatError as error:
                    print(f"mtc-classify: skipped {error}", file=sys.stderr)
                    continue
                found.append(path)
            if not found:
                raise FileNotFoundError(f"{pcap}: no pcap or pcapng capture in this folder")
            out += found
        else:
            sniff_format(pcap)
            out.append(pcap)
    return out


# ----------------------------------------------------------------------------- flows
def _new_counts(tasks) -> dict[str, int]:
    counts = {"read": 0, "kept": 0, "classified": 0, "not_classified": 0, "flows": 0,
              "active": 0, "verdicts": 0}
    counts.update({f"unknown_{task}": 0 for task in tasks})
    counts.update({"evicted": 0, "timed_out": 0})
    counts.update({f"dropped_{reason}": 0 for reason in DROP_REASONS})
    counts.update({"snapped": 0, "truncated": 0, "corrupt": 0})
    return counts


class FlowClassifier:
    """Streams a capture's blocks of frames through preprocessing and a ``flows.FlowTable``
    (which tracks the flows, runs the model and makes the verdicts), and hands every verdict
    (and classified packet) to ``sink`` as it is made, with the counts."""

    def __init__(self, serve, tasks: dict[str, list[str]], sink, *, thresholds=None,
                 flow_packets: int = 0, flow_timeout: float = 0.0, max_flows: int = 100_000,
                 aggregate: str = flows.DEFAULT_AGGREGATE, batch_size: int = 256,
                 stats_every: float = 0.0):
        flows.check_aggregate(aggregate)
        self.tasks, self.sink = tasks, sink
        self.thresholds = {task: 0.0 for task in tasks} | dict(thresholds or {})
        self.table_options = {"flow_packets": flow_packets, "flow_timeout": flow_timeout,
                              "max_flows": max_flows, "aggregate": aggregate}
        self.predict = lambda packets: predict(serve, packets, batch_size)
        self.stats_every, self._next_stats = stats_every, time.monotonic() + stats_every
        self.total = _new_counts(tasks)
        self.counts = self.total  # the current capture's counts (replaced per capture)
        self.table = None

    # ---------------------------------------------------------------- one capture
    def run(self, name: str, capture: Capture, progress=None) -> dict[str, int]:
        """Classify every frame of an open capture; returns that capture's counts."""
        self.counts = counts = _new_counts(self.tasks)
        self.capture, self.packet_number = name, 0
        self.table = flows.FlowTable(self.predict, **self.table_options)  # flows per capture
        blocks = capture.blocks(max_frames=BLOCK_FRAMES)
        try:
            while True:
                try:
                    block = next(blocks, None)
                except KeyboardInterrupt:  # Ctrl-C on a live stream: end it like its end
                    print(f"mtc-classify: {name}: interrupted; flows so far get their verdicts",
                          file=sys.stderr)
                    block = None
                if block is None:
                    break
                self._block(block)
                if progress is not None:
                    progress.update(len(block))
                self.sink.flush()
                self._maybe_stats()
        finally:
            counts["truncated"] = int(capture.stats.truncated)
            counts["corrupt"] = int(capture.stats.corrupt)
        self._write(self.table.close())
        self.sink.flush()
        for key, value in counts.items():
            if key != "active":
                self.total[key] += value
        return counts

    def _block(self, block) -> None:
        batch = process_block(block)
        for key, value in batch.counts.items():
            if key in self.counts and key not in ("truncated", "corrupt"):
                self.counts[key] += value
        times = (block.timestamps[batch.frames] if block.timestamps is not None
                 else np.full(len(batch), np.nan))
        pushed = self.table.push(batch.flow_ids.tolist(), times, batch.packets)
        if self.sink.wants_packets and len(pushed.rows):
            self._packets(pushed)
        self.packet_number += len(batch)
        self._write(pushed.verdicts)

    def _write(self, verdicts: list[flows.Verdict]) -> None:
        for verdict in verdicts:
            self.sink.flow(self._record(verdict))
        for key in ("classified", "not_classified", "flows", "verdicts", "evicted", "timed_out"):
            self.counts[key] = self.table.counts[key]
        self.counts["active"] = len(self.table)

    def _packets(self, pushed: flows.Pushed) -> None:
        best = {task: p.argmax(axis=1) for task, p in pushed.probabilities.items()}
        for i, (row, key) in enumerate(zip(pushed.rows.tolist(), pushed.flows)):
            record = {"type": "packet", "capture": self.capture, "packet": self.packet_number + row,
                      "flow": key}
            for task, names in self.tasks.items():
                record[task] = names[best[task][i]]
                record[f"{task}_probability"] = round(float(pushed.probabilities[task][i, best[task][i]]), 4)
            self.sink.packet(record)

    def _record(self, verdict: flows.Verdict) -> dict:
        record = {"type": "flow", "capture": self.capture, "flow": verdict.key,
                  "reason": verdict.reason, "start": _time(verdict.start),
                  "end": _time(verdict.end), "packets": verdict.packets}
        for task, names in self.tasks.items():
            guess, confidence = verdict.guess[task], verdict.confidence[task]
            unknown = confidence < self.thresholds[task]
            self.counts[f"unknown_{task}"] += unknown
            record[task] = "unknown" if unknown else names[guess]
            record[f"{task}_guess"] = names[guess]
            record[f"{task}_mean_probability"] = round(confidence, 4)
            record[f"{task}_vote_share"] = round(verdict.vote_share[task], 4)
        return record

    # ---------------------------------------------------------------- counts
    def _maybe_stats(self) -> None:
        if self.stats_every and time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + self.stats_every
            live = {key: self.total[key] + (self.counts[key] if self.counts is not self.total else 0)
                    for key in self.total}
            live["active"] = len(self.table) if self.table is not None else 0
            print(f"mtc-classify: {stats_line(live)}", file=sys.stderr, flush=True)


def _time(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def stats_line(counts: dict) -> str:
    return "stats " + " ".join(f"{key}={value}" for key, value in counts.items())


# ----------------------------------------------------------------------------- output
class Sink:
    """Where records go: CSV (flows, and packets with --output) or JSON lines."""

    def __init__(self, tasks, fmt: str, output: str | None, per_packet: bool):
        self.fmt, self.output = fmt, output
        self._files = []
        flow_columns = ["capture", "flow", "reason", "start", "end", "packets"]
        for task in tasks:
            flow_columns += [task, f"{task}_guess", f"{task}_mean_probability", f"{task}_vote_share"]
        packet_columns = ["capture", "packet", "flow"]
        for task in tasks:
            packet_columns += [task, f"{task}_probability"]
        if output and os.path.dirname(output):
            os.makedirs(os.path.dirname(output), exist_ok=True)
        if fmt == "jsonl":
            self.wants_packets = per_packet
            self._main = self._open(output) if output else sys.stdout
        else:
            self.wants_packets = bool(output)
            if output:
                self.flows_path = os.path.splitext(output)[0] + "_flows.csv"
                self._packet_writer = csv.DictWriter(self._open(output), packet_columns,
                                                     extrasaction="ignore")
                self._packet_writer.writeheader()
                self._main = self._open(self.flows_path)
            else:
                self._main = sys.stdout
            self._flow_writer = csv.DictWriter(self._main, flow_columns, extrasaction="ignore")
            self._flow_writer.writeheader()

    def _open(self, path):
        f = open(path, "w", newline="", encoding="utf-8")
        self._files.append(f)
        return f

    def flow(self, record: dict) -> None:
        if self.fmt == "jsonl":
            self._main.write(json.dumps(record) + "\n")
        else:
            self._flow_writer.writerow(record)

    def packet(self, record: dict) -> None:
        if self.fmt == "jsonl":
            self._main.write(json.dumps(record) + "\n")
        else:
            self._packet_writer.writerow(record)

    def flush(self) -> None:
        for f in self._files or [self._main]:
            f.flush()
        if self._main is sys.stdout:
            sys.stdout.flush()

    def close(self) -> None:
        for f in self._files:
            f.close()


def classify(model_dir: str, pcaps: list[str], output: str | None, batch_size: int = 256, *,
             fmt: str = "csv", per_packet: bool = False, flow_packets: int | None = None,
             flow_timeout: float = 0.0, max_flows: int = 100_000, aggregate: str | None = None,
             min_confidence: str | None = None, stats_every: float = 0.0,
             stdin=None) -> dict:
    """Classify captures (see the module docstring); returns {capture: its counts, "total": ...}.
    ``flow_packets`` / ``aggregate`` None: the rule the export's thresholds were fitted with
    (``verdict_rule``).

    Every file is checked to be a capture, and standard input's first bytes too, before the
    model loads or any output is written, so a wrong input fails fast.
    """
    from tqdm import tqdm

    if fmt == "csv" and per_packet and not output:
        raise ValueError("--per_packet with --format csv needs --output (packet rows go there, "
                         "flow rows beside it); or use --format jsonl")
    sources = expand_sources(pcaps)
    stream = None
    if STDIN in sources:
        stream = Capture(stdin if stdin is not None else sys.stdin.buffer, name=STDIN_NAME)
    model, description = load_model(model_dir)
    tasks = description["tasks"]
    thresholds = confidence_thresholds(description, min_confidence)
    flow_packets, aggregate = verdict_rule(
        description, flow_packets, aggregate,
        thresholds_used=min_confidence is None or not min_confidence.strip())
    sink = Sink(tasks, fmt, output, per_packet)
    classifier = FlowClassifier(
        model.serve, tasks, sink, thresholds=thresholds, flow_packets=flow_packets,
        flow_timeout=flow_timeout, max_flows=max_flows, aggregate=aggregate,
        batch_size=batch_size, stats_every=stats_every)
    results: dict[str, dict] = {}
    try:
        for source in sources:
            name = STDIN_NAME if source == STDIN else os.path.basename(source)
            capture = stream if source == STDIN else Capture(source)
            with capture, tqdm(unit=" frames", desc=name, file=sys.stderr, disable=None,
                               mininterval=1.0) as progress:
                counts = classifier.run(name, capture, progress)
            results[name] = counts
            _print_counts(name, counts, capture.stats.problem)
    finally:
        sink.close()
    print(f"mtc-classify: {stats_line(classifier.total)}", file=sys.stderr)
    if output:
        written = output if fmt == "jsonl" else f"{output} and {sink.flows_path}"
        print(f"wrote {written}", file=sys.stderr)
    results["total"] = classifier.total
    return results


def _print_counts(capture: str, counts: dict, problem: str | None) -> None:
    dropped = ", ".join(f"{key[len('dropped_'):]} {value}" for key, value in counts.items()
                        if key.startswith("dropped_") and value)
    print(f"{capture}: {counts['read']} frames read, {counts['kept']} packets kept "
          f"({counts['classified']} classified, {counts['not_classified']} not classified after "
          f"their flow's verdict) in {counts['flows']} flows, {counts['verdicts']} verdicts, "
          f"{counts['evicted']} evicted, {counts['timed_out']} timed out; "
          f"dropped: {dropped or 'none'}", file=sys.stderr)
    if counts.get("truncated") or counts.get("corrupt"):
        print(f"{problem or capture + ': the capture ends truncated or at a corrupt block'}; "
              "the frames before it were classified", file=sys.stderr)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model or not FLAGS.pcap:
        raise app.UsageError("--model and --pcap are required")
    try:
        classify(FLAGS.model, FLAGS.pcap, FLAGS.output, FLAGS.batch_size, fmt=FLAGS.format,
                 per_packet=FLAGS.per_packet, flow_packets=FLAGS.flow_packets,
                 flow_timeout=FLAGS.flow_timeout, max_flows=FLAGS.max_flows,
                 aggregate=FLAGS.aggregate, min_confidence=FLAGS.min_confidence,
                 stats_every=FLAGS.stats_every)
    except (CaptureFormatError, FileNotFoundError, IsADirectoryError, ValueError) as error:
        print(f"mtc-classify: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        sys.stderr.close()
        return 0
    return 0


def run():
    """Console entry point (mtc-classify)."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
