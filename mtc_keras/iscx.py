"""ISCX VPN-nonVPN 2016: what its build does that USTC-TFC2016's does not: labels from the
capture file names, the VPN / non-VPN balance of §3.2.3, the split of each (app, traffic) cell,
and a second pass that reads only the chosen packets. The steps every packet dataset shares
(the manual folder scan, the sample, the flow id, the de-duplication, the build report) are
mtc_keras.packet_datasets.

``tfds_builders/iscx_vpn_nonvpn`` is TFDS (and Apache Beam) glue around them: its plain build
calls ``plan``; its Beam build runs the same steps (``scan_capture``, ``Side.merge``,
``choose_app``, ``drop_cross_split_duplicates``, ``Tally`` and ``build_report``) as a pipeline,
so both write the same examples. ``load_packets`` returns the examples of a config without TFDS.
Bounded memory whatever the size of the captures:

1. ``find_captures``: captures in the manual folder at any depth, as files or as members of zip
   archives; labels come from the file name (mtc_keras.labels); two files with the same stem
   are one capture.
2. Pass 1, ``scan_capture`` (one capture per worker process): packet_datasets.sample_capture
   keeps the ``max_packets_per_app`` lowest priorities of the capture, with a flow hash and a
   vector digest each; they are merged per (app, VPN side).
3. Balance (§3.2.3, ``choose_app``): per app, at most ``max_packets_per_app`` packets, half from
   VPN and half from non-VPN captures; a side with fewer takes all of its packets and the other
   side fills up. Within a side, the packets with the lowest priorities: a uniform sample.
4. Split by ``registry.SPLITS`` (64/16/20), each (app, traffic) cell on its own, so every class
   of every task is split in those proportions (``CONFIGS``):
   - ``paper``: per packet, in a second seeded random order;
   - ``flow_split`` (and ``flow_split_masked``, ports zeroed): whole flows, in a seeded random
     order, each to the split furthest below its share of the cell's packets; then
     ``drop_cross_split_duplicates``.
5. Pass 2, ``read_selected`` once per split: stream the captures that hold chosen packets again
   and keep only those; ``examples`` gives their TFDS examples.
Worker processes are forked (``workers``, default one per core).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterator, Sequence

import numpy as np

from mtc_keras import labels, leakage, packet_datasets, packets, registry, splitting
from mtc_keras.packet_datasets import Scan, Source, Tally  # noqa: F401  (this module's API too)

DATASET = registry.DATASETS["iscx"]
SPLITS = DATASET.splits
SEED = 2016
DEFAULT_MAX_PACKETS_PER_APP = 50_000  # §3.2.3
# config name -> how it differs from the paper's per-packet split (Settings fields)
CONFIGS = {"paper": {}, "flow_split": {"split_by_flow": True},
           "flow_split_masked": {"split_by_flow": True, "mask_ports": True}}


def _capture_labels(name: str, archive: str | None) -> labels.IscxLabels | None:
    return labels.iscx_labels(name)  # a zip's name says nothing about its captures


FOLDER = packet_datasets.Folder(capture_suffixes=labels.ISCX_CAPTURE_SUFFIXES, archive=packet_datasets.ZIP,
                                labels=_capture_labels, same_capture=labels.iscx_stem)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a build writes (the builder config's fields)."""

    name: str
    split_by_flow: bool = False  # whole flows per split, and no packet vector in two splits
    mask_ports: bool = False  # zero the TCP/UDP ports (packets.mask_ports) in every vector
    max_packets_per_app: int = DEFAULT_MAX_PACKETS_PER_APP  # half VPN, half non-VPN where both exist
    seed: int = SEED  # the sample and the split


def config_settings(config: str, *, max_packets_per_app: int = DEFAULT_MAX_PACKETS_PER_APP,
                    seed: int = SEED) -> Settings:
    """The Settings of a named config; ValueError for a config that ISCX does not have."""
    if config not in CONFIGS:
        raise ValueError(f"unknown ISCX VPN-nonVPN config {config!r}; expected one of {sorted(CONFIGS)}")
    return Settings(config, max_packets_per_app=max_packets_per_app, seed=seed, **CONFIGS[config])


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
class Selected:
    """Pass 2 of one capture: the chosen packets' indices, vectors and flow ids."""

    source: Source
    indices: np.ndarray
    vectors: np.ndarray
    flows: np.ndarray


def find_captures(manual_dir) -> tuple[list[Source], dict]:
    """Captures under `manual_dir` (any depth, zips included), one per ISCX name, and what
    was skipped (packet_datasets.find_captures)."""
    return packet_datasets.find_captures(manual_dir, FOLDER)


def find_sources(manual_dir) -> tuple[list[Source], dict]:
    """``find_captures``; FileNotFoundError when the folder holds no known capture."""
    sources, skipped = find_captures(manual_dir)
    if not sources:
        raise FileNotFoundError(f"no known ISCX capture in {manual_dir}.")
    return sources, skipped


# ------------------------------------------------------------------------------------ pass 1
def scan_capture(source: Source, position: int, settings: Settings) -> Scan:
    """Pass 1 for one capture: counts, and its `max_packets_per_app` lowest-priority kept
    packets as candidate rows (``candidates``). Runs in a worker process."""

    def columns(batch: packets.PacketBatch, new: np.ndarray) -> dict:
        # Digests only for the packets that enter the candidates.
        vectors = batch.packets[new]
        if settings.mask_ports:
            vectors = packets.mask_ports(vectors)
        flows = [splitting.hash64(packet_datasets.flow_id(source.name, f)) for f in batch.flow_ids[new]]
        return {"flow": np.array(flows, np.uint64), "vector": leakage.vector_digests(vectors),
                "source": np.full(len(new), position, np.int64), "split": np.full(len(new), -1, np.int64)}

    return packet_datasets.sample_capture(source, position, FOLDER.archive, settings.max_packets_per_app,
                                          settings.seed, columns)


def candidates(scan: Scan) -> Rows:
    """The candidate rows of a readable capture's scan."""
    return Rows(**scan.columns)


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
    split is dropped from the later ones (packet_datasets.drop_cross_split_duplicates). Works on
    any set of rows that holds every row of each vector it holds (all rows, or one bucket of
    vector digests)."""
    if not settings.split_by_flow or not len(rows):
        return rows, np.zeros(len(SPLITS), np.int64)
    drop, dropped = packet_datasets.drop_cross_split_duplicates(rows.vector, rows.split)
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
    for batch in packet_datasets.read_batches(source, FOLDER.archive):
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
        yield packet_datasets.example_key(source.name, index), {
            "packet": vector, "app": lab.app, "traffic": lab.traffic, "aux": lab.aux,
            "vpn": lab.vpn, "flow_id": packet_datasets.flow_id(source.name, flow), "index": index,
            "capture": source.name,
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
        new = Side(scan.kept, candidates(scan))
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
    return Plan(splits, build_report(settings, skipped, tally, rows, dropped))


def load_packets(manual_dir, *, config: str = "flow_split",
                 max_packets_per_app: int = DEFAULT_MAX_PACKETS_PER_APP, seed: int = SEED,
                 workers: int | None = None) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """{split: (packets uint8 [N, 1500], {"app", "traffic", "aux": int64 [N]}, flow_ids object [N])}
    for "train", "validation" and "test": the examples the TFDS builder writes for the config,
    without TFDS, in capture order. ValueError for an unknown config, FileNotFoundError when the
    folder holds no known capture."""
    chosen = config_settings(config, max_packets_per_app=max_packets_per_app, seed=seed)
    built = plan(*find_sources(manual_dir), chosen, workers)
    return {name: packet_datasets.as_arrays(built.read(name, chosen, workers), DATASET.tasks)
            for name, _ in SPLITS}


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


def build_report(settings: Settings, skipped: dict, tally: Tally, rows: Rows, dropped: np.ndarray) -> dict:
    """The build report (packet_datasets.build_report): packets per class (and VPN side) before
    and after balancing, and the known captures missing (``captures_missing``, by stem)."""
    sources = tally.sources
    # Labels per capture; packets are counted per capture, never one row per packet.
    by_source = {task: np.array([getattr(s.labels, task) for s in sources], np.int64)
                 for task in _LABEL_COLUMNS}
    used = np.array(tally.used, np.int64)
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
    config = {"name": settings.name, "split_by_flow": settings.split_by_flow,
              "mask_ports": settings.mask_ports, "max_packets_per_app": settings.max_packets_per_app,
              "seed": settings.seed, "split_fractions": dict(SPLITS)}
    found_stems = {labels.iscx_stem(s.name) for s in sources}
    return packet_datasets.build_report(
        config, tally, skipped, DATASET.tasks, kept_packets=kept, split_packets=split_counts,
        dropped=dropped, figures=figures,
        captures_missing=sorted(set(labels.ISCX_FILE_LABELS) - found_stems))


def format_report(report: dict) -> str:
    """The build report as text (what the build logs)."""
    table = [f"known captures missing: {len(report['captures_missing'])}"]
    splits = report["split_packets"]
    for task in _LABEL_COLUMNS:
        table.append(f"{task:<7} {'kept':>9} " + " ".join(f"{s:>10}" for s in splits))
        for name, count in report["kept_packets"][task].items():
            table.append(f"  {name:<20} {count:>9} " + " ".join(f"{splits[s][task][name]:>10}" for s in splits))
    return packet_datasets.format_report(report, table)
