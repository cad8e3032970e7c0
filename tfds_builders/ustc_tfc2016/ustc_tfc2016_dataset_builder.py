"""USTC-TFC2016 as 1500-byte packet vectors, labelled by class (20) and benign / malware.

Build:  tfds build tfds_builders/ustc_tfc2016 --manual_dir=DIR --data_dir=OUT [--config=flow_split]
Load:   mtc_keras.registry.load("ustc_tfc2016", "flow_split", OUT)  (or tfds.load("ustc_tfc2016/flow_split",
        data_dir=OUT): a built dataset is read from its files, no import of this package needed)

TFDS glue only: finding, reading (.7z included), sampling, splitting, the examples and the build
report are mtc_keras.ustc (see its docstring) and mtc_keras.packet_datasets. The build report is
logged and stored in the dataset's metadata: `builder.info.metadata["build_report"]`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from mtc_keras import labels, ustc
from tfds_builders.features import index_feature, packet_feature


@dataclasses.dataclass
class UstcConfig(tfds.core.BuilderConfig):
    """How packets are split (the config name, a key of mtc_keras.ustc.CONFIGS), the per-class cap."""

    max_per_class: int = ustc.DEFAULT_MAX_PER_CLASS
    seed: int = ustc.SEED


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for USTC-TFC2016 (manual download: Benign/ and Malware/ captures or .7z)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "1.1.0": "The index feature (capture order, for per-flow figures); one "
                              "build report layout for the packet datasets."}
    BUILDER_CONFIGS = [
        UstcConfig(name="paper",
                   description="Per-packet random split 64/16/20 per class (the protocol of most "
                               "USTC-TFC2016 papers): conversations straddle the splits."),
        UstcConfig(name="flow_split",
                   description="Whole conversations per split (addresses left out of the key where "
                               "a class is anonymised) and no packet vector in two splits."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download USTC-TFC2016 (W. Wang et al., ICOIN 2017), e.g. the repository
    https://github.com/davidyslu/USTC-TFC2016 (about 3.7 GB; `git lfs pull` where the copy uses
    Git LFS), and give its folder as the manual folder (`--manual_dir=DIR`): `Benign/<Name>.pcap`
    and `Malware/<Name>.pcap`, where some classes come as `.7z` archives (Benign/SMB.7z,
    Benign/Weibo.7z, Malware/Cridex.7z, Geodo, Htbot, Neris, Nsis-ay, Shifu, Virut). Leave the
    archives as they are: every capture inside one is read as a capture of the archive's class,
    extracted to a temporary folder while it is read (TMPDIR needs room for the largest member).
    Captures are labelled by file name (exact class names, any case, optionally numbered:
    Weibo-1.pcap); the build report lists what was found, missing, unknown or unreadable.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        label_doc = "class index into metadata['class_names']['{}']"
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "packet": packet_feature(),
                "app": tfds.features.Scalar(np.int64, doc=label_doc.format("app")),
                "malware": tfds.features.Scalar(np.int64, doc=label_doc.format("malware")),
                "flow_id": tfds.features.Text(doc="'<capture>|<conversation>': the address flow, or where "
                                                  "the class is anonymised its port pair (and capture "
                                                  "window); build_report['flow_keys'] says which"),
                "index": index_feature(),
                "capture": tfds.features.Text(doc="capture file name, or '<archive>/<member>'; no directory"),
            }),
            supervised_keys=None,
            homepage="https://github.com/yungshenglu/USTC-TFC2016",
            metadata=tfds.core.MetadataDict(
                class_names={task: list(names) for task, names in labels.TASKS["ustc_tfc2016"].items()}),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config: UstcConfig = self.builder_config
        try:
            built = ustc.build(dl_manager.manual_dir, config.name, max_per_class=config.max_per_class,
                               seed=config.seed)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}") from error
        self.info.metadata["build_report"] = built.report
        logging.info("USTC-TFC2016 build report (%s):\n%s", config.name, ustc.format_report(built.report))
        return {name: self._generate_examples(split) for name, split in built.splits.items()}

    def _generate_examples(self, split: ustc.Split):
        yield from ustc.examples(split)
