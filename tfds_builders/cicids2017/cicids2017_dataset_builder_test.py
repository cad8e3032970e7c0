"""DatasetBuilderTestCase for both configs, on the generated dummy_data/.

dummy_data/ (written by `python -m benchmarks.cicids_build --dummy-data <dir>`) holds a
MachineLearningCVE CSV (BOM, leading spaces, duplicated column) and a zipped TrafficLabelling CSV
(cp1252 dash, empty rows, an Infiltration row): 367 rows, 330 usable after cleaning.
"""

import tensorflow_datasets as tfds

from tfds_builders.cicids2017 import cicids2017_dataset_builder


class PaperConfigTest(tfds.testing.DatasetBuilderTestCase):
    """`paper`: balanced, then split; SMOTE rows land in every split."""

    DATASET_CLASS = cicids2017_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["paper"]
    SPLITS = {"train": 165, "validation": 41, "test": 52}


class CleanConfigTest(tfds.testing.DatasetBuilderTestCase):
    """`clean`: split, then only train is balanced; validation and test keep the real mix."""

    DATASET_CLASS = cicids2017_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["clean"]
    SPLITS = {"train": 164, "validation": 53, "test": 67}


if __name__ == "__main__":
    tfds.testing.test_main()
