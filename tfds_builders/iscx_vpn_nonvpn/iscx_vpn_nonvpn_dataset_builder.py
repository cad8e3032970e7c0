"""ISCX VPN-nonVPN 2016 as 1500-byte packet vectors, labelled for the MTC paper's three tasks.

Build:  tfds build tfds_builders/iscx_vpn_nonvpn --manual_dir=DIR --data_dir=OUT [--config=flow_split]
Load:   import tfds_builders.iscx_vpn_nonvpn  # registers the builder
        tfds.load("iscx_vpn_nonvpn/flow_split", data_dir=OUT)

How it works (bounded memory whatever the size of the captures):
1. Find captures in the manual folder at any depth, as files or as members of zip archives;
   labels come from the file name (mtc_keras.labels). Unknown names, duplicates, files that are
   not captures and unreadable archives are reported and skipped.
2. Pass 1, one capture per worker process: stream the capture through
   mtc_keras.packets.iter_capture_batches and give every kept packet a priority, a hash of
   (seed, capture name, packet index), so the sample does not depend on the order or the
   number of workers. A worker keeps only the `max_packets_per_app` lowest priorities of its
   capture (with a flow hash and a vector hash); the parent merges them per (app, VPN side).
3. Balance (§3.2.3): per app, at most `max_packets_per_app` packets, half from VPN and half
   from non-VPN captures; a side with fewer takes all of its packets and the other side
   fills up. Within a side, the packets with the lowest priorities: a uniform sample.
4. Split 64/16/20, each (app, traffic) cell on its own, so every class of every task is split
   in those proportions:
   - `paper`: per packet, in a second seeded random order;
   - `flow_split` (and `flow_split_masked`): whole flows, in a seeded random order, each to
     the split furthest below its share of the cell's packets; then a packet vector that
     occurs in two splits is kept in the first of train, validation, test and dropped (and
     counted) from the later ones.
5. Pass 2, once per split (TFDS generates splits one after another): stream the captures
   that hold chosen packets again, in parallel, and yield only those. Keys are
   "<capture file name>:<index of the packet among the capture's kept packets>".
Worker processes are forked (Builder.NUM_WORKERS, default one per core); a zip member is
copied to a temporary file while a worker reads it, never into memory.

With Apache Beam (the `beam` extra): given a Beam runner or options, e.g.
`tfds build ... --beam_pipeline_options=runner=DirectRunner` (BUILD.md has cluster runners), the
same steps run as one Beam pipeline shared by the three splits, and write the same examples:
pass 1 per capture, the per-(app, side) sample and the per-app balance and split as per-key
combines, the cross-split duplicate drop per bucket of vector hashes, pass 2 per (split,
capture). On a cluster every worker must read the manual folder at the same path.

The build report (files found and missing, packets per class before and after balancing,
drop counts by reason, skipped files, duplicates dropped, leakage figures) is logged and
stored in the dataset's metadata: `builder.info.metadata["build_report"]`, i.e. the
`metadata.json` file beside the dataset's other files.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import shutil
import tempfile
import zipfile

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from mtc_keras import capture, labels, packets
from mtc_keras.splitting import SPLITS
from mtc_keras.splitting import flow_split as _flow_split
from mtc_keras.splitting import hash64 as _hash64
from mtc_keras.splitting import in_an_earlier_split as _in_an_earlier_split
from mtc_keras.splitting import lowest as _lowest
from mtc_keras.splitting import mix64 as _mix64
from mtc_keras.splitting import packet_split as _packet_split
from mtc_keras.splitting import vector_hashes as _vector_hashes
from tfds_builders.features import packet_feature
_CAPTURE_SUFFIXES = labels.ISCX_CAPTURE_SUFFIXES
_BATCH = 16384  # frames per batch: about 25 MB of vectors per worker


@dataclasses.dataclass
class IscxConfig(tfds.core.BuilderConfig):
    """What is written: how packets are split, whether ports are masked, the per-app cap."""

    split_by_flow: bool = False  # whole flows per split, and no packet vector in two splits
    mask_ports: bool = False  # zero the TCP/UDP ports (packets.mask_ports) in every vector
    max_packets_per_app: int = 50_000  # §3.2.3; half VPN, half non-VPN where both exist
    seed: int = 2016  # the sample and the split


@dataclasses.dataclass(frozen=True)
class _Source:
    """One capture: a file, or a member of a zip archive."""

    name: str  # file name only: keys, the `capture` feature, the report
    shown: str  # where it is, relative to the manual folder (for the report)
    path: str  # the file, or the zip archive holding it
    member: str | None = None


@contextlib.contextmanager
def _local_file(source: _Source):
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


def _scan_capture(job) -> dict:
    """Pass 1 for one capture: counts, and the `limit` lowest-priority kept packets with their
    (priority, index, flow hash, vector hash). Runs in a worker process."""
    source, limit, seed, mask_ports = job
    base = np.uint64(_hash64(f"{seed}:{source.name.lower()}"))
    counts = collections.Counter()
    cand = {"priority": np.zeros(0, np.uint64), "index": np.zeros(0, np.int64),
            "flow": np.zeros(0, np.uint64), "vector": np.zeros(0, np.uint64)}
    kept, path = 0, source.path
    try:
        with _local_file(source) as path:
            for batch in packets.iter_capture_batches(path, batch_size=_BATCH):
                counts.update(batch.counts)
                index = np.arange(kept, kept + len(batch), dtype=np.int64)
                kept += len(batch)
                with np.errstate(over="ignore"):
                    priority = _mix64(base + index.astype(np.uint64))
                old, new = _lowest(cand["priority"], priority, limit)
                # Hashes only for the packets that enter the candidates.
                vectors = packets.mask_ports(batch.packets[new]) if mask_ports else batch.packets[new]
                flows = np.array([_hash64(f"{source.name}|{f}") for f in batch.flow_ids[new]], np.uint64)
                fresh = {"priority": priority[new], "index": index[new], "flow": flows,
                         "vector": _vector_hashes(vectors)}
                cand = {k: np.concatenate([cand[k][old], fresh[k]]) for k in cand}
    except (packets.CaptureFormatError, zipfile.BadZipFile, EOFError) as error:
        # The reader names the file it read (maybe a temporary copy): name the capture instead.
        return {"source": source, "error": str(error).replace(path, source.shown)}
    return {"source": source, "counts": dict(counts), "kept": kept, "candidates": cand}


def _read_selected(job) -> dict:
    """Pass 2 for one capture: the vectors and flow ids of the kept packets at `indices`."""
    source, indices, mask_ports = job
    out_vectors, out_flows, out_index = [], [], []
    start = 0
    with _local_file(source) as path:
        for batch in packets.iter_capture_batches(path, batch_size=_BATCH):
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
    return {"source": source, "indices": found, "vectors": vectors, "flows": flows}


def _examples(result: dict):
    """(key, example) for every packet `_read_selected` returned."""
    source = result["source"]
    lab = labels.iscx_labels(source.name)
    for index, vector, flow in zip(result["indices"].tolist(), result["vectors"], result["flows"]):
        yield f"{source.name}:{index}", {
            "packet": vector, "app": lab.app, "traffic": lab.traffic, "aux": lab.aux,
            "vpn": lab.vpn, "flow_id": f"{source.name}|{flow}", "capture": source.name,
        }


def _map(function, jobs: list, workers: int | None):
    """function over jobs, in order, across worker processes (fork: the workers inherit the
    loaded modules, whatever name `tfds build` imported this one under)."""
    workers = min(workers or multiprocessing.cpu_count(), len(jobs))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(function, jobs)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(function, jobs, chunksize=1)


def find_captures(manual_dir) -> tuple[list[_Source], dict]:
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
                if name.lower().endswith(_CAPTURE_SUFFIXES):
                    found.append(_Source(name, f"{shown}/{member}", str(path), member))
                else:
                    skipped["other_files"].append(f"{shown}/{member}")
        elif lower.endswith(_CAPTURE_SUFFIXES):
            found.append(_Source(path.name, shown, str(path)))
        else:
            skipped["other_files"].append(shown)
    sources, seen = [], {}
    for source in sorted(found, key=lambda s: (labels.iscx_stem(s.name), s.shown)):
        stem = labels.iscx_stem(source.name)
        if labels.iscx_labels(source.name) is None:
            skipped["unknown_captures"].append(source.shown)
        elif stem in seen:
            skipped["duplicate_captures"].append(f"{source.shown} (same capture as {seen[stem]})")
        else:
            seen[stem] = source.shown
            sources.append(source)
    return sources, dict(skipped)


def _quotas(non_vpn: int, vpn: int, cap: int) -> tuple[int, int]:
    """(non-VPN, VPN) packets to take: half each, a short side taking all and the other filling up."""
    take_vpn = min(vpn, cap // 2 + max(0, (cap - cap // 2) - non_vpn))
    return min(non_vpn, cap - take_vpn), take_vpn


def _tally_scan(result: dict, used: list, unreadable: list, incomplete: list,
                totals: collections.Counter, kept_per_capture: dict) -> bool:
    """Count one capture's pass-1 result for the build report; False if it was unreadable."""
    source = result["source"]
    if "error" in result:
        error = result["error"]
        unreadable.append(error if error.startswith(source.shown) else f"{source.shown}: {error}")
        return False
    used.append(source)
    totals.update(result["counts"])
    kept_per_capture[source.name] = result["kept"]
    if result["counts"].get("truncated") or result["counts"].get("corrupt"):
        incomplete.append(source.shown)
    return True


def _choose_app(app: int, sides: dict, cap: int, seed: int, split_by_flow: bool,
                source_traffic: np.ndarray) -> dict | None:
    """Balance one app (§3.2.3) and split it 64/16/20, each traffic cell on its own.

    sides: {vpn: (kept packets, candidate columns)} for the sides with a capture read;
    source_traffic: the traffic label of each candidate's `source`. Returns the chosen
    candidates' columns plus `vpn`, `split` and `app`, or None when nothing is chosen.
    The result does not depend on the order of the candidates (priorities are unique).
    """
    kept = {vpn: sides[vpn][0] if vpn in sides else 0 for vpn in (False, True)}
    parts = []
    for vpn, quota in zip((False, True), _quotas(kept[False], kept[True], cap)):
        if vpn not in sides or quota == 0:
            continue
        cand = sides[vpn][1]
        keep = np.argsort(cand["priority"], kind="stable")[:quota]
        parts.append(dict({k: v[keep] for k, v in cand.items()}, vpn=np.full(len(keep), vpn)))
    if not parts:
        return None
    part = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    split = np.zeros(len(part["index"]), np.int64)
    cell = source_traffic[part["source"]]
    for traffic in np.unique(cell):
        rows = cell == traffic
        split[rows] = (_flow_split(part["flow"][rows], seed) if split_by_flow
                       else _packet_split(part["priority"][rows], seed))
    return dict(part, split=split, app=np.full(len(split), app))


def _class_counts(app, traffic, aux, vpn, weights=None) -> dict:
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


# ------------------------------------------------------------- generation as an Apache Beam pipeline
# Chosen by giving the build a Beam runner or options (`tfds build ... --beam_pipeline_options=`),
# so that a cluster runner (Dataflow, Flink, Spark) spreads the captures over machines. The same
# functions as the plain build, so the same examples: pass 1 per capture, then the per-side
# sample and the per-app balance and split as per-key combines, the cross-split duplicate drop
# per bucket of vector hashes (equal vectors share a bucket), pass 2 per (split, capture).
_BEAM_VECTOR_BUCKETS = 64
_BEAM_SUMMARY = "beam_build_summary.pkl"  # pass-1 counts and chosen rows, for the report


def _beam_scan(job):
    position, scan_job = job
    return dict(_scan_capture(scan_job), position=position)


def _beam_side(scan: dict):
    """((app, vpn), (kept packets, candidates tagged with their capture's position))."""
    if "error" in scan:
        return
    lab = labels.iscx_labels(scan["source"].name)
    cand = scan["candidates"]
    yield (lab.app, lab.vpn), (scan["kept"], dict(cand, source=np.full(len(cand["index"]), scan["position"])))


def _beam_merge_side(values, cap: int):
    """Combine of one side's captures: kept packets summed, the `cap` lowest priorities kept.
    Associative, so the runner may merge partial results in any order."""
    values = list(values)
    kept = sum(v[0] for v in values)
    cand = {k: np.concatenate([v[1][k] for v in values]) for k in values[0][1]}
    if len(cand["priority"]) > cap:
        keep = np.argpartition(cand["priority"], cap - 1)[:cap]
        cand = {k: v[keep] for k, v in cand.items()}
    return kept, cand


def _beam_by_app(side):
    (app, vpn), merged = side
    return app, (vpn, merged)


def _beam_choose(app_sides, cap: int, seed: int, split_by_flow: bool, source_traffic: np.ndarray):
    """One app balanced and split (the plain build's _choose_app), cut into vector buckets."""
    app, sides = app_sides
    chosen = _choose_app(app, dict(sides), cap, seed, split_by_flow, source_traffic)
    if chosen is None:
        return
    bucket = chosen["vector"] % np.uint64(_BEAM_VECTOR_BUCKETS)
    for b in np.unique(bucket).tolist():
        rows = bucket == b
        yield b, {k: v[rows] for k, v in chosen.items()}


def _beam_dedup(bucket_parts, split_by_flow: bool):
    """(rows of one vector bucket, duplicates dropped per split), as the plain build drops them."""
    _, parts = bucket_parts
    parts = list(parts)
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    dropped = np.zeros(len(SPLITS), np.int64)
    if split_by_flow:
        drop = _in_an_earlier_split(rows["vector"], rows["split"])
        dropped = np.bincount(rows["split"][drop], minlength=len(SPLITS))
        rows = {k: v[~drop] for k, v in rows.items()}
    return rows, dropped


def _beam_plan_entries(deduped):
    rows, _ = deduped
    for split, position in set(zip(rows["split"].tolist(), rows["source"].tolist())):
        yield (split, position), rows["index"][(rows["split"] == split) & (rows["source"] == position)]


def _beam_sorted_indices(values):
    return np.sort(np.concatenate(list(values)))


def _beam_read_job(entry, sources: list, mask_ports: bool):
    (_, position), indices = entry
    return sources[position], indices, mask_ports


def _beam_scan_summary(scan: dict) -> dict:
    return {k: scan[k] for k in ("position", "error", "counts", "kept") if k in scan}


def _beam_row_summary(deduped):
    rows, dropped = deduped
    return {k: rows[k] for k in ("source", "split", "flow", "vector")}, dropped


def _beam_write_summary(path: str, scans: list, rows: list):
    with epath.Path(path).open("wb") as f:
        pickle.dump({"scans": scans, "rows": rows}, f)


def _beam_plan(pipeline, sources: list, config: "IscxConfig", summary_path: str):
    """PCollection of ((split index, capture position), sorted packet indices): what each split
    takes from each capture. Also writes the report's inputs to summary_path."""
    beam = tfds.core.lazy_imports.apache_beam
    cap = config.max_packets_per_app
    jobs = [(i, (s, cap, config.seed, config.mask_ports)) for i, s in enumerate(sources)]
    source_traffic = np.array([labels.iscx_labels(s.name).traffic for s in sources], np.int64)
    scans = (pipeline
             | "Captures" >> beam.Create(jobs)
             | "SpreadCaptures" >> beam.Reshuffle()
             | "Pass1" >> beam.Map(_beam_scan))
    deduped = (scans
               | "BySide" >> beam.FlatMap(_beam_side)
               | "SampleSide" >> beam.CombinePerKey(_beam_merge_side, cap)
               | "ByApp" >> beam.Map(_beam_by_app)
               | "GroupApp" >> beam.GroupByKey()
               | "BalanceAndSplit" >> beam.FlatMap(_beam_choose, cap, config.seed,
                                                   config.split_by_flow, source_traffic)
               | "GroupVectorBucket" >> beam.GroupByKey()
               | "DropCrossSplitDuplicates" >> beam.Map(_beam_dedup, config.split_by_flow))
    plan = (deduped
            | "BySplitAndCapture" >> beam.FlatMap(_beam_plan_entries)
            | "Indices" >> beam.CombinePerKey(_beam_sorted_indices))
    scan_list = (scans | "ScanSummaries" >> beam.Map(_beam_scan_summary)
                 | "AllScans" >> beam.combiners.ToList())
    row_list = (deduped | "RowSummaries" >> beam.Map(_beam_row_summary)
                | "AllRows" >> beam.combiners.ToList())
    _ = (pipeline
         | "SummaryPath" >> beam.Create([summary_path])
         | "WriteSummary" >> beam.Map(_beam_write_summary, beam.pvalue.AsSingleton(scan_list),
                                      beam.pvalue.AsSingleton(row_list)))
    return plan


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for ISCX VPN-nonVPN 2016 (manual download)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: paper, flow_split and flow_split_masked configs."}
    BUILDER_CONFIGS = [
        IscxConfig(name="paper", description="The paper's split: per packet, random 64/16/20 "
                   "(packets of one flow land in several splits)."),
        IscxConfig(name="flow_split", split_by_flow=True, description="Whole flows per split, "
                   "64/16/20 of packets; no packet vector in two splits."),
        IscxConfig(name="flow_split_masked", split_by_flow=True, mask_ports=True,
                   description="flow_split with the TCP/UDP ports zeroed in every vector."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download ISCX VPN-nonVPN 2016 from https://www.unb.ca/cic/datasets/vpn.html (the form
    there leads to the files): the five archives NonVPN-PCAPs-01.zip, NonVPN-PCAPs-02.zip,
    NonVPN-PCAPs-03.zip, VPN-PCAPs-01.zip and VPN-PCAPs-02.zip (about 28 GB).
    Put the zips, or the .pcap / .pcapng files extracted from them, at any depth in the
    manual folder (default ~/tensorflow_datasets/downloads/manual/, or --manual_dir=DIR).
    A capture inside a zip is copied to a temporary file while it is read (TMPDIR needs room
    for the largest capture, up to ~2 GB, per worker process). Captures are labelled by file
    name; the build log and the dataset's metadata list the known captures found and missing.
    """
    NUM_WORKERS: int | None = None  # processes for reading captures; None: one per core
    _beam_build: dict | None = None  # set while a Beam build runs (see _download_and_prepare)

    def _info(self) -> tfds.core.DatasetInfo:
        label_doc = "class index into metadata['class_names']['{}']; -1 where the capture has no {} label"
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "packet": packet_feature(),
                "app": tfds.features.Scalar(np.int64, doc=label_doc.format("app", "app")),
                "traffic": tfds.features.Scalar(np.int64, doc=label_doc.format("traffic", "traffic-type (Tor)")),
                "aux": tfds.features.Scalar(np.int64, doc=label_doc.format("aux", "traffic-type (Tor)")),
                "vpn": tfds.features.Scalar(np.bool_, doc="captured through the VPN"),
                "flow_id": tfds.features.Text(doc="'<capture file name>|<proto> <addr:port> <addr:port>', "
                                                  "endpoints sorted, taken before masking"),
                "capture": tfds.features.Text(doc="capture file name, no directory"),
            }),
            supervised_keys=None,
            homepage="https://www.unb.ca/cic/datasets/vpn.html",
            metadata=tfds.core.MetadataDict(
                class_names={task: list(names) for task, names in labels.TASKS["iscx"].items()},
                missing_label=labels.MISSING),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config: IscxConfig = self.builder_config
        sources, skipped = find_captures(dl_manager.manual_dir)
        if not sources:
            raise FileNotFoundError(f"no known ISCX capture in {dl_manager.manual_dir}.\n"
                                    + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        if self._beam_build is not None:
            return self._beam_split_generators(sources, skipped)
        plan, report = self._plan(sources, skipped)
        self.info.metadata["build_report"] = report
        logging.info("ISCX VPN-nonVPN build report (%s):\n%s", config.name, format_report(report))
        return {split: self._generate_examples(plan[split]) for split, _ in SPLITS}

    def _download_and_prepare(self, dl_manager, download_config):
        # A Beam runner or Beam options (`tfds build --beam_pipeline_options=...`) ask for the
        # Beam pipeline; without them the build runs here, in NUM_WORKERS processes.
        use_beam = download_config.beam_runner is not None or download_config.beam_options is not None
        self._beam_build = {} if use_beam else None
        try:
            super()._download_and_prepare(dl_manager, download_config)
        finally:
            self._beam_build = None

    def _beam_split_generators(self, sources: list[_Source], skipped: dict):
        """One PTransform per split; the first one applied builds the plan they all share."""
        beam = tfds.core.lazy_imports.apache_beam
        config: IscxConfig = self.builder_config
        summary_path = os.fspath(epath.Path(self.data_dir) / _BEAM_SUMMARY)
        self._beam_build.update(sources=sources, skipped=skipped, summary=summary_path)
        shared = {}

        @beam.ptransform_fn
        def generate(pbegin, split: int):
            if "plan" not in shared:
                shared["plan"] = _beam_plan(pbegin.pipeline, sources, config, summary_path)
            return (shared["plan"]
                    | "ThisSplit" >> beam.Filter(lambda entry: entry[0][0] == split)
                    | "ReadJob" >> beam.Map(_beam_read_job, sources, config.mask_ports)
                    | "SpreadReads" >> beam.Reshuffle()
                    | "Pass2" >> beam.Map(_read_selected)
                    | "Examples" >> beam.FlatMap(_examples))

        return {name: generate(i) for i, (name, _) in enumerate(SPLITS)}

    def _process_pipeline_result(self, pipeline_result):
        """After a Beam build: the build report from what the pipeline left in its summary."""
        state = self._beam_build
        path = epath.Path(state["summary"])
        with path.open("rb") as f:
            summary = pickle.load(f)
        path.unlink()
        sources = state["sources"]
        used, unreadable, incomplete, totals, kept_per_capture = [], [], [], collections.Counter(), {}
        position_in_used = {}
        for scan in sorted(summary["scans"], key=lambda scan: scan["position"]):
            if _tally_scan(dict(scan, source=sources[scan["position"]]), used, unreadable,
                           incomplete, totals, kept_per_capture):
                position_in_used[scan["position"]] = len(used) - 1
        columns, dropped = {}, np.zeros(len(SPLITS), np.int64)
        if summary["rows"]:
            columns = {k: np.concatenate([rows[k] for rows, _ in summary["rows"]])
                       for k in summary["rows"][0][0]}
            columns["source"] = np.array([position_in_used[p] for p in columns["source"].tolist()],
                                         np.int64)
            dropped = sum(d for _, d in summary["rows"])
        report = self._report(sources, used, state["skipped"], unreadable, incomplete, totals,
                              kept_per_capture, columns,
                              {name: int(dropped[i]) for i, (name, _) in enumerate(SPLITS)})
        self.info.metadata["build_report"] = report
        logging.info("ISCX VPN-nonVPN build report (%s, Apache Beam):\n%s",
                     self.builder_config.name, format_report(report))

    def _plan(self, sources: list[_Source], skipped: dict):
        """Pass 1 and the choice of packets: {split: {source: sorted packet indices}}, report."""
        config: IscxConfig = self.builder_config
        cap = config.max_packets_per_app
        jobs = [(s, cap, config.seed, config.mask_ports) for s in sources]
        totals = collections.Counter()
        side_kept = collections.Counter()  # (app, vpn) -> kept packets
        groups: dict = {}  # (app, vpn) -> candidate columns, trimmed to `cap` lowest priorities
        used, unreadable, incomplete, kept_per_capture = [], [], [], {}
        for result in _map(_scan_capture, jobs, self.NUM_WORKERS):
            source = result["source"]
            if not _tally_scan(result, used, unreadable, incomplete, totals, kept_per_capture):
                continue
            lab = labels.iscx_labels(source.name)
            side_kept[lab.app, lab.vpn] += result["kept"]
            cand = dict(result["candidates"], source=np.full(len(result["candidates"]["index"]), len(used) - 1))
            group = groups.get((lab.app, lab.vpn))
            if group is not None:
                cand = {k: np.concatenate([group[k], cand[k]]) for k in cand}
            if len(cand["priority"]) > cap:
                keep = np.argpartition(cand["priority"], cap - 1)[:cap]
                cand = {k: v[keep] for k, v in cand.items()}
            groups[lab.app, lab.vpn] = cand

        # Balance each app and split each (app, traffic) cell on its own, so every class of
        # every task is split 64/16/20.
        source_traffic = np.array([labels.iscx_labels(s.name).traffic for s in used], np.int64)
        columns = collections.defaultdict(list)
        for app in range(len(labels.ISCX_APPS)):
            sides = {vpn: (side_kept[app, vpn], groups[app, vpn])
                     for vpn in (False, True) if (app, vpn) in groups}
            chosen = _choose_app(app, sides, cap, config.seed, config.split_by_flow, source_traffic)
            for k, v in (chosen or {}).items():
                columns[k].append(v)
        columns = {k: np.concatenate(v) for k, v in columns.items()} if columns else {}
        n = len(columns.get("split", ()))

        dropped_duplicates = {name: 0 for name, _ in SPLITS}
        if config.split_by_flow and n:
            drop = _in_an_earlier_split(columns["vector"], columns["split"])
            for i, (name, _) in enumerate(SPLITS):
                dropped_duplicates[name] = int(np.count_nonzero(drop & (columns["split"] == i)))
            columns = {k: v[~drop] for k, v in columns.items()}

        plan = {name: {} for name, _ in SPLITS}
        for i, (name, _) in enumerate(SPLITS):
            in_split = columns["split"] == i if columns else np.zeros(0, bool)
            for s in np.unique(columns["source"][in_split]) if columns else ():
                rows = in_split & (columns["source"] == s)
                plan[name][used[s]] = np.sort(columns["index"][rows])
        report = self._report(sources, used, skipped, unreadable, incomplete, totals, kept_per_capture,
                              columns, dropped_duplicates)
        return plan, report

    def _report(self, sources, used, skipped, unreadable, incomplete, totals, kept_per_capture,
                columns, dropped_duplicates) -> dict:
        config: IscxConfig = self.builder_config
        found_stems = {labels.iscx_stem(s.name) for s in sources}
        # Labels per used capture; packets are counted per capture, never one row per packet.
        by_source = {task: np.array([getattr(labels.iscx_labels(s.name), task) for s in used], np.int64)
                     for task in ("app", "traffic", "aux", "vpn")}
        with_files = {task: set(by_source[task].tolist()) for task in ("app", "traffic", "aux")}
        kept = _class_counts(*(by_source[t] for t in ("app", "traffic", "aux", "vpn")),
                             weights=[kept_per_capture[s.name] for s in used])
        split_counts, leakage = {}, {}
        if columns:
            for i, (name, _) in enumerate(SPLITS):
                source = columns["source"][columns["split"] == i]
                split_counts[name] = _class_counts(*(by_source[t][source] for t in ("app", "traffic", "aux", "vpn")))
                split_counts[name]["total"] = len(source)
            train, test = columns["split"] == 0, columns["split"] == 2
            n_test = max(1, int(np.count_nonzero(test)))
            leakage = {
                "test_packets_whose_flow_is_in_train":
                    float(np.count_nonzero(np.isin(columns["flow"][test], columns["flow"][train])) / n_test),
                "test_packets_whose_vector_is_in_train":
                    float(np.count_nonzero(np.isin(columns["vector"][test], columns["vector"][train])) / n_test),
            }
        return {
            "config": {"name": config.name, "split_by_flow": config.split_by_flow,
                       "mask_ports": config.mask_ports, "max_packets_per_app": config.max_packets_per_app,
                       "seed": config.seed, "split_fractions": dict(SPLITS)},
            "captures_found": sorted(s.shown for s in sources),
            "captures_missing": sorted(set(labels.ISCX_FILE_LABELS) - found_stems),
            "captures_unknown": skipped.get("unknown_captures", []),
            "captures_duplicate": skipped.get("duplicate_captures", []),
            "captures_unreadable": unreadable,
            "captures_incomplete": incomplete,
            "archives_unreadable": skipped.get("unreadable_archives", []),
            "other_files": skipped.get("other_files", []),
            "classes_without_files": {task: [n for i, n in enumerate(names) if i not in with_files[task]]
                                      for task, names in labels.TASKS["iscx"].items()},
            "packet_counts": {k: int(v) for k, v in sorted(totals.items())},
            "kept_packets": kept,
            "split_packets": split_counts,
            "cross_split_duplicates_dropped": dropped_duplicates,
            "leakage": leakage,
        }

    def _generate_examples(self, chosen: dict):
        """Pass 2: re-read the captures that hold chosen packets of this split."""
        config: IscxConfig = self.builder_config
        jobs = [(source, indices, config.mask_ports) for source, indices in chosen.items()]
        for result in _map(_read_selected, jobs, self.NUM_WORKERS):
            yield from _examples(result)


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
    for task in ("app", "traffic", "aux", "vpn"):
        lines.append(f"{task:<7} {'kept':>9} " + " ".join(f"{s:>10}" for s in splits))
        for name, count in report["kept_packets"][task].items():
            lines.append(f"  {name:<20} {count:>9} " + " ".join(f"{splits[s][task][name]:>10}" for s in splits))
    if any(report["cross_split_duplicates_dropped"].values()):
        lines.append("vectors dropped as duplicates of an earlier split: "
                     + ", ".join(f"{k}={v}" for k, v in report["cross_split_duplicates_dropped"].items()))
    for key, value in report["leakage"].items():
        lines.append(f"{key}: {value:.4f}")
    return "\n".join(lines)
