"""mtc-classify on live traffic: captures streamed on stdin through real pipes, early per-flow
verdicts, idle timeouts and evictions, JSON lines, and the "unknown" answer whose thresholds
travel with the export; capture.Capture reading a stream and the frames' timestamps.

One tiny (untrained) ISCX model is exported once for the module: a real SavedModel, run by the
real command (subprocesses for the pipes, in-process ``classify.classify`` elsewhere).
"""

from __future__ import annotations

import csv
import io
import json
import os
import select
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from mtc_keras import capture, classify, export, packets, synthetic
from mtc_keras.capture_writer import LINKTYPE_RAW, pcap_bytes  # pcap_bytes(records of (seconds, frame), nano=)
from mtc_keras.labels import TASKS
from tests.conftest import REPO_ROOT, SHARED_DATA

DEMO_CAPTURE = "aim_chat_3a.pcap"
T0 = 1_700_000_000.0

FLOW_KEYS = {"type", "capture", "flow", "reason", "start", "end", "packets"} | {
    f"{task}{suffix}" for task in TASKS["iscx"]
    for suffix in ("", "_guess", "_mean_probability", "_vote_share")}
PACKET_KEYS = {"type", "capture", "packet", "flow"} | {
    f"{task}{suffix}" for task in TASKS["iscx"] for suffix in ("", "_probability")}


# ------------------------------------------------------------------ captures to classify
def udp_frame(client: int, size: int = 40, server: int = 1) -> bytes:
    """Ethernet + IPv4 + UDP 10.0.0.<client>:40000+client -> 10.9.0.<server>:443 with a payload
    (kept by the preprocessing; one flow per client)."""
    payload = bytes([client]) * size
    udp = struct.pack("!HHHH", 40000 + client, 443, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes([10, 0, 0, client]), bytes([10, 9, 0, server])) + udp
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip


ARP = b"\xff" * 6 + b"\x02\0\0\0\0\x01" + b"\x08\x06" + bytes(28)


def flow_key(client: int, server: int = 1) -> str:
    return f"udp 10.0.0.{client}:{40000 + client} 10.9.0.{server}:443"


@pytest.fixture(scope="module")
def demo_capture(tmp_path_factory):
    root = tmp_path_factory.mktemp("captures")
    (path,) = synthetic.write_demo_captures(root, packets_per_file=40, captures=[DEMO_CAPTURE])
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, demo_capture):
    """A tiny ISCX 1D-CNN exported twice: plain, and with thresholds fitted on its own
    predictions of the demo capture's flows (so some flows fall below them)."""
    import keras

    from mtc_keras import models

    root = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    model = models.build_model("cnn", "iscx", conv_filters=(4, 4), dense_units=(8,), pool_size=4)
    plain = export.export(model, str(root / "plain"), "iscx")
    batch = packets.process_capture(demo_capture)
    probabilities = {task: np.asarray(p) for task, p in
                     models.probability_model(model).predict(batch.packets, verbose=0).items()}
    # Labels = the model's own flow verdicts for app (so every flow is "correct"), so the
    # fitted threshold is the 50 % quantile of the flows' confidences: about half fall below it.
    flows = batch.flow_ids
    sums = {}
    for flow, p in zip(flows, probabilities["app"]):
        sums[flow] = sums.get(flow, 0) + p
    app_label = {f: int(np.argmax(s)) for f, s in sums.items()}
    labels = {"app": np.array([app_label[f] for f in flows])}
    thresholds = export.fit_confidence_thresholds(labels, {"app": probabilities["app"]}, flows,
                                                  share=0.5)
    fitted = export.export(model, str(root / "fitted"), "iscx", thresholds=thresholds)
    return {"plain": plain, "fitted": fitted, "thresholds": thresholds}


def run_classify(args, stdin=None, check=True):
    """mtc-classify as a subprocess (``python -m mtc_keras.classify``); stdin: bytes or a file."""
    result = subprocess.run([sys.executable, "-m", "mtc_keras.classify", *map(str, args)],
                            cwd=REPO_ROOT, stdin=stdin if not isinstance(stdin, bytes) else None,
                            input=stdin if isinstance(stdin, bytes) else None,
                            capture_output=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr.decode()[-4000:]}")
    return result


def jsonl(text) -> list[dict]:
    text = text.decode() if isinstance(text, bytes) else text
    return [json.loads(line) for line in text.splitlines()]


def classify_in_process(model, records_or_path, tmp_path, *flags_, **kwargs) -> tuple[list[dict], dict]:
    """classify.classify on a capture (a path, or records written to one) as jsonl with
    --per_packet; returns (objects, the counts)."""
    path = records_or_path
    if not isinstance(path, (str, os.PathLike)):
        path = tmp_path / "input.pcap"
        path.write_bytes(pcap_bytes(records_or_path))
    output = tmp_path / "out.jsonl"
    results = classify.classify(model, [str(path)], str(output), fmt="jsonl", per_packet=True,
                                **kwargs)
    return jsonl(output.read_text()), results["total"]


# ------------------------------------------------------------------ streaming through a pipe
def test_a_capture_piped_on_stdin_gives_what_the_file_gives(exported, demo_capture, tmp_path):
    args = ["--model", exported["plain"], "--format", "jsonl", "--per_packet"]
    from_file = run_classify(args + ["--pcap", demo_capture])
    cat = subprocess.Popen(["cat", str(demo_capture)], stdout=subprocess.PIPE)
    try:
        piped = run_classify(args + ["--pcap", "-"], stdin=cat.stdout)
    finally:
        cat.stdout.close()
        cat.wait()
    expected, got = jsonl(from_file.stdout), jsonl(piped.stdout)
    assert got and len(got) == len(expected)
    for a, b in zip(expected, got):
        assert b["capture"] == "<stdin>" and a["capture"] == DEMO_CAPTURE
        assert {k: v for k, v in a.items() if k != "capture"} == {k: v for k, v in b.items() if k != "capture"}
    batch = packets.process_capture(demo_capture)
    assert sum(o["type"] == "packet" for o in got) == batch.counts["kept"]
    assert {o["flow"] for o in got if o["type"] == "flow"} == set(batch.flow_ids)
    stderr = piped.stderr.decode()
    assert f"<stdin>: {batch.counts['read']} frames read, {batch.counts['kept']} packets kept" in stderr
    assert f"dropped_not_ip={batch.counts['dropped_not_ip']} " in stderr


def test_a_stream_is_classified_as_it_arrives_not_at_its_end(exported):
    """Half a capture goes down the pipe, which stays open: its first verdict must come out
    before the rest is written."""
    first = [(T0 + i * 0.01, udp_frame(1)) for i in range(2)]
    later = [(T0 + 1 + i * 0.01, udp_frame(2)) for i in range(2)]
    data = pcap_bytes(first + later)
    cut = len(pcap_bytes(first))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtc_keras.classify", f"--model={exported['plain']}", "--pcap=-",
         "--format=jsonl", "--flow_packets=2"],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(data[:cut])
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 240)
        assert ready, "no verdict while the stream stayed open"
        line = json.loads(proc.stdout.readline())
        assert proc.poll() is None  # still running: it did not wait for the end of the stream
        assert line["flow"] == flow_key(1) and line["reason"] == "packets" and line["packets"] == 2
        proc.stdin.write(data[cut:])
        proc.stdin.close()
        rest = jsonl(proc.stdout.read())
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [(o["flow"], o["reason"]) for o in rest] == [(flow_key(2), "packets")]


def test_a_stream_cut_mid_record_keeps_what_came_before_and_prints_the_counts(exported, demo_capture):
    data = demo_capture.read_bytes()
    whole = packets.process_capture(demo_capture)
    cut = len(data) * 2 // 3
    with capture.Capture(io.BytesIO(data[:cut])) as cap:  # what came before the cut
        blocks = list(cap.blocks())
        assert cap.stats.truncated
    frames = sum(len(b) for b in blocks)
    kept = sum(len(packets.process_block(b)) for b in blocks)
    assert 0 < frames < whole.counts["read"] and kept > 0
    result = run_classify(["--model", exported["plain"], "--pcap", "-", "--format", "jsonl",
                           "--per_packet"], stdin=data[:cut])
    objects = jsonl(result.stdout)
    assert sum(o["type"] == "packet" for o in objects) == kept
    assert all(o["reason"] == "end" for o in objects if o["type"] == "flow")
    stderr = result.stderr.decode()
    assert f"<stdin>: {frames} frames read, {kept} packets kept" in stderr
    assert "ends inside the last record" in stderr and " truncated=1 " in stderr


def test_a_stream_that_is_not_a_capture_fails_like_a_bad_file(exported, tmp_path):
    bogus = tmp_path / "notes.pcap"
    bogus.write_bytes(b"not a capture")
    as_file = run_classify(["--model", exported["plain"], "--pcap", bogus], check=False)
    as_stream = run_classify(["--model", exported["plain"], "--pcap", "-"], stdin=b"not a capture",
                             check=False)
    assert as_file.returncode == as_stream.returncode == 1
    assert as_stream.stderr.decode().strip().splitlines()[-1] == (
        "mtc-classify: error: <stdin>: not a pcap or pcapng capture (magic 6e6f7420)")
    assert as_file.stderr.decode().strip().splitlines()[-1] == (
        f"mtc-classify: error: {bogus}: not a pcap or pcapng capture (magic 6e6f7420)")
    assert as_stream.stdout == b""  # refused before anything was written
    empty = run_classify(["--model", exported["plain"], "--pcap", "-"], stdin=b"", check=False)
    assert empty.returncode == 1
    assert empty.stderr.decode().strip().endswith("<stdin>: not a pcap or pcapng capture (magic empty file)")


# ------------------------------------------------------------------ early verdicts
def test_a_verdict_comes_after_n_packets_and_later_packets_are_not_classified(exported, tmp_path):
    records = []
    for i in range(10):  # flow 1: 10 packets; flow 2: 3 packets, interleaved; and an ARP frame
        records.append((T0 + i, udp_frame(1)))
        if i < 3:
            records.append((T0 + i + 0.5, udp_frame(2)))
    records.append((T0 + 20, ARP))
    objects, counts = classify_in_process(exported["plain"], records, tmp_path, flow_packets=4,
                                          aggregate="vote")
    one = [i for i, o in enumerate(objects) if o["flow"] == flow_key(1)]
    assert [objects[i]["type"] for i in one] == ["packet"] * 4 + ["flow"]
    verdict = objects[one[-1]]
    assert verdict["reason"] == "packets" and verdict["packets"] == 4
    assert verdict["start"] == pytest.approx(T0) and verdict["end"] == pytest.approx(T0 + 3)
    # Its verdict is the vote of exactly those four packets.
    apps = [objects[i]["app"] for i in one[:4]]
    assert apps.count(verdict["app_guess"]) == max(apps.count(a) for a in apps)
    assert verdict["app_vote_share"] == pytest.approx(apps.count(verdict["app_guess"]) / 4)
    two = [o for o in objects if o["flow"] == flow_key(2)]
    assert [o["type"] for o in two] == ["packet"] * 3 + ["flow"] and two[-1]["reason"] == "end"
    assert counts["kept"] == 13 and counts["classified"] == 7 and counts["not_classified"] == 6
    assert counts["read"] == 14 and counts["dropped_not_ip"] == 1
    assert counts["flows"] == 2 and counts["verdicts"] == 2


def test_idle_flows_time_out_with_what_they_had(exported, tmp_path):
    records = [(T0, udp_frame(1)), (T0 + 1, udp_frame(1)), (T0 + 8.5, udp_frame(1))]  # idle < 8 s
    records += [(T0 + 2 + i, udp_frame(2)) for i in range(13)]  # flow 2: T0 + 2 .. T0 + 14
    records += [(T0 + 30, udp_frame(1))]  # flow 1 again, idle > 8 s: it timed out, a new flow
    records.sort(key=lambda record: record[0])
    objects, counts = classify_in_process(exported["plain"], records, tmp_path, flow_timeout=8.0)
    verdicts = [o for o in objects if o["type"] == "flow"]
    assert [(o["flow"], o["reason"], o["packets"]) for o in verdicts] == [
        (flow_key(1), "timeout", 3), (flow_key(2), "timeout", 13), (flow_key(1), "end", 1)]
    assert verdicts[0]["start"] == pytest.approx(T0) and verdicts[0]["end"] == pytest.approx(T0 + 8.5)
    assert verdicts[2]["start"] == pytest.approx(T0 + 30)
    assert counts["timed_out"] == 2 and counts["flows"] == 3 and counts["verdicts"] == 3


def test_the_least_recently_seen_flow_is_evicted_and_counted(exported, tmp_path):
    records = [(T0 + i, udp_frame(c)) for i, c in enumerate([1, 2, 1, 3, 1, 4, 1, 2])]
    objects, counts = classify_in_process(exported["plain"], records, tmp_path, max_flows=2)
    verdicts = [(o["flow"], o["reason"]) for o in objects if o["type"] == "flow"]
    # 3 evicts 2 (1 was seen later), 4 evicts 3, 2 again evicts 4; at the end: 1 and 2.
    assert verdicts == [(flow_key(2), "evicted"), (flow_key(3), "evicted"),
                        (flow_key(4), "evicted"), (flow_key(1), "end"), (flow_key(2), "end")]
    assert counts["evicted"] == 3 and counts["flows"] == 5
    assert sum(o["packets"] for o in objects if o["type"] == "flow") == len(records)


# ------------------------------------------------------------------ output
def test_jsonl_is_one_object_per_line_with_the_documented_keys(exported, demo_capture):
    result = run_classify(["--model", exported["fitted"], "--pcap", demo_capture, "--format",
                           "jsonl", "--per_packet", "--flow_packets", "3"])
    lines = result.stdout.decode().splitlines()
    objects = [json.loads(line) for line in lines]  # each line parses on its own
    assert objects and all(isinstance(o, dict) for o in objects)
    flows = [o for o in objects if o["type"] == "flow"]
    rows = [o for o in objects if o["type"] == "packet"]
    assert flows and rows and len(flows) + len(rows) == len(objects)
    for o in flows:
        assert set(o) == FLOW_KEYS
        assert o["reason"] in classify.REASONS and 1 <= o["packets"] <= 3
        assert isinstance(o["start"], float) and o["start"] <= o["end"]
        for task, names in TASKS["iscx"].items():
            assert o[f"{task}_guess"] in names and o[task] in (o[f"{task}_guess"], "unknown")
            assert 0 <= o[f"{task}_vote_share"] <= 1 and 0 <= o[f"{task}_mean_probability"] <= 1
    for o in rows:
        assert set(o) == PACKET_KEYS and isinstance(o["packet"], int)
        for task, names in TASKS["iscx"].items():
            assert o[task] in names and 0 <= o[f"{task}_probability"] <= 1


def test_csv_with_output_writes_packet_rows_and_flow_rows_beside_them(exported, demo_capture, tmp_path):
    output = tmp_path / "preds.csv"
    run_classify(["--model", exported["plain"], "--pcap", demo_capture, "--output", output])
    with open(output, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "preds_flows.csv", newline="") as f:
        flows = list(csv.DictReader(f))
    batch = packets.process_capture(demo_capture)
    assert [r["flow"] for r in rows] == list(batch.flow_ids)
    assert sorted(r["flow"] for r in flows) == sorted(set(batch.flow_ids))
    assert set(flows[0]) == FLOW_KEYS - {"type"}
    assert sum(int(r["packets"]) for r in flows) == len(rows)


def test_a_raw_ip_vpn_demo_capture_is_classified_packet_by_packet(exported, tmp_path):
    """VPN captures are raw IP (link type 101): every kept packet gets a verdict, in its flow."""
    (path,) = synthetic.write_demo_captures(tmp_path / "vpn", packets_per_file=40, captures=["vpn_aim_chat1a.pcap"])
    with capture.Capture(path) as cap:
        assert {lt for lt, _ in cap} == {LINKTYPE_RAW}
    objects, counts = classify_in_process(exported["plain"], path, tmp_path)
    batch = packets.process_capture(path)
    assert len(batch) > 10
    assert [o["flow"] for o in objects if o["type"] == "packet"] == list(batch.flow_ids)
    assert {o["flow"] for o in objects if o["type"] == "flow"} == set(batch.flow_ids)


def test_a_folder_is_every_capture_in_it_in_name_order(exported, demo_capture, tmp_path):
    folder = tmp_path / "ring"
    folder.mkdir()
    data = demo_capture.read_bytes()
    for name in ("b.pcap", "a.pcap"):
        (folder / name).write_bytes(data)
    (folder / "README.txt").write_text("not a capture")
    result = run_classify(["--model", exported["plain"], "--pcap", folder, "--format", "jsonl"])
    captures = [o["capture"] for o in jsonl(result.stdout)]
    n = len(set(packets.process_capture(demo_capture).flow_ids))
    assert captures == ["a.pcap"] * n + ["b.pcap"] * n
    assert "skipped " in result.stderr.decode() and "README.txt" in result.stderr.decode()


# ------------------------------------------------------------------ unknown
def test_unknown_is_reported_below_the_threshold_that_travels_with_the_export(exported, demo_capture, tmp_path):
    stored = export.read_labels(exported["fitted"])["thresholds"]
    assert stored == json.loads(json.dumps(exported["thresholds"]))
    threshold = stored["tasks"]["app"]["threshold"]
    assert 0 < threshold < 1 and set(stored["tasks"]) == {"app"}
    objects, counts = classify_in_process(exported["fitted"], demo_capture, tmp_path)
    flows = [o for o in objects if o["type"] == "flow"]
    below = [o for o in flows if o["app_mean_probability"] < threshold]
    assert below and len(below) < len(flows)  # the fitted median splits them
    for o in flows:
        assert o["app"] == ("unknown" if o["app_mean_probability"] < threshold else o["app_guess"])
        assert o["traffic"] == o["traffic_guess"]  # no threshold for traffic: never unknown
    assert counts["unknown_app"] == len(below) and counts["unknown_traffic"] == 0
    # --min_confidence overrides the export's threshold, per task or for all.
    objects, _ = classify_in_process(exported["fitted"], demo_capture, tmp_path, min_confidence="0")
    assert all(o["app"] != "unknown" for o in objects if o["type"] == "flow")
    objects, counts = classify_in_process(exported["plain"], demo_capture, tmp_path,
                                          min_confidence="traffic=1.0")
    flows = [o for o in objects if o["type"] == "flow"]
    assert all(o["traffic"] == "unknown" and o["app"] != "unknown" for o in flows)
    with pytest.raises(ValueError, match="no task 'color'"):
        classify_in_process(exported["plain"], demo_capture, tmp_path, min_confidence="color=0.5")


def test_the_export_sets_the_verdict_rule_its_thresholds_were_fitted_with(exported, demo_capture,
                                                                       tmp_path, capsys):
    """Thresholds fitted on the first N packets of each flow (every run's export fits them on
    the first 5) are applied to the first N packets by default; asking for another rule warns."""
    import shutil

    early = tmp_path / "early"
    shutil.copytree(exported["fitted"], early)
    description = json.loads((early / "labels.json").read_text())
    description["thresholds"]["flow_packets"] = 2  # the demo capture's flows are short
    (early / "labels.json").write_text(json.dumps(description))
    objects, counts = classify_in_process(str(early), demo_capture, tmp_path)
    flows_ = [o for o in objects if o["type"] == "flow"]
    assert max(o["packets"] for o in flows_) == 2 and any(o["reason"] == "packets" for o in flows_)
    assert counts["not_classified"] > 0
    assert "warning" not in capsys.readouterr().err
    objects, _ = classify_in_process(str(early), demo_capture, tmp_path, flow_packets=0)
    assert max(o["packets"] for o in objects if o["type"] == "flow") > 2
    err = capsys.readouterr().err
    assert "warning: the export's unknown thresholds were fitted on verdicts from the first 2" in err
    assert "--flow_packets 0 (all packets)" in err
    # without thresholds there is no rule to follow: whole flows, no warning
    objects, _ = classify_in_process(exported["plain"], demo_capture, tmp_path)
    assert all(o["reason"] == "end" for o in objects if o["type"] == "flow")
    assert "warning" not in capsys.readouterr().err


def test_fit_confidence_thresholds_packets_and_flows():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    fit = export.fit_confidence_thresholds({"app": y}, {"app": p}, share=0.0)
    assert fit["level"] == "packet"
    assert fit["tasks"]["app"] == {"threshold": 0.6, "correct": 4, "examples": 5}
    fit = export.fit_confidence_thresholds({"app": np.array([0, 0, -1, 1, 1])}, {"app": p},
                                           share=0.5)
    assert fit["tasks"]["app"] == {"threshold": pytest.approx(0.8), "correct": 3, "examples": 4}
    # Flows: a (rows 0, 1) mean 0.75 for class 0, correct; b (rows 2-4) votes class 1 with
    # mean 0.6, correct; with flow_packets=1, b is row 2 alone (0.7).
    flows = np.array(["a", "a", "b", "b", "b"], object)
    fit = export.fit_confidence_thresholds({"app": y}, {"app": p}, flows, share=0.0)
    assert fit["level"] == "flow" and fit["tasks"]["app"]["examples"] == 2
    assert fit["tasks"]["app"]["threshold"] == pytest.approx(0.6)
    fit = export.fit_confidence_thresholds({"app": y}, {"app": p}, flows, share=0.0, flow_packets=1)
    assert fit["tasks"]["app"]["threshold"] == pytest.approx(0.7)
    vote = export.fit_confidence_thresholds({"app": y}, {"app": p}, flows, share=0.0,
                                            aggregate="vote")
    assert vote["tasks"]["app"]["threshold"] == pytest.approx(0.6)
    # Mean and vote differ: c votes 0 twice and 1 once, but its mean favours 1 (0.55 / 0.45).
    pc = np.array([[0.55, 0.45], [0.55, 0.45], [0.25, 0.75]])
    c = np.array(["c"] * 3, object)
    by_mean = export.fit_confidence_thresholds({"app": np.ones(3, int)}, {"app": pc}, c, share=0.0)
    by_vote = export.fit_confidence_thresholds({"app": np.ones(3, int)}, {"app": pc}, c, share=0.0,
                                               aggregate="vote")
    assert by_mean["tasks"]["app"]["correct"] == 1 and by_vote["tasks"]["app"]["correct"] == 0
    assert by_mean["tasks"]["app"]["threshold"] == pytest.approx(0.55)
    nothing_right = export.fit_confidence_thresholds({"app": 1 - y[:2]}, {"app": p[:2]})
    assert nothing_right["tasks"]["app"]["threshold"] == 0.0
    with pytest.raises(ValueError, match="share"):
        export.fit_confidence_thresholds({"app": y}, {"app": p}, share=1.0)
    with pytest.raises(ValueError, match="tasks"):
        export.check_thresholds({"tasks": {"colour": {"threshold": 0.5}}}, ["app"])


# ------------------------------------------------------------------ capture streams and times
class _Pipe(io.RawIOBase):
    """A stream that cannot seek and hands out at most ``step`` bytes a read, like a pipe."""

    def __init__(self, data: bytes, step: int):
        self.data, self.pos, self.step = data, 0, step

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.step, len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("nano", [False, True])
def test_a_stream_reads_like_the_file_with_timestamps(tmp_path, nano):
    records = [(T0 + i * 0.25 + 1e-6, udp_frame(1 + i % 3, size=10 * i)) for i in range(50)]
    data = pcap_bytes(records, nano=nano)
    path = tmp_path / "x.pcap"
    path.write_bytes(data)
    with capture.Capture(path) as cap:
        from_file = list(cap.blocks())
    with capture.Capture(_Pipe(data, 7), chunk_size=64) as cap:
        streamed = list(cap.blocks())
        assert not cap.stats.incomplete and cap.stats.format == "pcap"
    assert len(streamed) > 1  # frames came out as they arrived, not in one block
    assert [f for b in streamed for f in b.frames()] == [f for b in from_file for f in b.frames()]
    times = np.concatenate([b.timestamps for b in streamed])
    np.testing.assert_allclose(times, [t for t, _ in records], atol=1e-6)


def test_pcapng_timestamps_follow_the_interface_resolution():
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    block = lambda btype, body: (struct.pack("<II", btype, len(body) + (-len(body) % 4) + 12)
                                 + body + b"\0" * (-len(body) % 4)
                                 + struct.pack("<I", len(body) + (-len(body) % 4) + 12))
    tsresol_ns = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb_us = block(1, struct.pack("<HHI", 1, 0, 0))
    idb_ns = block(1, struct.pack("<HHI", 1, 0, 0) + tsresol_ns)
    fr = udp_frame(1)
    us, ns = int(T0 * 1e6) + 5, int(T0 * 1e9) + 7

    def epb(iface, stamp):
        return block(6, struct.pack("<IIIII", iface, stamp >> 32, stamp & 0xFFFFFFFF, len(fr), len(fr)) + fr)

    spb = block(3, struct.pack("<I", len(fr)) + fr)
    data = block(0x0A0D0D0A, shb) + idb_us + idb_ns + epb(0, us) + epb(1, ns) + spb
    with capture.Capture(io.BytesIO(data)) as cap:
        (blk,) = list(cap.blocks())
    assert blk.timestamps[0] == pytest.approx(us / 1e6, abs=1e-6)
    assert blk.timestamps[1] == pytest.approx(ns / 1e9, abs=1e-6)
    assert np.isnan(blk.timestamps[2])  # a simple packet block has no time


def test_shared_capture_timestamps_match_scapy():
    from scapy.utils import rdpcap

    folder = SHARED_DATA / "pcaps"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (real test data is optional)")
    for path in sorted(folder.iterdir())[:12]:
        with capture.Capture(path) as cap:
            times = np.concatenate([b.timestamps for b in cap.blocks()] or [np.zeros(0)])
        expected = np.array([float(p.time) for p in rdpcap(str(path))])
        np.testing.assert_allclose(times, expected, atol=2e-6, err_msg=str(path))
