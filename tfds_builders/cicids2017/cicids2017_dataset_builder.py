"""cicids2017: the CICIDS2017 flows as MTC uses them (49 features in [0, 1], attack and mal labels).

All parsing, cleaning, balancing and normalisation lives in mtc_keras.cicids; this builder only
finds the manual files and writes what `cicids.prepare` returns.
"""

import numpy as np
import tensorflow_datasets as tfds

from mtc_keras import cicids
from mtc_keras.labels import CICIDS_ATTACKS, CICIDS_MAL, cicids_mal


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the CICIDS2017 CSVs (MachineLearningCVE or TrafficLabelling layout)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(
            name="paper",
            description="Balanced (RandomUnderSampler + SMOTE) first, then split 64/16/20, as "
                        "the paper implies: synthetic rows reach validation and test."),
        tfds.core.BuilderConfig(
            name="clean",
            description="Split 64/16/20 (stratified) first, then only the training split is "
                        "balanced: validation and test hold real rows only."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download the CICIDS2017 CSVs from https://www.unb.ca/cic/datasets/ids-2017.html
    (MachineLearningCSV.zip, or GeneratedLabelledFlows.zip for the TrafficLabelling layout)
    and place them in the manual folder (`--manual_dir`), zipped or extracted, at any depth.
    Any subset of the eight day files works; a day file found twice is read once.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "features": tfds.features.Tensor(shape=(len(cicids.FEATURES),), dtype=np.float32),
                "attack": tfds.features.ClassLabel(names=CICIDS_ATTACKS),
                "mal": tfds.features.ClassLabel(names=CICIDS_MAL),
                "raw_label": tfds.features.Text(),
            }),
            supervised_keys=None,
            homepage="https://www.unb.ca/cic/datasets/ids-2017.html",
            # Filled by the build: `quantile_transform` and `build_report` (cicids.Prepared.metadata).
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        sources, skipped = cicids.find_sources(dl_manager.manual_dir)
        if not sources:
            raise ValueError(f"no CICIDS2017 CSV under {dl_manager.manual_dir}.\n"
                             f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        prepared = cicids.prepare(sources, self.builder_config.name)
        prepared.report["skipped_files"] = skipped
        self.info.metadata.update(prepared.metadata())
        return {name: self._generate_examples(rows) for name, rows in prepared.splits.items()}

    def _generate_examples(self, rows: cicids.Rows):
        for i in range(len(rows)):
            attack = int(rows.attack[i])
            yield rows.key(i), {"features": rows.features[i], "attack": attack,
                                "mal": cicids_mal(attack), "raw_label": rows.raw_label(i)}
