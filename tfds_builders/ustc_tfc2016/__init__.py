"""USTC-TFC2016 TFDS builder. Importing this package registers `ustc_tfc2016` (a built dataset
needs no import: mtc_keras.registry.load, or tfds.load with its data_dir):

    import tfds_builders.ustc_tfc2016  # noqa: F401
    ds = tfds.load("ustc_tfc2016/flow_split", split="train", data_dir=DATA_DIR)
"""

from .ustc_tfc2016_dataset_builder import Builder, UstcConfig

__all__ = ["Builder", "UstcConfig"]
