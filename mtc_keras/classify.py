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

Flows (the protocol and both endpoints, either direction) are tracked per capture. Each
classified packet gets the model's probabilities; a flow's verdict aggregates them, per task
(``--aggregate``): ``mean`` (default), the class of highest mean probability, or ``vote``, the
class most of its packets predict (a tie goes to the lower class index). Mean is the default
because it was the better of the two on early verdicts: over four held-out-app runs on the demo
data, from 5 packets per flow, app accuracy 43 % against 38 % for the vote (macro-F1 41 / 37),
traffic 61 / 60 %; on whole flows the two were within a point. A verdict is written

* ``packets``: as soon as ``--flow_packets`` N of the flow's packets are kept; the model does not
  run on its later packets (they are counted as ``not_classified``);
* ``timeout``: when the flow has been idle for ``--flow_timeout`` seconds of capture time (the
  capture's own clock, to within min(1 s, timeout / 20)); a later packet starts a new flow;
* ``evicted``: when more than ``--max_flows`` flows are tracked, the least recently seen one
  is dropped (counted in ``evicted``; one that had no verdict yet gets it now);
* ``end``: at the end of its capture (or of the stream, or on Ctrl-C).

Without ``--flow_packets`` every kept packet is classified and a flow's verdict comes when it
ends (as today: one row per flow at the end of each file).

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

import collections
import csv
import json
import math
import os
import sys
import time

import numpy as np
from absl import app, flags, logging

from mtc_keras.capture import Capture, sniff_format
from mtc_keras.export import read_labels
from mtc_keras.packets import DROP_REASONS, CaptureFormatError, process_block

FLAGS = flags.FLAGS

STDIN = "-"
STDIN_NAME = "<stdin>"
AGGREGATES = ("mean", "vote")
REASONS = ("packets", "timeout", "evicted", "end")
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
        "flow_packets", 0, "A flow's verdict as soon as this many of its packets are kept; its "
        "later packets are counted, not classified. 0: classify every packet, verdict at the "
        "flow's end.", lower_bound=0)
    flags.DEFINE_float(
        "flow_timeout", 0.0, "A flow idle this many seconds of capture time gets its verdict "
        "from what it had (0: flows end only with their capture).", lower_bound=0.0)
    flags.DEFINE_integer("max_flows", 100_000, "Most flows tracked at once; the least recently "
                         "seen is evicted first (counted).", lower_bound=1)
    flags.DEFINE_enum("aggregate", "mean", list(AGGREGATES),
                      "How a flow's packets make its verdict: mean probability or majority vote.")
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
class _Flow:
    """One tracked flow: when it was seen, how many packets, and its summed probabilities."""

    __slots__ = ("key", "start", "last", "seen", "classified", "sums", "votes", "decided")

    def __init__(self, key: str, now: float):
        self.key, self.start, self.last = key, now, now
        self.seen = self.classified = 0
        self.sums: dict[str, np.ndarray] | None = None
        self.votes: dict[str, np.ndarray] | None = None
        self.decided = False  # its verdict is made (or pending this block): no more classifying


def _new_counts(tasks) -> dict[str, int]:
    counts = {"read": 0, "kept": 0, "classified": 0, "not_classified": 0, "flows": 0,
              "active": 0, "verdicts": 0}
    counts.update({f"unknown_{task}": 0 for task in tasks})
    counts.update({"evicted": 0, "timed_out": 0})
    counts.update({f"dropped_{reason}": 0 for reason in DROP_REASONS})
    counts.update({"snapped": 0, "truncated": 0, "corrupt": 0})
    return counts


class FlowClassifier:
    """Streams blocks of frames through preprocessing, per-flow bookkeeping and the model,
    and hands every verdict (and classified packet) to ``sink`` as it is made."""

    def __init__(self, serve, tasks: dict[str, list[str]], sink, *, thresholds=None,
                 flow_packets: int = 0, flow_timeout: float = 0.0, max_flows: int = 100_000,
                 aggregate: str = "mean", batch_size: int = 256, stats_every: float = 0.0):
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        self.serve, self.tasks, self.sink = serve, tasks, sink
        self.thresholds = {task: 0.0 for task in tasks} | dict(thresholds or {})
        self.flow_packets, self.flow_timeout = flow_packets, flow_timeout
        self.max_flows, self.aggregate, self.batch_size = max_flows, aggregate, batch_size
        # Kept packets get the capture time of their slice of frames: slices are cut where
        # the clock crosses a multiple of this, so timeouts are exact to within it.
        self.resolution = min(1.0, flow_timeout / 20) if flow_timeout else 1.0
        self.stats_every, self._next_stats = stats_every, time.monotonic() + stats_every
        self.total = _new_counts(tasks)
        self.counts = self.total  # the current capture's counts (replaced per capture)

    # ---------------------------------------------------------------- one capture
    def run(self, name: str, capture: Capture, progress=None) -> dict[str, int]:
        """Classify every frame of an open capture; returns that capture's counts."""
        self.counts = counts = _new_counts(self.tasks)
        self.capture, self.active = name, collections.OrderedDict()
        self.clock, self.packet_number = -math.inf, 0
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
        ready = [(flow, "end") for flow in self.active.values() if not flow.decided]
        self.active.clear()
        self._emit(ready, [], [], [])
        self.sink.flush()
        for key, value in counts.items():
            if key != "active":
                self.total[key] += value
        return counts

    def _block(self, block) -> None:
        times = block.timestamps if block.timestamps is not None else np.full(len(block), np.nan)
        clock = np.fmax.accumulate(np.concatenate([[self.clock], times]))[1:]
        bucket = np.floor(clock / self.resolution) if np.isfinite(clock[-1]) else np.zeros(len(clock))
        cuts = np.flatnonzero(np.diff(bucket)) + 1
        ready, picked, owners, numbers = [], [], [], []
        for lo, hi in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(block)]]).tolist()):
            self.clock = now = float(clock[hi - 1])
            if self.flow_timeout and math.isfinite(now):
                self._expire(now, ready)
            batch = process_block(block[lo:hi])
            for key, value in batch.counts.items():
                if key in self.counts and key not in ("truncated", "corrupt"):
                    self.counts[key] += value
            rows = self._assign(batch.flow_ids, now, ready, owners)
            if rows:
                picked.append(batch.packets[rows])
                numbers += [self.packet_number + r for r in rows]
            self.packet_number += len(batch)
        self.counts["active"] = len(self.active)
        self._emit(ready, picked, owners, numbers)

    def _expire(self, now: float, ready: list) -> None:
        """Flows idle for more than flow_timeout (the least recently seen come first)."""
        cutoff = now - self.flow_timeout
        active = self.active
        while active:
            key, flow = next(iter(active.items()))
            if flow.last >= cutoff:
                break
            del active[key]
            self.counts["timed_out"] += 1
            if not flow.decided:
                flow.decided = True
                ready.append((flow, "timeout"))

    def _assign(self, flow_ids, now: float, ready: list, owners: list) -> list[int]:
        """Track each kept packet's flow; returns the rows to classify (owners: their flows)."""
        active, counts, n = self.active, self.counts, self.flow_packets
        rows = []
        for i, key in enumerate(flow_ids.tolist()):
            flow = active.get(key)
            if flow is None:
                flow = active[key] = _Flow(key, now)
                counts["flows"] += 1
                if len(active) > self.max_flows:
                    _, old = active.popitem(last=False)
                    counts["evicted"] += 1
                    if not old.decided:
                        old.decided = True
                        ready.append((old, "evicted"))
            else:
                active.move_to_end(key)
            flow.last = now
            flow.seen += 1
            if flow.decided:
                counts["not_classified"] += 1
                continue
            rows.append(i)
            owners.append(flow)
            if flow.seen == n:
                flow.decided = True
                ready.append((flow, "packets"))
        counts["classified"] += len(rows)
        return rows

    # ---------------------------------------------------------------- model and verdicts
    def _emit(self, ready, picked, owners, numbers) -> None:
        """Run the model on the picked packets, add them to their flows, then write the
        packets and the verdicts of ``ready`` (in the order they were made)."""
        if picked:
            packets = np.concatenate(picked) if len(picked) > 1 else picked[0]
            probabilities = predict(self.serve, packets, self.batch_size)
            self._accumulate(owners, probabilities)
            if self.sink.wants_packets:
                self._packets(owners, numbers, probabilities)
        for flow, reason in ready:
            self.sink.flow(self._verdict(flow, reason))
            flow.sums = flow.votes = None  # a decided flow keeps only its counters
        self.counts["verdicts"] += len(ready)

    def _accumulate(self, owners: list, probabilities: dict[str, np.ndarray]) -> None:
        index: dict[int, int] = {}
        rows = np.array([index.setdefault(id(flow), len(index)) for flow in owners], np.int64)
        flows = list({id(flow): flow for flow in owners}.values())  # in index order
        for task, probs in probabilities.items():
            sums = np.zeros((len(flows), probs.shape[1]))
            votes = np.zeros((len(flows), probs.shape[1]), np.int64)
            np.add.at(sums, rows, probs)
            np.add.at(votes, (rows, probs.argmax(axis=1)), 1)
            for j, flow in enumerate(flows):
                if flow.sums is None:
                    flow.sums, flow.votes = {}, {}
                if task in flow.sums:
                    flow.sums[task] += sums[j]
                    flow.votes[task] += votes[j]
                else:
                    flow.sums[task], flow.votes[task] = sums[j], votes[j]
        for flow, count in zip(flows, np.bincount(rows, minlength=len(flows)).tolist()):
            flow.classified += count

    def _packets(self, owners, numbers, probabilities) -> None:
        best = {task: probabilities[task].argmax(axis=1) for task in self.tasks}
        for i, (flow, number) in enumerate(zip(owners, numbers)):
            record = {"type": "packet", "capture": self.capture, "packet": number, "flow": flow.key}
            for task, names in self.tasks.items():
                record[task] = names[best[task][i]]
                record[f"{task}_probability"] = round(float(probabilities[task][i, best[task][i]]), 4)
            self.sink.packet(record)

    def _verdict(self, flow: _Flow, reason: str) -> dict:
        record = {"type": "flow", "capture": self.capture, "flow": flow.key, "reason": reason,
                  "start": _time(flow.start), "end": _time(flow.last), "packets": flow.classified}
        for task, names in self.tasks.items():
            sums, votes = flow.sums[task], flow.votes[task]
            guess = int(votes.argmax() if self.aggregate == "vote" else sums.argmax())
            mean = float(sums[guess]) / flow.classified
            unknown = mean < self.thresholds[task]
            self.counts[f"unknown_{task}"] += unknown
            record[task] = "unknown" if unknown else names[guess]
            record[f"{task}_guess"] = names[guess]
            record[f"{task}_mean_probability"] = round(mean, 4)
            record[f"{task}_vote_share"] = round(int(votes[guess]) / flow.classified, 4)
        return record

    # ---------------------------------------------------------------- counts
    def _maybe_stats(self) -> None:
        if self.stats_every and time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + self.stats_every
            live = {key: self.total[key] + (self.counts[key] if self.counts is not self.total else 0)
                    for key in self.total}
            live["active"] = len(self.active)
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
             fmt: str = "csv", per_packet: bool = False, flow_packets: int = 0,
             flow_timeout: float = 0.0, max_flows: int = 100_000, aggregate: str = "mean",
             min_confidence: str | None = None, stats_every: float = 0.0,
             stdin=None) -> dict:
    """Classify captures (see the module docstring); returns {capture: its counts, "total": ...}.

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
        stream = Capture.from_stream(stdin if stdin is not None else sys.stdin.buffer, STDIN_NAME)
    model, description = load_model(model_dir)
    tasks = description["tasks"]
    thresholds = confidence_thresholds(description, min_confidence)
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
