"""USTC-TFC2016 as 1500-byte packet vectors: reading, sampling, splitting, the build report.

The dataset (W. Wang et al., ICOIN 2017) is one capture per class, laid out as
``Benign/<Name>.pcap`` and ``Malware/<Name>.pcap``; the public copy ships ten classes as
``.7z`` archives (``Benign/SMB.7z``, ``Malware/Cridex.7z``, ...). Everything here is plain
functions over small dataclasses; ``tfds_builders/ustc_tfc2016`` is TFDS glue around ``build``.

Without TFDS (e.g. a benchmark), load the splits straight from the manual folder::

    from mtc_keras import ustc
    splits = ustc.load_packets("../shared/data/ustc-tfc2016", config="flow_split",
                               max_per_class=5000, seed=ustc.SEED)
    packets, labels, flow_ids = splits["train"]
    # packets: uint8 [N, 1500]; labels: {"app": int64 [N], "malware": int64 [N]} (class
    # indices into mtc_keras.labels.TASKS["ustc_tfc2016"]); flow_ids: object [N] of str

``load_packets`` returns exactly the examples the TFDS builder writes for the same arguments,
in the same order (sorted by capture name, then packet index). ``build`` returns them with
their example keys and the build report.

How a build works (memory: at most ``max_per_class`` vectors per class, plus one batch):

1. ``find_captures``: every ``.pcap`` / ``.pcapng`` under the manual folder at any depth, and
   every capture inside a ``.7z`` archive (read with py7zr, one member at a time, extracted to
   a temporary folder: costs disk, not memory). The class comes from the file stem
   (``mtc_keras.labels.ustc_labels``; an archive member takes its archive's class); the
   ``malware`` label from the class. Unknown names, duplicates (the same capture name twice,
   e.g. ``SMB.7z`` beside the ``SMB.pcap`` extracted from it: the plain file is read),
   unreadable archives and files that are not captures are reported and skipped; a class with
   no capture is reported, not an error.
2. ``scan_capture``: the capture through ``mtc_keras.packets`` (the ISCX preprocessing), each
   kept packet given a seeded priority (``mtc_keras.splitting``); the ``max_per_class`` lowest
   priorities of each class are kept: a uniform sample that does not depend on reading order.
3. Conversations (``choose_flow_key``): the public captures are anonymised, and in some classes
   the addresses change from packet to packet (Facetime: every packet its own address pair, all
   UDP 16403<->16403), so an address-keyed flow is one packet and a flow split would be a
   per-packet split. Per class, when at least ``ANONYMISED_SINGLE_SHARE`` of the packets are
   single-packet address flows *and* there are ``ANONYMISED_FLOWS_PER_PORT_KEY`` times more
   address flows than port pairs (addresses vary while ports repeat), the conversation key drops
   the addresses: ``ports`` (protocol and sorted ports), or, when that leaves fewer than
   ``MIN_PORT_GROUPS`` groups (Facetime: one), ``ports+window``: the port pair and which of
   ``WINDOWS`` equal stretches of the capture, in capture order, the address flow starts in.
   Otherwise the key is ``address`` (mtc_keras.packets' flow id). Every key is a union of
   address flows and is prefixed by the capture name; it is the ``flow_id`` of the examples.
4. Split 64/16/20, each class on its own: ``paper`` per packet in a seeded order (the protocol
   of most USTC-TFC2016 papers); ``flow_split`` whole conversations per split, then a vector
   that occurs in two splits is kept in the first of train, validation, test only.
5. The report (``build_report`` keys below; ``format_report`` as text): files found, missing
   classes, unknown / duplicate / unreadable files, packet counts and drop reasons per class,
   kept and sampled packets per class, packets per class per split, duplicates dropped, the
   conversation key and anonymisation measures of every class, and the leakage figures
   (``mtc_keras.leakage``) by ``flow_id`` and by address flow.

Example keys are ``"<capture name>:<index of the packet among the capture's kept packets>"``,
where the capture name is the file name or ``<archive file name>/<member path>``: no local path.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import tempfile

import numpy as np
from absl import logging

from mtc_keras import capture, labels, leakage, packets, registry, splitting

SEED = 2016
CONFIGS = {"paper": False, "flow_split": True}  # config name -> whole conversations per split
DEFAULT_MAX_PER_CLASS = 5000  # 20 classes x 5000 x 1500 bytes: 150 MB at most, a laptop build
SPLITS = registry.DATASETS["ustc_tfc2016"].splits
FLOW_KEYS = ("address", "ports", "ports+window")
ANONYMISED_SINGLE_SHARE = 0.9
ANONYMISED_FLOWS_PER_PORT_KEY = 4
MIN_PACKETS_TO_JUDGE = 20
MIN_PORT_GROUPS = 10
WINDOWS = 20
TASK_NAMES = labels.TASKS["ustc_tfc2016"]
_BATCH = 16384  # frames per batch while reading


# ------------------------------------------------------------------------- finding files
@dataclasses.dataclass(frozen=True)
class Source:
    """One capture: a file, or a member of a .7z archive."""

    name: str  # file name, or '<archive file name>/<member>': keys, `capture`, flow ids
    shown: str  # where it is, relative to the manual folder (the report)
    path: str  # the file, or the archive holding it
    member: str | None = None
    app: int = labels.MISSING

    @property
    def malware(self) -> int:
        return labels.ustc_malware(self.app)


def _7z():
    import py7zr  # a dependency of the package; imported here so that other datasets need not load it

    return py7zr


def _archive_errors() -> tuple:
    py7zr = _7z()
    errors = py7zr.exceptions
    return (errors.ArchiveError, errors.Bad7zFile, errors.CrcError, errors.DecompressionError,
            errors.PasswordRequired, errors.UnsupportedCompressionMethodError, EOFError, OSError,
            ValueError)


def find_captures(manual_dir) -> tuple[list[Source], dict]:
    """Known captures under ``manual_dir`` (any depth, .7z members included), one per capture
    name, and what was skipped: {"unknown_captures", "duplicate_captures",
    "unreadable_archives", "misplaced_captures" (kept: in the other group's folder),
    "other_files"}. FileNotFoundError when the folder does not exist."""
    found, skipped = [], collections.defaultdict(list)
    for path, shown in capture.manual_files(manual_dir):
        lower = path.name.lower()
        if lower.endswith(labels.USTC_ARCHIVE_SUFFIXES):
            archive_labels = labels.ustc_labels(path.name)
            try:
                with _7z().SevenZipFile(str(path), "r") as archive:
                    members = sorted(info.filename for info in archive.list() if not info.is_directory)
            except _archive_errors() as error:
                skipped["unreadable_archives"].append(f"{shown}: {error}")
                continue
            for member in members:
                base = member.rsplit("/", 1)[-1]
                if not base.lower().endswith(labels.USTC_CAPTURE_SUFFIXES):
                    skipped["other_files"].append(f"{shown}/{member}")
                    continue
                lab = archive_labels or labels.ustc_labels(base)
                found.append((Source(f"{path.name}/{member}", f"{shown}/{member}", str(path), member,
                                     lab.app if lab else labels.MISSING), base))
        elif lower.endswith(labels.USTC_CAPTURE_SUFFIXES):
            lab = labels.ustc_labels(path.name)
            found.append((Source(path.name, shown, str(path), None, lab.app if lab else labels.MISSING),
                          path.name))
        else:
            skipped["other_files"].append(shown)
    sources, seen = [], {}
    # Plain files before archive members, so a capture extracted beside its archive is read once.
    for source, base in sorted(found, key=lambda item: (item[1].lower(), item[0].member is not None,
                                                        item[0].shown)):
        if source.app == labels.MISSING:
            skipped["unknown_captures"].append(source.shown)
            continue
        if base.lower() in seen:
            skipped["duplicate_captures"].append(f"{source.shown} (same capture as {seen[base.lower()]})")
            continue
        seen[base.lower()] = source.shown
        folders = {part.lower() for part in source.shown.split("/")[:-1]}
        other = labels.USTC_MALWARE[1 - source.malware].lower()
        if other in folders and labels.USTC_MALWARE[source.malware].lower() not in folders:
            skipped["misplaced_captures"].append(
                f"{source.shown} (a {labels.USTC_MALWARE[source.malware]} class, labelled by its name)")
        sources.append(source)
    return sorted(sources, key=lambda s: s.name.lower()), dict(skipped)


@contextlib.contextmanager
def local_file(source: Source):
    """A path to the capture; an archive member is extracted into a temporary folder while it
    is read (one member at a time), so a member of any size costs disk, not memory."""
    if source.member is None:
        yield source.path
        return
    with tempfile.TemporaryDirectory(prefix="ustc_7z_") as tmp:
        with _7z().SevenZipFile(source.path, "r") as archive:
            archive.extract(path=tmp, targets=[source.member])
        path = os.path.join(tmp, *source.member.split("/"))
        if not os.path.isfile(path):
            raise EOFError(f"{source.shown}: the archive did not yield this member")
        yield path


# ------------------------------------------------------------------------- reading
@dataclasses.dataclass
class Scan:
    """One capture read: its counts and its ``limit`` lowest-priority kept packets."""

    source: Source
    counts: dict
    kept: int = 0
    error: str | None = None
    index: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    priority: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.uint64))
    vectors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, packets.VECTOR_LEN), np.uint8))
    flows: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, object))


def scan_capture(source: Source, limit: int, seed: int = SEED) -> Scan:
    """Stream one capture through mtc_keras.packets, keeping the ``limit`` lowest-priority kept
    packets (vectors and address flow ids). An unreadable capture comes back with ``error``."""
    scan = Scan(source, counts=collections.Counter())
    path = source.path
    try:
        with local_file(source) as path:
            for batch in packets.iter_capture_batches(path, batch_size=_BATCH):
                scan.counts.update(batch.counts)
                index = np.arange(scan.kept, scan.kept + len(batch), dtype=np.int64)
                scan.kept += len(batch)
                priority = splitting.packet_priorities(seed, source.name, index)
                old, new = splitting.lowest(scan.priority, priority, limit)
                scan.index = np.concatenate([scan.index[old], index[new]])
                scan.priority = np.concatenate([scan.priority[old], priority[new]])
                scan.vectors = np.concatenate([scan.vectors[old], batch.packets[new]])
                scan.flows = np.concatenate([scan.flows[old], batch.flow_ids[new]])
    except (packets.CaptureFormatError,) + _archive_errors() as error:
        # The reader names the file it read (maybe a temporary copy): name the capture instead.
        message = str(error).replace(path, source.shown)
        scan.error = message if message.startswith(source.shown) else f"{source.shown}: {message}"
    scan.counts = dict(scan.counts)
    return scan


# ------------------------------------------------------------------------- conversations
@dataclasses.dataclass(frozen=True)
class FlowKeyChoice:
    """The conversation key of one class and the anonymisation measures it was chosen on."""

    key: str  # one of FLOW_KEYS
    packets: int
    address_flows: int
    single_packet_flow_share: float  # share of packets alone in their address flow
    port_keys: int  # distinct (protocol, sorted ports)

    @property
    def address_flows_per_packet(self) -> float:
        return self.address_flows / self.packets if self.packets else 0.0

    def as_dict(self, conversations: int) -> dict:
        return {"key": self.key, "packets": self.packets, "address_flows": self.address_flows,
                "address_flows_per_packet": round(self.address_flows_per_packet, 4),
                "single_packet_flow_share": round(self.single_packet_flow_share, 4),
                "port_keys": self.port_keys, "conversations": conversations}


def port_keys(vectors: np.ndarray) -> np.ndarray:
    """'<protocol> <lower port> <higher port>' of every vector (both directions alike)."""
    fields = packets.header_fields(vectors)
    low = np.minimum(fields["src_port"], fields["dst_port"]).tolist()
    high = np.maximum(fields["src_port"], fields["dst_port"]).tolist()
    return np.array([f"{p} {a} {b}" for p, a, b in zip(fields["protocol"].tolist(), low, high)], object)


def choose_flow_key(address_flows: np.ndarray, ports: np.ndarray) -> FlowKeyChoice:
    """The conversation key of one class from its packets' address flow ids and port keys
    (see the module docstring, step 3)."""
    n = len(address_flows)
    if n == 0:
        return FlowKeyChoice("address", 0, 0, 0.0, 0)
    _, sizes = np.unique(np.asarray(address_flows, str), return_counts=True)
    n_ports = len(np.unique(np.asarray(ports, str)))
    single = float(np.count_nonzero(sizes == 1) / n)
    anonymised = (n >= MIN_PACKETS_TO_JUDGE and single >= ANONYMISED_SINGLE_SHARE
                  and len(sizes) >= ANONYMISED_FLOWS_PER_PORT_KEY * n_ports)
    key = "address" if not anonymised else "ports" if n_ports >= MIN_PORT_GROUPS else "ports+window"
    return FlowKeyChoice(key, n, len(sizes), single, n_ports)


def conversation_ids(key: str, captures: np.ndarray, index: np.ndarray, address_flows: np.ndarray,
                     ports: np.ndarray, kept_in_capture: np.ndarray) -> np.ndarray:
    """'<capture>|<conversation>' of every packet under ``key``. ``kept_in_capture``: the kept
    packets of each packet's capture (for the windows). A conversation is always a union of
    address flows: a window is the one the address flow's first packet falls in."""
    captures = np.asarray(captures, object)
    if key == "address":
        parts = np.asarray(address_flows, object)
    elif key == "ports":
        parts = np.asarray(ports, object)
    elif key == "ports+window":
        flow = np.array([f"{c}|{f}" for c, f in zip(captures.tolist(), address_flows.tolist())], object)
        _, inverse = np.unique(flow.astype(str), return_inverse=True)
        inverse = inverse.ravel()
        first = np.full(inverse.max() + 1 if len(inverse) else 0, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, inverse, np.asarray(index, np.int64))
        window = first[inverse] * WINDOWS // np.maximum(np.asarray(kept_in_capture, np.int64), 1)
        parts = np.array([f"{p} w{w:02d}" for p, w in zip(ports.tolist(), window.tolist())], object)
    else:
        raise ValueError(f"unknown flow key {key!r}; expected one of {FLOW_KEYS}")
    return np.array([f"{c}|{p}" for c, p in zip(captures.tolist(), parts.tolist())], object)


# ------------------------------------------------------------------------- the build
@dataclasses.dataclass
class Split:
    """The examples of one split, sorted by capture name then packet index."""

    packets: np.ndarray  # uint8 [n, 1500]
    app: np.ndarray  # int64 [n]
    malware: np.ndarray  # int64 [n]
    flow_ids: np.ndarray  # object [n] of str
    captures: np.ndarray  # object [n] of str
    indices: np.ndarray  # int64 [n]: index among the capture's kept packets

    def __len__(self) -> int:
        return len(self.packets)

    def key(self, i: int) -> str:
        return f"{self.captures[i]}:{int(self.indices[i])}"

    def labels(self) -> dict[str, np.ndarray]:
        return {"app": self.app, "malware": self.malware}


@dataclasses.dataclass
class Built:
    config: str
    splits: dict[str, Split]
    report: dict


def _check_arguments(config: str, max_per_class: int) -> None:
    if config not in CONFIGS:
        raise ValueError(f"unknown USTC-TFC2016 config {config!r}; expected one of {sorted(CONFIGS)}")
    if not isinstance(max_per_class, (int, np.integer)) or max_per_class < 1:
        raise ValueError(f"max_per_class must be a positive integer, got {max_per_class!r}")


def _merge(old: dict | None, new: dict, limit: int) -> dict:
    """Candidate columns of one class: old and new together, trimmed to ``limit`` lowest priorities."""
    if old is not None:
        new = {k: np.concatenate([old[k], new[k]]) for k in new}
    if len(new["priority"]) > limit:
        keep = np.sort(np.argpartition(new["priority"], limit - 1)[:limit])
        new = {k: v[keep] for k, v in new.items()}
    return new


def build(manual_dir, config: str = "flow_split", *, max_per_class: int = DEFAULT_MAX_PER_CLASS,
          seed: int = SEED) -> Built:
    """Read the manual folder and return the three splits and the build report.

    FileNotFoundError when the folder is missing or holds no known capture; ValueError for an
    unknown config or a bad ``max_per_class``."""
    _check_arguments(config, max_per_class)
    sources, skipped = find_captures(manual_dir)
    if not sources:
        raise FileNotFoundError(f"no USTC-TFC2016 capture (Benign/<Name>.pcap, Malware/<Name>.pcap "
                                f"or .7z) under {manual_dir}; known names: {', '.join(labels.USTC_APPS)}")
    used, unreadable, incomplete = [], [], []
    counts = {name: collections.Counter() for name in labels.USTC_APPS}
    kept = collections.Counter()  # app -> kept packets
    kept_per_capture = {}
    classes: dict[int, dict] = {}
    for source in sources:
        scan = scan_capture(source, max_per_class, seed)
        if scan.error:
            unreadable.append(scan.error)
            logging.warning("skipped %s", scan.error)
            continue
        used.append(source)
        counts[labels.USTC_APPS[source.app]].update(scan.counts)
        kept[source.app] += scan.kept
        kept_per_capture[source.name] = scan.kept
        if scan.counts.get("truncated") or scan.counts.get("corrupt"):
            incomplete.append(source.shown)
        columns = {"capture": np.full(len(scan.index), len(used) - 1, np.int64), "index": scan.index,
                   "priority": scan.priority, "vectors": scan.vectors, "flow": scan.flows}
        classes[source.app] = _merge(classes.get(source.app), columns, max_per_class)

    capture_names = np.array([s.name for s in used], object)
    capture_kept = np.array([kept_per_capture[s.name] for s in used], np.int64)
    parts, flow_keys = [], {}
    for app in sorted(classes):
        cand = classes[app]
        ports = port_keys(cand["vectors"])
        choice = choose_flow_key(cand["flow"], ports)
        conv = conversation_ids(choice.key, capture_names[cand["capture"]], cand["index"], cand["flow"],
                                ports, capture_kept[cand["capture"]])
        flow_keys[labels.USTC_APPS[app]] = choice.as_dict(len(set(conv.tolist())))
        if CONFIGS[config]:
            split = splitting.flow_split(np.array([splitting.hash64(c) for c in conv], np.uint64), seed)
        else:
            split = splitting.packet_split(cand["priority"], seed)
        parts.append(dict(cand, app=np.full(len(split), app, np.int64), conversation=conv, split=split))
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}

    dropped = {name: 0 for name, _ in SPLITS}
    if CONFIGS[config] and columns:
        drop = splitting.in_an_earlier_split(leakage.vector_digests(columns["vectors"]), columns["split"])
        for i, (name, _) in enumerate(SPLITS):
            dropped[name] = int(np.count_nonzero(drop & (columns["split"] == i)))
        columns = {k: v[~drop] for k, v in columns.items()}

    splits = {}
    for i, (name, _) in enumerate(SPLITS):
        rows = np.flatnonzero(columns["split"] == i) if columns else np.zeros(0, np.int64)
        caps = capture_names[columns["capture"][rows]] if columns else np.zeros(0, object)
        order = rows[np.lexsort((columns["index"][rows], caps.astype(str)))] if columns else rows
        if not columns:
            splits[name] = Split(np.zeros((0, packets.VECTOR_LEN), np.uint8), *(np.zeros(0, np.int64),) * 2,
                                 np.zeros(0, object), np.zeros(0, object), np.zeros(0, np.int64))
            continue
        app = columns["app"][order]
        splits[name] = Split(columns["vectors"][order], app,
                             np.array([labels.ustc_malware(a) for a in app.tolist()], np.int64),
                             columns["conversation"][order], capture_names[columns["capture"][order]],
                             columns["index"][order])

    report = _report(config, max_per_class, seed, sources, used, skipped, unreadable, incomplete,
                     counts, kept, classes, splits, dropped, flow_keys, columns)
    return Built(config, splits, report)


def _named_counts(app: np.ndarray, weights=None) -> dict:
    app = np.asarray(app, np.int64)
    per_app = np.bincount(app, weights, minlength=len(labels.USTC_APPS)).astype(np.int64)
    malware = collections.Counter()
    for i, n in enumerate(per_app.tolist()):
        malware[labels.USTC_MALWARE[labels.ustc_malware(i)]] += n
    return {"app": {name: int(n) for name, n in zip(labels.USTC_APPS, per_app.tolist())},
            "malware": {name: int(malware[name]) for name in labels.USTC_MALWARE}}


def _report(config, max_per_class, seed, sources, used, skipped, unreadable, incomplete, counts,
            kept, classes, splits, dropped, flow_keys, columns) -> dict:
    with_files = {s.app for s in sources}
    totals = collections.Counter()
    for c in counts.values():
        totals.update(c)
    train, test = splits["train"], splits["test"]
    figures = leakage.leakage_figures(train.flow_ids, train.packets, test.flow_ids, test.packets)
    by_address = {}
    if columns:
        address = np.array([f"{c}|{f}" for c, f in zip(np.array([s.name for s in used], object)[columns["capture"]],
                                                      columns["flow"])], object)
        train_flows = set(address[columns["split"] == 0].tolist())
        test_address = address[columns["split"] == 2]
        hits = sum(f in train_flows for f in test_address.tolist())
        by_address = {"test_packets_with_flow_in_train":
                      hits / len(test_address) if len(test_address) else None,
                      "test_packets_with_flow_in_train_count": int(hits)}
    sampled = {name: 0 for name in labels.USTC_APPS}
    for app, cand in classes.items():
        sampled[labels.USTC_APPS[app]] = int(len(cand["index"]))
    split_packets = {}
    for name, split in splits.items():
        split_packets[name] = _named_counts(split.app)
        split_packets[name]["total"] = len(split)
    return {
        "config": {"name": config, "split_by_flow": CONFIGS[config], "max_per_class": int(max_per_class),
                   "seed": int(seed), "split_fractions": dict(SPLITS)},
        "files_found": sorted(s.shown for s in sources),
        "files_used": sorted(s.shown for s in used),
        "classes_missing": [name for i, name in enumerate(labels.USTC_APPS) if i not in with_files],
        "classes_without_packets": [name for i, name in enumerate(labels.USTC_APPS)
                                    if i in with_files and not kept[i]],
        "files_unknown": skipped.get("unknown_captures", []),
        "files_duplicate": skipped.get("duplicate_captures", []),
        "files_unreadable": unreadable,
        "files_incomplete": incomplete,
        "files_misplaced": skipped.get("misplaced_captures", []),
        "archives_unreadable": skipped.get("unreadable_archives", []),
        "other_files": skipped.get("other_files", []),
        "packet_counts": {k: int(v) for k, v in sorted(totals.items())},
        "packet_counts_per_class": {name: {k: int(v) for k, v in sorted(c.items())}
                                    for name, c in counts.items() if c},
        "kept_packets": _named_counts(np.arange(len(labels.USTC_APPS)),
                                      [kept[i] for i in range(len(labels.USTC_APPS))]),
        "sampled_packets": sampled,
        "split_packets": split_packets,
        "cross_split_duplicates_dropped": dropped,
        "flow_keys": flow_keys,
        "leakage": {k: figures[k] for k in leakage.FIGURES + leakage.COUNTS},
        "leakage_by_address_flow": by_address,
    }


def load_packets(manual_dir, *, config: str = "flow_split", max_per_class: int = DEFAULT_MAX_PER_CLASS,
                 seed: int = SEED) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """{split: (packets uint8 [N, 1500], {"app": int64 [N], "malware": int64 [N]}, flow_ids)}
    for "train", "validation" and "test": the examples the TFDS builder writes, without TFDS."""
    built = build(manual_dir, config, max_per_class=max_per_class, seed=seed)
    return {name: (split.packets, split.labels(), split.flow_ids) for name, split in built.splits.items()}


def format_report(report: dict) -> str:
    """The build report as text (what the build logs)."""
    lines = [f"files used: {len(report['files_used'])} of {len(report['files_found'])} found"]
    for key, what in (("files_unknown", "skipped, unknown name"), ("files_duplicate", "skipped, duplicate"),
                      ("files_unreadable", "skipped, unreadable"), ("archives_unreadable", "skipped, bad archive"),
                      ("files_incomplete", "truncated or corrupt, kept what was read"),
                      ("files_misplaced", "in the other group's folder")):
        lines.extend(f"  {what}: {item}" for item in report[key])
    if report["other_files"]:
        lines.append(f"  other files ignored: {len(report['other_files'])}")
    if report["classes_missing"]:
        lines.append("classes with no capture: " + ", ".join(report["classes_missing"]))
    if report["classes_without_packets"]:
        lines.append("classes with captures but no kept packet (see packet_counts_per_class): "
                     + ", ".join(report["classes_without_packets"]))
    lines.append("packets: " + ", ".join(f"{k}={v}" for k, v in report["packet_counts"].items()))
    splits = report["split_packets"]
    lines.append(f"{'app':<16} {'kept':>8} {'sampled':>8} " + " ".join(f"{s:>10}" for s in splits)
                 + f"  {'key':<12} {'flows/pkt':>9} {'ports':>6} {'conv':>6}")
    for name, count in report["kept_packets"]["app"].items():
        key = report["flow_keys"].get(name, {})
        lines.append(f"  {name:<14} {count:>8} {report['sampled_packets'][name]:>8} "
                     + " ".join(f"{splits[s]['app'][name]:>10}" for s in splits)
                     + f"  {key.get('key', '-'):<12} {key.get('address_flows_per_packet', 0):>9.2f} "
                       f"{key.get('port_keys', 0):>6} {key.get('conversations', 0):>6}")
    lines.append("total" + " " * 29 + " ".join(f"{splits[s]['total']:>10}" for s in splits))
    if any(report["cross_split_duplicates_dropped"].values()):
        lines.append("vectors dropped as duplicates of an earlier split: "
                     + ", ".join(f"{k}={v}" for k, v in report["cross_split_duplicates_dropped"].items()))
    for key in leakage.FIGURES:
        value = report["leakage"][key]
        lines.append(f"{key} (by flow_id): " + ("n/a" if value is None else f"{value:.4f}"))
    value = report["leakage_by_address_flow"].get("test_packets_with_flow_in_train")
    lines.append("test_packets_with_flow_in_train (by address flow): "
                 + ("n/a" if value is None else f"{value:.4f}"))
    return "\n".join(lines)
