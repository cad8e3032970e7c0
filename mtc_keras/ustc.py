"""USTC-TFC2016 as 1500-byte packet vectors: what its build does that ISCX's does not: labels
from class names (archives included), a per-class cap, the conversation key of anonymised
classes, and a one-pass split per class. The steps every packet dataset shares (the manual
folder scan, the sample, the flow id, the de-duplication, the build report) are
mtc_keras.packet_datasets.

The dataset (W. Wang et al., ICOIN 2017) is one capture per class, laid out as
``Benign/<Name>.pcap`` and ``Malware/<Name>.pcap``; the public copy ships ten classes as
``.7z`` archives (``Benign/SMB.7z``, ``Malware/Cridex.7z``, ...). Everything here is plain
functions over small dataclasses; ``tfds_builders/ustc_tfc2016`` is TFDS glue around ``build``
and ``examples``.

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
   every capture inside a ``.7z`` archive. The class comes from the file stem
   (``mtc_keras.labels.ustc_labels``; an archive member takes its archive's class); the
   ``malware`` label from the class. The same capture name twice (e.g. ``SMB.7z`` beside the
   ``SMB.pcap`` extracted from it) is read once, from the plain file; a capture in the other
   group's folder is read and reported. Captures come in name order.
2. ``sample_classes``: each capture through ``packet_datasets.sample_capture``; the
   ``max_per_class`` lowest priorities of each class are kept: a uniform sample that does not
   depend on reading order.
3. ``split_class``: the conversation key (``choose_flow_key``): the public captures are
   anonymised, and in some classes the addresses change from packet to packet (Facetime: every
   packet its own address pair, all UDP 16403<->16403), so an address-keyed flow is one packet
   and a flow split would be a per-packet split. Per class, when at least
   ``ANONYMISED_SINGLE_SHARE`` of the packets are single-packet address flows *and* there are
   ``ANONYMISED_FLOWS_PER_PORT_KEY`` times more address flows than port pairs (addresses vary
   while ports repeat), the conversation key drops the addresses: ``ports`` (protocol and sorted
   ports), or, when that leaves fewer than ``MIN_PORT_GROUPS`` groups (Facetime: one),
   ``ports+window``: the port pair and which of ``WINDOWS`` equal stretches of the capture, in
   capture order, the address flow starts in. Otherwise the key is ``address``
   (mtc_keras.packets' flow id). Every key is a union of address flows and is prefixed by the
   capture name; it is the ``flow_id`` of the examples. Then the split, 64/16/20, each class on
   its own: ``paper`` per packet in a seeded order (the protocol of most USTC-TFC2016 papers);
   ``flow_split`` whole conversations per split.
4. ``drop_duplicates`` (``flow_split``): a vector that occurs in two splits is kept in the first
   of train, validation, test only; ``assemble_splits`` orders each split's examples.
5. The report (packet_datasets.build_report's keys, then ``packet_counts_per_class``,
   ``sampled_packets``, ``flow_keys``: the conversation key and anonymisation measures of every
   class, and ``leakage_by_address_flow``); ``format_report`` as text.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
from absl import logging

from mtc_keras import labels, leakage, packet_datasets, packets, registry, splitting
from mtc_keras.packet_datasets import Source, Tally  # noqa: F401  (this module's API too)

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


def _capture_labels(name: str, archive: str | None) -> labels.UstcLabels | None:
    """An archive member takes its archive's class, else the class of its own name."""
    return (labels.ustc_labels(archive) if archive else None) or labels.ustc_labels(name)


FOLDER = packet_datasets.Folder(capture_suffixes=labels.USTC_CAPTURE_SUFFIXES, archive=packet_datasets.SEVEN_ZIP,
                                labels=_capture_labels, same_capture=str.lower,
                                name_members_by_archive=True, plain_files_first=True)


# ------------------------------------------------------------------------- finding files
def find_captures(manual_dir) -> tuple[list[Source], dict]:
    """Known captures under ``manual_dir`` (any depth, .7z members included), one per capture
    name, in name order, and what was skipped (packet_datasets.find_captures), plus
    "misplaced_captures" (kept: in the other group's folder). FileNotFoundError when the folder
    does not exist."""
    sources, skipped = packet_datasets.find_captures(manual_dir, FOLDER)
    for source in sources:
        folders = {part.lower() for part in source.shown.split("/")[:-1]}
        group, other = (labels.USTC_MALWARE[i] for i in (source.labels.malware, 1 - source.labels.malware))
        if other.lower() in folders and group.lower() not in folders:
            skipped.setdefault("misplaced_captures", []).append(
                f"{source.shown} (a {group} class, labelled by its name)")
    return sorted(sources, key=lambda s: s.name.lower()), skipped


# ------------------------------------------------------------------------- reading
def scan_capture(source: Source, position: int, limit: int, seed: int = SEED) -> packet_datasets.Scan:
    """One capture's ``limit`` lowest-priority kept packets, with their vectors ("vectors") and
    address flow ids ("flow"). An unreadable capture comes back with ``error``."""
    return packet_datasets.sample_capture(
        source, position, FOLDER.archive, limit, seed,
        lambda batch, new: {"vectors": batch.packets[new], "flow": batch.flow_ids[new]})


def _merge(old: dict | None, new: dict, limit: int) -> dict:
    """Candidate columns of one class: old and new together, trimmed to ``limit`` lowest priorities."""
    if old is not None:
        new = {k: np.concatenate([old[k], new[k]]) for k in new}
    if len(new["priority"]) > limit:
        keep = np.sort(np.argpartition(new["priority"], limit - 1)[:limit])
        new = {k: v[keep] for k, v in new.items()}
    return new


def sample_classes(sources: list[Source], max_per_class: int, seed: int) -> tuple[Tally, dict[int, dict]]:
    """Step 2: every capture read; the ``max_per_class`` lowest priorities of each class, as
    columns "capture" (position in ``sources``), "index", "priority", "vectors" and "flow"."""
    tally = Tally(sources)
    classes: dict[int, dict] = {}
    for position, source in enumerate(sources):
        scan = scan_capture(source, position, max_per_class, seed)
        if not tally.add(scan):
            logging.warning("skipped %s", scan.error)
            continue
        columns = {"capture": np.full(len(scan.columns["index"]), position, np.int64), **scan.columns}
        app = source.labels.app
        classes[app] = _merge(classes.get(app), columns, max_per_class)
    return tally, classes


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
    """The flow id (packet_datasets.flow_id: '<capture>|<conversation>') of every packet under
    ``key``. ``kept_in_capture``: the kept packets of each packet's capture (for the windows). A
    conversation is always a union of address flows: a window is the one the address flow's
    first packet falls in."""
    if key == "address":
        parts = np.asarray(address_flows, object)
    elif key == "ports":
        parts = np.asarray(ports, object)
    elif key == "ports+window":
        flow = packet_datasets.flow_ids(captures, address_flows)
        _, inverse = np.unique(flow.astype(str), return_inverse=True)
        inverse = inverse.ravel()
        first = np.full(inverse.max() + 1 if len(inverse) else 0, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, inverse, np.asarray(index, np.int64))
        window = first[inverse] * WINDOWS // np.maximum(np.asarray(kept_in_capture, np.int64), 1)
        parts = np.array([f"{p} w{w:02d}" for p, w in zip(ports.tolist(), window.tolist())], object)
    else:
        raise ValueError(f"unknown flow key {key!r}; expected one of {FLOW_KEYS}")
    return packet_datasets.flow_ids(captures, parts)


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
        return packet_datasets.example_key(self.captures[i], int(self.indices[i]))

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


def split_class(app: int, cand: dict, capture_names: np.ndarray, capture_kept: np.ndarray,
                config: str, seed: int) -> tuple[dict, FlowKeyChoice, int]:
    """Step 3 for one class: its conversations (``choose_flow_key``, ``conversation_ids``) and
    its split. Returns the class's columns with "app", "conversation" and "split" added, the
    key choice and the number of conversations."""
    ports = port_keys(cand["vectors"])
    choice = choose_flow_key(cand["flow"], ports)
    conv = conversation_ids(choice.key, capture_names[cand["capture"]], cand["index"], cand["flow"],
                            ports, capture_kept[cand["capture"]])
    if CONFIGS[config]:
        split = splitting.flow_split(np.array([splitting.hash64(c) for c in conv], np.uint64), seed)
    else:
        split = splitting.packet_split(cand["priority"], seed)
    columns = dict(cand, app=np.full(len(split), app, np.int64), conversation=conv, split=split)
    return columns, choice, len(set(conv.tolist()))


def drop_duplicates(columns: dict, config: str) -> tuple[dict, np.ndarray]:
    """Step 4 (``flow_split`` only): packet_datasets.drop_cross_split_duplicates on the columns
    of every class; (the columns kept, packets dropped per split)."""
    if not CONFIGS[config] or not columns:
        return columns, np.zeros(len(SPLITS), np.int64)
    drop, dropped = packet_datasets.drop_cross_split_duplicates(leakage.vector_digests(columns["vectors"]),
                                                                columns["split"])
    return {k: v[~drop] for k, v in columns.items()}, dropped


def assemble_splits(columns: dict, capture_names: np.ndarray) -> dict[str, Split]:
    """The examples of each split, sorted by capture name then packet index."""
    splits = {}
    for i, (name, _) in enumerate(SPLITS):
        if not columns:
            splits[name] = Split(np.zeros((0, packets.VECTOR_LEN), np.uint8), *(np.zeros(0, np.int64),) * 2,
                                 np.zeros(0, object), np.zeros(0, object), np.zeros(0, np.int64))
            continue
        rows = np.flatnonzero(columns["split"] == i)
        caps = capture_names[columns["capture"][rows]]
        order = rows[np.lexsort((columns["index"][rows], caps.astype(str)))]
        app = columns["app"][order]
        splits[name] = Split(columns["vectors"][order], app,
                             np.array([labels.ustc_malware(a) for a in app.tolist()], np.int64),
                             columns["conversation"][order], capture_names[columns["capture"][order]],
                             columns["index"][order])
    return splits


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
    tally, classes = sample_classes(sources, max_per_class, seed)
    capture_names = np.array([s.name for s in sources], object)
    capture_kept = np.array([tally.kept.get(p, 0) for p in range(len(sources))], np.int64)
    parts, flow_keys = [], {}
    for app in sorted(classes):
        columns, choice, conversations = split_class(app, classes[app], capture_names, capture_kept, config, seed)
        parts.append(columns)
        flow_keys[labels.USTC_APPS[app]] = choice.as_dict(conversations)
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    columns, dropped = drop_duplicates(columns, config)
    splits = assemble_splits(columns, capture_names)
    report = _report(config, max_per_class, seed, skipped, tally, classes, splits, dropped, flow_keys,
                     columns, capture_names)
    return Built(config, splits, report)


def examples(split: Split):
    """(key, example) for every packet of a split: what the TFDS builder writes."""
    for i in range(len(split)):
        yield split.key(i), {"packet": split.packets[i], "app": int(split.app[i]),
                             "malware": int(split.malware[i]), "flow_id": split.flow_ids[i],
                             "index": int(split.indices[i]), "capture": split.captures[i]}


def load_packets(manual_dir, *, config: str = "flow_split", max_per_class: int = DEFAULT_MAX_PER_CLASS,
                 seed: int = SEED) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """{split: (packets uint8 [N, 1500], {"app": int64 [N], "malware": int64 [N]}, flow_ids)}
    for "train", "validation" and "test": the examples the TFDS builder writes, without TFDS."""
    built = build(manual_dir, config, max_per_class=max_per_class, seed=seed)
    return {name: packet_datasets.as_arrays(examples(split), TASK_NAMES) for name, split in built.splits.items()}


# ------------------------------------------------------------------------- the report
def _named_counts(app: np.ndarray, weights=None) -> dict:
    app = np.asarray(app, np.int64)
    per_app = np.bincount(app, weights, minlength=len(labels.USTC_APPS)).astype(np.int64)
    malware = collections.Counter()
    for i, n in enumerate(per_app.tolist()):
        malware[labels.USTC_MALWARE[labels.ustc_malware(i)]] += n
    return {"app": {name: int(n) for name, n in zip(labels.USTC_APPS, per_app.tolist())},
            "malware": {name: int(malware[name]) for name in labels.USTC_MALWARE}}


def _report(config, max_per_class, seed, skipped, tally, classes, splits, dropped, flow_keys,
            columns, capture_names) -> dict:
    sources = tally.sources
    counts = {name: collections.Counter() for name in labels.USTC_APPS}
    kept = collections.Counter()  # app -> kept packets
    for position in tally.used:
        app = sources[position].labels.app
        counts[labels.USTC_APPS[app]].update(tally.counts[position])
        kept[app] += tally.kept[position]
    train, test = splits["train"], splits["test"]
    figures = leakage.leakage_figures(train.flow_ids, train.packets, test.flow_ids, test.packets)
    by_address = {}
    if columns:
        address = packet_datasets.flow_ids(capture_names[columns["capture"]], columns["flow"])
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
    return packet_datasets.build_report(
        {"name": config, "split_by_flow": CONFIGS[config], "max_per_class": int(max_per_class),
         "seed": int(seed), "split_fractions": dict(SPLITS)},
        tally, skipped, TASK_NAMES,
        kept_packets=_named_counts(np.arange(len(labels.USTC_APPS)),
                                   [kept[i] for i in range(len(labels.USTC_APPS))]),
        split_packets=split_packets, dropped=dropped, figures=figures,
        packet_counts_per_class={name: {k: int(v) for k, v in sorted(c.items())}
                                 for name, c in counts.items() if c},
        sampled_packets=sampled, flow_keys=flow_keys, leakage_by_address_flow=by_address)


def format_report(report: dict) -> str:
    """The build report as text (what the build logs)."""
    splits = report["split_packets"]
    table = [f"{'app':<16} {'kept':>8} {'sampled':>8} " + " ".join(f"{s:>10}" for s in splits)
             + f"  {'key':<12} {'flows/pkt':>9} {'ports':>6} {'conv':>6}"]
    for name, count in report["kept_packets"]["app"].items():
        key = report["flow_keys"].get(name, {})
        table.append(f"  {name:<14} {count:>8} {report['sampled_packets'][name]:>8} "
                     + " ".join(f"{splits[s]['app'][name]:>10}" for s in splits)
                     + f"  {key.get('key', '-'):<12} {key.get('address_flows_per_packet', 0):>9.2f} "
                       f"{key.get('port_keys', 0):>6} {key.get('conversations', 0):>6}")
    table.append("total" + " " * 29 + " ".join(f"{splits[s]['total']:>10}" for s in splits))
    value = report["leakage_by_address_flow"].get("test_packets_with_flow_in_train")
    extra = ["test_packets_with_flow_in_train (by address flow): " + ("n/a" if value is None else f"{value:.4f}")]
    return packet_datasets.format_report(report, table, extra)
