"""ISCX VPN-nonVPN 2016 as 1500-byte packet vectors, labelled for the MTC paper's three tasks.

Build:  tfds build tfds_builders/iscx_vpn_nonvpn --manual_dir=DIR --data_dir=OUT [--config=flow_split]
Load:   mtc_keras.registry.load("iscx", "flow_split", OUT)  (or tfds.load("iscx_vpn_nonvpn/flow_split",
        data_dir=OUT): a built dataset is read from its files, no import of this package needed)

TFDS and Apache Beam glue only: finding the captures, the two passes, sampling, balancing,
splitting, de-duplication and the build report are mtc_keras.iscx (see its docstring).

With Apache Beam (the `beam` extra): given a Beam runner or options, e.g.
`tfds build ... --beam_pipeline_options=runner=DirectRunner` (BUILD.md has cluster runners), the
same steps run as one Beam pipeline shared by the three splits, and write the same examples:
pass 1 per capture, the per-(app, side) sample and the per-app balance and split as per-key
combines, the cross-split duplicate drop per bucket of vector digests, pass 2 per (split,
capture). On a cluster every worker must read the manual folder at the same path.

The build report (files found and missing, packets per class before and after balancing,
drop counts by reason, skipped files, duplicates dropped, leakage figures) is logged and
stored in the dataset's metadata: `builder.info.metadata["build_report"]`, i.e. the
`metadata.json` file beside the dataset's other files.
"""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from mtc_keras import iscx, labels
from mtc_keras.iscx import SPLITS, find_captures, format_report  # noqa: F401  (the package's API)
from tfds_builders.features import index_feature, packet_feature


@dataclasses.dataclass
class IscxConfig(tfds.core.BuilderConfig):
    """What is written: how packets are split, whether ports are masked, the per-app cap (the
    named configs: mtc_keras.iscx.CONFIGS)."""

    split_by_flow: bool = False  # whole flows per split, and no packet vector in two splits
    mask_ports: bool = False  # zero the TCP/UDP ports (packets.mask_ports) in every vector
    max_packets_per_app: int = iscx.DEFAULT_MAX_PACKETS_PER_APP  # half VPN, half non-VPN
    seed: int = iscx.SEED  # the sample and the split

    def settings(self) -> iscx.Settings:
        return iscx.Settings(self.name, self.split_by_flow, self.mask_ports,
                             self.max_packets_per_app, self.seed)


# ------------------------------------------------------------- generation as an Apache Beam pipeline
# Chosen by giving the build a Beam runner or options (`tfds build ... --beam_pipeline_options=`),
# so that a cluster runner (Dataflow, Flink, Spark) spreads the captures over machines. The
# steps are mtc_keras.iscx's, as in the plain build, so the examples are the same.
_BEAM_VECTOR_BUCKETS = 64
_BEAM_SUMMARY = "beam_build_summary.pkl"  # pass-1 counts and chosen rows, for the report


def _beam_side(scan: iscx.Scan, sources: list):
    """((app, vpn), Side) of a readable capture."""
    if scan.error is None:
        yield iscx.side_key(sources[scan.position]), iscx.Side(scan.kept, iscx.candidates(scan))


def _beam_choose(app_sides, settings: iscx.Settings, traffic: np.ndarray):
    """One app balanced and split (iscx.choose_app), cut into buckets of vector digests."""
    _, sides = app_sides
    rows = iscx.choose_app({vpn: side for (_, vpn), side in sides}, settings, traffic)
    if rows is None:
        return
    bucket = rows.vector % np.uint64(_BEAM_VECTOR_BUCKETS)
    for b in np.unique(bucket).tolist():
        yield b, rows.take(bucket == b)


def _beam_write_summary(path: str, scans: list, rows: list):
    with epath.Path(path).open("wb") as f:
        pickle.dump({"scans": scans, "rows": rows}, f)


def _beam_plan(pipeline, sources: list, settings: iscx.Settings, summary_path: str):
    """PCollection of ((split index, capture position), sorted packet indices): what each split
    takes from each capture. Also writes the report's inputs to summary_path."""
    beam = tfds.core.lazy_imports.apache_beam
    cap = settings.max_packets_per_app
    scans = (pipeline
             | "Captures" >> beam.Create(list(enumerate(sources)))
             | "SpreadCaptures" >> beam.Reshuffle()
             | "Pass1" >> beam.MapTuple(lambda position, source: iscx.scan_capture(source, position, settings)))
    deduped = (scans
               | "BySide" >> beam.FlatMap(_beam_side, sources)
               | "SampleSide" >> beam.CombinePerKey(iscx.Side.merge, cap)
               | "ByApp" >> beam.Map(lambda side: (side[0][0], side))
               | "GroupApp" >> beam.GroupByKey()
               | "BalanceAndSplit" >> beam.FlatMap(_beam_choose, settings, iscx.source_traffic(sources))
               | "GroupVectorBucket" >> beam.GroupByKey()
               | "DropCrossSplitDuplicates" >> beam.MapTuple(
                   lambda _, parts: iscx.drop_cross_split_duplicates(iscx.Rows.concat(list(parts)), settings)))
    plan = (deduped
            | "BySplitAndCapture" >> beam.FlatMap(lambda deduped: iscx.split_indices(deduped[0]))
            | "Indices" >> beam.CombinePerKey(lambda parts: np.sort(np.concatenate(list(parts)))))
    scan_list = (scans | "ScanSummaries" >> beam.Map(iscx.Scan.summary)
                 | "AllScans" >> beam.combiners.ToList())
    row_list = deduped | "AllRows" >> beam.combiners.ToList()
    _ = (pipeline
         | "SummaryPath" >> beam.Create([summary_path])
         | "WriteSummary" >> beam.Map(_beam_write_summary, beam.pvalue.AsSingleton(scan_list),
                                      beam.pvalue.AsSingleton(row_list)))
    return plan


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for ISCX VPN-nonVPN 2016 (manual download)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: paper, flow_split and flow_split_masked configs.",
                     "1.1.0": "The index feature (capture order, for per-flow figures); one "
                              "build report layout for the packet datasets."}
    BUILDER_CONFIGS = [IscxConfig(name=name, description=description, **iscx.CONFIGS[name]) for name, description in (
        ("paper", "The paper's split: per packet, random 64/16/20 "
                  "(packets of one flow land in several splits)."),
        ("flow_split", "Whole flows per split, 64/16/20 of packets; no packet vector in two splits."),
        ("flow_split_masked", "flow_split with the TCP/UDP ports zeroed in every vector."),
    )]
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
                "index": index_feature(),
                "capture": tfds.features.Text(doc="capture file name, no directory"),
            }),
            supervised_keys=None,
            homepage="https://www.unb.ca/cic/datasets/vpn.html",
            metadata=tfds.core.MetadataDict(
                class_names={task: list(names) for task, names in iscx.DATASET.tasks.items()},
                missing_label=labels.MISSING),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config: IscxConfig = self.builder_config
        try:
            sources, skipped = iscx.find_sources(dl_manager.manual_dir)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}") from error
        if self._beam_build is not None:
            return self._beam_split_generators(sources, skipped)
        settings = config.settings()
        plan = iscx.plan(sources, skipped, settings, self.NUM_WORKERS)
        self.info.metadata["build_report"] = plan.report
        logging.info("ISCX VPN-nonVPN build report (%s):\n%s", config.name, format_report(plan.report))
        return {split: self._generate_examples(plan, split) for split, _ in SPLITS}

    def _generate_examples(self, plan: iscx.Plan, split: str):
        """Pass 2: re-read the captures that hold chosen packets of this split."""
        yield from plan.read(split, self.builder_config.settings(), self.NUM_WORKERS)

    def _download_and_prepare(self, dl_manager, download_config):
        # A Beam runner or Beam options (`tfds build --beam_pipeline_options=...`) ask for the
        # Beam pipeline; without them the build runs here, in NUM_WORKERS processes.
        use_beam = download_config.beam_runner is not None or download_config.beam_options is not None
        self._beam_build = {} if use_beam else None
        try:
            super()._download_and_prepare(dl_manager, download_config)
        finally:
            self._beam_build = None

    def _beam_split_generators(self, sources: list, skipped: dict):
        """One PTransform per split; the first one applied builds the plan they all share."""
        beam = tfds.core.lazy_imports.apache_beam
        settings = self.builder_config.settings()
        summary_path = os.fspath(epath.Path(self.data_dir) / _BEAM_SUMMARY)
        self._beam_build.update(sources=sources, skipped=skipped, summary=summary_path)
        shared = {}

        @beam.ptransform_fn
        def generate(pbegin, split: int):
            if "plan" not in shared:
                shared["plan"] = _beam_plan(pbegin.pipeline, sources, settings, summary_path)
            return (shared["plan"]
                    | "ThisSplit" >> beam.Filter(lambda entry: entry[0][0] == split)
                    | "ReadJob" >> beam.MapTuple(lambda key, indices: (sources[key[1]], indices))
                    | "SpreadReads" >> beam.Reshuffle()
                    | "Pass2" >> beam.MapTuple(
                        lambda source, indices: iscx.read_selected(source, indices, settings.mask_ports))
                    | "Examples" >> beam.FlatMap(iscx.examples))

        return {name: generate(i) for i, (name, _) in enumerate(SPLITS)}

    def _process_pipeline_result(self, pipeline_result):
        """After a Beam build: the build report from what the pipeline left in its summary."""
        state = self._beam_build
        path = epath.Path(state["summary"])
        with path.open("rb") as f:
            summary = pickle.load(f)
        path.unlink()
        tally = iscx.Tally(state["sources"])
        for scan in sorted(summary["scans"], key=lambda scan: scan.position):
            tally.add(scan)
        rows = iscx.Rows.concat([rows for rows, _ in summary["rows"]])
        dropped = sum((d for _, d in summary["rows"]), np.zeros(len(SPLITS), np.int64))
        report = iscx.build_report(self.builder_config.settings(), state["skipped"], tally, rows, dropped)
        self.info.metadata["build_report"] = report
        logging.info("ISCX VPN-nonVPN build report (%s, Apache Beam):\n%s",
                     self.builder_config.name, format_report(report))
