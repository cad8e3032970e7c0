"""ISCX VPN-nonVPN 2016: finding the captures, sampling, balancing, splitting, de-duplication and
the build report, as plain functions over small dataclasses.

``tfds_builders/iscx_vpn_nonvpn`` is TFDS (and Apache Beam) glue around them: its plain build
calls ``plan``; its Beam build runs the same steps (``scan_capture``, ``Side.merge``,
``choose_app``, ``drop_cross_split_duplicates``, ``Tally`` and ``build_report``) as a pipeline,
so both write the same examples. Bounded memory whatever the size of the captures:

1. ``find_captures``: captures in the manual folder at any depth, as files or as members of zip
   archives; labels come from the file name (mtc_keras.labels). Unknown names, duplicates,
   files that are not captures and unreadable archives are reported and skipped.
2. Pass 1, ``scan_capture`` (one capture per worker process): stream the capture through
   mtc_keras.packets.iter_capture_batches and give every kept packet a priority, a hash of
   (seed, capture name, packet index), so the sample does not depend on the order or the
   number of workers. A worker keeps only the ``max_packets_per_app`` lowest priorities of its
   capture (with a flow hash and a vector digest); they are merged per (app, VPN side).
3. Balance (§3.2.3, ``choose_app``): per app, at most ``max_packets_per_app`` packets, half from
   VPN and half from non-VPN captures; a side with fewer takes all of its packets and the other
   side fills up. Within a side, the packets with the lowest priorities: a uniform sample.
4. Split by ``registry.SPLITS`` (64/16/20), each (app, traffic) cell on its own, so every class
   of every task is split in those proportions:
   - ``paper``: per packet, in a second seeded random order;
   - ``flow_split`` (and ``flow_split_masked``): whole flows, in a seeded random order, each to
     the split furthest below its share of the cell's packets; then
     ``drop_cross_split_duplicates``: a packet vector that occurs in two splits is kept in the
     first of train, validation, test and dropped (and counted) from the later ones.
5. Pass 2, ``read_selected`` once per split: stream the captures that hold chosen packets again
   and keep only those; ``examples`` gives their TFDS examples, keyed
   "<capture file name>:<index of the packet among the capture's kept packets>".
Worker processes are forked (``workers``, default one per core); a zip member is copied to a
temporary file while a worker reads it, never into memory.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence

import numpy as np

from mtc_keras import capture, labels, leakage, packets, registry, splitting

DATASET = registry.DATASETS["iscx"]
SPLITS = DATASET.splits
SEED = 2016
DEFAULT_MAX_PACKETS_PER_APP = 50_000  # §3.2.3
BATCH = 16384  # frames per batch: about 25 MB of vectors per worker
CAPTURE_SUFFIXES = labels.ISCX_CAPTURE_SUFFIXES


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a build writes (the builder config's fields)."""

    name: str
    split_by_flow: bool = False  # whole flows per split, and no packet vector in two splits
    mask_ports: bool = False  # zero the TCP/UDP ports (packets.mask_ports) in every vector
    max_packets_per_app: int = DEFAULT_MAX_PACKETS_PER_APP  # half VPN, half non-VPN where both exist
    seed: int = SEED  # the sample and the split


@dataclasses.dataclass(frozen=True)
class Source:
    """One capture: a file, or a member of a zip archive."""

    name: str  # file name only: keys, the `capture` feature, the report
    shown: str  # where it is, relative to the manual folder (for the report)
    path: str  # the file, or the zip archive holding it
    member: str | None = None

    @property
    def labels(self) -> labels.IscxLabels:
        return labels.iscx_labels(self.name)


@dataclasses.dataclass(frozen=True)
class Rows:
    """Candidate (then chosen) packets, one array entry per packet."""

    priority: np.ndarray  # uint64 sampling priority
    index: np.ndarray  # int64 index among the capture's kept packets
    flow: np.ndarray  # uint64 hash of the flow id
    vector: np.ndarray  # uint64 leakage.vector_digests of the (masked) vector
    source: np.ndarray  # int64 position of the capture in the sources list
    split: np.ndarray  # int64 index into SPLITS; -1 before the split

    @classmethod
    def empty(cls) -> Rows:
        return cls(*(np.zeros(0, dtype) for dtype in (np.uint64, np.int64, np.uint64, np.uint64,
                                                        np.int64, np.int64)))

    def __len__(self) -> int:
        return len(self.index)

    def take(self, rows) -> Rows:
        return Rows(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        if not parts:
            return Rows.empty()
        return Rows(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                       for f in dataclasses.fields(Rows)})

    def lowest(self, limit: int) -> Rows:
        """The `limit` rows of lowest priority (any order)."""
        if len(self) <= limit:
            return self
        return self.take(np.argpartition(self.priority, limit - 1)[:limit])

    def with_split(self, split: np.ndarray) -> Rows:
        return dataclasses.replace(self, split=np.asarray(split, np.int64))


@dataclasses.dataclass(frozen=True)
class Scan:
    """Pass 1 of one capture: its packet counts, its kept packets and its candidate rows, or
    the error that made it unreadable."""

    position: int  # in the sources list
    counts: dict = dataclasses.field(default_factory=dict)
    kept: int = 0
    candidates: Rows | None = None
    error: str | None = None

    def summary(self) -> Scan:
        """The scan without its candidates (what the build report needs)."""
        return dataclasses.replace(self, candidates=None)


@dataclasses.dataclass(frozen=True)
class Selected:
    """Pass 2 of one capture: the chosen packets' indices, vectors and flow ids."""

    source: Source
    indices: np.ndarray
    vectors: np.ndarray
    flows: np.ndarray


@contextlib.contextmanager
def local_file(source: Source):
    """A path to the capture; a zip member is copied to a temporary file, one at a time,
    so a member of any size costs disk, not memory."""
    if source.member is None:
        yield source.path
        return
    with zipfile.ZipFile(source.path) as archive, archive.open(source.member) as member, \
            tempfile.NamedTemporaryFile(suffix="_" + source.name) as tmp:
        shutil.copyfileobj(member, tmp, 1 << 22)
        tmp.flush()
        yield tmp.name


def find_captures(manual_dir) -> tuple[list[Source], dict]:
    """Captures under `manual_dir` (any depth, zips included), one per ISCX name, and what
    was skipped: {"unknown_captures", "duplicate_captures", "unreadable_archives", "other_files"}."""
    found, skipped = [], collections.defaultdict(list)
    for path, shown in capture.manual_files(manual_dir):
        lower = path.name.lower()
        if lower.endswith(".zip"):
            try:
                with zipfile.ZipFile(str(path)) as archive:
                    members = sorted(m.filename for m in archive.infolist() if not m.is_dir())
            except zipfile.BadZipFile as error:
                skipped["unreadable_archives"].append(f"{shown}: {error}")
                continue
            for member in members:
                name = member.rsplit("/", 1)[-1]
                if name.lower().endswith(CAPTURE_SUFFIXES):
                    found.append(Source(name, f"{shown}/{member}", str(path), member))
                else:
                    skipped["other_files"].append(f"{shown}/{member}")
        elif lower.endswith(CAPTURE_SUFFIXES):
            found.append(Source(path.name, shown, str(path)))
        else:
            skipped["other_files"].append(shown)
    sources, seen = [], {}
    for source in sorted(found, key=lambda s: (labels.iscx_stem(s.name), s.shown)):
        stem = labels.iscx_stem(source.name)
        if source.labels is None:
            skipped["unknown_captures"].append(source.shown)
        elif stem in seen:
            skipped["duplicate_captures"].append(f"{source.shown} (same capture as {seen[stem]})")
        else:
            seen[stem] = source.shown
            sources.append(source)
    return sources, dict(skipped)


# ------------------------------------------------------------------------------------ pass 1
def scan_capture(source: Source, position: int, settings: Settings) -> Scan:
    """Pass 1 for one capture: counts, and its `max_packets_per_app` lowest-priority kept
    packets as candidate rows. Runs in a worker process."""
    limit = settings.max_packets_per_app
    counts = collections.Counter()
    cand, kept, path = Rows.empty(), 0, source.path
    try:
        with local_file(source) as path:
            for batch in packets.iter_capture_batches(path, batch_size=BATCH):
                counts.update(batch.counts)
                index = np.arange(kept, kept + len(batch), dtype=np.int64)
                kept += len(batch)
                priority = splitting.packet_priorities(settings.seed, source.name, index)
                old, new = splitting.lowest(cand.priority, priority, limit)
                # Digests only for the packets that enter the candidates.
                vectors = batch.packets[new]
                if settings.mask_ports:
                    vectors = packets.mask_ports(vectors)
                flows = np.array([splitting.hash64(f"{source.name}|{f}") for f in batch.flow_ids[new]],
                                 np.uint64)
                fresh = Rows(priority[new], index[new], flows, leakage.vector_digests(vectors),
                             np.full(len(new), position, np.int64), np.full(len(new), -1, np.int64))
                cand = Rows.concat([cand.take(old), fresh])
    except (packets.CaptureFormatError, zipfile.BadZipFile, EOFError) as error:
        # The reader names the file it read (maybe a temporary copy): name the capture instead.
        message = str(error).replace(path, source.shown)
        if not message.startswith(source.shown):
            message = f"{source.shown}: {message}"
        return Scan(position, error=message)
    return Scan(position, dict(counts), kept, cand)


@dataclasses.dataclass
class Tally:
    """What the build report counts of pass 1, capture by capture."""

    sources: list[Source]
    used: list[int] = dataclasses.field(default_factory=list)  # positions read
    unreadable: list[str] = dataclasses.field(default_factory=list)
    incomplete: list[str] = dataclasses.field(default_factory=list)
    totals: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    kept: dict[int, int] = dataclasses.field(default_factory=dict)  # position -> kept packets

    def add(self, scan: Scan) -> bool:
        """Count one capture's scan; False if it was unreadable."""
        source = self.sources[scan.position]
        if scan.error is not None:
            self.unreadable.append(scan.error)
            return False
        self.used.append(scan.position)
        self.totals.update(scan.counts)
        self.kept[scan.position] = scan.kept
        if scan.counts.get("truncated") or scan.counts.get("corrupt"):
            self.incomplete.append(source.shown)
        return True


@dataclasses.dataclass(frozen=True)
class Side:
    """The captures of one (app, VPN side): kept packets in all, and the lowest-priority rows."""

    kept: int
    rows: Rows

    @staticmethod
    def merge(sides, cap: int) -> Side:
        """Kept packets summed, the `cap` lowest priorities kept. Associative, so a Beam runner
        may merge partial results in any order."""
        sides = list(sides)
        return Side(sum(s.kept for s in sides), Rows.concat([s.rows for s in sides]).lowest(cap))


def side_key(source: Source) -> tuple[int, bool]:
    lab = source.labels
    return lab.app, lab.vpn


# ---------------------------------------------------------------------- balance and split
def quotas(non_vpn: int, vpn: int, cap: int) -> tuple[int, int]:
    """(non-VPN, VPN) packets to take: half each, a short side taking all and the other filling up."""
    take_vpn = min(vpn, cap // 2 + max(0, (cap - cap // 2) - non_vpn))
    return min(non_vpn, cap - take_vpn), take_vpn


def source_traffic(sources: Sequence[Source]) -> np.ndarray:
    """The traffic label of every source (the split's cells are (app, traffic))."""
    return np.array([s.labels.traffic for s in sources], np.int64)


def choose_app(sides: dict[bool, Side], settings: Settings, traffic: np.ndarray) -> Rows | None:
    """Balance one app (§3.2.3) and split it by SPLITS, each traffic cell on its own.

    sides: {vpn: Side} for the sides with a capture read; traffic: source_traffic of the
    sources. Returns the chosen rows with their split, or None when nothing is chosen. The
    result does not depend on the order of the rows (priorities are unique).
    """
    cap = settings.max_packets_per_app
    kept = {vpn: sides[vpn].kept if vpn in sides else 0 for vpn in (False, True)}
    parts = []
    for vpn, quota in zip((False, True), quotas(kept[False], kept[True], cap)):
        if vpn not in sides or quota == 0:
            continue
        rows = sides[vpn].rows
        parts.append(rows.take(np.argsort(rows.priority, kind="stable")[:quota]))
    if not parts:
        return None
    part = Rows.concat(parts)
    split = np.zeros(len(part), np.int64)
    cell = traffic[part.source]
    for value in np.unique(cell):
        rows = cell == value
        split[rows] = (splitting.flow_split(part.flow[rows], settings.seed, SPLITS)
                       if settings.split_by_flow
                       else splitting.packet_split(part.priority[rows], settings.seed, SPLITS))
    return part.with_split(split)


def drop_cross_split_duplicates(rows: Rows, settings: Settings) -> tuple[Rows, np.ndarray]:
    """(rows, duplicates dropped per split): with split_by_flow, a vector found in an earlier
    split is dropped from the later ones. Works on any set of rows that holds every row of
    each vector it holds (all rows, or one bucket of vector digests)."""
    dropped = np.zeros(len(SPLITS), np.int64)
    if not settings.split_by_flow or not len(rows):
        return rows, dropped
    drop = splitting.in_an_earlier_split(rows.vector, rows.split)
    dropped = np.bincount(rows.split[drop], minlength=len(SPLITS)).astype(np.int64)
    return rows.take(~drop), dropped


def split_indices(rows: Rows) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """((split, source position), sorted packet indices) of every capture in every split."""
    for split, position in sorted(set(zip(rows.split.tolist(), rows.source.tolist()))):
        yield (split, position), np.sort(rows.index[(rows.split == split) & (rows.source == position)])


# ------------------------------------------------------------------------------ pass 2
def read_selected(source: Source, indices: np.ndarray, mask_ports: bool) -> Selected:
    """Pass 2 for one capture: the vectors and flow ids of the kept packets at `indices`."""
    out_vectors, out_flows, out_index = [], [], []
    start = 0
    with local_file(source) as path:
        for batch in packets.iter_capture_batches(path, batch_size=BATCH):
            lo, hi = np.searchsorted(indices, [start, start + len(batch)])
            if hi > lo:
                rows = indices[lo:hi] - start
                out_vectors.append(batch.packets[rows])
                out_flows.append(batch.flow_ids[rows])
                out_index.append(indices[lo:hi])
            start += len(batch)
            if hi == len(indices):
                break
    vectors = np.concatenate(out_vectors) if out_vectors else np.zeros((0, packets.VECTOR_LEN), np.uint8)
    if mask_ports:
        vectors = packets.mask_ports(vectors)
    found = np.concatenate(out_index) if out_index else np.zeros(0, np.int64)
    if len(found) != len(indices):  # the capture changed between the two passes
        raise RuntimeError(f"{source.shown}: {len(found)} of {len(indices)} chosen packets found on re-reading")
    flows = np.concatenate(out_flows) if out_flows else np.zeros(0, object)
    return Selected(source, found, vectors, flows)


def examples(selected: Selected):
    """(key, example) for every packet `read_selected` returned."""
    source = selected.source
    lab = source.labels
    for index, vector, flow in zip(selected.indices.tolist(), selected.vectors, selected.flows):
        yield f"{source.name}:{index}", {
            "packet": vector, "app": lab.app, "traffic": lab.traffic, "aux": lab.aux,
            "vpn": lab.vpn, "flow_id": f"{source.name}|{flow}", "capture": source.name,
        }


# --------------------------------------------------------------------------- the plain build
def _scan_job(job) -> Scan:
    return scan_capture(*job)


def _read_job(job) -> Selected:
    return read_selected(*job)


def map_jobs(function, jobs: list, workers: int | None):
    """function over jobs, in order, across worker processes (fork: the workers inherit the
    loaded modules, whatever name `tfds build` imported the builder under)."""
    workers = min(workers or multiprocessing.cpu_count(), len(jobs))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(function, jobs)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(function, jobs, chunksize=1)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What each split takes: {split name: {source: sorted packet indices}}, and the report."""

    splits: dict[str, dict[Source, np.ndarray]]
    report: dict

    def read(self, split: str, settings: Settings, workers: int | None = None):
        """Pass 2 of one split: its (key, example) pairs, in capture order."""
        jobs = [(source, indices, settings.mask_ports) for source, indices in self.splits[split].items()]
        for selected in map_jobs(_read_job, jobs, workers):
            yield from examples(selected)


def plan(sources: list[Source], skipped: dict, settings: Settings, workers: int | None = None) -> Plan:
    """Pass 1, the balance, the split and the de-duplication, in `workers` processes."""
    cap = settings.max_packets_per_app
    tally = Tally(sources)
    sides: dict[tuple[int, bool], Side] = {}
    jobs = [(source, position, settings) for position, source in enumerate(sources)]
    for scan in map_jobs(_scan_job, jobs, workers):
        if not tally.add(scan):
            continue
        key = side_key(sources[scan.position])
        new = Side(scan.kept, scan.candidates)
        sides[key] = Side.merge([sides[key], new] if key in sides else [new], cap)
    traffic = source_traffic(sources)
    chosen = []
    for app in range(len(labels.ISCX_APPS)):
        app_sides = {vpn: sides[app, vpn] for vpn in (False, True) if (app, vpn) in sides}
        rows = choose_app(app_sides, settings, traffic)
        if rows is not None:
            chosen.append(rows)
    rows, dropped = drop_cross_split_duplicates(Rows.concat(chosen), settings)
    splits = {name: {} for name, _ in SPLITS}
    for (split, position), indices in split_indices(rows):
        splits[SPLITS[split][0]][sources[position]] = indices
    return Plan(splits, build_report(settings, sources, skipped, tally, rows, dropped))


# ------------------------------------------------------------------------------ the report
def class_counts(app, traffic, aux, vpn, weights=None) -> dict:
    """Packets per class of every task (and per VPN side); each row counts `weights` packets."""
    weights = np.ones(len(app), np.int64) if weights is None else np.asarray(weights, np.int64)

    def named(values, names):
        values = np.asarray(values, np.int64)
        counts = np.bincount(values[values >= 0], weights[values >= 0], minlength=len(names))
        result = {name: int(c) for name, c in zip(names, counts)}
        result["(missing)"] = int(weights[values < 0].sum())
        return result

    vpn = np.asarray(vpn, bool)
    return {"app": named(app, labels.ISCX_APPS), "traffic": named(traffic, labels.ISCX_TRAFFIC),
            "aux": named(aux, labels.ISCX_AUX),
            "vpn": {"non-VPN": int(weights[~vpn].sum()), "VPN": int(weights[vpn].sum())}}


_LABEL_COLUMNS = ("app", "traffic", "aux", "vpn")


def build_report(settings: Settings, sources: list[Source], skipped: dict, tally: Tally,
                 rows: Rows, dropped: np.ndarray) -> dict:
    """The build report (logged, and stored in the dataset's metadata): files found, missing and
    skipped, packets per class before and after balancing, drop counts by reason, duplicates
    dropped and the leakage figures (mtc_keras.leakage names)."""
    found_stems = {labels.iscx_stem(s.name) for s in sources}
    # Labels per capture; packets are counted per capture, never one row per packet.
    by_source = {task: np.array([getattr(s.labels, task) for s in sources], np.int64)
                 for task in _LABEL_COLUMNS}
    used = np.array(tally.used, np.int64)
    with_files = {task: set(by_source[task][used].tolist()) for task in ("app", "traffic", "aux")}
    kept = class_counts(*(by_source[t][used] for t in _LABEL_COLUMNS),
                        weights=[tally.kept[p] for p in tally.used])
    split_counts, figures = {}, {}
    if len(rows):
        for i, (name, _) in enumerate(SPLITS):
            source = rows.source[rows.split == i]
            split_counts[name] = class_counts(*(by_source[t][source] for t in _LABEL_COLUMNS))
            split_counts[name]["total"] = len(source)
        train, test = rows.split == 0, rows.split == 2
        figures = leakage.figures_from_keys(rows.flow[train], rows.vector[train],
                                            rows.flow[test], rows.vector[test])
    return {
        "config": {"name": settings.name, "split_by_flow": settings.split_by_flow,
                   "mask_ports": settings.mask_ports, "max_packets_per_app": settings.max_packets_per_app,
                   "seed": settings.seed, "split_fractions": dict(SPLITS)},
        "captures_found": sorted(s.shown for s in sources),
        "captures_missing": sorted(set(labels.ISCX_FILE_LABELS) - found_stems),
        "captures_unknown": skipped.get("unknown_captures", []),
        "captures_duplicate": skipped.get("duplicate_captures", []),
        "captures_unreadable": tally.unreadable,
        "captures_incomplete": tally.incomplete,
        "archives_unreadable": skipped.get("unreadable_archives", []),
        "other_files": skipped.get("other_files", []),
        "classes_without_files": {task: [n for i, n in enumerate(names) if i not in with_files[task]]
                                  for task, names in DATASET.tasks.items()},
        "packet_counts": {k: int(v) for k, v in sorted(tally.totals.items())},
        "kept_packets": kept,
        "split_packets": split_counts,
        "cross_split_duplicates_dropped": {name: int(dropped[i]) for i, (name, _) in enumerate(SPLITS)},
        "leakage": {k: figures[k] for k in leakage.FIGURES + leakage.COUNTS} if figures else {},
    }


def format_report(report: dict) -> str:
    """The build report as text (what the build logs)."""
    lines = [f"captures used: {len(report['captures_found']) - len(report['captures_unreadable'])} "
             f"of {len(report['captures_found'])} found; known captures missing: "
             f"{len(report['captures_missing'])}"]
    for key, what in (("captures_unknown", "skipped, unknown name"), ("captures_duplicate", "skipped, duplicate"),
                      ("captures_unreadable", "skipped, not a capture"),
                      ("archives_unreadable", "skipped, bad zip"),
                      ("captures_incomplete", "truncated or corrupt, kept what was read")):
        lines.extend(f"  {what}: {item}" for item in report[key])
    if report["other_files"]:
        lines.append(f"  other files ignored: {len(report['other_files'])}")
    for task, names in report["classes_without_files"].items():
        if names:
            lines.append(f"{task} classes with no capture: {', '.join(names)}")
    lines.append("packets: " + ", ".join(f"{k}={v}" for k, v in report["packet_counts"].items()))
    splits = report["split_packets"]
    for task in _LABEL_COLUMNS:
        lines.append(f"{task:<7} {'kept':>9} " + " ".join(f"{s:>10}" for s in splits))
        for name, count in report["kept_packets"][task].items():
            lines.append(f"  {name:<20} {count:>9} " + " ".join(f"{splits[s][task][name]:>10}" for s in splits))
    if any(report["cross_split_duplicates_dropped"].values()):
        lines.append("vectors dropped as duplicates of an earlier split: "
                     + ", ".join(f"{k}={v}" for k, v in report["cross_split_duplicates_dropped"].items()))
    for key in leakage.FIGURES:
        if key in report["leakage"]:
            lines.append(f"{key}: {report['leakage'][key]:.4f}")
    return "\n".join(lines)
